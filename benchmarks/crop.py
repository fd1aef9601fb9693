"""(c) Chunk-aligned crop against a crop one pixel wider: bytes read and time.

With a signal of 4 chunks per side, ``isig[c:3c, c:3c]`` touches 4 of the
16 signal chunks and ``isig[c-1:3c+1, c-1:3c+1]`` all 16. Both crops are
summed over the detector (a virtual image, as in lesson 07) inside :func:`lazysignals.measure.count_reads`,
in one fresh process, alternating, twice (the faster of each kept); the
wider crop is the baseline.
"""

from __future__ import annotations

from pathlib import Path

from .common import Steps, ratio, run_child, target


def child_crops(path: str, chunk: int) -> dict:
    import hyperspy.api as hs

    from lazysignals.measure import count_reads

    s = hs.load(path, lazy=True)
    c = chunk
    steps = Steps()
    # Two rounds, alternating, the faster of each kept: the first compute of a
    # process also pays for warming up, and the machine may be shared.
    for _ in range(2):
        for label, sl in (("aligned", slice(c, 3 * c)), ("one pixel wider", slice(c - 1, 3 * c + 1))):
            with steps(f"{label} crop, sum, compute") as row:
                with count_reads() as reads:
                    r = s.isig[sl, sl].sum(axis="sig")
                    r.compute()
                row.update(chunks_read=reads.chunks, bytes_read=reads.bytes)
    best = {}
    for row in steps.rows:
        if row["step"] not in best or row["seconds"] < best[row["step"]]["seconds"]:
            best[row["step"]] = row
    with count_reads() as everything:
        r = s.sum(axis="sig")
        r.compute()
    return {"steps": list(best.values()), "total_chunks": everything.chunks, "total_bytes": everything.bytes}


def measure(preset: str, data_root) -> dict:
    from lazysignals import manifest
    from lazysignals.data import synthetic_path

    p = manifest.get_preset(preset)
    zspy = synthetic_path(preset, dest=Path(data_root) / preset, progress=False)
    res = run_child("benchmarks.crop:child_crops", {"path": str(zspy), "chunk": p.chunk})
    if not res.get("ok"):
        raise RuntimeError(res.get("error"))
    a, w = res["steps"]
    rows = []
    for r in (w, a):
        rows.append({"name": r["step"], "seconds": r["seconds"], "chunks_read": r["chunks_read"],
                     "MB_read": round(r["bytes_read"] / 1e6, 1),
                     "fraction_of_bytes": round(r["bytes_read"] / res["total_bytes"], 3),
                     "fraction_of_chunks": round(r["chunks_read"] / res["total_chunks"], 3),
                     "peak_rss_gb": r["peak_rss_gb"], "ratio": ratio(r["seconds"], w["seconds"])})
    return {"preset": preset, "rows": rows, "ratio_meaning": "time / time of the wider crop",
            "total_chunks": res["total_chunks"], "total_MB": round(res["total_bytes"] / 1e6, 1)}


def run(ctx) -> dict:
    preset = ctx["preset"] if ctx["preset"] != "large" else "binder"
    out = measure(preset, ctx["data"])
    w, a = out["rows"]
    out["ok"] = True
    out["targets"] = [
        target("aligned crop reads 25 % of the chunks", "0.25", a["fraction_of_chunks"], a["fraction_of_chunks"] == 0.25),
        target("one pixel wider reads 100 % of the chunks", "1.0", w["fraction_of_chunks"], w["fraction_of_chunks"] == 1.0),
    ]
    return out
