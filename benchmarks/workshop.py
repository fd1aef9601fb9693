"""The course's sequence against the original workshop notebook's, both run here on the same file.

The steps of :mod:`benchmarks.pipeline` (the course's way) and of
:mod:`benchmarks.original` (the original notebook's plain HyperSpy calls,
pixel units on the detector) run one after the other in the same
invocation, each in a fresh child process (Agg backend), after every file
of the store has been read once (so that the side that runs first does not
pay the disk for both), each step with its
wall time, CPU time and peak RSS; every ratio is course / original from this
run. The plain lazy sums from .zspy and .hspy follow, each in its own
process: the .zspy sum is the read floor that every whole-dataset pass is
measured against. HyperSpy's ``multifit`` also runs beside the course's fast
fit on a subset of the same profiles, for speed and agreement.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .harness import GB, Component, Context, Result, dataset, failed, ratio, run_child, target

STEPS = ["plot", "adf", "transpose", "rebin", "com", "com_threshold", "crops", "fit", "one_pass", "adf_roi"]
RSS_TARGET_GB = 1.5
#: Measured for comparison, outside the sequence: the ADF through CircleROI on
#: lazy data, which lesson 03 shows and replaces by a ring mask.
REFERENCE_ONLY = {"adf_roi"}
#: Lesson 09's way of running the analysis: ADF, rebin, both centre-of-mass maps and the fit from one
#: read of every chunk. The second whole sequence counts it in place of those steps.
ONE_PASS = "one_pass"
ONE_PASS_REPLACES = {"adf", "rebin", "com", "com_threshold", "fit"}
#: The whole course sequence, as a share of the original's time in the same run.
WHOLE_TARGET = 0.2
#: Steps that read the whole dataset, and their target in multiples of the read floor.
FULL_PASSES = ("adf", "rebin", "com", "com_threshold")
FLOOR_TARGET = 2.0


def run(ctx: Context) -> Result:
    from lazysignals import manifest

    from . import sum as lazysum

    preset = manifest.preset_for("workshop")
    path = dataset(ctx, preset)["zspy"]
    warmed = warm_page_cache(path)
    results = Path(ctx["data"]) / "workshop-results"  # what the course's steps write (rebinned data); removed after
    results.mkdir(parents=True, exist_ok=True)
    try:
        res = run_child("benchmarks.pipeline:child",
                        {"path": str(path), "steps": STEPS, "memory_budget": RSS_TARGET_GB * GB,
                         "result_dir": str(results), "fit_subset": ctx.get("fit_subset", 2000)})
    finally:
        shutil.rmtree(results, ignore_errors=True)
    if not res.get("ok"):
        return failed(res)
    orig = run_child("benchmarks.original:child", {"path": str(path)})
    if not orig.get("ok"):
        return failed(orig)
    sums = lazysum.measure(ctx, preset)
    floor = next(r["seconds"] for r in sums["rows"] if r["name"] == "lazy sum from .zspy")
    base = {r["key"]: r for r in orig["steps"]}
    rows, targets = [], []
    for r in res["steps"]:
        key = r.get("key")
        b = base.get(key, {})
        row = {"name": r["step"], "key": key, "seconds": r["seconds"], "cpu_seconds": r.get("cpu_seconds"),
               "peak_rss_gb": r["peak_rss_gb"], "original_s": b.get("seconds"),
               "original_rss_gb": b.get("peak_rss_gb"), "ratio": ratio(r["seconds"], b.get("seconds")),
               "over_floor": ratio(r["seconds"], floor), "original_over_floor": ratio(b.get("seconds"), floor)}
        for extra in ("how", "profiles", "fits_per_s", "chunks_read", "chunks_total", "MB_read"):
            if extra in r:
                row[extra] = r[extra]
        if key in REFERENCE_ONLY or key == ONE_PASS:
            row["not_in_whole"] = True
        rows.append(row)
        if key in FULL_PASSES:
            targets.append(target(f"{key}: time / read floor (lazy .zspy sum, same run)", f"<= {FLOOR_TARGET:g}",
                                  row["over_floor"], row["over_floor"] is not None and row["over_floor"] <= FLOOR_TARGET))
    counted = [r for r in rows if not r.get("not_in_whole")]
    whole = sum(r["seconds"] for r in counted)
    whole_orig = sum(r["seconds"] for r in orig["steps"])
    peak = max(r["peak_rss_gb"] for r in rows if r["key"] not in REFERENCE_ONLY)
    peak_orig = max(r["peak_rss_gb"] for r in orig["steps"])
    whole_ratio = ratio(whole, whole_orig)
    rows.append({"name": "whole sequence, step by step (lessons 03-08)", "key": "whole", "seconds": round(whole, 2),
                 "cpu_seconds": round(sum(r["cpu_seconds"] or 0 for r in counted), 1), "peak_rss_gb": peak,
                 "original_s": round(whole_orig, 2), "original_rss_gb": peak_orig, "ratio": whole_ratio})
    fused = [r for r in counted if r["key"] not in ONE_PASS_REPLACES] + [r for r in rows if r["key"] == ONE_PASS]
    fused_ratio = None
    if any(r["key"] == ONE_PASS for r in fused):
        fused_s = sum(r["seconds"] for r in fused)
        fused_ratio = ratio(fused_s, whole_orig)
        rows.append({"name": "whole sequence, analysis in one pass (lesson 09)", "key": "whole_one_pass",
                     "seconds": round(fused_s, 2), "cpu_seconds": round(sum(r["cpu_seconds"] or 0 for r in fused), 1),
                     "peak_rss_gb": max(r["peak_rss_gb"] for r in fused), "original_s": round(whole_orig, 2),
                     "original_rss_gb": peak_orig, "ratio": fused_ratio})
    for r in sums["rows"]:
        if r["name"].startswith("lazy sum"):
            first_whole = next(i for i, row in enumerate(rows) if row["key"].startswith("whole"))
            rows.insert(first_whole, {"name": r["name"] + (" (read floor)" if "zspy" in r["name"] else ""),
                             "key": "sum_" + r["name"].split(".")[-1], "seconds": r["seconds"],
                             "peak_rss_gb": r["peak_rss_gb"], "over_floor": ratio(r["seconds"], floor),
                             "GB/s": r["GB/s"], "not_in_whole": True})
    targets.append(target("whole sequence step by step / original's (same run)", f"<= {WHOLE_TARGET:g}", whole_ratio,
                          whole_ratio is not None and whole_ratio <= WHOLE_TARGET))
    if fused_ratio is not None:
        same = res.get("one_pass", {}).get("identical_to_step_by_step", {})
        targets.append(target("whole sequence with lesson 09's one pass / original's (same run)",
                              f"<= {WHOLE_TARGET:g}", fused_ratio, fused_ratio <= WHOLE_TARGET))
        targets.append(target("one pass gives results identical to the steps (" + ", ".join(sorted(same)) + ")",
                              "identical", "identical" if same and all(same.values()) else f"differs: {same}",
                              bool(same) and all(same.values())))
    targets.append(target("peak RSS of any step (GB)", f"<= {RSS_TARGET_GB}", peak, peak <= RSS_TARGET_GB))
    mf = res.get("multifit_comparison")
    fit_row = next((r for r in rows if r["key"] == "fit"), None)
    if mf and fit_row:
        speed = ratio(fit_row["fits_per_s"], mf["multifit_fits_per_s"])
        targets.append(target("fast fit of every profile / multifit, fits per second (same run)", ">= 4",
                              speed, speed is not None and speed >= 4))
        targets.append(target(f"profiles where fast fit and multifit agree within {mf['tolerance']:g} "
                              "(relative; centre relative to sigma)", "1.0",
                              round(mf["share_of_profiles_within_tolerance"], 4),
                              mf["share_of_profiles_within_tolerance"] >= 0.99))
    _print(rows, targets)
    return {"ok": True, "preset": preset, "rows": rows, "targets": targets, "notes": _multifit_notes(mf),
            "ratio_meaning": "course time / the original notebook's time, both measured in this run (< 1 = faster)",
            "plot": {"value": "ratio", "label": "course / original (same run)", "line": WHOLE_TARGET},
            "details": {**{k: v for k, v in res.items() if k != "steps"}, "original": orig, "sums": sums,
                        "page_cache_warmed_bytes": warmed}}


def warm_page_cache(path) -> int:
    """Read every file of the store once, so that neither side pays the disk for going first; bytes read."""
    total = 0
    for f in sorted(Path(path).rglob("*")):
        if f.is_file():
            with open(f, "rb") as fh:
                while block := fh.read(1 << 24):
                    total += len(block)
    return total


def _print(rows, targets) -> None:
    def num(v, fmt):
        return format(v, fmt) if v is not None else "-".rjust(int(fmt.split(".")[0]))

    print(f"   {'step':<78}{'course s':>9}{'orig. s':>9}{'ratio':>7}{'/floor':>8}")
    for r in rows:
        print(f"   {r['name'][:77]:<78}{num(r['seconds'], '9.2f')}{num(r.get('original_s'), '9.2f')}"
              f"{num(r.get('ratio'), '7.2f')}{num(r.get('over_floor'), '8.2f')}")
    for t in targets:
        print(f"   [{'met' if t['met'] else 'NOT met'}] {t['what']}: {t['measured']} (target {t['target']})")


def _multifit_notes(mf: dict | None) -> list[str]:
    if not mf:
        return []
    worst = ", ".join(f"{k} {v['max']:.2g}" for k, v in mf["relative_differences"].items())
    return [f"multifit vs fast fit on the same {mf['profiles']} profiles ({mf['points_per_profile']} points, "
            f"same starting values): multifit {mf['multifit_fits_per_s']} fits/s, fast fit "
            f"{mf['fast_fits_per_s']} fits/s ({mf['speedup']}x); {mf['share_of_profiles_within_tolerance']:.2%} "
            f"of profiles agree within {mf['tolerance']:g} (largest relative difference: {worst})."]


def _seconds(v) -> str:
    return "-" if v is None else f"{v:.2g} s" if v < 1 else f"{v:.1f} s"


def _cpu(res: Result, key: str, side: str):
    """CPU seconds of one step (``side`` "course" or "original"), from the run's own rows."""
    if side == "course":
        return next((r.get("cpu_seconds") for r in res["rows"] if r.get("key") == key), None)
    return next((r.get("cpu_seconds") for r in res.get("details", {}).get("original", {}).get("steps", [])
                 if r.get("key") == key), None)


def readme(res: Result) -> list[str]:
    """The step table (wall seconds, both sides, ratio; CPU seconds beside), the targets, the multifit note."""
    orig_steps = res.get("details", {}).get("original", {}).get("steps", [])
    lines = ["| step | here | original | ratio | CPU s here / original | peak RSS GB here / original |",
             "|---|---|---|---|---|---|"]
    for r in res["rows"]:
        key = r.get("key")
        bold = key.startswith("whole")
        if bold:
            cpu_here = r.get("cpu_seconds")
            cpu_orig = round(sum(s.get("cpu_seconds") or 0 for s in orig_steps), 1) if orig_steps else None
        else:
            cpu_here, cpu_orig = r.get("cpu_seconds"), _cpu(res, key, "original")
        cpu = "-" if cpu_here is None else f"{cpu_here:.1f} / {'-' if cpu_orig is None else f'{cpu_orig:.1f}'}"
        name = r["name"] + (" (not in the step-by-step sequence)" if key == ONE_PASS else
                            " (not in the sequence)" if r.get("not_in_whole") and not key.startswith("sum") else "")
        rss = f"{r['peak_rss_gb']:.2f} / " + ("-" if r.get("original_rss_gb") is None else f"{r['original_rss_gb']:.2f}")
        cells = [name, _seconds(r["seconds"]), _seconds(r.get("original_s")),
                 "-" if r.get("ratio") is None else f"{r['ratio']:.2f}", cpu, rss]
        lines.append("| " + " | ".join(f"**{c}**" if bold else c for c in cells) + " |")
    lines += ["", "| target (this run) | goal | measured | |", "|---|---|---|---|"]
    for t in res.get("targets", []):
        lines.append(f"| {t['what']} | {t['target']} | {t['measured']} | {'met' if t['met'] else 'NOT met'} |")
    lines += [""] + list(res.get("notes", []))
    return lines


COMPONENT = Component("workshop", "The original workshop sequence on the workshop preset", True, run, readme)
