"""Real datasets from Zenodo: download once, verify, and convert for the course.

Every real dataset is listed under ``datasets:`` in ``data_manifest.yml``.
:func:`dataset_path` downloads it with pooch into the data folder
(``$LAZYSIGNALS_DATA`` or ``data/``), checks its checksum (from the manifest,
or from Zenodo's records API when the manifest has none) and returns its
path. pooch writes to a temporary file and renames it only when the checksum
matches, so a download cut short never leaves a file that looks complete.

A finished download is recorded in a small file beside it
(``.<file>.verified.json``: checksum, size and modification time), so that
later calls neither hash tens of gigabytes again nor need the network.

:func:`convert_big_film` crops the large ``big-film`` recording lazily to the
course geometry and writes it as a ``.zspy`` with equal chunks on all four
axes.

Environment variables
---------------------
LAZYSIGNALS_ZENODO_URL
    Replaces ``https://zenodo.org`` in download and API addresses (a mirror,
    or a local server in the tests).
LAZYSIGNALS_FETCH_RETRIES
    How many times a failed download is tried again (default 3).
"""

from __future__ import annotations

import errno
import json
import os
import warnings
from contextlib import contextmanager
from pathlib import Path

from . import manifest, storage
from .manifest import CourseDataError

ZENODO = "https://zenodo.org"
#: Environment variable replacing ``https://zenodo.org`` (mirrors, tests).
ZENODO_ENV = "LAZYSIGNALS_ZENODO_URL"
#: Environment variable with the number of extra download attempts.
RETRIES_ENV = "LAZYSIGNALS_FETCH_RETRIES"
DEFAULT_RETRIES = 3
#: (connect, read) timeouts in seconds: a dead connection fails, never stalls.
TIMEOUT = (10, 60)

OFFLINE_HINT = (
    "The course does not need it: work offline on the synthetic twin with "
    "`python -m lazysignals data --preset binder` or `lazysignals.load()` in a notebook."
)


class _PermanentHTTPError(Exception):
    """An HTTP answer that trying again will not change (e.g. 404)."""

    def __init__(self, status: int, url: str):
        super().__init__(f"HTTP {status} for {url}")
        self.status, self.url = status, url


# --------------------------------------------------------------------------
# Addresses


def zenodo_url() -> str:
    """Base address of Zenodo: ``$LAZYSIGNALS_ZENODO_URL`` or ``https://zenodo.org``."""
    return (os.environ.get(ZENODO_ENV) or ZENODO).rstrip("/")


def file_url(dataset: manifest.Dataset) -> str:
    """Download address of ``dataset``, on the Zenodo base in use."""
    url = dataset.url
    if url.startswith(ZENODO + "/"):
        url = zenodo_url() + url[len(ZENODO):]
    return url


def records_api_url(dataset: manifest.Dataset) -> str:
    """Address of the Zenodo records API entry of ``dataset``'s record."""
    return f"{zenodo_url()}/api/records/{dataset.record}"


def _retries() -> int:
    value = os.environ.get(RETRIES_ENV, "")
    return int(value) if value.strip().isdigit() else DEFAULT_RETRIES


# --------------------------------------------------------------------------
# Checksums


def _file_entries(payload: dict) -> list[dict]:
    """The file descriptions of a records API answer (old and new layouts)."""
    files = payload.get("files") or []
    if isinstance(files, dict):  # {"entries": {name: {...}}} layout
        files = list((files.get("entries") or {}).values())
    return [f for f in files if isinstance(f, dict)]


def _normalise_checksum(checksum: str) -> str:
    """``md5:...`` from a Zenodo checksum, which may lack the algorithm."""
    checksum = checksum.strip()
    return checksum if ":" in checksum else f"md5:{checksum}"


def _get_json(url: str, dataset: manifest.Dataset) -> dict:
    import requests

    try:
        response = requests.get(url, timeout=TIMEOUT)
        response.raise_for_status()
        return response.json()
    except requests.HTTPError as e:
        raise _http_error(e.response.status_code, url, dataset) from None
    except requests.RequestException:
        raise _offline_error(url, dataset) from None
    except ValueError:
        raise CourseDataError(
            f"Zenodo's answer at {url} was not the expected JSON, so the checksum of "
            f"'{dataset.name}' could not be checked. Try again later. {OFFLINE_HINT}"
        ) from None


def record_file_info(dataset: manifest.Dataset) -> dict:
    """Checksum and size of ``dataset``'s file from Zenodo's records API.

    Parameters
    ----------
    dataset : manifest.Dataset
        The dataset; its ``record`` and ``file`` are looked up.

    Returns
    -------
    dict
        ``checksum`` (``"md5:..."``, as pooch expects) and ``size`` in bytes
        (``None`` when the API does not say).

    Raises
    ------
    CourseDataError
        When Zenodo cannot be reached, or the record does not list the file.
    """
    url = records_api_url(dataset)
    entries = _file_entries(_get_json(url, dataset))
    for entry in entries:
        if (entry.get("key") or entry.get("filename")) == dataset.file and entry.get("checksum"):
            return {"checksum": _normalise_checksum(entry["checksum"]), "size": entry.get("size")}
    names = ", ".join(str(e.get("key") or e.get("filename")) for e in entries) or "none"
    raise CourseDataError(
        f"Zenodo record {dataset.record} does not list the file '{dataset.file}' with a "
        f"checksum (it lists: {names}). Check the '{dataset.name}' entry of "
        f"{manifest.manifest_path()} against {ZENODO}/records/{dataset.record}."
    )


def _expected(dataset: manifest.Dataset) -> dict:
    """Checksum (never skipped) and size expected for ``dataset``'s file."""
    if dataset.known_hash:
        size = dataset.size_mb * 1e6 if dataset.size_mb else None
        return {"checksum": dataset.known_hash, "size": size}
    return record_file_info(dataset)


# --------------------------------------------------------------------------
# Record of a verified download


def _verified_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.verified.json")


def _signature(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _mark_verified(path: Path, checksum: str) -> None:
    record = dict(_signature(path), checksum=checksum)
    _verified_path(path).write_text(json.dumps(record, indent=1))


def _is_verified(path: Path, checksum: str | None) -> bool:
    """True when ``path`` is unchanged since it passed ``checksum`` (any, if None)."""
    try:
        record = json.loads(_verified_path(path).read_text())
        current = _signature(path)
    except (OSError, ValueError):
        return False
    same_file = all(record.get(k) == v for k, v in current.items())
    return same_file and (checksum is None or record.get("checksum") == checksum)


def _forget(path: Path) -> None:
    storage.remove(path)
    storage.remove(_verified_path(path))


# --------------------------------------------------------------------------
# Errors


def _offline_error(url: str, dataset: manifest.Dataset) -> CourseDataError:
    return CourseDataError(
        f"Could not get {url} for the '{dataset.name}' dataset: there seems to be no "
        f"network, the server is down, or the connection broke off; nothing half-downloaded "
        f"was kept. Check the connection and run "
        f"`python -m lazysignals data --fetch {dataset.name}` again later. {OFFLINE_HINT}"
    )


def _http_error(status: int, url: str, dataset: manifest.Dataset) -> CourseDataError:
    if status in (404, 410):
        return CourseDataError(
            f"{url} answered HTTP {status} (not found): the '{dataset.name}' file has moved "
            f"or the record changed. Compare the entry in {manifest.manifest_path()} with "
            f"{ZENODO}/records/{dataset.record}. {OFFLINE_HINT}"
        )
    return CourseDataError(
        f"{url} answered HTTP {status}: the server could not deliver '{dataset.name}' now. "
        f"Try `python -m lazysignals data --fetch {dataset.name}` again later. {OFFLINE_HINT}"
    )


def _mismatch_error(dataset: manifest.Dataset, detail: str) -> CourseDataError:
    return CourseDataError(
        f"The downloaded '{dataset.name}' file did not match its checksum, so it was removed "
        f"({detail}). This is usually a transfer cut short: run "
        f"`python -m lazysignals data --fetch {dataset.name}` again. If it fails every time, "
        f"the file on Zenodo changed; compare {manifest.manifest_path()} with "
        f"{ZENODO}/records/{dataset.record}."
    )


# --------------------------------------------------------------------------
# Download


def _downloader(progress: bool):
    """pooch HTTP downloader that does not retry answers that will not change."""
    import pooch
    import requests

    http = pooch.HTTPDownloader(progressbar=progress, timeout=TIMEOUT)

    def download(url, output_file, pooch_instance, check_only=False):
        try:
            return http(url, output_file, pooch_instance, check_only=check_only)
        except requests.HTTPError as e:
            status = e.response.status_code if e.response is not None else 0
            if 400 <= status < 500 and status not in (408, 429):
                raise _PermanentHTTPError(status, url) from None
            raise

    return download


@contextmanager
def _download_errors(dataset: manifest.Dataset, url: str, path: Path):
    """Turn what a download can raise into a :class:`CourseDataError` saying what to do."""
    import requests

    try:
        yield
    except _PermanentHTTPError as e:
        raise _http_error(e.status, e.url, dataset) from None
    except requests.HTTPError as e:
        raise _http_error(e.response.status_code, url, dataset) from None
    except requests.RequestException:
        raise _offline_error(url, dataset) from None
    except ValueError as e:  # pooch: the checksum did not match
        _forget(path)
        raise _mismatch_error(dataset, str(e).split(".")[0]) from None
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise CourseDataError(
                f"The disk filled up while downloading {dataset.file}; nothing was kept. "
                "Free some space or choose another folder with --dest, then run again."
            ) from None
        raise


def download(dataset: manifest.Dataset, folder: Path, progress: bool = True) -> Path:
    """Download ``dataset`` into ``folder`` with pooch, checksum verified.

    Parameters
    ----------
    dataset : manifest.Dataset
        The dataset to get.
    folder : Path
        Where to keep it.
    progress : bool
        Show a progress bar.

    Returns
    -------
    Path
        The verified file. A file already there is hashed, and downloaded
        again only if it does not match.

    Raises
    ------
    CourseDataError
        With what to do, for no network, HTTP errors, a checksum mismatch
        or a full disk.
    """
    import pooch

    folder = Path(folder)
    path = folder / dataset.file
    expected = _expected(dataset)
    if expected["size"] and not path.exists():
        storage.check_free_space(folder, int(expected["size"]))
    url = file_url(dataset)
    fetcher = pooch.create(
        path=folder, base_url="", registry={dataset.file: expected["checksum"]},
        urls={dataset.file: url}, retry_if_failed=_retries(),
    )
    storage.remove(_verified_path(path))
    with _download_errors(dataset, url, path):
        fetcher.fetch(dataset.file, downloader=_downloader(progress))
    _mark_verified(path, expected["checksum"])
    return path


def dataset_path(name: str, dest=None, convert: bool = False, progress: bool = True) -> Path:
    """Local path of the real dataset ``name``, downloaded first if needed.

    Parameters
    ----------
    name : str
        A dataset of the manifest (``python -m lazysignals data --list``).
    dest : path-like, optional
        Folder; ``$LAZYSIGNALS_DATA`` or ``data/`` by default.
    convert : bool
        Return the course version made by the dataset's ``convert`` entry
        (``big-film``: see :func:`convert_big_film`), making it if needed.
    progress : bool
        Show progress bars.

    Returns
    -------
    Path
        The verified download, or the converted ``.zspy``.

    Raises
    ------
    CourseDataError
        Unknown name (the valid ones are listed), no network, HTTP error,
        checksum mismatch; each message says what to do.
    """
    dataset = manifest.get_dataset(name)
    folder = Path(dest).expanduser() if dest else manifest.data_dir()
    if convert:
        return _converted_path(dataset, folder, progress)
    path = folder / dataset.file
    if path.is_file() and _is_verified(path, dataset.known_hash):
        return path
    return download(dataset, folder, progress=progress)


# --------------------------------------------------------------------------
# Conversion to the course geometry


def _convert_spec(dataset: manifest.Dataset) -> dict:
    if not dataset.convert:
        can = [d.name for d in manifest.datasets().values() if d.convert]
        raise CourseDataError(
            f"The dataset '{dataset.name}' has no conversion to the course geometry. "
            f"Datasets that have one: {', '.join(can) or 'none'}. Fetch it without --convert."
        )
    return dataset.convert


def _converted_path(dataset: manifest.Dataset, folder: Path, progress: bool) -> Path:
    spec = _convert_spec(dataset)
    out = folder / spec["output"]
    stamp = storage.read_stamp(out) if out.is_dir() else None
    if stamp and stamp.get("convert") == _stamp_spec(spec) and stamp.get("source") == dataset.file:
        storage.verify_zspy(out)
        return out
    src = dataset_path(dataset.name, dest=folder, progress=progress)
    return convert_big_film(src, out, overwrite=True, progress=progress)


def _stamp_spec(spec: dict) -> dict:
    """The convert entry as it is stored (JSON) in the converted file."""
    return json.loads(json.dumps(spec))


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


def convert_big_film(src, dest, overwrite: bool = False, progress: bool = True) -> Path:
    """Crop the big-film recording to the course geometry and save it as ``.zspy``.

    The file is opened lazily, cropped to the manifest's ``convert`` entry
    of ``big-film`` (navigation 440 x 128, chunk 64) and written chunk by
    chunk, never whole in memory, with the same chunk length on all four
    axes. The detector is cut to its central ``4 * chunk`` pixels per axis;
    see :func:`course_crop` for a detector of another size. The result is
    written under a temporary name, checked for every chunk, and only then
    renamed to ``dest``: an interrupted conversion leaves nothing finished.

    Parameters
    ----------
    src : path-like
        The downloaded ``.hspy`` (or any 4D-STEM file HyperSpy reads).
    dest : path-like
        The ``.zspy`` to write.
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
        If ``dest`` exists (without ``overwrite``), the data does not fit the
        geometry, or the disk fills up.
    """
    spec = _convert_spec(manifest.get_dataset("big-film"))
    dest = Path(dest)
    s, chunk = course_crop(src, spec)
    try:
        with storage.atomic_target(dest, overwrite=overwrite) as tmp:
            with storage.zarr2_notice_hidden():
                s.save(tmp, chunks=(chunk,) * 4, show_progressbar=progress, compressor=storage.course_compressor())
            storage.verify_zspy(tmp)
            info = {"source": Path(src).name, "convert": _stamp_spec(spec), "chunk": chunk}
            storage.write_stamp(tmp, info)
    finally:
        s.close_file()
    return dest
