#!/usr/bin/env python3
"""Set up and run the course with nothing but Python (>= 3.11) and pip.

    python3 course.py start    # environment, dataset, JupyterLab at lesson 00
    python3 course.py test     # environment, then the whole test suite

Both create an isolated environment in .venv (or $LAZYSIGNALS_VENV) and
install the course into it, once: a second run reuses it and starts at once.
Anything after the command is passed on (``start --no-browser``,
``test -k manifest``).
"""

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("LAZYSIGNALS_VENV", ROOT / ".venv"))
STAMP = VENV / ".lazysignals-installed"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def spec_hash() -> str:
    """Changes when the dependencies or the JupyterLab settings change."""
    h = hashlib.sha256()
    for name in ("pyproject.toml", "jupyter/overrides.json"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def ensure_environment() -> Path:
    """Create .venv and install the course into it, unless already done."""
    if sys.version_info < (3, 11):
        sys.exit(f"The course needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    py = venv_python()
    if not py.exists():
        print(f"Creating an isolated environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == spec_hash():
        return py
    print("Installing the course and its dependencies (a few minutes, once) ...", flush=True)
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check"]
    result = subprocess.run([*pip, "-e", f"{ROOT}[test]"], cwd=ROOT)
    if result.returncode != 0:
        sys.exit(
            "Installing the course failed (see pip's message above). Check the network "
            "connection to the package index, then run the same command again."
        )
    subprocess.run([str(py), "-m", "lazysignals", "lab-settings"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    STAMP.write_text(spec_hash())
    return py


def main(argv) -> int:
    if not argv or argv[0] not in ("start", "test"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    py = ensure_environment()
    os.chdir(ROOT)
    # Tools that the course runs as programs (nbgrader's alembic, jupyter) live here.
    os.environ["PATH"] = str(py.parent) + os.pathsep + os.environ.get("PATH", "")
    if command == "start":
        cmd = [str(py), "-m", "lazysignals", "start", *rest]
    else:
        cmd = [str(py), "-m", "pytest", *rest]
    if os.name == "nt":
        return subprocess.call(cmd)
    os.execv(cmd[0], cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
