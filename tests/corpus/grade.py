"""Grade the corpus (tests/corpus/cases.yml) with the course's real grading command.

    python -m tests.corpus.grade            # every case of every lesson
    python -m tests.corpus.grade --suite    # the representative part the test suite grades
    python -m tests.corpus.grade 07_cropping

Prints each submission's score against the one it must get, what the
harmful ones may have changed (master data checksum, course files, the
package, processes left), any line of a hidden test that the feedback
shows, and the time taken; exits 1 on any difference.
tests/test_grading.py uses the same functions on the `suite: true` cases.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from corpus.build import load_cases, write_submissions  # noqa: E402
from lazysignals.grading import (_tree_digest, autograde, generate_feedback, master_paths,  # noqa: E402
                                 read_results)

# Short limits so that the corpus grades in minutes; lesson cells take
# seconds on the ci preset.
LIMITS = dict(cell_timeout=30, notebook_timeout=240)
#: Marks processes and files that a harmful submission leaves if it escapes.
MARKERS = ("lsattack", "lsgrade-")


def _files_digest(paths) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(str(p).encode() + Path(p).read_bytes())
    return h.hexdigest()


def package_digest() -> str:
    return _files_digest((ROOT / "lazysignals").glob("*.py"))


def leftovers() -> list[str]:
    """Processes and files a submission left behind (there must be none)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if any(m in cmd for m in MARKERS):
            found.append(f"process {proc.info['pid']}: {cmd[:120]}")
    found += [f"file {p}" for p in Path(tempfile.gettempdir()).glob("lsattack*")]
    return found


def course_problems(work: Path, lesson: str, subs: dict) -> list[str]:
    """What the grading changed in the course folder that it must not have."""
    problems = []
    folder, record = master_paths(work)
    want = json.loads(record.read_text())
    if _tree_digest(folder) != want["sha256"]:
        problems.append(f"the master data in {folder} no longer matches its checksum")
    config = (work / "nbgrader_config.py").read_text()
    if "lsattack" in config or "configure(get_config())" not in config:
        problems.append("nbgrader_config.py was changed")
    source = work / "source" / lesson
    if sorted(p.name for p in source.iterdir()) != sorted(p.name for p in (ROOT / "solutions" / lesson).iterdir()):
        problems.append(f"files were added to or removed from {source}")
    for student, path in subs.items():
        sub = work / "submitted" / student / lesson / f"{lesson}.ipynb"
        if not sub.exists() or sub.read_bytes() != Path(path).read_bytes():
            problems.append(f"{student}'s submission was removed or changed")
    return problems


def hidden_lines(lesson: str) -> list[str]:
    """Every line (longer than 12 characters) of the hidden tests of ``lesson``'s source notebook."""
    nb = json.loads((ROOT / "solutions" / lesson / f"{lesson}.ipynb").read_text())
    lines = ["HIDDEN TESTS"]
    for cell in nb["cells"]:
        for block in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", "".join(cell["source"]), re.S):
            lines += [line.strip() for line in block.splitlines() if len(line.strip()) > 12]
    return lines


def feedback_text(work: Path, lesson: str, student: str) -> str:
    page = (work / "feedback" / student / lesson / f"{lesson}.html").read_text()
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def leaks(work: Path, lesson: str, students) -> list[str]:
    """Lines of hidden tests that the generated feedback shows (there must be none)."""
    try:
        generate_feedback(work, lesson)
    except RuntimeError as e:
        return [f"no feedback could be generated for {lesson}: {str(e)[:300]}"]
    hidden = hidden_lines(lesson)
    found = []
    for student in students:
        text = feedback_text(work, lesson, student)
        found += [f"{student}'s feedback shows {line!r}" for line in hidden if line in text]
    return found


def grade_lesson(lesson: str, subs: dict, work: Path) -> dict:
    """Grade ``subs`` (case -> notebook) of ``lesson`` in a fresh course folder ``work``."""
    t0 = time.perf_counter()
    results = autograde(lesson, subs, work, **LIMITS)
    seconds = time.perf_counter() - t0
    return {"results": results, "seconds": seconds, "work": work,
            "problems": course_problems(work, lesson, subs) + leaks(work, lesson, subs)}


def grade_corpus(dest: Path, lessons=None, suite_only: bool = False, workers: int = 2) -> dict:
    """lesson -> :func:`grade_lesson` report, lessons graded ``workers`` at a time."""
    subs = write_submissions(Path(dest) / "corpus", lessons, suite_only=suite_only)

    def one(lesson):
        return lesson, grade_lesson(lesson, subs[lesson], Path(dest) / f"course-{lesson}")

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(one, subs))


def regrade_scores(report: dict) -> dict:
    """The scores read again from each gradebook (a process rewriting them would show here)."""
    return {lesson: {s: {g: v for g, (v, _) in r.tests.items()}
                     for s, r in read_results(rep["work"], lesson, list(rep["results"])).items()}
            for lesson, rep in report.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lessons", nargs="*")
    ap.add_argument("--suite", action="store_true", help="only the cases the test suite grades")
    args = ap.parse_args(argv)
    cases = load_cases()
    before = package_digest()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="corpus-") as dest:
        report = grade_corpus(Path(dest), args.lessons or None, args.suite)
        wall = time.perf_counter() - t0
        time.sleep(10)  # a detached process would rewrite a score by now
        again = regrade_scores(report)
        bad, n = 0, 0
        for lesson, rep in report.items():
            print(f"{lesson}: {len(rep['results'])} submissions in {rep['seconds']:.0f} s")
            for case, r in rep["results"].items():
                n += 1
                got = {g: s for g, (s, _) in r.tests.items()}
                want = cases[lesson][case]["expected"]
                ok = got == want and again[lesson][case] == got
                bad += not ok
                print(f"  {'ok ' if ok else 'BAD'} {case:<44} {r.auto_score:g}/{r.auto_max:g}"
                      + ("" if ok else f"  expected {want}, got {got}, later {again[lesson][case]} "
                                       f"{r.messages}"))
            for p in rep["problems"]:
                bad += 1
                print(f"  BAD {p}")
    for p in leftovers() + (["the lazysignals package changed"] if package_digest() != before else []):
        bad += 1
        print(f"BAD {p}")
    print(f"{n} submissions of {len(report)} lessons graded in {wall:.0f} s (wall clock); "
          f"{bad} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
