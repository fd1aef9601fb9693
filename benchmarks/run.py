"""Run the benchmark suite and write results.json, results.md and results.png.

    .venv/bin/python -m benchmarks                       # the default components, default preset
    .venv/bin/python -m benchmarks --preset workshop     # generate, compress, sum, crop on 7.38 GB
    .venv/bin/python -m benchmarks --only sum,crop       # some components
    .venv/bin/python -m benchmarks --list                # the components
    .venv/bin/python -m benchmarks --report --readme     # only redraw the report (and the tables of
                                                         # README.md and docs/AGENDAS.md)

The components are the modules of this package that declare a ``COMPONENT``
(:class:`benchmarks.harness.Component`). Results of earlier runs are kept in
results.json and updated component by component, so the report can be built
up with --only; each entry records the machine and its load at the time.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

from .harness import REPO, Component, default_data, load_now, machine

RESULTS = Path(__file__).resolve().parent / "results"
#: The documents whose ``<!-- benchmark:NAME -->`` tables --readme rewrites.
DOCUMENTS = ("README.md", "docs/AGENDAS.md")


def components() -> dict[str, Component]:
    """Every component of the package, by name (its module's name), in name order."""
    found = {}
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name.startswith("_"):  # __main__ runs the suite when imported
            continue
        comp = getattr(importlib.import_module(f"{__package__}.{info.name}"), "COMPONENT", None)
        if comp is not None:
            if comp.name != info.name:
                raise RuntimeError(f"benchmarks/{info.name}.py declares the component '{comp.name}': "
                                   "name the module after its component.")
            found[comp.name] = comp
    return dict(sorted(found.items()))


def parse(argv, comps):
    from dask.utils import parse_bytes

    from lazysignals import manifest

    default = manifest.default_preset()
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated components: " + ", ".join(comps))
    ap.add_argument("--list", action="store_true", help="list the components and exit")
    ap.add_argument("--preset", default=default,
                    help=f"dataset of generate, compress, sum and crop (default {default}); the others use "
                         "the manifest's preset for their role (grading, workshop, out_of_core)")
    ap.add_argument("--data", default=str(default_data()),
                    help=f"folder for the benchmark datasets (default {default_data()}, or $LAZYSIGNALS_BENCH_DATA)")
    ap.add_argument("--out", default=str(RESULTS), help="folder for results.json/.md/.png")
    ap.add_argument("--memory-cap", default="2GB", type=parse_bytes,
                    help="hard cap of the out-of-core run (default 2GB; 2GiB is 2**31 bytes)")
    ap.add_argument("--fit-subset", type=int, default=2000,
                    help="profiles fitted by HyperSpy's multifit for the side-by-side (default 2000)")
    ap.add_argument("--keep-large", action="store_true",
                    help="keep the out-of-core dataset afterwards (it is deleted by default)")
    ap.add_argument("--no-cluster", action="store_true",
                    help="large: only the threaded run under the cap, not the LocalCluster runs (with and "
                         "without a killed worker)")
    ap.add_argument("--large-steps", default=None,
                    help="large: the pipeline steps of every run, comma-separated (default: all of "
                         "plot,adf,rebin,com,crops,fit; e.g. adf,rebin,com to save time)")
    ap.add_argument("--report", action="store_true", help="only rebuild results.md and results.png")
    ap.add_argument("--readme", action="store_true",
                    help="also rewrite the tables of README.md and docs/AGENDAS.md from the results")
    return ap.parse_args(argv)


def _save(path: Path, name: str, res: dict, machine_info: dict) -> dict:
    """Add one component's result to results.json (re-read: another run may have added some)."""
    results = json.loads(path.read_text()) if path.exists() else {}
    results.setdefault("components", {})[name] = res
    results["machine"] = machine_info
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, default=str))
    tmp.replace(path)
    return results


def run_component(comp: Component, ctx: dict) -> dict:
    load_before = load_now()
    t0 = time.perf_counter()
    try:
        res = comp.run(ctx)
    except Exception as e:  # noqa: BLE001 - one failed component must not lose the others
        import traceback

        res = {"ok": False, "error": f"{type(e).__name__}: {e}", "details": {"traceback": traceback.format_exc()}}
    res.update(wall_seconds=round(time.perf_counter() - t0, 1), load_before=load_before, load_after=load_now())
    return res


def main(argv=None) -> int:
    comps = components()
    args = parse(sys.argv[1:] if argv is None else argv, comps)
    if args.list:
        for c in comps.values():
            print(f"{c.name:<10} {'(default) ' if c.default else '          '}{c.title}")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {"components": {}}
    if not args.report:
        names = args.only.split(",") if args.only else [n for n, c in comps.items() if c.default]
        unknown = [n for n in names if n not in comps]
        if unknown:
            print(f"Unknown component(s) {', '.join(unknown)}; choose from {', '.join(comps)}.")
            return 2
        info = machine()
        ctx = {"preset": args.preset, "data": args.data, "out": str(out), "memory_cap": args.memory_cap,
               "fit_subset": args.fit_subset, "keep_large": args.keep_large,
               "cluster": not args.no_cluster,
               "large_steps": args.large_steps.split(",") if args.large_steps else None}
        Path(args.data).mkdir(parents=True, exist_ok=True)
        for name in names:
            print(f"== {name} (load average {load_now()})", flush=True)
            res = run_component(comps[name], ctx)
            res["machine"] = {k: info[k] for k in ("cores_usable", "ram_gb", "time")}
            results = _save(path, name, res, info)
            print(f"   {name}: {'done' if res.get('ok') else 'FAILED: ' + str(res.get('error'))} "
                  f"in {res['wall_seconds']} s", flush=True)
    from . import report

    report.write(results, comps, out)
    print(f"Wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'results.png'}")
    if args.readme:
        for doc in DOCUMENTS:
            changed = report.update_readme(results, comps, REPO / doc)
            print(f"{doc}: rewrote the tables of {', '.join(changed) or 'no component'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
