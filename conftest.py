"""Settings for every test, notebooks included (kernels inherit them).

Tests use the manifest's grading preset (the tiny `ci`) in a scratch data
folder, unless the caller set LAZYSIGNALS_DATA / LAZYSIGNALS_PRESET already.
"""

import os
import tempfile

from lazysignals.manifest import preset_for

os.environ.setdefault("LAZYSIGNALS_PRESET", preset_for("grading"))
os.environ.setdefault("LAZYSIGNALS_DATA", tempfile.mkdtemp(prefix="lazysignals-test-data-"))
os.environ.setdefault("MPLBACKEND", "Agg")
