"""Writing datasets safely and finding damaged ones before a lesson reads them."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from lazysignals import storage, synthetic
from lazysignals.manifest import CourseDataError, Preset


@pytest.fixture(scope="module")
def made(tmp_path_factory, tiny_preset):
    """A finished .zspy of the tiny preset, made once; tests work on copies."""
    p = tiny_preset()
    folder = tmp_path_factory.mktemp("made")
    path = synthetic.generate(p, folder, progress=False)["zspy"]
    return p, path


@pytest.fixture
def copy(made, tmp_path):
    p, path = made
    dst = tmp_path / path.name
    shutil.copytree(path, dst)
    return p, dst


def chunk_files(zspy: Path) -> list[Path]:
    data = next(zspy.glob("Experiments/*/data"))
    return sorted(f for f in data.rglob("*") if f.is_file() and not f.name.startswith("."))


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if storage.PARTIAL_MARK in p.name]


# --------------------------------------------------------------------------
# A finished dataset is complete and says what it is
# --------------------------------------------------------------------------

def test_generated_zspy_is_complete_stamped_and_loads(made):
    import hyperspy.api as hs

    p, path = made
    info = storage.verify_zspy(path, deep=True)
    assert info["shape"] == p.data_shape and info["chunks"] == p.chunks
    assert len(chunk_files(path)) == info["nchunks"] == 3 * 2 * 4 * 4
    st = storage.read_stamp(path)
    assert st["model_version"] == synthetic.MODEL_VERSION and st["seed"] == p.seed
    s = hs.load(path, lazy=True)
    np.testing.assert_array_equal(np.asarray(s.data), synthetic.make_lazy_signal(p).data.compute())
    assert not leftovers(path.parent)


def test_zspy_compresses_a_few_times_not_tens(made):
    """Counts like a real detector's: noisy enough that blosc-zstd gains a few times only."""
    p, path = made
    stored = sum(f.stat().st_size for f in chunk_files(path))
    assert 2 < p.nbytes / stored < 12


# --------------------------------------------------------------------------
# Damage is found, and the message says how to remake the dataset
# --------------------------------------------------------------------------

def test_verify_detects_a_missing_chunk(copy):
    _, path = copy
    chunk_files(path)[5].unlink()
    with pytest.raises(CourseDataError, match="1 of 96 chunks are missing or empty") as e:
        storage.verify_zspy(path)
    assert "--overwrite" in str(e.value) and "make it again" in str(e.value)


def test_verify_detects_an_empty_chunk(copy):
    _, path = copy
    chunk_files(path)[-1].write_bytes(b"")
    with pytest.raises(CourseDataError, match="missing or empty") as e:
        storage.verify_zspy(path)
    assert "--overwrite" in str(e.value)


def test_deep_verify_detects_a_corrupted_chunk(copy):
    _, path = copy
    victim = chunk_files(path)[7]
    victim.write_bytes(b"this is not a compressed chunk " * 8)
    storage.verify_zspy(path)  # every chunk is there and non-empty ...
    with pytest.raises(CourseDataError, match="cannot be read") as e:
        storage.verify_zspy(path, deep=True)  # ... but one cannot be decoded
    assert "--overwrite" in str(e.value)


def test_verify_rejects_a_folder_without_data(tmp_path):
    (tmp_path / "empty.zspy").mkdir()
    with pytest.raises(CourseDataError, match="no data array"):
        storage.verify_zspy(tmp_path / "empty.zspy")


# --------------------------------------------------------------------------
# Writing is atomic
# --------------------------------------------------------------------------

def test_existing_destination_is_not_overwritten_unless_asked(copy):
    p, path = copy
    marker = path / "marker"
    marker.write_text("still the old dataset")
    with pytest.raises(CourseDataError, match="already exists") as e:
        synthetic.generate(p, path.parent, progress=False)
    assert "overwrite" in str(e.value)
    assert marker.read_text() == "still the old dataset"
    synthetic.generate(p, path.parent, overwrite=True, progress=False)
    assert not marker.exists()
    storage.verify_zspy(path, deep=True)
    assert not leftovers(path.parent)


def test_error_while_writing_leaves_the_final_path_untouched(tmp_path):
    final = tmp_path / "x.zspy"
    with pytest.raises(RuntimeError):
        with storage.atomic_target(final) as tmp:
            tmp.mkdir()
            (tmp / "half").write_text("half written")
            raise RuntimeError("interrupted")
    assert not final.exists()
    assert not leftovers(tmp_path)


STREAM = dict(name="killme", description="interruption test", navigation_shape=(96, 48),
              signal_shape=(64, 64), chunk=16, dtype="uint16", seed=11, scan_scale_nm=1.0,
              detector_scale_mrad=0.2, dose=60.0, defects=True)


def test_interrupted_generation_leaves_no_finished_file_and_a_rerun_recovers(tmp_path):
    p = Preset(**STREAM)
    final = tmp_path / p.filename("zspy")
    code = textwrap.dedent(f"""
        from lazysignals.manifest import Preset
        from lazysignals import synthetic
        synthetic.generate(Preset(**{STREAM!r}), {str(tmp_path)!r}, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    written = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        written = [f for d in leftovers(tmp_path) for f in d.rglob("*") if f.is_file()]
        if len(written) > 30:  # well into the data, of 288 chunks
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the writer finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert written, "nothing had been written when the writer was killed"
    assert not final.exists(), "a killed writer left a dataset under the final name"
    assert leftovers(tmp_path), "the killed writer's partial folder should still be there"

    path = synthetic.generate(p, tmp_path, progress=False)["zspy"]  # a fresh run
    assert path == final
    assert not leftovers(tmp_path), "the rerun did not clean up after the killed writer"
    storage.verify_zspy(path, deep=True)
    import hyperspy.api as hs

    np.testing.assert_array_equal(np.asarray(hs.load(path, lazy=True).data),
                                  synthetic.make_lazy_signal(p).data.compute())


def test_a_running_writers_partial_folder_is_left_alone(tmp_path):
    final = tmp_path / "x.zspy"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = final.with_name(f".{final.name}{storage.PARTIAL_MARK}{other.pid}")
        live.mkdir()
        dead = final.with_name(f".{final.name}{storage.PARTIAL_MARK}{2**22 + 12345}")
        dead.mkdir()
        removed = storage.clean_partials(final)
        assert removed == [dead] and live.exists() and not dead.exists()
    finally:
        other.kill()
        other.wait()


# --------------------------------------------------------------------------
# A full disk is reported clearly
# --------------------------------------------------------------------------

def test_full_disk_while_writing_gives_a_clear_message_and_keeps_nothing(tmp_path, monkeypatch, tiny_preset):
    import zarr

    real_setitem = zarr.storage.NestedDirectoryStore.__setitem__
    chunks_written = []

    def setitem(self, key, value):
        if key.rsplit("/", 1)[-1][:1].isdigit():  # a data chunk, not metadata
            if len(chunks_written) >= 10:
                raise OSError(errno.ENOSPC, "No space left on device")
            chunks_written.append(key)
        return real_setitem(self, key, value)

    monkeypatch.setattr(zarr.storage.NestedDirectoryStore, "__setitem__", setitem)
    p = tiny_preset()
    with pytest.raises(CourseDataError, match="disk filled up") as e:
        synthetic.generate(p, tmp_path, progress=False)
    assert "--dest" in str(e.value) and "nothing was kept" in str(e.value)
    assert len(chunks_written) == 10
    assert not (tmp_path / p.filename("zspy")).exists()
    assert not leftovers(tmp_path)


def test_too_little_free_space_is_reported_before_writing(tmp_path, monkeypatch, tiny_preset):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(storage.shutil, "disk_usage",
                        lambda path: usage._replace(free=10_000))
    p = tiny_preset()
    with pytest.raises(CourseDataError, match="Not enough free disk space") as e:
        synthetic.generate(p, tmp_path, progress=False)
    assert "smaller preset" in str(e.value)
    assert not any(tmp_path.iterdir())


def test_stamp_round_trips_and_a_missing_stamp_reads_as_none(tmp_path, tiny_preset):
    (tmp_path / "a.zspy").mkdir()
    assert storage.read_stamp(tmp_path / "a.zspy") is None
    info = synthetic.stamp(tiny_preset(), 7)
    storage.write_stamp(tmp_path / "a.zspy", info)
    assert storage.read_stamp(tmp_path / "a.zspy") == json.loads(json.dumps(info))


def test_course_zspy_is_written_with_the_course_compressor(tmp_path):
    """lz4 level 5 with bit shuffle: faster to write and read than HyperSpy's default (README)."""
    import zarr

    from lazysignals import synthetic
    from lazysignals.manifest import get_preset

    path = synthetic.generate(get_preset("ci"), tmp_path, progress=False)["zspy"]
    group = zarr.open(str(path), mode="r")["Experiments"]
    compressor = group[next(iter(group.group_keys()))]["data"].compressor
    assert (compressor.cname, compressor.clevel, compressor.shuffle) == ("lz4", 5, 2)
