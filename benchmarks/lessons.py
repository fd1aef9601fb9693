"""Every lesson on the workshop preset (7.38 GB): time and peak memory of each.

As the ``course`` component (:mod:`benchmarks.course`), on the manifest's
workshop preset, whose data (both formats, as ``start --preset workshop``
makes them) is made once in the benchmark data folder. Target: each lesson
within 5 minutes and 2 GB (kernel and the processes it starts).
"""

from __future__ import annotations

from pathlib import Path

from .course import execute
from .harness import Component, Context, Result, dataset, failed, target

LESSON_SECONDS, LESSON_RSS_GB = 300, 2.0


def run(ctx: Context) -> Result:
    from lazysignals import manifest

    preset = manifest.preset_for("workshop")
    dataset(ctx, preset, formats=("zspy", "hspy"))
    res = execute(preset, Path(ctx["data"]) / preset)
    if not res.get("ok"):
        return failed(res)
    rows, targets = res["rows"], []
    for r in rows:
        ok = r["ok"] and r["seconds"] <= LESSON_SECONDS and r["peak_rss_gb"] <= LESSON_RSS_GB
        targets.append(target(f"{r['name']} on {preset}: seconds, peak RSS GB",
                              f"<= {LESSON_SECONDS} s, <= {LESSON_RSS_GB} GB",
                              f"{r['seconds']:.0f} s, {r['peak_rss_gb']} GB", ok))
    return {"ok": True, "preset": preset, "rows": rows, "targets": targets, "ratio_meaning": "-",
            "plot": {"value": "peak_rss_gb", "label": "peak RSS, GB (kernel and its children)",
                     "line": LESSON_RSS_GB}}


def readme(res: Result) -> list[str]:
    rows = res["rows"]
    return ["| lesson | " + " | ".join(r["name"][:2] for r in rows) + " |",
            "|---|" + "---|" * len(rows),
            "| seconds | " + " | ".join(f"{r['seconds']:.0f}" for r in rows) + " |",
            "| peak RSS, GB | " + " | ".join(f"{r['peak_rss_gb']:.2f}" for r in rows) + " |"]


COMPONENT = Component("lessons", "Every lesson on the workshop preset: time and peak RSS", False, run, readme)
