"""Autograde submissions safely through nbgrader and read back the scores.

Every grading path (``python -m lazysignals autograde``, plain ``nbgrader
autograde``, the Formgrader's Autograde button) reads the course's
``nbgrader_config.py``, which calls :func:`configure`: the notebook then
runs in a bubblewrap sandbox (:mod:`lazysignals.sandbox`) on a read-only
copy of a master dataset without its ground truth or seed, each verified
against the checksum recorded when it was made, and the judged hidden tests
get their verdict outside the sandbox
(:mod:`lazysignals.judges`). The course's command adds one nbgrader process
per student under a wall-clock limit, so a submission that stops its own
grading stops nothing else.

Scores come from nbgrader's gradebook, never from the exit status of
``nbgrader`` (which is 0 even when grading fails).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
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


def grading_preset() -> str:
    """The preset the lessons open while nbgrader grades: the manifest's ``grading`` role."""
    from .manifest import preset_for

    return preset_for("grading")


def configure(c, cell_timeout: int = CELL_TIMEOUT) -> None:
    """Settings shared by ``nbgrader_config.py`` and :func:`autograde` (so every grading path)."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearHiddenTests,
                                        ClearMarkScheme, GetGrades, IgnorePattern, LimitOutput,
                                        SaveAutoGrades)

    from .sandbox import SandboxedExecute

    c.ExecutePreprocessor.timeout = cell_timeout
    c.Execute.timeout = cell_timeout
    # A cell that does not answer in time is stopped with its kernel, and the
    # notebook runs again without it (an interrupt cannot stop a C call).
    c.Execute.interrupt_on_timeout = False
    # Errors show type and message, so feedback never quotes hidden test code.
    c.Execute.extra_arguments = ["--InteractiveShell.xmode=Minimal", "--HistoryManager.hist_file=:memory:"]
    c.Autograde.autograde_preprocessors = [SandboxedExecute, IgnorePattern, ClearMetadataPreprocessor,
                                           LimitOutput, SaveAutoGrades, AssignLatePenalties,
                                           CheckCellMetadata]
    c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
    # Feedback shows each test's outcome and message, not the hidden tests'
    # code or the mark scheme: the lessons are reused with the next class.
    # Long check messages wrap instead of running off the page.
    from .instructor import WrapLongLines

    c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, ClearMarkScheme,
                                        CSSHTMLHeaderPreprocessor, WrapLongLines]


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
    """Checksum of every name and byte under ``folder``; a link counts as its target's name."""
    h = hashlib.sha256()
    folder = Path(folder)
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            p = Path(dirpath) / name
            h.update(str(p.relative_to(folder)).encode() + b"\0")
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                h.update(b"link:" + os.readlink(p).encode())
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
    return h.hexdigest()


def master_paths(course_root: Path) -> tuple[Path, Path]:
    """The master data folder and the record of its checksum (outside that folder)."""
    work = Path(course_root) / ".grading"
    return work / "master", work / "master-checksum.json"


def _read_record(record: Path) -> dict:
    try:
        want = json.loads(Path(record).read_text())
    except (OSError, ValueError):
        return {}
    return want if isinstance(want, dict) else {}


def _matches(folder: Path, want: dict) -> bool:
    """``folder`` is a real folder whose checksum is the one recorded when it was made."""
    return (not os.path.islink(folder) and Path(folder).is_dir() and bool(want.get("sha256"))
            and _tree_digest(folder) == want["sha256"])


def master_data(course_root: Path) -> tuple[Path, str]:
    """The grading dataset of a course, checked against the checksum recorded when it was made.

    The master is a specimen of the grading preset made from a seed drawn
    when the master is made (kept in its record, which the sandbox never
    shows), not the preset's published seed: a learner's code cannot make
    its ground truth again. A master that does not match its record (or has
    none) is removed and made again, never reused. Only the grader reads it;
    the sandbox shows :func:`sandbox_data`.

    Returns
    -------
    (path, digest)
        The ``.zspy`` dataset, and the checksum of its folder (both formats).
    """
    from .data import synthetic_path
    from .manifest import get_preset
    from .sandbox import remove_tree

    folder, record = master_paths(course_root)
    p = get_preset(grading_preset())
    want = _read_record(record)
    seed = want.get("seed")
    if isinstance(seed, int) and want.get("dataset") == p.filename("zspy", seed) and _matches(folder, want):
        return folder / want["dataset"], want["sha256"]
    remove_tree(folder)
    folder.mkdir(parents=True)
    seed = secrets.randbelow(2**31 - 1) + 1  # a specimen no learner has seen
    for fmt in ("hspy", "zspy"):  # lesson 02 opens both
        path = synthetic_path(grading_preset(), fmt=fmt, seed=seed, dest=folder, progress=False)
    digest = _tree_digest(folder)
    record.write_text(json.dumps({"dataset": path.name, "seed": seed, "sha256": digest}, indent=1))
    return path, digest


def sandbox_paths(course_root: Path) -> tuple[Path, Path]:
    """The folder of the data the sandbox shows, and the record of its checksum (outside it)."""
    work = Path(course_root) / ".grading"
    return work / "sandbox-data", work / "sandbox-data-checksum.json"


def sandbox_data(course_root: Path) -> tuple[Path, str]:
    """The data the grading sandbox shows: the master's datasets without ground truth or seed.

    Made from the master (:func:`master_data`) with
    :func:`lazysignals.synthetic.copy_without_truth`, its checksum recorded
    then, and checked against that record before each use; made again when
    it does not match or the master was made again.

    Returns
    -------
    (folder, digest)
    """
    from .manifest import get_preset
    from .sandbox import remove_tree
    from .synthetic import copy_without_truth

    master, master_digest = master_data(course_root)
    folder, record = sandbox_paths(course_root)
    want = _read_record(record)
    if want.get("master") == master_digest and _matches(folder, want):
        return folder, want["sha256"]
    remove_tree(folder)
    folder.mkdir(parents=True)
    p = get_preset(grading_preset())
    for src in sorted(master.parent.iterdir()):
        if src.suffix in (".hspy", ".zspy"):  # not the stamps beside them
            copy_without_truth(src, folder, p)
    for path in [folder, *folder.rglob("*")]:  # readable by the sandbox's own user (grading as root)
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    digest = _tree_digest(folder)
    record.write_text(json.dumps({"master": master_digest, "sha256": digest}, indent=1))
    return folder, digest


# ---------------------------------------------------------- one submission

def _own_group(memory: int):
    def apply():
        import resource  # POSIX only: grading runs on Linux

        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        os.setsid()
    return apply


#: Bytes of nbgrader's log kept for each student (its tail).
LOG_LIMIT = 64 * 1024
#: Seconds nbgrader gets beyond the notebook's time limit (to start, judge, save) before it is stopped.
GRACE = 120


def grade_one(course_root: Path, lesson: str, student: str, cell_timeout: int = CELL_TIMEOUT,
              notebook_timeout: int = NOTEBOOK_TIMEOUT, memory: int = MEMORY_LIMIT) -> str:
    """Run ``nbgrader autograde`` for one student in its own process group.

    The notebook's kernel runs in the sandbox with ``memory`` bytes of address
    space and ``notebook_timeout`` seconds in all; this process waits a little
    longer, then stops the whole group. nbgrader's log goes to a file, so no
    process can stall the driver by holding a pipe.

    Returns
    -------
    str
        The end of nbgrader's log, plus a line when the time limit stopped it.
    """
    env = {k: v for k, v in tools_env().items() if not k.startswith("LAZYSIGNALS_")}
    env["MPLBACKEND"] = "Agg"
    for key in ("LAZYSIGNALS_MANIFEST", "LAZYSIGNALS_TRUSTED_CLASS"):
        if key in os.environ:
            env[key] = os.environ[key]
    cmd = [sys.executable, "-m", "nbgrader", "autograde", lesson, f"--student={student}", "--force",
           f"--CourseDirectory.root={course_root}", f"--Execute.timeout={cell_timeout}",
           f"--SandboxedExecute.notebook_timeout={notebook_timeout}",
           f"--SandboxedExecute.memory_limit={memory}"]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, cwd=course_root, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, preexec_fn=_own_group(max(memory, 8 * 2**30)))
        note = ""
        try:
            proc.wait(timeout=notebook_timeout + GRACE)
        except subprocess.TimeoutExpired:
            note = f"\nGrading stopped: the notebook ran longer than {notebook_timeout} s."
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # anything of this student's that is left
            except ProcessLookupError:
                pass
            proc.wait()
        log.flush()
        log.seek(0, os.SEEK_END)
        size = log.tell()
        log.seek(max(0, size - LOG_LIMIT))
        return log.read().decode("utf-8", "replace") + note


# ------------------------------------------------------------ the gradebook

def _errors(nb_path: Path) -> dict:
    """grade_id -> error message, from an autograded notebook's outputs (cells that stopped
    grading are listed as ``"cell N"`` when they are not test cells)."""
    nb = json.loads(Path(nb_path).read_text())
    out = {}
    for i, cell in enumerate(nb["cells"]):
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error" and o.get("ename") == "GradingStopped":
                out[gid or f"cell {i}"] = f"GradingStopped: {o.get('evalue')}"
                continue
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
    from .sandbox import require

    require()  # refuse at once, with what to do, rather than once per student
    course_root = Path(course_root).resolve()
    if students is None:
        students = sorted(p.parent.name for p in (course_root / "submitted").glob(f"*/{lesson}"))
    master, digest = master_data(course_root)
    shown, shown_digest = sandbox_data(course_root)  # made once, before the first student
    logs = {}
    for student in students:
        logs[student] = grade_one(course_root, lesson, student, **limits)
        for folder, want in ((master.parent, digest), (shown, shown_digest)):
            if _tree_digest(folder) != want:
                raise CourseDataError(f"The grading data {folder} changed while grading {student}; "
                                      "grade again (it is made again first).")
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
