"""Reveal one exercise's solution, on purpose, to a learner who has tried.

    from lazysignals.reveal import solution
    solution("07_cropping", "quarter_crop")

prints the model answer of that one answer cell, read from the lesson's
source in ``solutions/``: the code between nbgrader's solution markers, or a
written answer without its mark scheme. It never shows hidden tests, test
cells or another exercise.

An instructor switches it off for a graded workshop with the environment
variable ``LAZYSIGNALS_REVEAL=off``; it is always off while nbgrader grades,
so a submission cannot call it to pass.
"""

from __future__ import annotations

import json
import os
import re

from .manifest import REPO_ROOT

#: Set to ``off`` (or ``0``, ``no``, ``false``) to switch the helper off.
REVEAL_ENV = "LAZYSIGNALS_REVEAL"
_OFF = {"off", "0", "no", "false"}
# Blocks of a source cell that a learner must never see, whatever the cell.
_HIDDEN = re.compile(r"^[ \t]*(### BEGIN HIDDEN TESTS|=== BEGIN MARK SCHEME ===).*?"
                     r"^[ \t]*(### END HIDDEN TESTS|=== END MARK SCHEME ===)[^\n]*\n?",
                     re.MULTILINE | re.DOTALL)
_MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[^\n]*\n?", re.MULTILINE)


def enabled() -> bool:
    """False while nbgrader grades or when the instructor set ``LAZYSIGNALS_REVEAL=off``."""
    if os.environ.get("NBGRADER_EXECUTION"):
        return False
    return os.environ.get(REVEAL_ENV, "").strip().lower() not in _OFF


def answer_cells(lesson: str) -> dict[str, dict]:
    """The answer cells of a lesson's source, by their nbgrader id (``grade_id``).

    Only cells a learner writes in (nbgrader ``solution`` cells); test cells,
    whose hidden tests must stay hidden, are never returned.
    """
    path = REPO_ROOT / "solutions" / lesson / f"{lesson}.ipynb"
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    out = {}
    for cell in cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution") and meta.get("grade_id"):
            out[meta["grade_id"]] = cell
    return out


def solution_text(lesson: str, exercise: str) -> str:
    """The model answer of one answer cell, without markers, hidden tests or mark scheme.

    Raises
    ------
    LookupError
        With a message that says what to do: when the helper is switched off, the
        lesson or exercise is unknown (the message lists them), or the sources
        are not on this machine.
    """
    if not enabled():
        raise LookupError("Solutions are switched off here (graded work): ask your instructor.")
    lessons = sorted(p.name for p in (REPO_ROOT / "solutions").glob("*") if p.is_dir())
    if not lessons:
        raise LookupError("The lesson sources (solutions/) are not on this machine, so there is no "
                          "solution to show. Ask your instructor.")
    if lesson not in lessons:
        raise LookupError(f"No lesson '{lesson}'. Lessons: {', '.join(lessons)}.")
    cells = answer_cells(lesson)
    if exercise not in cells:
        raise LookupError(f"Lesson {lesson} has no exercise '{exercise}'. Its exercises (the "
                          f"answer cells' names): {', '.join(cells)}.")
    source = cells[exercise]["source"]
    text = "".join(source) if isinstance(source, list) else source
    text = _MARKER.sub("", _HIDDEN.sub("", text))
    return text.strip("\n") + "\n"


def solution(lesson: str, exercise: str) -> None:
    """Print the model answer of one exercise (see the module docstring).

    Parameters
    ----------
    lesson : str
        The lesson's folder name, e.g. ``"07_cropping"``.
    exercise : str
        The answer cell's name, e.g. ``"quarter_crop"``; a wrong name lists them.
    """
    try:
        text = solution_text(lesson, exercise)
    except LookupError as e:
        print(e.args[0])
        return
    print(f"# Solution of {lesson}, exercise {exercise}:\n")
    print(text, end="")
