"""Real datasets from Zenodo: download once, verify, and convert for the course.

Every real dataset is listed under ``datasets:`` in ``data_manifest.yml``.
:func:`dataset_path` downloads it with pooch into the data folder
(``$LAZYSIGNALS_DATA`` or ``data/``), checks its checksum (from the manifest,
or from Zenodo's records API when the manifest has none) and returns its
path. pooch writes to a temporary file and renames it only when the checksum
matches, so a download cut short never leaves a file that looks complete.

A finished download is stamped (:func:`lazysignals.storage.write_stamp`: a
small file beside it with the checksum, size and modification time), so that
later calls neither hash tens of gigabytes again nor need the network.

:func:`dataset_path` with ``convert=True`` returns the course version of a
dataset that has a ``convert:`` entry, made by :mod:`lazysignals.convert`.

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
import os
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
        storage.forget(path)
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
    storage.remove(storage.stamp_path(path))
    with _download_errors(dataset, url, path):
        fetcher.fetch(dataset.file, downloader=_downloader(progress))
    storage.write_stamp(path, {"checksum": expected["checksum"]})
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
        (see :mod:`lazysignals.convert`), making it if needed.
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
        from .convert import converted_path

        return converted_path(dataset, folder, progress)
    path = folder / dataset.file
    if path.is_file() and storage.is_finished(path, {"checksum": dataset.known_hash} if dataset.known_hash else {}):
        return path
    return download(dataset, folder, progress=progress)
