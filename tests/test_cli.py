"""The command line a learner or instructor types, run as they would run it."""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from labserver import course_jupyterlab
from lazysignals import manifest
from lazysignals.lessons import lesson_names


def run(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "lazysignals", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout)


def test_list_names_every_preset_and_dataset():
    out = run("data", "--list").stdout
    for name in [*manifest.presets(), *manifest.datasets()]:
        assert name in out
    assert "7.38 GB" in out


def test_unknown_preset_is_a_clear_message_not_a_traceback():
    r = run("data", "--preset", "worskhop")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "Valid presets: binder, ci, large, workshop" in r.stderr


def test_making_a_preset_twice_keeps_the_first_unless_overwrite_is_asked(tmp_path):
    first = run("data", "--preset", "ci", "--dest", str(tmp_path), "--quiet")
    assert first.returncode == 0, first.stderr
    path = Path(first.stdout.strip().splitlines()[-1])
    assert path.is_dir()
    before = path.stat().st_mtime_ns
    again = run("data", "--preset", "ci", "--dest", str(tmp_path), "--quiet")
    assert again.returncode == 2 and "already exists" in again.stderr and "--overwrite" in again.stderr
    assert path.stat().st_mtime_ns == before
    forced = run("data", "--preset", "ci", "--dest", str(tmp_path), "--quiet", "--overwrite")
    assert forced.returncode == 0, forced.stderr
    verify = run("data", "--verify", str(path))
    assert verify.returncode == 0 and "complete" in verify.stdout


def test_start_prepares_the_dataset_and_serves_lesson_00_headless(tmp_path):
    with course_jupyterlab(tmp_path) as url:
        assert "00_setup.ipynb" in url
        assert list((tmp_path / "data").glob("synthetic_ci_*.zspy")), "the ci dataset was not prepared"
        with urllib.request.urlopen(url, timeout=30) as r:
            assert r.status == 200
            assert "JupyterLab" in r.read().decode()
        base, token = url.split("/lab")[0], url.split("token=")[1]
        api = f"{base}/api/contents/00_setup/00_setup.ipynb?token={token}&content=0"
        with urllib.request.urlopen(api, timeout=30) as r:
            assert r.status == 200
        # The learner's lab shows the student notebooks; solutions/ is out of its reach.
        with urllib.request.urlopen(f"{base}/api/contents/?token={token}", timeout=30) as r:
            names = {item["name"] for item in json.load(r)["content"]}
        assert set(lesson_names()) <= names and "solutions" not in names, names
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"{base}/api/contents/solutions?token={token}", timeout=30)


def test_lessons_lists_the_lesson_folders_in_teaching_order():
    from lazysignals.lessons import lesson_names

    r = run("lessons")
    assert r.returncode == 0 and r.stdout.split() == lesson_names()
