"""The manifest's typed entries and every refusal of a malformed one.

A mistake in data_manifest.yml must stop the course with a message naming
the entry and the field, never reach a lesson as a wrong shape or file name.
"""

import copy

import pytest
import yaml

from lazysignals import manifest
from lazysignals.manifest import CourseDataError, Preset, UnknownNameError


def raw():
    with open(manifest.manifest_path()) as f:
        return yaml.safe_load(f)


def preset(**changes):
    fields = dict(name="p", description="d", navigation_shape=(5, 3), signal_shape=(8, 8), chunk=2,
                  dtype="uint16", seed=4, scan_scale_nm=1.0, detector_scale_mrad=0.5, dose=60.0,
                  defects=False)
    return Preset(**{**fields, **changes})


def test_preset_shapes_in_numpy_order_and_its_size_in_bytes():
    p = preset(navigation_shape=(5, 3), signal_shape=(8, 12), dtype="float32")
    assert p.data_shape == (3, 5, 12, 8)
    assert p.chunks == (2, 2, 2, 2)
    assert p.nbytes == 3 * 5 * 12 * 8 * 4


def test_preset_file_names_carry_the_seed():
    p = preset(name="ci", seed=2019)
    assert p.filename() == "synthetic_ci_seed2019.zspy"
    assert p.filename("hspy") == "synthetic_ci_seed2019.hspy"
    assert p.filename("zspy", 7) == "synthetic_ci_seed7.zspy"
    assert p.filename(seed=0) == "synthetic_ci_seed0.zspy"


def test_validated_entries_have_the_types_the_package_uses():
    m = manifest.validate(raw())
    ci = m["presets"]["ci"]
    assert ci.navigation_shape == (55, 16) and ci.signal_shape == (32, 32)
    assert isinstance(ci.navigation_shape, tuple) and isinstance(ci.chunk, int)
    assert isinstance(ci.scan_scale_nm, float) and isinstance(ci.defects, bool)
    assert ci.name == "ci" and ci.dtype == "uint16"
    entry = raw()["presets"]["ci"]
    assert ci.description == entry["description"] and ci.seed == entry["seed"] == 2019
    assert (ci.detector_scale_mrad, ci.dose, ci.defects) == (0.32, 60.0, True)
    assert m["roles"] == {"default": "binder", "grading": "ci", "workshop": "workshop", "out_of_core": "large"}
    feal = m["datasets"]["feal-stripes"]
    assert feal.name == "feal-stripes" and feal.record == 14113591 and feal.convert is None


def test_a_manifest_without_its_three_sections_is_refused():
    for missing in ("presets", "datasets", "roles"):
        r = raw()
        del r[missing]
        with pytest.raises(CourseDataError, match="^here: needs the keys roles, presets and datasets"):
            manifest.validate(r, source="here")
    with pytest.raises(CourseDataError, match="needs the keys"):
        manifest.validate(["not", "a", "mapping"])


def test_empty_sections_are_allowed_but_every_role_must_still_name_a_preset():
    r = {"roles": {role: "ci" for role in manifest.ROLES}, "presets": None, "datasets": None}
    with pytest.raises(CourseDataError, match="^manifest: role default names 'ci', which is not a preset"):
        manifest.validate(r)
    r = raw()
    r["datasets"] = None
    assert manifest.validate(r)["datasets"] == {}


def test_a_preset_with_an_unknown_or_a_missing_field_is_named():
    r = raw()
    r["presets"]["ci"]["colour"] = "blue"
    with pytest.raises(CourseDataError) as e:
        manifest.validate(r, source="m.yml")
    assert str(e.value) == "m.yml: preset 'ci' is missing [] or has unknown ['colour']."
    r = raw()
    r["presets"]["ci"] = None
    with pytest.raises(CourseDataError, match=r"preset 'ci' is missing \['chunk', 'defects'"):
        manifest.validate(r)


def test_a_preset_needs_two_navigation_and_two_signal_lengths():
    for field, value in (("navigation_shape", [55, 16, 2]), ("signal_shape", [32])):
        r = raw()
        r["presets"]["ci"][field] = value
        with pytest.raises(CourseDataError, match="preset 'ci' needs 2 navigation and 2 signal lengths"):
            manifest.validate(r)


def test_the_four_chunk_rule_holds_on_both_signal_axes():
    r = raw()
    r["presets"]["ci"]["signal_shape"] = [32, 40]
    with pytest.raises(CourseDataError) as e:
        manifest.validate(r)
    assert "preset 'ci' must have 4 chunks along each signal axis (signal (32, 40), chunk 8)" in str(e.value)


def test_a_dataset_with_an_unknown_or_a_missing_field_is_named():
    r = raw()
    del r["datasets"]["feal-stripes"]["doi"]
    with pytest.raises(CourseDataError) as e:
        manifest.validate(r, source="m.yml")
    assert str(e.value) == "m.yml: dataset 'feal-stripes' is missing ['doi'] or has unknown []."
    r = raw()
    r["datasets"]["feal-stripes"]["mirror"] = "elsewhere"
    with pytest.raises(CourseDataError, match=r"has unknown \['mirror'\]"):
        manifest.validate(r)
    r = raw()
    r["datasets"]["feal-stripes"] = None
    with pytest.raises(CourseDataError, match="dataset 'feal-stripes' is missing"):
        manifest.validate(r)


def test_optional_dataset_fields_may_be_left_out():
    r = raw()
    r["datasets"]["feal-stripes"].pop("size_mb", None)
    assert manifest.validate(r)["datasets"]["feal-stripes"].size_mb is None


GOOD_CONVERT = {"output": "x.zspy", "navigation_shape": [4, 2], "chunk": 2}


@pytest.mark.parametrize("spec", [
    GOOD_CONVERT,
    dict(GOOD_CONVERT, navigation_start=[1, 3]),
    dict(GOOD_CONVERT, navigation_start=None),
    dict(GOOD_CONVERT, chunk=1),
])
def test_a_complete_convert_entry_is_accepted(spec):
    r = raw()
    r["datasets"]["feal-stripes"]["convert"] = copy.deepcopy(spec)
    assert manifest.validate(r)["datasets"]["feal-stripes"].convert == spec


@pytest.mark.parametrize("spec, message", [
    ({"output": "x.zspy", "chunk": 2}, "needs ['chunk', 'navigation_shape', 'output'], optionally navigation_start"),
    (dict(GOOD_CONVERT, crop=True), "needs ['chunk', 'navigation_shape', 'output']"),
    ("x.zspy", "needs ['chunk', 'navigation_shape', 'output']"),
    (dict(GOOD_CONVERT, navigation_shape=[4, 2, 1]), "navigation_shape and navigation_start are two integers"),
    (dict(GOOD_CONVERT, navigation_shape=(4, 2)), "navigation_shape and navigation_start are two integers"),
    (dict(GOOD_CONVERT, navigation_shape=[4, 2.5]), "navigation_shape and navigation_start are two integers"),
    (dict(GOOD_CONVERT, navigation_start=[1]), "navigation_shape and navigation_start are two integers"),
    (dict(GOOD_CONVERT, chunk=0), "chunk is a positive integer and output a .zspy file name"),
    (dict(GOOD_CONVERT, chunk="2"), "chunk is a positive integer"),
    (dict(GOOD_CONVERT, output="x.hspy"), "output a .zspy file name"),
])
def test_a_malformed_convert_entry_is_refused_with_what_it_needs(spec, message):
    r = raw()
    r["datasets"]["big-film"]["convert"] = spec
    with pytest.raises(CourseDataError) as e:
        manifest.validate(r, source="m.yml")
    assert str(e.value).startswith("m.yml: dataset 'big-film': convert")
    assert message in str(e.value)


def test_the_manifest_in_use_follows_the_environment_variable(tmp_path, monkeypatch):
    r = raw()
    r["roles"]["default"] = "ci"
    path = tmp_path / "other.yml"
    path.write_text(yaml.safe_dump(r))
    monkeypatch.setenv(manifest.MANIFEST_ENV, str(path))
    assert manifest.manifest_path() == path
    assert manifest.default_preset() == "ci"
    assert manifest.presets()["ci"].navigation_shape == (55, 16)
    assert set(manifest.datasets()) == set(r["datasets"])
    monkeypatch.delenv(manifest.MANIFEST_ENV)
    assert manifest.manifest_path() == manifest.REPO_ROOT / "data_manifest.yml"
    assert manifest.default_preset() == "binder"


def test_a_missing_manifest_says_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv(manifest.MANIFEST_ENV, str(tmp_path / "gone.yml"))
    with pytest.raises(CourseDataError) as e:
        manifest.manifest()
    assert str(e.value).startswith(f"The data manifest {tmp_path / 'gone.yml'} is missing.")
    assert manifest.MANIFEST_ENV in str(e.value)


def test_unknown_names_list_the_valid_ones_and_how_to_list_them():
    with pytest.raises(UnknownNameError) as e:
        manifest.get_preset("huge")
    assert str(e.value) == ("There is no preset called 'huge'. Valid presets: binder, ci, large, workshop. "
                            "List them with: python -m lazysignals data --list")
    with pytest.raises(KeyError) as e:  # still a KeyError for code that expects one
        manifest.get_dataset("feal")
    assert str(e.value) == ("There is no dataset called 'feal'. Valid datasets: "
                            f"{', '.join(sorted(manifest.datasets()))}. "
                            "List them with: python -m lazysignals data --list")
    assert manifest.get_dataset("big-film").record == 4727847


def test_data_folder_defaults_to_data_in_the_repository(monkeypatch, tmp_path):
    monkeypatch.delenv(manifest.DATA_ENV, raising=False)
    assert manifest.data_dir() == manifest.REPO_ROOT / "data"
    monkeypatch.setenv(manifest.DATA_ENV, "")
    assert manifest.data_dir() == manifest.REPO_ROOT / "data"
    monkeypatch.setenv(manifest.DATA_ENV, "~/course-data")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert manifest.data_dir() == tmp_path / "course-data"
