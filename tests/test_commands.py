"""Commands an instructor or a learner types, run as they type them.

``python -m lazysignals data`` with ``--seed``, ``--format zspy,hspy`` and
``--fetch --convert`` (against files served from 127.0.0.1), ``python -m
lazysignals notebooks``, ``python -m tests.corpus.build``, and ``course.py``,
which installs the course again when its dependencies change.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml

from lazysignals import manifest, storage, synthetic
from lazysignals.manifest import REPO_ROOT


def run(*args, cwd=None, env=None, timeout=300):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def lazysignals_cli(*args, **kw):
    return run("-m", "lazysignals", *args, **kw)


# --------------------------------------------------------------------------
# python -m lazysignals data


def test_seed_and_two_formats_write_that_specimen_in_both_files(tmp_path):
    import hyperspy.api as hs

    ci = manifest.get_preset("ci")
    r = lazysignals_cli("data", "--preset", "ci", "--seed", "7", "--format", "zspy, hspy",
                        "--dest", str(tmp_path), "--quiet")
    assert r.returncode == 0, r.stderr
    printed = [Path(line) for line in r.stdout.split()]
    assert printed == [tmp_path / ci.filename("zspy", 7), tmp_path / ci.filename("hspy", 7)]
    assert storage.read_stamp(printed[0])["seed"] == 7
    z, h = (np.asarray(hs.load(p, lazy=True).data) for p in printed)
    np.testing.assert_array_equal(z, h)
    np.testing.assert_array_equal(z, synthetic.make_lazy_signal(ci, 7).data.compute())
    default = synthetic.make_lazy_signal(ci).data.compute()
    assert not np.array_equal(z, default), "--seed 7 gave the preset's own specimen"


def test_unknown_format_is_a_clear_message(tmp_path):
    r = lazysignals_cli("data", "--preset", "ci", "--format", "tiff", "--dest", str(tmp_path), "--quiet")
    assert r.returncode == 2
    assert "Unknown format 'tiff'. Valid formats: zspy, hspy." in r.stderr
    assert "Traceback" not in r.stderr
    assert not list(tmp_path.iterdir())


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path):
    """A folder served over HTTP on 127.0.0.1 (a port chosen by the OS), like Zenodo's files."""
    root = tmp_path / "served"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_fetch_convert_downloads_checks_and_converts_to_the_course_geometry(tmp_path, served):
    import hyperspy.api as hs

    root, url = served
    data = np.random.default_rng(3).integers(0, 60000, (20, 16, 32, 32), dtype="uint16")
    source = root / "records" / "15" / "files" / "film.hspy"
    source.parent.mkdir(parents=True)
    hs.signals.Signal2D(data).save(source)
    md5 = hashlib.md5(source.read_bytes()).hexdigest()
    geometry = {"output": "film_course.zspy", "navigation_shape": [12, 8], "chunk": 8,
                "navigation_start": [2, 4]}
    entry = dict(description="a film", record=15, file="film.hspy",
                 url="https://zenodo.org/records/15/files/film.hspy", doi="10.5281/zenodo.15",
                 known_hash=f"md5:{md5}", license="CC-BY-4.0", convert=geometry)
    ci = yaml.safe_load(manifest.manifest_path().read_text())["presets"]["ci"]
    course_manifest = tmp_path / "manifest.yml"
    course_manifest.write_text(yaml.safe_dump(
        {"roles": {role: "ci" for role in ("default", "grading", "workshop", "out_of_core")},
         "presets": {"ci": ci}, "datasets": {"big-film": entry}}))
    env = {manifest.MANIFEST_ENV: str(course_manifest), "LAZYSIGNALS_ZENODO_URL": url,
           "LAZYSIGNALS_FETCH_RETRIES": "0"}

    dest = tmp_path / "data"
    r = lazysignals_cli("data", "--fetch", "big-film", "--convert", "--dest", str(dest), "--quiet", env=env)

    assert r.returncode == 0, r.stderr
    out = Path(r.stdout.strip().splitlines()[-1])
    assert out == dest / "film_course.zspy"
    assert (dest / "film.hspy").read_bytes() == source.read_bytes()
    converted = hs.load(out, lazy=True)
    assert converted.axes_manager.navigation_shape == (12, 8)
    assert converted.data.chunksize == (8, 8, 8, 8)
    np.testing.assert_array_equal(np.asarray(converted.data), data[4:12, 2:14])

    source.write_bytes(b"a different file on the server")
    (dest / "film.hspy").unlink()
    shutil.rmtree(out)
    bad = lazysignals_cli("data", "--fetch", "big-film", "--convert", "--dest", str(dest), "--quiet", env=env)
    assert bad.returncode == 2
    assert "did not match its checksum" in bad.stderr and "Traceback" not in bad.stderr
    assert not out.exists() and not (dest / "film.hspy").exists()


# --------------------------------------------------------------------------
# Instructor commands that do not grade


def _code_cells(path):
    nb = json.loads(Path(path).read_text())
    return [("".join(c["source"]), c["metadata"].get("nbgrader", {}).get("grade_id"))
            for c in nb["cells"] if c["cell_type"] == "code"]


def test_notebooks_command_writes_the_student_version_without_solutions_or_hidden_tests(tmp_path):
    lesson = "00_setup"
    for item in ("lazysignals", "nbgrader_config.py", "data_manifest.yml", "docs"):
        src = REPO_ROOT / item
        (shutil.copytree(src, tmp_path / item, ignore=shutil.ignore_patterns("__pycache__"))
         if src.is_dir() else shutil.copy(src, tmp_path / item))
    shutil.copytree(REPO_ROOT / "solutions" / lesson, tmp_path / "solutions" / lesson)

    r = lazysignals_cli("notebooks", lesson, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})

    assert r.returncode == 0, r.stderr
    made = tmp_path / "notebooks" / lesson / f"{lesson}.ipynb"
    pages = [tmp_path / folder / page for folder in ("notebooks", "solutions")
             for page in ("GLOSSARY.md", "CHEATSHEET.md")]
    assert sorted(Path(line) for line in r.stdout.split()) == sorted([made, *pages])
    text = made.read_text()
    for marker in ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS", "_unreadable("):
        assert marker not in text, f"the student notebook still has {marker!r}"
    assert "raise NotImplementedError" in text
    assert _code_cells(made) == _code_cells(REPO_ROOT / "notebooks" / lesson / f"{lesson}.ipynb")
    for page in pages:  # the reference pages sit next to the lessons, copied from docs/
        assert page.read_text() == (REPO_ROOT / "docs" / page.name).read_text()


def test_corpus_build_writes_every_case_as_a_submission(tmp_path):
    from tests.corpus import build

    r = run("-m", "tests.corpus.build", str(tmp_path), cwd=REPO_ROOT)

    assert r.returncode == 0, r.stderr
    cases = build.load_cases()
    for lesson, by_name in cases.items():
        assert f"{lesson}: {len(by_name)} submissions" in r.stdout
        student = _code_cells(REPO_ROOT / "notebooks" / lesson / f"{lesson}.ipynb")
        for name, case in by_name.items():
            path = tmp_path / "submitted" / name / lesson / f"{lesson}.ipynb"
            cells = _code_cells(path)
            assert [g for _, g in cells] == [g for _, g in student], f"{name}: cells missing or added"
            text = path.read_text()
            assert "### BEGIN SOLUTION" not in text and "### BEGIN HIDDEN TESTS" not in text
            by_id = {g: src for src, g in cells if g}
            for gid, code in (case.get("answers") or {}).items():
                assert by_id[gid] == code, f"{name}: the answer to {gid} was not written"


# --------------------------------------------------------------------------
# course.py: install once, again when the dependencies change

STUB = """#!/bin/sh
echo "$*" >> "{log}"
case "$*" in *"pip install"*) exit "${{STUB_PIP_STATUS:-0}}";; esac
exit 0
"""


@pytest.fixture
def course_copy(tmp_path):
    """course.py in a scratch folder, with a fake environment whose python records its calls."""
    root = tmp_path / "course"
    (root / "jupyter").mkdir(parents=True)
    (root / "requirements").mkdir()
    for name in ("course.py", "pyproject.toml", "jupyter/overrides.json", "requirements/lock.txt"):
        shutil.copy(REPO_ROOT / name, root / name)
    venv, log = tmp_path / "venv", tmp_path / "calls.log"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(STUB.format(log=log))
    python.chmod(python.stat().st_mode | stat.S_IEXEC)

    def course(*args, **env):
        log.write_text("")
        r = subprocess.run([sys.executable, str(root / "course.py"), *args], capture_output=True, text=True,
                           env={**os.environ, "LAZYSIGNALS_VENV": str(venv), **env}, timeout=60)
        return r, log.read_text().splitlines()

    return root, course


def _installs(calls):
    return [c for c in calls if "-m pip install" in c]


def _installs_the_lock_then_the_course(root, calls):
    """The hashed lock first, then the course itself without pulling in other versions."""
    installs = _installs(calls)
    return (len(installs) == 2
            and installs[0].endswith(f"--require-hashes -r {root / 'requirements' / 'lock.txt'}")
            and installs[1].endswith(f"--no-deps -e {root}"))


def test_course_py_installs_once_then_runs_the_command_at_once(course_copy):
    root, course = course_copy

    r, calls = course("test", "-k", "manifest")
    assert r.returncode == 0, r.stderr
    assert _installs_the_lock_then_the_course(root, calls), calls
    assert "warning" not in r.stdout, "the committed lock should match pyproject.toml"
    assert "-m lazysignals lab-settings" in calls
    assert calls[-1] == "-m pytest -k manifest"

    r, calls = course("test", "-k", "manifest")
    assert r.returncode == 0, r.stderr
    assert calls == ["-m pytest -k manifest"], "a second run installed again"


@pytest.mark.parametrize("changed", ["pyproject.toml", "jupyter/overrides.json", "requirements/lock.txt"])
def test_course_py_installs_again_when_the_dependencies_change(course_copy, changed):
    root, course = course_copy
    course("start", "--no-browser")
    with open(root / changed, "a") as f:
        f.write("\n")

    r, calls = course("start", "--no-browser")

    assert r.returncode == 0, r.stderr
    assert _installs_the_lock_then_the_course(root, calls), f"changing {changed} did not reinstall: {calls}"
    assert calls[-1] == "-m lazysignals start --no-browser"
    r, calls = course("start", "--no-browser")
    assert not _installs(calls)


def test_course_py_failed_install_says_what_to_do_and_tries_again_next_time(course_copy):
    _root, course = course_copy

    r, calls = course("test", STUB_PIP_STATUS="1")
    assert r.returncode != 0
    assert "Installing the course failed" in r.stderr and "run the same command again" in r.stderr
    assert not any("-m pytest" in c for c in calls)

    r, calls = course("test")
    assert r.returncode == 0 and _installs_the_lock_then_the_course(_root, calls), calls


def test_course_py_with_a_lock_older_than_pyproject_warns_and_adds_what_pyproject_needs(course_copy):
    root, course = course_copy
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("dependencies = [", 'dependencies = [\n    "tomli-w",', 1))

    r, calls = course("test")

    assert r.returncode == 0, r.stderr
    assert "python3 course.py lock" in r.stdout
    installs = _installs(calls)
    assert len(installs) == 2 and "--require-hashes -r" in installs[0]
    assert installs[1].endswith(f"-e {root}[test]") and "--no-deps" not in installs[1]
