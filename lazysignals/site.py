"""The course site: every lesson executed, rendered by Sphinx with myst-nb.

``python -m lazysignals site`` executes each lesson's source notebook on a
preset (``binder`` by default), removes the exercise solutions and hidden tests
with nbgrader's own preprocessors (the same ones that make the student
notebooks), and renders the lessons, the README and ``docs/`` with Sphinx
(myst-nb, sphinx-book-theme) into ``build/site``: static HTML for any web host.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from .lessons import REFERENCE_PAGES, lesson_names
from .manifest import REPO_ROOT

#: Guides shown first in the site's navigation, in this order; other docs follow.
GUIDES = ["GLOSSARY", "CHEATSHEET", "AGENDAS", "INSTRUCTORS"]
CELL_TIMEOUT = 900
MATPLOTLIB_WIDGET = "%matplotlib widget"


class SiteError(RuntimeError):
    """The site could not be built; the message says why and what to do."""


def repository_url(root: Path = REPO_ROOT) -> str:
    """The course's repository, as CITATION.cff names it (one place)."""
    return yaml.safe_load((root / "CITATION.cff").read_text(encoding="utf-8"))["repository-code"]


def binder_url(lesson: str, root: Path = REPO_ROOT) -> str:
    """mybinder.org link that opens the student notebook of ``lesson`` in JupyterLab."""
    slug = repository_url(root).removeprefix("https://github.com/")
    return (f"https://mybinder.org/v2/gh/{slug}/HEAD"
            f"?urlpath=lab/tree/notebooks/{lesson}/{lesson}.ipynb")


def execute_lesson(lesson: str, preset: str, root: Path = REPO_ROOT):
    """Run the source notebook of ``lesson`` on ``preset``; return the executed notebook.

    It runs in a scratch copy of the lesson folder (files a lesson writes stay out of
    the repository) with the inline matplotlib backend, so that every figure is kept as
    an image; the cells still show ``%matplotlib widget`` as the learner runs them.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    source = root / "solutions" / lesson / f"{lesson}.ipynb"
    nb = nbformat.read(source, as_version=4)
    swapped = []
    for cell in nb.cells:
        if cell.cell_type == "code" and MATPLOTLIB_WIDGET in cell.source:
            swapped.append(cell)
            cell.source = cell.source.replace(MATPLOTLIB_WIDGET, "%matplotlib inline")
    with tempfile.TemporaryDirectory(prefix=f"site-{lesson}-") as scratch:
        work = Path(scratch) / lesson
        shutil.copytree(source.parent, work)
        client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                resources={"metadata": {"path": str(work)}})
        env = dict(os.environ, LAZYSIGNALS_PRESET=preset, MPLBACKEND="Agg")
        try:
            client.execute(env=env)
        except CellExecutionError as err:
            raise SiteError(
                f"Lesson {lesson} failed on the '{preset}' preset, so the site was not built. "
                f"Run solutions/{lesson}/{lesson}.ipynb to see the error:\n{str(err)[-2000:]}"
            ) from None
    for cell in swapped:
        cell.source = cell.source.replace("%matplotlib inline", MATPLOTLIB_WIDGET)
    return nb


def learner_version(nb):
    """Remove solutions, hidden tests and mark schemes exactly as the student notebook does.

    The cells a learner fills in and the test cells keep no output either: what the
    solution printed, and the tests' verdict on it, would give the answer away.
    """
    from nbgrader.preprocessors import ClearHiddenTests, ClearMarkScheme, ClearSolutions
    from traitlets.config import Config

    from .grading import configure

    config = Config()
    configure(config)
    resources = {}
    for pre in (ClearSolutions, ClearHiddenTests, ClearMarkScheme):
        nb, resources = pre(config=config).preprocess(nb, resources)
    for cell in nb.cells:
        flags = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and (flags.get("solution") or flags.get("grade")):
            cell.outputs = []
            cell.execution_count = None
    return nb


def _run_box(lesson: str, preset: str, root: Path) -> str:
    return (
        ":::{admonition} Run this lesson yourself\n:class: tip\n\n"
        f"[Launch it on Binder]({binder_url(lesson, root)}) (nothing to install), or "
        f"{{download}}`download the student notebook <../../_student/{lesson}.ipynb>` "
        "and open it in the course's JupyterLab (`python3 course.py start`). This page "
        f"shows the lesson run on the `{preset}` preset, with the exercises left for you.\n:::\n"
    )


LINK = re.compile(r"(\]\()([^)\s]+)(\))")


def _point_outside_links_at_repository(text: str, where: Path, src: Path, root: Path) -> str:
    """Links to files of the repository that are not pages of the site go to the repository."""
    repo = repository_url(root)

    def fix(m):
        target = m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
            return m.group(0)
        path, _, anchor = target.partition("#")
        rel = os.path.normpath(where / path)
        if Path(rel).name in REFERENCE_PAGES and Path(rel).parent.name in ("notebooks", "solutions"):
            # A copy of a docs/ page beside the lessons: the site has the page itself.
            return m.group(1) + os.path.relpath(f"docs/{Path(rel).name}", where) + m.group(3)
        if rel.startswith("..") or (src / rel).exists() or not (root / rel).exists():
            return m.group(0)
        kind = "tree" if (root / rel).is_dir() else "blob"
        url = f"{repo}/{kind}/HEAD/{Path(rel).as_posix()}" + (f"#{anchor}" if anchor else "")
        return m.group(1) + url + m.group(3)

    return LINK.sub(fix, text)


CONF = '''\
# Written by `python -m lazysignals site`; the lessons were executed beforehand.
project = "Working with lazy signals in HyperSpy"
author = "Francisco de la Peña, Eric Prestat, Magnus Nord and the course contributors"
copyright = "2019-2026, the course authors. Text CC BY 4.0, code BSD-3-Clause"
extensions = ["myst_nb"]
root_doc = "index"
exclude_patterns = ["_student", "_build", "**.ipynb_checkpoints", "README.md"]  # README: included by index
nb_execution_mode = "off"
nb_output_stderr = "remove"
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3
# Lessons put "### Prerequisites" under their "# NN - Title", as the course template does.
suppress_warnings = ["myst.header"]
html_theme = "sphinx_book_theme"
html_title = "Working with lazy signals in HyperSpy"
html_copy_source = False
html_show_sourcelink = False
html_theme_options = {{
    "repository_url": "{repo}",
    "use_repository_button": True,
    "use_download_button": False,
    "home_page_in_toc": True,
}}
'''


def _index(lessons: list[str], guides: list[str]) -> str:
    lines = ["```{include} README.md\n```", "",
             "```{toctree}\n:caption: Lessons\n:maxdepth: 1\n",
             *[f"notebooks/{lesson}/{lesson}" for lesson in lessons], "```", "",
             "```{toctree}\n:caption: Guides\n:maxdepth: 1\n",
             *[f"docs/{g}" for g in guides], "```", ""]
    return "\n".join(lines)


def stage(preset: str, src: Path, lessons=None, root: Path = REPO_ROOT, log=print, jobs: int | None = None) -> Path:
    """Write the Sphinx source tree of the site into ``src``: executed learner lessons, docs, README."""
    import nbformat

    lessons = lessons or lesson_names(root)
    if src.exists():
        shutil.rmtree(src)
    (src / "docs").mkdir(parents=True)
    (src / "_student").mkdir()
    shutil.copy2(root / "README.md", src / "README.md")
    for path in sorted((root / "docs").glob("*.md")):
        shutil.copy2(path, src / "docs" / path.name)
    present = sorted(p.stem for p in (src / "docs").glob("*.md"))
    guides = [g for g in GUIDES if g in present] + [g for g in present if g not in GUIDES]

    def one(lesson):
        started = time.perf_counter()
        nb = learner_version(execute_lesson(lesson, preset, root))
        nb.cells.insert(1, nbformat.v4.new_markdown_cell(_run_box(lesson, preset, root)))
        out = src / "notebooks" / lesson / f"{lesson}.ipynb"
        out.parent.mkdir(parents=True)
        nbformat.write(nb, out)
        shutil.copy2(root / "notebooks" / lesson / f"{lesson}.ipynb", src / "_student" / f"{lesson}.ipynb")
        log(f"  {lesson}: executed on '{preset}' in {time.perf_counter() - started:.0f} s")

    # The lessons' dataset, made once before lessons that open it run side by side.
    from .data import synthetic_path

    for fmt in ("zspy", "hspy"):
        synthetic_path(preset, fmt=fmt, progress=False)
    # Kernels are separate processes: run as many lessons at once as there are cores (at most 2,
    # which a 2 GB Binder-sized machine affords on the binder preset).
    with ThreadPoolExecutor(max_workers=jobs or min(2, os.cpu_count() or 1)) as pool:
        # Longest first (by size, a fair guess at run time), so that no long lesson runs alone at the end.
        longest_first = sorted(lessons, key=lambda n: -(root / "solutions" / n / f"{n}.ipynb").stat().st_size)
        for future in [pool.submit(one, lesson) for lesson in longest_first]:
            future.result()
    for md in [src / "README.md", *(src / "docs").glob("*.md")]:
        where = md.parent.relative_to(src)
        md.write_text(_point_outside_links_at_repository(md.read_text(encoding="utf-8"), where, src, root),
                      encoding="utf-8")
    for page in (src / "notebooks").glob("*/*.ipynb"):
        nb = nbformat.read(page, as_version=4)
        where = page.parent.relative_to(src)
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = _point_outside_links_at_repository(cell.source, where, src, root)
        nbformat.write(nb, page)
    (src / "index.md").write_text(_index(lessons, guides), encoding="utf-8")
    (src / "conf.py").write_text(CONF.format(repo=repository_url(root)), encoding="utf-8")
    return src


def build_site(preset: str = "binder", out: Path | None = None, lessons=None, root: Path = REPO_ROOT,
               log=print, jobs: int | None = None) -> Path:
    """Execute the lessons on ``preset`` and render the site; return the folder of ``index.html``.

    Sphinx runs with warnings as errors, so a broken link or a missing page stops the build.
    """
    try:
        import myst_nb  # noqa: F401
        import sphinx_book_theme  # noqa: F401
    except ImportError:
        raise SiteError("The site needs Sphinx, myst-nb and sphinx-book-theme: "
                        "pip install -e '.[site]' (course.py test installs them).") from None
    unknown = sorted(set(lessons or []) - set(lesson_names(root)))
    if unknown:
        raise SiteError(f"No lesson named {', '.join(unknown)}. Lessons: {', '.join(lesson_names(root))}.")
    out = Path(out or root / "build" / "site")
    src = out.parent / f"{out.name}-src"
    started = time.perf_counter()
    log(f"Executing the lessons on the '{preset}' preset ...")
    stage(preset, src, lessons, root, log, jobs)
    log("Rendering with Sphinx ...")
    if out.exists():
        shutil.rmtree(out)
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q",
         "-d", str(out.parent / f"{out.name}-doctrees"), str(src), str(out)],
        capture_output=True, text=True)
    if result.returncode != 0:
        raise SiteError(f"Sphinx reported problems (warnings count as errors):\n{result.stderr[-4000:]}")
    log(f"Built the site in {time.perf_counter() - started:.0f} s: {out / 'index.html'}")
    return out
