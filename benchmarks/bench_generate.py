"""How fast the synthetic twin is made, and how much memory that takes.

Usage::

    python benchmarks/bench_generate.py [PRESET] [--dest DIR] [--keep] [--repeat N]

For one preset (default ``workshop``) it runs, each in a fresh child process
so that the peak resident memory (``ru_maxrss``) belongs to that step alone:

``kernel``
    every chunk rendered by the dask threads and thrown away: the cost of the
    model and the Poisson draw without compression or disk.
``generate``
    ``lazysignals.synthetic.generate`` writing the ``.zspy``, as a learner's
    machine does it (compile, render, compress, write, verify, rename).
``baseline``
    a plain zarr write of the same shape, chunks, dtype and compressor, where
    every chunk is a copy of one real chunk of the dataset: what the disk and
    the compressor allow when nothing is computed. Generation cannot beat it.

The parent also polls each child's resident memory (psutil) as a cross-check
and records the machine (cores, memory, load) with the result, because on a
shared machine the load average says how much of it the run really had.

Results go to ``benchmarks/results/`` (not in git): one JSON file per run and
one Markdown table row per step appended to ``bench_generate.md``. The
written datasets are deleted afterwards unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
MB = 1e6


# --------------------------------------------------------------------------
# Steps, run inside a child process
# --------------------------------------------------------------------------

def _preset(name: str):
    from lazysignals import manifest

    return manifest.get_preset(name)


def step_kernel(preset: str, dest: str) -> dict:
    import dask
    import dask.array as da
    import numpy as np

    from lazysignals import synthetic

    p = _preset(preset)
    t0 = time.perf_counter()
    synthetic._kernel()  # compile or load the cached machine code, make the tables
    compile_s = time.perf_counter() - t0
    s = synthetic.make_lazy_signal(p)
    # keep one value per chunk, so nothing but the rendering is measured
    tiny = s.data.map_blocks(lambda b: b[:1, :1, :1, :1].copy(), chunks=(1, 1, 1, 1), dtype=np.uint16)
    t1 = time.perf_counter()
    with dask.config.set(scheduler="threads"):
        da.compute(tiny)
    return {"seconds": time.perf_counter() - t1, "compile_seconds": compile_s, "bytes": p.nbytes}


def step_generate(preset: str, dest: str) -> dict:
    from lazysignals import storage, synthetic

    p = _preset(preset)
    t0 = time.perf_counter()
    paths = synthetic.generate(p, dest, formats=("zspy",), overwrite=True, progress=False)
    seconds = time.perf_counter() - t0
    info = storage.verify_zspy(paths["zspy"])
    return {"seconds": seconds, "bytes": p.nbytes, "disk_bytes": _disk_bytes(paths["zspy"]),
            "nchunks": info["nchunks"], "path": str(paths["zspy"])}


def step_baseline(preset: str, dest: str) -> dict:
    import dask.array as da
    import numcodecs
    import numpy as np
    import zarr

    from lazysignals import synthetic

    p = _preset(preset)
    maps = synthetic.probe_maps(p)
    c, D = p.chunk, p.signal_shape[0]
    mid = (0, 0, 1, 1)  # a chunk with part of the bright-field disk and the halo
    slices = tuple(slice(i * c, (i + 1) * c) for i in mid)
    one = synthetic.render_block(maps, D, p.seed, mid, slices)
    def copy_of_one(block_info=None):  # edge chunks are smaller
        return one[tuple(slice(0, b - a) for a, b in block_info[None]["array-location"])]

    data = da.map_blocks(copy_of_one, dtype=one.dtype,
                         chunks=da.core.normalize_chunks(p.chunks, p.data_shape),
                         meta=np.empty((0,) * 4, dtype=one.dtype))
    path = Path(dest) / f"baseline_{p.name}.zarr"
    shutil.rmtree(path, ignore_errors=True)
    compressor = numcodecs.Blosc(cname="zstd", clevel=1, shuffle=numcodecs.Blosc.SHUFFLE)
    t0 = time.perf_counter()
    arr = zarr.open_array(zarr.storage.NestedDirectoryStore(str(path)), mode="w", shape=p.data_shape,
                          chunks=p.chunks, dtype=one.dtype, compressor=compressor)
    da.store(data, arr, lock=False)
    seconds = time.perf_counter() - t0
    size = _disk_bytes(path)
    shutil.rmtree(path, ignore_errors=True)
    return {"seconds": seconds, "bytes": p.nbytes, "disk_bytes": size}


STEPS = {"kernel": step_kernel, "generate": step_generate, "baseline": step_baseline}


def _disk_bytes(path) -> int:
    path = Path(path)
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def child_main(step: str, preset: str, dest: str) -> None:
    cpu0 = os.times()
    result = STEPS[step](preset, dest)
    cpu1 = os.times()
    result["cpu_seconds"] = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------
# The parent: run the children, poll their memory, write the results
# --------------------------------------------------------------------------

def machine() -> dict:
    import psutil

    info = {
        "host": platform.node(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
    }
    for mod in ("numpy", "numba", "dask", "zarr", "numcodecs", "hyperspy", "rsciio"):
        info[mod] = __import__(mod).__version__
    try:
        info["commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                        capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    return info


def run_step(step: str, preset: str, dest: Path) -> dict:
    import psutil

    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", step, preset, "--dest", str(dest)]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    polled = [0]

    def poll():
        ps = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                polled[0] = max(polled[0], ps.memory_info().rss)
            except psutil.Error:
                break
            time.sleep(0.05)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    out, err = proc.communicate()
    watcher.join()
    wall = time.perf_counter() - t0
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"step {step} failed (exit {proc.returncode}):\n{err[-3000:]}")
    res = json.loads(lines[-1][len("RESULT "):])
    res.update(step=step, process_wall_seconds=wall, polled_peak_rss_bytes=polled[0],
               load_before=round(load0, 2), load_after=round(os.getloadavg()[0], 2))
    res["mb_per_s"] = res["bytes"] / res["seconds"] / MB
    return res


def write_results(preset: str, info: dict, rows: list[dict]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"bench_generate-{preset}-{stamp}.json"
    path.write_text(json.dumps({"preset": preset, "machine": info, "steps": rows}, indent=1))
    md = RESULTS / "bench_generate.md"
    if not md.exists():
        md.write_text(
            "| when | commit | preset | step | GB | s | MB/s | CPU s | peak RSS MB | on disk GB | ratio | "
            "cores | RAM GB | load |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        )
    with md.open("a") as f:
        for r in rows:
            disk = r.get("disk_bytes")
            on_disk = "" if disk is None else f"{disk / 1e9:.2f}"
            ratio = "" if disk is None else f"{r['bytes'] / disk:.1f}"
            f.write(
                f"| {stamp} | {info.get('commit', '')} | {preset} | {r['step']} | {r['bytes'] / 1e9:.2f} "
                f"| {r['seconds']:.1f} | {r['mb_per_s']:.0f} | {r['cpu_seconds']:.1f} "
                f"| {r['peak_rss_bytes'] / MB:.0f} | {on_disk} | {ratio} | {info['cores_usable']} "
                f"| {info['ram_gb']} | {r['load_before']}-{r['load_after']} |\n"
            )
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("preset", nargs="?", default="workshop")
    ap.add_argument("--dest", help="folder for the datasets (default: a new temporary folder)")
    ap.add_argument("--steps", default="kernel,generate,baseline")
    ap.add_argument("--keep", action="store_true", help="keep the generated .zspy")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child_main(args.child, args.preset, args.dest)
        return 0
    dest = Path(args.dest or tempfile.mkdtemp(prefix="bench-generate-"))
    dest.mkdir(parents=True, exist_ok=True)
    env_before = os.environ.get("LAZYSIGNALS_DATA")
    os.environ["LAZYSIGNALS_DATA"] = str(dest)
    info = machine()
    rows = []
    try:
        for step in args.steps.split(","):
            r = run_step(step.strip(), args.preset, dest)
            rows.append(r)
            disk = f", {r['disk_bytes'] / 1e9:.2f} GB on disk" if "disk_bytes" in r else ""
            print(f"{step:>9}: {r['seconds']:6.1f} s  {r['mb_per_s']:6.0f} MB/s  CPU {r['cpu_seconds']:6.1f} s  "
                  f"peak RSS {r['peak_rss_bytes'] / MB:5.0f} MB (polled {r['polled_peak_rss_bytes'] / MB:.0f}){disk}"
                  f"  load {r['load_before']}->{r['load_after']}", flush=True)
    finally:
        if env_before is None:
            os.environ.pop("LAZYSIGNALS_DATA", None)
        if not args.keep and not args.dest:
            shutil.rmtree(dest, ignore_errors=True)
        elif not args.keep:
            for r in rows:
                if r.get("path"):
                    shutil.rmtree(r["path"], ignore_errors=True)
    out = write_results(args.preset, info, rows)
    print(f"machine: {info['cores_usable']} usable cores, {info['ram_gb']} GB RAM; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
