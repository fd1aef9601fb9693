"""The instructor's view in a real browser: the course's JupyterLab for grading
(``python -m lazysignals start --instructor``), its Nbgrader > Formgrader menu,
a hand-graded answer scored and commented there, and what that grade becomes:
the gradebook, the student's feedback page and the exported grades.

Screenshots are kept in test-artifacts/formgrader/ for people to look at.
"""

import csv
import html
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from labserver import course_jupyterlab
from lazysignals.manifest import REPO_ROOT
from nbgrader_course import fill, import_roster, instructor_env, make_course, nbgrader, run

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = REPO_ROOT / "test-artifacts" / "formgrader"
LESSON = "10_capstone"
TASK = "pipeline_cost"  # the written answer a person grades (5 points)
ANSWER = "The ADF image reads every chunk once; the crop and the centre of mass read a quarter."
COMMENT = "Right about the ADF pass. Say how often the central chunks are read."
HIDDEN_CODE = ("BEGIN HIDDEN TESTS", "default_rng(1010)", "_flatten")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "No Chromium at /usr/bin/chromium: apt-get install chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def _wait_for(what, get, want, seconds=60):
    deadline = time.time() + seconds
    while (got := get()) != want:
        assert time.time() < deadline, f"{what}: {got!r}, expected {want!r}"
        time.sleep(0.5)


def _grade_and_comment(db: Path):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{db}") as gb:
        grade = gb.find_grade(TASK, LESSON, LESSON, "ada")
        comment = gb.find_comment(TASK, LESSON, LESSON, "ada")
        return grade.manual_score, comment.manual_comment


def test_hand_grade_in_the_formgrader_reaches_gradebook_feedback_and_export(browser, tmp_path, monkeypatch):
    SHOTS.mkdir(parents=True, exist_ok=True)
    exchange = tmp_path / "exchange"
    course = make_course(tmp_path / "course", [LESSON], exchange)
    env = instructor_env(exchange)
    import_roster(course, {"ada": ("Ada", "Lovelace")}, env)
    # ada's submission: one exercise wrong (a check fails with a long message), one written answer
    sub = course / "submitted" / "ada" / LESSON
    sub.mkdir(parents=True)
    shutil.copy(course / "notebooks" / LESSON / f"{LESSON}.ipynb", sub / f"{LESSON}.ipynb")
    fill(sub / f"{LESSON}.ipynb", {"central_crop": "def central_crop(signal, radius):\n    return signal.isig[1:, 1:]\n"},
         markdown_after={TASK: ANSWER})
    run([sys.executable, "-m", "lazysignals", "autograde", LESSON, "--course-dir", str(course),
         "--cell-timeout", "60", "--notebook-timeout", "300"], course, env)

    monkeypatch.setenv("NBGRADER_EXCHANGE", str(exchange))
    monkeypatch.setenv("JUPYTERLAB_WORKSPACES_DIR", str(tmp_path / "workspaces"))  # no layout of an earlier session
    with course_jupyterlab(tmp_path, start_args=["--instructor", "--course-dir", str(course)]) as url:
        assert "/lab/tree/solutions" in url
        assert not list((tmp_path / "data").glob("*")), "the instructor's start made a dataset"
        base, token = url.split("/lab")[0], url.split("token=")[1]
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url, timeout=180_000)
        page.get_by_role("menuitem", name="Nbgrader").click(timeout=180_000)
        page.locator('li[data-command="nbgrader:open-formgrader"]').click()
        fg = page.frame_locator("iframe")
        fg.get_by_role("link", name="Manual Grading").click(timeout=120_000)
        fg.get_by_role("link", name=LESSON).first.click()
        fg.get_by_role("link", name=LESSON).last.click()
        fg.get_by_role("link", name="Submission #1").click()
        score = fg.locator(f"#{TASK}")
        score.scroll_into_view_if_needed(timeout=120_000)
        task = fg.locator(".nbgrader_cell", has=score)
        assert "Mark scheme (graders only" in task.inner_text(), "the grader does not see the mark scheme"
        assert ANSWER in fg.locator("body").inner_text(), "the grader does not see the student's answer"
        page.screenshot(path=str(SHOTS / "1-task-with-mark-scheme.png"))
        # A score saves when its field loses focus; so does a comment.
        score.fill("4")
        score.press("Tab")
        comment = fg.locator(f"#{TASK}-comment")
        comment.fill(COMMENT)
        comment.press("Tab")
        _wait_for("the gradebook's score and comment", lambda: _grade_and_comment(course / "gradebook.db"),
                  (4.0, COMMENT))
        comment.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "2-graded.png"))
        page.close()
        with urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=30) as r:
            assert json.load(r) == [], "grading started a kernel"

    nbgrader(course, "generate_feedback", LESSON, env=env)
    feedback = course / "feedback" / "ada" / LESSON / f"{LESSON}.html"
    text = html.unescape(re.sub(r"<[^>]+>", " ", feedback.read_text()))
    assert re.search(r"Score:\s*4\.0\s*/\s*5\.0", text), "the feedback lacks the hand-given score"
    assert COMMENT in text and ANSWER in text
    assert "MARK SCHEME" not in text and "graders only" not in text and "A full answer" not in text
    assert not [h for h in HIDDEN_CODE if h in text], "the feedback shows hidden test code"
    # The failed check's message wraps at the page's edge on a narrow screen, nothing cut off.
    page = browser.new_page(viewport={"width": 700, "height": 900})
    page.goto(feedback.as_uri())
    message = page.locator("div.output_error pre", has_text="the pixels within the radius need only").first
    message.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "3-feedback-message.png"))
    cut = page.evaluate("() => [...document.querySelectorAll('div.output_subarea pre')]"
                        ".filter(p => p.scrollWidth > p.clientWidth + 1).map(p => p.innerText.slice(0, 80))")
    assert not cut, f"messages cut off in the feedback: {cut}"
    page.locator(".nbgrader_cell", has_text="Question 6").first.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "4-feedback-task.png"))
    page.close()

    nbgrader(course, "export", "--to", "grades.csv", env=env)
    rows = list(csv.DictReader((course / "grades.csv").open()))
    assert [(r["assignment"], r["student_id"], float(r["score"]), float(r["max_score"])) for r in rows] == \
        [(LESSON, "ada", 4.0, 20.0)], rows


def test_mark_schemes_are_in_task_cells_and_in_no_student_notebook():
    """Only a task cell keeps its mark scheme for graders; nbgrader strips it from students' copies."""
    for source in sorted((REPO_ROOT / "solutions").glob("*/*.ipynb")):
        cells = json.loads(source.read_text())["cells"]
        for c in cells:
            if "BEGIN MARK SCHEME" in "".join(c["source"]):
                assert c.get("metadata", {}).get("nbgrader", {}).get("task"), (
                    f"{source.name}: a mark scheme outside a task cell is never shown to graders")
        student = REPO_ROOT / "notebooks" / source.parent.name / source.name
        assert "MARK SCHEME" not in student.read_text(), f"{student.name} shows a mark scheme to students"


def test_instructor_start_outside_a_course_folder_says_which_folder_to_give(tmp_path):
    p = subprocess.run([sys.executable, "-m", "lazysignals", "start", "--instructor", "--course-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "nbgrader_config.py" in p.stderr and "--course-dir" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
