"""The data manifest: its schema, and what the package reads from it."""

import pytest
import yaml

from lazysignals import manifest
from lazysignals.manifest import CourseDataError, UnknownNameError


def test_every_preset_has_four_chunks_along_each_signal_axis():
    for p in manifest.presets().values():
        assert all(s == 4 * p.chunk for s in p.signal_shape), p.name


def test_workshop_preset_is_the_course_geometry_of_7_38_gb():
    p = manifest.get_preset("workshop")
    assert p.navigation_shape == (440, 128)
    assert p.signal_shape == (256, 256)
    assert p.chunks == (64, 64, 64, 64)
    assert p.dtype == "uint16"
    assert round(p.nbytes / 1e9, 2) == 7.38


def test_presets_span_tiny_to_larger_than_memory():
    sizes = {n: p.nbytes for n, p in manifest.presets().items()}
    assert sizes["ci"] < 10e6
    assert 100e6 < sizes["binder"] < 1e9
    assert sizes["large"] > 32e9


def test_real_datasets_name_their_zenodo_record_and_a_way_to_verify():
    ds = manifest.datasets()
    assert {"feal-stripes", "big-film", "fe60al40-stripes"} <= set(ds)
    for d in ds.values():
        assert d.url == f"https://zenodo.org/records/{d.record}/files/{d.file}"
        assert d.doi.endswith(str(d.record))
    assert ds["feal-stripes"].known_hash, "the feal-stripes file must be checked on download"


def test_known_hashes_are_md5_digests_and_a_download_must_match_them(tmp_path, monkeypatch):
    import functools
    import re
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from lazysignals import fetch

    for d in manifest.datasets().values():
        assert d.known_hash is None or re.fullmatch(r"md5:[0-9a-f]{32}", d.known_hash), d.name
    # The manifest's own hash, against a file served from here whose md5 differs.
    feal = manifest.get_dataset("feal-stripes")
    served = tmp_path / "served" / "records" / str(feal.record) / "files" / feal.file
    served.parent.mkdir(parents=True)
    served.write_bytes(b"not the published file")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "served"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        monkeypatch.setenv(fetch.ZENODO_ENV, f"http://127.0.0.1:{httpd.server_address[1]}")
        monkeypatch.setenv(fetch.RETRIES_ENV, "0")
        with pytest.raises(CourseDataError, match="did not match its checksum"):
            fetch.dataset_path("feal-stripes", dest=tmp_path / "data", progress=False)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert not (tmp_path / "data" / feal.file).exists()


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(UnknownNameError) as e:
        manifest.get_preset("worskhop")
    for name in manifest.presets():
        assert name in str(e.value)


def test_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(UnknownNameError) as e:
        manifest.get_dataset("feal")
    assert "feal-stripes" in str(e.value)


def _raw():
    with open(manifest.manifest_path()) as f:
        return yaml.safe_load(f)


def test_preset_breaking_the_four_chunk_rule_is_refused():
    raw = _raw()
    raw["presets"]["ci"]["chunk"] = 7
    with pytest.raises(CourseDataError, match="4 chunks"):
        manifest.validate(raw)


def test_preset_missing_a_field_is_refused_with_its_name():
    raw = _raw()
    del raw["presets"]["binder"]["seed"]
    with pytest.raises(CourseDataError, match="binder.*seed"):
        manifest.validate(raw)


def test_every_role_names_a_listed_preset():
    roles = manifest.manifest()["roles"]
    assert set(roles) == set(manifest.ROLES)
    assert all(name in manifest.presets() for name in roles.values())
    assert manifest.default_preset() == manifest.preset_for("default")


def test_role_naming_an_unknown_preset_is_refused():
    raw = _raw()
    raw["roles"]["grading"] = "nope"
    with pytest.raises(CourseDataError, match="grading.*nope"):
        manifest.validate(raw)


def test_manifest_missing_a_role_is_refused_with_the_roles_it_needs():
    raw = _raw()
    del raw["roles"]["out_of_core"]
    with pytest.raises(CourseDataError, match="out_of_core"):
        manifest.validate(raw)


def test_unknown_role_lists_the_valid_ones():
    with pytest.raises(UnknownNameError, match="grading"):
        manifest.preset_for("teaching")


def test_data_folder_follows_the_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(manifest.DATA_ENV, str(tmp_path))
    assert manifest.data_dir() == tmp_path
