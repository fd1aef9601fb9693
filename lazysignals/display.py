"""How dask's text progress bar looks in a notebook.

Dask's ``ProgressBar`` (which HyperSpy shows while it computes) rewrites its
line after a carriage return. A notebook keeps the characters of the longer
line that the shorter one does not cover, so "980.12 ms" followed by "5.27 s"
reads "5.27 sms". :func:`steady_progress_bar` pads the time to a fixed width.
"""

from __future__ import annotations

import contextlib

#: Room for the longest time dask prints ("59min 59.9s", "999.99 ms").
TIME_WIDTH = 12


def _draw_bar(self, frac, elapsed):
    from dask.utils import format_time

    bar = "#" * int(self._width * frac)
    msg = f"\r[{bar:<{self._width}}] | {int(100 * frac)}% Completed | {format_time(elapsed):<{TIME_WIDTH}}"
    with contextlib.suppress(ValueError):
        if self._file is not None:
            self._file.write(msg)
            self._file.flush()


def steady_progress_bar():
    """Make dask's text progress bar overwrite its line completely."""
    from dask.diagnostics import progress

    if hasattr(progress.ProgressBar, "_draw_bar"):
        progress.ProgressBar._draw_bar = _draw_bar
