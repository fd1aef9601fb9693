"""The memory toolkit: one peak measurement (also of child processes), one hard cap."""

import subprocess
import sys

import pytest

from lazysignals import measure
from lazysignals.measure import MemoryCap, peak_memory

MiB = 2**20
# A child that allocates and touches N MiB, then says so.
ALLOCATE = "import sys; b = bytearray(int(sys.argv[1]) * 2**20); b[::4096] = b'x' * len(b[::4096]); print('ok')"


def run_capped(cap, mib):
    try:
        return subprocess.run(cap.wrap([sys.executable, "-c", ALLOCATE, str(mib)]), preexec_fn=cap.preexec,
                              capture_output=True, text=True, timeout=60)
    finally:
        cap.close()


def test_peak_memory_of_children_sees_a_child_process_allocation():
    with peak_memory(interval=0.01, of="children") as mem:
        subprocess.run([sys.executable, "-c", ALLOCATE + "; import time; time.sleep(0.3)", "150"], check=True,
                       capture_output=True)
    assert mem.start < 20 * MiB, mem  # no child before
    assert mem.peak >= 140 * MiB, mem


def test_peak_memory_refuses_an_unknown_target():
    with pytest.raises(ValueError, match="children"), peak_memory(of="kernel"):
        pass


def test_memory_cap_stops_a_child_over_the_cap_and_lets_one_under_it_finish():
    small = run_capped(MemoryCap(256 * MiB), 16)
    assert small.returncode == 0 and small.stdout.strip() == "ok", small.stderr
    cap = MemoryCap(256 * MiB)
    big = run_capped(cap, 512)
    assert big.returncode != 0 and "ok" not in big.stdout
    assert cap.report()["method"] == cap.method and cap.report()["limit_gb"] == round(256 * MiB / 1e9, 3)


def test_without_cgroups_the_cap_falls_back_to_the_address_space_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(measure, "CGROUP_ROOT", tmp_path)  # no cgroup here
    cap = MemoryCap(256 * MiB)
    assert cap.method == "setrlimit(RLIMIT_AS)" and cap.wrap(["x"]) == ["x"]
    assert run_capped(cap, 16).returncode == 0
    over = run_capped(MemoryCap(256 * MiB), 512)
    assert over.returncode != 0 and "MemoryError" in over.stderr
