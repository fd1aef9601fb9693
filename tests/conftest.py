"""What several test files share: a small synthetic preset made on the spot."""

import pytest

from lazysignals.manifest import Preset


@pytest.fixture(scope="session")
def tiny_preset():
    """Make a small preset (24 x 12 scan, 32 x 32 detector, chunk 8); keywords change fields.

    >>> def test_x(tiny_preset):
    ...     p = tiny_preset(defects=False)
    """

    def make(**changes) -> Preset:
        base = dict(name="tiny", description="test", navigation_shape=(24, 12), signal_shape=(32, 32),
                    chunk=8, dtype="uint16", seed=7, scan_scale_nm=2.0, detector_scale_mrad=0.5,
                    dose=60.0, defects=True)
        return Preset(**dict(base, **changes))

    return make
