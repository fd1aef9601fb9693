"""(e) Out of core: the lesson pipeline on the 34 GB preset under a hard 2 GB cap.

The ``large`` preset (512 x 512 probe positions, 256 x 256 detector, uint16:
34.4 GB uncompressed) is made once into the benchmark data folder (timed, no
cap: generation is not what is demonstrated), then the pipeline of
:mod:`benchmarks.pipeline` runs in a child process that the operating system
stops if it needs more than the cap: the child joins a cgroup v1 memory
group with ``memory.limit_in_bytes`` = cap (fallback: ``RLIMIT_AS``). The
rebinned result (4.3 GB as uint32) cannot be held in 2 GB, so that step saves
it to a .zspy on disk, out of core, and the file is removed afterwards. The
report gives: did it finish, peak RSS (the kernel's VmHWM, per step), the
cgroup's own peak (``memory.max_usage_in_bytes``, which also counts page
cache the kernel could reclaim), OOM kills, and wall time.

The ADF image is computed the way lesson 03 computes a whole-scan image (a
ring mask times the signal, summed): HyperSpy's ``CircleROI`` on lazy data
builds its NaN mask as large as the scan for every detector chunk and would
be killed under the cap.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from .common import GB, run_child, target

STEPS = ["plot", "adf", "rebin", "com", "crops", "fit"]


def child_generate(dest: str) -> dict:
    from lazysignals.data import synthetic_path

    t0 = time.perf_counter()
    path = synthetic_path("large", dest=Path(dest), progress=False)
    return {"seconds": round(time.perf_counter() - t0, 1), "path": str(path)}


def run(ctx) -> dict:
    from .generation import dir_size

    dest = Path(ctx["data"]) / "large"
    free = shutil.disk_usage(Path(ctx["data"])).free
    gen = run_child("benchmarks.large:child_generate", {"dest": str(dest)})
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
    out = {"ok": finished, "preset": "large", "rows": rows, "finished": finished,
           "error": res.get("error"), "memory_cap": capinfo, "cap_gb": round(cap / GB, 3),
           "generate_seconds": gen["seconds"], "stored_gb": round(stored / GB, 2),
           "uncompressed_gb": round(res.get("nbytes", 0) / GB, 2) if res.get("nbytes") else 34.36,
           "child_wall_seconds": res.get("child_wall_seconds"), "returncode": res.get("returncode"),
           "ratio_meaning": "peak RSS / memory cap",
           "details": {k: v for k, v in res.items() if k not in ("steps", "memory_cap")}}
    out["targets"] = [
        target(f"pipeline on 34 GB finishes under a hard {cap / GB:.1f} GB cap ({capinfo.get('method')})",
               "finishes", finished, finished),
        target("peak RSS (GB)", f"<= {cap / GB:.1f}", peak, peak is not None and peak <= cap / GB),
    ]
    if not ctx.get("keep_large"):
        shutil.rmtree(dest, ignore_errors=True)
        out["dataset"] = "deleted afterwards (--keep-large keeps it)"
    return out
