"""The course as learners see it: JupyterLab in a real browser (Chromium,
driven by Playwright), a student notebook run cell by cell.

Screenshots are kept in test-artifacts/ for people to look at.
"""

import json
import os
import time
from pathlib import Path

import pytest

from labserver import course_jupyterlab
from lazysignals.manifest import REPO_ROOT

CHROMIUM = os.environ.get("LAZYSIGNALS_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "test-artifacts"
LESSON = "03_plotting"  # plots the dataset with its navigator before the first exercise
# Flags for a headless Chromium on a machine without outside network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def first_exercise_cell(notebook: Path) -> int:
    """Index of the first cell a learner has to fill in."""
    cells = json.loads(notebook.read_text())["cells"]
    for i, c in enumerate(cells):
        if c.get("metadata", {}).get("nbgrader", {}).get("solution"):
            return i
    return len(cells)


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


# JavaScript run in the page: the open notebook's cells, as the model holds them.
CELLS_JS = """() => {
  const nb = window.jupyterapp.shell.currentWidget.content;
  return nb.model.sharedModel.cells.map(c => ({type: c.cell_type,
      outputs: (c.outputs || []).map(o => ({output_type: o.output_type, ename: o.ename, evalue: o.evalue})),
      count: c.execution_count}));
}"""


def test_student_notebook_runs_in_jupyterlab_with_live_plots_and_memory_indicator(browser, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    notebook = REPO_ROOT / "notebooks" / LESSON / f"{LESSON}.ipynb"
    stop = first_exercise_cell(notebook)
    with course_jupyterlab(tmp_path, lab_args=["--LabApp.expose_app_in_browser=True"]) as url:
        base, token = url.split("/lab")[0], url.split("token=")[1]
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/lab/tree/{LESSON}/{LESSON}.ipynb?token={token}", timeout=120_000)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
                               "&& window.jupyterapp.shell.currentWidget.sessionContext.session "
                               "&& window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                               timeout=120_000)
        page.screenshot(path=str(ARTIFACTS / "lab-opened.png"))
        # No dialog or news pop-up covers the page on first start.
        assert page.locator(".jp-Dialog").count() == 0
        assert page.locator(".jp-toast-message, .Toastify__toast").count() == 0
        # Run every cell above the first exercise, as a learner would.
        page.evaluate(f"""async () => {{
            const w = window.jupyterapp.shell.currentWidget;
            await w.sessionContext.ready;
            w.content.activeCellIndex = {stop};
            await window.jupyterapp.commands.execute('notebook:run-all-above');
        }}""")
        deadline = time.time() + 300
        while time.time() < deadline:
            cells = page.evaluate(CELLS_JS)
            code = [c for c in cells[:stop] if c["type"] == "code"]
            status = page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status")
            if all(c["count"] for c in code) and status == "idle":
                break
            time.sleep(1)
        page.wait_for_timeout(2000)
        page.screenshot(path=str(ARTIFACTS / "lesson-run.png"), full_page=False)
        errors = [(i, o["ename"], o["evalue"]) for i, c in enumerate(cells[:stop])
                  for o in c["outputs"] if o["output_type"] == "error"]
        assert not errors, f"cells raised errors: {errors}"
        assert all(c["count"] for c in code), "not every cell ran within 5 minutes"
        # ipympl figures render as live canvases; s.plot() gives a navigator and a signal figure.
        figures = page.locator(".jupyter-matplotlib-figure")
        assert figures.count() >= 2, f"expected the navigator and the signal plots, found {figures.count()} figures"
        # A later plot closes the earlier figures of the same signal (their canvas
        # shrinks to nothing); the last navigator shown must be drawn.
        navigators = page.locator(".jupyter-matplotlib-figure", has_text="Navigator")
        assert navigators.count() >= 1, "no HyperSpy navigator figure"
        figure = navigators.last
        figure.scroll_into_view_if_needed()
        page.wait_for_timeout(1000)
        sizes = [c.bounding_box() for c in figure.locator("canvas").all()]
        assert any(b and b["width"] > 100 and b["height"] > 100 for b in sizes), f"canvas sizes: {sizes}"
        figure.screenshot(path=str(ARTIFACTS / "navigator-figure.png"))
        page.screenshot(path=str(ARTIFACTS / "navigator-in-lab.png"))
        # The memory indicator in the status bar.
        status_bar = page.locator("#jp-main-statusbar").inner_text()
        assert "Mem" in status_bar, f"no memory indicator in the status bar: {status_bar!r}"
        page.close()
