"""The course in JupyterLab, worked through as a learner does: the lab's memory
after lessons 00 to 10, and the time of the 90-minute core track, on ``binder``.

    python -m benchmarks --only lab

One JupyterLab, started as learners start it (``python -m lazysignals start
--preset binder``, with the course's lab settings; its user settings,
workspaces and runtime files in a scratch folder), driven by Chromium through
Playwright. Each lesson's solution notebook (the answers filled in, as by a
learner who did the exercises; a scratch copy) is opened, its code cells are
run one after the other as Shift+Enter runs them, and its tab is closed; the
course's settings shut the kernel down when the tab closes.

Memory: what the lab's memory indicator shows (jupyter-resource-usage,
``/api/metrics/v1``: the RSS of the server and every process under it,
kernels and dask workers included) after each lesson's tab is closed, and the
most it showed while the lesson ran (sampled every second). The browser is
not counted: it runs on the learner's machine, not in the Binder pod.
Target: under 1.2 GB all along (a Binder pod has 2 GB).

Time: each code cell's run time in the browser, from the run command to the
kernel's reply. A cell belongs to an *Extension* section when a
``> **Extension**`` mark stands above the section's heading (until the next
heading); everything else is core. A lesson's
core-track time is its reading time (words of the prose in its core
sections at 200 words a minute) plus the time learners wait for cells: the
core cells and, as docs/AGENDAS.md tells them, the code cells of extension
sections run without stopping (not the answer and test cells of extension
exercises). Not included: thinking about and typing the answers of the core
exercises, and what the instructor says. Lessons whose stated core-track
minutes are 0 (09, 10) are outside the core track; they are run for the
memory figure only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from .harness import REPO, Component, Context, Result, target

PRESET = "binder"
MEMORY_LIMIT_GB = 1.2
CORE_SLOT_MINUTES = 90
WORDS_PER_MINUTE = 200
CELL_SECONDS = 900  # one cell at most; a lesson that hangs is reported, not waited for
MARK = "> **Extension**"
CHROMIUM = os.environ.get("LAZYSIGNALS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# --------------------------------------------------------------------------
# The lesson's text: sections, prose words, stated minutes
# --------------------------------------------------------------------------


def cell_sections(cells: list[dict]) -> list[bool]:
    """For each cell of a notebook (nbformat dicts), whether it is in an *Extension* section.

    A section starts at a heading, of any level, and ends at the next one; it
    is an extension when a ``> **Extension**`` mark stands above its heading
    (in the heading's cell or alone in the cell before). The lessons mark each
    exercise (a level-3 heading) of their own, so an unmarked exercise after
    an extension section is core.
    """
    marked, pending, out = False, False, []
    for cell in cells:
        in_extension = marked
        if cell["cell_type"] == "markdown":
            fenced = False
            for line in "".join(cell["source"]).splitlines():
                if line.lstrip().startswith("```"):
                    fenced = not fenced
                if fenced:
                    continue
                if line.startswith(MARK):
                    pending = True
                    in_extension = True
                if re.match(r"^#+\s", line):
                    marked, pending = pending, False
                    in_extension = marked
        out.append(in_extension)
    return out


def prose_words(text: str) -> int:
    """Words of a markdown cell as a reader meets them (no link targets, no markup)."""
    text = re.sub(r"\]\([^)]*\)", "]", text)  # [label](url): the label is read
    text = re.sub(r"<https?://[^>]*>|https?://\S+", " ", text)
    return len(re.findall(r"[A-Za-z0-9]+(?:['\u2019.-][A-Za-z0-9]+)*", text))


def stated_core_minutes(cells: list[dict]) -> int | None:
    """The lesson's ``**Core track:** N minutes``, near its top."""
    top = "\n".join("".join(c["source"]) for c in cells[:4] if c["cell_type"] == "markdown")
    found = re.search(r"\*\*Core track:\*\*\s*(\d+) minutes", top)
    return int(found.group(1)) if found else None


def is_exercise_cell(cell: dict) -> bool:
    """An nbgrader answer or test cell."""
    nbgrader = cell.get("metadata", {}).get("nbgrader", {})
    return bool(nbgrader.get("solution") or nbgrader.get("grade"))


# --------------------------------------------------------------------------
# The lab and the browser
# --------------------------------------------------------------------------

OPEN_JS = """async (path) => {
  const app = window.jupyterapp;
  const w = await app.commands.execute('docmanager:open', {path, factory: 'Notebook'});
  await w.context.ready;
  await w.sessionContext.ready;
  app.shell.activateById(w.id);
  return w.id;
}"""
IDLE_JS = """() => { const w = window.jupyterapp.shell.currentWidget; return w && w.sessionContext.session
  && w.sessionContext.session.kernel && w.sessionContext.session.kernel.status === 'idle'; }"""
# Run one cell as Shift+Enter does (without moving on); seconds until the kernel's reply.
RUN_CELL_JS = """async ([i, limit]) => {
  const app = window.jupyterapp;
  const nb = app.shell.currentWidget.content;
  nb.activeCellIndex = i;
  nb.deselectAll();
  const t0 = performance.now();
  const ran = app.commands.execute('notebook:run-cell');
  const late = new Promise((resolve) => setTimeout(() => resolve('timeout'), limit * 1000));
  const how = await Promise.race([ran, late]);
  return {seconds: (performance.now() - t0) / 1000, timeout: how === 'timeout'};
}"""
ERRORS_JS = """() => {
  const cells = window.jupyterapp.shell.currentWidget.content.model.sharedModel.cells;
  const out = [];
  cells.forEach((c, i) => { for (const o of (c.outputs || []))
    if (o.output_type === 'error') out.push(`cell ${i}: ${o.ename}: ${String(o.evalue).slice(0, 200)}`); });
  return out;
}"""
# Close the lesson's tab as a learner does (the course's settings shut its kernel down) and wait up to 30 s
# for the kernel to go; returns how many kernels were still running, then shuts those down so that the
# next lesson starts from a clean lab. The browser test uses it too.
CLOSE_JS = """async () => {
  const app = window.jupyterapp;
  const w = app.shell.currentWidget;
  w.context.model.dirty = false;  // a scratch copy: no "save changes?" dialog
  w.close();
  for (let i = 0; i < 150; i++) {
    await app.serviceManager.kernels.refreshRunning();
    if (Array.from(app.serviceManager.kernels.running()).length === 0) return 0;
    await new Promise(r => setTimeout(r, 200));
  }
  const left = Array.from(app.serviceManager.kernels.running()).length;
  for (const k of app.serviceManager.kernels.running()) await app.serviceManager.kernels.shutdown(k.id);
  return left;
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(scratch: Path, data: Path, root: Path) -> tuple[subprocess.Popen, str]:
    """``python -m lazysignals start`` on 127.0.0.1 serving ``root``; the process and its URL."""
    port = _free_port()
    env = {**os.environ, "LAZYSIGNALS_DATA": str(data), "LAZYSIGNALS_PRESET": PRESET,
           "JUPYTER_RUNTIME_DIR": str(scratch / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(scratch / "lab-user-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(scratch / "lab-workspaces")}
    env.pop("MPLBACKEND", None)
    log = scratch / "lab.log"
    cmd = [sys.executable, "-m", "lazysignals", "start", "--no-browser", "--preset", PRESET,
           "--port", str(port), "--", "--LabApp.expose_app_in_browser=True", f"--ServerApp.root_dir={root}"]
    with open(log, "w") as out:  # a file, not a pipe: a long session's log never blocks the server
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.time() + 600  # the first run makes the binder dataset
    while time.time() < deadline and proc.poll() is None:
        found = re.search(rf"(http://127\.0\.0\.1:{port}/lab\S*\?token=\w+)", log.read_text())
        if found:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                return proc, found.group(1)
            except OSError:
                pass
        time.sleep(0.5)
    stop_lab(proc)
    raise RuntimeError("JupyterLab did not start:\n" + log.read_text()[-3000:])


def stop_lab(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class Indicator:
    """The lab's memory indicator (jupyter-resource-usage), read as the page reads it.

    A thread reads it every ``interval`` seconds and keeps the largest value
    since :meth:`reset`.
    """

    def __init__(self, base: str, token: str, interval: float = 1.0):
        self.url, self.token, self.interval = f"{base}/api/metrics/v1", token, interval
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True, name="lab-memory")
        self._thread.start()

    def now(self) -> int:
        request = urllib.request.Request(self.url, headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            return int(json.loads(reply.read())["rss"])

    def reset(self) -> None:
        self.peak = self.now()

    def _sample(self):
        while not self._stop.wait(self.interval):
            try:
                self.peak = max(self.peak, self.now())
            except OSError:
                pass

    def close(self):
        self._stop.set()
        self._thread.join()


def run_lesson(page, lesson: str, nb: dict, indicator: Indicator) -> dict:
    """Open a lesson, run its code cells in order, close its tab; what it cost."""
    indicator.reset()
    t0 = time.perf_counter()
    page.evaluate(OPEN_JS, f"{lesson}/{lesson}.ipynb")
    page.wait_for_function(IDLE_JS, timeout=180_000, polling=200)
    opened = time.perf_counter() - t0
    cells = nb["cells"]
    extension = cell_sections(cells)
    times = {"core": 0.0, "extension_run": 0.0, "extension_exercises": 0.0}
    timeout = None
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        ran = page.evaluate(RUN_CELL_JS, [i, CELL_SECONDS])
        if ran["timeout"]:
            timeout = f"cell {i} still running after {CELL_SECONDS} s"
            break
        page.wait_for_function(IDLE_JS, timeout=CELL_SECONDS * 1000, polling=100)
        part = "core" if not extension[i] else "extension_exercises" if is_exercise_cell(cell) else "extension_run"
        times[part] += ran["seconds"]
    page.wait_for_timeout(1500)  # the last figures arrive over the widget comm
    errors = page.evaluate(ERRORS_JS)
    while_open = indicator.peak
    kernels_left = page.evaluate(CLOSE_JS)
    time.sleep(2)  # the server lets go of the kernel's memory
    after = indicator.now()
    words = sum(prose_words("".join(c["source"])) for c, ext in zip(cells, extension)
                if c["cell_type"] == "markdown" and not ext)
    stated = stated_core_minutes(cells)
    reading = words / WORDS_PER_MINUTE
    waiting = (times["core"] + times["extension_run"]) / 60
    row = {"name": lesson, "seconds": round(sum(times.values()), 1), "open_seconds": round(opened, 1),
           "core_seconds": round(times["core"], 1), "extension_run_seconds": round(times["extension_run"], 1),
           "extension_exercise_seconds": round(times["extension_exercises"], 1),
           "core_words": words, "reading_minutes": round(reading, 1),
           "stated_core_minutes": stated,
           "core_track_minutes": round(reading + waiting, 1) if stated else None,
           "lab_gb_after": round(after / 1e9, 3), "lab_gb_peak": round(max(while_open, after) / 1e9, 3),
           "kernels_left": kernels_left, "errors": errors[:5], "ok": not errors and not timeout and not kernels_left}
    if timeout:
        row["errors"].append(timeout)
    print(f"  {lesson}: cells {row['seconds']} s (core {row['core_seconds']} s), reading {row['reading_minutes']} min, "
          f"lab {row['lab_gb_peak']} GB at most, {row['lab_gb_after']} GB after closing"
          + (f"; PROBLEMS {row['errors']}" if not row["ok"] else ""), flush=True)
    return row


def walk_through(lessons: list[str], data: Path) -> dict:
    """Every lesson in turn in one JupyterLab and one browser page."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"No Chromium at {CHROMIUM}: install Debian's chromium or set LAZYSIGNALS_CHROMIUM.")
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as scratch:
        scratch = Path(scratch)
        root = scratch / "course"
        for lesson in lessons:
            (root / lesson).mkdir(parents=True)
            shutil.copy(REPO / "solutions" / lesson / f"{lesson}.ipynb", root / lesson)
        proc, url = start_lab(scratch, data, root)
        base, token = url.split("/lab")[0], url.split("token=")[1]
        indicator = Indicator(base, token)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.goto(url, timeout=180_000)
                page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=180_000)
                page.wait_for_selector("#jp-main-statusbar", timeout=180_000)
                time.sleep(2)
                start_gb = indicator.now() / 1e9
                rows = []
                for lesson in lessons:
                    nb = json.loads((root / lesson / f"{lesson}.ipynb").read_text(encoding="utf-8"))
                    rows.append(run_lesson(page, lesson, nb, indicator))
                browser.close()
        finally:
            indicator.close()
            stop_lab(proc)
    return {"rows": rows, "lab_gb_start": round(start_gb, 3)}


# --------------------------------------------------------------------------
# The component
# --------------------------------------------------------------------------


def run(ctx: Context) -> Result:
    from lazysignals.lessons import lesson_names

    data = Path(ctx["data"]) / PRESET  # made once by `start`, kept with the other benchmark data
    data.mkdir(parents=True, exist_ok=True)
    res = walk_through(lesson_names(), data)
    rows = res["rows"]
    core = [r for r in rows if r["core_track_minutes"] is not None]
    core_total = round(sum(r["core_track_minutes"] for r in core), 1)
    reading_total = round(sum(r["reading_minutes"] for r in core), 1)
    waiting_total = round(core_total - reading_total, 1)
    peak = max(r["lab_gb_peak"] for r in rows)
    last = rows[-1]["lab_gb_after"]
    bad = [r["name"] for r in rows if not r["ok"]]
    targets = [
        target(f"lab memory indicator after lessons {rows[0]['name'][:2]}-{rows[-1]['name'][:2]}, tabs closed",
               f"< {MEMORY_LIMIT_GB} GB", last, last < MEMORY_LIMIT_GB),
        target("lab memory indicator at most, while any lesson ran", f"< {MEMORY_LIMIT_GB} GB", peak,
               peak < MEMORY_LIMIT_GB),
        target(f"core track: reading ({WORDS_PER_MINUTE} words/min) + waiting for cells, minutes",
               f"<= {CORE_SLOT_MINUTES} min, with time left for the exercises", core_total,
               core_total < CORE_SLOT_MINUTES),
        target("every lesson ran without an error, its kernel shut down with its tab", "no failure",
               ", ".join(bad) or "none", not bad),
    ]
    notes = [f"The lab's memory indicator showed {res['lab_gb_start']:.2f} GB before the first lesson, "
             f"{last:.2f} GB after the last lesson's tab closed and {peak:.2f} GB at most while a lesson ran.",
             f"Core track: {reading_total:.0f} min reading and {waiting_total:.1f} min waiting for cells, "
             f"{core_total:.0f} min of the {CORE_SLOT_MINUTES}: {CORE_SLOT_MINUTES - core_total:.0f} min are left "
             "for the core exercises and the instructor."]
    return {"ok": True, "preset": PRESET, "rows": rows, "targets": targets, "notes": notes, "ratio_meaning": "-",
            "plot": {"value": "lab_gb_peak", "label": "lab memory indicator at most while the lesson ran, GB",
                     "line": MEMORY_LIMIT_GB},
            "details": {"lab_gb_start": res["lab_gb_start"], "core_track_minutes": core_total,
                        "reading_minutes": reading_total, "waiting_minutes": waiting_total,
                        "words_per_minute": WORDS_PER_MINUTE}}


def readme(res: Result) -> list[str]:
    """The table for docs/AGENDAS.md."""
    rows, d = res["rows"], res["details"]

    def cell(value, fmt):
        return "-" if value is None else format(value, fmt)

    return ["| lesson | " + " | ".join(r["name"][:2] for r in rows) + " |",
            "|---|" + "---|" * len(rows),
            "| stated core minutes | " + " | ".join(cell(r["stated_core_minutes"] or None, "d") for r in rows) + " |",
            "| reading, min | " + " | ".join(cell(r["reading_minutes"] if r["core_track_minutes"] is not None
                                                 else None, ".0f") for r in rows) + " |",
            "| waiting for cells, min | " + " | ".join(
                cell((r["core_seconds"] + r["extension_run_seconds"]) / 60 if r["core_track_minutes"] is not None
                     else None, ".1f") for r in rows) + " |",
            "| core track, min | " + " | ".join(cell(r["core_track_minutes"], ".0f") for r in rows) + " |",
            "| every cell run, s | " + " | ".join(f"{r['seconds']:.0f}" for r in rows) + " |",
            "| lab memory at most, GB | " + " | ".join(f"{r['lab_gb_peak']:.2f}" for r in rows) + " |",
            "| lab memory, tab closed, GB | " + " | ".join(f"{r['lab_gb_after']:.2f}" for r in rows) + " |",
            "",
            f"Core track: {d['core_track_minutes']:.0f} minutes of the {CORE_SLOT_MINUTES} "
            f"({d['reading_minutes']:.0f} reading at {d['words_per_minute']} words a minute, "
            f"{d['waiting_minutes']:.1f} waiting for cells), leaving "
            f"{CORE_SLOT_MINUTES - d['core_track_minutes']:.0f} for the core exercises and the instructor. "
            f"The lab's memory indicator started at {d['lab_gb_start']:.2f} GB."]


COMPONENT = Component("lab", "The course in JupyterLab as a learner: lab memory after 00-10, core-track time",
                      False, run, readme)
