"""Compressors side by side: write MB/s, read-and-sum MB/s and size on disk.

The same patterns (the preset's dataset, held in memory once) are written
with HyperSpy's ``.zspy`` writer and each compressor, in the preset's chunks,
then opened lazily and summed over the navigation axes - what the lessons
do most. Speeds are MB of uncompressed data per second. Reads come from the
page cache (the files were just written), so they measure decompression and
the sum, not the disk; every compressor is treated alike. Each read is timed
twice and the faster kept, against noise from other users of the machine.
The baseline (ratio 1) is the writer's default, Blosc zstd level 1 + shuffle.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from .common import GB, ratio, run_child, target

#: (label, cname, clevel, shuffle) - shuffle 1 = byte shuffle, 2 = bit shuffle; cname None = no compression.
CANDIDATES = [
    ("blosc zstd 1 shuffle (default)", "zstd", 1, 1),
    ("blosc zstd 3 shuffle", "zstd", 3, 1),
    ("blosc zstd 1 bitshuffle", "zstd", 1, 2),
    ("blosc lz4 1 shuffle", "lz4", 1, 1),
    ("blosc lz4 5 shuffle", "lz4", 5, 1),
    ("blosc lz4 5 bitshuffle", "lz4", 5, 2),
    ("blosc blosclz 5 shuffle", "blosclz", 5, 1),
    ("no compression", None, 0, 0),
]


def child_compare(source: str, dest: str, chunks: list) -> dict:
    import hyperspy.api as hs
    import numcodecs

    src = hs.load(source, lazy=True)
    src.compute()
    mem = src.as_lazy()
    mem.data = mem.data.rechunk(tuple(chunks))
    nbytes = src.data.nbytes
    rows = []
    for label, cname, clevel, shuffle in CANDIDATES:
        comp = numcodecs.Blosc(cname=cname, clevel=clevel, shuffle=shuffle) if cname else None
        path = Path(dest) / f"c_{cname}_{clevel}_{shuffle}.zspy"
        shutil.rmtree(path, ignore_errors=True)
        t0 = time.perf_counter()
        if comp is None:
            # The writer replaces compressor=None by its default: write through zarr directly.
            mem.save(path, chunks=tuple(chunks), compressor=numcodecs.Blosc(cname="lz4", clevel=0))
        else:
            mem.save(path, chunks=tuple(chunks), compressor=comp)
        t_write = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        reads = []
        for _ in range(2):
            s = hs.load(path, lazy=True)
            t0 = time.perf_counter()
            r = s.sum()
            r.compute()
            reads.append(time.perf_counter() - t0)
        rows.append({"name": label, "write_MB/s": round(nbytes / 1e6 / t_write, 1),
                     "read_sum_MB/s": round(nbytes / 1e6 / min(reads), 1),
                     "stored_MB": round(size / 1e6, 1), "compression_ratio": round(nbytes / size, 2),
                     "write_s": round(t_write, 3), "read_sum_s": round(min(reads), 3)})
        shutil.rmtree(path, ignore_errors=True)
        print(f"  {rows[-1]}", flush=True)
    return {"rows": rows, "nbytes": nbytes}


def run(ctx) -> dict:
    from lazysignals import manifest
    from lazysignals.data import synthetic_path

    preset = ctx["preset"] if ctx["preset"] != "large" else "binder"
    p = manifest.get_preset(preset)
    dest = Path(ctx["data"]) / preset
    src = synthetic_path(preset, dest=dest, progress=False)
    work = Path(ctx["data"]) / "compress-tmp"
    work.mkdir(parents=True, exist_ok=True)
    res = run_child("benchmarks.compression:child_compare",
                    {"source": str(src), "dest": str(work), "chunks": list(p.chunks)})
    shutil.rmtree(work, ignore_errors=True)
    if not res.get("ok"):
        return {"ok": False, "error": res.get("error"), "child": res}
    rows = res["rows"]
    base = rows[0]
    for r in rows:
        r["write_ratio"] = ratio(r["write_MB/s"], base["write_MB/s"])
        r["read_ratio"] = ratio(r["read_sum_MB/s"], base["read_sum_MB/s"])
        r["size_ratio"] = ratio(r["stored_MB"], base["stored_MB"])
    best = max(rows, key=lambda r: r["read_sum_MB/s"] if r["compression_ratio"] >= 0.5 * base["compression_ratio"] else 0)
    return {"ok": True, "preset": preset, "uncompressed_gb": round(res["nbytes"] / GB, 3), "rows": rows,
            "fastest_read_with_at_least_half_the_default_compression": best["name"],
            "ratio_meaning": "against the default writer (blosc zstd 1 shuffle); >1 = faster / bigger",
            "targets": [target("compressor comparison measured", "side by side", len(rows), True)]}
