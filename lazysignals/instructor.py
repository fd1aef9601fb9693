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

import csv
from pathlib import Path

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


#: The columns of ``nbgrader export``'s CSV, then the reason grading stopped (empty when it did not).
COLUMNS = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
           "raw_score", "late_submission_penalty", "score", "max_score", "grading_stopped"]


def stop_reasons(autograded: Path) -> str:
    """Why grading stopped in the autograded notebooks of one submission (a folder), or ``""``.

    Each distinct ``GradingStopped`` reason once, with the cells it stopped;
    a folder without an autograded notebook says that grading did not finish.
    """
    from .grading import _errors

    notebooks = sorted(Path(autograded).glob("*.ipynb"))
    if not notebooks:
        return "GradingStopped: grading did not finish (no autograded notebook); autograde this student again"
    reasons: dict[str, list[str]] = {}
    for nb in notebooks:
        for cell, message in _errors(nb).items():
            if message.startswith("GradingStopped"):
                reasons.setdefault(message, []).append(str(cell))
    return "; ".join(f"{m} ({', '.join(cells)})" for m, cells in reasons.items())


class GradedCsvExport(CsvExportPlugin):
    """``nbgrader export`` of the lessons that were collected and graded.

    A lesson is exported when the gradebook holds at least one submission
    of it (``nbgrader collect`` then autograde put it there); every student
    of the roster gets a row for it, 0 if they did not submit. Name lessons
    with ``--assignment`` to choose yourself, or export every registered
    lesson with ``--GradedCsvExport.all_assignments=True``. The column
    ``grading_stopped`` gives, for a submission whose grading was stopped,
    each reason (``GradingStopped: ...``) and the cells it concerns.
    """

    all_assignments = Bool(False, help="export every assignment in the gradebook, graded or not").tag(config=True)

    def _autograded(self, gradebook, student: str, assignment: str) -> Path:
        coursedir = getattr(self.parent, "coursedir", None)
        if coursedir is not None:
            return Path(coursedir.format_path(coursedir.autograded_directory, student, assignment))
        root = Path(gradebook.engine.url.database or ".").parent  # no app: beside the gradebook
        return root / "autograded" / student / assignment

    def export(self, gradebook) -> None:
        if not self.assignment and not self.all_assignments:
            graded = graded_assignments(gradebook)
            skipped = sorted({a.name for a in gradebook.assignments} - set(graded))
            if skipped:
                self.log.info("Not exported, no submission graded yet: %s", ", ".join(skipped))
            if not graded:
                self.log.warning("No assignment has a graded submission yet: collect and autograde "
                                 "first (the file holds only the header).")
            self.assignment = graded or ["\0none"]  # matches no assignment: header only
        students = [str(s) for s in self.student]
        dest = self.to or "grades.csv"
        self.log.info("Exporting grades to %s", dest)
        with open(dest, "w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh)
            out.writerow(COLUMNS)
            for a in gradebook.assignments:
                if self.assignment and a.name not in self.assignment:
                    continue
                waiting = [s.student.id for s in a.submissions if s.needs_manual_grade]
                if waiting:
                    self.log.warning("%s: %d submission(s) still to grade by hand in the Formgrader (%s); "
                                     "their score lacks those points.", a.name, len(waiting), ", ".join(waiting))
                for student in gradebook.students:
                    if students and student.id not in students:
                        continue
                    out.writerow(self._row(gradebook, a, student))

    def _row(self, gradebook, a, student) -> list:
        from nbgrader.api import MissingEntry

        row = dict(assignment=a.name, duedate=a.duedate, student_id=student.id, last_name=student.last_name,
                   first_name=student.first_name, email=student.email, max_score=a.max_score,
                   timestamp="", raw_score=0.0, late_submission_penalty=0.0, score=0.0, grading_stopped="")
        try:
            sub = gradebook.find_submission(a.name, student.id)
        except MissingEntry:  # did not submit: 0
            pass
        else:
            penalty = sub.late_submission_penalty or 0.0
            row.update(timestamp=sub.timestamp, raw_score=sub.score, late_submission_penalty=penalty,
                       score=max(0.0, sub.score - penalty),
                       grading_stopped=stop_reasons(self._autograded(gradebook, student.id, a.name)))
        return ["" if row[k] is None else str(row[k]) for k in COLUMNS]


class WrapLongLines(Preprocessor):
    """Add :data:`WRAP_CSS` to the page's styles (run after CSSHTMLHeaderPreprocessor)."""

    enabled = Bool(True)  # nbconvert registers preprocessors disabled unless they say otherwise

    def preprocess(self, nb, resources):
        inlining = resources.setdefault("inlining", {})
        css = inlining.get("css") or []
        inlining["css"] = [*css, WRAP_CSS] if isinstance(css, list) else [css, WRAP_CSS]
        return nb, resources
