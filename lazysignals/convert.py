"""Real datasets cut to the course geometry, each by its own ``convert:`` entry.

A dataset of ``data_manifest.yml`` may carry a ``convert:`` entry: the scan
crop (``navigation_shape``, optionally ``navigation_start``), the chunk length
used on all four axes and the ``.zspy`` file to write. :func:`convert` opens
the download lazily, crops it to that geometry and writes it chunk by chunk,
never whole in memory; :func:`converted_path` does so once and reuses the
result while its stamp names the same source and the same entry.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from . import manifest, storage
from .manifest import CourseDataError


def convert_spec(dataset: manifest.Dataset) -> dict:
    """The ``convert`` entry of ``dataset``; a clear error when it has none."""
    if not dataset.convert:
        can = [d.name for d in manifest.datasets().values() if d.convert]
        raise CourseDataError(
            f"The dataset '{dataset.name}' has no conversion to the course geometry. "
            f"Datasets that have one: {', '.join(can) or 'none'}. Fetch it without --convert."
        )
    return dataset.convert


def _stamp(dataset: manifest.Dataset) -> dict:
    """What a converted file records: its source and the entry (as stored in JSON)."""
    return {"source": dataset.file, "convert": json.loads(json.dumps(convert_spec(dataset)))}


def converted_path(dataset: manifest.Dataset, folder: Path, progress: bool = True) -> Path:
    """The course version of ``dataset`` in ``folder``: downloaded and converted if needed."""
    from .fetch import dataset_path

    out = Path(folder) / convert_spec(dataset)["output"]
    if storage.is_finished(out, _stamp(dataset)):
        return out
    src = dataset_path(dataset.name, dest=folder, progress=progress)
    return convert(src, out, dataset, overwrite=True, progress=progress)


def _signal_crop(signal_shape, chunk: int) -> tuple[list[slice], int]:
    """Central crop of the detector to 4 chunks per axis, and the chunk used.

    A detector larger than ``4 * chunk`` keeps its central ``4 * chunk``
    pixels (the bright-field disk is near the centre). A smaller one keeps
    4 chunks of ``min(signal_shape) // 4`` pixels, and that chunk is used on
    all four axes, so the course's chunk arithmetic stays true.
    """
    used = min(chunk, min(signal_shape) // 4)
    if used < 1:
        raise CourseDataError(
            f"The detector ({signal_shape[0]} x {signal_shape[1]}) is too small for 4 chunks per axis."
        )
    side = 4 * used
    if any(n != 4 * chunk for n in signal_shape):
        warnings.warn(
            f"The detector is {signal_shape[0]} x {signal_shape[1]} pixels, not "
            f"{4 * chunk} x {4 * chunk}: keeping its central {side} x {side} pixels "
            f"in chunks of {used} on all four axes.",
            stacklevel=3,
        )
    return [slice((n - side) // 2, (n - side) // 2 + side) for n in signal_shape], used


def _navigation_crop(navigation_shape, spec: dict) -> list[slice]:
    """Crop of the scan to the ``navigation_shape`` of the convert entry."""
    want = [int(v) for v in spec["navigation_shape"]]
    start = [int(v) for v in spec.get("navigation_start") or (0, 0)]
    if any(s + w > n for s, w, n in zip(start, want, navigation_shape)):
        raise CourseDataError(
            f"The scan is {navigation_shape[0]} x {navigation_shape[1]} probe positions, too small "
            f"for a {want[0]} x {want[1]} crop starting at {start}. Check the 'convert' entry "
            f"in {manifest.manifest_path()}, or fetch the file again if it is not the expected one."
        )
    return [slice(s, s + w) for s, w in zip(start, want)]


def course_crop(src, spec: dict):
    """Open ``src`` lazily and crop it to the course geometry of ``spec``.

    Parameters
    ----------
    src : path-like
        A 4D-STEM file HyperSpy reads (two navigation, two signal axes).
    spec : dict
        A manifest ``convert`` entry: ``navigation_shape``, ``chunk`` and
        optionally ``navigation_start`` (default ``[0, 0]``).

    Returns
    -------
    signal : hyperspy.signals.BaseSignal
        The lazy, cropped and rechunked signal (nothing is read yet).
    chunk : int
        The chunk length used on every axis.
    """
    import hyperspy.api as hs

    s = hs.load(src, lazy=True)
    am = s.axes_manager
    if am.navigation_dimension != 2 or am.signal_dimension != 2:
        raise CourseDataError(
            f"{src} is not 4D-STEM data (2 navigation and 2 signal axes): it has "
            f"{am.navigation_dimension} and {am.signal_dimension}. Fetch it again."
        )
    sig, chunk = _signal_crop(am.signal_shape, int(spec["chunk"]))
    nav = _navigation_crop(am.navigation_shape, spec)
    s = s.inav[nav[0], nav[1]].isig[sig[0], sig[1]]
    s.rechunk(nav_chunks=(chunk, chunk), sig_chunks=(chunk, chunk))
    return s, chunk


def convert(src, dest, dataset: manifest.Dataset, overwrite: bool = False, progress: bool = True) -> Path:
    """Crop ``src`` to the geometry of ``dataset``'s ``convert`` entry; save it as ``.zspy``.

    The file is opened lazily, cropped (see :func:`course_crop`) and written
    chunk by chunk with the same chunk length on all four axes, under a
    temporary name; it is checked for every chunk and only then renamed to
    ``dest``: an interrupted conversion leaves nothing finished.

    Parameters
    ----------
    src : path-like
        The downloaded file (any 4D-STEM file HyperSpy reads).
    dest : path-like
        The ``.zspy`` to write.
    dataset : manifest.Dataset
        The dataset ``src`` is a download of; its ``convert`` entry is used.
    overwrite : bool
        Replace ``dest`` if it exists.
    progress : bool
        Show a progress bar while writing.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    CourseDataError
        If ``dest`` exists (without ``overwrite``), the dataset has no
        ``convert`` entry, the data does not fit it, or the disk fills up.
    """
    dest = Path(dest)
    s, chunk = course_crop(src, convert_spec(dataset))
    try:
        with storage.atomic_target(dest, overwrite=overwrite) as tmp:
            with storage.zarr2_notice_hidden():
                s.save(tmp, chunks=(chunk,) * 4, show_progressbar=progress, compressor=storage.course_compressor())
            storage.verify_zspy(tmp)
            storage.write_stamp(tmp, dict(_stamp(dataset), chunk=chunk))
    finally:
        s.close_file()
    return dest
