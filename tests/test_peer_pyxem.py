"""The course's 4D-STEM physics, checked against pyxem, an independent library.

On the `ci` preset, each quantity the lessons compute - the annular dark-field
(ADF) image, the centre of mass of every pattern, the descan plane and the
magnetic domain map - is computed twice: the way the lessons compute it, and
with pyxem's own methods. Both are compared with each other and with the
ground truth stored in the synthetic dataset.

Conventions, stated here rather than hidden in the arithmetic:

* The course works in numpy order: a centre of mass is ``[row, col]`` =
  ``[ky, kx]`` in pixel indices, and a shift is the disk's displacement from
  the detector centre, ``com - D / 2``.
* pyxem's ``get_direct_beam_position`` returns ``[x, y]`` = ``[kx, ky]``, and
  as the shift that *re-centres* the pattern: ``D / 2 - com``, the opposite
  sign of the course's displacement.
* The course's ring (lesson 10) measures ``r`` from the pixel at 0 mrad,
  index ``D / 2``. HyperSpy's ``CircleROI`` centred on calibrated ``c``
  selects pixels as if its centre sat half a pixel further, at index
  ``D / 2 + 0.5`` for ``c = 0``: centred on 0 mrad it differs from the
  course's ring at the ring's edges (a few per cent on `ci`'s 32-pixel
  detector, a fraction of a per cent on larger ones); centred half a pixel
  lower, on ``-scale / 2``, it selects exactly the course's pixels.
* Dead and hot pixels are masked (multiplied by 0) before any centre of mass,
  as lesson 06 does; pyxem is given the same masked patterns.
"""

from __future__ import annotations

import numpy as np
import pytest

import hyperspy.api as hs
import pyxem  # a test dependency (pyproject.toml, environment.yml): an import error is a failure
from scipy.ndimage import center_of_mass

from lazysignals import manifest, synthetic

ADF_REL_TOL = 1e-12  # ADF images, ROI half a pixel lower: the same pixels, the same sums
ADF_REL_TOL_CENTRED = 0.1  # ROI on 0 mrad: a few edge pixels differ (at most 5 % on `ci`)
COM_TOL_PX = 1e-4  # centre of mass: course vs pyxem, pixels (float32 results)
PLANE_TOL_PX = 1e-3  # descan plane: pyxem fits with scipy.optimize.leastsq (iterative, ~1e-4 px)
DOMAIN_R_PEERS = 0.99  # domain maps, course vs pyxem
DOMAIN_R_TRUTH = 0.9  # domain maps vs the stored ground truth on `ci`
COM_RMS_TRUTH_PX = 0.2  # centre of mass vs D / 2 + true shift, per pattern


@pytest.fixture(scope="module")
def ci():
    s = synthetic.make_lazy_signal(manifest.get_preset("ci"))
    s.compute(show_progressbar=False)
    node = s.metadata.Sample.ground_truth
    truth = {k: np.asarray(v) for k, v in node.as_dictionary().items()}
    good = ~(truth["dead_pixels"] | truth["hot_pixels"])
    return s, truth, good


@pytest.fixture(scope="module")
def masked(ci):
    """The patterns with stuck pixels masked, as a pyxem Diffraction2D."""
    s, _, good = ci
    d = pyxem.signals.Diffraction2D(s.data * good.astype(s.data.dtype))
    for src, dst in zip(s.axes_manager._axes, d.axes_manager._axes):
        dst.name, dst.units, dst.scale, dst.offset = src.name, src.units, src.scale, src.offset
    return d


@pytest.fixture(scope="module")
def course_com(masked):
    """The lesson 06 way: scipy's centre_of_mass mapped over every pattern, [row, col]."""
    com = masked.map(center_of_mass, inplace=False, output_dtype=np.float32,
                     output_signal_size=(2,), show_progressbar=False)
    return np.asarray(com.data, dtype=float)


@pytest.fixture(scope="module")
def pyxem_com(masked):
    """pyxem's centre of mass, turned into the course's convention: [row, col] = D/2 - shift[::-1]."""
    D = masked.axes_manager.signal_shape[0]
    shift = masked.get_direct_beam_position(method="center_of_mass", lazy_output=False)
    return D / 2 - np.asarray(shift.data, dtype=float)[..., ::-1], shift


def fit_plane(z):
    """Least-squares plane a + b x + c y through a scan map (lesson 06's fit_plane)."""
    ny, nx = z.shape
    y, x = np.mgrid[0:ny, 0:nx]
    design = np.column_stack([np.ones(z.size), x.ravel(), y.ravel()])
    coef, *_ = np.linalg.lstsq(design, z.ravel(), rcond=None)
    return (design @ coef).reshape(z.shape)


def along_main_direction(dx, dy):
    """Projection of the shifts on their main axis (lesson 06), sign fixed by the first value."""
    _, vectors = np.linalg.eigh(np.cov(np.stack([dx.ravel(), dy.ravel()])))
    return vectors[0, -1] * dx + vectors[1, -1] * dy


def correlation(a, b):
    return abs(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def test_adf_ring_agrees_with_pyxem_circle_roi_integration(ci):
    s, truth, _ = ci
    kx, ky = (ax.axis for ax in s.axes_manager.signal_axes)
    alpha = s.metadata.Acquisition_instrument.TEM.convergence_angle
    inner, outer = 2 * alpha, min(abs(kx).max(), abs(ky).max())
    # the course (lesson 10): a boolean ring in numpy order (ky, kx), r from 0 mrad
    r = np.hypot(kx[np.newaxis, :], ky[:, np.newaxis])
    course = np.asarray((s * ((r >= inner) & (r < outer))).sum(axis="sig").data, dtype=float)
    # pyxem: integrate inside HyperSpy's CircleROI (NaN outside, nansum)
    d = pyxem.signals.Diffraction2D(s.data)
    for src, dst in zip(s.axes_manager._axes, d.axes_manager._axes):
        dst.scale, dst.offset = src.scale, src.offset
    half = s.axes_manager.signal_axes[0].scale / 2
    solid = truth["region"] != synthetic.VACUUM  # vacuum scatters (almost) nothing to high angles
    for centre, tol in ((-half, ADF_REL_TOL), (0.0, ADF_REL_TOL_CENTRED)):
        roi = hs.roi.CircleROI(centre, centre, r=outer, r_inner=inner)
        peer = np.asarray(d.get_integrated_intensity(roi).data, dtype=float)
        assert peer.shape == course.shape
        rel = np.abs(course - peer)[solid] / peer[solid]
        assert rel.max() <= tol, f"ROI centred on {centre:g} mrad: ADF images differ by up to {rel.max():.2%}"
        assert correlation(course, peer) > 0.99
    # and both follow the specimen: thicker film scatters more
    film = truth["region"] == synthetic.FILM
    assert correlation(course[film], truth["thickness"][film]) > 0.9


def test_centre_of_mass_agrees_with_pyxem_direct_beam_position(ci, course_com, pyxem_com):
    s, truth, _ = ci
    peer, shift = pyxem_com
    assert shift.axes_manager.signal_shape == (2,)
    diff = np.abs(course_com - peer).max()
    assert diff < COM_TOL_PX, f"centre of mass: course and pyxem differ by {diff:.1e} px"
    # both are the disk's position D / 2 + true shift, up to counting noise
    D = s.axes_manager.signal_shape[0]
    err = course_com - D / 2 - np.stack([truth["shift_y"], truth["shift_x"]], axis=-1)
    rms = np.sqrt(np.mean(np.sum(err**2, axis=-1)))
    assert rms < COM_RMS_TRUTH_PX, f"centre of mass vs D/2 + true shift: {rms:.3f} px RMS"


def test_descan_plane_agrees_with_pyxem_linear_plane(ci, course_com, pyxem_com):
    s, truth, _ = ci
    _, shift = pyxem_com
    D = s.axes_manager.signal_shape[0]
    plane = shift.get_linear_plane()  # pyxem: [x, y], re-centring shifts
    peer_x = D / 2 - np.asarray(plane.data[..., 0], dtype=float)  # back to the disk's column
    peer_y = D / 2 - np.asarray(plane.data[..., 1], dtype=float)
    course_y, course_x = fit_plane(course_com[..., 0]), fit_plane(course_com[..., 1])
    diff = max(np.abs(course_x - peer_x).max(), np.abs(course_y - peer_y).max())
    assert diff < PLANE_TOL_PX, f"descan planes differ by {diff:.1e} px"
    # the fitted ramp across the scan matches the true descan ramp (domains average out)
    ny, nx = course_x.shape
    true_ramp_x = synthetic.DESCAN_SHIFT * D * (nx - 1) / nx
    fitted_ramp_x = course_x[:, -1].mean() - course_x[:, 0].mean()
    assert fitted_ramp_x == pytest.approx(true_ramp_x, rel=0.15)


def test_domain_map_agrees_with_pyxem_and_the_ground_truth(ci, course_com, pyxem_com):
    _, truth, _ = ci
    _, shift = pyxem_com
    # the course: centre of mass minus its plane, projected on the main direction
    dx = course_com[..., 1] - fit_plane(course_com[..., 1])
    dy = course_com[..., 0] - fit_plane(course_com[..., 0])
    course = along_main_direction(dx, dy)
    # pyxem: beam shift minus pyxem's linear plane (sign and order as pyxem gives them)
    corrected = np.asarray((shift - shift.get_linear_plane()).data, dtype=float)
    peer = along_main_direction(corrected[..., 0], corrected[..., 1])
    assert correlation(course, peer) > DOMAIN_R_PEERS
    for name, m in (("course", course), ("pyxem", peer)):
        r = correlation(m, truth["domain"])
        assert r > DOMAIN_R_TRUTH, f"{name} domain map vs ground truth: r = {r:.3f}"
