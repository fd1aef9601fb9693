"""Measure what a lazy computation really does: chunks and bytes read, peak memory.

Lessons 04 and 07 show, rather than assert, that one pixel costs a whole
chunk and that an aligned crop reads a quarter of the data; lessons 03 and 06
measure the peak memory of a computation rather than guess it. The tests and
the benchmarks measure memory with the same :func:`peak_memory`, and cap a
child process's memory with :class:`MemoryCap`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Reads:
    """What the zarr stores handed out while the block ran."""

    chunks: int = 0
    bytes: int = 0
    seconds: float = 0.0
    keys: set = field(default_factory=set)

    def __str__(self):
        return f"{self.chunks} chunks, {self.bytes / 1e6:.1f} MB read from the store in {self.seconds:.2f} s"


def _counted(original, reads, lock):
    """``original`` (a store's ``__getitem__``) that also counts the data chunks it hands out."""
    def getitem(self, key):
        value = original(self, key)
        name = key.rpartition("/")[2]  # the chunk's own name, after any folders
        if not name.startswith("."):  # .zarray, .zattrs: metadata, not data
            with lock:
                reads.chunks += 1
                reads.bytes += len(value)
                reads.keys.add(key)
        return value
    return getitem


@contextmanager
def count_reads():
    """Count the data chunks and (compressed) bytes read from zarr stores.

    Works for ``.zspy`` files opened in this process with the default
    (threaded) dask scheduler.

    Examples
    --------
    >>> with count_reads() as reads:
    ...     s.isig[0, 0].compute()
    >>> print(reads)
    """
    import zarr.storage as zs

    reads = Reads()
    lock = threading.Lock()
    classes = [zs.DirectoryStore, zs.ZipStore]
    originals = {cls: cls.__getitem__ for cls in classes}

    for cls in classes:
        cls.__getitem__ = _counted(originals[cls], reads, lock)
    t0 = time.perf_counter()
    try:
        yield reads
    finally:
        reads.seconds = time.perf_counter() - t0
        for cls, orig in originals.items():
            cls.__getitem__ = orig


MiB = 2**20


@dataclass
class PeakMemory:
    """The resident memory (RSS) of this process while a block ran, in bytes.

    ``start`` before the block, ``peak`` the largest value sampled during it,
    ``end`` after it; ``increase`` is ``peak - start``.
    """

    start: int = 0
    peak: int = 0
    end: int = 0
    seconds: float = 0.0

    @property
    def increase(self):
        return self.peak - self.start

    def __str__(self):
        return f"peak +{self.increase / MiB:.0f} MiB above the start, {self.seconds:.1f} s"


def _release_free_memory():
    # Hand memory that Python and the C allocator keep for reuse back to the
    # system, so that the start value is not inflated by earlier computations.
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl)
        pass


def _rss(process, of: str) -> int:
    """Resident memory of ``process`` (``of="self"``) or of all it started (``"children"``)."""
    import psutil

    if of == "self":
        return process.memory_info().rss
    total = 0
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:  # ended meanwhile
            pass
    return total


def _sample(process, of, mem, stop, interval):
    """Keep the largest resident memory of ``process`` (or its children) in ``mem.peak`` until ``stop`` is set."""
    while True:
        mem.peak = max(mem.peak, _rss(process, of))
        if stop.wait(interval):
            return


@contextmanager
def peak_memory(interval=0.002, release=True, of="self"):
    """Measure the peak resident memory of this process while the block runs.

    A background thread reads the process's resident set size (RSS, with
    psutil) every ``interval`` seconds and keeps the largest value. Memory
    that dask's worker threads use is included (they are in this process);
    an allocation shorter than ``interval`` may be missed. With ``release``
    (the default) memory freed by earlier work but still held by the
    allocator is first returned to the system (glibc only), so that the
    increase is not hidden by it. With ``of="children"`` the summed RSS of
    the processes this one started (a Jupyter kernel and the dask workers it
    starts) is measured instead.

    Examples
    --------
    >>> with peak_memory() as mem:
    ...     s.sum(axis=(2, 3)).compute()
    >>> print(mem)                      # peak +35 MiB above the start, 0.4 s
    >>> mem.peak / 2**30                # the peak itself, in GiB
    """
    import psutil

    if release:
        _release_free_memory()
    if of not in ("self", "children"):
        raise ValueError(f"of is 'self' or 'children', not {of!r}")
    process = psutil.Process()
    mem = PeakMemory()
    mem.start = mem.peak = _rss(process, of)
    stop = threading.Event()
    thread = threading.Thread(target=_sample, args=(process, of, mem, stop, interval),
                              name="peak_memory", daemon=True)
    thread.start()
    t0 = time.perf_counter()
    try:
        yield mem
    finally:
        mem.seconds = time.perf_counter() - t0
        stop.set()
        thread.join()
        mem.end = _rss(process, of)
        mem.peak = max(mem.peak, mem.end)


CGROUP_ROOT = Path("/sys/fs/cgroup")


class MemoryCap:
    """A hard memory limit for one child process, enforced by the operating system.

    The first that works here, in this order:

    1. cgroup v2 through systemd: the child runs in a transient scope,
       ``systemd-run --scope -p MemoryMax=... -p MemorySwapMax=0`` (``--user``
       when not root);
    2. cgroup v1: a new group of the memory controller with
       ``memory.limit_in_bytes`` (and swap forbidden where allowed), which
       the child joins before it starts;
    3. ``setrlimit(RLIMIT_AS)``: a cap on the child's address space. Stricter
       than a cgroup (it counts reserved, not resident, memory), so what
       passes under it passes under a cgroup too.

    Under a cgroup the kernel counts everything the child holds and stops it
    (the OOM killer) if it needs more. :attr:`method` and :meth:`report` say
    which cap was applied.

    Examples
    --------
    >>> cap = MemoryCap(2 * 2**30)
    >>> proc = subprocess.Popen(cap.wrap(cmd), preexec_fn=cap.preexec)
    >>> proc.wait(); print(cap.report()); cap.close()
    """

    def __init__(self, limit_bytes: int, name: str | None = None):
        self.limit = int(limit_bytes)
        self.name = name or f"lazysignals-cap-{os.getpid()}-{time.time_ns()}"
        self.group = None
        self.notes = []
        if self._systemd_scope_works():
            self.method = "cgroup v2 (systemd-run scope, MemoryMax)"
        elif self._make_v1_group():
            self.method = "cgroup v1 memory controller"
        else:
            self.method = "setrlimit(RLIMIT_AS)"

    def _systemd_scope_works(self) -> bool:
        if not (CGROUP_ROOT / "cgroup.controllers").exists() or not shutil.which("systemd-run"):
            return False
        probe = subprocess.run(self.wrap(["true"], method="systemd"), capture_output=True, text=True)
        if probe.returncode != 0:
            self.notes.append(f"systemd-run refused a scope: {probe.stderr.strip()[:200]}")
        return probe.returncode == 0

    def _make_v1_group(self) -> bool:
        v1 = CGROUP_ROOT / "memory"
        if not (v1 / "memory.limit_in_bytes").exists():
            return False
        try:
            group = v1 / self.name
            group.mkdir(exist_ok=True)
            (group / "memory.limit_in_bytes").write_text(str(self.limit))
        except OSError as e:
            self.notes.append(f"cgroup v1 not usable ({e})")
            return False
        try:
            (group / "memory.memsw.limit_in_bytes").write_text(str(self.limit))
        except OSError:
            pass  # swap accounting is off: the memory limit alone still holds
        self.group = group
        return True

    def wrap(self, cmd: list, method: str | None = None) -> list:
        """The command to start: ``cmd`` itself, or inside a systemd scope."""
        if (method or self.method).startswith(("systemd", "cgroup v2")):
            user = [] if os.geteuid() == 0 else ["--user"]
            return ["systemd-run", *user, "--scope", "--quiet", f"--unit={self.name}",
                    "-p", f"MemoryMax={self.limit}", "-p", "MemorySwapMax=0", "--", *cmd]
        return list(cmd)

    def preexec(self):
        """Runs in the child between fork and exec (``Popen(preexec_fn=...)``)."""
        if self.group is not None:
            (self.group / "cgroup.procs").write_text(str(os.getpid()))
        elif self.method.startswith("setrlimit"):
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (self.limit, self.limit))

    def report(self) -> dict:
        """Which cap was applied, its limit and (cgroup v1) the group's peak and OOM kills."""
        rep = {"method": self.method, "limit_gb": round(self.limit / 1e9, 3)}
        if self.notes:
            rep["note"] = "; ".join(self.notes)
        if self.group is not None:
            peak = self._read("memory.max_usage_in_bytes")
            rep["cgroup_max_usage_gb"] = round(int(peak) / 1e9, 3) if peak else None
            for line in (self._read("memory.oom_control") or "").splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    rep["cgroup_oom_kills"] = int(value)
        return rep

    def _read(self, name: str) -> str | None:
        try:
            return (self.group / name).read_text()
        except OSError:
            return None

    def close(self):
        """Remove the cgroup v1 group (the child has ended)."""
        for _ in range(20 if self.group is not None else 0):
            try:
                self.group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def largest_block(*arrays, exclude=()):
    """Compute dask arrays one step at a time and find the largest block any step made.

    Every step of the recipes runs on its own (no fusing of steps, one
    thread), and the size of what each step returns is recorded: the
    largest is what one thread holds at least while the computation runs,
    whatever the machine. Steps of the arrays in ``exclude`` (the data the
    recipes start from, whose blocks are the chunks themselves) are not counted.

    Returns
    -------
    (values, nbytes)
        The computed arrays (a tuple, as ``dask.compute`` gives) and the
        size of the largest block made by a step, in bytes.

    Examples
    --------
    >>> (image,), biggest = largest_block(adf.data, exclude=[s.data])
    >>> biggest / max_chunk_bytes(s.data)   # 1.0: no step holds more than a chunk
    """
    import dask
    from dask.callbacks import Callback

    skip = set()
    for x in exclude:
        skip.update(dict(getattr(x, "data", x).__dask_graph__()).keys())
    largest = [0]

    class _Watch(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            if key not in skip:
                largest[0] = max(largest[0], int(getattr(result, "nbytes", 0) or 0))

    with _Watch():
        values = dask.compute(*[getattr(a, "data", a) for a in arrays], scheduler="sync", optimize_graph=False)
    return values, largest[0]


def max_chunk_bytes(array) -> int:
    """Bytes of the largest chunk of a dask array (or of a lazy signal's data)."""
    import numpy as np

    data = getattr(array, "data", array)
    return int(np.prod([max(c) for c in data.chunks])) * data.dtype.itemsize
