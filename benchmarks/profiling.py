"""Where HyperSpy's lazy rebin and ``map`` spend their time: cProfile of each pass, as text.

    .venv/bin/python -m benchmarks.profiling --preset binder     # writes benchmarks/profiles/<preset>_*.txt

Each pass runs on dask's synchronous scheduler, so that every task runs in
the profiled thread (with the threaded scheduler cProfile sees only the
waiting main thread); the wall times are therefore one-core times. One-off
imports are done on a small piece first, so they stay out of the profiles. Each
file starts with the pass, the preset, the wall time and the load average,
then the top entries by own time and by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "profiles"
TOP = 25


def passes(s):
    """The passes profiled: name -> (what, function computing it)."""
    import numpy as np
    from scipy.ndimage import center_of_mass

    from lazysignals import blocks

    nav_chunks = s.data.chunksize[:2]
    small_nav = tuple(max(c // 4, 1) for c in nav_chunks)

    def plain_sum():
        s.sum().compute(show_progressbar=False)

    def hyperspy_rebin():
        r = s.rebin(scale=(2, 2, 2, 2), rechunk=False)
        r.change_dtype("uint32")
        r.compute(show_progressbar=False)

    def block_rebin():
        blocks.rebin_sum(s, (2, 2, 2, 2), "uint32").compute(show_progressbar=False)

    def hyperspy_map_com():
        s.map(center_of_mass, inplace=False).compute(show_progressbar=False)

    def lesson06_map_com():
        small = s.rechunk(nav_chunks=small_nav, sig_chunks=-1, inplace=False)
        small.map(center_of_mass, inplace=False, output_dtype=np.float32,
                  output_signal_size=(2,)).compute(show_progressbar=False)

    def block_com():
        blocks.centre_of_mass(s).compute(show_progressbar=False)

    return {
        "plain_sum": ("s.sum().compute(): the read floor", plain_sum),
        "rebin": ("s.rebin(scale=(2, 2, 2, 2), rechunk=False); change_dtype('uint32'); compute()", hyperspy_rebin),
        "rebin_blocks": ("lazysignals.blocks.rebin_sum(s, (2, 2, 2, 2), 'uint32').compute()", block_rebin),
        "map_com": ("s.map(scipy.ndimage.center_of_mass, inplace=False).compute()", hyperspy_map_com),
        "map_com_lesson06": (f"lesson 06: s.rechunk(nav_chunks={small_nav}, sig_chunks=-1).map(center_of_mass, "
                             "output_dtype=float32, output_signal_size=(2,)).compute()", lesson06_map_com),
        "com_blocks": ("lazysignals.blocks.centre_of_mass(s).compute()", block_com),
    }


def profile(preset: str, only=None, out: Path = OUT) -> list[Path]:
    import dask

    import lazysignals

    s = lazysignals.load(preset)
    out.mkdir(parents=True, exist_ok=True)
    # one-off imports (HyperSpy's map imports matplotlib widgets on first use) kept out of the profiles
    from scipy.ndimage import center_of_mass

    piece = s.inav[:2, :2]
    piece.map(center_of_mass, inplace=False).compute(show_progressbar=False)
    piece.rebin(scale=(2, 2, 2, 2), rechunk=False).compute(show_progressbar=False)
    written = []
    for name, (what, func) in passes(s).items():
        if only and name not in only:
            continue
        load0 = os.getloadavg()[0]
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        with dask.config.set(scheduler="synchronous"):
            prof.runcall(func)
        wall = time.perf_counter() - t0
        text = io.StringIO()
        text.write(f"pass:    {what}\n")
        text.write(f"preset:  {preset}, data {s.data.shape} {s.data.dtype}, chunks {s.data.chunksize}, "
                   f"{s.data.nbytes / 1e9:.3f} GB\n")
        text.write(f"wall:    {wall:.2f} s under cProfile, synchronous scheduler (one core)\n")
        text.write(f"load:    {load0:.2f} before, {os.getloadavg()[0]:.2f} after ({os.cpu_count()} cores)\n\n")
        for key, label in (("tottime", "own time"), ("cumulative", "cumulative time")):
            text.write(f"==== top {TOP} by {label} ====\n")
            stats = pstats.Stats(prof, stream=text)
            stats.strip_dirs().sort_stats(key).print_stats(TOP)
        path = out / f"{preset}_{name}.txt"
        path.write_text(text.getvalue())
        written.append(path)
        print(f"{name}: {wall:.2f} s -> {path}", flush=True)
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.profiling", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="binder")
    ap.add_argument("--only", help="comma-separated passes (default: all)")
    args = ap.parse_args(argv)
    profile(args.preset, args.only.split(",") if args.only else None)


if __name__ == "__main__":
    main()
