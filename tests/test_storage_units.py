"""storage, piece by piece, on tiny zarr folders made here (no dataset generation):
what counts as a complete .zspy, what an interrupted writer leaves and who
cleans it, and the messages that say what to do.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import zarr

from lazysignals import storage
from lazysignals.manifest import CourseDataError


def small_zspy(path, shape=(4, 6, 8, 8), chunks=(2, 3, 4, 4), separator="/"):
    """A .zspy-like folder: a zarr group with the data at Experiments/<title>/data."""
    group = zarr.open_group(str(path), mode="w")
    values = np.arange(np.prod(shape), dtype="uint16").reshape(shape)
    group.create_dataset("Experiments/title/data", data=values, chunks=chunks,
                         dimension_separator=separator)
    return path / "Experiments" / "title" / "data"


def chunk_files(array_dir):
    return sorted(p for p in array_dir.rglob("*") if p.is_file() and not p.name.startswith("."))


# verify_zspy

def test_a_complete_folder_is_described_by_its_shape_chunks_and_count(tmp_path):
    small_zspy(tmp_path / "a.zspy")
    info = storage.verify_zspy(tmp_path / "a.zspy", deep=True)
    assert info == {"shape": (4, 6, 8, 8), "chunks": (2, 3, 4, 4), "dtype": "<u2", "nchunks": 2 * 2 * 2 * 2}


def test_partial_edge_chunks_are_counted_as_chunks(tmp_path):
    small_zspy(tmp_path / "a.zspy", shape=(5, 7, 8, 8), chunks=(2, 3, 4, 4), separator=".")
    assert storage.verify_zspy(tmp_path / "a.zspy", deep=True)["nchunks"] == 3 * 3 * 2 * 2


def test_missing_chunks_are_counted_in_the_message(tmp_path):
    data = small_zspy(tmp_path / "a.zspy")
    for f in chunk_files(data)[:3]:
        f.unlink()
    with pytest.raises(CourseDataError) as e:
        storage.verify_zspy(tmp_path / "a.zspy")
    assert "is incomplete: 3 of 16 chunks are missing or empty." in str(e.value)
    assert "python -m lazysignals data --preset NAME --overwrite" in str(e.value)


def test_empty_chunk_files_count_as_missing(tmp_path):
    data = small_zspy(tmp_path / "a.zspy")
    chunk_files(data)[0].write_bytes(b"")
    chunk_files(data)[5].write_bytes(b"")
    with pytest.raises(CourseDataError, match="is incomplete: 2 of 16 chunks are missing or empty"):
        storage.verify_zspy(tmp_path / "a.zspy")


def test_a_damaged_chunk_is_found_by_the_deep_check_only(tmp_path):
    data = small_zspy(tmp_path / "a.zspy", separator=".")
    damaged = chunk_files(data)[-1]
    damaged.write_bytes(b"garbage, not a compressed chunk")
    assert storage.verify_zspy(tmp_path / "a.zspy")["nchunks"] == 16
    with pytest.raises(CourseDataError) as e:
        storage.verify_zspy(tmp_path / "a.zspy", deep=True)
    assert f"chunk {damaged.name} cannot be read" in str(e.value)


@pytest.mark.parametrize("separator, key", [("/", "1/1/1/1"), (".", "1.1.1.1"), (None, "1.1.1.1")])
def test_a_damaged_chunk_is_named_as_zarr_names_it(tmp_path, separator, key):
    data = small_zspy(tmp_path / "a.zspy", separator=separator or ".")
    if separator is None:  # arrays written before zarr recorded the separator
        meta = json.loads((data / ".zarray").read_text())
        del meta["dimension_separator"]
        (data / ".zarray").write_text(json.dumps(meta))
    (data / key).write_bytes(b"garbage")
    with pytest.raises(CourseDataError, match=f"chunk {key} cannot be read"):
        storage.verify_zspy(tmp_path / "a.zspy", deep=True)


def test_a_damaged_array_description_is_named(tmp_path):
    data = small_zspy(tmp_path / "a.zspy")
    (data / ".zarray").write_text("{not json")
    with pytest.raises(CourseDataError, match="the array description is damaged"):
        storage.verify_zspy(tmp_path / "a.zspy")


def test_not_a_folder_and_a_folder_without_data_are_refused(tmp_path):
    (tmp_path / "file.zspy").write_text("x")
    with pytest.raises(CourseDataError, match=r"file.zspy is not a .zspy folder\. Remove it"):
        storage.verify_zspy(tmp_path / "file.zspy")
    (tmp_path / "empty.zspy").mkdir()
    with pytest.raises(CourseDataError, match="no data array found"):
        storage.verify_zspy(tmp_path / "empty.zspy")


def test_chunk_indices_walk_the_whole_grid_in_order():
    assert list(storage._chunk_indices([2, 3])) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert list(storage._chunk_indices([])) == [()]
    assert len(list(storage._chunk_indices([2, 2, 3, 1]))) == 12


# stamps

def test_stamp_is_json_beside_the_data_and_a_damaged_one_reads_as_none(tmp_path):
    storage.write_stamp(tmp_path, {"seed": 3, "preset": "ci"})
    assert json.loads((tmp_path / storage.STAMP_NAME).read_text()) == {"preset": "ci", "seed": 3}
    assert storage.read_stamp(tmp_path) == {"preset": "ci", "seed": 3}
    (tmp_path / storage.STAMP_NAME).write_text("{")
    assert storage.read_stamp(tmp_path) is None
    assert storage.read_stamp(tmp_path / "nowhere") is None


# partial folders

def test_partial_folder_is_hidden_beside_the_final_path_and_names_this_process(tmp_path):
    final = tmp_path / "data.zspy"
    assert storage.partial_path(final) == tmp_path / f".data.zspy{storage.PARTIAL_MARK}{os.getpid()}"


def test_remove_deletes_folders_files_and_dangling_links_and_ignores_missing_paths(tmp_path):
    folder = tmp_path / "folder"
    (folder / "inner").mkdir(parents=True)
    (folder / "inner" / "f").write_text("x")
    storage.remove(folder)
    assert not folder.exists()
    file = tmp_path / "file"
    file.write_text("x")
    storage.remove(file)
    assert not file.exists()
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "gone")
    storage.remove(link)
    assert not link.is_symlink()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "f").write_text("x")
    to_kept = tmp_path / "to_kept"
    to_kept.symlink_to(kept)
    storage.remove(to_kept)  # a link to a folder: the link goes, the folder stays
    assert not to_kept.is_symlink() and (kept / "f").exists()
    storage.remove(tmp_path / "never-there")


def _finished_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_clean_partials_removes_what_dead_writers_left_and_keeps_a_running_ones(tmp_path):
    final = tmp_path / "data.zspy"
    dead = tmp_path / f".data.zspy{storage.PARTIAL_MARK}{_finished_pid()}"
    odd = tmp_path / f".data.zspy{storage.PARTIAL_MARK}unknown"
    mine = tmp_path / f".data.zspy{storage.PARTIAL_MARK}{os.getpid()}"
    other = tmp_path / f".other.zspy{storage.PARTIAL_MARK}1"
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = tmp_path / f".data.zspy{storage.PARTIAL_MARK}{running.pid}"
        for p in (dead, odd, mine, other, live):
            p.mkdir()
        removed = storage.clean_partials(final)
        assert sorted(removed) == sorted([dead, odd, mine])
        assert live.exists() and other.exists()
        assert not dead.exists() and not odd.exists() and not mine.exists()
    finally:
        running.kill()
        running.wait()
    assert storage.clean_partials(tmp_path / "missing" / "data.zspy") == []


def test_alive_tells_a_running_process_from_a_finished_one():
    assert storage._alive(os.getpid())
    assert not storage._alive(_finished_pid())


def test_a_process_we_may_not_signal_counts_as_alive(monkeypatch):
    def refused(pid, sig):
        raise PermissionError

    monkeypatch.setattr(os, "kill", refused)
    assert storage._alive(12345)


# free space

Usage = collections.namedtuple("Usage", "total used free")


def test_free_space_check_passes_with_enough_room_and_names_both_numbers_without(tmp_path, monkeypatch):
    free = 1_005_000_001
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda path: Usage(10**10, 0, free))
    storage.check_free_space(tmp_path / "new" / "deeper", free)  # exactly enough
    assert (tmp_path / "new" / "deeper").is_dir()  # made, ready to write into
    with pytest.raises(CourseDataError) as e:
        storage.check_free_space(tmp_path, 2_005_000_001)
    assert str(e.value).startswith(f"Not enough free disk space in {tmp_path}: 2.01 GB needed, 1.01 GB free.")
    assert "--dest" in str(e.value)


def test_course_compressor_is_blosc_lz4_level_5_bit_shuffle():
    from numcodecs import Blosc

    c = storage.course_compressor()
    assert (c.cname, c.clevel, c.shuffle) == ("lz4", 5, Blosc.BITSHUFFLE)


# atomic_target (without generating data)

def test_atomic_target_renames_a_finished_write_and_replaces_only_when_asked(tmp_path):
    final = tmp_path / "out" / "data.zspy"
    with storage.atomic_target(final) as tmp:
        assert tmp.parent == storage.partial_path(final)
        tmp.mkdir()
        (tmp / "v").write_text("1")
    assert (final / "v").read_text() == "1"
    assert sorted(p.name for p in final.parent.iterdir()) == ["data.zspy"]
    with pytest.raises(CourseDataError, match="already exists; it was left as it is"):
        with storage.atomic_target(final):
            pass
    with storage.atomic_target(final, overwrite=True) as tmp:
        tmp.mkdir()
        (tmp / "v").write_text("2")
    assert (final / "v").read_text() == "2"
    assert sorted(p.name for p in final.parent.iterdir()) == ["data.zspy"]


def test_atomic_target_keeps_nothing_when_nothing_was_written(tmp_path):
    final = tmp_path / "data.zspy"
    with pytest.raises(CourseDataError, match="produced nothing; nothing was kept"):
        with storage.atomic_target(final):
            pass
    assert list(tmp_path.iterdir()) == []
