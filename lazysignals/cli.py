"""Command line: ``python -m lazysignals data|start|check``.

Examples
--------
python -m lazysignals data --list
python -m lazysignals data --preset workshop --format zspy,hspy --dest DIR
python -m lazysignals data --fetch feal-stripes
python -m lazysignals data --verify data/synthetic_ci_seed2019.zspy
python -m lazysignals start --no-browser
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import manifest
from .manifest import CourseDataError

#: The learner's lab is rooted here: the student notebooks, not solutions/.
LEARNER_ROOT = "notebooks"
#: The page the learner's lab opens, relative to LEARNER_ROOT.
FIRST_LESSON = "00_setup/00_setup.ipynb"


def _list() -> None:
    print("Synthetic presets (made here, offline):")
    default = manifest.default_preset()
    for name, p in manifest.presets().items():
        nav = " x ".join(map(str, p.navigation_shape))
        sig = " x ".join(map(str, p.signal_shape))
        star = " (default)" if name == default else ""
        print(f"  {name:<10} {nav:>9} probe positions, {sig:>9} detector, "
              f"{p.nbytes / 1e9:7.2f} GB{star}  {p.description}")
    print("Real datasets (fetched from Zenodo):")
    for name, d in manifest.datasets().items():
        print(f"  {name:<17} record {d.record}: {d.file}")
    print(f"Data folder: {manifest.data_dir()} (set {manifest.DATA_ENV} to change it)")


def cmd_data(args) -> int:
    if args.list:
        _list()
        return 0
    if args.verify:
        from .storage import verify_zspy

        info = verify_zspy(Path(args.verify), deep=True)
        print(f"{args.verify}: complete, {info['nchunks']} chunks of {info['chunks']}, shape {info['shape']}")
        return 0
    if args.fetch:
        from .fetch import dataset_path

        path = dataset_path(args.fetch, dest=args.dest, convert=args.convert, progress=not args.quiet)
        print(path)
        return 0
    from .synthetic import generate

    preset = manifest.get_preset(args.preset or manifest.default_preset())
    dest = Path(args.dest) if args.dest else manifest.data_dir()
    if args.prepare:
        from .data import FORMATS, prepare

        formats = _formats(args.format) if args.format else FORMATS
        for path in prepare(preset.name, formats, seed=args.seed, dest=dest, progress=not args.quiet).values():
            print(path)
        return 0
    paths = generate(preset, dest, formats=_formats(args.format or "zspy"), seed=args.seed,
                     overwrite=args.overwrite, progress=not args.quiet)
    for p in paths.values():
        print(p)
    return 0


def _formats(text: str) -> list[str]:
    return [f.strip() for f in text.split(",") if f.strip()]


def _lab_command(root: Path, args) -> list[str]:
    cmd = [sys.executable, "-m", "jupyter", "lab", f"--ip={args.ip}", f"--port={args.port}"]
    if not any(a.startswith("--ServerApp.root_dir=") for a in args.lab_args):
        cmd.append(f"--ServerApp.root_dir={root}")  # the tests serve scratch copies instead
    if args.no_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI machines often run as root
    return cmd + [a for a in args.lab_args if a != "--"]


def start_instructor(args) -> int:
    """JupyterLab for grading: at the course folder, with solutions/ and the Formgrader.

    Makes no dataset and opens no notebook (no kernel starts); nbgrader's
    Formgrader reads ``nbgrader_config.py`` of the folder it starts in.
    """
    root = Path(args.course_dir).resolve()
    if not (root / "nbgrader_config.py").exists():
        raise CourseDataError(f"{root} has no nbgrader_config.py: give the course folder with --course-dir.")
    cmd = _lab_command(root, args) + ["--LabApp.default_url=/lab/tree/solutions"]
    print(f"Starting JupyterLab for instructors in {root}: solutions/ in the file browser; "
          "open the Formgrader from the menu Nbgrader > Formgrader (or at /formgrader on the "
          "printed server). A score or comment saves when its field loses focus.")
    sys.stdout.flush()
    os.chdir(root)
    os.execvpe(cmd[0], cmd, dict(os.environ))
    return 0  # not reached


def cmd_start(args) -> int:
    from .data import PRESET_ENV, prepare

    if args.instructor:
        return start_instructor(args)

    preset = args.preset or os.environ.get(PRESET_ENV) or manifest.default_preset()
    print(f"Preparing the '{preset}' dataset in {manifest.data_dir()} (once; instant afterwards) ...")
    for path in prepare(preset).values():
        print(f"Dataset ready: {path}")
    env = dict(os.environ, **{PRESET_ENV: preset})
    root = manifest.REPO_ROOT
    # Open lesson 00, and print its address, not just the server's.
    cmd = _lab_command(root / LEARNER_ROOT, args) + [f"--LabApp.default_url=/lab/tree/{FIRST_LESSON}"]
    print("Starting JupyterLab; open the URL printed below (Ctrl+C twice stops it).")
    sys.stdout.flush()
    os.chdir(root)
    os.execvpe(cmd[0], cmd, env)
    return 0  # not reached


def cmd_notebooks(args) -> int:
    """Regenerate the student notebooks from their sources with nbgrader."""
    from .lessons import copy_reference_pages, generate_student_notebooks

    for path in generate_student_notebooks(args.lessons or None) + copy_reference_pages():
        print(path)
    return 0


def cmd_lessons(args) -> int:
    """List the lessons (the folders of solutions/), in teaching order."""
    from .lessons import lesson_names

    print("\n".join(lesson_names()))
    return 0


def cmd_autograde(args) -> int:
    """Safely autograde the collected submissions of a lesson (instructors)."""
    from .grading import autograde_course
    from .sandbox import TRUSTED_ENV, SandboxUnavailable, trusted

    if trusted():
        print(f"WARNING: {TRUSTED_ENV} is set: the notebooks run WITHOUT the sandbox, as you, next to "
              "the gradebook, and report their own results. Only for a class you trust.")
    limits = dict(cell_timeout=args.cell_timeout, notebook_timeout=args.notebook_timeout,
                  memory=int(args.memory_gb * 2**30))
    try:
        results = autograde_course(Path(args.course_dir), args.lesson, args.student or None, **limits)
    except SandboxUnavailable as e:
        print(e)
        return 2
    if not results:
        print(f"No submissions of {args.lesson} in submitted/: run nbgrader collect {args.lesson} first.")
        return 1
    for sid, r in results.items():
        manual = f", {sum(r.manual.values()):g} to grade by hand" if r.manual else ""
        print(f"{sid:<24} {r.auto_score:6g} / {r.auto_max:g} autograded points{manual}")
        if "Grading stopped" in r.log:
            print(f"{'':<24} {r.log.strip().splitlines()[-1]}")
        for where, message in r.messages.items():
            if message.startswith("GradingStopped"):
                print(f"{'':<24} {where}: {message}")
    print("Next: grade by hand in the Formgrader (python -m lazysignals start --instructor, then "
          "the menu Nbgrader > Formgrader; a score saves when its field loses focus), then "
          f"nbgrader generate_feedback {args.lesson} and nbgrader export --to grades.csv")
    return 0


def cmd_lab_settings(args) -> int:
    """Install the course's JupyterLab settings (jupyter/overrides.json) into this environment."""
    import shutil

    src = manifest.REPO_ROOT / "jupyter" / "overrides.json"
    dest = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    print(dest)
    return 0


def cmd_site(args) -> int:
    """Execute the lessons on a preset and render the course site (Sphinx, myst-nb)."""
    from .site import SiteError, build_site

    try:
        build_site(args.preset, Path(args.out) if args.out else None, args.lessons or None, jobs=args.jobs)
    except SiteError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


def cmd_grade(args) -> int:
    """Autograde notebooks of one lesson in a scratch course folder; print scores."""
    import tempfile

    from .grading import autograde

    subs = {f"nb{i}-{Path(p).stem}": Path(p).resolve() for i, p in enumerate(args.notebooks)}
    with tempfile.TemporaryDirectory(prefix="lazysignals-grade-") as work:
        results = autograde(args.lesson, subs, Path(work))
    for sid, r in results.items():
        print(f"{sid}: {r.auto_score:g} / {r.auto_max:g} autograded points"
              + (f" (+ {sum(r.manual.values()):g} graded by hand)" if r.manual else ""))
        for gid, (s, m) in r.tests.items():
            print(f"  {gid}: {s:g}/{m:g} {r.messages.get(gid, '')}")
    return 0 if all(r.auto_score == r.auto_max for r in results.values()) else 1


def parser() -> argparse.ArgumentParser:
    from . import grading

    ap = argparse.ArgumentParser(prog="python -m lazysignals", description="Working with lazy signals in HyperSpy")
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("data", help="list, make, fetch or verify course datasets")
    g = d.add_mutually_exclusive_group()
    g.add_argument("--list", action="store_true", help="list presets and real datasets")
    g.add_argument("--preset", help="make a synthetic preset (default: the manifest's default)")
    g.add_argument("--fetch", metavar="NAME", help="download a real dataset from Zenodo")
    g.add_argument("--verify", metavar="PATH", help="check that a .zspy has every chunk, readable")
    d.add_argument("--format", help="zspy, hspy or zspy,hspy (default zspy; with --prepare both, as the lessons need)")
    d.add_argument("--seed", type=int, help="another specimen than the preset's seed")
    d.add_argument("--dest", help=f"folder (default ${manifest.DATA_ENV} or data/)")
    d.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    d.add_argument("--convert", action="store_true", help="also convert a fetched dataset to the course .zspy")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.add_argument("--prepare", action="store_true",
                   help="with --preset: make what the lessons need (both formats) if missing or "
                        "incomplete (never an error if present)")
    d.set_defaults(func=cmd_data)
    s = sub.add_parser("start", help="prepare the default dataset and start JupyterLab at lesson 00")
    s.add_argument("--preset", help="dataset preset to prepare (default: the manifest's default)")
    s.add_argument("--no-browser", action="store_true", help="do not open a browser (headless)")
    s.add_argument("--ip", default="127.0.0.1")
    s.add_argument("--port", default="8888")
    s.add_argument("--instructor", action="store_true",
                   help="for grading: JupyterLab at the course folder with solutions/ and the Formgrader; "
                        "no dataset, no lesson opened")
    s.add_argument("--course-dir", default=str(manifest.REPO_ROOT),
                   help="with --instructor: the nbgrader course folder (default: this repository)")
    s.add_argument("lab_args", nargs=argparse.REMAINDER,
                   help="after --, options passed on to JupyterLab")
    s.set_defaults(func=cmd_start)
    n = sub.add_parser("notebooks", help="regenerate notebooks/ from solutions/ (nbgrader generate_assignment)")
    n.add_argument("lessons", nargs="*", help="lesson names (default: all)")
    n.set_defaults(func=cmd_notebooks)
    sub.add_parser("lessons", help="list the lessons (the folders of solutions/), in teaching order"
                   ).set_defaults(func=cmd_lessons)
    gr = sub.add_parser("grade", help="autograde notebooks of a lesson in a scratch folder and print scores")
    gr.add_argument("lesson", help="lesson name, e.g. 05_rebinning")
    gr.add_argument("notebooks", nargs="+", help="submitted notebooks to grade")
    gr.set_defaults(func=cmd_grade)
    ag = sub.add_parser("autograde", help="safely autograde the collected submissions of a lesson (instructors)")
    ag.add_argument("lesson")
    ag.add_argument("--student", action="append", help="only this student (repeatable)")
    ag.add_argument("--course-dir", default=str(manifest.REPO_ROOT),
                    help="the nbgrader course folder (default: this repository)")
    ag.add_argument("--cell-timeout", type=int, default=grading.CELL_TIMEOUT, help="seconds per cell")
    ag.add_argument("--notebook-timeout", type=int, default=grading.NOTEBOOK_TIMEOUT, help="seconds per notebook")
    ag.add_argument("--memory-gb", type=float, default=grading.MEMORY_LIMIT / 2**30,
                    help="memory (address space) per notebook, GB")
    ag.set_defaults(func=cmd_autograde)
    si = sub.add_parser("site", help="execute the lessons and render the course site into build/site")
    si.add_argument("--preset", default="binder", help="dataset the lessons run on (default binder)")
    si.add_argument("--out", help="output folder (default build/site)")
    si.add_argument("--jobs", type=int, help="lessons executed at once (default: cores, at most 2)")
    si.add_argument("lessons", nargs="*", help="lesson names (default: all)")
    si.set_defaults(func=cmd_site)
    ls_ = sub.add_parser("lab-settings", help="install the course's JupyterLab settings into this environment")
    ls_.set_defaults(func=cmd_lab_settings)
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except CourseDataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted; nothing half-written was kept. Run the same command again to resume.",
              file=sys.stderr)
        return 130
