"""Autograde submissions safely through nbgrader and read back the scores.

Each submission is graded by its own ``nbgrader autograde`` process, under
limits the operating system enforces (address space, wall-clock time), with
nbgrader's per-cell timeout, and with a private copy of the course data
made from a master copy that is verified first. So a submission that loops,
eats memory, or deletes the data loses its own points and nothing else.

Scores come from nbgrader's gradebook, never from the exit status of
``nbgrader`` (which is 0 even when grading fails).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .manifest import REPO_ROOT, CourseDataError

#: Per-cell time limit while grading; nbgrader's default (30 s) is too short for
#: some cells on a slow machine, and every lesson cell takes seconds on ``ci``.
CELL_TIMEOUT = 120
#: Wall-clock limit for grading one notebook.
NOTEBOOK_TIMEOUT = 900
#: Address-space limit of the grading process and its kernel (bytes).
MEMORY_LIMIT = 4 * 2**30
#: The preset the lessons open while nbgrader grades (see lazysignals.data).
GRADING_PRESET = __import__("lazysignals.manifest").manifest.preset_for("grading")


def configure(c, cell_timeout: int = CELL_TIMEOUT) -> None:
    """Settings shared by ``nbgrader_config.py`` and :func:`autograde`."""
    c.ExecutePreprocessor.timeout = cell_timeout
    c.Execute.timeout = cell_timeout
    c.Execute.interrupt_on_timeout = True
    c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
    # Feedback shows each test's outcome and message, not the hidden tests'
    # code or the mark scheme: the lessons are reused with the next class.
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import ClearHiddenTests, ClearMarkScheme, GetGrades

    c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, ClearMarkScheme,
                                        CSSHTMLHeaderPreprocessor]


@dataclass
class Result:
    """Grading of one submission."""

    score: float
    max_score: float
    #: grade_id -> (score, max_score) of every autograded test cell
    tests: dict = field(default_factory=dict)
    #: grade_id -> message of the error the cell raised (what the feedback shows)
    messages: dict = field(default_factory=dict)
    #: grade_id -> max points of manually graded cells (a person scores them)
    manual: dict = field(default_factory=dict)
    log: str = ""

    @property
    def auto_score(self) -> float:
        """Points of the autograded tests."""
        return sum(s for s, _ in self.tests.values())

    @property
    def auto_max(self) -> float:
        """Points the autograded tests can give."""
        return sum(m for _, m in self.tests.values())


def tools_env(**extra) -> dict:
    """This environment with its own programs first on PATH (nbgrader runs alembic, jupyter)."""
    bindir = str(Path(sys.executable).parent)
    return dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""), **extra)


# ---------------------------------------------------------------- the data

def _tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def master_data(folder: Path) -> tuple[Path, str]:
    """Make (or find) the grading preset in ``folder``, verify it, and fingerprint it.

    Returns
    -------
    (path, digest)
        The dataset and a checksum of every byte in it, checked again after
        each submission.
    """
    from .data import synthetic_path

    path = synthetic_path(GRADING_PRESET, dest=Path(folder), progress=False)
    return path, _tree_digest(path)


def private_data(master: Path, digest: str, folder: Path) -> Path:
    """A copy of the verified master for one submission (it may wreck it)."""
    if _tree_digest(master) != digest:
        raise CourseDataError(
            f"The grading dataset {master} changed while grading; remove it and grade again."
        )
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    shutil.copytree(master, folder / master.name)
    return folder


# ---------------------------------------------------------- one submission

def _limits(memory: int):
    def apply():
        import resource  # POSIX only: grading runs on Linux or macOS

        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        os.setsid()
    return apply


def _minimal_tracebacks(ipython_dir: Path) -> Path:
    """An IPython profile whose errors show type and message only.

    A failed hidden test then reports its message in the feedback without the
    lines of hidden code around it.
    """
    config = Path(ipython_dir) / "profile_default" / "ipython_config.py"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('c.InteractiveShell.xmode = "Minimal"\n')
    return Path(ipython_dir)


def grade_one(course_root: Path, lesson: str, student: str, data_dir: Path,
              cell_timeout: int = CELL_TIMEOUT, notebook_timeout: int = NOTEBOOK_TIMEOUT,
              memory: int = MEMORY_LIMIT) -> str:
    """Run ``nbgrader autograde`` for one student in its own limited process.

    Returns
    -------
    str
        nbgrader's log, plus a line when a limit stopped it.
    """
    env = {k: v for k, v in tools_env().items() if not k.startswith("LAZYSIGNALS_")}
    env.update(LAZYSIGNALS_DATA=str(data_dir), LAZYSIGNALS_PRESET=GRADING_PRESET, MPLBACKEND="Agg",
               IPYTHONDIR=str(_minimal_tracebacks(Path(data_dir).parent / "ipython")))
    if "LAZYSIGNALS_MANIFEST" in os.environ:
        env["LAZYSIGNALS_MANIFEST"] = os.environ["LAZYSIGNALS_MANIFEST"]
    cmd = [sys.executable, "-m", "nbgrader", "autograde", lesson, f"--student={student}", "--force",
           f"--CourseDirectory.root={course_root}", f"--Execute.timeout={cell_timeout}",
           f"--ExecutePreprocessor.timeout={cell_timeout}"]
    proc = subprocess.Popen(cmd, cwd=course_root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=_limits(memory))
    try:
        out, _ = proc.communicate(timeout=notebook_timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, _ = proc.communicate()
        out += f"\nGrading stopped: the notebook ran longer than {notebook_timeout} s."
    return out


# ------------------------------------------------------------ the gradebook

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


def read_results(course_root: Path, lesson: str, students, logs=None) -> dict:
    """Student id -> :class:`Result`, read from the gradebook of ``course_root``."""
    from nbgrader.api import Gradebook, MissingEntry

    logs = logs or {}
    results = {}
    with Gradebook(f"sqlite:///{Path(course_root) / 'gradebook.db'}") as gb:
        nb = gb.find_notebook(lesson, lesson)
        for student in students:
            try:
                sub = gb.find_submission_notebook(lesson, lesson, student)
            except MissingEntry:
                results[student] = Result(0.0, nb.max_score, log=logs.get(student, ""))
                continue
            r = Result(sub.score, sub.max_score, log=logs.get(student, ""))
            for g in sub.grades:
                if g.cell_type == "code" and g.auto_score is not None:
                    r.tests[g.name] = (g.score, g.max_score)
                elif g.cell_type == "markdown":
                    r.manual[g.name] = g.max_score
            autograded = Path(course_root) / "autograded" / student / lesson / f"{lesson}.ipynb"
            if autograded.exists():
                r.messages = _errors(autograded)
            results[student] = r
    return results


# --------------------------------------------------------------- the course

def _nbgrader(course_root: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={course_root}"],
                          cwd=course_root, env=tools_env(), capture_output=True, text=True)


def autograde_course(course_root: Path, lesson: str, students=None, **limits) -> dict:
    """Safely autograde the collected submissions of ``lesson`` in a course folder.

    Parameters
    ----------
    course_root : Path
        An nbgrader course folder (the repository, for instructors).
    lesson : str
        The assignment.
    students : iterable of str, optional
        Default: every folder in ``submitted/`` that holds this lesson.
    **limits
        ``cell_timeout``, ``notebook_timeout``, ``memory`` (see :func:`grade_one`).
    """
    course_root = Path(course_root).resolve()
    if students is None:
        students = sorted(p.parent.name for p in (course_root / "submitted").glob(f"*/{lesson}"))
    work = course_root / ".grading"
    master, digest = master_data(work / "master")
    logs = {}
    for student in students:
        data_dir = private_data(master, digest, work / "students" / student)
        logs[student] = grade_one(course_root, lesson, student, data_dir, **limits)
        shutil.rmtree(data_dir, ignore_errors=True)
    if _tree_digest(master) != digest:
        raise CourseDataError(f"The grading dataset {master} changed while grading; grade again.")
    return read_results(course_root, lesson, students, logs)


def generate_feedback(course_root: Path, lesson: str, student: str | None = None) -> list[Path]:
    """Run ``nbgrader generate_feedback``; return the HTML feedback files written."""
    args = ["generate_feedback", lesson, "--force"] + ([f"--student={student}"] if student else [])
    r = _nbgrader(Path(course_root), *args)
    files = sorted((Path(course_root) / "feedback").glob(f"{student or '*'}/{lesson}/*.html"))
    if not files:
        raise RuntimeError(f"generate_feedback wrote nothing for {lesson}:\n{r.stdout}{r.stderr}")
    return files


def autograde(lesson: str, submissions: dict, workdir: Path, source_root: Path = REPO_ROOT,
              **limits) -> dict:
    """Autograde ``submissions`` of ``lesson`` in a fresh scratch course folder.

    Parameters
    ----------
    lesson : str
        Lesson (assignment) name, e.g. ``"05_rebinning"``.
    submissions : dict
        Student id -> path of the submitted notebook.
    workdir : Path
        Empty folder for the scratch course.
    source_root : Path
        Repository whose ``solutions/<lesson>`` is the assignment source.

    Returns
    -------
    dict
        Student id -> :class:`Result`.
    """
    workdir = Path(workdir).resolve()
    shutil.copytree(Path(source_root) / "solutions" / lesson, workdir / "source" / lesson, dirs_exist_ok=True)
    (workdir / "nbgrader_config.py").write_text(
        "from lazysignals.grading import configure\n\nconfigure(get_config())\n")
    gen = _nbgrader(workdir, "generate_assignment", lesson, "--force")
    if gen.returncode != 0 or not (workdir / "release" / lesson).exists():
        raise RuntimeError(f"generate_assignment failed for {lesson}:\n{gen.stdout}{gen.stderr}")
    for student, path in submissions.items():
        dest = workdir / "submitted" / student / lesson
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, dest / f"{lesson}.ipynb")
    return autograde_course(workdir, lesson, list(submissions), **limits)
