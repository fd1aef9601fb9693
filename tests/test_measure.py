"""measure: what a computation reads from a zarr store, and its peak memory.

count_reads() is the instrument behind lessons 04 and 07 ("one pixel costs a
whole chunk", "the aligned crop reads 25 %"); here it is checked against
stores whose reads are known: uncompressed chunks of a known size, and
compressed ones whose sizes are those of the files on disk.
"""

import os
import time

import dask.array as da
import numpy as np
import pytest
import zarr

from lazysignals import measure
from lazysignals.measure import MiB, PeakMemory, Reads, count_reads, peak_memory

SHAPE, CHUNKS = (12, 16), (4, 8)  # a 3 x 2 grid of chunks of 32 values
GRID = (3, 2)
ITEM = np.dtype("uint16").itemsize
CHUNK_BYTES = 4 * 8 * ITEM


def _values():
    return np.arange(np.prod(SHAPE), dtype="uint16").reshape(SHAPE)


@pytest.fixture
def plain_store(tmp_path):
    """A directory store holding uncompressed chunks: each read is CHUNK_BYTES."""
    arr = zarr.open_array(str(tmp_path / "plain.zarr"), mode="w", shape=SHAPE, chunks=CHUNKS,
                          dtype="uint16", compressor=None)
    arr[:] = _values()
    return zarr.open_array(str(tmp_path / "plain.zarr"), mode="r")


@pytest.fixture
def compressed_store(tmp_path):
    path = tmp_path / "packed.zarr"
    arr = zarr.open_array(str(path), mode="w", shape=SHAPE, chunks=CHUNKS, dtype="uint16")
    arr[:] = _values()
    return path


def test_reading_one_value_reads_its_whole_chunk(plain_store):
    with count_reads() as reads:
        value = plain_store[5, 9]
    assert value == _values()[5, 9]
    assert reads.chunks == 1
    assert reads.bytes == CHUNK_BYTES
    assert reads.keys == {"1.1"}


def test_reading_everything_reads_every_chunk_once_and_no_metadata(plain_store):
    with count_reads() as reads:
        np.testing.assert_array_equal(plain_store[:], _values())
    assert reads.chunks == GRID[0] * GRID[1]
    assert reads.bytes == GRID[0] * GRID[1] * CHUNK_BYTES
    assert reads.keys == {f"{i}.{j}" for i in range(GRID[0]) for j in range(GRID[1])}


def test_metadata_files_are_not_counted_as_chunks(tmp_path, plain_store):
    with count_reads() as reads:
        zarr.open_array(str(tmp_path / "plain.zarr"), mode="r").attrs.asdict()
    assert reads.chunks == 0 and reads.bytes == 0 and not reads.keys


def test_arrays_inside_groups_count_chunks_not_metadata(tmp_path):
    # A .zspy keeps its data at Experiments/<title>/data: keys with folders in them.
    group = zarr.open_group(str(tmp_path / "nested.zspy"), mode="w")
    group.create_dataset("Experiments/scan/data", data=_values(), chunks=CHUNKS, compressor=None)
    with count_reads() as reads:
        arr = zarr.open_group(str(tmp_path / "nested.zspy"), mode="r")["Experiments/scan/data"]
        arr[0:4, 0:8]
    assert reads.keys == {"Experiments/scan/data/0.0"}
    assert reads.chunks == 1 and reads.bytes == CHUNK_BYTES


def test_compressed_bytes_are_the_sizes_of_the_chunk_files_read(compressed_store):
    x = da.from_zarr(zarr.open_array(str(compressed_store), mode="r"))
    with count_reads() as reads:
        x[4:8, :].sum().compute(scheduler="threads")  # the middle row of chunks
    on_disk = sum(os.path.getsize(compressed_store / f"1.{j}") for j in range(GRID[1]))
    assert reads.chunks == GRID[1]
    assert reads.bytes == on_disk
    assert reads.bytes != GRID[1] * CHUNK_BYTES  # the stored bytes, not the values


def test_dask_worker_threads_are_counted(plain_store):
    x = da.from_zarr(plain_store)
    with count_reads() as reads:
        total = x.sum().compute(scheduler="threads", num_workers=4)
    assert total == _values().sum()
    assert reads.chunks == GRID[0] * GRID[1]


def test_zip_stores_are_counted(tmp_path):
    path = str(tmp_path / "data.zip")
    with zarr.ZipStore(path, mode="w") as store:
        arr = zarr.open_array(store, mode="w", shape=SHAPE, chunks=CHUNKS, dtype="uint16",
                              compressor=None)
        arr[:] = _values()
    with zarr.ZipStore(path, mode="r") as store:
        arr = zarr.open_array(store, mode="r")
        with count_reads() as reads:
            arr[0:4, 0:8]
    assert reads.chunks == 1 and reads.bytes == CHUNK_BYTES


def test_reads_outside_the_block_are_not_counted(plain_store):
    with count_reads() as reads:
        plain_store[0, 0]
    plain_store[:]  # after the block: the store is no longer watched
    assert reads.chunks == 1


def test_the_store_is_restored_even_when_the_block_fails(plain_store):
    with pytest.raises(RuntimeError):
        with count_reads() as reads:
            plain_store[0, 0]
            raise RuntimeError("the learner's code failed")
    assert reads.chunks == 1
    with count_reads() as later:
        plain_store[0, 0]
    assert later.chunks == 1  # counted once, by the new block only: no wrapper left behind
    assert reads.chunks == 1


def test_reads_time_the_block_and_say_what_was_read(plain_store):
    with count_reads() as reads:
        plain_store[:]
        time.sleep(0.02)
    assert 0.02 <= reads.seconds < 5
    assert str(reads) == f"6 chunks, {6 * CHUNK_BYTES / 1e6:.1f} MB read from the store in {reads.seconds:.2f} s"


def test_reads_text_gives_megabytes_to_one_decimal():
    r = Reads(chunks=3, bytes=2_050_001, seconds=0.5)
    assert str(r) == "3 chunks, 2.1 MB read from the store in 0.50 s"


def test_reads_start_empty():
    r = Reads()
    assert (r.chunks, r.bytes, r.seconds, r.keys) == (0, 0, 0.0, set())
    assert Reads().keys is not r.keys  # each record has its own set


def test_peak_memory_sees_a_temporary_allocation():
    # Mapped and unmapped by hand: numpy's own allocation may come from memory the
    # C allocator already holds (after a large import, say) and stay resident after del.
    import mmap

    size = 200 * 2**20
    with peak_memory() as mem:
        block = mmap.mmap(-1, size)
        a = np.frombuffer(block, dtype=np.uint8)
        a[:] = 1  # touched: resident, not just reserved
        a.sum()
        del a
        block.close()
    assert mem.increase >= 0.8 * size, mem
    assert mem.peak >= mem.start + mem.increase
    assert mem.end < mem.peak - 0.5 * size, mem  # it was freed, and the peak remembers it
    assert mem.seconds > 0
    assert "MiB above the start" in str(mem)


def test_peak_memory_is_small_for_a_small_block():
    with peak_memory() as mem:
        sum(range(1000))
    assert mem.increase < 50 * 2**20, mem


def test_peak_memory_includes_memory_still_held_at_the_end():
    size = 100 * 2**20
    with peak_memory(interval=10) as mem:  # no sample during the block: only the end sees it
        kept = np.ones(size, dtype=np.uint8)
    assert mem.end - mem.start >= 0.8 * size, mem
    assert mem.peak >= mem.end
    del kept


def test_peak_memory_samples_while_the_block_runs():
    # A sampling thread that took one sample and stopped would see only the
    # start; this block holds memory for many intervals, then frees it.
    size = 100 * 2**20
    with peak_memory(interval=0.001) as mem:
        a = np.ones(size, dtype=np.uint8)
        time.sleep(0.1)
        del a
    assert mem.increase >= 0.8 * size, mem


def test_freed_memory_is_released_before_measuring_unless_asked_not_to(monkeypatch):
    calls = []
    monkeypatch.setattr(measure, "_release_free_memory", lambda: calls.append(1))
    with peak_memory():
        pass
    assert calls == [1]
    with peak_memory(release=False):
        pass
    assert calls == [1]


def test_release_free_memory_collects_garbage(monkeypatch):
    import gc

    collected = []
    monkeypatch.setattr(gc, "collect", lambda: collected.append(1))
    measure._release_free_memory()
    assert collected


def test_peak_memory_text_gives_the_increase_in_mib_and_the_time():
    mem = PeakMemory(start=100 * MiB, peak=135 * MiB, end=110 * MiB, seconds=0.44)
    assert mem.increase == 35 * MiB
    assert str(mem) == "peak +35 MiB above the start, 0.4 s"
    assert MiB == 2**20


def test_release_free_memory_asks_glibc_to_return_all_free_memory(monkeypatch):
    import ctypes

    asked = []

    class Libc:
        def malloc_trim(self, pad):
            asked.append(pad)

    monkeypatch.setattr(ctypes, "CDLL", lambda name: asked.append(name) or Libc())
    measure._release_free_memory()
    assert asked == ["libc.so.6", 0]  # no padding kept


def test_release_free_memory_works_without_glibc(monkeypatch):
    import ctypes

    def no_libc(name):
        raise OSError(f"{name} not found")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    measure._release_free_memory()  # no error on macOS, Windows or musl


def test_largest_block_sees_a_float_copy_of_a_chunk_but_not_an_integer_mask():
    import dask.array as da
    import numpy as np

    from lazysignals.measure import largest_block, max_chunk_bytes

    x = da.ones((4, 4, 8, 8), dtype="uint16", chunks=(2, 2, 4, 4))
    chunk = max_chunk_bytes(x)
    assert chunk == 2 * 2 * 4 * 4 * 2
    mask = np.zeros((8, 8), dtype=bool)
    mask[2:6, 2:6] = True
    (values,), kept = largest_block((x * mask).sum(axis=(2, 3)), exclude=[x])
    assert kept == chunk and values.tolist() == [[16] * 4] * 4
    _, floated = largest_block((x * mask.astype(float)).sum(axis=(2, 3)), exclude=[x])
    assert floated == 4 * chunk  # float64: four times the bytes of uint16


def test_largest_block_counts_the_data_when_it_is_not_excluded():
    import dask.array as da

    from lazysignals.measure import largest_block

    x = da.ones((6, 6), dtype="uint8", chunks=3)
    assert largest_block(x.sum())[1] >= 9
