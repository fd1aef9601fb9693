"""Out of core: the lesson pipeline on the manifest's out-of-core preset under a hard memory cap.

The preset (``large``: 512 x 512 probe positions, 256 x 256 detector, uint16:
34.4 GB uncompressed) is made once into the benchmark data folder (timed, no
cap: generation is not what is demonstrated), then the pipeline of
:mod:`benchmarks.pipeline` runs in a child process that the operating system
stops if it needs more than the cap (:class:`lazysignals.measure.MemoryCap`:
cgroup v2 through systemd, cgroup v1, or ``RLIMIT_AS``; the result says which).
The rebinned result (4.3 GB as uint32) cannot be held in 2 GB, so that step
saves it to a .zspy on disk, out of core, and the file is removed afterwards.
The report gives: did it finish, peak RSS per step, the cgroup's own peak
(cgroup v1: ``memory.max_usage_in_bytes``, which also counts page cache the
kernel could reclaim), OOM kills, and wall time.

With ``--no-cluster`` that is all. Otherwise the same pipeline then runs
twice more on a ``distributed.LocalCluster`` of 2 worker processes (one
thread each, a memory limit of 1.5 GB each, spilling to disk allowed), the
client in a child process: once as it is, and once with one worker process
killed (SIGKILL) part-way through the rebin step, which writes to disk. The
nanny starts a new worker and the scheduler re-runs the lost tasks. Every
run hashes its results (ADF image, the rebinned file read back, the
centre-of-mass map, the crops' images, the fitted parameters): each cluster
run must give results identical to the threaded run's. Peak RSS is sampled
per worker process (``psutil``, every 50 ms) and per step.

The ADF image is computed the way lesson 03 computes a whole-scan image (a
ring mask times the signal, summed): HyperSpy's ``CircleROI`` on lazy data
builds its NaN mask as large as the scan for every detector chunk and would
be killed under the cap.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from .harness import GB, Component, Context, Result, dir_size, run_child, target

STEPS = ["plot", "adf", "rebin", "com", "crops", "fit"]
#: The cluster runs: worker processes, one thread each, and the memory limit of each (spilling to disk allowed).
WORKERS = 2
WORKER_MEMORY = "1.5GB"
#: The killed-worker run kills one worker this far into this step (share of the step's time on the cluster).
KILL_DURING = "rebin"
KILL_AT = 0.4


def child_generate(preset: str, dest: str) -> dict:
    from lazysignals import manifest
    from lazysignals.data import is_ready, prepare

    p = manifest.get_preset(preset)
    there = is_ready(Path(dest) / p.filename("zspy", p.seed), p, p.seed)
    t0 = time.perf_counter()
    path = prepare(preset, formats=("zspy",), dest=Path(dest), progress=False)["zspy"]
    return {"seconds": round(time.perf_counter() - t0, 1), "path": str(path), "reused": there}


def _worker_pids(client) -> dict[str, int]:
    import os

    return client.run(os.getpid)


class WorkerMemory:
    """Peak RSS of every process below this one (the cluster's nannies and workers), by pid and by step.

    A thread samples ``psutil`` every ``interval`` seconds; ``steps.current``
    says which step of the pipeline is running.
    """

    def __init__(self, steps, interval: float = 0.05):
        import threading

        self.steps, self.interval = steps, interval
        self.peak: dict[int, int] = {}
        self.by_step: dict[tuple[str, int], int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="worker-memory", daemon=True)
        self._thread.start()

    def _sample(self):
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            cur = self.steps.current
            key = cur[0].get("key") if cur else None
            for proc in me.children(recursive=True):
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:  # ended (or was killed) meanwhile
                    continue
                self.peak[proc.pid] = max(self.peak.get(proc.pid, 0), rss)
                if key:
                    self.by_step[(key, proc.pid)] = max(self.by_step.get((key, proc.pid), 0), rss)
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join()


def _kill_one_worker(client, steps, step: str, after: float, log: dict) -> None:
    """When ``step`` has run ``after`` seconds and tasks are running, SIGKILL one worker process (not its nanny)."""
    import os
    import signal

    while True:
        cur = steps.current
        if cur and cur[0].get("key") == step and time.perf_counter() - cur[1] >= after:
            processing = sum(len(v) for v in client.processing().values())
            if processing:
                break
        if log.get("stop"):
            return
        time.sleep(0.2)
    address, pid = sorted(_worker_pids(client).items())[0]
    os.kill(pid, signal.SIGKILL)
    log.update(killed_pid=pid, killed_worker=address, step=step,
               seconds_into_step=round(time.perf_counter() - cur[1], 2), tasks_processing_then=processing)


def child_cluster(path: str, steps: list, result_dir: str, memory_budget: float, workers: int,
                  worker_memory: str, local_directory: str, kill_during: str | None = None,
                  kill_after: float = 0.0) -> dict:
    """The pipeline on a ``LocalCluster`` of worker processes; optionally one worker is killed mid-step."""
    import logging
    import threading

    import dask
    import distributed

    from . import pipeline
    from .harness import Steps

    st = Steps()
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  memory_limit=worker_memory, local_directory=local_directory,
                                  dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as client:
        before = _worker_pids(client)
        mem = WorkerMemory(st)
        kill: dict = {}
        killer = None
        if kill_during:
            killer = threading.Thread(target=_kill_one_worker, args=(client, st, kill_during, kill_after, kill),
                                      daemon=True)
            killer.start()
        try:
            info = pipeline.run(path, steps, result_dir=result_dir, memory_budget=memory_budget, steps=st)
        finally:
            kill["stop"] = True
            if killer:
                killer.join()
            mem.stop()
        try:  # a killed worker's nanny starts a new one: wait for it (a few seconds on a loaded machine)
            client.wait_for_workers(workers, timeout=120)
        except Exception:  # noqa: BLE001 - reported below: fewer workers after than before
            pass
        after = _worker_pids(client)
        config = {k: dask.config.get(f"distributed.worker.memory.{k}") for k in ("target", "spill", "pause",
                                                                                   "terminate")}
    kill.pop("stop", None)
    workers_seen = {}  # pid -> worker address (a restarted worker has a new pid under the same nanny)
    for addr, pid in list(before.items()) + list(after.items()):
        workers_seen[pid] = addr
    per_worker = [{"pid": pid, "worker": addr, "peak_rss_gb": round(mem.peak.get(pid, 0) / GB, 3),
                   "killed": pid == kill.get("killed_pid"), "started_after_kill": pid not in before.values()}
                  for pid, addr in workers_seen.items()]
    for row in info["steps"]:
        key = row.get("key")
        row["worker_peak_rss_gb"] = round(max((v for (k, pid), v in mem.by_step.items()
                                               if k == key and pid in workers_seen), default=0) / GB, 3)
    return {**info, "workers": per_worker, "kill": kill, "worker_memory_limit": worker_memory,
            "memory_thresholds": config, "workers_before": before, "workers_after": after}


def _cluster_run(gen_path: str, work: Path, cap: int, steps: list, kill_during: str | None = None,
                 kill_after: float = 0.0) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    try:
        return run_child("benchmarks.large:child_cluster",
                         {"path": gen_path, "steps": steps, "result_dir": str(work), "memory_budget": cap * 0.75,
                          "workers": WORKERS, "worker_memory": WORKER_MEMORY, "local_directory": str(work / "spill"),
                          "kill_during": kill_during, "kill_after": kill_after})
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(ctx: Context) -> Result:
    from lazysignals import manifest

    preset = manifest.preset_for("out_of_core")
    dest = Path(ctx["data"]) / preset
    free = shutil.disk_usage(Path(ctx["data"])).free
    gen = run_child("benchmarks.large:child_generate", {"preset": preset, "dest": str(dest)})
    if not gen.get("ok"):
        return {"ok": False, "error": f"could not make the large preset: {gen.get('error')}",
                "free_disk_gb": round(free / GB, 1)}
    stored = dir_size(gen["path"])
    work = dest / "results"
    work.mkdir(parents=True, exist_ok=True)
    cap = ctx["memory_cap"]
    unknown = set(ctx.get("large_steps") or ()) - set(STEPS)
    if unknown:
        return {"ok": False, "error": f"unknown step(s) {', '.join(sorted(unknown))}: choose from {', '.join(STEPS)}."}
    steps = [s for s in STEPS if s in (ctx.get("large_steps") or STEPS)]
    if KILL_DURING not in steps:
        steps.append(KILL_DURING)
    res = run_child("benchmarks.pipeline:child",
                    {"path": gen["path"], "steps": steps, "result_dir": str(work),
                     "memory_budget": cap * 0.75, "fit_subset": 0},
                    memory_cap=cap)
    shutil.rmtree(work, ignore_errors=True)
    runs = {"threaded": res}
    if ctx.get("cluster", True) and res.get("ok"):
        runs["cluster"] = _cluster_run(gen["path"], dest / "results-cluster", cap, steps)
        if runs["cluster"].get("ok"):
            step_s = next(r["seconds"] for r in runs["cluster"]["steps"] if r.get("key") == KILL_DURING)
            runs["killed"] = _cluster_run(gen["path"], dest / "results-killed", cap, steps, KILL_DURING,
                                          round(KILL_AT * step_s, 1))
    capinfo = res.get("memory_cap", {})
    by_key = {name: {r.get("key"): r for r in run.get("steps", [])} for name, run in runs.items()}
    rows = []
    for r in res.get("steps", []):
        row = {"name": r["step"], "key": r.get("key"), "seconds": r["seconds"], "cpu_seconds": r.get("cpu_seconds"),
               "peak_rss_gb": r["peak_rss_gb"], "ratio": round(r["peak_rss_gb"] / (cap / GB), 3)}
        for name in ("cluster", "killed"):
            c = by_key.get(name, {}).get(r.get("key"))
            if c:
                row[f"{name}_s"] = c["seconds"]
                row[f"{name}_client_rss_gb"] = c["peak_rss_gb"]
                row[f"{name}_worker_peak_gb"] = c.get("worker_peak_rss_gb")
        if "how" in r:
            row["how"] = r["how"]
        rows.append(row)
    finished = {name: bool(run.get("ok")) and run.get("returncode") == 0 for name, run in runs.items()}
    peak = max((r["peak_rss_gb"] for r in rows), default=None)
    whole = {"name": "whole pipeline", "key": "whole", "seconds": round(sum(r["seconds"] for r in rows), 1),
             "peak_rss_gb": peak, "ratio": round(peak / (cap / GB), 3) if peak else None}
    for name in ("cluster", "killed"):
        if by_key.get(name):
            whole[f"{name}_s"] = round(sum(c["seconds"] for c in by_key[name].values()), 1)
            whole[f"{name}_client_rss_gb"] = max(c["peak_rss_gb"] for c in by_key[name].values())
            whole[f"{name}_worker_peak_gb"] = max((w["peak_rss_gb"] for w in runs[name].get("workers", [])),
                                                  default=None)
    rows.append(whole)
    nbytes = manifest.get_preset(preset).nbytes
    c = capinfo
    notes = [f"Pipeline steps of every run: {', '.join(steps)}" + ("" if steps == STEPS else
                                                                    f" (of {', '.join(STEPS)}: --large-steps)") + ".",
             f"Threaded run (dask's default scheduler, one process): memory cap {c.get('method')}, limit "
             f"{c.get('limit_gb')} GB; cgroup peak (includes reclaimable page cache) "
             f"{c.get('cgroup_max_usage_gb', '-')} GB, OOM kills {c.get('cgroup_oom_kills', '-')}; finished: "
             f"{'yes' if finished['threaded'] else 'no'}; dataset {nbytes / GB:.2f} GB uncompressed, "
             f"{stored / GB:.2f} GB on disk, "
             + ("made before this run (reused)." if gen.get("reused") else f"made in {gen['seconds']} s.")]
    if res.get("error"):
        notes.append(f"The threaded pipeline stopped: {res['error']}")
    digests = {name: run.get("digests") for name, run in runs.items()}
    targets = [target(f"pipeline on {nbytes / GB:.3g} GB finishes under a hard {cap / GB:.1f} GB cap "
                      f"({c.get('method')})", "finishes", finished["threaded"], finished["threaded"]),
               target("peak RSS (GB)", f"<= {cap / GB:.1f}", peak, peak is not None and peak <= cap / GB)]
    for name in ("cluster", "killed"):
        if name not in runs:
            continue
        run_ = runs[name]
        what = ("LocalCluster" if name == "cluster" else "LocalCluster, one worker process killed") + \
            f" ({WORKERS} worker processes, {WORKER_MEMORY} each)"
        ref = {k: v for k, v in (digests["threaded"] or {}).items() if k in (digests[name] or {})}
        same = finished[name] and bool(digests[name]) and digests[name] == ref
        targets.append(target(f"{what}: finishes with results identical to the threaded run "
                              f"({', '.join(sorted(digests[name] or {}))})", "identical",
                              "identical" if same else _differences(ref, digests[name], run_),
                              same))
        workers = run_.get("workers", [])
        same_steps = round(sum(r["seconds"] for r in rows[:-1] if r.get("key") in by_key.get(name, {})), 1)
        notes.append(f"{what}: {'finished' if finished[name] else 'did not finish'} in "
                     f"{whole.get(name + '_s')} s for the steps {', '.join(by_key.get(name, {}))} (the threaded run: "
                     f"{same_steps} s for the same steps); peak RSS per worker "
                     "process " + ", ".join(f"{w['peak_rss_gb']:.2f} GB" + (" (killed)" if w["killed"] else "")
                                            + (" (started after the kill)" if w["started_after_kill"] else "")
                                            for w in workers)
                     + f"; client process {whole.get(name + '_client_rss_gb')} GB; spilling thresholds "
                       f"{run_.get('memory_thresholds')}.")
        if run_.get("kill"):
            k = run_["kill"]
            restarted = any(w["started_after_kill"] for w in workers)
            notes.append(f"Killed worker: pid {k.get('killed_pid')} (SIGKILL) {k.get('seconds_into_step')} s into "
                         f"the {k.get('step')} step, {k.get('tasks_processing_then')} tasks processing then; "
                         + ("its nanny started a new worker process" if restarted else
                            "no new worker process was seen afterwards")
                         + f"; the run {'finished' if finished[name] else 'did not finish'}.")
        elif name == "killed":
            notes.append("The killed-worker run ended before a worker could be killed: nothing was killed.")
        if run_.get("error"):
            notes.append(f"The {name} run stopped: {run_['error']}")
    if not ctx.get("keep_large"):
        shutil.rmtree(dest, ignore_errors=True)
        notes.append("The dataset was deleted afterwards (--keep-large keeps it).")
    return {"ok": all(finished.values()), "preset": preset, "rows": rows, "notes": notes, "error": res.get("error"),
            "ratio_meaning": "peak RSS of the threaded run / its hard memory cap",
            "plot": {"value": "peak_rss_gb", "label": f"peak RSS GB (cap {cap / GB:.1f} GB)", "line": cap / GB},
            "targets": targets,
            "details": {"threaded": {k: v for k, v in res.items() if k != "steps"},
                        **{name: {k: v for k, v in run.items() if k != "steps"} for name, run in runs.items()
                           if name != "threaded"}}}


def _differences(ref: dict | None, got: dict | None, run_: dict) -> str:
    if not got:
        return f"no result ({run_.get('error')})"
    return "differ: " + ", ".join(k for k in sorted(set(ref or {}) | set(got)) if (ref or {}).get(k) != got.get(k))


def readme(res: Result) -> list[str]:
    def s(v):
        return "-" if v is None else f"{v:.0f} s" if v >= 10 else f"{v:.1f} s"

    def gb(v):
        return "-" if v is None else f"{v:.2f} GB"

    lines = ["| step | threaded (hard cap) | LocalCluster | one worker killed |", "|---|---|---|---|"]
    for r in res["rows"]:
        bold = r.get("key") == "whole"
        cells = [r["name"], f"{s(r['seconds'])}, {gb(r['peak_rss_gb'])}",
                 f"{s(r.get('cluster_s'))}, workers {gb(r.get('cluster_worker_peak_gb'))}",
                 f"{s(r.get('killed_s'))}, workers {gb(r.get('killed_worker_peak_gb'))}"]
        lines.append("| " + " | ".join(f"**{c}**" if bold else c for c in cells) + " |")
    lines += ["", "| target | goal | measured | |", "|---|---|---|---|"]
    for t in res.get("targets", []):
        measured = {True: "yes", False: "no"}.get(t["measured"], t["measured"]) \
            if isinstance(t["measured"], bool) else t["measured"]
        lines.append(f"| {t['what']} | {t['target']} | {measured} | {'met' if t['met'] else 'NOT met'} |")
    return lines + [""] + [n for note in res.get("notes", []) if "made in" not in note and "reused" not in note
                           for n in (note, "")][:-1]


COMPONENT = Component("large", "Out of core: the out-of-core preset under a hard memory cap, then on a LocalCluster "
                      "with and without a killed worker", False, run, readme)
