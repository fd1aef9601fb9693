"""nbgrader configuration of the course (instructors run nbgrader from here).

Each lesson is one assignment: its source, with solutions and hidden tests,
is solutions/<lesson>/<lesson>.ipynb; the student version that
`nbgrader generate_assignment <lesson>` writes is notebooks/<lesson>/.
Timeouts and stubs live in lazysignals.grading.configure (one place).
"""

from lazysignals.grading import configure

c = get_config()  # noqa: F821 (provided by nbgrader)

c.CourseDirectory.root = "."
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.course_id = "lazy-signals"
configure(c)
