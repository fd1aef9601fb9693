"""The pip specification (pyproject.toml) and the conda one (environment.yml)
name the same packages with the same bounds. The lock that pip, course.py and
Binder install is checked against both in tests/test_lock.py."""

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
# Packages conda needs that pip gets another way: the interpreter and pip
# themselves, and h5py, which pip gets through rosettasciio's hdf5 extra.
CONDA_ONLY = {"python", "pip", "h5py"}
# Extras for developers of the course, not for attendees nor Binder.
DEVELOPER_EXTRAS = {"mutation"}


def pip_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for name, extra in project["optional-dependencies"].items():
        if name not in DEVELOPER_EXTRAS:
            reqs += extra
    # An extra that includes another ("lazysignals[site]") adds no package of its own.
    return {Requirement(r).name.lower(): Requirement(r) for r in reqs
            if Requirement(r).name != project["name"]}


def conda_requirements(path=ROOT / "environment.yml"):
    env = yaml.safe_load(Path(path).read_text())
    out = {}
    deps = []
    for dep in env["dependencies"]:  # conda packages, then those pip installs (not on conda-forge)
        deps += dep.get("pip", []) if isinstance(dep, dict) else [dep]
    for dep in deps:
        dep = dep.split("#")[0].split(";")[0].strip()  # a platform marker is not a bound
        m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", dep)
        out[m.group(1).lower()] = SpecifierSet(m.group(2).replace(" ", ""))
    return out, env


def test_every_pip_requirement_is_in_environment_yml_with_the_same_bounds():
    conda, _ = conda_requirements()
    for name, req in pip_requirements().items():
        assert name in conda, f"{name} is in pyproject.toml but not in environment.yml"
        assert conda[name] == req.specifier, (
            f"{name}: pyproject.toml says '{req.specifier}', environment.yml says '{conda[name]}'"
        )


def test_every_conda_package_is_in_the_pip_specification():
    conda, _ = conda_requirements()
    extra = set(conda) - set(pip_requirements()) - CONDA_ONLY
    assert not extra, f"environment.yml has packages pyproject.toml lacks: {sorted(extra)}"


def test_zarr_is_held_below_3_for_zspy_writing():
    assert not pip_requirements()["zarr"].specifier.contains("3.0.0")
    assert pip_requirements()["zarr"].specifier.contains("2.18.7")


def test_environment_comes_from_conda_forge_and_python_311():
    conda, env = conda_requirements()
    assert env["channels"] == ["conda-forge"]
    assert conda["python"].contains("3.11.0")


def test_binder_python_is_one_both_specifications_allow():
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    assert re.fullmatch(r"python-3\.\d+", runtime), f"binder/runtime.txt must name python-3.X, not {runtime!r}"
    version = runtime.removeprefix("python-") + ".0"
    conda, _ = conda_requirements()
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert conda["python"].contains(version) and SpecifierSet(requires).contains(version)
