"""Helpers for the course "Working with lazy signals in HyperSpy".

Modules: ``manifest`` (the datasets the course knows), ``fetch`` (real data
from Zenodo), ``convert`` (real data cut to the course geometry), ``synthetic``
(the 4D-STEM twin), ``storage`` (atomic writes, stamps, verification), ``data``
(what lessons call; ``prepare`` makes a dataset ready), ``measure`` (reads, peak
memory, memory caps), ``checks`` (feedback for learners),
``figures`` (colour limits that show the data; a grabbable navigator pointer), ``display``
(dask's progress bar in a notebook), ``cli`` (the command line).
"""

from .data import ground_truth, load, prepare, synthetic_path
from .manifest import CourseDataError

from .display import steady_progress_bar
from .figures import use_course_figures

use_course_figures()  # interactive figures whose pointer can be grabbed (lazysignals.figures)
steady_progress_bar()  # no "5.27 sms" in a notebook (lazysignals.display)

__all__ = ["load", "prepare", "synthetic_path", "ground_truth", "CourseDataError"]
__version__ = "0.1.0"
