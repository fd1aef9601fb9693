"""The workshop benchmark's course sequence runs on a small twin, and lesson 09's one pass gives the steps' results."""

import matplotlib

matplotlib.use("Agg")

from benchmarks import pipeline  # noqa: E402
from lazysignals.data import prepare  # noqa: E402


def even_twin(tmp_path):
    """The ci preset cropped to even scan lengths (rebin by 2) and saved as .zspy."""
    import hyperspy.api as hs

    s = hs.load(prepare("ci", formats=("zspy",), dest=tmp_path / "data", progress=False)["zspy"], lazy=True)
    nx, ny = s.axes_manager.navigation_shape
    s = s.inav[: nx - nx % 2, : ny - ny % 2]
    path = tmp_path / "even.zspy"
    s.save(path, chunks=s.data.chunksize, show_progressbar=False)
    return path


def test_one_pass_gives_the_same_results_as_the_steps_one_by_one(tmp_path):
    path = even_twin(tmp_path)
    # a budget too small for the rebinned data: the rebin step saves it to a .zspy, read back for its digest
    info = pipeline.run(str(path), ["plot", "adf", "transpose", "rebin", "com", "com_threshold", "crops", "fit",
                                    "one_pass"], result_dir=str(tmp_path), memory_budget=1000)
    rebin_row = next(row for row in info["steps"] if row["key"] == "rebin")
    assert rebin_row["how"].startswith("saved to rebinned.zspy"), rebin_row["how"]
    same = info["one_pass"]["identical_to_step_by_step"]
    assert set(same) == {"adf", "rebin", "com", "com_threshold", "fit"}
    assert all(same.values()), f"one pass differs from the steps: {same}"
    steps = [row["key"] for row in info["steps"]]
    assert steps[:2] == ["open", "plot"] and steps[-1] == "one_pass"
    assert not list(tmp_path.glob("tmp*")), "the one pass left its scratch folder behind"
