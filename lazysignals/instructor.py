"""What instructors get out of nbgrader: the grades export and the feedback pages.

Both are nbgrader plugins, switched on in ``nbgrader_config.py``:

- :class:`GradedCsvExport` (``nbgrader export``) writes only the lessons that
  have graded submissions. Every lesson is registered in the gradebook when
  the notebooks are generated, and a lesson never released would otherwise
  read as a 0 for every student once uploaded to a learning platform.
- :class:`WrapLongLines` (``nbgrader generate_feedback``) makes long check
  messages wrap in the feedback page instead of running off its edge.
"""

from __future__ import annotations

from nbconvert.preprocessors import Preprocessor
from nbgrader.plugins import CsvExportPlugin
from traitlets import Bool

#: Added to the feedback page's styles: output text wraps at the page's edge.
WRAP_CSS = """
div.output_subarea pre, div.output_area pre {
  white-space: pre-wrap;
  word-break: normal;
  overflow-wrap: break-word;
}
"""


def graded_assignments(gradebook) -> list[str]:
    """Names of the assignments that have at least one submission in the gradebook."""
    return [a.name for a in gradebook.assignments if a.submissions]


class GradedCsvExport(CsvExportPlugin):
    """``nbgrader export`` of the lessons that were collected and graded.

    A lesson is exported when the gradebook holds at least one submission
    of it (``nbgrader collect`` then autograde put it there); every student
    of the roster gets a row for it, 0 if they did not submit. Name lessons
    with ``--assignment`` to choose yourself, or export every registered
    lesson with ``--GradedCsvExport.all_assignments=True``.
    """

    all_assignments = Bool(False, help="export every assignment in the gradebook, graded or not").tag(config=True)

    def export(self, gradebook) -> None:
        if not self.assignment and not self.all_assignments:
            graded = graded_assignments(gradebook)
            skipped = sorted({a.name for a in gradebook.assignments} - set(graded))
            if skipped:
                self.log.info("Not exported, no submission graded yet: %s", ", ".join(skipped))
            if not graded:
                self.log.warning("No assignment has a graded submission yet: collect and autograde "
                                 "first (the file holds only the header).")
                graded = ["\0none"]  # matches no assignment: header only
            self.assignment = graded
        for a in gradebook.assignments:
            if self.assignment and a.name not in self.assignment:
                continue
            waiting = [s.student.id for s in a.submissions if s.needs_manual_grade]
            if waiting:
                self.log.warning("%s: %d submission(s) still to grade by hand in the Formgrader (%s); "
                                 "their score lacks those points.", a.name, len(waiting), ", ".join(waiting))
        super().export(gradebook)


class WrapLongLines(Preprocessor):
    """Add :data:`WRAP_CSS` to the page's styles (run after CSSHTMLHeaderPreprocessor)."""

    enabled = Bool(True)  # nbconvert registers preprocessors disabled unless they say otherwise

    def preprocess(self, nb, resources):
        inlining = resources.setdefault("inlining", {})
        css = inlining.get("css") or []
        inlining["css"] = [*css, WRAP_CSS] if isinstance(css, list) else [css, WRAP_CSS]
        return nb, resources
