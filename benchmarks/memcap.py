"""A hard memory limit for one child process, enforced by the operating system.

First choice: a child group of the cgroup v1 memory controller
(``/sys/fs/cgroup/memory/<name>``) with ``memory.limit_in_bytes`` set and,
where the kernel allows, swap forbidden as well; the child joins it before
it starts Python. The kernel then counts everything the child holds
(resident memory and the page cache it dirties) and stops it - the OOM
killer - if it needs more. ``memory.max_usage_in_bytes`` gives its peak.

Fallback (no cgroup v1 memory controller, or no permission):
``resource.setrlimit(RLIMIT_AS)``, a cap on the child's address space. It is
stricter than the cgroup (it counts reserved virtual memory, not resident
memory), so a program that passes under it passes under the cgroup too.
:meth:`MemoryCap.report` says which one was used.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

CGROUP_V1 = Path("/sys/fs/cgroup/memory")


class MemoryCap:
    def __init__(self, limit_bytes: int, name: str | None = None):
        self.limit = int(limit_bytes)
        self.group = None
        self.method = "setrlimit(RLIMIT_AS)"
        self.error = None
        name = name or f"lazysignals-bench-{os.getpid()}-{int(time.time())}"
        if (CGROUP_V1 / "memory.limit_in_bytes").exists():
            try:
                group = CGROUP_V1 / name
                group.mkdir(exist_ok=True)
                (group / "memory.limit_in_bytes").write_text(str(self.limit))
                swap = group / "memory.memsw.limit_in_bytes"
                if swap.exists():
                    try:
                        swap.write_text(str(self.limit))
                    except OSError:
                        pass
                self.group = group
                self.method = "cgroup v1 memory controller"
            except OSError as e:
                self.error = f"cgroup not usable ({e}); fell back to RLIMIT_AS"

    def preexec(self):
        """Runs in the child between fork and exec."""
        if self.group is not None:
            with open(self.group / "cgroup.procs", "w") as f:
                f.write(str(os.getpid()))
        else:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (self.limit, self.limit))

    def _read(self, name: str):
        try:
            return (self.group / name).read_text()
        except (OSError, TypeError):
            return None

    def report(self) -> dict:
        rep = {"method": self.method, "limit_gb": round(self.limit / 1e9, 3)}
        if self.error:
            rep["note"] = self.error
        if self.group is not None:
            rep["cgroup"] = str(self.group)
            peak = self._read("memory.max_usage_in_bytes")
            rep["cgroup_max_usage_gb"] = round(int(peak) / 1e9, 3) if peak else None
            fails = self._read("memory.failcnt")
            rep["cgroup_failcnt"] = int(fails) if fails else None
            oom = self._read("memory.oom_control")
            if oom:
                for line in oom.splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        rep["cgroup_oom_kills"] = int(value)
        return rep

    def close(self):
        """Remove the group (it must be empty: the child has ended)."""
        if self.group is not None:
            for _ in range(20):
                try:
                    self.group.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)
