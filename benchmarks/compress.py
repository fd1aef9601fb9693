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
from pathlib import Path

from .harness import GB, Component, Context, Result, Steps, dataset, dir_size, failed, ratio, run_child, small_preset

#: (label, cname, clevel, shuffle) - shuffle 1 = byte shuffle, 2 = bit shuffle; cname None = no compression.
CANDIDATES = [
    ("blosc zstd 1, byte shuffle (HyperSpy's default)", "zstd", 1, 1),
    ("blosc zstd 3, byte shuffle", "zstd", 3, 1),
    ("blosc zstd 1, bit shuffle", "zstd", 1, 2),
    ("blosc lz4 1, byte shuffle", "lz4", 1, 1),
    ("blosc lz4 5, byte shuffle", "lz4", 5, 1),
    ("blosc lz4 5, bit shuffle", "lz4", 5, 2),
    ("blosc blosclz 5, byte shuffle", "blosclz", 5, 1),
    ("none", None, 0, 0),
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
        # The writer replaces compressor=None by its default: "none" is blosc at level 0.
        comp = numcodecs.Blosc(cname=cname or "lz4", clevel=clevel, shuffle=shuffle)
        path = Path(dest) / f"c_{cname}_{clevel}_{shuffle}.zspy"
        shutil.rmtree(path, ignore_errors=True)
        steps = Steps()
        with steps("write"):
            mem.save(path, chunks=tuple(chunks), compressor=comp)
        size = dir_size(path)
        for _ in range(2):  # the faster of two reads
            s = hs.load(path, lazy=True)
            with steps("read and sum"):
                s.sum().compute(show_progressbar=False)
        write, read = steps.best()
        rows.append({"name": label, "write_MB/s": round(nbytes / 1e6 / write["seconds"], 1),
                     "read_sum_MB/s": round(nbytes / 1e6 / read["seconds"], 1),
                     "stored_MB": round(size / 1e6, 1), "compression_ratio": round(nbytes / size, 2),
                     "write_s": write["seconds"], "read_sum_s": read["seconds"]})
        shutil.rmtree(path, ignore_errors=True)
    return {"rows": rows, "nbytes": nbytes}


def _is_the_course_compressor(cname, clevel, shuffle) -> bool:
    from lazysignals.storage import course_compressor

    c = course_compressor()
    return (c.cname, c.clevel, c.shuffle) == (cname, clevel, shuffle)


def run(ctx: Context) -> Result:
    from lazysignals import manifest

    preset = small_preset(ctx)
    src = dataset(ctx, preset)["zspy"]
    work = Path(ctx["data"]) / "compress-tmp"
    work.mkdir(parents=True, exist_ok=True)
    res = run_child("benchmarks.compress:child_compare",
                    {"source": str(src), "dest": str(work), "chunks": list(manifest.get_preset(preset).chunks)})
    shutil.rmtree(work, ignore_errors=True)
    if not res.get("ok"):
        return failed(res)
    rows = res["rows"]
    base = rows[0]
    for r, (_label, *codec) in zip(rows, CANDIDATES):
        if _is_the_course_compressor(*codec):
            r["name"] += " (the course's)"
        r["write_ratio"] = ratio(r["write_MB/s"], base["write_MB/s"])
        r["read_ratio"] = ratio(r["read_sum_MB/s"], base["read_sum_MB/s"])
        r["size_ratio"] = ratio(r["stored_MB"], base["stored_MB"])
    return {"ok": True, "preset": preset, "rows": rows,
            "notes": [f"{res['nbytes'] / GB:.3f} GB uncompressed, in the preset's chunks; reads from the page cache."],
            "ratio_meaning": "against HyperSpy's default writer (blosc zstd 1, byte shuffle); >1 = faster / bigger",
            "plot": {"value": "read_sum_MB/s", "label": "read + sum MB/s (uncompressed)"}}


def readme(res: Result) -> list[str]:
    lines = ["| compressor | write MB/s | read+sum MB/s | stored MB | write | read | size |",
             "|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        name = f"**{r['name']}**" if "the course's" in r["name"] else r["name"]
        lines.append(f"| {name} | {r['write_MB/s']:.0f} | {r['read_sum_MB/s']:.0f} | {r['stored_MB']:.0f} "
                     f"| {r['write_ratio']:.2f} | {r['read_ratio']:.2f} | {r['size_ratio']:.2f} |")
    return lines


COMPONENT = Component("compress", "Compressors side by side (write, read-and-sum, size)", True, run, readme)
