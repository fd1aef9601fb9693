"""Measure what a lazy computation really does: chunks and bytes read.

Lessons 04 and 07 show, rather than assert, that one pixel costs a whole
chunk and that an aligned crop reads a quarter of the data.
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

    def wrap(original):
        def getitem(self, key):
            value = original(self, key)
            name = key.rsplit("/", 1)[-1]
            if not name.startswith("."):
                with lock:
                    reads.chunks += 1
                    reads.bytes += len(value)
                    reads.keys.add(key)
            return value
        return getitem

    for cls in classes:
        cls.__getitem__ = wrap(originals[cls])
    t0 = time.perf_counter()
    try:
        yield reads
    finally:
        reads.seconds = time.perf_counter() - t0
        for cls, orig in originals.items():
            cls.__getitem__ = orig
