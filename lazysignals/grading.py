"""Autograde lesson submissions through nbgrader and read back the scores.

Used by the tests (solutions score full marks, blank student notebooks
score 0, every corpus submission gets its expected score) and by
instructors. Scores come from nbgrader's gradebook, never from the exit
status of ``nbgrader`` (which is 0 even when grading fails).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .manifest import REPO_ROOT

#: Per-cell time limit while grading (nbgrader's default of 30 s is too short).
CELL_TIMEOUT = 300


def configure(c) -> None:
    """Settings shared by ``nbgrader_config.py`` and :func:`autograde`."""
    c.ExecutePreprocessor.timeout = CELL_TIMEOUT
    c.Execute.timeout = CELL_TIMEOUT
    c.Execute.interrupt_on_timeout = True
    c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    c.ClearSolutions.text_stub = "YOUR ANSWER HERE"


@dataclass
class Result:
    """Grading of one submission."""

    score: float
    max_score: float
    #: grade_id -> (score, max_score) of every autograded test cell
    tests: dict = field(default_factory=dict)
    #: grade_id -> message of the error the test raised (feedback)
    messages: dict = field(default_factory=dict)
    #: grade_id -> max points of manually graded cells (score needs a person)
    manual: dict = field(default_factory=dict)
    log: str = ""


def _api(root: Path):
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config

    c = Config()
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    configure(c)
    return NbGraderAPI(config=c)


def _errors(nb_path: Path) -> dict:
    """grade_id -> error message, from an autograded notebook's outputs."""
    nb = json.loads(Path(nb_path).read_text())
    out = {}
    for cell in nb["cells"]:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                out[gid] = f"{o.get('ename')}: {o.get('evalue')}"
    return out


def autograde(lesson: str, submissions: dict, workdir: Path, source_root: Path = REPO_ROOT) -> dict:
    """Autograde ``submissions`` of ``lesson`` in a fresh nbgrader course folder.

    Parameters
    ----------
    lesson : str
        Lesson (assignment) name, e.g. ``"05_rebinning"``.
    submissions : dict
        Student id -> path of the submitted notebook.
    workdir : Path
        Empty folder for the course (source/, submitted/, autograded/, gradebook).
    source_root : Path
        Repository whose ``solutions/<lesson>`` is the assignment source.

    Returns
    -------
    dict
        Student id -> :class:`Result`.
    """
    from nbgrader.api import Gradebook

    workdir = Path(workdir)
    src = workdir / "source" / lesson
    shutil.copytree(Path(source_root) / "solutions" / lesson, src, dirs_exist_ok=True)
    bindir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    api = _api(workdir)
    gen = api.generate_assignment(lesson)
    if not gen["success"]:
        raise RuntimeError(f"generate_assignment failed for {lesson}:\n{gen['log']}{gen.get('error', '')}")
    logs = {}
    for student, path in submissions.items():
        dest = workdir / "submitted" / student / lesson
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, dest / f"{lesson}.ipynb")
        res = api.autograde(lesson, student)
        logs[student] = res.get("log", "") + str(res.get("error", ""))
    results = {}
    with Gradebook(f"sqlite:///{workdir / 'gradebook.db'}") as gb:
        nb = gb.find_notebook(lesson, lesson)
        for student in submissions:
            try:
                sub = gb.find_submission_notebook(lesson, lesson, student)
            except Exception:
                results[student] = Result(0.0, nb.max_score, log=logs[student])
                continue
            r = Result(sub.score, sub.max_score, log=logs[student])
            for g in sub.grades:
                if g.cell_type == "code" and g.auto_score is not None:
                    r.tests[g.name] = (g.score, g.max_score)
                elif g.cell_type == "markdown":
                    r.manual[g.name] = g.max_score
            autograded = workdir / "autograded" / student / lesson / f"{lesson}.ipynb"
            if autograded.exists():
                r.messages = _errors(autograded)
            results[student] = r
    return results
