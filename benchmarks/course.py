"""(d) The whole course executed lesson by lesson: on ``ci`` (component
``course``) and on the 7.38 GB ``workshop`` preset (component ``lessons``).

Each ``solutions/<lesson>/<lesson>.ipynb`` that exists is executed with
nbclient in a copy of its folder (nothing is written into the repository).
On ``ci`` the data folder starts empty: the first lesson that needs data
makes it, as on a learner's first run. On ``workshop`` the data folder of
the benchmarks is used (made once); the peak RSS of the kernel and of every
process it starts (dask workers in lesson 09) is sampled every 50 ms, summed
over the processes. The time of each lesson includes starting its kernel.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from .common import REPO, run_child, target

TARGET_SECONDS = 120
#: Each lesson on the workshop preset: time and memory (kernel and its children).
LESSON_SECONDS, LESSON_RSS_GB = 300, 2.0


class _TreeRSS:
    """Peak of the summed RSS of this process's descendants (the kernel and its children)."""

    def __init__(self):
        import threading

        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in me.children(recursive=True):
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def child_execute(lessons: list, data: str, work: str, preset: str = "ci") -> dict:
    import nbformat
    from nbclient import NotebookClient

    os.environ["LAZYSIGNALS_PRESET"] = preset
    os.environ["LAZYSIGNALS_DATA"] = data
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    rows = []
    for lesson in lessons:
        src = REPO / "solutions" / lesson
        dst = Path(work) / lesson
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        nb = nbformat.read(dst / f"{lesson}.ipynb", as_version=4)
        client = NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(dst)}})
        t0 = time.perf_counter()
        error = None
        with _TreeRSS() as rss:
            try:
                client.execute()
            except Exception as e:  # noqa: BLE001 - a failing lesson is a result, not a crash
                error = f"{type(e).__name__}: {str(e)[-400:]}"
        rows.append({"name": lesson, "seconds": round(time.perf_counter() - t0, 2),
                     "peak_rss_gb": round(rss.peak / 1e9, 2),
                     "cells": len(nb.cells), "ok": error is None, "error": error})
        print(f"  {lesson}: {rows[-1]['seconds']} s {'ok' if error is None else 'FAILED'}", flush=True)
    return {"rows": rows}


def _lessons() -> list:
    return sorted(p.name for p in (REPO / "solutions").iterdir() if (p / f"{p.name}.ipynb").exists())


def run_workshop(ctx) -> dict:
    """Every lesson on the workshop preset: <= 5 minutes and <= 2 GB each."""
    from lazysignals.data import synthetic_path

    data = Path(ctx["data"]) / "workshop"
    for fmt in ("zspy", "hspy"):  # made once, as `start --preset workshop` does
        synthetic_path("workshop", fmt=fmt, dest=data, progress=False)
    lessons = _lessons()
    with tempfile.TemporaryDirectory(prefix="course-bench-") as work:
        res = run_child("benchmarks.course:child_execute",
                        {"lessons": lessons, "data": str(data), "work": work, "preset": "workshop"})
    if not res.get("ok"):
        return {"ok": False, "error": res.get("error"), "child": res}
    rows, targets = res["rows"], []
    for r in rows:
        ok = r["ok"] and r["seconds"] <= LESSON_SECONDS and r["peak_rss_gb"] <= LESSON_RSS_GB
        targets.append(target(f"{r['name']} on workshop: seconds, peak RSS GB",
                              f"<= {LESSON_SECONDS} s, <= {LESSON_RSS_GB} GB",
                              f"{r['seconds']:.0f} s, {r['peak_rss_gb']} GB", ok))
    return {"ok": True, "preset": "workshop", "rows": rows, "targets": targets,
            "ratio_meaning": "-"}


def run(ctx) -> dict:
    lessons = _lessons()
    with tempfile.TemporaryDirectory(prefix="course-bench-") as tmp:
        data, work = Path(tmp) / "data", Path(tmp) / "work"
        data.mkdir()
        work.mkdir()
        res = run_child("benchmarks.course:child_execute",
                        {"lessons": lessons, "data": str(data), "work": str(work)})
    if not res.get("ok"):
        return {"ok": False, "error": res.get("error"), "child": res}
    rows = res["rows"]
    total = round(sum(r["seconds"] for r in rows), 2)
    failed = [r["name"] for r in rows if not r["ok"]]
    for r in rows:
        r["ratio"] = round(r["seconds"] / total, 3) if total else None
    rows.append({"name": f"total ({len(lessons)} of 11 lessons)", "seconds": total, "ok": not failed, "ratio": 1.0})
    return {"ok": True, "preset": "ci", "rows": rows, "lessons_run": lessons, "failed": failed,
            "ratio_meaning": "share of the total",
            "targets": [target(f"whole course on ci ({len(lessons)} lessons present)", f"<= {TARGET_SECONDS} s",
                               total, total <= TARGET_SECONDS and not failed)]}
