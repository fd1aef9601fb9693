#!/usr/bin/env python3
"""Set up and run the course with nothing but Python (>= 3.11) and pip.

    python3 course.py start    # environment, dataset, JupyterLab at lesson 00
    python3 course.py test     # environment, then the whole test suite
    python3 course.py lock     # refresh requirements/lock.txt after pyproject.toml changed

start and test create an isolated environment in .venv (or $LAZYSIGNALS_VENV)
and install the course into it, once: a second run reuses it and starts at once.
They install the exact, hashed versions of requirements/lock.txt, the stack the
course was tested on. With --newest (or LAZYSIGNALS_NEWEST=1) they install the
newest releases pyproject.toml allows instead, to try the course on them.
Anything else after the command is passed on (``start --no-browser``,
``test -k manifest``). ``lock --upgrade`` moves every pin to the newest release.
"""

import hashlib
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("LAZYSIGNALS_VENV", ROOT / ".venv"))
STAMP = VENV / ".lazysignals-installed"
LOCK = ROOT / "requirements" / "lock.txt"
BINDER_REQUIREMENTS = ROOT / "binder" / "requirements.txt"
NEWEST_ENV = "LAZYSIGNALS_NEWEST"
# The lock covers Linux, macOS and Windows on every Python the course supports.
LOCK_COMMAND = ["uv", "pip", "compile", "pyproject.toml", "--extra", "test", "--universal",
                "--generate-hashes", "--python-version", "3.11", "--no-header", "--quiet",
                "-o", "requirements/lock.txt"]
LOCK_HEADER = ("# The course's stack: exact, hashed versions for Linux, macOS and Windows, Python >= 3.11.\n"
               "# Made from pyproject.toml by `python3 course.py lock` (uv pip compile); do not edit.\n"
               "# pyproject.toml dependencies: {digest}\n")


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def spec_hash(newest: bool = False) -> str:
    """Changes when the dependencies, the lock, the JupyterLab settings or the mode change."""
    h = hashlib.sha256(b"newest" if newest else b"lock")
    for name in ("pyproject.toml", "requirements/lock.txt", "jupyter/overrides.json"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def dependencies_digest() -> str:
    """Digest of pyproject.toml's dependency lists; the lock's header records the one it was made from."""
    import tomllib  # here, so that an older Python gets course.py's own message

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    spec = {k: project.get(k) for k in ("requires-python", "dependencies", "optional-dependencies")}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def lock_is_current() -> bool:
    """True when requirements/lock.txt was made from pyproject.toml's current dependencies."""
    head = LOCK.read_text().split("\n", 3)[:3]
    return LOCK_HEADER.format(digest=dependencies_digest()).split("\n")[:3] == head


def install_commands(py, newest: bool = False, stale: bool = False) -> list[list[str]]:
    """The pip commands that install the course: from the lock, or the newest releases.

    A stale lock (pyproject.toml changed since it was made) is installed, then
    pip adds what pyproject.toml needs beyond it, until the lock is refreshed.
    """
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check"]
    if newest:
        return [[*pip, "--upgrade", "--upgrade-strategy", "eager", "-e", f"{ROOT}[test]"]]
    return [[*pip, "--require-hashes", "-r", str(LOCK)],
            [*pip, "-e", f"{ROOT}[test]"] if stale else [*pip, "--no-deps", "-e", str(ROOT)]]


def ensure_environment(newest: bool = False) -> Path:
    """Create .venv and install the course into it, unless already done."""
    if sys.version_info < (3, 11):
        sys.exit(f"The course needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    py = venv_python()
    if not py.exists():
        print(f"Creating an isolated environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    # The newest releases are looked up on every --newest run; the lock is installed once.
    if not newest and STAMP.exists() and STAMP.read_text() == spec_hash():
        return py
    what = "the newest releases of its dependencies" if newest else "its dependencies from requirements/lock.txt"
    print(f"Installing the course and {what} (a few minutes, once) ...", flush=True)
    stale = not newest and not lock_is_current()
    if stale:
        print("warning: pyproject.toml's dependencies changed since requirements/lock.txt was made; "
              "installing the lock and then what pyproject.toml adds. Refresh the lock with "
              "`python3 course.py lock` and commit it.", flush=True)
    STAMP.unlink(missing_ok=True)
    for cmd in install_commands(py, newest, stale):
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            sys.exit(
                "Installing the course failed (see pip's message above). Check the network "
                "connection to the package index, then run the same command again. If pip "
                "reports a hash or version conflict, pyproject.toml and the lock disagree: "
                "run python3 course.py lock."
            )
    subprocess.run([str(py), "-m", "lazysignals", "lab-settings"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    STAMP.write_text(spec_hash(newest))
    return py


def binder_requirements(lock_text: str) -> str:
    """Binder's binder/requirements.txt: the lock, word for word, under a header.

    repo2docker reads only binder/, and copies its requirements file into the
    image before the rest of the repository, so the file itself (not a link
    or an ``-r`` include) must be there. pip picks the entries for Binder's Linux
    and Python by their markers, as on any machine.
    """
    return ("# Binder's packages (Python in runtime.txt): a copy of requirements/lock.txt,\n"
            "# written by `python3 course.py lock`; do not edit.\n" + lock_text)


def refresh_lock(upgrade: bool = False) -> int:
    """Write requirements/lock.txt from pyproject.toml with uv, then Binder's requirements."""
    py = venv_python()
    if not py.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    uv = py.parent / ("uv.exe" if os.name == "nt" else "uv")
    if not uv.exists():
        print("Installing uv into the course environment to make the lock ...", flush=True)
        subprocess.run([str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", "uv"],
                       check=True)
    cmd = [str(uv), *LOCK_COMMAND[1:], *(["--upgrade"] if upgrade else [])]
    if subprocess.run(cmd, cwd=ROOT).returncode != 0:
        sys.exit("uv could not resolve pyproject.toml (see its message above).")
    LOCK.write_text(LOCK_HEADER.format(digest=dependencies_digest()) + LOCK.read_text())
    BINDER_REQUIREMENTS.write_text(binder_requirements(LOCK.read_text()))
    print(f"Wrote {LOCK.relative_to(ROOT)} and {BINDER_REQUIREMENTS.relative_to(ROOT)}; commit both.")
    return 0


def main(argv) -> int:
    if argv and argv[0] == "lock":
        return refresh_lock(upgrade="--upgrade" in argv[1:])
    if not argv or argv[0] not in ("start", "test"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    newest = "--newest" in rest or os.environ.get(NEWEST_ENV, "") not in ("", "0")
    rest = [a for a in rest if a != "--newest"]
    py = ensure_environment(newest)
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
