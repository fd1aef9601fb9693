"""measure: what a computation reads from a zarr store, and its peak memory.

count_reads() is the instrument behind lessons 04 and 07 ("one pixel costs a
whole chunk", "the aligned crop reads 25 %"); here it is checked against
stores whose reads are known: uncompressed chunks of a known size, and
compressed ones whose sizes are those of the files on disk.
"""

import os
import threading
import time
from types import SimpleNamespace

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


def test_largest_block_takes_a_lazy_signal_and_computes_it_step_by_step_in_the_calling_thread():
    import dask.array as da
    import hyperspy.api as hs

    threads = set()

    def note_thread(block):
        threads.add(threading.get_ident())
        return block

    x = da.ones((4, 4, 8, 8), dtype="uint16", chunks=(2, 2, 4, 4))
    s = hs.signals.Signal2D(x.map_blocks(note_thread)).as_lazy()
    (values,), biggest = measure.largest_block(s, exclude=[x])
    assert isinstance(values, np.ndarray) and values.shape == (4, 4, 8, 8) and values.sum() == 4 * 4 * 8 * 8
    assert biggest == x.nbytes  # the whole result, put together at the end, is a block too
    assert threads == {threading.get_ident()}  # one step at a time, here: the largest block is one thread's


def test_largest_block_counts_nothing_for_steps_without_an_array_or_with_an_empty_one():
    import dask.array as da

    empty = da.zeros((0, 4), chunks=2)
    assert measure.largest_block(empty)[1] == 0
    x = da.ones((6, 6), chunks=3)
    # a mean's partial results are dicts of counts and totals (no array): only the mean itself, a float64, counts
    (mean,), biggest = measure.largest_block(x.mean(), exclude=[x])
    assert mean == 1.0 and biggest == 8


def test_the_memory_of_child_processes_is_summed_over_all_descendants():
    import psutil

    class Child:
        def __init__(self, rss):
            self.rss = rss

        def memory_info(self):
            if self.rss is None:
                raise psutil.NoSuchProcess(1234)  # ended between the listing and the reading
            return SimpleNamespace(rss=self.rss)

    asked = []

    class Process:
        def children(self, recursive=False):
            asked.append(recursive)
            return [Child(3 * MiB), Child(None), Child(5 * MiB)]

        def memory_info(self):
            return SimpleNamespace(rss=100 * MiB)

    assert measure._rss(Process(), "children") == 8 * MiB
    assert asked == [True]  # grandchildren too: the kernel's dask workers are its children
    assert measure._rss(Process(), "self") == 100 * MiB


def test_a_key_without_folders_is_a_chunk_and_metadata_inside_folders_is_not():
    reads, original = Reads(), (lambda store, key: b"12345")
    getitem = measure._counted(original, reads, threading.Lock())
    for key in ("0.0", "Experiments/scan/data/1.2", "Experiments/scan/data/.zarray", ".zgroup", "a.b/.zattrs"):
        assert getitem(None, key) == b"12345"
    assert reads.keys == {"0.0", "Experiments/scan/data/1.2"} and reads.chunks == 2 and reads.bytes == 10


# MemoryCap: which cap applies and what it runs, on a cgroup tree and a systemd-run made for the test

def _fake_systemd_run(folder, exit_code=0, stderr=""):
    """A systemd-run that records its arguments (one a line) and exits with ``exit_code``."""
    folder.mkdir(exist_ok=True)
    script = folder / "systemd-run"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> "{folder}/calls"\nprintf "%s" "{stderr}" >&2\nexit {exit_code}\n')
    script.chmod(0o755)
    return folder / "calls"


def test_with_cgroup_v2_the_cap_runs_the_child_in_a_systemd_scope_with_no_swap(tmp_path, monkeypatch):
    monkeypatch.setattr(measure, "CGROUP_ROOT", tmp_path / "cgroup")
    (tmp_path / "cgroup").mkdir()
    (tmp_path / "cgroup" / "cgroup.controllers").write_text("cpu memory\n")
    calls = _fake_systemd_run(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    limits = []
    monkeypatch.setattr("resource.setrlimit", lambda *a: limits.append(a))

    cap = measure.MemoryCap(256 * MiB, name="lesson-cap")
    assert cap.method == "cgroup v2 (systemd-run scope, MemoryMax)"
    user = [] if os.geteuid() == 0 else ["--user"]  # a user's own systemd when not root
    scope = [*user, "--scope", "--quiet", "--unit=lesson-cap", "-p", f"MemoryMax={256 * MiB}", "-p", "MemorySwapMax=0",
             "--"]
    assert calls.read_text().split("\n")[:-1] == [*scope, "true"]  # the probe: a scope for `true`
    assert cap.wrap(["python", "-c", "pass"]) == ["systemd-run", *scope, "python", "-c", "pass"]
    cap.preexec()
    assert limits == [] and cap.group is None
    assert cap.report() == {"method": cap.method, "limit_gb": 0.268}
    cap.close()
    monkeypatch.setattr(measure.os, "geteuid", lambda: 1000)  # not root: the user's own systemd
    assert measure.MemoryCap(256 * MiB, name="mine").wrap(["python"])[:3] == ["systemd-run", "--user", "--scope"]


def test_a_refused_scope_is_noted_and_the_address_space_limit_applied(tmp_path, monkeypatch):
    import resource

    monkeypatch.setattr(measure, "CGROUP_ROOT", tmp_path / "cgroup")
    (tmp_path / "cgroup").mkdir()
    (tmp_path / "cgroup" / "cgroup.controllers").write_text("memory\n")
    _fake_systemd_run(tmp_path / "bin", exit_code=1, stderr="  Failed to connect to bus: " + "x" * 300)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    limits = []
    monkeypatch.setattr(resource, "setrlimit", lambda *a: limits.append(a))

    cap = measure.MemoryCap(2 * 2**30)
    assert cap.method == "setrlimit(RLIMIT_AS)" and cap.group is None
    assert cap.notes == ["systemd-run refused a scope: " + ("Failed to connect to bus: " + "x" * 300)[:200]]
    assert cap.report() == {"method": "setrlimit(RLIMIT_AS)", "limit_gb": 2.147, "note": cap.notes[0]}
    assert cap.wrap(["python"]) == ["python"]
    cap.preexec()
    assert limits == [(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))]


def test_without_systemd_run_or_cgroups_there_is_nothing_to_note(tmp_path, monkeypatch):
    monkeypatch.setattr(measure, "CGROUP_ROOT", tmp_path)
    (tmp_path / "cgroup.controllers").write_text("memory\n")  # cgroup v2, but no systemd-run to use it
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    cap = measure.MemoryCap(1.5e9)
    assert cap.method == "setrlimit(RLIMIT_AS)" and cap.notes == [] and cap.limit == 1_500_000_000
    assert cap.report() == {"method": "setrlimit(RLIMIT_AS)", "limit_gb": 1.5}
    other = measure.MemoryCap(1e9)
    assert cap.name.startswith(f"lazysignals-cap-{os.getpid()}-") and other.name != cap.name


def _fake_cgroup_v1(tmp_path, monkeypatch, root_limit="0"):
    """A cgroup v1 memory controller under ``tmp_path`` (root group limit ``root_limit``), no systemd-run on PATH."""
    monkeypatch.setattr(measure, "CGROUP_ROOT", tmp_path)
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text(f"{root_limit}\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))


def test_with_cgroup_v1_the_child_joins_a_new_group_limited_with_and_without_swap(tmp_path, monkeypatch):
    _fake_cgroup_v1(tmp_path, monkeypatch, root_limit="9223372036854771712")

    cap = measure.MemoryCap(300 * MiB, name="lesson-cap")
    group = tmp_path / "memory" / "lesson-cap"
    assert cap.method == "cgroup v1 memory controller" and cap.group == group
    assert (group / "memory.limit_in_bytes").read_text() == str(300 * MiB)
    assert (group / "memory.memsw.limit_in_bytes").read_text() == str(300 * MiB)  # no swapping past it
    cmd = ["python", "-c", "pass"]
    assert cap.wrap(cmd) == cmd and cap.wrap(cmd) is not cmd
    cap.preexec()  # in the child, between fork and exec: it joins the group
    assert (group / "cgroup.procs").read_text() == str(os.getpid())
    assert cap.report() == {"method": cap.method, "limit_gb": 0.315, "cgroup_max_usage_gb": None}
    (group / "memory.max_usage_in_bytes").write_text("123456789\n")
    (group / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert cap.report() == {"method": cap.method, "limit_gb": 0.315, "cgroup_max_usage_gb": 0.123,
                            "cgroup_oom_kills": 2}
    for f in group.iterdir():  # the kernel empties a group when its processes have ended
        f.unlink()
    cap.close()
    assert not group.exists()


def test_cgroup_v1_without_swap_accounting_still_limits_memory(tmp_path, monkeypatch):
    _fake_cgroup_v1(tmp_path, monkeypatch)
    (tmp_path / "memory" / "lesson-cap" / "memory.memsw.limit_in_bytes").mkdir(parents=True)  # cannot be written
    cap = measure.MemoryCap(100 * MiB, name="lesson-cap")
    assert cap.method == "cgroup v1 memory controller" and cap.notes == []
    assert (tmp_path / "memory" / "lesson-cap" / "memory.limit_in_bytes").read_text() == str(100 * MiB)


def test_a_cgroup_v1_group_that_cannot_be_made_is_noted_and_the_address_space_limit_applied(tmp_path, monkeypatch):
    _fake_cgroup_v1(tmp_path, monkeypatch)
    (tmp_path / "memory" / "lesson-cap").write_text("a file where the group would go")
    cap = measure.MemoryCap(100 * MiB, name="lesson-cap")
    assert cap.method == "setrlimit(RLIMIT_AS)" and cap.group is None
    assert len(cap.notes) == 1 and cap.notes[0].startswith("cgroup v1 not usable (") and "lesson-cap" in cap.notes[0]
    # with a systemd-run that refuses too, the report gives both reasons
    (tmp_path / "cgroup.controllers").write_text("memory\n")
    _fake_systemd_run(tmp_path / "bin", exit_code=1, stderr="no scope here")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    both = measure.MemoryCap(100 * MiB, name="lesson-cap")
    assert both.report()["note"] == f"systemd-run refused a scope: no scope here; {cap.notes[0]}"


def test_closing_a_group_still_in_use_gives_up_after_twenty_tries_in_two_seconds(tmp_path, monkeypatch):
    _fake_cgroup_v1(tmp_path, monkeypatch)
    cap = measure.MemoryCap(100 * MiB, name="busy")
    waits = []
    monkeypatch.setattr(measure.time, "sleep", waits.append)
    cap.close()  # its limit files are still there: not empty yet
    assert waits == [0.1] * 20 and cap.group.exists()
    monkeypatch.setattr(measure, "CGROUP_ROOT", tmp_path / "none")
    quiet = measure.MemoryCap(100 * MiB)
    quiet.close()  # no group: nothing to wait for
    assert len(waits) == 20
