"""Settings for every test, notebooks included (kernels inherit them).

Tests use the tiny `ci` preset in a scratch data folder, unless the caller
set LAZYSIGNALS_DATA / LAZYSIGNALS_PRESET already.
"""

import os
import tempfile

os.environ.setdefault("LAZYSIGNALS_PRESET", "ci")
os.environ.setdefault("LAZYSIGNALS_DATA", tempfile.mkdtemp(prefix="lazysignals-test-data-"))
os.environ.setdefault("MPLBACKEND", "Agg")
