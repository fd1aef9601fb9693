"""Binder: what repo2docker generates from binder/, and the scripts it runs,
run here in a temporary home (no container engine needed)."""

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from labserver import _wait_until_listening, free_port
from lazysignals import manifest
from lazysignals.data import is_ready
from lazysignals.measure import peak_memory
from lazysignals.lessons import lesson_names

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"
BIN = Path(sys.executable).parent


def _env(home, **extra):
    path = str(BIN) + os.pathsep + os.environ["PATH"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAZYSIGNALS_", "JUPYTER"))}
    return {**env, "HOME": str(home), "PATH": path, **extra}


def binder_python() -> str:
    return (BINDER / "runtime.txt").read_text().strip().removeprefix("python-")


@pytest.fixture(scope="module")
def generated():
    """``repo2docker --no-build --debug`` on the repository: its log and its Dockerfile."""
    r = subprocess.run([str(BIN / "repo2docker"), "--no-build", "--debug", str(ROOT)],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stderr, r.stdout


def test_repo2docker_builds_on_the_courses_python_not_its_default(generated):
    log, dockerfile = generated
    assert "unspecified" not in log, log
    assert f"Building conda environment for python={binder_python()}" in log, log
    encoded = binder_python().replace(".", "-2e")  # how repo2docker names the file it copies
    assert re.search(rf"COPY .*environment-2epy-2d{encoded}-2dlinux-2d64-2elock\S* /tmp/env/environment.lock",
                     dockerfile), "the base environment is not the one of runtime.txt's Python"


def test_repo2docker_installs_the_lock_with_pip_and_no_conda_environment(generated):
    _, dockerfile = generated
    assert "COPY --chown=0:0 src/binder/requirements.txt ${REPO_DIR}/binder/requirements.txt" in dockerfile
    assert re.search(r'RUN \$\{KERNEL_PYTHON_PREFIX\}/bin/pip install --no-cache-dir -r "binder/requirements.txt"',
                     dockerfile)
    assert "environment.yml" not in dockerfile and "env update" not in dockerfile, (
        "binder/ has a conda environment: repo2docker would solve it with mamba instead of installing the lock")
    # The lock's layer comes before the repository is copied in, so a content change rebuilds only the rest.
    assert dockerfile.index('binder/requirements.txt"') < dockerfile.index("COPY --chown=0:0 src/ ${REPO_DIR}/")


def test_repo2docker_runs_postbuild_and_starts_through_binder_start(generated):
    _, dockerfile = generated
    copy_repo = dockerfile.index("COPY --chown=0:0 src/ ${REPO_DIR}/")
    assert dockerfile.index("RUN ./binder/postBuild") > copy_repo
    assert 'ENV R2D_ENTRYPOINT="${REPO_DIR}/binder/start"' in dockerfile
    assert 'ENTRYPOINT ["/usr/local/bin/repo2docker-entrypoint"]' in dockerfile


def test_every_file_the_build_copies_resolves_inside_the_build_context(generated):
    from docker.utils.build import exclude_paths

    _, dockerfile = generated
    named = re.findall(r"^COPY \S+ src/(\S+) ", dockerfile, re.MULTILINE)
    assert "binder/requirements.txt" in named
    for rel in named:
        path = ROOT / rel
        assert not path.is_symlink() and path.is_file(), (
            f"repo2docker copies {rel} into the image before the repository: it must be a file, not a link")
    # The whole repository (src/) as repo2docker puts it in the context, less binder/.dockerignore.
    ignore = [ln.strip() for ln in (BINDER / ".dockerignore").read_text().splitlines()
              if ln.strip() and not ln.startswith("#")]
    context = exclude_paths(str(ROOT), ignore)
    assert "binder/start" in context and "requirements/lock.txt" in context
    assert not any(p.split("/")[0] in (".venv", "data") for p in context), "datasets or .venv in the context"
    for rel in context:
        path = ROOT / rel
        if path.is_symlink():
            target = path.resolve()
            assert target.is_relative_to(ROOT) and target.exists(), f"{rel} links outside the build context"


def _mtimes(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_postbuild_makes_the_dataset_and_a_launch_only_verifies_it_and_opens_notebooks(tmp_path):
    with peak_memory(interval=0.05, release=False, of="children") as mem:  # postBuild and all it runs
        r = subprocess.run(["bash", str(BINDER / "postBuild")], env=_env(tmp_path),
                           capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    settings = Path(sys.prefix) / "share/jupyter/lab/settings/overrides.json"
    assert settings.read_text() == (ROOT / "jupyter/overrides.json").read_text()
    # Both formats the lessons use, complete, in the image's home.
    preset = manifest.get_preset("binder")
    data = tmp_path / "data"
    for fmt in ("zspy", "hspy"):
        assert is_ready(data / preset.filename(fmt), preset, preset.seed), f"no complete binder .{fmt}"
    peak_mib = mem.peak / 2**20
    assert peak_mib < 1536, f"making the binder preset peaked at {peak_mib:.0f} MiB, over a 2 GB pod's budget"

    # A launch: binder/start finds the dataset, makes nothing, and hands over at once.
    before = _mtimes(data)
    t0 = time.perf_counter()
    r = subprocess.run(["bash", str(BINDER / "start"), sys.executable, "-c",
                        "import os; print(os.environ['LAZYSIGNALS_PRESET'], os.environ['LAZYSIGNALS_DATA'])"],
                       env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1] == f"binder {data}"
    assert _mtimes(data) == before, "a launch made the dataset again"
    assert seconds < 15, f"binder/start took {seconds:.1f} s with the dataset already made"

    # The lab Binder starts (through binder/start, with postBuild's settings) shows the lessons only.
    port = free_port()
    lab = subprocess.Popen(["bash", str(BINDER / "start"), sys.executable, "-m", "jupyter", "lab", "--no-browser",
                            "--ip=127.0.0.1", f"--port={port}", "--IdentityProvider.token=binder-test",
                            *(["--allow-root"] if os.geteuid() == 0 else [])],
                           env=_env(tmp_path, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime")),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_until_listening(port, seconds=120)
        api = f"http://127.0.0.1:{port}/api/contents/%s?token=binder-test"
        with urllib.request.urlopen(api % "", timeout=30) as resp:
            names = {item["name"] for item in json.load(resp)["content"]}
        assert set(lesson_names()) <= names and "solutions" not in names, names
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(api % "solutions", timeout=30)
    finally:
        os.killpg(lab.pid, 15)
        lab.wait(timeout=30)


def test_start_makes_the_dataset_when_it_is_missing(tmp_path):
    r = subprocess.run(["bash", str(BINDER / "start"), "true"], env=_env(tmp_path, LAZYSIGNALS_PRESET="ci"),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    preset = manifest.get_preset("ci")
    for fmt in ("zspy", "hspy"):
        assert is_ready(tmp_path / "data" / preset.filename(fmt), preset, preset.seed)


def _container_engine() -> str | None:
    """Why no image can be built here, or None when a docker daemon answers."""
    try:
        r = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired) as e:
        return f"no docker command ({e.__class__.__name__})"
    return None if r.returncode == 0 else f"no docker daemon answers: {r.stderr.strip().splitlines()[-1]}"


@pytest.mark.slow
def test_real_binder_image_builds_and_serves_lesson_00(tmp_path):
    reason = _container_engine()
    if reason:
        pytest.skip(f"the real image build needs a container engine: {reason}")
    image = "lazysignals-binder-test"
    t0 = time.perf_counter()
    r = subprocess.run([str(BIN / "repo2docker"), "--no-run", "--image-name", image, str(ROOT)],
                       capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-5000:]
    print(f"image built in {time.perf_counter() - t0:.0f} s")
    port = free_port()
    name = f"lazysignals-binder-{port}"
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "-p", f"127.0.0.1:{port}:8888", image,
                    "jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--IdentityProvider.token=binder-test"],
                   check=True, capture_output=True)
    try:
        _wait_until_listening(port, seconds=120)
        url = f"http://127.0.0.1:{port}/api/contents/00_setup/00_setup.ipynb?token=binder-test&content=0"
        for _ in range(60):
            try:
                with urllib.request.urlopen(url, timeout=10) as resp:
                    assert resp.status == 200
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(1)
        else:
            pytest.fail("lesson 00 was not served by the image's JupyterLab")
    finally:
        subprocess.run(["docker", "stop", name], capture_output=True)
