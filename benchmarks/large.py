"""Out of core: the lesson pipeline on the manifest's out-of-core preset under a hard memory cap.

The preset (``large``: 512 x 512 probe positions, 256 x 256 detector, uint16:
34.4 GB uncompressed) is made once into the benchmark data folder (timed, no
cap: generation is not what is demonstrated), then the pipeline of
:mod:`benchmarks.pipeline` runs in a child process that the operating system
stops if it needs more than the cap (:class:`lazysignals.measure.MemoryCap`:
cgroup v2 through systemd, cgroup v1, or ``RLIMIT_AS``; the result says which).
The rebinned result (4.3 GB as uint32) cannot be held in 2 GB, so that step
saves it to a .zspy on disk, out of core, and the file is removed afterwards.
The report gives: did it finish, peak RSS per step, the cgroup's own peak
(cgroup v1: ``memory.max_usage_in_bytes``, which also counts page cache the
kernel could reclaim), OOM kills, and wall time.

The ADF image is computed the way lesson 03 computes a whole-scan image (a
ring mask times the signal, summed): HyperSpy's ``CircleROI`` on lazy data
builds its NaN mask as large as the scan for every detector chunk and would
be killed under the cap.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from .harness import GB, Component, Context, Result, dir_size, run_child, target

STEPS = ["plot", "adf", "rebin", "com", "crops", "fit"]


def child_generate(preset: str, dest: str) -> dict:
    from lazysignals.data import prepare

    t0 = time.perf_counter()
    path = prepare(preset, formats=("zspy",), dest=Path(dest), progress=False)["zspy"]
    return {"seconds": round(time.perf_counter() - t0, 1), "path": str(path)}


def run(ctx: Context) -> Result:
    from lazysignals import manifest

    preset = manifest.preset_for("out_of_core")
    dest = Path(ctx["data"]) / preset
    free = shutil.disk_usage(Path(ctx["data"])).free
    gen = run_child("benchmarks.large:child_generate", {"preset": preset, "dest": str(dest)})
    if not gen.get("ok"):
        return {"ok": False, "error": f"could not make the large preset: {gen.get('error')}",
                "free_disk_gb": round(free / GB, 1)}
    stored = dir_size(gen["path"])
    work = dest / "results"
    work.mkdir(parents=True, exist_ok=True)
    cap = ctx["memory_cap"]
    res = run_child("benchmarks.pipeline:child",
                    {"path": gen["path"], "steps": STEPS, "result_dir": str(work),
                     "memory_budget": cap * 0.75, "fit_subset": 0},
                    memory_cap=cap)
    shutil.rmtree(work, ignore_errors=True)
    capinfo = res.get("memory_cap", {})
    rows = [{"name": r["step"], "key": r.get("key"), "seconds": r["seconds"],
             "cpu_seconds": r.get("cpu_seconds"), "peak_rss_gb": r["peak_rss_gb"],
             "ratio": round(r["peak_rss_gb"] / (cap / GB), 3), **({"how": r["how"]} if "how" in r else {})}
            for r in res.get("steps", [])]
    finished = bool(res.get("ok")) and res.get("returncode") == 0
    peak = max((r["peak_rss_gb"] for r in rows), default=None)
    total = round(sum(r["seconds"] for r in rows), 1)
    rows.append({"name": "whole pipeline", "key": "whole", "seconds": total, "peak_rss_gb": peak,
                 "ratio": round(peak / (cap / GB), 3) if peak else None})
    nbytes = manifest.get_preset(preset).nbytes
    c = capinfo
    notes = [f"Memory cap: {c.get('method')}, limit {c.get('limit_gb')} GB; cgroup peak "
             f"(includes reclaimable page cache) {c.get('cgroup_max_usage_gb', '-')} GB, OOM kills "
             f"{c.get('cgroup_oom_kills', '-')}; finished: {'yes' if finished else 'no'}; dataset "
             f"{nbytes / GB:.2f} GB uncompressed, {stored / GB:.2f} GB on disk, made in {gen['seconds']} s."]
    if res.get("error"):
        notes.append(f"The pipeline stopped: {res['error']}")
    if not ctx.get("keep_large"):
        shutil.rmtree(dest, ignore_errors=True)
        notes.append("The dataset was deleted afterwards (--keep-large keeps it).")
    return {"ok": finished, "preset": preset, "rows": rows, "notes": notes, "error": res.get("error"),
            "ratio_meaning": "peak RSS / memory cap",
            "plot": {"value": "peak_rss_gb", "label": f"peak RSS GB (cap {cap / GB:.1f} GB)", "line": cap / GB},
            "targets": [
                target(f"pipeline on {nbytes / GB:.3g} GB finishes under a hard {cap / GB:.1f} GB cap "
                       f"({c.get('method')})", "finishes", finished, finished),
                target("peak RSS (GB)", f"<= {cap / GB:.1f}", peak, peak is not None and peak <= cap / GB)],
            "details": {k: v for k, v in res.items() if k != "steps"}}


COMPONENT = Component("large", "Out of core: the out-of-core preset under a hard memory cap", False, run)
