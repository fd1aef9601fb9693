"""Read ``data_manifest.yml``: the one list of every dataset the course knows.

Nothing else in the package names a preset or a dataset; everything asks here,
by role (:func:`preset_for`): ``default`` for learners, ``grading`` for
nbgrader and the tests, ``workshop`` for the course geometry, ``out_of_core``
for the larger-than-memory demonstration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

#: Environment variable naming the folder where datasets are made and cached.
DATA_ENV = "LAZYSIGNALS_DATA"
#: Environment variable naming another manifest file (tests use it).
MANIFEST_ENV = "LAZYSIGNALS_MANIFEST"

REPO_ROOT = Path(__file__).resolve().parent.parent


class CourseDataError(Exception):
    """A problem with course data, with a message that says what to do."""


class UnknownNameError(CourseDataError, KeyError):
    """A preset or dataset name that the manifest does not list."""

    def __str__(self):  # KeyError would quote the message
        return self.args[0]


@dataclass(frozen=True)
class Preset:
    """A synthetic dataset: its geometry, calibration and seed.

    Shapes are in HyperSpy order, navigation ``(x, y)`` and signal
    ``(kx, ky)``; :attr:`data_shape` is the numpy order ``(y, x, ky, kx)``.
    """

    name: str
    description: str
    navigation_shape: tuple[int, int]
    signal_shape: tuple[int, int]
    chunk: int
    dtype: str
    #: None in the copy of the manifest that the grading sandbox shows (no seed readable there)
    seed: int | None
    scan_scale_nm: float
    detector_scale_mrad: float
    dose: float
    defects: bool

    @property
    def data_shape(self) -> tuple[int, int, int, int]:
        (nx, ny), (kx, ky) = self.navigation_shape, self.signal_shape
        return (ny, nx, ky, kx)

    @property
    def chunks(self) -> tuple[int, int, int, int]:
        return (self.chunk,) * 4

    @property
    def nbytes(self) -> int:
        n = 1
        for d in self.data_shape:
            n *= d
        import numpy as np

        return n * np.dtype(self.dtype).itemsize

    def filename(self, fmt: str = "zspy", seed: int | None = None) -> str:
        """File name of this preset in format ``fmt`` (``zspy`` or ``hspy``); no seed in it when
        neither ``seed`` nor the preset has one (the grading sandbox's copy of the data)."""
        seed = self.seed if seed is None else seed
        return f"synthetic_{self.name}.{fmt}" if seed is None else f"synthetic_{self.name}_seed{seed}.{fmt}"


@dataclass(frozen=True)
class Dataset:
    """A real dataset on Zenodo."""

    name: str
    description: str
    record: int
    file: str
    url: str
    doi: str
    known_hash: str | None
    license: str
    convert: dict | None = None
    size_mb: float | None = None


_PRESET_KEYS = {f for f in Preset.__dataclass_fields__ if f != "name"}
_DATASET_REQUIRED = {"description", "record", "file", "url", "doi", "known_hash", "license"}
_DATASET_KEYS = {f for f in Dataset.__dataclass_fields__ if f != "name"}
_CONVERT_REQUIRED = {"output", "navigation_shape", "chunk"}
_CONVERT_KEYS = _CONVERT_REQUIRED | {"navigation_start"}
#: What each preset role is for; the manifest's ``roles:`` names a preset for each.
ROLES = {
    "default": "what learners get unless they choose",
    "grading": "nbgrader's grading and the test suite",
    "workshop": "the course geometry (workshop benchmarks, lesson timings)",
    "out_of_core": "larger than memory (the out-of-core demonstration)",
}


def manifest_path() -> Path:
    """Path of the manifest in use (``$LAZYSIGNALS_MANIFEST`` overrides)."""
    return Path(os.environ.get(MANIFEST_ENV, REPO_ROOT / "data_manifest.yml"))


@lru_cache(maxsize=4)
def _load(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except FileNotFoundError:
        raise CourseDataError(
            f"The data manifest {path} is missing. Run the course from a full "
            f"checkout of the repository, or set {MANIFEST_ENV} to its path."
        ) from None
    return validate(raw, source=path)


def validate(raw, source="manifest") -> dict:
    """Check the manifest's structure; return it with typed entries.

    Raises
    ------
    CourseDataError
        Naming the entry and field at fault.
    """
    if not isinstance(raw, dict) or not {"presets", "datasets", "roles"} <= set(raw):
        raise CourseDataError(f"{source}: needs the keys roles, presets and datasets.")
    presets = {}
    for name, entry in (raw["presets"] or {}).items():
        _check_keys(entry, _PRESET_KEYS, _PRESET_KEYS, f"{source}: preset '{name}'")
        p = Preset(
            name=name,
            description=str(entry["description"]),
            navigation_shape=tuple(int(v) for v in entry["navigation_shape"]),
            signal_shape=tuple(int(v) for v in entry["signal_shape"]),
            chunk=int(entry["chunk"]),
            dtype=str(entry["dtype"]),
            seed=None if entry["seed"] is None else int(entry["seed"]),
            scan_scale_nm=float(entry["scan_scale_nm"]),
            detector_scale_mrad=float(entry["detector_scale_mrad"]),
            dose=float(entry["dose"]),
            defects=bool(entry["defects"]),
        )
        if len(p.navigation_shape) != 2 or len(p.signal_shape) != 2:
            raise CourseDataError(f"{source}: preset '{name}' needs 2 navigation and 2 signal lengths.")
        if any(s != 4 * p.chunk for s in p.signal_shape):
            raise CourseDataError(
                f"{source}: preset '{name}' must have 4 chunks along each signal axis "
                f"(signal {p.signal_shape}, chunk {p.chunk})."
            )
        presets[name] = p
    datasets = {}
    for name, entry in (raw["datasets"] or {}).items():
        _check_keys(entry, _DATASET_REQUIRED, _DATASET_KEYS, f"{source}: dataset '{name}'")
        _validate_convert(entry.get("convert"), name, source)
        datasets[name] = Dataset(name=name, **entry)
    return {"roles": _validate_roles(raw["roles"], presets, source), "presets": presets, "datasets": datasets}


def _check_keys(entry, required: set, allowed: set, where: str) -> None:
    """Refuse an entry that lacks a required field or has one the manifest does not know."""
    keys = set(entry or {})
    if required - keys or keys - allowed:
        raise CourseDataError(f"{where} is missing {sorted(required - keys)} or has unknown {sorted(keys - allowed)}.")


def _validate_roles(roles, presets: dict, source) -> dict[str, str]:
    """Check that ``roles`` names a listed preset for every role, and nothing else."""
    roles = roles if isinstance(roles, dict) else {}
    if set(roles) != set(ROLES):
        raise CourseDataError(
            f"{source}: roles must name a preset for each of {', '.join(ROLES)} "
            f"(it has {', '.join(roles) or 'none'})."
        )
    for role, name in roles.items():
        if name not in presets:
            raise CourseDataError(f"{source}: role {role} names '{name}', which is not a preset.")
    return dict(roles)


def _validate_convert(spec, name: str, source) -> None:
    """Check a dataset's ``convert`` entry (the course geometry to crop to)."""
    if spec is None:
        return
    keys = set(spec) if isinstance(spec, dict) else set()
    bad = f"{source}: dataset '{name}': convert"
    if not _CONVERT_REQUIRED <= keys or keys - _CONVERT_KEYS:
        raise CourseDataError(f"{bad} needs {sorted(_CONVERT_REQUIRED)}, optionally navigation_start.")
    pairs = [spec["navigation_shape"], spec.get("navigation_start") or [0, 0]]
    if not all(isinstance(p, list) and len(p) == 2 and all(isinstance(v, int) for v in p) for p in pairs):
        raise CourseDataError(f"{bad}: navigation_shape and navigation_start are two integers (x, y).")
    if not isinstance(spec["chunk"], int) or spec["chunk"] < 1 or not str(spec["output"]).endswith(".zspy"):
        raise CourseDataError(f"{bad}: chunk is a positive integer and output a .zspy file name.")


def manifest() -> dict:
    """The validated manifest: ``roles``, ``presets``, ``datasets``."""
    return _load(str(manifest_path()))


def presets() -> dict[str, Preset]:
    return manifest()["presets"]


def datasets() -> dict[str, Dataset]:
    return manifest()["datasets"]


def preset_for(role: str) -> str:
    """Name of the preset that serves ``role`` (one of :data:`ROLES`)."""
    if role not in ROLES:
        raise UnknownNameError(f"There is no preset role called '{role}'. Roles: {', '.join(ROLES)}.")
    return manifest()["roles"][role]


def default_preset() -> str:
    """The preset learners get unless they choose (role ``default``)."""
    return preset_for("default")


def _lookup(table: dict, name: str, kind: str, hint: str):
    try:
        return table[name]
    except KeyError:
        raise UnknownNameError(
            f"There is no {kind} called '{name}'. Valid {kind}s: {', '.join(sorted(table))}. {hint}"
        ) from None


def get_preset(name: str) -> Preset:
    """The synthetic preset ``name``; an unknown name lists the valid ones."""
    return _lookup(presets(), name, "preset", "List them with: python -m lazysignals data --list")


def get_dataset(name: str) -> Dataset:
    """The real dataset ``name``; an unknown name lists the valid ones."""
    return _lookup(datasets(), name, "dataset", "List them with: python -m lazysignals data --list")


def data_dir() -> Path:
    """Folder for course data: ``$LAZYSIGNALS_DATA`` or ``data/`` in the repository."""
    path = Path(os.environ.get(DATA_ENV) or REPO_ROOT / "data").expanduser()
    return path
