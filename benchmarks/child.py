"""Run one benchmark function in this (fresh) process and print its result.

Usage: ``python -m benchmarks.child module:function '{"json": "arguments"}'``.
The last line of output is ``BENCHMARK-RESULT {json}``, with the function's
result plus the peak RSS of the whole process and, on failure, the error.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback


def main(argv):
    target, args = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    import matplotlib

    matplotlib.use("Agg")
    from .common import GB, _status

    t0 = time.perf_counter()
    try:
        mod, func = target.split(":")
        result = getattr(importlib.import_module(mod), func)(**args) or {}
        result["ok"] = result.get("ok", True)
    except BaseException as e:  # noqa: BLE001 - report, whatever it was
        result = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
    result["process_seconds"] = round(time.perf_counter() - t0, 3)
    # VmHWM may have been reset between steps; steps report their own peaks.
    result["process_peak_rss_gb_last_step"] = round(_status("VmHWM") / GB, 3)
    print("BENCHMARK-RESULT " + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
