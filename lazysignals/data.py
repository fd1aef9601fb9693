"""Where the lessons get their data: find it, or make it, then open it lazily.

A lesson calls ``lazysignals.load()`` and gets the course dataset whatever
the learner did before: it is made on the spot if missing, verified if
present, and chosen as follows (first that applies):

1. the ``name`` argument (a preset such as ``"ci"`` or a real dataset such as
   ``"feal-stripes"``);
2. the manifest's ``grading`` preset while nbgrader grades (it sets
   ``NBGRADER_EXECUTION``);
3. the ``LAZYSIGNALS_PRESET`` environment variable;
4. the manifest's ``default`` preset.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import manifest, storage
from .manifest import CourseDataError

PRESET_ENV = "LAZYSIGNALS_PRESET"
FORMATS = storage.FORMATS


def resolve_name(name: str | None = None) -> str:
    """The preset or dataset a lesson should use (see the module docstring)."""
    if name:
        return name
    if os.environ.get("NBGRADER_EXECUTION"):
        return manifest.preset_for("grading")
    return os.environ.get(PRESET_ENV) or manifest.default_preset()


def is_ready(path: Path, preset: manifest.Preset, seed: int) -> bool:
    """True when ``path`` holds the finished dataset of ``preset`` and ``seed`` (any format)."""
    from .synthetic import stamp

    return storage.is_finished(path, stamp(preset, seed))


def synthetic_path(
    preset: str | None = None,
    fmt: str = "zspy",
    seed: int | None = None,
    dest: Path | None = None,
    prepare: bool = True,
    progress: bool = True,
) -> Path:
    """Path of a synthetic dataset, made first if it is missing or incomplete.

    Parameters
    ----------
    preset : str, optional
        Preset name; chosen by :func:`resolve_name` when omitted.
    fmt : {"zspy", "hspy"}
        File format.
    seed : int, optional
        Another specimen than the preset's default.
    dest : Path, optional
        Folder; ``$LAZYSIGNALS_DATA`` or ``data/`` by default.
    prepare : bool
        Make the dataset when it is missing (otherwise raise).
    """
    from .synthetic import generate

    p = manifest.get_preset(resolve_name(preset))
    (fmt,) = storage.check_formats(fmt)
    seed = p.seed if seed is None else int(seed)
    dest = Path(dest) if dest else manifest.data_dir()
    path = dest / p.filename(fmt, seed)
    try:
        if is_ready(path, p, seed):
            return path
    except CourseDataError:
        if not prepare:
            raise
    if not prepare:
        raise CourseDataError(
            f"{path} is not there yet. Make it with: python -m lazysignals data --prepare --preset {p.name}"
            + (f" --seed {seed}" if seed != p.seed else "")
        )
    return generate(p, dest, formats=(fmt,), seed=seed, overwrite=True, progress=progress)[fmt]


def prepare(name: str | None = None, formats=FORMATS, seed: int | None = None, dest: Path | None = None,
            progress: bool = True) -> dict[str, Path]:
    """Make sure a course dataset is ready; make or fetch what is missing.

    What ``python -m lazysignals start``, ``data --prepare``, Binder's start
    script and the benchmarks call. A dataset already there and complete is
    left as it is (instant); one that is missing, unfinished or from an older
    model is made again.

    Parameters
    ----------
    name : str, optional
        A preset or a real dataset; chosen by :func:`resolve_name` when omitted.
    formats : sequence of {"zspy", "hspy"}
        Formats of a synthetic preset; by default both, which the lessons need.
    seed : int, optional
        Another specimen of a synthetic preset.
    dest : Path, optional
        Folder; ``$LAZYSIGNALS_DATA`` or ``data/`` by default.
    progress : bool
        Show progress.

    Returns
    -------
    dict
        Format (a file's extension for a real dataset) -> path.
    """
    name = resolve_name(name)
    if name in manifest.datasets():
        from .fetch import dataset_path

        # a dataset with a course geometry (big-film) is used in that geometry
        path = dataset_path(name, dest=dest, convert=bool(manifest.get_dataset(name).convert), progress=progress)
        return {path.suffix.lstrip("."): path}
    return {fmt: synthetic_path(name, fmt=fmt, seed=seed, dest=dest, progress=progress)
            for fmt in storage.check_formats(formats)}


def load(name: str | None = None, fmt: str = "zspy", seed: int | None = None, lazy: bool = True):
    """Open a course dataset lazily, preparing it if needed.

    Parameters
    ----------
    name : str, optional
        A preset (``python -m lazysignals data --list``) or a real dataset
        listed in ``data_manifest.yml``.
    fmt : {"zspy", "hspy"}
        Format of a synthetic dataset.
    seed : int, optional
        Another specimen of a synthetic preset.
    lazy : bool
        Open lazily (the point of the course).

    Returns
    -------
    hyperspy.signals.BaseSignal
    """
    import hyperspy.api as hs

    (path,) = prepare(name, formats=(fmt,), seed=seed).values()
    return open_path(path, lazy=lazy)


def open_path(path, lazy: bool = True):
    """Open a course file with ``hs.load``, the small ground-truth maps read into memory.

    A lazily opened file keeps every array of its metadata lazy too. The
    ground truth of a synthetic dataset is a few small maps (1.3 MB at
    workshop size), and left lazy, each one is written with its own dask
    progress bar (100 ms each, whatever ``show_progressbar`` says) whenever a
    signal derived from ``s`` is saved: read once here, they are plain numpy
    arrays in every copy. The data itself stays lazy.
    """
    import dask
    import hyperspy.api as hs

    # Lessons save .zspy copies too (lesson 04): no zarr 2 notice for those either.
    storage.hide_zarr2_notice()
    s = hs.load(path, lazy=lazy)
    node = s.metadata.get_item("Sample.ground_truth")
    if node is not None:
        truth = node.as_dictionary()
        lazy_keys = [k for k, v in truth.items() if dask.is_dask_collection(v)]
        for k, v in zip(lazy_keys, dask.compute(*(truth[k] for k in lazy_keys))):
            node.set_item(k, v)
    return s


def ground_truth(signal) -> dict:
    """The ground truth stored with a synthetic dataset, as numpy arrays.

    Empty on the copy that grading shows a learner's code (its truth was
    withheld, :func:`lazysignals.synthetic.copy_without_truth`).
    """
    import numpy as np

    from .synthetic import WITHHELD

    try:
        node = signal.metadata.Sample.ground_truth
    except AttributeError:
        if signal.metadata.get_item("Sample.synthetic.truth") == WITHHELD:
            return {}
        raise CourseDataError(
            "This signal has no ground truth: only the synthetic datasets carry one."
        ) from None
    return {k: np.asarray(v) for k, v in node.as_dictionary().items()}
