"""Fetching real datasets: pooch against a local server, errors, conversion.

Every test serves files it made from an HTTP server on 127.0.0.1 (a port
chosen by the OS) that stands in for Zenodo, both for downloads and for the
records API, through LAZYSIGNALS_ZENODO_URL and a manifest of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml

from lazysignals import convert, fetch, manifest, storage
from lazysignals.manifest import CourseDataError

ZIP_NAME, HSPY_NAME, PLAIN_NAME = "stripes.zspy", "film.hspy", "pattern.bin"


# --------------------------------------------------------------------------
# A stand-in for Zenodo


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        path = self.path.split("?")[0]
        self.server.requests.append(path)
        answers = self.server.routes.get(path) or [(404, b"not found", None)]
        status, body, length = answers.pop(0) if len(answers) > 1 else answers[0]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class FakeZenodo:
    """HTTP server on 127.0.0.1 serving ``routes``: path -> list of answers."""

    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.routes, self.httpd.requests = {}, []
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def requests(self) -> list[str]:
        return self.httpd.requests

    def serve(self, path: str, *answers):
        """Answer ``path`` with (status, body[, content length]) in turn; the last repeats."""
        self.httpd.routes[path] = [(a[0], a[1], a[2] if len(a) > 2 else None) for a in answers]

    def serve_file(self, record: int, name: str, body: bytes):
        self.serve(f"/records/{record}/files/{name}", (200, body))

    def serve_record(self, record: int, files: list[dict]):
        self.serve(f"/api/records/{record}", (200, json.dumps({"id": record, "files": files}).encode()))

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def zenodo():
    server = FakeZenodo()
    yield server
    server.stop()


def md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


def dataset_entry(record, file, known_hash, **extra):
    return dict(
        description="test dataset", record=record, file=file,
        url=f"https://zenodo.org/records/{record}/files/{file}",
        doi=f"10.5281/zenodo.{record}", known_hash=known_hash, license="CC-BY-4.0", **extra,
    )


@pytest.fixture
def course(tmp_path, monkeypatch, zenodo):
    """Point the package at a test manifest, a scratch data folder and the fake Zenodo.

    Returns a function ``write(datasets)`` that writes the manifest's
    ``datasets:`` and returns the data folder.
    """
    data = tmp_path / "data"
    monkeypatch.setenv(manifest.DATA_ENV, str(data))
    monkeypatch.setenv(fetch.ZENODO_ENV, zenodo.url)
    monkeypatch.setenv(fetch.RETRIES_ENV, "0")
    ci = manifest.get_preset("ci")
    preset = {k: getattr(ci, k) for k in manifest.Preset.__dataclass_fields__ if k != "name"}
    preset.update(navigation_shape=list(ci.navigation_shape), signal_shape=list(ci.signal_shape))
    counter = iter(range(1000))

    def write(datasets: dict) -> Path:
        path = tmp_path / f"manifest{next(counter)}.yml"  # a new path: the manifest is cached by path
        path.write_text(yaml.safe_dump({"roles": dict.fromkeys(manifest.ROLES, "ci"), "presets": {"ci": preset},
                                        "datasets": datasets}))
        monkeypatch.setenv(manifest.MANIFEST_ENV, str(path))
        return data

    return write


def looks_finished(folder: Path, name: str) -> list[Path]:
    """Everything in ``folder`` that carries ``name`` or is a left-over temporary file."""
    if not folder.exists():
        return []
    return [p for p in folder.iterdir() if name in p.name or p.name.startswith("tmp")]


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lazysignals", *args], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ))


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --------------------------------------------------------------------------
# Downloading


def test_download_is_verified_and_a_second_call_does_not_download_again(course, zenodo):
    body = os.urandom(300_000)
    zenodo.serve_file(11, PLAIN_NAME, body)
    data = course({"plain": dataset_entry(11, PLAIN_NAME, md5(body))})

    path = fetch.dataset_path("plain", progress=False)
    again = fetch.dataset_path("plain", progress=False)

    assert path == again == data / PLAIN_NAME
    assert path.read_bytes() == body
    assert zenodo.requests == [f"/records/11/files/{PLAIN_NAME}"]


def test_dest_argument_chooses_the_folder(course, zenodo, tmp_path):
    body = b"x" * 5000
    zenodo.serve_file(11, PLAIN_NAME, body)
    course({"plain": dataset_entry(11, PLAIN_NAME, md5(body))})

    path = fetch.dataset_path("plain", dest=tmp_path / "elsewhere", progress=False)

    assert path == tmp_path / "elsewhere" / PLAIN_NAME and path.read_bytes() == body


def test_checksum_mismatch_removes_the_file_and_says_how_to_retry(course, zenodo):
    zenodo.serve_file(11, PLAIN_NAME, b"not the published file")
    data = course({"plain": dataset_entry(11, PLAIN_NAME, md5(b"the published file"))})

    with pytest.raises(CourseDataError) as err:
        fetch.dataset_path("plain", progress=False)

    assert "did not match its checksum" in str(err.value)
    assert "python -m lazysignals data --fetch plain" in str(err.value)
    assert looks_finished(data, PLAIN_NAME) == []


def test_changed_local_file_is_downloaded_again(course, zenodo):
    body = os.urandom(10_000)
    zenodo.serve_file(11, PLAIN_NAME, body)
    data = course({"plain": dataset_entry(11, PLAIN_NAME, md5(body))})
    fetch.dataset_path("plain", progress=False)
    (data / PLAIN_NAME).write_bytes(b"damaged")

    path = fetch.dataset_path("plain", progress=False)

    assert path.read_bytes() == body
    assert len(zenodo.requests) == 2


def test_download_cut_short_leaves_no_file(course, zenodo):
    body = os.urandom(50_000)
    zenodo.serve(f"/records/11/files/{PLAIN_NAME}", (200, body[:20_000], len(body)))
    data = course({"plain": dataset_entry(11, PLAIN_NAME, md5(body))})

    with pytest.raises(CourseDataError) as err:
        fetch.dataset_path("plain", progress=False)

    assert "connection broke off" in str(err.value)
    assert looks_finished(data, PLAIN_NAME) == []


def test_http_404_is_reported_and_not_retried(course, zenodo, monkeypatch):
    monkeypatch.setenv(fetch.RETRIES_ENV, "2")
    course({"plain": dataset_entry(11, PLAIN_NAME, md5(b"anything"))})

    with pytest.raises(CourseDataError) as err:
        fetch.dataset_path("plain", progress=False)

    assert "HTTP 404" in str(err.value) and "records/11" in str(err.value)
    assert len(zenodo.requests) == 1


def test_server_error_is_retried_then_succeeds(course, zenodo, monkeypatch):
    monkeypatch.setenv(fetch.RETRIES_ENV, "1")
    body = os.urandom(10_000)
    zenodo.serve(f"/records/11/files/{PLAIN_NAME}", (503, b"busy"), (200, body))
    course({"plain": dataset_entry(11, PLAIN_NAME, md5(body))})

    path = fetch.dataset_path("plain", progress=False)

    assert path.read_bytes() == body
    assert len(zenodo.requests) == 2


def test_cli_prints_the_path_and_shows_progress(course, zenodo):
    body = os.urandom(200_000)
    zenodo.serve_file(11, PLAIN_NAME, body)
    data = course({"plain": dataset_entry(11, PLAIN_NAME, md5(body))})

    done = run_cli("data", "--fetch", "plain")

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(data / PLAIN_NAME)
    assert "100%" in done.stderr  # the tqdm bar


def test_cli_server_down_offers_the_synthetic_preset_without_traceback(course, monkeypatch):
    monkeypatch.setenv(fetch.ZENODO_ENV, closed_port_url())
    data = course({"plain": dataset_entry(11, PLAIN_NAME, md5(b"anything"))})

    done = run_cli("data", "--fetch", "plain")

    assert done.returncode == 2
    assert "no network" in done.stderr
    assert "python -m lazysignals data --preset binder" in done.stderr
    assert "lazysignals.load()" in done.stderr
    assert "Traceback" not in done.stderr
    assert looks_finished(data, PLAIN_NAME) == []


# --------------------------------------------------------------------------
# Checksum from Zenodo's records API


@pytest.mark.parametrize("layout", ["key with md5: prefix", "filename with bare md5"])
def test_null_known_hash_takes_the_checksum_from_the_records_api(course, zenodo, layout):
    body = os.urandom(20_000)
    checksum = md5(body)
    if layout.startswith("key"):
        entry = {"key": PLAIN_NAME, "checksum": checksum, "size": len(body)}
    else:
        entry = {"filename": PLAIN_NAME, "checksum": checksum.split(":")[1], "filesize": len(body)}
    zenodo.serve_record(12, [{"key": "other.txt", "checksum": md5(b"")}, entry])
    zenodo.serve_file(12, PLAIN_NAME, body)
    course({"plain": dataset_entry(12, PLAIN_NAME, None)})

    path = fetch.dataset_path("plain", progress=False)

    assert path.read_bytes() == body
    assert zenodo.requests == ["/api/records/12", f"/records/12/files/{PLAIN_NAME}"]


def test_records_api_checksum_is_enforced(course, zenodo):
    zenodo.serve_record(12, [{"key": PLAIN_NAME, "checksum": md5(b"published")}])
    zenodo.serve_file(12, PLAIN_NAME, b"tampered")
    data = course({"plain": dataset_entry(12, PLAIN_NAME, None)})

    with pytest.raises(CourseDataError, match="did not match its checksum"):
        fetch.dataset_path("plain", progress=False)
    assert looks_finished(data, PLAIN_NAME) == []


def test_verified_download_is_found_again_offline(course, zenodo, monkeypatch):
    body = os.urandom(20_000)
    zenodo.serve_record(12, [{"key": PLAIN_NAME, "checksum": md5(body)}])
    zenodo.serve_file(12, PLAIN_NAME, body)
    course({"plain": dataset_entry(12, PLAIN_NAME, None)})
    first = fetch.dataset_path("plain", progress=False)
    monkeypatch.setenv(fetch.ZENODO_ENV, closed_port_url())

    assert fetch.dataset_path("plain", progress=False) == first
    assert len(zenodo.requests) == 2


def test_record_without_the_file_names_what_it_has(course, zenodo):
    zenodo.serve_record(12, [{"key": "readme.txt", "checksum": md5(b"")}])
    course({"plain": dataset_entry(12, PLAIN_NAME, None)})

    with pytest.raises(CourseDataError, match="does not list the file 'pattern.bin'.*readme.txt"):
        fetch.dataset_path("plain", progress=False)


def test_records_api_unreachable_says_so(course, monkeypatch):
    monkeypatch.setenv(fetch.ZENODO_ENV, closed_port_url())
    course({"plain": dataset_entry(12, PLAIN_NAME, None)})

    with pytest.raises(CourseDataError, match="no network.*--preset binder"):
        fetch.dataset_path("plain", progress=False)


# --------------------------------------------------------------------------
# Names


def test_unknown_dataset_name_lists_the_valid_ones(course):
    course({"plain": dataset_entry(11, PLAIN_NAME, None), "other": dataset_entry(13, "o.bin", None)})

    with pytest.raises(CourseDataError) as err:
        fetch.dataset_path("plian")

    assert "'plian'" in str(err.value) and "other, plain" in str(err.value)


def test_cli_unknown_dataset_exits_2_listing_the_valid_ones():
    done = run_cli("data", "--fetch", "no-such-data")

    assert done.returncode == 2
    assert "big-film, fe60al40-stripes, feal-stripes" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_course_manifest_declares_the_big_film_geometry():
    spec = manifest.get_dataset("big-film").convert
    assert spec["navigation_shape"] == [440, 128] and spec["chunk"] == 64


def test_manifest_rejects_an_incomplete_convert_entry(tmp_path):
    raw = yaml.safe_load((manifest.REPO_ROOT / "data_manifest.yml").read_text())
    del raw["datasets"]["big-film"]["convert"]["chunk"]

    with pytest.raises(CourseDataError, match="big-film.*convert needs"):
        manifest.validate(raw)


# --------------------------------------------------------------------------
# A zarr ZipStore .zspy (the form of FeAl_stripes.zspy)


def make_zip_zspy(path: Path) -> np.ndarray:
    import hyperspy.api as hs
    import zarr

    data = np.random.default_rng(1).integers(0, 1000, (5, 6, 8, 8), dtype="uint16")
    folder = path.with_name("folder.zspy")
    hs.signals.Signal2D(data).save(folder, chunks=(2, 3, 8, 8))
    store = zarr.ZipStore(str(path), mode="w")
    zarr.copy_store(zarr.NestedDirectoryStore(str(folder)), store)
    store.close()
    return data


def test_zipstore_zspy_download_opens_lazily_with_hyperspy(course, zenodo, tmp_path):
    import lazysignals

    data = make_zip_zspy(tmp_path / ZIP_NAME)
    body = (tmp_path / ZIP_NAME).read_bytes()
    zenodo.serve_file(14, ZIP_NAME, body)
    course({"stripes": dataset_entry(14, ZIP_NAME, md5(body))})

    s = lazysignals.load("stripes")

    assert s._lazy and s.axes_manager.signal_shape == (8, 8)
    assert s.data.chunks[0] == (2, 2, 1)
    s.compute()
    assert np.array_equal(s.data, data)


# --------------------------------------------------------------------------
# Converting big-film to the course geometry

# HyperSpy order: scan 16 x 20 (x, y), detector 32 x 32.
FAKE_NAV, FAKE_SIG = (16, 20), (32, 32)
SMALL_GEOMETRY = {"output": "film_course.zspy", "navigation_shape": [12, 8], "chunk": 8,
                  "navigation_start": [2, 4]}


def make_film(path: Path, sig=FAKE_SIG) -> np.ndarray:
    import hyperspy.api as hs

    rng = np.random.default_rng(7)
    data = rng.integers(0, 60000, (FAKE_NAV[1], FAKE_NAV[0], sig[1], sig[0]), dtype="uint16")
    hs.signals.Signal2D(data).save(path, overwrite=True)
    return data


@pytest.fixture
def film(course, tmp_path):
    """A fake big-film .hspy, the manifest's big-film entry with a small geometry."""
    src = tmp_path / HSPY_NAME
    data = make_film(src)
    body = src.read_bytes()
    folder = course({"big-film": dataset_entry(15, HSPY_NAME, md5(body), convert=SMALL_GEOMETRY)})
    return src, data, body, folder


def convert_film(src, dest):
    """Convert ``src`` by the manifest's big-film entry."""
    return convert.convert(src, dest, manifest.get_dataset("big-film"), progress=False)


def zspy_chunks(path: Path) -> tuple:
    meta = json.loads(next(Path(path).glob("Experiments/*/data/.zarray")).read_text())
    return tuple(meta["chunks"])


def test_conversion_crops_to_the_course_geometry_in_equal_chunks(film, tmp_path):
    import hyperspy.api as hs

    src, data, _body, _folder = film
    out = convert_film(src, tmp_path / "course.zspy")

    s = hs.load(out, lazy=True)
    assert s.axes_manager.navigation_shape == (12, 8)
    assert s.axes_manager.signal_shape == (32, 32)
    assert zspy_chunks(out) == (8, 8, 8, 8)
    assert storage.verify_zspy(out, deep=True)["nchunks"] == 1 * 2 * 4 * 4
    s.compute()
    assert np.array_equal(s.data, data[4:12, 2:14])


def test_larger_detector_keeps_its_central_four_chunks(film, tmp_path):
    import hyperspy.api as hs

    _src, _data, _body, _folder = film
    src = tmp_path / "wide.hspy"
    data = make_film(src, sig=(40, 36))

    with pytest.warns(UserWarning, match="central 32 x 32"):
        out = convert_film(src, tmp_path / "course.zspy")

    s = hs.load(out)
    assert s.axes_manager.signal_shape == (32, 32)
    assert np.array_equal(s.data, data[4:12, 2:14, 2:34, 4:36])


def test_smaller_detector_uses_a_smaller_chunk_on_every_axis(film, tmp_path):
    _src, _data, _body, _folder = film
    src = tmp_path / "narrow.hspy"
    make_film(src, sig=(16, 16))

    with pytest.warns(UserWarning, match="chunks of 4"):
        out = convert_film(src, tmp_path / "course.zspy")

    assert zspy_chunks(out) == (4, 4, 4, 4)


def test_scan_smaller_than_the_geometry_is_refused(course, tmp_path):
    src = tmp_path / HSPY_NAME
    make_film(src)
    too_big = dict(SMALL_GEOMETRY, navigation_shape=[16, 20])
    course({"big-film": dataset_entry(15, HSPY_NAME, None, convert=too_big)})

    with pytest.raises(CourseDataError, match="too small"):
        convert_film(src, tmp_path / "course.zspy")
    assert not (tmp_path / "course.zspy").exists()


def stop_after(n: int):
    """A dask callback that interrupts a computation (like Ctrl+C) after ``n`` tasks."""
    from dask.callbacks import Callback

    done = []

    def posttask(key, result, dsk, state, worker_id):
        done.append(key)
        if len(done) == n:
            raise KeyboardInterrupt

    return Callback(posttask=posttask)


def test_interrupted_conversion_leaves_no_finished_file(film, tmp_path):
    src, _data, _body, _folder = film
    dest = tmp_path / "out" / "course.zspy"

    with pytest.raises(KeyboardInterrupt), stop_after(5):
        convert_film(src, dest)

    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no partial folder either
    assert convert_film(src, dest) == dest  # and it can run again


def test_dataset_path_convert_downloads_converts_and_reuses(film, zenodo):
    import hyperspy.api as hs

    _src, data, body, folder = film
    zenodo.serve_file(15, HSPY_NAME, body)

    out = fetch.dataset_path("big-film", convert=True, progress=False)
    stamp_time = (out / storage.STAMP_NAME).stat().st_mtime_ns
    again = fetch.dataset_path("big-film", convert=True, progress=False)

    assert out == again == folder / "film_course.zspy"
    assert (out / storage.STAMP_NAME).stat().st_mtime_ns == stamp_time  # not written again
    assert zenodo.requests == [f"/records/15/files/{HSPY_NAME}"]
    assert np.array_equal(hs.load(out).data, data[4:12, 2:14])


def test_each_dataset_is_converted_by_its_own_convert_entry(course, zenodo, tmp_path):
    import hyperspy.api as hs

    src = tmp_path / HSPY_NAME
    data = make_film(src)
    body = src.read_bytes()
    other_name = "other_film.hspy"
    other = {"output": "other_course.zspy", "navigation_shape": [8, 4], "chunk": 4, "navigation_start": [0, 8]}
    zenodo.serve_file(15, HSPY_NAME, body)
    zenodo.serve_file(16, other_name, body)
    course({"big-film": dataset_entry(15, HSPY_NAME, md5(body), convert=SMALL_GEOMETRY),
            "other-film": dataset_entry(16, other_name, md5(body), convert=other)})

    film = fetch.dataset_path("big-film", convert=True, progress=False)
    with pytest.warns(UserWarning, match="chunks of 4"):
        second = fetch.dataset_path("other-film", convert=True, progress=False)

    assert (film.name, second.name) == ("film_course.zspy", "other_course.zspy")
    assert zspy_chunks(film) == (8, 8, 8, 8) and zspy_chunks(second) == (4, 4, 4, 4)
    assert np.array_equal(hs.load(film).data, data[4:12, 2:14])
    assert np.array_equal(hs.load(second).data, data[8:12, 0:8, 8:24, 8:24])


def test_convert_of_a_dataset_without_geometry_names_those_with_one(course):
    course({"big-film": dataset_entry(15, HSPY_NAME, None, convert=SMALL_GEOMETRY),
            "plain": dataset_entry(11, PLAIN_NAME, None)})

    with pytest.raises(CourseDataError, match="'plain' has no conversion.*one: big-film"):
        fetch.dataset_path("plain", convert=True)
