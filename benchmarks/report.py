"""Turn results.json into results.md (tables) and results.png (one panel per component)."""

from __future__ import annotations

from pathlib import Path

TITLES = {
    "generate": "(a) Synthetic generation vs a plain zarr write of the same bytes",
    "compress": "Compressors side by side (write, read-and-sum, size)",
    "sum": "(b) Lazy sum from .zspy and .hspy vs numpy in memory",
    "crop": "(c) Chunk-aligned crop vs one pixel wider",
    "course": "(d) The whole course on the ci preset",
    "lessons": "(d') Every lesson on the workshop preset (7.38 GB): time and peak RSS",
    "workshop": "(f) The original workshop sequence on the workshop preset",
    "large": "(e) Out of core: 34 GB under a hard memory cap",
}
ORDER = ["generate", "compress", "sum", "crop", "course", "lessons", "workshop", "large"]
SKIP = {"key", "not_in_whole", "error", "ok" }


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 100:
            return f"{v:.0f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.3g}"
    return str(v).replace("|", "\\|")


def table(rows: list) -> list[str]:
    cols = []
    for r in rows:
        for k in r:
            if k not in cols and k not in SKIP:
                cols.append(k)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return lines


def markdown(results: dict) -> str:
    m = results.get("machine", {})
    out = ["# Benchmark results", "",
           f"Machine: {m.get('cores_usable')} usable cores ({m.get('cores_logical')} logical), "
           f"{m.get('ram_gb')} GiB RAM, load average at the last start {m.get('load_average')}; "
           f"HyperSpy {m.get('hyperspy')}, RosettaSciIO {m.get('rsciio')}, dask {m.get('dask')}, "
           f"zarr {m.get('zarr')}, numcodecs {m.get('numcodecs')}, numpy {m.get('numpy')}. "
           "The machine is shared: compare only numbers of the same run (ratios), "
           "and read CPU seconds beside wall seconds.", ""]
    targets = []
    for name in ORDER:
        res = results.get("components", {}).get(name)
        if not res:
            continue
        mm = res.get("machine", {})
        out += [f"## {TITLES[name]}", "",
                f"Run {mm.get('time')}, preset `{res.get('preset', '')}`, "
                f"{res.get('wall_seconds')} s in all, load average after {res.get('load_after')}. "
                f"Ratio: {res.get('ratio_meaning', '')}.", ""]
        if not res.get("ok") and res.get("error"):
            out += [f"**Failed:** {res['error']}", ""]
        if res.get("rows"):
            out += table(res["rows"]) + [""]
        if name == "workshop" and res.get("multifit"):
            mf = res["multifit"]
            out += [f"multifit vs fast fit on the same {mf['profiles']} profiles ({mf['points_per_profile']} points, "
                    f"same starting values): multifit {mf['multifit_fits_per_s']} fits/s, fast fit "
                    f"{mf['fast_fits_per_s']} fits/s ({mf['speedup']}x); "
                    f"{mf['share_of_profiles_within_tolerance']:.2%} of profiles agree within "
                    f"{mf['tolerance']:g} (largest relative difference: "
                    + ", ".join(f"{k} {v['max']:.2g}" for k, v in mf["relative_differences"].items()) + ").", ""]
        if name == "large" and res.get("memory_cap"):
            c = res["memory_cap"]
            out += [f"Memory cap: {c.get('method')}, limit {c.get('limit_gb')} GB; cgroup peak "
                    f"(memory.max_usage_in_bytes, includes reclaimable page cache) {c.get('cgroup_max_usage_gb')} GB, "
                    f"OOM kills {c.get('cgroup_oom_kills')}; finished: {_fmt(res.get('finished'))}; "
                    f"dataset {res.get('uncompressed_gb')} GB uncompressed, {res.get('stored_gb')} GB on disk, "
                    f"made in {res.get('generate_seconds')} s.", ""]
        for t in res.get("targets", []):
            targets.append({"component": name, **t})
    if targets:
        out += ["## Targets", ""]
        out += table([{"component": t["component"], "what": t["what"], "target": t["target"],
                       "measured": t["measured"],
                       "met": {True: "met", False: "NOT met", None: "(information)"}[t["met"]]}
                      for t in targets]) + [""]
    return "\n".join(out)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comps = [n for n in ORDER if results.get("components", {}).get(n, {}).get("rows")]
    if not comps:
        return
    fig, axes = plt.subplots(len(comps), 1, figsize=(9, 2.4 * len(comps) + 0.5), squeeze=False)
    for ax, name in zip(axes[:, 0], comps):
        res = results["components"][name]
        rows = res["rows"]
        labels = [str(r.get("name"))[:60] for r in rows]
        if name == "compress":
            vals, xlabel = [r["read_sum_MB/s"] for r in rows], "read + sum MB/s (uncompressed)"
        elif name == "workshop":
            rows = [r for r in rows if r.get("original_s")]
            labels = [str(r.get("name"))[:60] for r in rows]
            vals, xlabel = [r["ratio"] for r in rows], "time / original notebook (equal work); target 0.5"
        elif name == "large":
            vals, xlabel = [r["peak_rss_gb"] for r in rows], f"peak RSS GB (cap {res.get('cap_gb')} GB)"
        else:
            vals, xlabel = [r.get("seconds") for r in rows], "seconds"
        vals = [v if isinstance(v, (int, float)) else 0 for v in vals]
        ax.barh(range(len(vals)), vals, color="tab:blue")
        ax.set_yticks(range(len(vals)))
        ax.set_yticklabels(labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_title(TITLES[name], fontsize=9, loc="left")
        if name == "workshop":
            ax.axvline(0.5, color="tab:red", ls="--", lw=1)
        if name == "large" and res.get("cap_gb"):
            ax.axvline(res["cap_gb"], color="tab:red", ls="--", lw=1)
    m = results.get("machine", {})
    fig.suptitle(f"{m.get('cores_usable')} cores, {m.get('ram_gb')} GiB RAM, shared machine", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict, out) -> None:
    out = Path(out)
    (out / "results.md").write_text(markdown(results))
    plot(results, out / "results.png")
