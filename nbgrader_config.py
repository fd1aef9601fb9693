"""nbgrader configuration of the course (instructors run nbgrader from here).

Each lesson is one assignment: its source, with solutions and hidden tests,
is solutions/<lesson>/<lesson>.ipynb; the student version that
`nbgrader generate_assignment <lesson>` writes is notebooks/<lesson>/.
Timeouts, stubs and the grading sandbox live in lazysignals.grading.configure
(one place), so every grading path (nbgrader autograde, the Formgrader) uses them.
"""

import os

from lazysignals.grading import configure

c = get_config()  # noqa: F821 (provided by nbgrader)

HERE = os.path.dirname(os.path.abspath(__file__))

# Absolute: nbgrader warns "root '.' is not absolute" at every command otherwise.
c.CourseDirectory.root = HERE
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.course_id = "lazy-signals"
# Where release_assignment / collect exchange files with students. On a
# JupyterHub use the shared /srv/nbgrader/exchange (set NBGRADER_EXCHANGE).
c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE", os.path.join(HERE, "exchange"))
configure(c)
# `nbgrader export` writes only the lessons with graded submissions (a lesson
# never released would read as 0 for everyone).
c.ExportApp.plugin_class = "lazysignals.instructor.GradedCsvExport"
