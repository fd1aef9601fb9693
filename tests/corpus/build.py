"""Turn tests/corpus/cases.yml into submitted notebooks.

    python -m tests.corpus.build COURSE_DIR   # put every case in COURSE_DIR/submitted/<case>/<lesson>/

Instructors use it to rehearse the grading workflow (docs/INSTRUCTORS.md);
tests/test_grading.py uses it to grade the corpus.
"""

import copy
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CASES = Path(__file__).with_name("cases.yml")


def load_cases() -> dict:
    """Lesson -> {case name -> case}, in grading order."""
    return yaml.safe_load(CASES.read_text())


def _answers(notebook: dict) -> dict:
    return {c["metadata"]["nbgrader"]["grade_id"]: c for c in notebook["cells"]
            if c.get("metadata", {}).get("nbgrader", {}).get("solution")}


def build(lesson: str, case: dict) -> dict:
    """The submitted notebook of one case, as a notebook dict."""
    student = json.loads((ROOT / "notebooks" / lesson / f"{lesson}.ipynb").read_text())
    nb = copy.deepcopy(student)
    cells = _answers(nb)
    if case.get("solution"):
        solution = _answers(json.loads((ROOT / "solutions" / lesson / f"{lesson}.ipynb").read_text()))
        for gid, cell in cells.items():
            src = re.sub(r"=== BEGIN MARK SCHEME ===.*?=== END MARK SCHEME ===\n?", "",
                         "".join(solution[gid]["source"]), flags=re.S)  # graders' notes, not the answer
            cell["source"] = "\n".join(l for l in src.splitlines() if "### BEGIN SOLUTION" not in l
                                       and "### END SOLUTION" not in l)
    for gid, code in (case.get("answers") or {}).items():
        if gid not in cells:
            raise KeyError(f"{lesson} has no answer cell {gid!r}; it has {sorted(cells)}")
        cells[gid]["source"] = code
    tagged = {c["metadata"]["nbgrader"]["grade_id"]: c for c in nb["cells"]
              if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")}
    for gid, tags in (case.get("tags") or {}).items():
        tagged[gid]["metadata"]["tags"] = list(tags)
    return nb


def write_submissions(course_dir: Path, lessons=None, suite_only: bool = False) -> dict:
    """Write every case as ``submitted/<case>/<lesson>/<lesson>.ipynb``; return lesson -> {case: path}.

    ``suite_only`` keeps the cases marked ``suite: true`` (the part the test suite grades).
    """
    out = {}
    for lesson, cases in load_cases().items():
        if lessons and lesson not in lessons:
            continue
        for name, case in cases.items():
            if suite_only and not case.get("suite"):
                continue
            path = Path(course_dir) / "submitted" / name / lesson / f"{lesson}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(build(lesson, case), indent=1))
            out.setdefault(lesson, {})[name] = path
    return out


if __name__ == "__main__":
    dest = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    for lesson, paths in write_submissions(dest).items():
        print(f"{lesson}: {len(paths)} submissions in {dest / 'submitted'}")
