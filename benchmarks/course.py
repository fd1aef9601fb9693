"""The whole course on the grading preset: every solution notebook executed, lesson by lesson.

Each ``solutions/<lesson>/<lesson>.ipynb`` (:func:`lazysignals.lessons.lesson_names`)
is executed with nbclient in a copy of its folder (nothing is written into
the repository). The data folder starts empty: the first lesson that needs
data makes it, as on a learner's first run. The peak RSS of the kernel and of
every process it starts (dask workers in lesson 09) is measured with
:func:`lazysignals.measure.peak_memory` (``of="children"``), summed over the
processes. The time of each lesson includes starting its kernel. The
``lessons`` component runs the same on the workshop preset.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .harness import REPO, Component, Context, Result, failed, run_child, target

TARGET_SECONDS = 120


def child_execute(lessons: list, data: str, work: str, preset: str) -> dict:
    import nbformat
    from nbclient import NotebookClient

    from lazysignals.measure import peak_memory

    os.environ["LAZYSIGNALS_PRESET"] = preset
    os.environ["LAZYSIGNALS_DATA"] = data
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    rows = []
    for lesson in lessons:
        dst = Path(work) / lesson
        shutil.copytree(REPO / "solutions" / lesson, dst, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        nb = nbformat.read(dst / f"{lesson}.ipynb", as_version=4)
        client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(dst)}})
        error = None
        with peak_memory(interval=0.05, release=False, of="children") as mem:
            try:
                client.execute()
            except Exception as e:  # noqa: BLE001 - a failing lesson is a result, not a crash
                error = f"{type(e).__name__}: {str(e)[-400:]}"
        rows.append({"name": lesson, "seconds": round(mem.seconds, 2), "peak_rss_gb": round(mem.peak / 1e9, 2),
                     "cells": len(nb.cells), "ok": error is None, "error": error})
        print(f"  {lesson}: {rows[-1]['seconds']} s {'ok' if error is None else 'FAILED'}", flush=True)
    return {"rows": rows}


def execute(preset: str, data: Path) -> dict:
    """Every lesson on ``preset`` with its data in ``data``, in a fresh child process."""
    from lazysignals.lessons import lesson_names

    with tempfile.TemporaryDirectory(prefix="course-bench-") as work:
        return run_child("benchmarks.course:child_execute",
                         {"lessons": lesson_names(), "data": str(data), "work": work, "preset": preset})


def run(ctx: Context) -> Result:
    from lazysignals import manifest

    preset = manifest.preset_for("grading")
    with tempfile.TemporaryDirectory(prefix="course-bench-data-") as data:
        res = execute(preset, Path(data))
    if not res.get("ok"):
        return failed(res)
    rows = res["rows"]
    total = round(sum(r["seconds"] for r in rows), 2)
    bad = [r["name"] for r in rows if not r["ok"]]
    for r in rows:
        r["ratio"] = round(r["seconds"] / total, 3) if total else None
    rows.append({"name": f"total ({len(rows)} lessons)", "seconds": total, "ok": not bad, "ratio": 1.0})
    return {"ok": True, "preset": preset, "rows": rows, "ratio_meaning": "share of the total",
            "notes": [f"Failed: {', '.join(bad)}." if bad else f"All {len(rows) - 1} lessons ran without error."],
            "plot": {"value": "seconds", "label": "seconds"},
            "targets": [target(f"whole course on {preset}", f"<= {TARGET_SECONDS} s", total,
                               total <= TARGET_SECONDS and not bad)]}


COMPONENT = Component("course", "The whole course on the grading preset", True, run)
