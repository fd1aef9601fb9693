"""The course says who made it, under which licences, and how to cite it:
the README credits, LICENSE / LICENSE-content, and a valid CITATION.cff."""

import json
import tomllib
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
# The Citation File Format 1.2.0 schema (https://citation-file-format.github.io/1.2.0/schema.json,
# CC-BY-4.0, by the Citation File Format authors), kept here so the test runs offline.
CFF_SCHEMA = Path(__file__).parent / "cff-1.2.0.schema.json"
ORIGINAL_AUTHORS = ["Francisco de la Peña", "Eric Prestat", "Magnus Nord"]


def manifest_datasets():
    return yaml.safe_load((ROOT / "data_manifest.yml").read_text())["datasets"]


def citation():
    return yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))


def test_citation_cff_is_valid_citation_file_format_1_2():
    schema = json.loads(CFF_SCHEMA.read_text())
    assert schema["$id"].endswith("/1.2.0/schema.json")
    cff = citation()
    # YAML reads a bare DOI or date as another type; the schema wants the text.
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(json.loads(json.dumps(cff, default=str))),
                    key=lambda e: list(e.path))
    assert not errors, "CITATION.cff does not follow CFF 1.2.0:\n" + "\n".join(
        f"  {'/'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in errors)


def test_a_broken_citation_is_caught_by_the_schema():
    schema = json.loads(CFF_SCHEMA.read_text())
    cff = citation()
    del cff["authors"]
    cff["license"] = "not-a-licence"
    assert len(list(jsonschema.Draft7Validator(schema).iter_errors(cff))) >= 2


def test_citation_names_the_original_authors_and_every_real_dataset():
    cff = citation()
    names = [f"{a['given-names']} {a['family-names']}" for a in cff["authors"] if "family-names" in a]
    for author in ORIGINAL_AUTHORS:
        assert author in names, f"CITATION.cff lacks {author}"
    dois = {str(ref.get("doi")) for ref in cff["references"]}
    for name, ds in manifest_datasets().items():
        assert ds["doi"] in dois, f"CITATION.cff does not cite dataset {name} ({ds['doi']})"


def test_licences_agree_between_pyproject_citation_and_licence_files():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"]["text"] == "BSD-3-Clause"
    assert citation()["license"] == ["BSD-3-Clause", "CC-BY-4.0"]
    assert (ROOT / "LICENSE").read_text().startswith("BSD 3-Clause License")
    content = (ROOT / "LICENSE-content").read_text()
    assert "Creative Commons Attribution 4.0 International" in content
    assert "https://creativecommons.org/licenses/by/4.0/legalcode" in content


def test_readme_credits_the_tutorial_authors_and_links_every_zenodo_record():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    credits = readme.split("## Credits and licences", 1)[1].split("\n## ", 1)[0]
    for author in ORIGINAL_AUTHORS:
        assert author in credits, f"README's credits do not name {author}"
    for name, ds in manifest_datasets().items():
        record = ds["record"]
        assert f"(https://zenodo.org/records/{record})" in credits, f"no link to Zenodo record {record}"
        row = next(line for line in credits.splitlines() if f"records/{record})" in line)
        licence = ds["license"].replace("-", " ").replace("CC BY", "CC BY")
        assert licence in row, f"README gives no licence {ds['license']} for {name}"
    assert "LICENSE-content" in credits and "CITATION.cff" in credits


def test_binder_badge_and_citation_name_the_same_repository():
    from lazysignals.site import binder_url

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    slug = citation()["repository-code"].removeprefix("https://github.com/")
    assert f"mybinder.org/v2/gh/{slug}/HEAD" in readme, "README's Binder badge and CITATION.cff disagree on the repository"
    assert binder_url("00_setup").startswith(f"https://mybinder.org/v2/gh/{slug}/HEAD")
