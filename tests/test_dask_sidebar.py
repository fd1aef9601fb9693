"""JupyterLab's Dask sidebar finds lesson 09's cluster without pasting a URL:
the course's lab settings give it the dashboard through JupyterLab's own proxy
(the way it works on Binder too), on the port the lesson's cluster uses."""

import json
import os
import re
import socket
import urllib.parse
import urllib.request

from labserver import course_jupyterlab
from lazysignals.manifest import REPO_ROOT

CHROMIUM = os.environ.get("LAZYSIGNALS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
LESSON = REPO_ROOT / "solutions" / "09_scaling_out" / "09_scaling_out.ipynb"


def settings_url():
    overrides = json.loads((REPO_ROOT / "jupyter" / "overrides.json").read_text())
    return overrides["dask-labextension:plugin"]["defaultURL"]


def test_sidebar_url_and_lesson_09_use_the_same_dashboard_port():
    m = re.fullmatch(r"proxy/(\d+)/status", settings_url())
    assert m, "the Dask sidebar's defaultURL should be relative, proxy/<port>/status, to work behind Binder's proxy"
    cells = json.loads(LESSON.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert f'dashboard_address=":{m.group(1)}"' in code, (
        f"lesson 09 should start its cluster with dashboard_address=\":{m.group(1)}\", where the sidebar looks")


def test_binder_links_the_dashboard_through_the_proxy():
    start = (REPO_ROOT / "binder" / "start").read_text()
    assert "DASK_DISTRIBUTED__DASHBOARD__LINK='{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status'" in start


def _get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def _port_is_free(port):
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_sidebar_connects_to_a_running_cluster_in_chromium(tmp_path):
    from dask.distributed import LocalCluster
    from playwright.sync_api import sync_playwright

    lesson_port = int(re.search(r"proxy/(\d+)/", settings_url()).group(1))
    # On a shared machine another notebook may hold the lesson's port: dask then takes a free
    # one (as in the lesson), and the test types the same relative form into the sidebar.
    wanted = f":{lesson_port}" if _port_is_free(lesson_port) else ":0"
    # A workspace of its own: the sidebar prefers a URL remembered from an earlier session.
    lab_args = [f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}"]
    with course_jupyterlab(tmp_path, lab_args=lab_args) as url, \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=wanted) as cluster:
        base, token = re.match(r"(http://127\.0\.0\.1:\d+/)lab\S*\?token=(\w+)", url).groups()
        served = _get(f"{base}lab/api/settings/dask-labextension:plugin?token={token}")
        props = served["schema"]["properties"]
        assert props["browserDashboardCheck"]["default"] is True, (
            "the sidebar must check the dashboard from the browser: the proxy needs the learner's login")
        assert served["settings"].get("defaultURL", props["defaultURL"]["default"]) == settings_url(), (
            "JupyterLab does not serve the course's Dask setting: run python -m lazysignals lab-settings")
        port = urllib.parse.urlparse(cluster.dashboard_link).port
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(url)
                page.wait_for_selector(".jp-NotebookPanel", timeout=120_000)  # the lab opened lesson 00
                sidebar = page.locator("#dask-dashboard-launcher")
                tab = page.locator("li[data-id='dask-dashboard-launcher']")
                for _ in range(20):  # the tab toggles the panel once the lab is ready
                    if sidebar.is_visible():
                        break
                    tab.click()
                    page.wait_for_timeout(500)
                if port != lesson_port:
                    box = sidebar.locator("input").first
                    box.fill(settings_url().replace(f"proxy/{lesson_port}/", f"proxy/{port}/"))
                    box.press("Enter")
                else:  # nothing pasted: the course's setting
                    assert sidebar.locator("input").first.input_value() == settings_url()
                task_stream = sidebar.locator("button", has_text="Task Stream")
                task_stream.wait_for(timeout=60_000)
                assert task_stream.is_enabled(), "the Dask sidebar shows the dashboard but cannot open it"
                assert "not connected" not in sidebar.inner_text()
            finally:
                browser.close()
