"""Tracks and agendas: the 90-minute core track, the extension marks that the
student notebooks keep, and agendas whose minutes are the lessons' own stated
times (docs/AGENDAS.md); glossary, cheat sheet and further reading in every lesson."""

import json
import re

import pytest

from lazysignals.lessons import lesson_names
from lazysignals.manifest import REPO_ROOT

LESSONS = lesson_names()
AGENDAS = REPO_ROOT / "docs" / "AGENDAS.md"
MARK = "> **Extension**"
CORE_SLOT, HALF_DAY_SLOT, DAY_SLOT = 90, 210, 7 * 60
# The seed tutorial's essentials, each taught by a lesson in the core track.
CORE_TOPICS = ["01_lazy_basics", "02_loading", "03_plotting", "04_chunking", "07_cropping",
               "05_rebinning", "06_map", "08_fitting"]


def markdown(lesson, folder="solutions"):
    nb = json.loads((REPO_ROOT / folder / lesson / f"{lesson}.ipynb").read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]


def stated_times(lesson):
    """(teaching, exercises, core) minutes, as the lesson states them near its top."""
    top = "\n".join(markdown(lesson)[:3])
    m = (re.search(r"Time to teach:\*\*\s*(\d+) minutes.*?Time for exercises:\*\*\s*(\d+) minutes", top, re.S)
         or re.search(r"\*\*Time:\*\*\s*(\d+) minutes \w+, (\d+) minutes exercises", top))
    assert m, f"{lesson} states no time to teach and for exercises near its top"
    core = re.findall(r"\*\*Core track:\*\*\s*(\d+) minutes", top)
    assert len(core) == 1, f"{lesson} needs one '**Core track:** N minutes' line near its top"
    return int(m.group(1)), int(m.group(2)), int(core[0])


def agendas():
    """{table title: [(start minutes, session, lesson or None, part, minutes)], ...} from AGENDAS.md."""
    tables, title = {}, None
    for line in AGENDAS.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("# ").strip()
        row = re.match(r"^\|\s*(\d+):(\d\d)\s*\|(.*)\|\s*([\w-]+)\s*\|\s*(\d+)\s*\|$", line)
        if row:
            link = re.search(r"\(\.\./notebooks/(\w+)/\1\.ipynb\)", row.group(3))
            tables.setdefault(title, []).append((int(row.group(1)) * 60 + int(row.group(2)), row.group(3).strip(),
                                                 link and link.group(1), row.group(4), int(row.group(5))))
    return tables


def test_core_track_is_90_minutes_and_covers_the_seed_tutorial():
    core = {lesson: stated_times(lesson)[2] for lesson in LESSONS}
    assert sum(core.values()) == CORE_SLOT, f"the lessons' core minutes add up to {sum(core.values())}: {core}"
    missing = [lesson for lesson in CORE_TOPICS if not core[lesson]]
    assert not missing, f"lessons of the core track with no core minutes: {missing}"


@pytest.mark.parametrize("lesson", LESSONS)
def test_core_minutes_fit_in_the_lesson_and_the_rest_is_marked_extension(lesson):
    teach, exercises, core = stated_times(lesson)
    assert core <= teach + exercises, f"{lesson}: {core} core minutes of {teach + exercises}"
    cells = markdown(lesson)
    marks = [c for c in cells if MARK in c]
    if 0 < core < teach + exercises:
        assert marks, f"{lesson} has extension minutes but no section marked '{MARK}'"
    for cell in marks:
        for block in cell.split(MARK)[1:]:
            text, _, after = block.partition("\n")
            # The same visible mark everywhere, right above a heading (here or in the next cell).
            assert text == marks[0].split(MARK)[1].partition("\n")[0], f"{lesson}: extension marks differ"
    student = markdown(lesson, "notebooks")
    assert sum(c.count(MARK) for c in student) == sum(c.count(MARK) for c in cells), (
        f"notebooks/{lesson} lost extension marks: run python -m lazysignals notebooks")


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_extension_mark_stands_right_above_a_heading(lesson):
    cells = markdown(lesson)
    for i, cell in enumerate(cells):
        lines = cell.splitlines()
        for j, line in enumerate(lines):
            if line.startswith(MARK):
                following = [l for l in lines[j + 1:] if l.strip()] or cells[i + 1].splitlines()
                assert following[0].startswith("#"), f"{lesson}: an extension mark is not above a heading"


def test_agendas_use_the_lessons_stated_minutes_and_add_up():
    times = {lesson: stated_times(lesson) for lesson in LESSONS}
    tables = agendas()
    assert len(tables) == 4, f"expected the 90-minute, half-day and two day-tables, found {list(tables)}"
    for title, rows in tables.items():
        for (start, session, lesson, part, minutes), nxt in zip(rows, rows[1:] + [None]):
            if lesson:
                teach, exercises, core = times[lesson]
                expected = {"core": core, "full": teach + exercises}[part]
                assert minutes == expected, (
                    f"{title}: {lesson} ({part}) is given {minutes} minutes, the lesson states {expected}")
            else:
                assert part == "-", f"{title}: '{session}' is not a lesson, so its part is '-'"
            if nxt:
                assert nxt[0] == start + minutes, f"{title}: '{nxt[1]}' should start {minutes} minutes after '{session}'"


def test_each_agenda_fits_its_slot_and_two_days_teach_every_lesson_in_full():
    tables = agendas()
    length = {t: rows[-1][0] + rows[-1][4] - rows[0][0] for t, rows in tables.items()}
    core_title = next(t for t in tables if t.startswith("90 minutes"))
    assert length[core_title] == CORE_SLOT
    assert all(part == "core" for *_, part, _m in tables[core_title])
    half = next(t for t in tables if t.startswith("Half day"))
    assert length[half] <= HALF_DAY_SLOT
    days = [t for t in tables if t.startswith("Day")]
    assert all(length[d] <= DAY_SLOT for d in days)
    full = [row[2] for d in days for row in tables[d] if row[3] == "full"]
    assert sorted(full) == LESSONS, f"the two days miss lessons: {sorted(set(LESSONS) - set(full))}"


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_links_glossary_and_cheat_sheet_and_ends_with_further_reading(lesson):
    cells = markdown(lesson)
    top = "\n".join(cells[:3])
    assert "(../GLOSSARY.md)" in top and "(../CHEATSHEET.md)" in top
    last = cells[-1]
    assert last.startswith("## Further reading"), f"{lesson} should end with '## Further reading'"
    for url in ["hyperspy.org/hyperspy-doc/current/user_guide/big_data.html", "docs.dask.org/en/stable/best-practices",
                "hyperspy.org/rosettasciio/supported_formats", "pyxem.readthedocs.io"]:
        assert url in last, f"{lesson}'s further reading lacks {url}"


def test_readme_states_the_course_length_the_lessons_add_up_to():
    total = sum(t + e for t, e, _ in map(stated_times, LESSONS))
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"whole course takes about ([\d.]+) hours", readme)
    assert m, "the README should say how long the whole course takes"
    assert float(m.group(1)) == round(total / 60, 1), f"the lessons add up to {total / 60:.1f} hours"
    assert f"takes {CORE_SLOT} minutes" in readme


@pytest.mark.parametrize("folder", ["notebooks", "solutions"])
def test_glossary_and_cheat_sheet_beside_the_lessons_are_copies_of_docs(folder):
    # The learners' JupyterLab shows only notebooks/, so the lessons' links point at these copies.
    for name in ("GLOSSARY.md", "CHEATSHEET.md"):
        copy = REPO_ROOT / folder / name
        assert copy.exists() and copy.read_text() == (REPO_ROOT / "docs" / name).read_text(), (
            f"{folder}/{name} differs from docs/{name}: run python -m lazysignals notebooks")
