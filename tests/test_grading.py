"""Grading that instructors can trust: every submission of the corpus
(tests/corpus/cases.yml) gets its expected score through nbgrader, harmful
ones harm nothing else, and the feedback shows the checks' messages."""

import html
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from corpus.build import load_cases, write_submissions
from lazysignals.grading import autograde, generate_feedback

CASES = load_cases()
PARAMS = [(lesson, name) for lesson, cases in CASES.items() for name in cases]
# Short limits so that the corpus grades in minutes; lesson cells take
# seconds on the ci preset.
LIMITS = dict(cell_timeout=30, notebook_timeout=300)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade the whole corpus once: lesson -> (results, course folder, seconds)."""
    subs = write_submissions(tmp_path_factory.mktemp("corpus"))

    def grade(lesson):
        work = tmp_path_factory.mktemp(f"course-{lesson}")
        t0 = time.perf_counter()
        results = autograde(lesson, subs[lesson], work, **LIMITS)
        generate_feedback(work, lesson)
        return lesson, (results, work, time.perf_counter() - t0)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(grade, CASES))


def _feedback_text(work, lesson, case):
    page = (work / "feedback" / case / lesson / f"{lesson}.html").read_text()
    return html.unescape(re.sub(r"<[^>]+>", "", page))


@pytest.mark.parametrize("lesson,case", PARAMS)
def test_corpus_submission_gets_its_expected_score(graded, lesson, case):
    results, work, _ = graded[lesson]
    r = results[case]
    got = {gid: score for gid, (score, _) in r.tests.items()}
    assert got == CASES[lesson][case]["expected"], f"{lesson}/{case}: messages {r.messages}\n{r.log[-2000:]}"


@pytest.mark.parametrize("lesson,case", [(l, n) for l, n in PARAMS if CASES[l][n].get("messages")])
def test_feedback_shows_the_checks_message_for_each_failed_test(graded, lesson, case):
    _, work, _ = graded[lesson]
    text = _feedback_text(work, lesson, case)
    for gid, message in CASES[lesson][case]["messages"].items():
        assert message in text, f"feedback of {lesson}/{case} lacks {message!r} for {gid}"


def test_feedback_does_not_reveal_the_hidden_tests(graded):
    for lesson, (_, work, _) in graded.items():
        for case in CASES[lesson]:
            text = _feedback_text(work, lesson, case)
            assert "HIDDEN TESTS" not in text and "_fraction_of_chunks" not in text, f"{lesson}/{case}"


def test_harmful_submissions_leave_the_next_one_full_marks(graded):
    results, _, _ = graded["07_cropping"]
    order = list(CASES["07_cropping"])
    assert order.index("deletes_course_data") < order.index("correct")
    correct = results["correct"]
    assert all(s == m for s, m in correct.tests.values()), correct.messages


def test_whole_corpus_grades_within_a_few_minutes(graded):
    total = sum(seconds for _, _, seconds in graded.values())
    assert total < 600, f"grading the corpus took {total:.0f} s of grading work"
