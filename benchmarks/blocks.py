"""Chunk-wise block functions against HyperSpy's rebin and map, with the plain lazy sum as the read floor.

All passes read the same file of the preset (``--preset``, default the
manifest's default), one after the other in the same invocation, each in a
fresh process, the best of three runs each:

- the plain lazy sum ``s.sum()``: one pass over the file, the read floor;
- ``s.rebin(scale=(2, 2, 2, 2), rechunk=False)`` + ``change_dtype("uint32")``
  against :func:`lazysignals.blocks.rebin_sum` (same values, checked here);
- ``s.map(scipy.ndimage.center_of_mass, inplace=False)``, lesson 06's way
  (small navigation chunks, float32 output) and
  :func:`lazysignals.blocks.centre_of_mass` (same positions, checked here).

The ratio of every row is its time over the read floor's.
"""

from __future__ import annotations

from .harness import Component, Context, Result, Steps, dataset, ratio, run_child, small_preset, target

FACTORS = (2, 2, 2, 2)
#: Chunk-wise passes at or under this many times the read floor meet the issue's target.
FLOOR_TARGET = 2.0


def child_pass(path: str, which: str) -> dict:
    import hashlib

    import hyperspy.api as hs
    import numpy as np
    from scipy.ndimage import center_of_mass

    from lazysignals import blocks

    s = hs.load(path, lazy=True)
    small_nav = tuple(max(c // 4, 1) for c in s.data.chunksize[:2])

    def build():
        if which == "sum":
            return s.sum()
        if which == "rebin":
            r = s.rebin(scale=FACTORS, rechunk=False)
            r.change_dtype("uint32")
            return r
        if which == "rebin_blocks":
            return blocks.rebin_sum(s, FACTORS, "uint32")
        if which == "map_com":
            return s.map(center_of_mass, inplace=False)
        if which == "map_com_lesson06":
            small = s.rechunk(nav_chunks=small_nav, sig_chunks=-1, inplace=False)
            return small.map(center_of_mass, inplace=False, output_dtype=np.float32, output_signal_size=(2,))
        if which == "com_blocks":
            return blocks.centre_of_mass(s)
        raise ValueError(which)

    steps = Steps()
    for _ in range(3):  # the fastest of three: the first also pays for imports and caches
        with steps(which):
            out = build()
            out.compute(show_progressbar=False)
    data = np.asarray(out.data)
    return {"steps": steps.best(), "sha1": hashlib.sha1(np.ascontiguousarray(data).tobytes()).hexdigest(),
            "values": np.nan_to_num(data.astype(np.float64)).ravel()[:: max(1, data.size // 4096)].tolist()}


PASSES = [
    ("sum", "plain lazy sum s.sum() (read floor)"),
    ("rebin", "HyperSpy rebin(2,2,2,2, rechunk=False) + change_dtype('uint32')"),
    ("rebin_blocks", "blocks.rebin_sum(s, (2,2,2,2), 'uint32')"),
    ("map_com", "HyperSpy map(scipy center_of_mass)"),
    ("map_com_lesson06", "lesson 06: small nav chunks, map(center_of_mass, float32)"),
    ("com_blocks", "blocks.centre_of_mass(s)"),
]


def run(ctx: Context) -> Result:
    import numpy as np

    preset = small_preset(ctx)
    path = dataset(ctx, preset)["zspy"]
    res = {}
    for key, _ in PASSES:
        res[key] = run_child("benchmarks.blocks:child_pass", {"path": str(path), "which": key})
        if not res[key].get("ok"):
            return {"ok": False, "preset": preset, "error": f"{key}: {res[key].get('error')}", "details": res}
    sec = {k: r["steps"][0]["seconds"] for k, r in res.items()}
    rows = [{"name": label, "seconds": round(sec[k], 3), "cpu_seconds": res[k]["steps"][0]["cpu_seconds"],
             "peak_rss_gb": res[k]["steps"][0]["peak_rss_gb"], "ratio": ratio(sec[k], sec["sum"]),
             "load": res[k]["load"]} for k, label in PASSES]
    same_rebin = res["rebin"]["sha1"] == res["rebin_blocks"]["sha1"]
    same_com = bool(np.allclose(res["map_com"]["values"], res["com_blocks"]["values"], rtol=1e-9, atol=1e-9))
    r_rebin, r_rb = ratio(sec["rebin"], sec["sum"]), ratio(sec["rebin_blocks"], sec["sum"])
    r_com, r_cb = ratio(sec["map_com"], sec["sum"]), ratio(sec["com_blocks"], sec["sum"])
    notes = [f"rebin: HyperSpy {r_rebin}x the read floor, chunk-wise {r_rb}x "
             f"({ratio(sec['rebin'], sec['rebin_blocks'])} times faster); "
             f"centre of mass: map {r_com}x, lesson 06's map {ratio(sec['map_com_lesson06'], sec['sum'])}x, "
             f"chunk-wise {r_cb}x ({ratio(sec['map_com'], sec['com_blocks'])} times faster than map)."]
    print(f"   {'pass':<66} {'seconds':>8} {'/ floor':>8}")
    for row in rows:
        print(f"   {row['name']:<66} {row['seconds']:>8.2f} {row['ratio']:>8.2f}")
    print("   " + notes[0], flush=True)
    return {"ok": True, "preset": preset, "rows": rows, "ratio_meaning": "seconds / plain lazy sum seconds",
            "notes": notes, "plot": {"value": "ratio", "label": "time / read floor", "line": FLOOR_TARGET},
            "targets": [target("chunk-wise rebin / read floor", f"<= {FLOOR_TARGET}", r_rb, r_rb <= FLOOR_TARGET),
                        target("chunk-wise centre of mass / read floor", f"<= {FLOOR_TARGET}", r_cb,
                               r_cb <= FLOOR_TARGET),
                        target("chunk-wise rebin equals HyperSpy's rebin + change_dtype", "equal", same_rebin,
                               same_rebin),
                        target("chunk-wise centre of mass equals map(center_of_mass)", "equal", same_com, same_com)]}


COMPONENT = Component("blocks", "Chunk-wise rebin and centre of mass vs HyperSpy's rebin and map, read floor beside",
                      False, run)
