"""Chunk-aligned crop against a crop one pixel wider: chunks and bytes read, and time.

With a signal of 4 chunks per side, ``isig[c:3c, c:3c]`` touches 4 of the
16 signal chunks and ``isig[c-1:3c+1, c-1:3c+1]`` all 16. Both crops are
summed over the detector (a virtual image, as in lesson 07) inside
:func:`lazysignals.measure.count_reads`, in one fresh process, alternating,
twice (the faster of each kept: the first compute of a process also pays for
warming up); the wider crop is the baseline.
"""

from __future__ import annotations

from .harness import Component, Context, Result, Steps, dataset, failed, ratio, run_child, small_preset, target


def child_crops(path: str) -> dict:
    import hyperspy.api as hs

    from lazysignals.measure import count_reads

    from .pipeline import crop_sums

    s = hs.load(path, lazy=True)
    steps = Steps()
    for _ in range(2):
        crop_sums(s, steps)
    with count_reads() as everything:
        s.sum(axis="sig").compute()
    return {"steps": steps.best(), "total_chunks": everything.chunks, "total_bytes": everything.bytes}


def run(ctx: Context) -> Result:
    preset = small_preset(ctx)
    res = run_child("benchmarks.crop:child_crops", {"path": str(dataset(ctx, preset)["zspy"])})
    if not res.get("ok"):
        return failed(res)
    aligned, wider = res["steps"]
    rows = [{"name": r["step"], "seconds": r["seconds"], "chunks_read": r["chunks_read"], "MB_read": r["MB_read"],
             "fraction_of_bytes": round(r["bytes_read"] / res["total_bytes"], 3),
             "fraction_of_chunks": round(r["chunks_read"] / res["total_chunks"], 3),
             "peak_rss_gb": r["peak_rss_gb"], "ratio": ratio(r["seconds"], wider["seconds"])}
            for r in (wider, aligned)]
    w, a = rows
    return {"ok": True, "preset": preset, "rows": rows, "ratio_meaning": "time / time of the wider crop",
            "notes": [f"The whole dataset: {res['total_chunks']} chunks, {res['total_bytes'] / 1e6:.1f} MB stored."],
            "targets": [
                target("aligned crop reads 25 % of the chunks", "0.25", a["fraction_of_chunks"],
                       a["fraction_of_chunks"] == 0.25),
                target("one pixel wider reads 100 % of the chunks", "1.0", w["fraction_of_chunks"],
                       w["fraction_of_chunks"] == 1.0)]}


COMPONENT = Component("crop", "Chunk-aligned crop vs one pixel wider", True, run)
