"""The original workshop notebook's sequence, as plain HyperSpy calls: the baseline of ``workshop``.

Run in its own child process on the same file, in the same invocation as
the course's sequence (:mod:`benchmarks.pipeline`). The detector axes are
in pixels, as in the original data; the original's pixel coordinates were
for a 256 x 256 detector and are scaled to the detector in hand (unchanged
on the workshop preset).
"""

from __future__ import annotations

from .harness import Steps

#: Detector width the original notebook's coordinates were written for.
ORIGINAL_DETECTOR = 256
ORIGINAL_THRESHOLD = 20


def child(path: str) -> dict:
    import hyperspy.api as hs
    import matplotlib.pyplot as plt
    import numpy as np
    from scipy.ndimage import center_of_mass

    steps = Steps()
    with steps("open lazily", key="open"):
        s = hs.load(path, lazy=True)
    nx, ny = s.axes_manager.navigation_shape
    if nx % 2 or ny % 2:  # only the tiny ci preset: rebin by 2 needs even lengths
        s = s.inav[: nx - nx % 2, : ny - ny % 2]
    for ax in s.axes_manager.signal_axes:  # pixel units, as in the original data
        ax.scale, ax.offset, ax.units = 1.0, 0.0, "px"
    f = s.axes_manager.signal_shape[0] / ORIGINAL_DETECTOR

    def px(v):
        return int(round(v * f))

    with steps("s.plot()", key="plot"):
        s.plot()
        plt.close("all")
    with steps("CircleROI(r=70, r_inner=40) + nansum(axis=(2, 3), rechunk=False).T + compute", key="adf"):
        roi = hs.roi.CircleROI(cx=px(128), cy=px(128), r=px(70), r_inner=px(40))
        adf = roi(s, axes=(2, 3)).nansum(axis=(2, 3), rechunk=False).T
        adf.compute(show_progressbar=False)
    with steps("s.T.plot()", key="transpose"):
        s.T.plot()
        plt.close("all")
    with steps("rebin(scale=(2, 2, 2, 2), rechunk=False) + change_dtype('uint32') + compute", key="rebin"):
        r = s.rebin(scale=(2, 2, 2, 2), rechunk=False)
        r.change_dtype("uint32")
        r.compute(show_progressbar=False)
    del r
    with steps("map(center_of_mass, inplace=False) + compute", key="com"):
        com = s.map(center_of_mass, inplace=False)
        com.compute(show_progressbar=False)
    del com

    def thresholded(image):
        return center_of_mass(image * (image > ORIGINAL_THRESHOLD))

    with steps("map(thresholded center_of_mass, lazy_output=False)", key="com_threshold"):
        comt = s.map(thresholded, inplace=False, lazy_output=False)
    del comt
    a, b = px(64), px(192)
    with steps(f"isig[{a}:{b}, {a}:{b}].sum().compute()", key="crop_aligned"):
        s.isig[a:b, a:b].sum().compute(show_progressbar=False)
    with steps(f"isig[{a - 1}:{b + 1}, {a - 1}:{b + 1}].sum().compute()", key="crop_wider"):
        s.isig[a - 1:b + 1, a - 1:b + 1].sum().compute(show_progressbar=False)
    with steps(f"line profile isig[{px(128)}, {a}:{b}] + Gaussian + multifit()", key="fit") as row:
        profile = s.isig[px(128), a:b]
        profile.compute(show_progressbar=False)
        m = profile.create_model()
        m.append(hs.model.components1D.Gaussian(A=10000, centre=px(128), sigma=px(50)))
        m.multifit(show_progressbar=False)
        row["profiles"] = int(np.prod(profile.axes_manager.navigation_shape))
    return {"steps": steps.rows}
