"""The course site as a reader sees it: built on the `ci` preset with Sphinx
(warnings are errors), served on 127.0.0.1 and opened in Chromium. Every lesson
page is there with its figures loaded, every internal link resolves, and no
exercise solution or hidden test is on it."""

import functools
import http.server
import json
import os
import re
import threading
import urllib.parse
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from lazysignals.lessons import lesson_names
from lazysignals.manifest import REPO_ROOT
from lazysignals.site import binder_url, build_site

LESSONS = lesson_names()
CHROMIUM = os.environ.get("LAZYSIGNALS_CHROMIUM", "/usr/bin/chromium")
# A headless Chromium on a machine without outside network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
GUIDES = ["GLOSSARY", "CHEATSHEET", "AGENDAS", "INSTRUCTORS"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "html"
    build_site("ci", out, log=print)  # prints the build time (pytest -rP shows it)
    return out


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(site):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"No Chromium at {CHROMIUM}: apt-get install chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _pages(site):
    return sorted(p for p in site.rglob("*.html") if not p.relative_to(site).parts[0].startswith("_"))


def _lesson_source(lesson):
    return json.loads((REPO_ROOT / "solutions" / lesson / f"{lesson}.ipynb").read_text(encoding="utf-8"))


def _plots(lesson):
    return any(re.search(r"\.plot\(|plt\.|plot_images\(", "".join(c["source"]))
               for c in _lesson_source(lesson)["cells"] if c["cell_type"] == "code")


IMAGES_JS = """() => Array.from(document.querySelectorAll('article img')).map(i => ({
    src: i.currentSrc || i.src, loaded: i.complete && i.naturalWidth > 0, output: !!i.closest('.cell_output')}))"""


def test_every_lesson_page_shows_its_figures_in_chromium_with_binder_and_download_links(site, served, browser):
    page = browser.new_page()
    try:
        for lesson in LESSONS:
            response = page.goto(f"{served}notebooks/{lesson}/{lesson}.html")
            assert response.ok, f"no page for lesson {lesson}"
            title = page.locator("article h1").first.inner_text()
            assert title.startswith(lesson[:2]), f"the page of {lesson} is titled '{title}'"
            page.wait_for_load_state("load")
            images = page.evaluate(IMAGES_JS)
            local = [i for i in images if i["src"].startswith(served)]
            broken = [i["src"] for i in local if not i["loaded"]]
            assert not broken, f"{lesson}: figures that did not load: {broken}"
            if _plots(lesson):
                assert any(i["output"] for i in local), f"{lesson} plots, but its page shows no figure"
            links = page.evaluate("() => Array.from(document.querySelectorAll('article a')).map(a => a.href)")
            assert binder_url(lesson) in links, f"{lesson}: no Binder link to its student notebook"
            download = [h for h in links if h.startswith(served) and h.endswith(f"/{lesson}.ipynb")]
            assert download, f"{lesson}: no download link for its student notebook"
            got = page.request.get(download[0])
            student = (REPO_ROOT / "notebooks" / lesson / f"{lesson}.ipynb").read_bytes()
            assert got.ok and got.body() == student, f"{lesson}: the download is not the student notebook"
    finally:
        page.close()


def test_home_page_has_the_readme_tables_and_links_every_lesson_and_guide(site, served, browser):
    page = browser.new_page()
    try:
        page.goto(served)
        text = page.locator("article").inner_text()
        for heading in ["The lessons", "The data", "Performance", "Credits and licences"]:
            assert heading in text, f"the home page lacks the README's section '{heading}'"
        assert page.locator("article table").count() >= 4, "the README's tables are not on the home page"
        hrefs = page.evaluate("() => Array.from(document.querySelectorAll('a')).map(a => a.href)")
        for target in [f"notebooks/{lesson}/{lesson}.html" for lesson in LESSONS] + [f"docs/{g}.html" for g in GUIDES]:
            assert served + target in hrefs, f"the home page does not link {target}"
    finally:
        page.close()


def _ids(html_path, cache={}):
    if html_path not in cache:
        soup = BeautifulSoup(html_path.read_text(encoding="utf-8"), "html.parser")
        cache[html_path] = {t.get("id") for t in soup.find_all(id=True)} | {t.get("name") for t in soup.find_all("a", attrs={"name": True})}
    return cache[html_path]


def test_every_internal_link_and_image_resolves(site):
    broken = []
    for page in _pages(site):
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        for tag, attr in (("a", "href"), ("img", "src"), ("link", "href"), ("script", "src")):
            for el in soup.find_all(tag, attrs={attr: True}):
                url = el[attr]
                parts = urllib.parse.urlsplit(url)
                if parts.scheme or parts.netloc or url.startswith(("mailto:", "javascript:")):
                    continue
                target = page if not parts.path else (page.parent / urllib.parse.unquote(parts.path)).resolve()
                if target.is_dir():
                    target = target / "index.html"
                if not target.exists():
                    broken.append(f"{page.relative_to(site)}: {url}")
                elif parts.fragment and target.suffix == ".html" and parts.fragment not in _ids(target):
                    broken.append(f"{page.relative_to(site)}: {url} (no such anchor)")
    assert not broken, "links that lead nowhere:\n" + "\n".join(broken[:30])


def _between(source, begin, end):
    out, inside = [], False
    for line in source.splitlines():
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside:
            out.append(line)
    return out


def _secrets(lesson):
    """Lines only the solutions and hidden tests of ``lesson`` contain (long enough to be telling)."""
    nb = _lesson_source(lesson)
    student = (REPO_ROOT / "notebooks" / lesson / f"{lesson}.ipynb").read_text(encoding="utf-8")
    lines = set()
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        lines.update(_between(src, "### BEGIN SOLUTION", "### END SOLUTION"))
        lines.update(_between(src, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"))
        lines.update(_between(src, "=== BEGIN MARK SCHEME ===", "=== END MARK SCHEME ==="))
    squash = lambda s: re.sub(r"\s+", "", s)  # noqa: E731
    return {squash(l) for l in lines if len(l.strip()) >= 25 and json.dumps(l.strip())[1:-1] not in student}


def test_no_solution_or_hidden_test_appears_on_the_site(site):
    text = "".join(re.sub(r"\s+", "", BeautifulSoup(p.read_text(encoding="utf-8"), "html.parser").get_text())
                   for p in site.rglob("*.html"))
    text += "".join(re.sub(r"\s+", "", p.read_text(encoding="utf-8", errors="replace"))
                    for p in site.rglob("*") if p.suffix in (".ipynb", ".txt", ".js") and "_static" not in p.parts)
    leaked = {lesson: [s for s in _secrets(lesson) if s in text] for lesson in LESSONS}
    leaked = {k: v for k, v in leaked.items() if v}
    assert all(_secrets(lesson) for lesson in ("03_plotting", "06_map", "10_capstone")), "no solutions found to look for"
    assert not leaked, f"solution or hidden-test lines on the site: {leaked}"



def test_an_unknown_lesson_is_refused_with_the_names_of_the_lessons(tmp_path):
    from lazysignals.site import SiteError

    with pytest.raises(SiteError, match="No lesson named 11_nothing. Lessons: 00_setup"):
        build_site("ci", tmp_path / "html", ["11_nothing"], log=lambda *a: None)
    assert not (tmp_path / "html").exists()
