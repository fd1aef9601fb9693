"""The class through nbgrader's exchange, as docs/INSTRUCTORS.md tells it: the
instructor releases a lesson, two students (two home folders) fetch and submit
it with the real nbgrader commands, the instructor collects, autogrades with the
course's command, releases feedback that the students fetch, and exports grades.
"""

import csv
import html
import re
import sys
from pathlib import Path

import pytest

from nbgrader_course import (fill, import_roster, instructor_env, make_course, nbgrader, run,
                             solution_answers, student_env)

LESSON = "07_cropping"  # small, two graded exercises, seconds on the ci preset
NOT_RELEASED = "01_lazy_basics"  # registered in the gradebook, never released
STUDENTS = {"ada": ("Ada", "Lovelace"), "bob": ("Bob", "Brown")}


def _text(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page.read_text()))


def test_two_students_fetch_submit_and_get_feedback_through_the_exchange(tmp_path):
    exchange = tmp_path / "exchange"
    course = make_course(tmp_path / "course", [LESSON, NOT_RELEASED], exchange)
    env = instructor_env(exchange)
    roster = import_roster(course, STUDENTS, env)
    release = nbgrader(course, "release_assignment", LESSON, env=env)
    for p in (roster, release):
        assert "is not absolute" not in p.stderr, p.stderr

    homes = {}
    for sid in STUDENTS:
        homes[sid] = tmp_path / "home" / sid
        senv = student_env(homes[sid], sid, exchange)
        nbgrader(homes[sid], "fetch_assignment", LESSON, env=senv)
        notebook = homes[sid] / LESSON / f"{LESSON}.ipynb"
        assert notebook.exists(), f"{sid} did not get the notebook"
        if sid == "ada":  # ada answers everything; bob hands in the notebook untouched
            fill(notebook, solution_answers(LESSON))
        nbgrader(homes[sid], "submit", LESSON, env=senv)

    nbgrader(course, "collect", LESSON, env=env)
    for sid in STUDENTS:
        assert (course / "submitted" / sid / LESSON / f"{LESSON}.ipynb").exists(), f"{sid} not collected"

    graded = run([sys.executable, "-m", "lazysignals", "autograde", LESSON, "--course-dir", str(course),
                  "--cell-timeout", "60", "--notebook-timeout", "300"], course, env)
    lines = {l.split()[0]: l for l in graded.stdout.splitlines() if l.split() and l.split()[0] in STUDENTS}
    assert re.search(r"\b6 / 6\b", lines["ada"]) and re.search(r"\b0 / 6\b", lines["bob"]), graded.stdout
    assert "Nbgrader > Formgrader" in graded.stdout and "nbgrader formgrader" not in graded.stdout

    nbgrader(course, "generate_feedback", LESSON, env=env)
    nbgrader(course, "release_feedback", LESSON, env=env)
    for sid in STUDENTS:
        nbgrader(homes[sid], "fetch_feedback", LESSON, env=student_env(homes[sid], sid, exchange))
    pages = {sid: list((homes[sid] / LESSON / "feedback").glob(f"*/{LESSON}.html")) for sid in STUDENTS}
    assert all(len(p) == 1 for p in pages.values()), f"feedback fetched: {pages}"
    ada, bob = _text(pages["ada"][0]), _text(pages["bob"][0])
    assert re.search(r"Score:\s*6\.0\s*/\s*6\.0", ada), ada[:2000]
    assert re.search(r"Score:\s*0\.0\s*/\s*6\.0", bob), bob[:2000]
    for text in (ada, bob):
        assert "HIDDEN TESTS" not in text and "_fraction_of_chunks" not in text

    nbgrader(course, "export", "--to", "grades.csv", env=env)
    rows = list(csv.DictReader((course / "grades.csv").open()))
    got = {(r["assignment"], r["student_id"], r["first_name"], float(r["score"])) for r in rows}
    assert got == {(LESSON, "ada", "Ada", 6.0), (LESSON, "bob", "Bob", 0.0)}, rows


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # nbgrader's add_submission, harmless
def test_export_leaves_out_lessons_without_graded_submissions(tmp_path):
    """Every lesson is registered when notebooks are generated; only graded ones are exported.

    (The test above runs the same plugin through ``nbgrader export`` and the course's config.)
    """
    from nbgrader.api import Gradebook

    from lazysignals.instructor import GradedCsvExport

    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gb:
        for lesson in ("03_plotting", "07_cropping", "10_capstone"):
            gb.update_or_create_assignment(lesson)
        for sid, (first, last) in STUDENTS.items():
            gb.update_or_create_student(sid, first_name=first, last_name=last)
        gb.add_submission("07_cropping", "ada")
        GradedCsvExport(to=str(tmp_path / "grades.csv")).export(gb)
        GradedCsvExport(to=str(tmp_path / "all.csv"), all_assignments=True).export(gb)
    rows = list(csv.DictReader((tmp_path / "grades.csv").open()))
    assert {(r["assignment"], r["student_id"]) for r in rows} == {("07_cropping", "ada"), ("07_cropping", "bob")}
    assert len(list(csv.DictReader((tmp_path / "all.csv").open()))) == 6
