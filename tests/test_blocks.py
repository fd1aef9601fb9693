"""The chunk-wise rebin and centre of mass give what HyperSpy's own calls give, on the ci preset."""

import dask
import numpy as np
import pytest
from scipy.ndimage import center_of_mass

from lazysignals import blocks
from lazysignals.manifest import get_preset
from lazysignals.synthetic import make_lazy_signal


@pytest.fixture(scope="module")
def ci():
    s = make_lazy_signal(get_preset("ci"))
    nx, ny = s.axes_manager.navigation_shape
    return s.inav[: nx - nx % 2, : ny - ny % 2]  # every length even


def axes_of(signal):
    return [(a.name, a.units, a.size, a.scale, a.offset, a.navigate) for a in signal.axes_manager._axes]


@pytest.mark.parametrize("factors", [(2, 2, 2, 2), (1, 2, 4, 2), (2, 1, 8, 1)])
def test_rebin_sum_equals_hyperspy_rebin_then_change_dtype(ci, factors):
    theirs = ci.rebin(scale=factors, rechunk=False)
    theirs.change_dtype("uint32")
    mine = blocks.rebin_sum(ci, factors, "uint32")
    assert mine._lazy and mine.data.dtype == np.uint32
    assert axes_of(mine) == axes_of(theirs)
    np.testing.assert_array_equal(mine.data.compute(), theirs.data.compute())


def test_block_functions_compute_nothing_and_keep_one_chunk_per_input_chunk(ci):
    def refuse(*args, **kwargs):
        raise AssertionError("a block function computed something")

    with dask.config.set(scheduler=refuse):
        r = blocks.rebin_sum(ci, (2, 2, 2, 2), "uint32")
        com = blocks.centre_of_mass(ci)
    assert r.data.numblocks == ci.data.numblocks
    assert com.data.numblocks == ci.data.numblocks[:2] + (1,)


def test_rebin_sum_overflows_only_if_the_type_is_too_small(ci):
    bright = ci._deepcopy_with_new_data(ci.data * 0 + np.uint16(60_000))
    wide = blocks.rebin_sum(bright, (2, 2, 2, 2), "uint32").data.compute()
    assert (wide == 16 * 60_000).all()


def test_rebin_sum_explains_a_factor_that_splits_chunks(ci):
    with pytest.raises(ValueError, match="rechunk"):
        blocks.rebin_sum(ci, (2, 2, 3, 2), "uint32")
    with pytest.raises(ValueError, match="one factor per axis"):
        blocks.rebin_sum(ci, (2, 2), "uint32")


def test_centre_of_mass_equals_hyperspy_map_of_scipy(ci):
    theirs = ci.map(center_of_mass, inplace=False)
    mine = blocks.centre_of_mass(ci)
    assert mine._lazy
    assert mine.data.shape == theirs.data.shape
    assert [a.size for a in mine.axes_manager.signal_axes] == [2]
    nav = [(a.name, a.units, a.size, a.scale, a.offset) for a in mine.axes_manager.navigation_axes]
    assert nav == [(a.name, a.units, a.size, a.scale, a.offset) for a in theirs.axes_manager.navigation_axes]
    np.testing.assert_allclose(mine.data.compute(), theirs.data.compute(), rtol=1e-12, atol=1e-9)


def test_centre_of_mass_is_exact_for_integer_counts(ci):
    # integer sums are exact: the same float64 quotients as scipy's, to the last bit
    mine = blocks.centre_of_mass(ci).data.compute()
    patterns = ci.data.compute().reshape((-1,) + ci.data.shape[-2:])
    theirs = np.array([center_of_mass(p) for p in patterns]).reshape(mine.shape)
    np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("threshold", [3, 2.5, 40])
def test_thresholded_centre_of_mass_equals_map_of_the_pixels_at_or_above(ci, threshold):
    def above(p):
        return center_of_mass(np.where(p >= threshold, p, 0))

    with np.errstate(invalid="ignore", divide="ignore"):
        theirs = ci.map(above, inplace=False, output_signal_size=(2,), output_dtype=np.float64)
        theirs.compute(show_progressbar=False)
    mine = blocks.centre_of_mass(ci, threshold=threshold).data.compute()
    np.testing.assert_allclose(mine, theirs.data, rtol=1e-12, atol=1e-9, equal_nan=True)
    assert not np.array_equal(mine, blocks.centre_of_mass(ci).data.compute(), equal_nan=True)


def test_centre_of_mass_of_float_data_and_of_a_dark_pattern():
    import hyperspy.api as hs

    data = np.zeros((2, 3, 8, 6), dtype=np.float32)
    data[0, 0, 2, 5] = 1.5  # one bright pixel: its own position
    data[1, 2, 3:5, 1:3] = 0.25  # a square: its middle
    s = hs.signals.Signal2D(data).as_lazy()
    s.data = s.data.rechunk((1, 2, 4, 3))
    com = blocks.centre_of_mass(s).data.compute()
    np.testing.assert_allclose(com[0, 0], [2, 5])
    np.testing.assert_allclose(com[1, 2], [3.5, 1.5])
    assert np.isnan(com[0, 1]).all()  # no counts at all: NaN, as scipy gives
    with pytest.raises(TypeError, match="one number"):
        blocks.centre_of_mass(s, threshold=[1, 2])
