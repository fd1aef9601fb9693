"""What a learner reads when a check fails, and the figure check the lessons rely on."""

import numpy as np
import pytest

from lazysignals import checks
from lazysignals.figures import colour_limit_problems


def blank_template(s):
    # YOUR CODE HERE
    raise NotImplementedError()


def test_blank_exercise_says_to_write_the_answer_first():
    with pytest.raises(checks.CheckFailed, match="not answered yet: write your answer"):
        checks.check_defined({"chunks_touched": blank_template}, "chunks_touched")
    with pytest.raises(checks.CheckFailed, match="not defined yet"):
        checks.check_defined({}, "answer")


def test_a_wrong_number_is_answered_without_the_right_value():
    with pytest.raises(checks.CheckFailed) as err:
        checks.check_equal(25, 16, "chunks touched")
    assert "16" not in str(err.value) and "too large" in str(err.value)
    with pytest.raises(checks.CheckFailed) as err:
        checks.check_close(2.0, 8.0, "bytes")
    assert "8" not in str(err.value) and "whole factor" in str(err.value)
    with pytest.raises(checks.CheckFailed, match="off by one"):
        checks.check_equal(15, 16, "chunks touched")


def test_computed_result_is_told_to_stay_lazy_and_how():
    with pytest.raises(checks.CheckFailed, match="lazy=True"):
        checks.check_lazy(np.zeros(3), "opened")
    with pytest.raises(checks.CheckFailed, match="returns None"):
        checks.check_lazy(None, "opened")


def _figure(values, **imshow):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.imshow(values, **imshow)
    ax.set_title("centre of mass")
    return fig


def test_figure_check_finds_an_image_whose_colours_hide_its_data():
    rng = np.random.default_rng(0)
    near_63 = 63 + rng.normal(0, 0.5, (20, 30))
    # A diverging colormap centred on 0 for values near 63: one solid colour.
    flat = _figure(near_63, cmap="RdBu_r", vmin=-64, vmax=64)
    assert any("looks flat" in p for p in colour_limit_problems(flat))
    # Limits from the data's percentiles: the image shows its structure.
    lo, hi = np.percentile(near_63, [1, 99])
    assert colour_limit_problems(_figure(near_63, vmin=lo, vmax=hi)) == []
    # Limits inside the bulk of the data cut it off.
    clipped = _figure(near_63, vmin=62.9, vmax=63.1)
    assert any("cut off" in p for p in colour_limit_problems(clipped))


def test_progress_bar_time_is_readable_after_a_shorter_time(capsys):
    import io

    from dask.diagnostics import ProgressBar

    import lazysignals  # noqa: F401 (installs the steady bar)

    out = io.StringIO()
    bar = ProgressBar(out=out)
    bar._draw_bar(0.5, 0.98012)   # "980.12 ms"
    bar._draw_bar(1.0, 5.27)      # "5.27 s"
    # What a notebook shows: each line after a carriage return overwrites the previous one.
    shown = ""
    for part in out.getvalue().split("\r")[1:]:
        shown = part + shown[len(part):]
    assert shown.rstrip().endswith("5.27 s"), shown


def test_an_error_inside_the_learners_function_becomes_a_hint():
    def by_position(signal):
        return np.zeros((2, 2)).sum(axis=(2, 3))

    with pytest.raises(checks.CheckFailed, match="single pattern failed with AxisError.*Hint: sum over"):
        checks.check_runs(by_position, None, what="adf_image on a single pattern", hint="sum over them by name")
    with pytest.raises(checks.CheckFailed, match="not answered yet"):
        checks.check_runs(blank_template, None, what="adf_image")
