"""Binder's configuration, tested without Docker: the files repo2docker runs,
run here in a temporary home."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

from lazysignals import manifest
from lazysignals.measure import peak_memory
from lazysignals.storage import verify_zspy

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"


def _env(home):
    path = str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYSIGNALS_")}
    return {**env, "HOME": str(home), "PATH": path}


def test_binder_environment_parses_and_names_conda_forge_packages():
    env = yaml.safe_load((BINDER / "environment.yml").read_text())
    names = {d.split(">")[0].split("<")[0].split("=")[0] for d in env["dependencies"] if isinstance(d, str)}
    assert {"hyperspy", "rosettasciio", "zarr", "dask", "ipympl", "jupyterlab", "nbgrader"} <= names


def test_postbuild_installs_the_package_and_the_lab_settings(tmp_path):
    r = subprocess.run(["bash", str(BINDER / "postBuild")], env=_env(tmp_path), capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    settings = Path(sys.prefix) / "share/jupyter/lab/settings/overrides.json"
    assert settings.read_text() == (ROOT / "jupyter/overrides.json").read_text()


def test_start_prepares_the_binder_preset_within_binder_memory_and_runs_the_command(tmp_path):
    with peak_memory(interval=0.05, release=False, of="children") as mem:  # start and all it runs
        r = subprocess.run(
            ["bash", str(BINDER / "start"), sys.executable, "-c",
             "import os; print(os.environ['LAZYSIGNALS_PRESET'], os.environ['LAZYSIGNALS_DATA'])"],
            env=_env(tmp_path), capture_output=True, text=True, timeout=600,
        )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1] == f"binder {tmp_path / 'data'}"
    preset = manifest.get_preset("binder")
    path = tmp_path / "data" / preset.filename("zspy")
    info = verify_zspy(path)
    assert info["shape"] == preset.data_shape
    peak_mib = mem.peak / 2**20
    assert peak_mib < 1536, f"preparing the binder preset peaked at {peak_mib:.0f} MiB, over a 2 GB pod's budget"
    # A second start finds the dataset and does not make it again.
    mtime = path.stat().st_mtime_ns
    again = subprocess.run(["bash", str(BINDER / "start"), "true"], env=_env(tmp_path),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and path.stat().st_mtime_ns == mtime
