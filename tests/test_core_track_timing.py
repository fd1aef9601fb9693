"""What the core-track timing (benchmarks/lab.py, ``python -m benchmarks --only lab``)
counts as core and as reading, without starting a lab."""

import json

from benchmarks.lab import cell_sections, is_exercise_cell, prose_words, stated_core_minutes
from lazysignals.manifest import REPO_ROOT

MARK = "> **Extension** - not in the 90-minute core track."


def md(text):
    return {"cell_type": "markdown", "source": text, "metadata": {}}


def code(text, **nbgrader):
    return {"cell_type": "code", "source": text, "metadata": {"nbgrader": nbgrader} if nbgrader else {}}


def test_a_marked_section_is_extension_until_the_next_heading():
    cells = [md("# Lesson\n\n**Core track:** 7 minutes."), code("a = 1"),
             md(MARK), md("## 2. Moving around\ntext"), code("b = 2"),
             md("```python\n# not a heading\n```"), code("c = 3"),
             md("### Exercise 1\nunmarked, so core"), code("d = 4", solution=True),
             md(f"{MARK}\n\n### Exercise 2"), code("e = 5", solution=True), code("check()", grade=True),
             md("## Key points")]
    assert cell_sections(cells) == [False, False, True, True, True, True, True,
                                    False, False, True, True, True, False]
    assert stated_core_minutes(cells) == 7
    assert [is_exercise_cell(c) for c in cells[9:12]] == [False, True, True]


def test_reading_counts_the_words_a_reader_meets_not_link_targets():
    assert prose_words("See the [glossary](../GLOSSARY.md) and <https://docs.dask.org/en/stable/>.") == 4
    assert prose_words("It's `s.sum()` over 7.38 GB, **not** the whole-scan mask.") == 9


def test_lesson_03_core_track_keeps_the_adf_navigator_and_skips_moving_around():
    nb = json.loads((REPO_ROOT / "solutions" / "03_plotting" / "03_plotting.ipynb").read_text(encoding="utf-8"))
    extension = dict(zip((c.get("id") for c in nb["cells"]), cell_sections(nb["cells"])))
    heading = {c.get("id"): "".join(c["source"]).splitlines()[0] for c in nb["cells"] if c["cell_type"] == "markdown"}
    section = {heading[i].split(".")[0]: extension[i] for i in heading if heading[i].startswith("## ")}
    assert section["## 2"] and section["## 4"] and section["## 5"], "marked sections are extension"
    assert not section["## 1"] and not section["## 3"] and not section["## 6"] and not section["## 7"]
    assert extension["e763f051"] is False  # s.plot(navigator=adf): core
