"""Unit tests of lazysignals.grading that run no nbgrader and make no dataset.

What the grading driver does around nbgrader: the settings every grading path
shares, the checksums and records of the grading data, the one process per
student with its limits and log, reading errors and scores back, and the
course-level commands. nbgrader itself is replaced by a small script where a
test needs a process, and the dataset maker by one writing a few bytes, so
the whole file takes seconds (tests/test_grading.py grades for real); it is
what mutation testing runs against grading.py (docs/MUTATION.md).
"""

import json
import os
import stat
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lazysignals import grading
from lazysignals.grading import Result, _errors, _tree_digest
from lazysignals.manifest import CourseDataError, get_preset


# ----------------------------------------------------------------- settings

def test_configure_sets_what_every_grading_path_shares():
    from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearHiddenTests,
                                        ClearMarkScheme, GetGrades, IgnorePattern, LimitOutput,
                                        SaveAutoGrades)
    from traitlets.config import Config

    from lazysignals.instructor import WrapLongLines
    from lazysignals.sandbox import SandboxedExecute

    c = Config()
    grading.configure(c, cell_timeout=77)
    assert c.ExecutePreprocessor.timeout == c.Execute.timeout == 77
    assert c.Execute.interrupt_on_timeout is False
    assert c.Execute.extra_arguments == ["--InteractiveShell.xmode=Minimal", "--HistoryManager.hist_file=:memory:"]
    assert c.Autograde.autograde_preprocessors == [SandboxedExecute, IgnorePattern, ClearMetadataPreprocessor,
                                                   LimitOutput, SaveAutoGrades, AssignLatePenalties,
                                                   CheckCellMetadata]
    assert c.ClearSolutions.code_stub == {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    assert c.ClearSolutions.text_stub == "YOUR ANSWER HERE"
    assert c.GenerateFeedback.preprocessors == [GetGrades, ClearHiddenTests, ClearMarkScheme,
                                                CSSHTMLHeaderPreprocessor, WrapLongLines]
    grading.configure(c)
    assert c.Execute.timeout == grading.CELL_TIMEOUT == 120


def test_grading_uses_the_manifests_grading_preset():
    from lazysignals.manifest import preset_for

    assert grading.grading_preset() == preset_for("grading")


def test_result_adds_the_autograded_tests_only():
    r = Result(3.0, 10.0, tests={"a": (2.0, 2.0), "b": (1.0, 3.0)}, manual={"q": 5.0})
    assert (r.auto_score, r.auto_max) == (3.0, 5.0)
    assert (Result(0.0, 1.0).auto_score, Result(0.0, 1.0).auto_max) == (0, 0)
    assert Result(0.0, 1.0).tests == {} and Result(0.0, 1.0).messages == {} and Result(0.0, 1.0).log == ""


def test_tools_env_puts_this_environments_programs_first(monkeypatch):
    monkeypatch.setenv("PATH", "/somewhere/else")
    env = grading.tools_env(EXTRA="1")
    assert env["PATH"] == f"{Path(sys.executable).parent}{os.pathsep}/somewhere/else"
    assert env["EXTRA"] == "1" and env["HOME"] == os.environ["HOME"]
    monkeypatch.delenv("PATH")
    assert grading.tools_env()["PATH"] == f"{Path(sys.executable).parent}{os.pathsep}"


# ---------------------------------------------------------------- checksums

def _tree(root: Path) -> Path:
    (root / "a" / "b").mkdir(parents=True)
    (root / "top.bin").write_bytes(b"\x00" * 10)
    (root / "a" / "b" / "deep.txt").write_text("deep")
    (root / "a" / "mid.txt").write_text("mid")
    return root


def test_tree_digest_changes_with_any_byte_name_or_link(tmp_path):
    base = _tree(tmp_path / "x")
    d = _tree_digest(base)
    assert d == _tree_digest(_tree(tmp_path / "y")) and len(d) == 64  # the same tree, elsewhere
    (base / "a" / "b" / "deep.txt").write_text("deeq")
    d2 = _tree_digest(base)
    assert d2 != d
    (base / "a" / "mid.txt").rename(base / "a" / "mie.txt")
    d3 = _tree_digest(base)
    assert d3 != d2
    (base / "empty").mkdir()  # an empty folder holds nothing to check
    assert _tree_digest(base) == d3
    (base / "link").symlink_to("top.bin")
    d4 = _tree_digest(base)
    assert d4 != d3
    (base / "link").unlink()
    (base / "link").symlink_to("a")
    assert _tree_digest(base) not in (d3, d4)


def test_tree_digest_does_not_follow_a_link_to_a_folder(tmp_path):
    base = _tree(tmp_path / "x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f.txt").write_text("one")
    (base / "out").symlink_to(outside)
    d = _tree_digest(base)
    (outside / "f.txt").write_text("two")  # what the link points at is not part of the tree
    assert _tree_digest(base) == d


def test_tree_digest_covers_big_files_in_full(tmp_path):
    (tmp_path / "big").write_bytes(b"\x01" * (3 << 20))
    d = _tree_digest(tmp_path)
    with open(tmp_path / "big", "r+b") as f:
        f.seek((3 << 20) - 1)
        f.write(b"\x02")
    assert _tree_digest(tmp_path) != d


def test_records_and_data_live_in_the_courses_grading_folder(tmp_path):
    assert grading.master_paths(tmp_path) == (tmp_path / ".grading" / "master",
                                              tmp_path / ".grading" / "master-checksum.json")
    assert grading.sandbox_paths(tmp_path) == (tmp_path / ".grading" / "sandbox-data",
                                               tmp_path / ".grading" / "sandbox-data-checksum.json")


def test_a_record_that_is_missing_or_not_an_object_reads_as_empty(tmp_path):
    record = tmp_path / "r.json"
    assert grading._read_record(record) == {}
    record.write_text("not json")
    assert grading._read_record(record) == {}
    record.write_text("[1, 2]")
    assert grading._read_record(record) == {}
    record.write_text('{"sha256": "x"}')
    assert grading._read_record(record) == {"sha256": "x"}


def test_a_folder_matches_its_record_only_when_real_and_unchanged(tmp_path):
    folder = _tree(tmp_path / "data")
    want = {"sha256": _tree_digest(folder)}
    assert grading._matches(folder, want)
    assert not grading._matches(folder, {}) and not grading._matches(folder, {"sha256": ""})
    assert not grading._matches(tmp_path / "missing", want)
    (tmp_path / "link").symlink_to(folder)
    assert not grading._matches(tmp_path / "link", want)
    (folder / "top.bin").write_bytes(b"\x01" * 10)
    assert not grading._matches(folder, want)


# ------------------------------------------------------------ grading data

@pytest.fixture
def fake_maker(monkeypatch):
    """Replace the dataset maker and the truth stripper by writers of a few bytes; count calls."""
    calls = {"made": [], "copied": []}

    def synthetic_path(preset, fmt, seed, dest, progress):
        assert progress is False and preset == grading.grading_preset()
        path = Path(dest) / get_preset(preset).filename(fmt, seed)
        path.write_text(f"{fmt} specimen {seed} truth")
        (Path(dest) / f".{path.name}.lazysignals.json").write_text("{}")  # a stamp, as beside an .hspy
        calls["made"].append((fmt, seed))
        return path

    def copy_without_truth(src, dest, preset):
        assert preset == get_preset(grading.grading_preset())
        out = Path(dest) / src.name.replace("_seed", "_was")
        out.mkdir(mode=0o700)  # private, as a umask of 077 would make them
        (out / "data").write_text(src.read_text().replace(" truth", ""))
        (out / "data").chmod(0o600)
        calls["copied"].append(src.name)
        return out

    monkeypatch.setattr("lazysignals.data.synthetic_path", synthetic_path)
    monkeypatch.setattr("lazysignals.synthetic.copy_without_truth", copy_without_truth)
    return calls


@pytest.mark.parametrize("drawn,seed", [(0, 1), (2**31 - 2, 2**31 - 1)])
def test_master_seed_is_a_positive_31_bit_number(tmp_path, fake_maker, monkeypatch, drawn, seed):
    asked = []
    monkeypatch.setattr(grading.secrets, "randbelow", lambda n: asked.append(n) or drawn)
    grading.master_data(tmp_path)
    assert asked == [2**31 - 1] and {s for _, s in fake_maker["made"]} == {seed}


def test_master_is_made_once_from_a_fresh_seed_and_reused_while_it_matches(tmp_path, fake_maker):
    path, digest = grading.master_data(tmp_path)
    (fmt1, seed), (fmt2, seed2) = fake_maker["made"]
    assert (fmt1, fmt2) == ("hspy", "zspy") and seed == seed2 and seed != get_preset(grading.grading_preset()).seed
    folder, record = grading.master_paths(tmp_path)
    assert path == folder / get_preset(grading.grading_preset()).filename("zspy", seed)
    assert json.loads(record.read_text()) == {"dataset": path.name, "seed": seed, "sha256": digest}
    assert digest == _tree_digest(folder)
    assert grading.master_data(tmp_path) == (path, digest) and len(fake_maker["made"]) == 2


@pytest.mark.parametrize("damage", ["bytes", "record", "seed", "dataset", "link"])
def test_master_that_does_not_match_its_record_is_made_again(tmp_path, fake_maker, damage):
    path, digest = grading.master_data(tmp_path)
    folder, record = grading.master_paths(tmp_path)
    want = json.loads(record.read_text())
    if damage == "bytes":
        path.write_text("poisoned")
    elif damage == "record":
        record.write_text("{")
    elif damage == "seed":
        record.write_text(json.dumps(dict(want, seed=str(want["seed"]))))
    elif damage == "dataset":
        record.write_text(json.dumps(dict(want, dataset="other.zspy")))
    else:
        elsewhere = tmp_path / "elsewhere"
        folder.rename(elsewhere)
        folder.symlink_to(elsewhere)
    again, digest2 = grading.master_data(tmp_path)
    assert len(fake_maker["made"]) == 4, "the master was reused"
    assert not folder.is_symlink() and again.read_text().startswith("zspy specimen")
    assert digest2 == _tree_digest(folder) == json.loads(record.read_text())["sha256"]


def test_sandbox_copy_is_made_from_the_master_without_truth_and_kept_while_it_matches(tmp_path, fake_maker):
    master, master_digest = grading.master_data(tmp_path)
    folder, digest = grading.sandbox_data(tmp_path)
    assert sorted(fake_maker["copied"]) == sorted(p.name for p in master.parent.glob("*spy"))
    assert len(fake_maker["copied"]) == 2 and len(list(master.parent.iterdir())) == 4
    assert all("truth" not in p.read_text() for p in folder.glob("*/data"))
    # readable by a kernel that runs as another user (grading as root)
    assert {p.stat().st_mode & 0o777 for p in folder.glob("*/data")} == {0o644}
    assert {p.stat().st_mode & 0o777 for p in [folder, *folder.iterdir()]} == {0o755}
    record = grading.sandbox_paths(tmp_path)[1]
    assert json.loads(record.read_text()) == {"master": master_digest, "sha256": digest}
    assert grading.sandbox_data(tmp_path) == (folder, digest) and len(fake_maker["copied"]) == 2


def test_sandbox_copy_keeps_a_link_inside_it_as_a_link(tmp_path, fake_maker):
    folder, _ = grading.sandbox_data(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("x")
    victim.chmod(0o600)
    (folder / "link").symlink_to(victim)
    grading.sandbox_data(tmp_path)  # changed, so made again: the link is removed, never followed
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600 and not (folder / "link").exists()


@pytest.mark.parametrize("damage", ["bytes", "master"])
def test_sandbox_copy_is_made_again_when_it_or_the_master_changed(tmp_path, fake_maker, damage):
    folder, _ = grading.sandbox_data(tmp_path)
    if damage == "bytes":
        (next(folder.iterdir()) / "data").write_text("poisoned")
    else:
        master, _ = grading.master_data(tmp_path)
        master.write_text("poisoned")  # the master is made again, then the copy from it
    folder2, digest2 = grading.sandbox_data(tmp_path)
    assert len(fake_maker["copied"]) == 4
    assert all((p / "data").read_text().endswith("specimen " + p.name.split("_was")[1].split(".")[0])
               for p in folder2.iterdir())
    assert digest2 == _tree_digest(folder2)


# --------------------------------------------------------- one submission

FAKE_NBGRADER = """#!/bin/sh
# Stands in for `python -m nbgrader ...`: records what it was given, then acts as told.
echo "$@" > "$PWD/args"
env > "$PWD/env"
ulimit -v > "$PWD/limit"
cut -d' ' -f6 /proc/$$/stat > "$PWD/sid"
echo $$ > "$PWD/pid"
readlink /proc/$$/fd/0 > "$PWD/stdin"
mode=$(cat "$PWD/mode" 2>/dev/null)
if [ "$mode" = flood ]; then head -c 200000 /dev/zero | tr '\\0' 'x'; echo; echo LAST LINE; fi
if [ "$mode" = hang ]; then sleep 30; fi
if [ "$mode" = detach ]; then sleep 30 & echo $! > "$PWD/child"; fi
if [ "$mode" = noisy ]; then echo "a warning" >&2; printf 'not utf-8: \\377\\n'; fi
echo "nbgrader ran"
"""


@pytest.fixture
def fake_nbgrader(tmp_path, monkeypatch):
    """``sys.executable`` replaced by a script; returns the course folder it runs in."""
    exe = tmp_path / "bin" / "python"
    exe.parent.mkdir()
    exe.write_text(FAKE_NBGRADER)
    exe.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(exe))
    course = tmp_path / "course"
    course.mkdir()
    return course


def test_grade_one_runs_nbgrader_autograde_with_the_limits(fake_nbgrader, monkeypatch):
    monkeypatch.setenv("LAZYSIGNALS_PRESET", "workshop")
    monkeypatch.setenv("LAZYSIGNALS_MANIFEST", "/m.yml")
    monkeypatch.setenv("LAZYSIGNALS_TRUSTED_CLASS", "0")
    monkeypatch.setenv("MPLBACKEND", "TkAgg")
    log = grading.grade_one(fake_nbgrader, "07_cropping", "ada", cell_timeout=7, notebook_timeout=9,
                            memory=2**30)
    assert log == "nbgrader ran\n"
    assert (fake_nbgrader / "args").read_text().split() == [
        "-m", "nbgrader", "autograde", "07_cropping", "--student=ada", "--force",
        f"--CourseDirectory.root={fake_nbgrader}", "--Execute.timeout=7",
        "--SandboxedExecute.notebook_timeout=9", f"--SandboxedExecute.memory_limit={2**30}"]
    env = dict(line.split("=", 1) for line in (fake_nbgrader / "env").read_text().splitlines() if "=" in line)
    assert env["MPLBACKEND"] == "Agg" and "LAZYSIGNALS_PRESET" not in env
    assert env["LAZYSIGNALS_MANIFEST"] == "/m.yml" and env["LAZYSIGNALS_TRUSTED_CLASS"] == "0"
    assert env["PATH"].startswith(str(Path(sys.executable).parent) + os.pathsep)
    # its own session (so its whole group can be stopped), at least 8 GiB of address space
    assert (fake_nbgrader / "sid").read_text() == (fake_nbgrader / "pid").read_text()
    assert (fake_nbgrader / "stdin").read_text() == "/dev/null\n"  # nothing of the instructor's terminal
    assert int((fake_nbgrader / "limit").read_text()) == 8 * 2**30 // 1024
    grading.grade_one(fake_nbgrader, "07_cropping", "ada", memory=9 * 2**30)
    assert int((fake_nbgrader / "limit").read_text()) == 9 * 2**30 // 1024
    args = (fake_nbgrader / "args").read_text().split()
    assert f"--Execute.timeout={grading.CELL_TIMEOUT}" in args
    assert f"--SandboxedExecute.notebook_timeout={grading.NOTEBOOK_TIMEOUT}" in args


def test_grade_one_keeps_stderr_and_any_bytes_in_the_log(fake_nbgrader):
    (fake_nbgrader / "mode").write_text("noisy")
    assert grading.grade_one(fake_nbgrader, "07_cropping", "ada") == "a warning\nnot utf-8: \ufffd\nnbgrader ran\n"


def test_grade_one_keeps_the_tail_of_a_flooded_log(fake_nbgrader):
    (fake_nbgrader / "mode").write_text("flood")
    log = grading.grade_one(fake_nbgrader, "07_cropping", "ada")
    assert len(log) == grading.LOG_LIMIT == 64 * 1024
    assert log.endswith("x\nLAST LINE\nnbgrader ran\n")


def test_grade_one_stops_a_run_past_its_limit_and_says_so(fake_nbgrader, monkeypatch):
    (fake_nbgrader / "mode").write_text("hang")
    monkeypatch.setattr(grading, "GRACE", 1)
    t0 = time.monotonic()
    log = grading.grade_one(fake_nbgrader, "07_cropping", "ada", notebook_timeout=1)
    assert time.monotonic() - t0 < 10
    assert log.endswith("\nGrading stopped: the notebook ran longer than 1 s.")
    assert grading.GRACE == 1 and grading.NOTEBOOK_TIMEOUT == 900


def test_grade_one_leaves_no_process_of_the_student_behind(fake_nbgrader):
    (fake_nbgrader / "mode").write_text("detach")
    grading.grade_one(fake_nbgrader, "07_cropping", "ada")
    import psutil

    child = int((fake_nbgrader / "child").read_text())
    time.sleep(0.2)
    try:
        assert psutil.Process(child).status() == psutil.STATUS_ZOMBIE  # killed, not yet reaped
    except psutil.NoSuchProcess:
        pass


def test_own_group_sets_the_address_space_and_a_new_session():
    import subprocess

    code = "import os, resource; print(resource.getrlimit(resource.RLIMIT_AS)[0], os.getsid(0) == os.getpid())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         preexec_fn=grading._own_group(3 * 2**30))
    assert out.stdout.split() == [str(3 * 2**30), "True"]


# ------------------------------------------------------------ the gradebook

def _cell(gid=None, *outputs):
    meta = {"nbgrader": {"grade_id": gid, "grade": True}} if gid else {}
    return {"cell_type": "code", "metadata": meta, "outputs": list(outputs)}


def _error(ename, evalue):
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": []}


def test_errors_lists_each_failed_test_and_each_stopped_cell(tmp_path):
    nb = {"cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "no outputs here"},
        {"cell_type": "code", "outputs": [_error("NameError", "x")]},  # no metadata: not a test
        _cell(None, {"output_type": "stream", "name": "stdout", "text": "hi"}),
        _cell("t_ok", {"output_type": "stream", "name": "stdout", "text": "passed"}),
        _cell("t_bad", _error("CheckFailed", "too many chunks")),
        _cell(None, _error("GradingStopped", "the kernel died")),
        _cell("t_stop", _error("GradingStopped", "time limit"), _error("ValueError", "later")),
    ]}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    tests = {k: v for k, v in _errors(path).items() if k}  # an ordinary cell's error is no test's
    assert tests == {"t_bad": "CheckFailed: too many chunks", "cell 5": "GradingStopped: the kernel died",
                     "t_stop": "ValueError: later"}
    nb["cells"][6]["outputs"].reverse()
    path.write_text(json.dumps(nb))
    assert _errors(path)["t_stop"] == "GradingStopped: time limit"


def _empty_gradebook(folder: Path) -> str:
    """URL of an empty gradebook in ``folder``: a copy of one made once per nbgrader version
    (making one takes seconds, most of it nbgrader's database migrations)."""
    import shutil
    import tempfile

    import nbgrader
    from nbgrader.api import Gradebook

    template = Path(tempfile.gettempdir()) / f"lazysignals-test-gradebook-{nbgrader.__version__}.db"
    if not template.exists():
        partial = template.with_suffix(f".{os.getpid()}.partial")
        with Gradebook(f"sqlite:///{partial}"):
            pass
        os.replace(partial, template)
    shutil.copy(template, folder / "gradebook.db")
    return f"sqlite:///{folder / 'gradebook.db'}"


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # nbgrader's add_submission, harmless
def test_read_results_reads_scores_messages_and_manual_points(tmp_path):
    from nbgrader.api import Gradebook

    lesson = "07_cropping"
    with Gradebook(_empty_gradebook(tmp_path)) as gb:
        gb.update_or_create_assignment(lesson)
        gb.update_or_create_notebook(lesson, lesson)
        gb.update_or_create_grade_cell("t1", lesson, lesson, max_score=2, cell_type="code")
        gb.update_or_create_grade_cell("t2", lesson, lesson, max_score=3, cell_type="code")
        gb.update_or_create_grade_cell("q", lesson, lesson, max_score=5, cell_type="markdown")
        gb.update_or_create_solution_cell("q", lesson, lesson)
        gb.update_or_create_grade_cell("unscored", lesson, lesson, max_score=1, cell_type="code")
        for sid in ("ada", "bob"):
            gb.update_or_create_student(sid)
        gb.add_submission(lesson, "ada")
        for name, score in (("t1", 2.0), ("t2", 0.0)):
            g = gb.find_grade(name, lesson, lesson, "ada")
            g.auto_score = score
        gb.db.commit()
    graded = tmp_path / "autograded" / "ada" / lesson
    graded.mkdir(parents=True)
    (graded / f"{lesson}.ipynb").write_text(json.dumps({"cells": [_cell("t2", _error("CheckFailed", "no"))]}))
    got = grading.read_results(tmp_path, lesson, ["bob", "ada"], logs={"ada": "log of ada", "bob": "log of bob"})
    ada, bob = got["ada"], got["bob"]
    assert ada.tests == {"t1": (2.0, 2.0), "t2": (0.0, 3.0)} and ada.manual == {"q": 5.0}
    assert (ada.score, ada.max_score, ada.log) == (2.0, 11.0, "log of ada")
    assert ada.messages == {"t2": "CheckFailed: no"}
    assert (bob.score, bob.max_score, bob.tests, bob.log) == (0.0, 11.0, {}, "log of bob")
    assert grading.read_results(tmp_path, lesson, ["ada", "bob"])["bob"].log == ""


# --------------------------------------------------------------- the course

def test_nbgrader_runs_in_the_course_folder_with_this_environment(fake_nbgrader):
    r = grading._nbgrader(fake_nbgrader, "generate_feedback", "07_cropping")
    assert r.returncode == 0 and r.stdout == "nbgrader ran\n"
    path = next(line for line in (fake_nbgrader / "env").read_text().splitlines() if line.startswith("PATH="))
    assert path.startswith(f"PATH={Path(sys.executable).parent}{os.pathsep}")
    assert (fake_nbgrader / "args").read_text().split() == [
        "-m", "nbgrader", "generate_feedback", "07_cropping", f"--CourseDirectory.root={fake_nbgrader}"]


def test_generate_feedback_returns_the_pages_or_says_why_there_are_none(fake_nbgrader):
    with pytest.raises(RuntimeError, match="generate_feedback wrote nothing for 07_cropping:\nnbgrader ran"):
        grading.generate_feedback(fake_nbgrader, "07_cropping")
    assert (fake_nbgrader / "args").read_text().split()[2:6] == [
        "generate_feedback", "07_cropping", "--force", f"--CourseDirectory.root={fake_nbgrader}"]
    for sid in ("ada", "bob"):
        page = fake_nbgrader / "feedback" / sid / "07_cropping" / "07_cropping.html"
        page.parent.mkdir(parents=True)
        page.write_text("<html/>")
    assert [p.parts[-3] for p in grading.generate_feedback(fake_nbgrader, "07_cropping")] == ["ada", "bob"]
    assert grading.generate_feedback(fake_nbgrader, "07_cropping", "bob") == [page]
    assert "--student=bob" in (fake_nbgrader / "args").read_text().split()


@pytest.fixture
def fake_course(tmp_path, monkeypatch, fake_maker):
    """A course folder with submissions of two lessons; grade_one and read_results recorded."""
    course = tmp_path / "course"
    for sid, lesson in (("bob", "07_cropping"), ("ada", "07_cropping"), ("cy", "05_rebinning")):
        (course / "submitted" / sid / lesson).mkdir(parents=True)
    graded = []

    def grade_one(root, lesson, student, **limits):
        graded.append((root, lesson, student, limits))
        return f"log {student}"

    monkeypatch.setattr(grading, "grade_one", grade_one)
    monkeypatch.setattr(grading, "read_results", lambda root, lesson, students, logs: (root, lesson, students, logs))
    monkeypatch.setattr("lazysignals.sandbox.unavailable_reason", lambda: None)
    return course, graded


def test_autograde_course_grades_each_submission_of_the_lesson(fake_course):
    course, graded = fake_course
    root, lesson, students, logs = grading.autograde_course(course, "07_cropping", cell_timeout=5)
    assert lesson == "07_cropping" and students == ["ada", "bob"] and [g[2] for g in graded] == ["ada", "bob"]
    assert all(g[0] == course.resolve() and g[1] == "07_cropping" and g[3] == {"cell_timeout": 5} for g in graded)
    assert logs == {"ada": "log ada", "bob": "log bob"} and root == course.resolve()
    assert grading.sandbox_paths(course)[0].is_dir(), "the sandbox's data is made before the first student"
    assert grading.autograde_course(course, "07_cropping", students=["bob"])[2] == ["bob"]


@pytest.mark.parametrize("which", ["master", "sandbox"])
def test_autograde_course_stops_when_the_grading_data_changed(fake_course, monkeypatch, which):
    course, graded = fake_course

    def harmful(root, lesson, student, **limits):
        folder = grading.master_paths(root)[0] if which == "master" else grading.sandbox_paths(root)[0]
        next(p for p in folder.rglob("*") if p.is_file()).write_text("poisoned")
        return ""

    monkeypatch.setattr(grading, "grade_one", harmful)
    with pytest.raises(CourseDataError, match="changed while grading ada; grade again"):
        grading.autograde_course(course, "07_cropping")


def test_autograde_course_refuses_without_a_sandbox(fake_course, monkeypatch):
    from lazysignals import sandbox

    course, graded = fake_course
    monkeypatch.setattr(sandbox, "unavailable_reason", lambda: "no bwrap")
    monkeypatch.delenv(sandbox.TRUSTED_ENV, raising=False)
    with pytest.raises(sandbox.SandboxUnavailable, match="no bwrap"):
        grading.autograde_course(course, "07_cropping")
    assert graded == [] and not grading.master_paths(course)[0].exists()


def test_autograde_sets_up_a_scratch_course_and_grades_the_submissions(tmp_path, monkeypatch):
    source = tmp_path / "repo"
    (source / "solutions" / "07_cropping").mkdir(parents=True)
    (source / "solutions" / "07_cropping" / "07_cropping.ipynb").write_text("{}")
    sub = tmp_path / "ada.ipynb"
    sub.write_text('{"mine": 1}')
    calls = []

    def nbgrader(root, *args):
        calls.append(args)
        if "fail" not in str(root):
            (root / "release" / "07_cropping").mkdir(parents=True, exist_ok=True)
        import subprocess

        return subprocess.CompletedProcess(args, 0, "out", "err")

    monkeypatch.setattr(grading, "_nbgrader", nbgrader)
    monkeypatch.setattr(grading, "autograde_course", lambda root, lesson, students, **limits: (root, lesson, students, limits))
    work = tmp_path / "work"
    got = grading.autograde("07_cropping", {"ada": sub}, work, source_root=source, notebook_timeout=3)
    assert got == (work.resolve(), "07_cropping", ["ada"], {"notebook_timeout": 3})
    assert calls == [("generate_assignment", "07_cropping", "--force")]
    assert (work / "source" / "07_cropping" / "07_cropping.ipynb").read_text() == "{}"
    assert (work / "submitted" / "ada" / "07_cropping" / "07_cropping.ipynb").read_text() == '{"mine": 1}'
    assert (work / "nbgrader_config.py").read_text() == (
        "from lazysignals.grading import configure\n\nconfigure(get_config())\n")
    sub.write_text('{"mine": 2}')  # graded again in the same folder: the new submission is graded
    assert grading.autograde("07_cropping", {"ada": sub}, work, source_root=source)[2] == ["ada"]
    assert (work / "submitted" / "ada" / "07_cropping" / "07_cropping.ipynb").read_text() == '{"mine": 2}'
    with pytest.raises(RuntimeError, match="generate_assignment failed for 07_cropping:\nouterr"):
        grading.autograde("07_cropping", {"ada": sub}, tmp_path / "fail", source_root=source)


def test_a_judges_own_values_never_reach_the_folder_the_kernel_sees(tmp_path):
    """The specimen's true shifts (lesson 08) and the disk's wander (lesson 03) stay with the grader."""
    from lazysignals import judges

    shown_dir, kept_dir = tmp_path / "inputs", tmp_path / "kept"
    shown_dir.mkdir()
    kept_dir.mkdir()
    for key in [("08_fitting", "test_centre_map"), ("03_plotting", "test_ex03_annulus_radii")]:
        judge = judges.JUDGES[key]
        inp = judges.write_inputs(judge, shown_dir, seed=5, private=kept_dir)
        private = [k for k in inp if k.startswith("_")]
        assert private, f"{key}: the judge keeps no value of its own"
        seen = judges.read_inputs(judge, shown_dir)
        assert not set(private) & set(seen)
        for k in private:  # not even the values, under another name
            assert k[1:] not in seen
        full = judges.read_inputs(judge, shown_dir, kept_dir)
        for k in private:
            assert np.array_equal(np.asarray(full[k]), np.asarray(inp[k]))
