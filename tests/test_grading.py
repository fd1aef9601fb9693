"""Grading that instructors can trust: the representative part of the corpus
(`suite: true` in tests/corpus/cases.yml) gets its expected scores through the
course's grading command, harmful submissions change nothing outside their
sandbox, and the feedback shows the checks' messages but no hidden test.
The whole corpus: python -m tests.corpus.grade."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corpus.build import build, load_cases
from corpus.grade import LIMITS, feedback_text, grade_corpus, leftovers, package_digest, regrade_scores
from lazysignals import sandbox
from lazysignals.grading import _tree_digest, autograde, master_data, master_paths

CASES = load_cases()
SUITE = [(lesson, name) for lesson, cases in CASES.items() for name, c in cases.items() if c.get("suite")]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade the suite's part of the corpus once: lesson -> report (see corpus.grade)."""
    package = package_digest()
    t0 = time.perf_counter()
    report = grade_corpus(tmp_path_factory.mktemp("corpus"), suite_only=True)
    return {"report": report, "package": package, "seconds": time.perf_counter() - t0}


@pytest.mark.parametrize("lesson,case", SUITE)
def test_corpus_submission_gets_its_expected_score(graded, lesson, case):
    r = graded["report"][lesson]["results"][case]
    got = {gid: score for gid, (score, _) in r.tests.items()}
    assert got == CASES[lesson][case]["expected"], f"{lesson}/{case}: messages {r.messages}\n{r.log[-2000:]}"


@pytest.mark.parametrize("lesson,case", [(l, n) for l, n in SUITE if CASES[l][n].get("messages")])
def test_feedback_shows_the_message_of_each_failed_test(graded, lesson, case):
    text = feedback_text(graded["report"][lesson]["work"], lesson, case)
    for gid, message in CASES[lesson][case]["messages"].items():
        assert message in text, f"feedback of {lesson}/{case} lacks {message!r} for {gid}"


def test_feedback_quotes_no_line_of_the_hidden_tests(graded):
    """Checked by corpus.grade for every lesson graded: each hidden line longer than 12 characters."""
    leaked = [p for rep in graded["report"].values() for p in rep["problems"] if "feedback shows" in p]
    assert not leaked, leaked[:3]


def test_harmful_submissions_change_nothing_outside_their_sandbox(graded):
    problems = {lesson: [p for p in rep["problems"] if "feedback shows" not in p]
                for lesson, rep in graded["report"].items()}
    assert not any(problems.values()), problems
    assert package_digest() == graded["package"], "a submission changed the lazysignals package"


def test_no_process_or_file_of_a_submission_outlives_grading(graded):
    assert leftovers() == []


def test_scores_stay_as_graded_after_the_command_ends(graded):
    time.sleep(max(0.0, 10 - (time.perf_counter() % 1)))  # a detached process would have struck by now
    again = regrade_scores(graded["report"])
    for lesson, rep in graded["report"].items():
        for case, r in rep["results"].items():
            assert again[lesson][case] == {g: s for g, (s, _) in r.tests.items()}, f"{lesson}/{case}"


def test_students_after_harmful_ones_are_graded_normally(graded):
    graded_after = {lesson: rep for lesson, rep in graded["report"].items() if "correct" in rep["results"]}
    assert graded_after, "the suite grades no honest submission after harmful ones"
    for lesson, rep in graded_after.items():
        order = list(rep["results"])
        assert order[-1] == "correct", order
        r = rep["results"]["correct"]
        assert r.tests and all(s == m for s, m in r.tests.values()), (lesson, r.messages)


def test_each_lesson_grades_within_its_time_limit(graded):
    for lesson, rep in graded["report"].items():
        n = len(rep["results"])
        assert rep["seconds"] < n * (LIMITS["notebook_timeout"] + 120), (lesson, rep["seconds"])
    assert graded["seconds"] < 400, f"the suite's part of the corpus took {graded['seconds']:.0f} s"


def test_master_data_that_does_not_match_its_checksum_is_made_again(tmp_path):
    path, digest = master_data(tmp_path)
    victim = next(p for p in path.rglob("*") if p.is_file() and p.stat().st_size > 100)
    size = victim.stat().st_size
    victim.write_bytes(b"\0" * size)  # poisoned between two gradings
    assert _tree_digest(path.parent) != digest
    again, digest2 = master_data(tmp_path)
    assert victim.read_bytes() != b"\0" * size, "the poisoned master was reused"
    _, record = master_paths(tmp_path)
    assert _tree_digest(again.parent) == digest2 == json.loads(record.read_text())["sha256"]


def test_cleanup_never_follows_a_link(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    box = sandbox.Sandbox()
    (box.ipc / "link").symlink_to(precious)
    box.cleanup()
    assert (precious / "keep.txt").read_text() == "mine" and not box.root.exists()


def test_kernel_sees_neither_the_course_nor_the_network(tmp_path):
    """What the sandbox shows, asked from inside it."""
    box = sandbox.Sandbox(data=None)
    probe = ("import os, socket, pathlib\n"
             f"print(pathlib.Path({str(tmp_path)!r}).exists(), pathlib.Path({str(ROOT / 'README.md')!r}).exists(),"
             f" pathlib.Path({str(ROOT / 'lazysignals' / 'checks.py')!r}).exists())\n"
             "try:\n    socket.create_connection(('127.0.0.1', 22), timeout=2); print('net')\n"
             "except OSError:\n    print('no-net')\n"
             "print(len([p for p in os.listdir('/proc') if p.isdigit()]))\n")
    try:
        out = subprocess.run(box.wrap([sys.executable, "-c", probe]), capture_output=True, text=True,
                             timeout=60)
    finally:
        box.cleanup()
    assert out.returncode == 0, out.stderr
    seen, net, procs = out.stdout.split("\n")[:3]
    assert seen == "False False True" and net == "no-net" and int(procs) <= 3, out.stdout


def test_notebook_time_limit_stops_grading_with_a_reason(tmp_path):
    """A notebook whose cells together outlast its limit: the listing says which limit."""
    case = {"solution": True, "answers": {"fraction_read": "import time\ntime.sleep(25)\n"}}
    sub = tmp_path / "slow.ipynb"
    sub.write_text(json.dumps(build("07_cropping", case)))
    t0 = time.perf_counter()
    r = autograde("07_cropping", {"slow": sub}, tmp_path / "course", cell_timeout=30, notebook_timeout=20)["slow"]
    assert time.perf_counter() - t0 < 20 + 120
    stopped = [m for m in r.messages.values() if "GradingStopped" in m]
    assert any("time limit (20 s)" in m for m in stopped), r.messages
    assert r.tests["test_fraction_read"][0] == 0


def test_grading_refuses_without_a_sandbox_and_names_the_way_out(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(sandbox, "unavailable_reason", lambda: "bwrap is not installed")
    monkeypatch.delenv(sandbox.TRUSTED_ENV, raising=False)
    from lazysignals import cli
    from lazysignals.sandbox import SandboxedExecute

    with pytest.raises(sandbox.SandboxUnavailable, match="LAZYSIGNALS_TRUSTED_CLASS=1"):
        SandboxedExecute()._make_sandbox({"nbgrader": {"db_url": f"sqlite:///{tmp_path}/gradebook.db"}})
    assert cli.main(["autograde", "07_cropping"]) == 2
    out = capsys.readouterr().out
    assert "bwrap is not installed" in out and "LAZYSIGNALS_TRUSTED_CLASS=1" in out


def test_plain_nbgrader_autograde_grades_in_the_sandbox_too(graded):
    """`nbgrader autograde` run by hand (as the Formgrader's button does) gets the same protections."""
    from lazysignals.grading import _nbgrader, read_results

    work = graded["report"]["07_cropping"]["work"]
    case = "forges_its_verdict"
    r = _nbgrader(work, "autograde", "07_cropping", f"--student={case}", "--force")
    assert r.returncode == 0, r.stderr[-2000:]
    got = read_results(work, "07_cropping", [case])[case]
    assert {g: s for g, (s, _) in got.tests.items()} == CASES["07_cropping"][case]["expected"], got.messages
    assert leftovers() == []
