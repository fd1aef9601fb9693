"""The benchmark harness, without running a benchmark: components found, README tables written."""

from pathlib import Path

from benchmarks import report
from benchmarks.harness import Component
from benchmarks.run import components

RESULT = {"ok": True, "preset": "binder", "load_before": [1.0, 1.0, 1.0], "machine": {"time": "now", "cores_usable": 2},
          "rows": [{"name": "plain", "seconds": 2.0}, {"name": "fast", "seconds": 1.0}]}


def table(res):
    return ["| name | seconds |", "|---|---|"] + [f"| {r['name']} | {r['seconds']:.1f} |" for r in res["rows"]]


def test_every_benchmark_module_with_a_component_is_found_under_its_name():
    comps = components()
    assert {"generate", "compress", "sum", "crop", "course", "lessons", "workshop", "large"} <= set(comps)
    assert all(isinstance(c, Component) and c.title for c in comps.values())
    assert not comps["large"].default and comps["crop"].default  # 34 GB only when asked by name


def test_readme_tables_are_rewritten_from_results_between_their_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- benchmark:fake -->\n| typed | by hand |\n<!-- /benchmark:fake -->\noutro\n"
                      "<!-- benchmark:other -->\nkept\n<!-- /benchmark:other -->\n")
    comps = {"fake": Component("fake", "Fake", True, run=None, readme=table),
             "other": Component("other", "Other", True, run=None, readme=table)}
    results = {"components": {"fake": RESULT}}

    assert report.update_readme(results, comps, readme) == ["fake"]
    text = readme.read_text()
    assert "| plain | 2.0 |\n| fast | 1.0 |" in text and "typed by hand" not in text.replace("|", "")
    assert text.startswith("intro\n") and "outro\n" in text and "\nkept\n" in text  # the rest untouched
    assert "--only fake" in text and "preset `binder`" in text  # says how it was measured
    report.update_readme(results, comps, readme)
    assert readme.read_text() == text  # a second run changes nothing


def test_the_readme_marks_the_tables_that_components_write():
    from benchmarks.run import DOCUMENTS

    root = Path(__file__).resolve().parent.parent
    text = "".join((root / doc).read_text() for doc in DOCUMENTS)
    for name, comp in components().items():
        if comp.readme:
            assert f"<!-- benchmark:{name} -->" in text and f"<!-- /benchmark:{name} -->" in text, name
