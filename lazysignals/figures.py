"""Checks that a figure shows its data: colour limits that cover what is drawn.

An image whose colour limits miss its data looks like nothing: solid dark red
when a diverging colormap is centred on 0 for values near 63, almost black when
one hot pixel sets the top of the scale. :func:`colour_limit_problems` finds
both in any matplotlib figure (HyperSpy's plots included), so that a lesson
or a test can say which image is wrong and why.

Also the course's figure hook (:func:`use_course_figures`): ipympl's toolbar
out of the way, a navigator pointer that a mouse can grab, and HyperSpy plots
that close only their own figures when a signal is plotted again.
"""

from __future__ import annotations

import numpy as np

#: The part of the data that must lie inside the colour limits (percentiles).
LOW, HIGH = 2, 98
#: The least part of the colour range that those percentiles must span.
MIN_SPAN = 0.25


def _label(image) -> str:
    ax = image.axes
    fig = ax.figure
    title = ax.get_title() or fig.get_label() or "untitled"
    number = getattr(fig, "number", None)
    return f"figure {number}, image '{title}'" if number is not None else f"image '{title}'"


def image_problem(image) -> str | None:
    """Say what is wrong with the colour limits of one matplotlib image, or None.

    The 2nd-98th percentile of the finite values shown must lie inside the
    colour limits, and span at least a quarter of them; an image of one value
    everywhere is reported as flat. Colour (RGB) images are not checked.
    """
    data = np.ma.masked_invalid(np.ma.asarray(image.get_array(), dtype=float))
    if data.ndim != 2:
        return None
    values = data.compressed()
    if values.size == 0:
        return f"{_label(image)} has no finite value to show"
    lo, hi = (float(v) for v in image.get_clim())
    p_lo, p_hi = np.percentile(values, [LOW, HIGH])
    span = hi - lo
    tol = 1e-9 * max(abs(lo), abs(hi), 1.0)
    if p_lo < lo - tol - 1e-6 * span or p_hi > hi + tol + 1e-6 * span:
        return (f"{_label(image)}: colour limits {lo:.4g} to {hi:.4g} cut off the data "
                f"({LOW}th-{HIGH}th percentile {p_lo:.4g} to {p_hi:.4g})")
    if span <= 0 or p_hi - p_lo < MIN_SPAN * span:
        share = 0.0 if span <= 0 else (p_hi - p_lo) / span
        return (f"{_label(image)} looks flat: its data ({LOW}th-{HIGH}th percentile "
                f"{p_lo:.4g} to {p_hi:.4g}) fills {share:.0%} of the colour limits {lo:.4g} to {hi:.4g}")
    return None


def colour_limit_problems(figures=None) -> list[str]:
    """Problems of every image in ``figures`` (default: every open pyplot figure)."""
    if figures is None:
        from matplotlib._pylab_helpers import Gcf

        figures = [m.canvas.figure for m in Gcf.get_all_fig_managers()]
    problems = []
    if not isinstance(figures, (list, tuple)):
        figures = [figures]
    for fig in figures:
        for ax in fig.axes:
            for image in ax.get_images():
                problem = image_problem(image)
                if problem:
                    problems.append(problem)
    return problems


def check_colour_limits(figures=None) -> None:
    """Raise ``AssertionError`` naming every image whose colours hide its data."""
    problems = colour_limit_problems(figures)
    if problems:
        raise AssertionError("; ".join(problems))


#: How far from a draggable marker (the navigator's pointer) a press still grabs it, in screen pixels.
GRAB_PIXELS = 8


def _near(patch, mouseevent):
    """A picker: the press lands within GRAB_PIXELS of the patch's extent on screen."""
    box = patch.get_window_extent().padded(GRAB_PIXELS)
    return box.contains(mouseevent.x, mouseevent.y), {}


def _grab_within_reach(event):
    """Let every draggable patch of the figure be grabbed within GRAB_PIXELS of it.

    HyperSpy's pointer is a square one probe position wide, picked by
    matplotlib only inside its outline shrunk by the line width (on an image,
    whose y axis points down): on a scan of a few hundred positions that
    leaves a pixel or none to press. This picker accepts presses nearby.
    """
    for ax in event.canvas.figure.axes:
        for patch in ax.patches:
            if patch.get_picker() is True:
                patch.set_picker(_near)


def _close_own_figure(self):
    """``BlittedFigure.close`` that closes this plot's figure, not pyplot's current one."""
    import matplotlib.pyplot as plt

    figure = self.get_mpl_figure()  # before _on_close forgets it
    self._on_close()
    if figure is not None:
        plt.close(figure)


def hyperspy_closes_its_own_figures():
    """Make a new plot of a signal close that signal's old figures, and no other.

    HyperSpy 2.x (``hyperspy.drawing.figure.BlittedFigure.close``) clears its
    reference to the figure and then calls ``plt.close`` with it, that is with
    ``None``, which closes pyplot's *current* figure: whatever figure was made
    last. So ``s.plot()`` a second time closed the figure made just before it
    (in lesson 03 the bright-field/ADF comparison, which stayed blank in
    JupyterLab) and left the old navigator open. Done once HyperSpy is imported.
    """
    import sys

    module = sys.modules.get("hyperspy.drawing.figure")
    if module is not None and module.BlittedFigure.close is not _close_own_figure:
        module.BlittedFigure.close = _close_own_figure


def course_canvas(fig):
    """Figure hook (``rcParams["figure.hooks"]``) for JupyterLab's interactive figures.

    ipympl puts its toolbar over the left edge of the figure, where HyperSpy's
    pointer starts and the y-axis label is: the course puts it on the right,
    and makes the pointer easy to grab. HyperSpy's plots, which make their
    figures with pyplot, close only their own figures from then on
    (:func:`hyperspy_closes_its_own_figures`).
    """
    hyperspy_closes_its_own_figures()
    canvas = fig.canvas
    if hasattr(canvas, "toolbar_position"):  # ipympl (%matplotlib widget)
        canvas.toolbar_position = "right"
    canvas.mpl_connect("draw_event", _grab_within_reach)


def use_course_figures():
    """Apply :func:`course_canvas` to every figure pyplot makes from now on."""
    import matplotlib

    hook = "lazysignals.figures:course_canvas"
    if hook not in matplotlib.rcParams["figure.hooks"]:
        matplotlib.rcParams["figure.hooks"] = [*matplotlib.rcParams["figure.hooks"], hook]
