"""JupyterLab's Dask sidebar finds lesson 09's cluster without pasting a URL:
the course's lab settings give it the dashboard through JupyterLab's own proxy
(the way it works on Binder too), on the port the lesson's cluster uses."""

import json
import re
import urllib.parse
import urllib.request

from labserver import course_jupyterlab
from lazysignals.manifest import REPO_ROOT

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


def test_sidebar_setting_reaches_a_running_cluster_through_jupyterlab(tmp_path):
    from dask.distributed import LocalCluster

    with course_jupyterlab(tmp_path) as url:
        base, token = re.match(r"(http://127\.0\.0\.1:\d+/)lab\S*\?token=(\w+)", url).groups()
        served = _get(f"{base}lab/api/settings/dask-labextension:plugin?token={token}")
        # JupyterLab applies overrides.json as the schema's defaults.
        props = served["schema"]["properties"]
        assert props["browserDashboardCheck"]["default"] is True, (
            "the sidebar must check the dashboard from the browser: the proxy needs the learner's login")
        default = served["settings"].get("defaultURL", props["defaultURL"]["default"])
        assert default == settings_url(), (
            "JupyterLab does not serve the course's Dask setting: run python -m lazysignals lab-settings")
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
            # The port the lesson asks for may be taken on a shared machine; the path is what matters.
            port = urllib.parse.urlparse(cluster.dashboard_link).port
            relative = re.sub(r"proxy/\d+/", f"proxy/{port}/", settings_url())
            # What the sidebar does with a relative URL: put JupyterLab's address in front, drop
            # "status"; with browserDashboardCheck it then asks, from the browser (logged in, as here
            # with the token), for the dashboard's list of plots.
            dashboard = base + relative.removesuffix("status")
            check = _get(f"{dashboard}individual-plots.json?token={token}")
        assert any("Task Stream" in name for name in check), f"no dashboard behind the proxy: {check}"
