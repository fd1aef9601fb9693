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
from lazysignals.grading import _tree_digest, autograde, master_data, master_paths, sandbox_data, sandbox_paths

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


def test_master_data_that_does_not_match_its_checksum_is_made_again(tmp_path):
    path, digest = master_data(tmp_path)
    victim = next(p for p in path.rglob("*") if p.is_file() and p.stat().st_size > 100)
    size = victim.stat().st_size
    victim.write_bytes(b"\0" * size)  # poisoned between two gradings
    assert _tree_digest(path.parent) != digest
    again, digest2 = master_data(tmp_path)  # made again (from a fresh seed)
    assert not victim.exists() or victim.read_bytes() != b"\0" * size, "the poisoned master was reused"
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
    case = {"solution": True, "answers": {"fraction_read": "import time\ntime.sleep(15)\n"}}
    sub = tmp_path / "slow.ipynb"
    sub.write_text(json.dumps(build("07_cropping", case)))
    t0 = time.perf_counter()
    r = autograde("07_cropping", {"slow": sub}, tmp_path / "course", cell_timeout=30, notebook_timeout=10)["slow"]
    assert time.perf_counter() - t0 < 10 + 120
    stopped = [m for m in r.messages.values() if "GradingStopped" in m]
    assert any("time limit (10 s)" in m for m in stopped), r.messages
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


def _sandbox_as_grading_makes_it(course: Path):
    """The sandbox that grading a submission in ``course`` runs its kernel in."""
    (course / "submitted").mkdir(parents=True, exist_ok=True)
    return sandbox.SandboxedExecute()._make_sandbox(
        {"nbgrader": {"db_url": f"sqlite:///{course}/gradebook.db"}, "metadata": {"path": str(course / "submitted")}})


def _inside(box, code: str, stdin: str = "") -> subprocess.CompletedProcess:
    try:
        return subprocess.run(box.wrap([sys.executable, "-c", code]), input=stdin, capture_output=True,
                              text=True, timeout=120)
    finally:
        box.cleanup()


# Every file the sandbox shows outside the system and the environment: its data,
# the hidden tests' inputs, its folders, the package and the manifest.
_LOOK_FOR_TRUTH = """
import json, os, sys
import lazysignals
from lazysignals import manifest
seed = sys.stdin.read().strip().encode()
package = os.path.dirname(lazysignals.__file__)
environment = tuple(os.path.join(p, "") for p in {sys.prefix, sys.base_prefix})  # Python and its libraries
found = []
for root in ["/sandbox", "/tmp", package, str(manifest.manifest_path())]:
    files = [root] if os.path.isfile(root) else [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
    for path in files:
        if path.startswith(environment):  # shown when the course lives under /tmp: not the course's data
            continue
        data = open(path, "rb").read()
        if seed in data or seed in path.encode():
            found.append(("seed", path))
        if not path.startswith(package) and (b"ground_truth" in data or "ground_truth" in path):
            found.append(("ground truth", path))
s = lazysignals.load()
print(json.dumps({"found": found, "truth": sorted(lazysignals.ground_truth(s)), "shape": list(s.data.shape),
                  "seeds": sorted({str(p.seed) for p in manifest.presets().values()})}))
"""


def test_no_ground_truth_or_seed_is_readable_inside_the_sandbox(tmp_path):
    """The grader's master has both; the copy a learner's code reads has neither (about 20 s)."""
    import hyperspy.api as hs

    import lazysignals
    from lazysignals.manifest import get_preset
    from lazysignals.grading import grading_preset

    master, _ = master_data(tmp_path)
    seed = json.loads(master_paths(tmp_path)[1].read_text())["seed"]
    assert seed != get_preset(grading_preset()).seed, "the master is the published specimen"
    assert set(lazysignals.ground_truth(hs.load(master, lazy=True))) >= {"domain", "thickness"}
    out = _inside(_sandbox_as_grading_makes_it(tmp_path), _LOOK_FOR_TRUTH, stdin=str(seed))
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen["found"] == [] and seen["truth"] == [] and seen["seeds"] == ["None"], seen
    assert seen["shape"] == list(get_preset(grading_preset()).data_shape)  # the lessons still load it


def test_a_sandbox_copy_that_does_not_match_its_checksum_is_made_again(tmp_path):
    folder, _ = sandbox_data(tmp_path)
    victim = next(p for p in folder.rglob("*") if p.is_file() and p.stat().st_size > 100)
    zeros = b"\0" * victim.stat().st_size
    victim.write_bytes(zeros)  # poisoned between two gradings
    again, digest2 = sandbox_data(tmp_path)
    assert victim.read_bytes() != zeros, "the poisoned copy was shown again"
    assert _tree_digest(again) == digest2 == json.loads(sandbox_paths(tmp_path)[1].read_text())["sha256"]


def test_a_fork_bomb_stops_at_the_process_limit_even_when_grading_as_root():
    """A bounded fork loop (at most 200 children) in a sandbox allowing 40 processes (about 1 s)."""
    import errno
    import os

    box = sandbox.Sandbox(nproc=40)
    bomb = ("import os, time\nkids, err = 0, 0\ntry:\n    for _ in range(200):\n"
            "        if os.fork() == 0:\n            time.sleep(5)\n            os._exit(0)\n        kids += 1\n"
            "except OSError as e:\n    err = e.errno\nprint(os.getuid(), kids, err)\n")
    out = _inside(box, bomb)
    uid, kids, err = (int(v) for v in out.stdout.split())
    assert err == errno.EAGAIN and kids < 40, f"{kids} children started (as uid {uid}); {out.stderr[-500:]}"
    assert uid != 0 or os.geteuid() != 0


def test_code_in_the_sandbox_can_make_the_locks_dask_worker_processes_need():
    """multiprocessing's semaphores live in /dev/shm: lesson 09's LocalCluster starts its workers with them."""
    out = _inside(sandbox.Sandbox(), "import multiprocessing, os\nmultiprocessing.Lock()\nprint('ok', os.getuid())\n")
    assert out.stdout.startswith("ok"), out.stderr[-800:]


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # nbgrader's add_submission, harmless
def test_export_shows_why_grading_stopped(tmp_path):
    """`nbgrader export`'s CSV gives the stop reason of a stopped notebook, and none for the others (about 1 s)."""
    import csv

    from nbgrader.api import Gradebook
    from test_grading_units import _empty_gradebook

    from lazysignals.instructor import GradedCsvExport

    lesson, reason = "07_cropping", "this cell stopped the Python kernel (a crash, or memory or file limits)"
    stopped = {"cell_type": "code", "metadata": {"nbgrader": {"grade_id": "test_fraction_read", "grade": True}},
               "outputs": [{"output_type": "error", "ename": "GradingStopped", "evalue": reason,
                            "traceback": [f"GradingStopped: {reason}"]}], "source": "", "execution_count": None}
    for student, cells in {"ada": [], "bob": [stopped]}.items():
        folder = tmp_path / "autograded" / student / lesson
        folder.mkdir(parents=True)
        (folder / f"{lesson}.ipynb").write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                                            "nbformat_minor": 5}))
    with Gradebook(_empty_gradebook(tmp_path)) as gb:
        gb.update_or_create_assignment(lesson)
        for student in ("ada", "bob", "cy"):
            gb.update_or_create_student(student, first_name=student.title(), last_name="Doe, Jr.")
        for student in ("ada", "bob"):
            gb.add_submission(lesson, student)
        GradedCsvExport(to=str(tmp_path / "grades.csv")).export(gb)
    rows = {r["student_id"]: r for r in csv.DictReader((tmp_path / "grades.csv").open())}
    assert rows["bob"]["grading_stopped"] == f"GradingStopped: {reason} (test_fraction_read)"
    assert rows["ada"]["grading_stopped"] == rows["cy"]["grading_stopped"] == ""
    assert rows["cy"]["score"] == "0.0" and rows["bob"]["last_name"] == "Doe, Jr."


def _grading_config(cell_timeout):
    """The settings every grading path uses (lazysignals.grading.configure)."""
    from traitlets.config import Config

    from lazysignals.grading import configure

    c = Config()
    configure(c, cell_timeout=cell_timeout)
    return c


def test_a_100_mb_line_is_cut_before_the_grader_reads_it(tmp_path):
    """One 100 MB line with no newline, in a cell then in a test cell: dropped as it arrives, the
    test cell scores nothing, later output is still read (about 10 s)."""
    import nbformat

    from lazysignals.measure import peak_memory
    from lazysignals.sandbox import SandboxedExecute

    line = "import sys\nsys.stdout.write('x' * 100_000_000)\nsys.stdout.flush()"
    test = nbformat.v4.new_code_cell(line, metadata={"nbgrader": {"grade": True, "grade_id": "t", "points": 1}})
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(line), test,
                                         nbformat.v4.new_code_cell("print('still graded')")])
    ep = SandboxedExecute(config=_grading_config(60), sandbox=False)  # the limit is the grader's, sandbox or not
    with peak_memory() as mem:
        ep.preprocess(nb, {"nbgrader": {"assignment": ""}, "metadata": {"path": str(tmp_path)}})
    kept = [o for o in nb.cells[0].outputs if o.output_type == "stream"]
    assert sum(len(o.text) for o in kept) < ep.message_limit, "the line was kept"
    assert any("output cut" in o.text for o in kept), nb.cells[0].outputs
    assert [o.ename for o in nb.cells[1].outputs] == ["GradingStopped"]  # so the test cell fails
    assert [o.text for o in nb.cells[2].outputs] == ["still graded\n"]
    assert mem.increase < 50 * 2**20, f"the grader's memory grew by {mem.increase / 2**20:.0f} MiB"


def test_a_100_mb_error_stops_its_cell_with_the_reason_and_a_crash_keeps_its_own(tmp_path):
    """The reply itself too large: the cell is stopped and the kernel started again; a crash is
    still reported as a crash (about 30 s: one cell timeout of 8 s, two restarts)."""
    import nbformat

    from lazysignals.sandbox import TOO_LARGE, SandboxedExecute

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in (
        "import os\nos.abort()", "raise ValueError('x' * 100_000_000)", "print('still graded')")])
    SandboxedExecute(config=_grading_config(8), sandbox=False).preprocess(
        nb, {"nbgrader": {"assignment": ""}, "metadata": {"path": str(tmp_path)}})
    reasons = [[o.get("evalue", o.get("text")) for o in c.outputs] for c in nb.cells]
    assert reasons[0] == ["this cell stopped the Python kernel (a crash, or memory or file limits)"], reasons
    assert reasons[1] == [f"{TOO_LARGE} ({SandboxedExecute().message_limit} bytes)"], reasons
    assert reasons[2] == ["still graded\n"], reasons
