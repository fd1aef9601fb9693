"""The lessons as nbgrader assignments: one source, and graded as intended.

Here we check that the student notebooks are exactly what nbgrader
generates from the sources, that the sources get full marks and the
untouched student versions 0. Grading the source is also the suite's one
execution of each solution notebook: every cell, not only the graded ones,
must run without an error, so a claim a lesson asserts in a cell ("equal:",
"same positions:") fails here when it stops being true. (nbval runs the
same notebooks on request: pytest --nbval-lax solutions/05_rebinning.)

All lessons are graded in one scratch course per submission kind, with one
``nbgrader autograde`` each (the course's grading configuration: sandbox,
judges, limits), the solutions and the blanks side by side: one nbgrader
start-up and one grading dataset instead of three and one per lesson.
"""

import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from lazysignals.grading import NOTEBOOK_TIMEOUT, _nbgrader, _tree_digest, grade_one, master_data, read_results
from lazysignals.lessons import generate_student_notebooks, lesson_names
from lazysignals.manifest import REPO_ROOT

LESSONS = lesson_names()


def _cells(path):
    nb = json.loads(path.read_text())
    return [(c["cell_type"], "".join(c["source"]), c.get("metadata", {})) for c in nb["cells"]]


def test_lessons_are_numbered_in_teaching_order_without_gaps():
    assert len(LESSONS) >= 2
    assert [name[:3] for name in LESSONS] == [f"{i:02d}_" for i in range(len(LESSONS))]


def test_readme_lesson_table_lists_every_lesson_in_order():
    readme = (REPO_ROOT / "README.md").read_text()
    rows = re.findall(r"^\| (\d\d) \| `notebooks/(\w+)` \|", readme, flags=re.M)
    assert [lesson for _n, lesson in rows] == LESSONS, (
        "README.md's lesson table differs from the folders of solutions/: add, remove or reorder its rows")
    assert all(lesson.startswith(n) for n, lesson in rows)


@pytest.mark.parametrize("lesson", LESSONS)
def test_source_notebook_is_committed_without_outputs(lesson):
    nb = json.loads((REPO_ROOT / "solutions" / lesson / f"{lesson}.ipynb").read_text())
    with_outputs = [i for i, c in enumerate(nb["cells"]) if c.get("outputs")]
    assert not with_outputs, f"cells {with_outputs} of {lesson} carry outputs"


def test_student_notebooks_are_exactly_what_nbgrader_generates(tmp_path):
    generated = generate_student_notebooks(LESSONS, release_dir=tmp_path)
    for path, lesson in zip(generated, LESSONS):
        committed = REPO_ROOT / "notebooks" / lesson / f"{lesson}.ipynb"
        assert committed.exists(), f"notebooks/{lesson} is missing: run python -m lazysignals notebooks"
        assert _cells(path) == _cells(committed), (
            f"notebooks/{lesson} differs from what solutions/{lesson} generates: "
            "edit the source and run python -m lazysignals notebooks"
        )


def _errors_in_every_cell(notebook):
    """(cell index, first line of its source, error) of each cell that raised."""
    nb = json.loads(notebook.read_text())
    return [(i, ("".join(c["source"]).strip().splitlines() or [""])[0], f"{o['ename']}: {o['evalue']}")
            for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"]


def _grade_every_lesson(student, notebooks, work):
    """Grade ``notebooks`` (lesson -> path) as ``student`` of a scratch course in ``work``.

    One ``nbgrader autograde`` for every lesson; returns lesson -> :class:`Result`.
    """
    for lesson in notebooks:
        shutil.copytree(REPO_ROOT / "solutions" / lesson, work / "source" / lesson)
    (work / "nbgrader_config.py").write_text("from lazysignals.grading import configure\n\nconfigure(get_config())\n")
    gen = _nbgrader(work, "generate_assignment", "*", "--force")
    missing = [lesson for lesson in notebooks if not (work / "release" / lesson).exists()]
    assert gen.returncode == 0 and not missing, f"generate_assignment failed for {missing}:\n{gen.stderr[-3000:]}"
    for lesson, path in notebooks.items():
        dest = work / "submitted" / student / lesson
        dest.mkdir(parents=True)
        shutil.copy(path, dest / f"{lesson}.ipynb")
    master, digest = master_data(work)
    # The notebooks run one after another in this one process, whose wall-clock limit is a
    # notebook's plus 120 s: twice a notebook's covers them all.
    log = grade_one(work, "*", student, notebook_timeout=2 * NOTEBOOK_TIMEOUT)
    assert _tree_digest(master.parent) == digest, "grading changed the master dataset"
    return {lesson: read_results(work, lesson, [student], {student: log})[student] for lesson in notebooks}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """kind ("solution", "blank") -> {"work": its course folder, "results": lesson -> Result}."""
    notebooks = {"solution": {l: REPO_ROOT / "solutions" / l / f"{l}.ipynb" for l in LESSONS},
                 "blank": {l: REPO_ROOT / "notebooks" / l / f"{l}.ipynb" for l in LESSONS}}
    work = {kind: tmp_path_factory.mktemp(f"graded-{kind}") for kind in notebooks}
    with ThreadPoolExecutor(max_workers=len(notebooks)) as pool:
        futures = {kind: pool.submit(_grade_every_lesson, kind, paths, work[kind]) for kind, paths in notebooks.items()}
        return {kind: {"work": work[kind], "results": f.result()} for kind, f in futures.items()}


@pytest.mark.parametrize("lesson", LESSONS)
def test_solution_scores_full_marks_and_blank_student_notebook_scores_zero(lesson, graded):
    sol, blank = graded["solution"]["results"][lesson], graded["blank"]["results"][lesson]
    assert len(sol.tests) >= 2, f"{lesson} needs at least two graded exercises"
    failed = {g: sol.messages.get(g) for g, (s, m) in sol.tests.items() if s != m}
    assert not failed, f"the solution of {lesson} loses points: {failed}\n{sol.log[-3000:]}"
    executed = graded["solution"]["work"] / "autograded" / "solution" / lesson / f"{lesson}.ipynb"
    assert executed.exists(), f"nbgrader left no executed copy of the solution at {executed}"
    errors = _errors_in_every_cell(executed)
    assert not errors, f"cells of the solution of {lesson} raised (index, first line, error): {errors}"
    assert set(blank.tests) == set(sol.tests), f"the blank {lesson} was not graded to the end"
    scored = {g: s for g, (s, m) in blank.tests.items() if s}
    assert not scored, f"the untouched student {lesson} scores points: {scored}"
