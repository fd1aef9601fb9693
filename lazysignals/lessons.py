"""The lessons as nbgrader assignments: list them, generate student versions."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .manifest import REPO_ROOT


def lesson_names(root: Path = REPO_ROOT) -> list[str]:
    """Lessons in teaching order: the folders of ``solutions/``."""
    return sorted(p.parent.name for p in (root / "solutions").glob("*/*.ipynb")
                  if p.stem == p.parent.name)


#: Pages of docs/ that every lesson links to as ``../NAME``: copied beside the lessons, since the
#: learners' JupyterLab shows only notebooks/ (and an instructor's shows solutions/ too).
REFERENCE_PAGES = ("GLOSSARY.md", "CHEATSHEET.md")


def copy_reference_pages(root: Path = REPO_ROOT) -> list[Path]:
    """Copy the glossary and cheat sheet from docs/ into notebooks/ and solutions/."""
    out = []
    for folder in ("notebooks", "solutions"):
        for name in REFERENCE_PAGES:
            out.append(Path(shutil.copyfile(root / "docs" / name, root / folder / name)))
    return out


#: The folders of solutions/ that are lessons, as a glob (numbered: tests/test_lessons.py).
ALL_LESSONS = "[0-9][0-9]_*"


def generate_student_notebooks(lessons=None, root: Path = REPO_ROOT, release_dir: Path | None = None) -> list[Path]:
    """Run nbgrader's generate_assignment for ``lessons`` (default: all).

    Parameters
    ----------
    release_dir : Path, optional
        Write there instead of ``notebooks/`` (the tests compare the two).
    """
    from .grading import tools_env

    lessons = lessons or lesson_names(root)
    env = tools_env()
    # Every lesson at once is one nbgrader command (a glob that names exactly the
    # lessons): nbgrader takes seconds to start, a lesson a fraction of one.
    every = sorted(p.name for p in (root / "solutions").glob(ALL_LESSONS) if p.is_dir())
    for assignment in [ALL_LESSONS] if sorted(lessons) == every == lesson_names(root) else lessons:
        cmd = [sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--force",
               "--log-level=WARN"]
        if release_dir is not None:
            cmd.append(f"--CourseDirectory.release_directory={release_dir}")
            cmd.append(f"--CourseDirectory.db_url=sqlite:///{Path(release_dir) / 'gradebook.db'}")
        subprocess.run(cmd, cwd=root, env=env, check=True)
    return [Path(release_dir or root / "notebooks") / lesson / f"{lesson}.ipynb" for lesson in lessons]
