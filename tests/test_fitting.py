"""The vectorised Gaussian fit of lazysignals.fitting (lesson 08)."""

import dask.array as da
import hyperspy.api as hs
import numpy as np

from lazysignals import fitting

X = np.linspace(-4.0, 4.0, 64)
DX = X[1] - X[0]


def noisy_gaussians(n, seed=0):
    """Poisson profiles of known (A, sigma, centre), A in counts times axis units."""
    rng = np.random.default_rng(seed)
    truth = np.stack([rng.uniform(2e3, 2e4, n), rng.uniform(0.4, 1.2, n), rng.uniform(-1, 1, n)], axis=-1)
    expected = fitting.gaussian(X, *(truth[:, i:i + 1] for i in range(3))) * DX
    return X, rng.poisson(expected) / DX, truth


def test_moments_of_a_noiseless_gaussian_are_its_parameters():
    y = fitting.gaussian(X, 3.0, 0.6, 0.4)
    np.testing.assert_allclose(fitting.moments(X, y), [3.0, 0.6, 0.4], rtol=1e-6, atol=1e-9)


def test_fit_recovers_known_parameters_of_noisy_gaussians():
    x, y, truth = noisy_gaussians(2000)
    p = fitting.fit_gaussian(x, y)
    assert p.shape == truth.shape
    # Counting noise: the centre scatters by about sigma / sqrt(counts); allow 5 times that.
    counts = truth[:, 0]
    assert (np.abs(p[:, 2] - truth[:, 2]) < 5 * truth[:, 1] / np.sqrt(counts)).all()
    np.testing.assert_allclose(p[:, 0], truth[:, 0], rtol=0.08)
    np.testing.assert_allclose(p[:, 1], truth[:, 1], rtol=0.08)
    assert np.median(np.abs(p[:, 2] - truth[:, 2]) / truth[:, 1]) < 0.01


def test_fit_keeps_leading_dimensions_and_converges_from_poor_starting_values():
    x, y, truth = noisy_gaussians(60, seed=1)
    y = y.reshape(6, 10, -1)
    good = fitting.fit_gaussian(x, y)
    poor = fitting.fit_gaussian(x, y, p0=[1e3, 1.5, 0.0])
    assert good.shape == (6, 10, 3)
    np.testing.assert_allclose(poor, good, rtol=1e-5, atol=1e-7)


def test_fitting_in_cache_sized_groups_gives_the_parameters_of_one_group(monkeypatch):
    x, y, _ = noisy_gaussians(2 * fitting.GROUP + 37, seed=3)  # two full groups and a short one
    y[5] = np.nan  # a failed profile stays NaN in its own group only
    grouped = fitting.fit_gaussian(x, y)
    monkeypatch.setattr(fitting, "GROUP", y.shape[0])
    whole = fitting.fit_gaussian(x, y)
    assert np.isnan(grouped[5]).all() and np.isfinite(np.delete(grouped, 5, axis=0)).all()
    np.testing.assert_allclose(grouped, whole, rtol=1e-9, atol=1e-12)


def test_fit_agrees_with_hyperspy_multifit_within_tolerance():
    x, y, _ = noisy_gaussians(24, seed=2)
    s = hs.signals.Signal1D(y.reshape(4, 6, -1))
    s.axes_manager[-1].scale, s.axes_manager[-1].offset = DX, X[0]
    m = s.create_model()
    g = hs.model.components1D.Gaussian(A=float(y.sum(-1).mean() * DX), sigma=0.8, centre=0.0)
    m.append(g)
    m.multifit(show_progressbar=False)
    p = fitting.fit_gaussian(s.axes_manager[-1].axis, s.data)
    # Both minimise the same sum of squares: they agree far better than the noise.
    np.testing.assert_allclose(p[..., 0], g.A.map["values"], rtol=1e-4)
    np.testing.assert_allclose(p[..., 1], g.sigma.map["values"], rtol=1e-4)
    np.testing.assert_allclose(p[..., 2], g.centre.map["values"], atol=1e-4 * DX)


def test_lazy_wrapper_stays_lazy_and_gives_the_numpy_result():
    x, y, _ = noisy_gaussians(120, seed=3)
    y = y.reshape(10, 12, -1)
    s = hs.signals.Signal1D(da.from_array(y, chunks=(4, 5, 16))).as_lazy()
    s.axes_manager[-1].scale, s.axes_manager[-1].offset = DX, X[0]
    s.axes_manager[0].name, s.axes_manager[0].scale = "x", 2.5
    params = fitting.fit_gaussian_lazy(s)
    assert params._lazy and isinstance(params.data, da.Array)
    assert params.data.chunks[:2] == s.data.chunks[:2]  # one block per chunk of positions
    assert params.axes_manager.navigation_shape == s.axes_manager.navigation_shape
    assert params.axes_manager["x"].scale == 2.5
    maps = fitting.parameter_maps(params)
    assert all(m._lazy for m in maps.values())
    params.compute(show_progressbar=False)
    np.testing.assert_allclose(params.data, fitting.fit_gaussian(x, y), rtol=1e-12)
    centre = fitting.parameter_maps(params)["centre"]
    assert centre.axes_manager.signal_shape == (12, 10)
    np.testing.assert_array_equal(centre.data, params.data[..., 2])


def test_empty_and_missing_profiles_do_not_break_the_others():
    x, y, truth = noisy_gaussians(3, seed=4)
    y = y.copy()
    y[1] = 0.0
    y[2, 5] = np.nan
    p = fitting.fit_gaussian(x, y)
    np.testing.assert_allclose(p[0, 2], truth[0, 2], atol=0.05)
    assert p[1, 0] == 0.0
    assert np.isnan(p[2]).all()
