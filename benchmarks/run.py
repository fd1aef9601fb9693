"""Run the benchmark suite and write results.json, results.md and results.png.

    .venv/bin/python -m benchmarks                       # everything on the binder preset
    .venv/bin/python -m benchmarks --preset workshop     # the course geometry (7.38 GB)
    .venv/bin/python -m benchmarks --only sum,crop       # some components
    .venv/bin/python -m benchmarks --report              # only redraw the report

Components (see benchmarks/README.md):

    generate   synthetic generation vs a plain zarr write of the same bytes
    compress   compressors side by side: write MB/s, read-sum MB/s, size
    sum        lazy sum from .zspy and .hspy vs an in-memory numpy sum
    crop       chunk-aligned crop vs one pixel wider: bytes read and time
    course     every solution notebook executed on the ci preset
    lessons    every solution notebook on the workshop preset: time, peak RSS
    workshop   the original workshop sequence, step by step (preset workshop)
    large      the lesson pipeline on the 34 GB preset under a 2 GB hard cap

Results of earlier runs are kept in results.json and updated component by
component, so the report can be built up with --only; each entry records the
machine and its load at the time.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

from .common import DEFAULT_DATA, load_now, machine

RESULTS = Path(__file__).resolve().parent / "results"

COMPONENTS = {
    "generate": "benchmarks.generation",
    "compress": "benchmarks.compression",
    "sum": "benchmarks.lazysum",
    "crop": "benchmarks.crop",
    "course": "benchmarks.course",
    "lessons": "benchmarks.course:run_workshop",
    "workshop": "benchmarks.workshop",
    "large": "benchmarks.large",
}
#: What runs without --only: all but the 34 GB demonstration, which is asked for by name.
DEFAULT = ["generate", "compress", "sum", "crop", "course", "workshop"]


def parse(argv):
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated components: " + ", ".join(COMPONENTS))
    ap.add_argument("--preset", default="binder",
                    help="dataset for generate, sum and crop (default binder); workshop always "
                         "uses 'workshop', large 'large', course 'ci'")
    ap.add_argument("--data", default=str(DEFAULT_DATA),
                    help=f"folder for the benchmark datasets (default {DEFAULT_DATA}, "
                         "or $LAZYSIGNALS_BENCH_DATA)")
    ap.add_argument("--out", default=str(RESULTS), help="folder for results.json/.md/.png")
    ap.add_argument("--memory-cap", default="2G", help="hard cap of the large run (default 2G)")
    ap.add_argument("--fit-subset", type=int, default=2000,
                    help="profiles fitted by HyperSpy's multifit for the side-by-side (default 2000)")
    ap.add_argument("--keep-large", action="store_true",
                    help="keep the large dataset afterwards (it is deleted by default)")
    ap.add_argument("--report", action="store_true", help="only rebuild results.md and results.png")
    return ap.parse_args(argv)


def size_bytes(text: str) -> int:
    text = text.strip().upper()
    mult = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    if text[-1] in mult:
        return int(float(text[:-1]) * mult[text[-1]])
    return int(text)


def main(argv=None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results.setdefault("components", {})
    if not args.report:
        names = args.only.split(",") if args.only else DEFAULT
        unknown = [n for n in names if n not in COMPONENTS]
        if unknown:
            print(f"Unknown component(s) {', '.join(unknown)}; choose from {', '.join(COMPONENTS)}.")
            return 2
        results["machine"] = machine()
        ctx = {"preset": args.preset, "data": args.data, "memory_cap": size_bytes(args.memory_cap),
               "fit_subset": args.fit_subset, "keep_large": args.keep_large, "out": str(out)}
        Path(args.data).mkdir(parents=True, exist_ok=True)
        for name in names:
            print(f"== {name} (load average {load_now()})", flush=True)
            t0 = time.perf_counter()
            module, _, func = COMPONENTS[name].partition(":")
            try:
                res = getattr(importlib.import_module(module), func or "run")(ctx)
            except Exception as e:  # noqa: BLE001 - one failed component must not lose the others
                import traceback

                res = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
            res["wall_seconds"] = round(time.perf_counter() - t0, 1)
            res["load_before"], res["load_after"] = None, load_now()
            res["machine"] = {k: results["machine"][k] for k in ("cores_usable", "ram_gb", "time")}
            # Re-read before writing: another invocation may have added its components meanwhile.
            latest = json.loads(path.read_text()) if path.exists() else {}
            latest.setdefault("components", {})[name] = res
            latest["machine"] = results["machine"]
            results = latest
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(results, indent=1, default=str))
            tmp.replace(path)
            print(f"   {name}: {'done' if res.get('ok') else 'FAILED: ' + str(res.get('error'))} "
                  f"in {res['wall_seconds']} s", flush=True)
    from . import report

    report.write(results, out)
    print(f"Wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'results.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
