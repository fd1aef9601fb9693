"""peak_memory() sees a temporary allocation that is freed before the block ends."""

import numpy as np

from lazysignals.measure import peak_memory


def test_peak_memory_sees_a_temporary_allocation():
    size = 200 * 2**20
    with peak_memory() as mem:
        a = np.ones(size, dtype=np.uint8)  # touched: resident, not just reserved
        a.sum()
        del a
    assert mem.increase >= 0.8 * size, mem
    assert mem.peak >= mem.start + mem.increase
    assert mem.end < mem.peak - 0.5 * size, mem  # it was freed, and the peak remembers it
    assert mem.seconds > 0
    assert "MiB above the start" in str(mem)


def test_peak_memory_is_small_for_a_small_block():
    with peak_memory() as mem:
        sum(range(1000))
    assert mem.increase < 50 * 2**20, mem
