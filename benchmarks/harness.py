"""The one harness of the benchmark suite: components, results, the machine, child runs.

A component is a module of this package named after it, with a module-level
``COMPONENT = Component(name, title, default, run)``; ``run.py`` finds them.
``run(ctx)`` gets the command line's context (:class:`Context`) and returns
a :class:`Result`; ``readme(result)``, if given, returns the Markdown table
that stands for the component in the top-level README.

Every measurement that is compared with another runs in the same invocation,
one after the other, and is reported as a ratio against a baseline measured
there too; the machine and its load are recorded with it. Each measured piece
runs in a fresh child Python (:func:`run_child`); memory is measured with
:func:`lazysignals.measure.peak_memory` (per step, and for the whole child)
and capped with :class:`lazysignals.measure.MemoryCap`.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypedDict

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GB = 1e9
#: Environment variable naming the folder where the suite makes and keeps its datasets.
DATA_ENV = "LAZYSIGNALS_BENCH_DATA"
#: How often a step's memory is sampled (seconds); an allocation shorter than it may be missed.
SAMPLE_INTERVAL = 0.01


class Context(TypedDict):
    """What ``run.py`` hands every component."""

    preset: str  # --preset: the dataset of generate, compress, sum and crop
    data: str  # folder of the benchmark datasets
    out: str  # folder of results.json/.md/.png
    memory_cap: int  # bytes, the hard cap of the out-of-core run
    fit_subset: int  # profiles fitted by multifit beside the fast fit
    keep_large: bool  # keep the out-of-core dataset afterwards
    cluster: bool  # large: also run on a LocalCluster, with and without a killed worker
    large_steps: list | None  # large: the pipeline steps of every run (None: all)


class Target(TypedDict):
    what: str
    target: str
    measured: object
    met: bool | None  # None: for information


class Result(TypedDict, total=False):
    """What a component's ``run`` returns; ``run.py`` adds the last four keys."""

    ok: bool  # it ran to the end
    preset: str
    rows: list[dict]  # one per measured thing: "name", then "seconds", "peak_rss_gb", "ratio", ...
    ratio_meaning: str  # what "ratio" in the rows means
    targets: list[Target]
    notes: list[str]  # sentences for the report, made from the numbers
    plot: dict  # {"value": a row key, "label": axis label, "line": x of a target line (optional)}
    error: str
    details: dict  # anything else worth keeping in results.json
    wall_seconds: float
    load_before: list[float]
    load_after: list[float]
    machine: dict


@dataclass(frozen=True)
class Component:
    name: str
    title: str
    default: bool  # runs without --only
    run: Callable[[Context], Result]
    readme: Callable[[Result], list[str]] | None = None


# --------------------------------------------------------------------------
# Where, and on what
# --------------------------------------------------------------------------

def default_data() -> Path:
    """``$LAZYSIGNALS_BENCH_DATA``, or the per-user cache folder of the course."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    import pooch

    return Path(pooch.os_cache("lazysignals")) / "benchmarks"


def small_preset(ctx: Context) -> str:
    """``--preset``, unless it is the out-of-core one: then the default (it would not fit)."""
    from lazysignals import manifest

    return manifest.default_preset() if ctx["preset"] == manifest.preset_for("out_of_core") else ctx["preset"]


def dataset(ctx: Context, preset: str, formats=("zspy",)) -> dict[str, Path]:
    """The benchmark copy of ``preset`` (made once, in its own folder), by format."""
    from lazysignals.data import prepare

    return prepare(preset, formats=formats, dest=Path(ctx["data"]) / preset, progress=False)


def machine() -> dict:
    """Cores, memory, load and versions: what every result must be read with."""
    import psutil

    info = {
        "host": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "cores_logical": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "ram_available_gb": round(psutil.virtual_memory().available / 2**30, 1),
        "load_average": load_now(),
        "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    for mod in ("hyperspy", "rsciio", "dask", "zarr", "numcodecs", "numpy", "numba", "h5py"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing optional package is just not listed
            pass
    return info


def load_now() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------

class Steps:
    """Wall time, CPU time and peak RSS of each named step of a run.

    >>> steps = Steps()
    >>> with steps("sum"):
    ...     s.sum().compute()
    >>> steps.rows  # [{"step": "sum", "seconds": ..., "cpu_seconds": ..., "peak_rss_gb": ...}]
    """

    def __init__(self):
        self.rows = []
        #: The step running now and when it started (``time.perf_counter``), for a watching thread.
        self.current: tuple[dict, float] | None = None

    @contextmanager
    def __call__(self, name: str, **extra):
        from lazysignals.measure import peak_memory

        row = {"step": name, **extra}
        c0 = os.times()
        with peak_memory(interval=SAMPLE_INTERVAL) as mem:
            self.current = (row, time.perf_counter())
            try:
                yield row
            finally:
                self.current = None
        c1 = os.times()
        row["seconds"] = round(mem.seconds, 6)
        row["cpu_seconds"] = round(c1.user - c0.user + c1.system - c0.system, 2)
        row["peak_rss_gb"] = round(mem.peak / GB, 3)
        self.rows.append(row)
        print(f"  {name}: {row['seconds']:.2f} s (CPU {row['cpu_seconds']:.1f} s), "
              f"peak RSS {row['peak_rss_gb']:.2f} GB", file=sys.stderr, flush=True)

    def best(self) -> list[dict]:
        """The fastest row of each step name, in first-seen order (best of N against noise)."""
        best = {}
        for row in self.rows:
            if row["step"] not in best or row["seconds"] < best[row["step"]]["seconds"]:
                best[row["step"]] = row
        return list(best.values())


def run_child(target: str, args: dict, memory_cap: int | None = None, timeout: float | None = None) -> dict:
    """Run ``module:function(**args)`` in a fresh Python; return its result (a dict).

    The result gains the child's peak RSS over the call (``process_peak_rss_gb``),
    its CPU seconds, the load average before and after, and, with
    ``memory_cap`` (bytes), the report of the hard cap it ran under.
    """
    from lazysignals.measure import MemoryCap

    env = dict(os.environ, MPLBACKEND="Agg")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [PYTHON, "-c", "import sys; from benchmarks.harness import child_main; child_main(sys.argv[1:])",
           target, json.dumps(args)]
    cap = MemoryCap(memory_cap) if memory_cap else None
    load_before = load_now()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cap.wrap(cmd) if cap else cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            text=True, preexec_fn=cap.preexec if cap else None)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    lines = [ln for ln in out.splitlines() if ln.startswith("BENCHMARK-RESULT ")]
    result = json.loads(lines[-1][len("BENCHMARK-RESULT "):]) if lines else {
        "ok": False, "error": f"the child ended with status {proc.returncode} and no result"}
    result.update(returncode=proc.returncode, child_wall_seconds=round(time.perf_counter() - t0, 3),
                  load=[load_before[0], load_now()[0]])
    if cap:
        result["memory_cap"] = cap.report()
        cap.close()
    return result


def child_main(argv: list) -> None:
    """In the child: call the function, print ``BENCHMARK-RESULT {json}`` last."""
    import importlib
    import traceback

    from lazysignals.measure import peak_memory

    target, args = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    c0 = os.times()
    with peak_memory(interval=SAMPLE_INTERVAL, release=False) as mem:
        try:
            module, func = target.split(":")
            result = getattr(importlib.import_module(module), func)(**args) or {}
            result.setdefault("ok", True)
        except BaseException as e:  # noqa: BLE001 - report, whatever it was
            result = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
    c1 = os.times()
    result.update(process_seconds=round(mem.seconds, 3), process_peak_rss_gb=round(mem.peak / GB, 3),
                  process_cpu_seconds=round(c1.user - c0.user + c1.system - c0.system, 2))
    print("BENCHMARK-RESULT " + json.dumps(result, default=str), flush=True)


def ratio(a, b):
    """a / b, or None when either is missing or b is 0."""
    try:
        return round(a / b, 3) if a is not None and b else None
    except TypeError:
        return None


def target(what: str, goal: str, measured, met: bool | None) -> Target:
    return {"what": what, "target": goal, "measured": measured, "met": met}


def dir_size(path) -> int:
    """Bytes on disk of a file, or of every file below a folder."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def failed(res: dict) -> Result:
    """The result of a component whose child failed."""
    return {"ok": False, "error": res.get("error"), "details": res}
