"""The synthetic recipe rendered in other chunks: the same specimen, chunks as asked."""

import numpy as np

from lazysignals.manifest import get_preset
from lazysignals.synthetic import make_lazy_signal


def test_a_recipe_in_other_chunks_is_the_same_specimen_in_those_chunks():
    ci = get_preset("ci")
    default = make_lazy_signal(ci, seed=5)
    other = make_lazy_signal(ci, seed=5, chunks=(4, 11, 16, 32))
    assert other.data.chunksize == (4, 11, 16, 32)
    assert default.data.chunksize == ci.chunks
    assert other.data.name != default.data.name  # two recipes, not one cached under the same name
    a, b = default.data.compute(), other.data.compute()
    assert a.shape == b.shape and a.dtype == b.dtype
    assert not np.array_equal(a, b), "each chunk draws its own counts"
    # the same specimen: the mean pattern agrees within the counting noise
    mean_a, mean_b = a.mean(axis=(0, 1)), b.mean(axis=(0, 1))
    noise = np.sqrt(np.maximum(mean_a, 1e-3) / (a.shape[0] * a.shape[1]))
    assert np.all(np.abs(mean_a - mean_b) <= 6 * noise + 1e-9)
    assert default.metadata.Sample.ground_truth.as_dictionary().keys() == \
        other.metadata.Sample.ground_truth.as_dictionary().keys()
