"""A self-learner reveals one exercise's solution on purpose; hidden tests,
mark schemes and other exercises stay hidden, and an instructor can switch it off."""

import json
import os
import re
import subprocess
import sys

import pytest

from lazysignals.lessons import lesson_names
from lazysignals.manifest import REPO_ROOT
from lazysignals.reveal import REVEAL_ENV, answer_cells, solution, solution_text


def source_cells(lesson):
    nb = json.loads((REPO_ROOT / "solutions" / lesson / f"{lesson}.ipynb").read_text())
    return [("".join(c["source"]), c.get("metadata", {}).get("nbgrader", {})) for c in nb["cells"]]


def secret_lines(lesson):
    """Lines a learner must never be shown: hidden tests, test cells, mark schemes."""
    out = set()
    for text, meta in source_cells(lesson):
        blocks = re.findall(r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS", text, re.DOTALL)
        blocks += re.findall(r"=== BEGIN MARK SCHEME ===(.*?)=== END MARK SCHEME ===", text, re.DOTALL)
        if meta.get("grade") and not meta.get("solution"):
            blocks.append(text)
        out |= {ln.strip() for b in blocks for ln in b.splitlines() if len(ln.strip()) > 12}
    return out


@pytest.fixture(autouse=True)
def reveal_on(monkeypatch):
    monkeypatch.delenv(REVEAL_ENV, raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)


def test_solution_prints_the_answer_code_of_that_one_exercise(capsys):
    solution("07_cropping", "quarter_crop")
    out = capsys.readouterr().out
    cell = answer_cells("07_cropping")["quarter_crop"]
    body = "".join(cell["source"]).split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
    assert "def quarter_crop(signal):" in out
    assert all(ln.strip() in out for ln in body.splitlines() if ln.strip())
    assert "### BEGIN SOLUTION" not in out and "fraction_read" not in out


def test_no_revealed_answer_shows_a_hidden_test_or_a_mark_scheme():
    for lesson in lesson_names():
        secrets = secret_lines(lesson)
        cells = answer_cells(lesson)
        assert cells, f"{lesson} has no answer cells"
        for exercise in cells:
            text = solution_text(lesson, exercise)
            assert text.strip(), f"{lesson}/{exercise}: nothing to reveal"
            shown = {ln.strip() for ln in text.splitlines()}
            assert not shown & secrets, f"{lesson}/{exercise} reveals {sorted(shown & secrets)[:2]}"
            assert "HIDDEN TESTS" not in text and "MARK SCHEME" not in text


def test_a_wrong_name_lists_what_exists_instead_of_a_traceback(capsys):
    solution("07_cropping", "quarter")
    out = capsys.readouterr().out
    assert "no exercise 'quarter'" in out and "quarter_crop" in out
    solution("7_cropping", "quarter_crop")
    assert "07_cropping" in capsys.readouterr().out


def test_instructor_switches_reveal_off_for_a_graded_workshop(monkeypatch, capsys):
    monkeypatch.setenv(REVEAL_ENV, "off")
    solution("07_cropping", "quarter_crop")
    out = capsys.readouterr().out
    assert "switched off" in out and "signal.isig" not in out
    with pytest.raises(LookupError, match="switched off"):
        solution_text("07_cropping", "quarter_crop")


def test_a_submission_cannot_reveal_while_nbgrader_grades():
    code = ("from lazysignals.reveal import solution_text\n"
            "try:\n    solution_text('07_cropping', 'quarter_crop')\nexcept LookupError as e:\n    print(e)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "NBGRADER_EXECUTION": "autograde"})
    assert "switched off" in r.stdout and "signal.isig" not in r.stdout


def test_the_readme_example_reveals_a_solution(capsys):
    example = re.search(r'solution\("(\w+)", "(\w+)"\)', (REPO_ROOT / "README.md").read_text())
    assert example, "the README shows no solution(...) example"
    solution(*example.groups())
    assert "# Solution of" in capsys.readouterr().out
