"""What a lesson's prose may state: facts of the data, not measurements.

A speed, a duration, a speed-up or a memory peak differs from machine to
machine; a lesson prints what it measures, and its prose refers to the
printed result. Exact facts of the data (7.38 GB, 1.85 GB, 25 % of the
chunks, a 32 MiB chunk) may be written.
"""

import json
import re

import pytest

from lazysignals.lessons import lesson_names
from lazysignals.manifest import REPO_ROOT

NUMBER = r"\d[\d,]*(?:\.\d+)?"
MEASUREMENTS = {
    "a speed": re.compile(rf"{NUMBER}\s*(?:[kMG]i?B/s|fits/s|fits (?:per|a) second)", re.I),
    "a duration": re.compile(rf"{NUMBER}(?:\s*(?:to|-|–)\s*{NUMBER})?(?:\s*(?:ms|sec|seconds?|minutes?|min|hours?)|\s+s)\b"
                             r"|quarter of an hour", re.I),
    "a speed-up": re.compile(rf"{NUMBER}\s*(?:x|times)\s+(?:faster|slower|as fast|quicker|as long)"
                             rf"|ratio (?:of )?(?:about |around |roughly )?{NUMBER}", re.I),
}
SIZE = re.compile(rf"{NUMBER}\s*(?:[kMGT]i?B)\b")
PEAK = re.compile(r"\bpeak(?:s|ed)?\b", re.I)
# How long a lesson takes to teach is the author's statement, not a measurement.
TEACHING_TIME = re.compile(r"\*\*Time|Time to teach|Time for exercises|minutes (?:teaching|introduction)"
                           r"|\*\*Core track|core track|AGENDAS\.md", re.I)


def sentences(text):
    return re.split(r"(?<=[.!?:;])\s+|\n\s*[-*|]", text)


def typed_measurements(markdown: str) -> list[str]:
    """The measurements stated in a markdown cell, each with its sentence."""
    found = []
    for line in markdown.splitlines():
        if TEACHING_TIME.search(line):
            continue
        for sentence in sentences(line):
            for what, pattern in MEASUREMENTS.items():
                for m in pattern.finditer(sentence):
                    found.append(f"{what} ({m.group(0)!r}) in: {sentence.strip()[:160]}")
            if PEAK.search(sentence):
                for m in SIZE.finditer(sentence):
                    found.append(f"a memory peak ({m.group(0)!r}) in: {sentence.strip()[:160]}")
    return found


def _markdown_cells(lesson):
    nb = json.loads((REPO_ROOT / "solutions" / lesson / f"{lesson}.ipynb").read_text())
    return [(i, "".join(c["source"])) for i, c in enumerate(nb["cells"])
            if c["cell_type"] == "markdown" and "BEGIN MARK SCHEME" not in "".join(c["source"])]


def test_the_prose_check_finds_typed_measurements_and_spares_facts():
    assert typed_measurements("multifit runs about 60 fits per second, a quarter of an hour")
    assert typed_measurements("zspy reads at 1.2 GB/s, about 5 times faster than hspy")
    assert typed_measurements("the whole-scan image peaked at 4.0 GiB on two cores")
    assert typed_measurements("summing it took 25 s")
    assert not typed_measurements("The workshop dataset is 7.38 GB; rebinned it is 1.85 GB.")
    assert not typed_measurements("The aligned crop reads 25 % of the chunks, each of 32 MiB.")
    assert not typed_measurements("**Time:** 20 minutes teaching, 15 minutes exercises.")
    assert not typed_measurements("* **Time to teach:** 20 minutes")
    assert not typed_measurements("**Core track:** 10 minutes.")


@pytest.mark.parametrize("lesson", lesson_names())
def test_lesson_prose_types_no_measurement_that_a_cell_should_print(lesson):
    typed = [f"cell {i}: {m}" for i, text in _markdown_cells(lesson) for m in typed_measurements(text)]
    assert not typed, (
        f"{lesson} states measurements in its prose; print them from a code cell and refer to the "
        "printed result:\n" + "\n".join(typed))
