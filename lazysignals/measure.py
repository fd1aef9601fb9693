"""Measure what a lazy computation really does: chunks and bytes read, peak memory.

Lessons 04 and 07 show, rather than assert, that one pixel costs a whole
chunk and that an aligned crop reads a quarter of the data; lessons 03 and 06
measure the peak memory of a computation rather than guess it.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field


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
        name = key.rsplit("/", 1)[-1]
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


def _sample(process, mem, stop, interval):
    """Keep the largest resident memory of ``process`` in ``mem.peak`` until ``stop`` is set."""
    while True:
        rss = process.memory_info().rss
        if rss > mem.peak:
            mem.peak = rss
        if stop.wait(interval):
            break


@contextmanager
def peak_memory(interval=0.002, release=True):
    """Measure the peak resident memory of this process while the block runs.

    A background thread reads the process's resident set size (RSS, with
    psutil) every ``interval`` seconds and keeps the largest value. Memory
    that dask's worker threads use is included (they are in this process);
    an allocation shorter than ``interval`` may be missed. With ``release``
    (the default) memory freed by earlier work but still held by the
    allocator is first returned to the system (glibc only), so that the
    increase is not hidden by it.

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
    process = psutil.Process()
    mem = PeakMemory()
    mem.start = mem.peak = process.memory_info().rss
    stop = threading.Event()
    thread = threading.Thread(target=_sample, args=(process, mem, stop, interval),
                              name="peak_memory", daemon=True)
    thread.start()
    t0 = time.perf_counter()
    try:
        yield mem
    finally:
        mem.seconds = time.perf_counter() - t0
        stop.set()
        thread.join()
        mem.end = process.memory_info().rss
        mem.peak = max(mem.peak, mem.end)
