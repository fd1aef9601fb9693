"""(d) The whole course executed on the ``ci`` preset, lesson by lesson.

Each ``solutions/<lesson>/<lesson>.ipynb`` that exists is executed with
nbclient in a copy of its folder (nothing is written into the repository),
with ``LAZYSIGNALS_PRESET=ci`` and a fresh, empty ``LAZYSIGNALS_DATA``: the
first lesson that needs data makes it, as on a learner's first run. The
time of each lesson includes starting its kernel.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from .common import REPO, run_child, target

TARGET_SECONDS = 120


def child_execute(lessons: list, data: str, work: str) -> dict:
    import nbformat
    from nbclient import NotebookClient

    os.environ["LAZYSIGNALS_PRESET"] = "ci"
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
        try:
            client.execute()
        except Exception as e:  # noqa: BLE001 - a failing lesson is a result, not a crash
            error = f"{type(e).__name__}: {str(e)[-400:]}"
        rows.append({"name": lesson, "seconds": round(time.perf_counter() - t0, 2),
                     "cells": len(nb.cells), "ok": error is None, "error": error})
        print(f"  {lesson}: {rows[-1]['seconds']} s {'ok' if error is None else 'FAILED'}", flush=True)
    return {"rows": rows}


def run(ctx) -> dict:
    lessons = sorted(p.name for p in (REPO / "solutions").iterdir()
                     if (p / f"{p.name}.ipynb").exists())
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
