"""(a) Synthetic generation throughput against a plain zarr write of the same bytes.

The measurement itself is ``benchmarks/bench_generate.py`` (the generator's
own benchmark), called step by step, each step in a fresh child process:

* ``kernel``: every chunk rendered and thrown away (model + Poisson draw);
* ``generate``: ``lazysignals.synthetic.generate`` writing the ``.zspy``;
* ``baseline``: a plain zarr write of the same shape, chunks, dtype and
  compressor, every chunk a copy of a real one - the limit.

Here the generated dataset is kept in the benchmark data folder, where the
other components use it.
"""

from __future__ import annotations

from pathlib import Path

from .common import GB, ratio, target


def data_path(data_root, preset_name: str, fmt: str = "zspy") -> Path:
    from lazysignals import manifest

    p = manifest.get_preset(preset_name)
    return Path(data_root) / preset_name / p.filename(fmt)


def dir_size(path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run(ctx) -> dict:
    from . import bench_generate

    preset = ctx["preset"]
    dest = Path(ctx["data"]) / preset
    dest.mkdir(parents=True, exist_ok=True)
    steps = {}
    for step in ("kernel", "generate", "baseline"):
        steps[step] = bench_generate.run_step(step, preset, dest)
    lim, gen, ker = steps["baseline"], steps["generate"], steps["kernel"]
    nbytes = gen["bytes"]
    rows = []
    for label, r in (("plain zarr write (limit)", lim), ("synthetic generate()", gen),
                     ("rendering only, nothing written", ker)):
        rows.append({"name": label, "seconds": round(r["seconds"], 2), "GB/s": round(nbytes / GB / r["seconds"], 3),
                     "cpu_seconds": round(r["cpu_seconds"], 1),
                     "peak_rss_gb": round(r["peak_rss_bytes"] / GB, 3),
                     "ratio": ratio(lim["seconds"], r["seconds"]),
                     "stored_gb": round(r["disk_bytes"] / GB, 3) if "disk_bytes" in r else None,
                     "load": f"{r['load_before']}->{r['load_after']}"})
    thr = ratio(lim["seconds"], gen["seconds"])
    targets = [target("generation throughput / plain zarr write", ">= 0.5", thr, thr >= 0.5)]
    if preset == "workshop":
        g_rss = gen["peak_rss_bytes"] / GB
        targets.append(target("workshop generation time (s)", "<= 60", round(gen["seconds"], 1), gen["seconds"] <= 60))
        targets.append(target("workshop generation peak RSS (GB)", "<= 1", round(g_rss, 3), g_rss <= 1.0))
    return {"ok": True, "preset": preset, "uncompressed_gb": round(nbytes / GB, 3), "rows": rows,
            "targets": targets, "ratio_meaning": "limit time / time (1 = as fast as a plain zarr write)",
            "steps": steps}
