"""Shared tools of the benchmark suite: the machine, clocks, peak memory, child runs.

Every measurement that is compared with another runs in the same invocation
of the suite, one after the other, and is reported as a ratio against a
baseline measured there too; the machine and its load are recorded with it.

Peak memory is the kernel's own figure: ``VmHWM`` of the process (its peak
resident set size). Linux can reset it (``/proc/self/clear_refs``), so a
child process reports a true peak for each step, not just for its whole life.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GB = 1e9
#: Where the suite makes and keeps its datasets (outside the repository).
DEFAULT_DATA = Path(os.environ.get("LAZYSIGNALS_BENCH_DATA", "/work/bench-data"))


# --------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------

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
        "load_average": [round(x, 2) for x in os.getloadavg()],
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
# Peak memory of this process
# --------------------------------------------------------------------------

def _status(field: str) -> float:
    """A memory figure of this process from /proc, in bytes (0 if unknown)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0.0


def rss() -> float:
    return _status("VmRSS")


def peak_rss() -> float:
    """Peak resident set size since start or the last :func:`reset_peak`."""
    v = _status("VmHWM")
    if v:
        return v
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak() -> bool:
    """Start a new peak at the current RSS (Linux >= 4.0); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Steps:
    """Wall time and peak RSS of each named step of a run.

    >>> steps = Steps()
    >>> with steps("sum"):
    ...     s.sum().compute()
    >>> steps.rows  # [{"step": "sum", "seconds": ..., "peak_rss_gb": ...}]
    """

    def __init__(self):
        self.rows = []
        self.t_start = time.perf_counter()

    @contextmanager
    def __call__(self, name: str, **extra):
        reset_peak()
        c0 = os.times()
        t0 = time.perf_counter()
        row = {"step": name, **extra}
        try:
            yield row
        finally:
            row["seconds"] = round(time.perf_counter() - t0, 3)
            c1 = os.times()
            row["cpu_seconds"] = round(c1.user - c0.user + c1.system - c0.system, 2)
            row["peak_rss_gb"] = round(peak_rss() / GB, 3)
            self.rows.append(row)
            print(f"  {name}: {row['seconds']:.2f} s (CPU {row['cpu_seconds']:.1f} s), peak RSS {row['peak_rss_gb']:.2f} GB", file=sys.stderr, flush=True)

    def total(self) -> dict:
        return {
            "seconds": round(sum(r["seconds"] for r in self.rows), 3),
            "cpu_seconds": round(sum(r.get("cpu_seconds", 0) for r in self.rows), 2),
            "peak_rss_gb": round(max((r["peak_rss_gb"] for r in self.rows), default=0), 3),
        }


# --------------------------------------------------------------------------
# Child processes
# --------------------------------------------------------------------------

def run_child(target: str, args: dict, env: dict | None = None, memory_cap: int | None = None,
              timeout: float | None = None) -> dict:
    """Run ``module:function(**args)`` in a fresh Python; return its JSON result.

    The function runs in ``benchmarks.child``, which adds the process's peak
    RSS and exit status. With ``memory_cap`` (bytes) the child runs under a
    hard limit set by the operating system (see :mod:`benchmarks.memcap`).
    """
    from . import memcap

    full_env = dict(os.environ)
    full_env.setdefault("MPLBACKEND", "Agg")
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    cmd = [PYTHON, "-m", "benchmarks.child", target, json.dumps(args)]
    cap = memcap.MemoryCap(memory_cap) if memory_cap else None
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=subprocess.PIPE, text=True,
                            preexec_fn=cap.preexec if cap else None)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    wall = time.perf_counter() - t0
    result = None
    for line in reversed(out.splitlines()):
        if line.startswith("BENCHMARK-RESULT "):
            result = json.loads(line[len("BENCHMARK-RESULT "):])
            break
    if result is None:
        result = {"ok": False, "error": f"the child ended with status {proc.returncode} and no result"}
    result["returncode"] = proc.returncode
    result["child_wall_seconds"] = round(wall, 3)
    if cap:
        result["memory_cap"] = cap.report()
        cap.close()
    return result


def ratio(a, b):
    """a / b, or None when either is missing or b is 0."""
    try:
        return round(a / b, 3) if a is not None and b else None
    except TypeError:
        return None


def target(what: str, goal: str, measured, met: bool | None) -> dict:
    return {"what": what, "target": goal, "measured": measured, "met": met}
