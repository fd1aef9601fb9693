"""Figures in the lessons: a new plot of a signal closes that signal's old
figures and leaves every other figure open (lazysignals.figures)."""

import numpy as np


def test_plotting_a_signal_again_keeps_the_figure_made_in_between():
    import matplotlib

    matplotlib.use("Agg")
    import hyperspy.api as hs
    import matplotlib.pyplot as plt

    import lazysignals  # noqa: F401 (the course's figure hook)

    plt.close("all")
    s = hs.signals.Signal2D(np.random.default_rng(0).random((3, 4, 5, 6)))
    s.plot()
    old = [s._plot.navigator_plot.figure, s._plot.signal_plot.figure]
    comparison, _ = plt.subplots()  # e.g. lesson 03's bright-field/ADF comparison
    s.plot()
    assert plt.fignum_exists(comparison.number), "plotting the signal again closed an unrelated figure"
    assert not [f for f in old if plt.fignum_exists(f.number)], "the signal's old figures stayed open"
    new = [s._plot.navigator_plot.figure, s._plot.signal_plot.figure]
    assert all(plt.fignum_exists(f.number) for f in new)
    plt.close("all")
