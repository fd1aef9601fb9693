"""Summing the same data lazily from .zspy and from .hspy; numpy in memory as the limit.

Each sum runs in its own fresh process: open lazily, ``s.sum()`` (over the
navigation axes, as the loading lesson does) and compute. The limit is the
same sum by numpy over data already in memory: no reading, no
decompression. When the whole dataset does not fit comfortably in memory,
the numpy sum runs on a leading block of probe-position rows and is scaled
by bytes (GB/s is what is compared). The .hspy file is the one the lessons
use, made by :func:`lazysignals.data.prepare` (HyperSpy's default writer).
"""

from __future__ import annotations


from .harness import GB, Component, Context, Result, Steps, dataset, dir_size, ratio, run_child, small_preset, target

#: Largest part of the data the numpy limit holds in memory.
NUMPY_MAX_BYTES = int(1.5e9)


def child_lazy_sum(path: str) -> dict:
    import hyperspy.api as hs

    steps = Steps()
    with steps("open lazily"):
        s = hs.load(path, lazy=True)
    with steps("sum over navigation, compute"):
        r = s.sum()
        r.compute()
    return {"steps": steps.rows, "nbytes": s.data.nbytes, "checksum": int(r.data.sum())}


def child_numpy_sum(path: str, max_bytes: int) -> dict:
    import hyperspy.api as hs
    import numpy as np

    s = hs.load(path, lazy=True)
    row = s.data[0].nbytes
    rows = max(1, min(s.data.shape[0], max_bytes // row))
    a = np.asarray(s.data[:rows].compute())
    steps = Steps()
    for _ in range(2):  # the faster of two
        with steps("numpy sum in memory"):
            a.sum(axis=(0, 1))
    return {"steps": steps.best(), "nbytes": a.nbytes, "fraction": rows / s.data.shape[0]}


def measure(ctx: Context, preset: str) -> dict:
    """The three sums of ``preset``'s benchmark copy (also used by the workshop component)."""
    paths = dataset(ctx, preset, formats=("zspy", "hspy"))
    zspy, hspy = paths["zspy"], paths["hspy"]
    z = run_child("benchmarks.sum:child_lazy_sum", {"path": str(zspy)})
    h = run_child("benchmarks.sum:child_lazy_sum", {"path": str(hspy)})
    n = run_child("benchmarks.sum:child_numpy_sum", {"path": str(zspy), "max_bytes": NUMPY_MAX_BYTES})
    for name, res in (("zspy", z), ("hspy", h), ("numpy", n)):
        if not res.get("ok"):
            raise RuntimeError(f"{name} sum failed: {res.get('error')}")
    nbytes = z["nbytes"]

    def rate(res):
        step = res["steps"][-1]
        return res["nbytes"] / GB / step["seconds"]

    r_np, r_z, r_h = rate(n), rate(z), rate(h)
    rows = [
        {"name": "numpy sum, data in memory (limit)", "GB/s": round(r_np, 3),
         "seconds": round(nbytes / GB / r_np, 3), "peak_rss_gb": n["steps"][-1]["peak_rss_gb"],
         "ratio": 1.0, "note": f"on {n['fraction']:.0%} of the data, scaled by bytes" if n["fraction"] < 1 else ""},
        {"name": "lazy sum from .zspy", "GB/s": round(r_z, 3), "seconds": z["steps"][-1]["seconds"],
         "peak_rss_gb": z["steps"][-1]["peak_rss_gb"], "ratio": round(r_z / r_np, 3),
         "stored_gb": round(dir_size(zspy) / GB, 3)},
        {"name": "lazy sum from .hspy", "GB/s": round(r_h, 3), "seconds": h["steps"][-1]["seconds"],
         "peak_rss_gb": h["steps"][-1]["peak_rss_gb"], "ratio": round(r_h / r_np, 3),
         "stored_gb": round(dir_size(hspy) / GB, 3)},
    ]
    return {"preset": preset, "uncompressed_gb": round(nbytes / GB, 3), "rows": rows,
            "hspy_over_zspy_time": ratio(h["steps"][-1]["seconds"], z["steps"][-1]["seconds"]),
            "checksums_equal": z["checksum"] == h["checksum"],
            "ratio_meaning": "throughput / numpy in-memory throughput"}


def run(ctx: Context) -> Result:
    out = measure(ctx, small_preset(ctx))
    hz, same = out["hspy_over_zspy_time"], out["checksums_equal"]
    return {"ok": True, "preset": out["preset"], "rows": out["rows"], "ratio_meaning": out["ratio_meaning"],
            "notes": [f"{out['uncompressed_gb']} GB uncompressed; the .hspy sum takes {hz} times the .zspy sum."],
            "targets": [target(".hspy / .zspy sum time (course says about 5; original 25 s / 1.5 s)", "about 5", hz, None),
                        target("same sum from both files", "equal", same, same)]}


COMPONENT = Component("sum", "Lazy sum from .zspy and .hspy vs numpy in memory", True, run)
