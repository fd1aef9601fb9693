"""Helpers for the course "Working with lazy signals in HyperSpy".

Modules: ``manifest`` (the datasets the course knows), ``fetch`` (real data
from Zenodo), ``convert`` (real data cut to the course geometry), ``synthetic``
(the 4D-STEM twin), ``storage`` (atomic writes, stamps, verification), ``data``
(what lessons call; ``prepare`` makes a dataset ready), ``measure`` (reads, peak
memory, memory caps), ``checks`` (feedback for learners), ``cli`` (the command line).
"""

from .data import ground_truth, load, prepare, synthetic_path
from .manifest import CourseDataError

__all__ = ["load", "prepare", "synthetic_path", "ground_truth", "CourseDataError"]
__version__ = "0.1.0"
