"""A course folder, an exchange and student accounts, as docs/INSTRUCTORS.md sets them up.

The tests that follow the instructor's guide use these: the course's own
``nbgrader_config.py`` in a scratch course folder, a scratch exchange (mode
1777), and each student as a home folder of their own with the
``~/.jupyter/nbgrader_config.py`` the guide tells students to write.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from lazysignals.grading import tools_env
from lazysignals.manifest import REPO_ROOT

COURSE_ID = "lazy-signals"


def run(cmd, cwd, env, timeout=600) -> subprocess.CompletedProcess:
    """Run a command, fail with its output if it fails; return it."""
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p


def nbgrader(cwd, *args, env) -> subprocess.CompletedProcess:
    """``nbgrader ARGS`` from ``cwd``; nbgrader exits 0 after some failures, so check its log too."""
    p = run([sys.executable, "-m", "nbgrader", *args], cwd, env)
    assert "[ERROR]" not in p.stderr and "| ERROR]" not in p.stderr, f"nbgrader {' '.join(args)}:\n{p.stderr}"
    return p


def instructor_env(exchange: Path) -> dict:
    """The instructor's shell: the course environment, the exchange in NBGRADER_EXCHANGE."""
    env = {k: v for k, v in tools_env().items() if not k.startswith(("JUPYTER", "NBGRADER"))}
    env["NBGRADER_EXCHANGE"] = str(exchange)
    return env


def make_course(root: Path, lessons, exchange: Path) -> Path:
    """A course folder like the repository (config, solutions/), its notebooks generated.

    The exchange folder is made writable by everyone, as the guide says.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    for lesson in lessons:
        shutil.copytree(REPO_ROOT / "solutions" / lesson, root / "solutions" / lesson)
    Path(exchange).mkdir(parents=True, exist_ok=True)
    os.chmod(exchange, 0o1777)
    env = instructor_env(exchange)
    # solutions/ holds exactly these lessons: one nbgrader command generates them all.
    nbgrader(root, "generate_assignment", "*", "--force", env=env)
    missing = [lesson for lesson in lessons if not (root / "notebooks" / lesson / f"{lesson}.ipynb").exists()]
    assert not missing, f"generate_assignment made no student notebook for {missing}"
    return root


def import_roster(course: Path, students: dict, env) -> subprocess.CompletedProcess:
    """``nbgrader db student import students.csv`` with id -> (first, last) names."""
    rows = ["id,first_name,last_name,email"]
    rows += [f"{sid},{first},{last},{sid}@example.org" for sid, (first, last) in students.items()]
    (Path(course) / "students.csv").write_text("\n".join(rows) + "\n")
    return nbgrader(course, "db", "student", "import", "students.csv", env=env)


def student_config(course_id: str, exchange: Path, student_id: str) -> str:
    """The ~/.jupyter/nbgrader_config.py of the guide (student_id: one account, several homes)."""
    return ("c = get_config()\n"
            f'c.CourseDirectory.course_id = "{course_id}"\n'
            f'c.Exchange.root = "{exchange}"\n'
            f'c.CourseDirectory.student_id = "{student_id}"\n')


def student_env(home: Path, student_id: str, exchange: Path) -> dict:
    """A student's shell: their own HOME with the guide's nbgrader config, nothing of the instructor's."""
    home = Path(home)
    (home / ".jupyter").mkdir(parents=True, exist_ok=True)
    (home / ".jupyter" / "nbgrader_config.py").write_text(student_config(COURSE_ID, exchange, student_id))
    env = {k: v for k, v in tools_env().items()
           if not k.startswith(("JUPYTER", "NBGRADER", "LAZYSIGNALS", "XDG_", "IPYTHONDIR"))}
    env["HOME"] = str(home)
    return env


def solution_answers(lesson: str) -> dict:
    """grade_id -> the solution's code of each answer cell, without the solution markers."""
    nb = json.loads((REPO_ROOT / "solutions" / lesson / f"{lesson}.ipynb").read_text())
    out = {}
    for c in nb["cells"]:
        meta = c.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution") and c["cell_type"] == "code":
            src = "".join(c["source"])
            out[meta["grade_id"]] = "\n".join(l for l in src.splitlines() if "### BEGIN SOLUTION" not in l
                                              and "### END SOLUTION" not in l)
    return out


def fill(notebook: Path, answers: dict, markdown_after: dict | None = None) -> None:
    """Write ``answers`` (grade_id -> source) into a student notebook, as a student would.

    ``markdown_after`` (grade_id of a cell -> text) fills the plain cell that follows it.
    """
    nb = json.loads(Path(notebook).read_text())
    cells = nb["cells"]
    for i, c in enumerate(cells):
        gid = c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in answers:
            c["source"] = answers[gid]
        if markdown_after and gid in markdown_after:
            cells[i + 1]["source"] = markdown_after[gid]
    Path(notebook).write_text(json.dumps(nb, indent=1))
