"""Settings for every test, notebooks included (kernels inherit them).

Tests use the manifest's grading preset (the tiny `ci`) in a scratch data
folder, unless the caller set LAZYSIGNALS_DATA / LAZYSIGNALS_PRESET already.
"""

import os
import tempfile

from lazysignals.manifest import preset_for

try:
    os.environ.setdefault("LAZYSIGNALS_PRESET", preset_for("grading"))
except Exception as e:  # mutmut's set-up check makes every package function raise: tests fail, not this
    if type(e).__name__ != "MutmutProgrammaticFailException":
        raise
os.environ.setdefault("LAZYSIGNALS_DATA", tempfile.mkdtemp(prefix="lazysignals-test-data-"))
os.environ.setdefault("MPLBACKEND", "Agg")
