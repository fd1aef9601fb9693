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
