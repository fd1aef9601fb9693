"""A JupyterLab started the way learners start it, for the tests that need one."""

import os
import re
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

from benchmarks.lab import stop_lab


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_listening(port: int, seconds: float = 60) -> None:
    """The URL is printed a moment before the server accepts connections."""
    deadline = time.time() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


@contextmanager
def course_jupyterlab(tmp_path, preset="ci", lab_args=(), start_args=(), data=None):
    """Run ``python -m lazysignals start --no-browser [START_ARGS]`` on 127.0.0.1; yield its URL.

    JupyterLab keeps its user settings, workspaces and runtime files in
    ``tmp_path``, never in the user's own folders, so a test leaves no tab
    open in the next ``course.py start``. The server, its kernels and their
    children are stopped afterwards.
    """
    port = free_port()
    env = {**os.environ, "LAZYSIGNALS_DATA": str(data or tmp_path / "data"), "LAZYSIGNALS_PRESET": preset,
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-user-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces")}
    cmd = [sys.executable, "-m", "lazysignals", "start", "--no-browser", "--port", str(port), *start_args]
    if lab_args:
        cmd += ["--", *lab_args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        url, lines, deadline = None, [], time.time() + 240
        while time.time() < deadline and url is None:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(rf"(http://127\.0\.0\.1:{port}/lab\S*\?token=\w+)", line)
            url = m.group(1) if m else None
        assert url, "JupyterLab did not print its URL:\n" + "".join(lines)
        _wait_until_listening(port)
        yield url
    finally:
        stop_lab(proc)  # its process group: SIGTERM, then SIGKILL after 30 s
