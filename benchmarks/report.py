"""Turn results.json into results.md (tables), results.png (one panel per component)
and the performance tables of the top-level README.

A component's README table stands between ``<!-- benchmark:NAME -->`` and
``<!-- /benchmark:NAME -->`` in README.md and is made by the component's
``readme(result)``; ``python -m benchmarks --report --readme`` rewrites every
table whose component has a result, so no figure is copied by hand.
"""

from __future__ import annotations

import re
from pathlib import Path

SKIP = {"key", "not_in_whole", "error", "ok"}
MET = {True: "met", False: "NOT met", None: "(information)"}


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
        cols += [k for k in r if k not in cols and k not in SKIP]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    return lines + ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows]


def machine_line(m: dict) -> str:
    return (f"Machine: {m.get('cores_usable')} usable cores ({m.get('cores_logical')} logical), "
            f"{m.get('ram_gb')} GiB RAM, load average at the last start {m.get('load_average')}; "
            f"HyperSpy {m.get('hyperspy')}, RosettaSciIO {m.get('rsciio')}, dask {m.get('dask')}, "
            f"zarr {m.get('zarr')}, numcodecs {m.get('numcodecs')}, numpy {m.get('numpy')}.")


def markdown(results: dict, comps: dict) -> str:
    out = ["# Benchmark results", "", machine_line(results.get("machine", {})) + " The machine is shared: "
           "compare only numbers of the same run (ratios), and read CPU seconds beside wall seconds.", ""]
    targets = []
    for name, comp in comps.items():
        res = results.get("components", {}).get(name)
        if not res:
            continue
        mm = res.get("machine", {})
        out += [f"## {comp.title}", "",
                f"Run {mm.get('time')}, preset `{res.get('preset', '')}`, {res.get('wall_seconds')} s in all, "
                f"load average {res.get('load_before')} before, {res.get('load_after')} after. "
                f"Ratio: {res.get('ratio_meaning', '')}.", ""]
        if not res.get("ok") and res.get("error"):
            out += [f"**Failed:** {res['error']}", ""]
        if res.get("rows"):
            out += table(res["rows"]) + [""]
        out += [n for note in res.get("notes", []) for n in (note, "")]
        targets += [{"component": name, **t} for t in res.get("targets", [])]
    if targets:
        out += ["## Targets", ""]
        out += table([dict(t, met=MET[t["met"]]) for t in targets]) + [""]
    return "\n".join(out)


def plot(results: dict, comps: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [(n, results["components"][n]) for n in comps
             if results.get("components", {}).get(n, {}).get("rows")]
    if not shown:
        return
    fig, axes = plt.subplots(len(shown), 1, figsize=(9, 2.4 * len(shown) + 0.5), squeeze=False)
    for ax, (name, res) in zip(axes[:, 0], shown):
        how = res.get("plot") or {"value": "seconds", "label": "seconds"}
        rows = [r for r in res["rows"] if isinstance(r.get(how["value"]), (int, float))]
        ax.barh(range(len(rows)), [r[how["value"]] for r in rows], color="tab:blue")
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([str(r.get("name"))[:60] for r in rows], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(how["label"], fontsize=8)
        ax.set_title(comps[name].title, fontsize=9, loc="left")
        if how.get("line") is not None:
            ax.axvline(how["line"], color="tab:red", ls="--", lw=1)
    m = results.get("machine", {})
    fig.suptitle(f"{m.get('cores_usable')} cores, {m.get('ram_gb')} GiB RAM, shared machine", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict, comps: dict, out) -> None:
    out = Path(out)
    (out / "results.md").write_text(markdown(results, comps))
    plot(results, comps, out / "results.png")


def readme_block(name: str, res: dict, lines: list[str]) -> str:
    m = res.get("machine", {})
    said = (f"<!-- benchmark:{name} -->\n" + "\n".join(lines) + "\n\n"
            f"(`python -m benchmarks --only {name}`, preset `{res.get('preset')}`, {m.get('time')}, "
            f"{m.get('cores_usable')} cores, {m.get('ram_gb')} GiB RAM, load average {res.get('load_before')} "
            f"before, {res.get('load_after')} after, {res.get('wall_seconds')} s in all.)\n"
            f"<!-- /benchmark:{name} -->")
    return said


def update_readme(results: dict, comps: dict, path: Path) -> list[str]:
    """Rewrite the README's table of every component with a result and a ``readme``; return their names."""
    text, changed = Path(path).read_text(), []
    for name, comp in comps.items():
        res = results.get("components", {}).get(name)
        if not (comp.readme and res and res.get("ok")):
            continue
        block = re.compile(rf"<!-- benchmark:{name} -->.*?<!-- /benchmark:{name} -->", re.S)
        if block.search(text):
            text = block.sub(lambda _m: readme_block(name, res, comp.readme(res)), text)
            changed.append(name)
    Path(path).write_text(text)
    return changed
