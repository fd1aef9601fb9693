"""What lessons call: which dataset they get, and that it is made when missing or stale."""

import h5py
import pytest

from lazysignals import data, manifest, storage


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(manifest.DATA_ENV, str(tmp_path))
    monkeypatch.delenv(data.PRESET_ENV, raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    return tmp_path


def test_lessons_get_the_default_preset_unless_told_otherwise(data_dir, monkeypatch):
    assert data.resolve_name() == manifest.default_preset()
    monkeypatch.setenv(data.PRESET_ENV, "workshop")
    assert data.resolve_name() == "workshop"
    assert data.resolve_name("binder") == "binder"


def test_grading_always_uses_the_manifests_grading_preset(data_dir, monkeypatch):
    monkeypatch.setenv(data.PRESET_ENV, "workshop")
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert data.resolve_name() == manifest.preset_for("grading")
    assert manifest.get_preset(data.resolve_name()).nbytes < 10e6


def test_load_makes_a_missing_dataset_and_opens_it_lazily(data_dir):
    s = data.load("ci")
    assert s._lazy
    p = manifest.get_preset("ci")
    assert s.data.shape == p.data_shape and s.data.chunksize == p.chunks
    assert (data_dir / p.filename("zspy")).is_dir()


def test_saving_a_signal_derived_from_the_course_data_prints_nothing(data_dir, capsys):
    # The ground truth maps were left lazy: each one was written with its own dask progress bar
    # (and 100 ms of its timer), whatever show_progressbar said.
    s = data.load("ci")
    truth = data.ground_truth(s)
    capsys.readouterr()
    s.inav[:4, :4].save(data_dir / "part.zspy", show_progressbar=False)
    out = capsys.readouterr()
    assert "Completed" not in out.out + out.err
    again = data.open_path(data_dir / "part.zspy")
    assert again._lazy
    for k, v in data.ground_truth(again).items():
        assert (v == truth[k]).all()


def test_hspy_copy_from_an_older_model_is_made_again(data_dir):
    p = manifest.get_preset("ci")
    path = data.synthetic_path("ci", fmt="hspy", progress=False)
    assert data.is_ready(path, p, p.seed)
    stamp = storage.read_stamp(path)
    storage.write_stamp(path, dict(stamp, model_version=-1))
    assert not data.is_ready(path, p, p.seed)
    again = data.synthetic_path("ci", fmt="hspy", progress=False)
    assert data.is_ready(again, p, p.seed)


def test_hspy_changed_after_it_was_made_is_not_ready(data_dir):
    p = manifest.get_preset("ci")
    path = data.synthetic_path("ci", fmt="hspy", progress=False)
    with h5py.File(path, "r+") as f:
        exp = next(iter(f["Experiments"].values()))
        exp["metadata/Sample/synthetic"].attrs["model_version"] = -1
    assert not data.is_ready(path, p, p.seed)


def test_truncated_hspy_is_not_taken_for_a_dataset(data_dir):
    p = manifest.get_preset("ci")
    path = data_dir / p.filename("hspy")
    path.write_bytes(b"\x89HDF\r\n")
    assert not data.is_ready(path, p, p.seed)


def test_prepare_makes_both_formats_once_and_reuses_them(data_dir):
    p = manifest.get_preset("ci")
    paths = data.prepare("ci", progress=False)
    assert set(paths) == set(data.FORMATS)
    assert all(data.is_ready(path, p, p.seed) for path in paths.values())
    times = {fmt: storage.stamp_path(path).stat().st_mtime_ns for fmt, path in paths.items()}
    assert data.prepare("ci", progress=False) == paths
    assert {fmt: storage.stamp_path(path).stat().st_mtime_ns for fmt, path in paths.items()} == times


def test_prepare_refuses_an_unknown_format_naming_the_valid_ones(data_dir):
    with pytest.raises(manifest.CourseDataError, match="zspy, hspy"):
        data.prepare("ci", formats=("tiff",))


def test_ground_truth_is_only_on_synthetic_data():
    import hyperspy.api as hs
    import numpy as np

    with pytest.raises(manifest.CourseDataError, match="synthetic"):
        data.ground_truth(hs.signals.Signal2D(np.zeros((2, 2, 4, 4))))
