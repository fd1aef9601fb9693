"""The course as learners see it: JupyterLab in a real browser (Chromium,
driven by Playwright), every lesson run top to bottom with its answers filled in.

One JupyterLab for the module, lessons in turn, each kernel shut down after
its lesson. The lab serves copies of the solution notebooks from a scratch
folder (so the committed sources never get outputs) and keeps its settings
and workspaces there too. Screenshots of every figure go to
test-artifacts/<lesson>/ for people to look at.
"""

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from benchmarks.lab import CLOSE_JS, OPEN_JS
from labserver import course_jupyterlab
from lazysignals.lessons import lesson_names
from lazysignals.manifest import REPO_ROOT

CHROMIUM = os.environ.get("LAZYSIGNALS_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "test-artifacts"
LESSONS = lesson_names()
LESSON_SECONDS = 300  # one lesson, top to bottom, on the ci preset
# Flags for a headless Chromium on a machine without outside network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Settings of the test's own JupyterLab user folder: every cell stays in the
# page (no windowing), so that each figure can be found and photographed.
TEST_SETTINGS = {"@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"}}

# Run in each lesson's kernel before its cells: after every cell, record what
# is wrong with the colour limits of the open figures (lazysignals.figures),
# before a later plot closes them.
FIGURE_HOOK = """
def _course_figure_hook(*_):
    from lazysignals.figures import colour_limit_problems
    for p in colour_limit_problems():
        if p not in _course_figure_problems:
            _course_figure_problems.append(p)
_course_figure_problems = []
get_ipython().events.register("post_run_cell", _course_figure_hook)
"""

# JavaScript run in the page (OPEN_JS and CLOSE_JS: benchmarks/lab.py, shared with the core-track timing).
RUN_ALL_JS = """async () => {
  const app = window.jupyterapp;
  await app.commands.execute('notebook:run-all-cells');
}"""
STATE_JS = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const cells = w.content.model.sharedModel.cells;
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  return {status: kernel ? kernel.status : 'none',
          pending: cells.filter(c => c.cell_type === 'code' && !c.execution_count).length,
          running: w.content.widgets.filter(c => c.model.type === 'code' && c.promptNode
                                              && c.promptNode.textContent.includes('*')).length};
}"""
CELLS_JS = """() => {
  const nb = window.jupyterapp.shell.currentWidget.content;
  return nb.model.sharedModel.cells.map(c => ({type: c.cell_type, count: c.execution_count,
      outputs: (c.outputs || []).map(o => ({output_type: o.output_type, name: o.name, ename: o.ename,
          evalue: o.evalue, text: [].concat(o.text || []).join(''),
          plain: o.data ? [].concat(o.data['text/plain'] || []).join('') : ''}))}));
}"""
EXEC_JS = """async (code) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const future = kernel.requestExecute({code, store_history: false, silent: false});
  let out = '';
  future.onIOPub = (msg) => {
    const t = msg.header.msg_type;
    if (t === 'stream') out += msg.content.text;
    if (t === 'error') out += 'ERROR ' + msg.content.ename + ': ' + msg.content.evalue;
  };
  await future.done;
  return out;
}"""
# How many different colours a canvas holds (1: nothing drawn), leaving out the
# bottom-right corner where ipympl draws its resize handle on every figure, drawn or not.
CORNER_PX = 30
COLOURS_JS = f"""(c) => {{
  if (!c.width || !c.height) return 0;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const b = c.getBoundingClientRect();
  const cx = c.width - {CORNER_PX} * c.width / Math.max(b.width, 1);
  const cy = c.height - {CORNER_PX} * c.height / Math.max(b.height, 1);
  const seen = new Set();
  for (let i = 0; i < d.length && seen.size < 50; i += 4 * 97) {{
    const p = i / 4, x = p % c.width, y = Math.floor(p / c.width);
    if (x >= cx && y >= cy) continue;
    seen.add(d[i] << 16 | d[i+1] << 8 | d[i+2]);
  }}
  return seen.size;
}}"""
# For each ipympl figure of the open notebook: its size on the page and how
# many different colours its canvases hold (1 or 0: nothing drawn).
FIGURES_JS = """() => {
  const colours_of = %s;
  const nb = window.jupyterapp.shell.currentWidget.content.node;
  const cells = Array.from(nb.querySelectorAll('.jp-Cell'));
  return Array.from(nb.querySelectorAll('.jupyter-matplotlib-figure')).map((fig) => {
    const r = fig.getBoundingClientRect();
    const cell = cells.indexOf(fig.closest('.jp-Cell'));
    let colours = 0, area = 0;
    for (const c of fig.querySelectorAll('canvas')) {
      const b = c.getBoundingClientRect();
      area = Math.max(area, b.width * b.height);
      colours = Math.max(colours, colours_of(c));
    }
    return {cell, x: r.x, width: r.width, height: r.height, area, colours,
            title: (fig.querySelector('.jupyter-widgets.widget-label, .jupyter-matplotlib-header') || {}).textContent || ''};
  });
}""" % COLOURS_JS
DRAWN_JS = """(i) => {
  const colours_of = %s;
  const nb = window.jupyterapp.shell.currentWidget.content.node;
  const fig = nb.querySelectorAll('.jupyter-matplotlib-figure')[i];
  return Array.from(fig.querySelectorAll('canvas')).some((c) => colours_of(c) > 1);
}""" % COLOURS_JS


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), (
        f"No Chromium at {CHROMIUM}: install Debian's chromium (apt-get install chromium) "
        "or set LAZYSIGNALS_CHROMIUM to a Chromium executable."
    )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One course JupyterLab serving scratch copies of the solution notebooks."""
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "course"
    for lesson in LESSONS:
        (root / lesson).mkdir(parents=True)
        shutil.copy(REPO_ROOT / "solutions" / lesson / f"{lesson}.ipynb", root / lesson)
    for name, values in TEST_SETTINGS.items():
        path = tmp / "lab-user-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    args = ["--LabApp.expose_app_in_browser=True", f"--ServerApp.root_dir={root}"]
    with course_jupyterlab(tmp, lab_args=args) as url:
        yield {"base": url.split("/lab")[0], "token": url.split("token=")[1], "tmp": tmp}
    # The user's own JupyterLab folders were never written: all of it stayed here.
    assert (tmp / "lab-workspaces").exists() or not list(tmp.glob("*workspace*"))


@pytest.fixture(scope="module")
def page(browser, lab):
    page = browser.new_page(viewport={"width": 1800, "height": 1000})
    page.goto(f"{lab['base']}/lab?token={lab['token']}", timeout=120_000)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=120_000)
    page.wait_for_selector("#jp-main-statusbar", timeout=120_000)
    ARTIFACTS.mkdir(exist_ok=True)
    yield page
    page.close()


def run_lesson(page, lesson):
    """Open a lesson, run every cell, wait until the kernel is idle; return the cells."""
    page.evaluate(OPEN_JS, f"{lesson}/{lesson}.ipynb")
    page.wait_for_function("() => { const w = window.jupyterapp.shell.currentWidget; return w && "
                           "w.sessionContext.session && w.sessionContext.session.kernel && "
                           "w.sessionContext.session.kernel.status === 'idle'; }", timeout=120_000)
    assert page.evaluate(EXEC_JS, FIGURE_HOOK) == ""
    page.evaluate(RUN_ALL_JS)
    deadline = time.time() + LESSON_SECONDS
    while time.time() < deadline:
        state = page.evaluate(STATE_JS)
        if state["pending"] == 0 and state["running"] == 0 and state["status"] == "idle":
            break
        time.sleep(0.5)
    page.wait_for_timeout(1500)  # the last figures arrive over the widget comm
    return page.evaluate(CELLS_JS), state


def output_problems(cells):
    """Error outputs, stderr boxes and stray ``[<Axes ...>]`` reprs, by cell index."""
    problems = []
    for i, cell in enumerate(cells):
        for o in cell["outputs"]:
            if o["output_type"] == "error":
                problems.append(f"cell {i} raised {o['ename']}: {o['evalue'][:300]}")
            elif o["output_type"] == "stream" and o["name"] == "stderr":
                problems.append(f"cell {i} wrote to stderr (a pink box): {o['text'][:300]!r}")
            if "<Axes:" in o["plain"] or "<Axes:" in o["text"]:
                problems.append(f"cell {i} shows a matplotlib repr: {(o['plain'] or o['text'])[:120]!r}")
    return problems


def photograph_figures(page, lesson):
    """Screenshot every figure still open on the page; return their descriptions."""
    folder = ARTIFACTS / lesson
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    figures = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jupyter-matplotlib-figure")
    found = page.evaluate(FIGURES_JS)
    for i, info in enumerate(found):
        if info["area"] > 0:
            figure = figures.nth(i)
            figure.scroll_into_view_if_needed()
            # A figure scrolled into view may be redrawn: wait for its picture.
            page.wait_for_timeout(300)
            try:
                page.wait_for_function(DRAWN_JS, arg=i, timeout=10_000)
            except Exception:
                info["colours"] = 0  # blank once in view: reported by the caller
            figure.screenshot(path=str(folder / f"figure-{i:02d}.png"))
    return found


def drag_navigator_pointer(page, lesson):
    """Drag the navigator's pointer with the mouse; return the indices before and after,
    and whether the signal figure changed."""
    info = json.loads(page.evaluate(EXEC_JS, """
import json as _json
_nav, _sig = s._plot.navigator_plot, s._plot.signal_plot
_ax = _nav.ax
_fig = _ax.figure
_xa, _ya = s.axes_manager.navigation_axes
_px, _py = _ax.transData.transform((_xa.value, _ya.value))
_qx, _ = _ax.transData.transform((_xa.value + 5 * _xa.scale, _ya.value))
print(_json.dumps({"fx": _px / _fig.bbox.width, "fy": 1 - _py / _fig.bbox.height,
                   "dfx": (_qx - _px) / _fig.bbox.width, "indices": list(s.axes_manager.indices),
                   "navigator": _fig.canvas.manager.get_window_title(),
                   "signal": _sig.figure.canvas.manager.get_window_title()}))
"""))
    figures = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jupyter-matplotlib-figure")
    found = page.evaluate(FIGURES_JS)

    def last(title):
        hits = [i for i, f in enumerate(found) if f["area"] > 0 and title in f["title"]]
        assert hits, f"no figure titled {title!r} on the page: {[f['title'] for f in found]}"
        return figures.nth(hits[-1])

    nav, sig = last(info["navigator"]), last(info["signal"])
    nav.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    box = nav.locator("canvas").first.bounding_box()
    signal_before = sig.screenshot()
    # Press a few pixels off the pointer's centre, as a hand does.
    x0, y0 = box["x"] + info["fx"] * box["width"] + 7, box["y"] + info["fy"] * box["height"] - 5
    dx = info["dfx"] * box["width"]
    nav.screenshot(path=str(ARTIFACTS / lesson / "navigator-before-drag.png"))
    page.mouse.move(x0, y0)
    page.mouse.down()
    for k in range(1, 11):
        page.mouse.move(x0 + k * dx / 10, y0, steps=2)
    page.mouse.up()
    page.wait_for_timeout(1500)
    nav.screenshot(path=str(ARTIFACTS / lesson / "navigator-after-drag.png"))
    after = json.loads(page.evaluate(EXEC_JS, "import json as _json; print(_json.dumps(list(s.axes_manager.indices)))"))
    return info["indices"], after, sig.screenshot() != signal_before


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_runs_in_jupyterlab_without_errors_and_draws_every_figure(page, lesson):
    t0 = time.perf_counter()
    cells, state = run_lesson(page, lesson)
    try:
        assert state["pending"] == 0 and state["status"] == "idle", (
            f"{lesson} did not finish within {LESSON_SECONDS} s: {state}")
        problems = output_problems(cells)
        assert not problems, f"{lesson}: " + "\n".join(problems)
        figures = photograph_figures(page, lesson)
        open_figures = int(page.evaluate(EXEC_JS, "import matplotlib.pyplot as _plt; print(len(_plt.get_fignums()))"))
        # A later plot of the same signal closes the earlier figures: their canvas is gone.
        shown = [f for f in figures if f["area"] > 0]
        blank = [f for f in shown if f["colours"] <= 1]
        assert not blank, f"{lesson}: figures on the page with nothing drawn: {blank}"
        assert len(shown) >= open_figures, (
            f"{lesson}: {open_figures} figures open in the kernel, {len(shown)} drawn on the page")
        colour = json.loads(page.evaluate(EXEC_JS, "import json as _json; print(_json.dumps(_course_figure_problems))"))
        assert not colour, f"{lesson}: images whose colour limits hide their data:\n" + "\n".join(colour)
        if lesson == "03_plotting":
            before, after, redrawn = drag_navigator_pointer(page, lesson)
            assert after != before, f"dragging the navigator's pointer did not move it (indices {before})"
            assert redrawn, "the signal figure did not change when the pointer moved"
    finally:
        kernels_left = page.evaluate(CLOSE_JS)
        print(f"{lesson}: {time.perf_counter() - t0:.1f} s in the browser")
    assert kernels_left == 0, f"closing the tab of {lesson} left {kernels_left} kernel(s) running"
