"""Hidden tests in two halves, so that a learner's code cannot change their verdict.

A judged test cell ends with ``lazysignals.judges.probe(LESSON, GRADE_ID, globals())``.

- The **probe** runs in the learner's kernel. It calls the learner's function
  on inputs that the grader drew at grading time (from a seed the kernel
  never sees) and exports what came back as plain data (numbers, arrays,
  shapes, dtypes, the chunks the result reads): never pickles.
- The **judge** runs in the grading process, which never runs the learner's
  code. It reads the inputs it wrote itself, computes the reference values
  and decides. Its verdict is what nbgrader records for the cell
  (:class:`lazysignals.sandbox.SandboxedExecute`).

Outside grading (the instructor running a solution notebook, nbval), the
probe makes inputs from a fixed seed and judges at once, so the solutions
check the judges.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

import numpy as np

MIME = "application/vnd.lazysignals.probe+json"
INPUTS_ENV = "LAZYSIGNALS_INPUTS"
_KINDS = "biuf"


class Failed(AssertionError):
    """A judge's verdict: what is wrong, in words a learner understands."""


# ------------------------------------------------------------ plain data

def pack(value):
    """JSON-able copy of numbers, strings, lists, dicts and numeric arrays."""
    if isinstance(value, dict):
        return {str(k): pack(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [pack(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic)) and np.asarray(value).dtype.kind in _KINDS:
        a = np.ascontiguousarray(value)
        return {"__nd__": a.dtype.str, "shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode()}
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


def unpack(value):
    """Inverse of :func:`pack`; arrays only of numeric dtypes."""
    if isinstance(value, dict):
        if "__nd__" in value:
            dtype = np.dtype(str(value["__nd__"]))
            if dtype.kind not in _KINDS:
                raise ValueError(f"dtype {dtype} is not allowed")
            shape = tuple(int(n) for n in value["shape"])
            return np.frombuffer(base64.b64decode(value["b64"]), dtype=dtype).reshape(shape)
        return {k: unpack(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unpack(v) for v in value]
    return value


def _attempt(fn, *args):
    """Call the learner's function; an exception becomes a message."""
    try:
        return fn(*args), None
    except Exception as e:  # noqa: BLE001 (any error of the learner's code)
        return None, f"{type(e).__name__}: {e}"


def source_chunks(result, source) -> list:
    """Indices of the chunks of ``source`` (a dask array) that ``result`` reads."""
    from dask.core import flatten
    from dask.optimization import cull

    data = getattr(result, "data", result)
    if not hasattr(data, "__dask_graph__"):
        return []
    needed, _ = cull(dict(data.__dask_graph__()), list(flatten(data.__dask_keys__())))
    return sorted(list(k[1:]) for k in needed if isinstance(k, tuple) and k and k[0] == source.name)


def _is_lazy(obj) -> bool:
    import dask.array as da

    return bool(getattr(obj, "_lazy", False)) and isinstance(getattr(obj, "data", None), da.Array)


def _unreadable(shape, dtype, chunks):
    """A lazy array whose every read raises: a function that computes fails."""
    import dask.array as da

    def never(block_info=None):
        raise RuntimeError("the data was read: this must be worked out from the axes alone")

    return da.map_blocks(never, dtype=dtype, chunks=da.core.normalize_chunks(chunks, shape),
                         meta=np.empty((0,) * len(shape), dtype=dtype))


def _signal(array, chunks, scale=1.0, offset=0.0):
    import dask.array as da
    import hyperspy.api as hs

    data = array if isinstance(array, da.Array) else da.from_array(array, chunks=chunks)
    sig = hs.signals.Signal2D(data).as_lazy()
    for ax in sig.axes_manager.signal_axes:
        ax.scale, ax.offset = float(scale), float(offset)
    return sig


# ---------------------------------------------------------------- judges

class Judge:
    """One hidden test: ``inputs(rng)`` and ``judge`` run in the grader, ``probe`` in the kernel."""

    lesson = ""
    grade_id = ""
    function = ""

    def inputs(self, rng) -> dict:
        raise NotImplementedError

    def probe(self, fn, inp: dict) -> dict:
        raise NotImplementedError

    def judge(self, inp: dict, out: dict) -> None:
        raise NotImplementedError


class QuarterCrop(Judge):
    lesson, grade_id, function = "07_cropping", "test_quarter_crop", "quarter_crop"

    def inputs(self, rng):
        out = {}
        for k in range(3):
            c = int(rng.integers(3, 13))
            ny, nx = int(rng.integers(2, 5)), int(rng.integers(2, 6))
            out[f"arr{k}"] = rng.integers(0, 1000, size=(ny, nx, 4 * c, 4 * c)).astype(np.uint16)
            out[f"chunk{k}"] = c
            out[f"scale{k}"] = float(rng.uniform(0.05, 0.5))
            out[f"offset{k}"] = float(-2 * c * out[f"scale{k}"] + rng.uniform(-0.1, 0.1))
        return out

    def probe(self, fn, inp):
        res = []
        for k in range(3):
            c = int(inp[f"chunk{k}"])
            sig = _signal(inp[f"arr{k}"], (2, 2, c, c), inp[f"scale{k}"], inp[f"offset{k}"])
            crop, err = _attempt(fn, sig)
            if err:
                res.append({"error": err})
                continue
            one = getattr(crop, "data", np.zeros(0))[0, 0]
            res.append({"lazy": _is_lazy(crop), "shape": list(np.shape(getattr(crop, "data", None))),
                        "offsets": [float(a.offset) for a in crop.axes_manager.signal_axes],
                        "chunks": source_chunks(crop, sig.data),
                        "values": np.asarray(one.compute() if hasattr(one, "compute") else one)})
        return {"cases": res}

    def judge(self, inp, out):
        for k, got in enumerate(out["cases"]):
            if "error" in got:
                raise Failed(f"quarter_crop raised {got['error']}")
            arr, c = inp[f"arr{k}"], int(inp[f"chunk{k}"])
            ny, nx, side = arr.shape[0], arr.shape[1], arr.shape[2]
            if not got["lazy"]:
                raise Failed("quarter_crop must return a lazy signal (do not compute it)")
            if tuple(got["shape"]) != (ny, nx, side // 2, side // 2):
                raise Failed(f"on a {side} x {side} detector with chunks of {c}, the crop has shape "
                             f"{tuple(got['shape'])}, not {(ny, nx, side // 2, side // 2)}")
            want = sorted([i, j, a, b] for i in range(-(-ny // 2)) for j in range(-(-nx // 2))
                          for a in (1, 2) for b in (1, 2))
            if [list(map(int, x)) for x in got["chunks"]] != want:
                raise Failed(f"on a detector with chunks of {c}, the crop reads {len(got['chunks'])} "
                             f"chunks of the data instead of the {len(want)} of the central quarter: "
                             "align the crop to the chunk edges")
            start = float(inp[f"offset{k}"]) + c * float(inp[f"scale{k}"])
            if not np.allclose(got["offsets"], [start, start]):
                raise Failed("the crop's axes do not start at the first pixel of the second chunk")
            if not np.array_equal(got["values"], arr[0, 0, c:3 * c, c:3 * c]):
                raise Failed("the cropped values are not the central quarter of the pattern")


class FractionRead(Judge):
    lesson, grade_id, function = "07_cropping", "test_fraction_read", "fraction_read"

    def inputs(self, rng):
        size = rng.integers(1, 400, 200)
        chunk = np.array([rng.integers(1, n + 1) for n in size])
        start = np.array([rng.integers(0, n) for n in size])
        stop = np.array([rng.integers(a + 1, n + 1) for a, n in zip(start, size)])
        return {"cases": np.stack([start, stop, chunk, size], axis=1).astype(np.int64)}

    def probe(self, fn, inp):
        got = []
        for start, stop, chunk, size in inp["cases"].tolist():
            v, err = _attempt(fn, start, stop, chunk, size)
            if err:
                return {"error": err}
            got.append(float(v))
        return {"got": np.asarray(got, dtype=float)}

    def judge(self, inp, out):
        if "error" in out:
            raise Failed(f"fraction_read raised {out['error']}")
        for (start, stop, chunk, size), got in zip(inp["cases"].tolist(), out["got"]):
            touched = (stop - 1) // chunk - start // chunk + 1
            want = touched / -(-size // chunk)
            if not np.isclose(got, want):
                raise Failed(f"fraction_read({start}, {stop}, {chunk}, {size}) gave {got:.4g}; "
                             "count the chunks the slice touches, the last one may be shorter")


def _moments(x, y):
    """Area (sum times bin width), weighted standard deviation and weighted mean of one profile."""
    total = y.sum()
    centre = (x * y).sum() / total
    return total * (x[1] - x[0]), np.sqrt(((x - centre) ** 2 * y).sum() / total), centre


class StartingValues(Judge):
    lesson, grade_id, function = "08_fitting", "test_starting_values", "starting_values"

    def inputs(self, rng):
        out = {}
        for k, kind in enumerate(("gaussian", "disk", "two peaks", "disk", "two peaks", "gaussian")):
            n = int(rng.integers(40, 160))
            scale = float(10 ** rng.uniform(-2, 1))
            x = float(rng.uniform(-50, 50)) + scale * np.arange(n)
            mid, width = x[n // 2] + scale * rng.uniform(-n / 8, n / 8), scale * n * rng.uniform(0.05, 0.1)
            if kind == "gaussian":
                y = np.exp(-0.5 * ((x - mid) / width) ** 2)
            elif kind == "disk":  # the projection of a uniform disk: a half ellipse
                y = np.sqrt(np.clip((2 * width) ** 2 - (x - mid) ** 2, 0, None)) / width
            else:  # a main peak with a weaker one on one side: the mean is not the peak
                side = rng.choice([-1, 1]) * 2.5 * width
                y = np.exp(-0.5 * ((x - mid) / width) ** 2) + 0.5 * np.exp(-0.5 * ((x - mid - side) / width) ** 2)
            y = rng.poisson(y * rng.uniform(50, 500)).astype(float) if k >= 3 else y * rng.uniform(1, 1e4)
            out[f"x{k}"], out[f"y{k}"] = x, y
        return out

    def probe(self, fn, inp):
        got = []
        for k in range(len(inp) // 2):
            v, err = _attempt(fn, inp[f"x{k}"].copy(), inp[f"y{k}"].copy())
            if err:
                return {"error": err}
            try:
                got.append([float(a) for a in np.asarray(v, dtype=float).ravel()])
            except (TypeError, ValueError):
                return {"error": f"it returned {type(v).__name__} {str(v)[:80]}, not three numbers"}
        return {"got": got}

    def judge(self, inp, out):
        for k, got in enumerate(out["got"]):
            x, y = inp[f"x{k}"], inp[f"y{k}"]
            where = f"on a fresh profile of {x.size} points (x from {x[0]:.4g} to {x[-1]:.4g})"
            if len(got) != 3:
                raise Failed(f"starting_values returned {len(got)} numbers {where}: return (A, sigma, centre)")
            A, sigma, centre = _moments(x, y)
            gA, gs, gc = got
            if not np.isclose(gA, A, rtol=0.01) and any(np.isclose(v, A, rtol=0.01) for v in (gs, gc)):
                raise Failed(f"starting_values {where} has the right numbers in another order: return (A, sigma, centre)")
            if not np.isclose(gc, centre, rtol=0, atol=0.01 * sigma):
                hint = ("that is where the profile is highest; the centre is the intensity-weighted mean of x"
                        if np.isclose(gc, x[np.argmax(y)]) else "weight each x by the counts at x")
                raise Failed(f"the centre {where} is {gc:.5g}: {hint}")
            if not np.isclose(gs, sigma, rtol=0.01):
                hint = ("that is the variance: take its square root" if np.isclose(gs, sigma ** 2, rtol=0.01)
                        else "it is the spread of x weighted by the counts, about the centre")
                raise Failed(f"sigma {where} is {gs:.5g}: {hint}")
            if not np.isclose(gA, A, rtol=0.01):
                hint = ("mind the bin width: the area is the counts times the spacing of x"
                        if np.isclose(gA, y.sum(), rtol=0.01) else "the area is the sum of the counts times the bin width")
                raise Failed(f"the area A {where} is {gA:.5g}: {hint}")


def _disk_data(rng, c, ny, nx):
    """Uniform disks of radius c/2 at known shifts along kx, Poisson noise, a hot and a dead pixel."""
    D = 4 * c
    shift = rng.uniform(-1.5, 1.5, (ny, nx))
    k = np.arange(D)
    rr = np.hypot(k[None, None, None, :] - (D / 2 + shift)[..., None, None], k[None, None, :, None] - D / 2)
    lam = float(rng.uniform(20, 40)) * np.clip(c / 2 - rr + 0.5, 0, 1) + 0.5
    data = rng.poisson(lam).astype(np.uint16)
    hot = [int(v) for v in rng.integers(c, 3 * c, 2)]
    hot[1] = int(D // 2 + rng.choice([-1, 1]) * int(rng.integers(c // 4, c // 2 + 1)))  # on a flank of the disk
    data[:, :, int(rng.integers(c, 3 * c)), int(rng.integers(c, 3 * c))] = 0
    data[:, :, hot[0], hot[1]] = int(rng.integers(1500, 4000))
    return data, shift


class CentreMap(Judge):
    lesson, grade_id, function = "08_fitting", "test_centre_map", "centre_map"

    def inputs(self, rng):
        c, nc = int(rng.choice([6, 7, 9, 10, 11])), int(rng.integers(2, 5))  # never the chunk of a preset (8)
        ny, nx = int(rng.integers(5, 10)), int(rng.integers(5, 10))
        data, shift = _disk_data(rng, c, ny, nx)
        return {"arr": data, "shift": shift, "chunk": c, "nav_chunk": nc, "scale": float(rng.uniform(0.05, 0.4))}

    def probe(self, fn, inp):
        arr, c, nc, scale = inp["arr"], int(inp["chunk"]), int(inp["nav_chunk"]), float(inp["scale"])
        sig = _signal(arr, (nc, nc, c, c), scale, -arr.shape[-1] / 2 * scale)
        am = sig.axes_manager
        for ax, name, units in zip(am.navigation_axes + am.signal_axes, ("x", "y", "kx", "ky"), ("nm", "nm", "mrad", "mrad")):
            ax.name, ax.units = name, units
        sig.metadata.set_item("Acquisition_instrument.TEM.convergence_angle", c / 2 * scale)
        got, err = _attempt(fn, sig)
        if err:
            return {"error": err}
        data = getattr(got, "data", None)
        values, err = _attempt(lambda d: np.asarray(d.compute() if hasattr(d, "compute") else d, dtype=float), data)
        if err:
            return {"error": err}
        return {"lazy": _is_lazy(got), "chunks": source_chunks(got, sig.data), "values": values}

    def judge(self, inp, out):
        shift, c, scale = inp["shift"], int(inp["chunk"]), float(inp["scale"])
        ny, nx = shift.shape
        where = f"on a fresh dataset ({nx} x {ny} positions, detector chunks of {c} pixels)"
        if not out["lazy"]:
            raise Failed("centre_map must return a lazy signal: only the small mask may be computed")
        if not out["chunks"]:
            raise Failed(f"{where} the map is not built from the data: keep every step lazy, compute nothing "
                         "but the mask")
        got = np.asarray(out["values"], dtype=float)
        if got.shape != shift.shape:
            raise Failed(f"{where} the map has shape {got.shape}, not (y, x) = {shift.shape}")
        nav = -(-np.array(inp["arr"].shape[:2]) // int(inp["nav_chunk"]))
        want = sorted([i, j, a, b] for i in range(nav[0]) for j in range(nav[1]) for a in (1, 2) for b in (1, 2))
        if [list(map(int, k)) for k in out["chunks"]] != want:
            raise Failed(f"{where} the map reads {len(out['chunks'])} chunks instead of the {len(want)} of the "
                         "central quarter of the detector: crop along the chunk edges of the signal axes")
        ok = np.isfinite(got)
        r = np.corrcoef(got[ok], shift[ok])[0, 1] if ok.sum() > 2 and got[ok].std() > 0 else 0.0
        if r < 0.95:
            raise Failed(f"{where} the map does not follow the disk's shifts along kx (correlation {r:.2f}): "
                         "sum the crop over ky and fit the profile along kx")
        if np.nanmedian(np.abs(got - shift)) < 0.1 and not np.isclose(scale, 1, atol=0.1):
            raise Failed(f"{where} the centres are in detector pixels: give them in the units of the kx axis (mrad)")
        err = np.nanmedian(np.abs(got - scale * shift)) / scale
        if not err < 0.3:
            raise Failed(f"{where} the centres are off by {err:.2f} pixels on average: mask the stuck pixels "
                         "before summing, and give the centres in the units of the kx axis (mrad)")


def _logged_read(block_info=None, *, arr, folder):
    """One block of ``arr``; leaves a file named after the chunk and the reading process in ``folder``."""
    where = block_info[None]
    name = "-".join(str(i) for i in where["chunk-location"])
    (Path(folder) / f"{name}.{os.getpid()}.{secrets.token_hex(6)}").touch()
    return arr[tuple(slice(a, b) for a, b in where["array-location"])]


class ComputeOnCluster(Judge):
    lesson, grade_id, function = "09_scaling_out", "test_compute_on_cluster", "compute_on_cluster"

    def inputs(self, rng):
        ny, nx, ky, kx = (int(v) for v in rng.integers(6, 15, 4))
        chunks = [-(-n // int(rng.integers(2, 4))) for n in (ny, nx, ky, kx)]  # 2 or 3 chunks per axis
        x0, y0 = int(rng.integers(0, kx // 2)), int(rng.integers(0, ky // 2))
        return {"arr": rng.poisson(4.0, size=(ny, nx, ky, kx)).astype("uint16"), "chunks": np.asarray(chunks),
                "crop": np.asarray([x0, int(rng.integers(x0 + 1, kx + 1)), y0, int(rng.integers(y0 + 1, ky + 1))])}

    def probe(self, fn, inp):
        import shutil
        import tempfile

        import dask.array as da

        try:
            from distributed import default_client

            client = default_client()
        except Exception:  # noqa: BLE001 (no client, or distributed missing)
            return {"error": "no cluster is running: run the cells that start the LocalCluster and the Client"}
        arr, folder = inp["arr"], tempfile.mkdtemp(prefix="lsreads-")
        chunks = da.core.normalize_chunks(tuple(int(c) for c in inp["chunks"]), arr.shape)
        data = da.map_blocks(_logged_read, dtype=arr.dtype, chunks=chunks, arr=arr, folder=folder,
                             meta=np.empty((0,) * 4, dtype=arr.dtype))
        sig = _signal(data, None)
        x0, x1, y0, y1 = (int(v) for v in inp["crop"])
        signals = [sig.sum(axis="sig"), sig.isig[x0:x1, y0:y1].mean(axis="nav"), (sig * 2).max(axis="nav")]
        got, err = _attempt(fn, client, signals)
        if err:
            return {"error": err}
        reads = [p.name.split(".") for p in Path(folder).iterdir()]
        shutil.rmtree(folder, ignore_errors=True)
        values, err = _attempt(lambda g: [np.asarray(v, dtype=float) for v in g], got)
        if err or len(values) != 3:
            return {"error": f"it should return a list of 3 arrays, got {str(got)[:80]}"}
        return {"lazy": [_is_lazy(v) for v in signals], "values": values, "chunks": int(data.npartitions),
                "reads": [r[0] for r in reads], "in_notebook": sum(r[1] == str(os.getpid()) for r in reads)}

    def judge(self, inp, out):
        arr = inp["arr"].astype(float)
        x0, x1, y0, y1 = (int(v) for v in inp["crop"])
        where = f"on a fresh dataset of shape {arr.shape} in {out['chunks']} chunks"
        if not all(out["lazy"]):
            raise Failed("the signals are no longer lazy: HyperSpy's compute() works in place; compute their "
                         ".data through the client and leave the signals as they are")
        wants = [arr.sum(axis=(2, 3)), arr[:, :, y0:y1, x0:x1].mean(axis=(0, 1)), (2 * arr).max(axis=(0, 1))]
        for i, (got, want) in enumerate(zip(out["values"], wants)):
            if np.shape(got) != want.shape or not np.allclose(got, want):
                raise Failed(f"{where} result {i + 1} of 3 is not the value of signal {i + 1}: return the "
                             "arrays in the order of the signals")
        if out["in_notebook"]:
            raise Failed(f"{where} {out['in_notebook']} chunk(s) were read in the notebook's own process, not "
                         "by the cluster's workers: compute through the client")
        counts = np.unique(out["reads"], return_counts=True)[1]
        if len(counts) != out["chunks"] or counts.max() > 1:
            raise Failed(f"{where} the workers read {len(out['reads'])} chunks for {out['chunks']} chunks of data: "
                         "compute the signals together, in one call, so that the chunks they share are read once")


class BlocksForLimit(Judge):
    lesson, grade_id, function = "09_scaling_out", "test_blocks_for_limit", "blocks_for_limit"
    _dtypes = ("uint8", "uint16", "float32", "uint32")

    def inputs(self, rng):
        cases = []
        for k in range(5):
            ny, nx, ky, kx = (int(v) for v in rng.integers(5, 40, 4))
            if k == 0:  # a narrow scan: square blocks of navigation would be cut short by it
                ny, nx = int(rng.integers(30, 40)), int(rng.integers(3, 6))
            d = int(rng.integers(0, len(self._dtypes)))
            target = float(rng.uniform(0.4, 0.9))
            pattern = ky * kx * np.dtype(self._dtypes[d]).itemsize
            fits = int(rng.integers(8 * nx if k == 0 else 1, ny * nx))  # patterns under target x limit; never all
            limit = int((fits + float(rng.uniform(0.1, 0.9))) * pattern / target)
            cases.append([ny, nx, ky, kx, d, limit, int(rng.integers(2, 4)), int(target * 1e6)])
        return {"cases": np.asarray(cases, dtype=np.int64)}

    def probe(self, fn, inp):
        import dask

        res = []
        for ny, nx, ky, kx, d, limit, parts, target in inp["cases"].tolist():
            chunks = tuple(-(-n // parts) for n in (ny, nx, ky, kx))  # a few chunks along every axis
            sig = _signal(_unreadable((ny, nx, ky, kx), self._dtypes[d], chunks), None)
            with dask.config.set({"distributed.worker.memory.target": target / 1e6}):
                got, err = _attempt(fn, sig, limit)
            if err:
                return {"error": err}
            data = getattr(got, "data", None)
            res.append({"lazy": _is_lazy(got), "shape": list(np.shape(data)),
                        "chunks": [list(map(int, ch)) for ch in getattr(data, "chunks", ())]})
        return {"cases": res}

    def judge(self, inp, out):
        for (ny, nx, ky, kx, d, limit, _, target), got in zip(inp["cases"].tolist(), out["cases"]):
            pattern = ky * kx * np.dtype(self._dtypes[d]).itemsize
            budget = target / 1e6 * limit
            where = (f"for {nx} x {ny} patterns of {kx} x {ky} {self._dtypes[d]}, a memory_limit of {limit} bytes "
                     f"and a target fraction of {target / 1e6:.2f}")
            if not got["lazy"]:
                raise Failed(f"{where}: blocks_for_limit must return a lazy signal (rechunk it, compute nothing)")
            if tuple(got["shape"]) != (ny, nx, ky, kx):
                raise Failed(f"{where}: the result has shape {tuple(got['shape'])}: rechunking keeps every value")
            chunks = got["chunks"]
            if len(chunks[2]) != 1 or len(chunks[3]) != 1:
                raise Failed(f"{where}: a block of map holds whole patterns: one chunk along each signal axis")
            block = max(chunks[0]) * max(chunks[1])
            if block * pattern > budget:
                raise Failed(f"{where}: the largest block holds {block} patterns, {block * pattern} bytes, more than "
                             "the worker manages before it spills: a running task cannot spill, so the worker would "
                             "pause or be restarted")
            fits = min(int(budget // pattern), ny * nx)
            if 2 * block < fits:
                raise Failed(f"{where}: the largest block holds {block} patterns where {fits} fit: many small tasks "
                             "cost time; make the blocks as large as fit")


_UNSIGNED = ("uint8", "uint16", "uint32", "uint64")


def _safe(dtype, factor):
    top = int(factor) * int(np.iinfo(dtype).max)
    return next(np.dtype(t) for t in _UNSIGNED if top <= np.iinfo(t).max)


class SafeDtype(Judge):
    lesson, grade_id, function = "05_rebinning", "safe_dtype_test", "safe_dtype"

    def inputs(self, rng):
        cases = []
        for i, dt in enumerate(_UNSIGNED[:3]):
            for t in _UNSIGNED[i:3]:
                edge = np.iinfo(t).max // np.iinfo(dt).max
                cases += [(i, edge), (i, edge + 1)]
            cases += [(i, int(rng.integers(1, 5000)))]
        return {"cases": np.asarray(cases, dtype=np.int64)}

    def probe(self, fn, inp):
        got = []
        for i, factor in inp["cases"].tolist():
            v, err = _attempt(fn, _UNSIGNED[i], factor)
            if err:
                return {"error": err}
            got.append(str(np.dtype(v)))
        return {"got": got}

    def judge(self, inp, out):
        if "error" in out:
            raise Failed(f"safe_dtype raised {out['error']}")
        for (i, factor), got in zip(inp["cases"].tolist(), out["got"]):
            want = _safe(_UNSIGNED[i], factor)
            if np.dtype(got) != want:
                raise Failed(f"safe_dtype('{_UNSIGNED[i]}', {factor}): expected {want}, got {got}")


class RebinnedNbytes(Judge):
    lesson, grade_id, function = "05_rebinning", "rebinned_nbytes_test", "rebinned_nbytes"
    _dtypes = ("uint8", "uint16", "uint32", "uint64", "float32", "float64")

    def inputs(self, rng):
        scale = rng.integers(1, 6, size=(4, 4))
        lengths = scale * rng.integers(1, 7, size=(4, 4))  # HyperSpy order x, y, kx, ky
        return {"scale": scale, "lengths": lengths, "dtype": rng.integers(0, 6, 4)}

    def probe(self, fn, inp):
        got = []
        for scale, (x, y, kx, ky), d in zip(inp["scale"].tolist(), inp["lengths"].tolist(), inp["dtype"].tolist()):
            sig = _signal(_unreadable((y, x, ky, kx), "uint16", (2, 2, 4, 4)), None)
            v, err = _attempt(fn, sig, tuple(scale), self._dtypes[d])
            if err:
                return {"error": err}
            got.append(int(v))
        return {"got": np.asarray(got, dtype=np.int64)}

    def judge(self, inp, out):
        if "error" in out:
            raise Failed(f"rebinned_nbytes raised {out['error']}")
        for scale, lengths, d, got in zip(inp["scale"].tolist(), inp["lengths"].tolist(),
                                          inp["dtype"].tolist(), out["got"].tolist()):
            want = int(np.prod([n // f for n, f in zip(lengths, scale)])) * np.dtype(self._dtypes[d]).itemsize
            if got != want:
                raise Failed(f"rebinned_nbytes with scale {tuple(scale)} on axes {tuple(lengths)} "
                             f"({self._dtypes[d]}): expected {want} bytes, got {got}")


def _binned(arr, scale):
    """Sum of ``arr`` (numpy order y, x, ky, kx) over blocks of ``scale`` (HyperSpy order x, y, kx, ky)."""
    fx, fy, fkx, fky = scale
    y, x, ky, kx = arr.shape
    return arr.astype(np.uint64).reshape(y // fy, fy, x // fx, fx, ky // fky, fky, kx // fkx, fkx).sum(axis=(1, 3, 5, 7))


class RebinLossless(Judge):
    lesson, grade_id, function = "05_rebinning", "rebin_lossless_test", "rebin_lossless"

    def inputs(self, rng):
        out = {}
        for k, (dtype, lo, hi) in enumerate([("uint16", 2000, 65536), ("uint8", 200, 256)]):
            scale = rng.integers(1, 4, size=4)
            scale[int(rng.integers(0, 4))] = 2
            y, x, ky, kx = (scale[[1, 0, 3, 2]] * rng.integers(2, 4, size=4))
            out[f"arr{k}"] = rng.integers(lo, hi, size=(y, x, ky, kx)).astype(dtype)
            out[f"scale{k}"] = scale
        return out

    def probe(self, fn, inp):
        res = []
        for k in range(2):
            arr, scale = inp[f"arr{k}"], tuple(int(v) for v in inp[f"scale{k}"])
            blind = _signal(_unreadable(arr.shape, arr.dtype, 2), None)
            _, err = _attempt(fn, blind, scale)
            if err:
                res.append({"error": err})
                continue
            sig = _signal(arr, 2)
            out, err = _attempt(fn, sig, scale)
            if err:
                res.append({"error": err})
                continue
            data = getattr(out, "data", None)
            res.append({"lazy": _is_lazy(out), "dtype": str(getattr(data, "dtype", "")),
                        "chunks": len(source_chunks(out, sig.data)), "n": int(sig.data.npartitions),
                        "values": np.asarray(data.compute() if hasattr(data, "compute") else data)})
        return {"cases": res}

    def judge(self, inp, out):
        for k, got in enumerate(out["cases"]):
            if "error" in got:
                raise Failed(f"rebin_lossless raised {got['error']}")
            arr, scale = inp[f"arr{k}"], inp[f"scale{k}"]
            want = _safe(arr.dtype, int(np.prod(scale)))
            if not got["lazy"] or got["chunks"] != got["n"]:
                raise Failed("rebin_lossless must return a lazy signal built from the data "
                             "(rebin and change_dtype, no compute)")
            if np.dtype(got["dtype"]) != want:
                raise Failed(f"rebinning {arr.dtype} by {int(np.prod(scale))} pixels: expected {want}, "
                             f"got {got['dtype']}")
            if not np.array_equal(np.asarray(got["values"], dtype=np.uint64), _binned(arr, scale)):
                raise Failed("the rebinned values are not the sums of the binned pixels")


class AnnulusRadii(Judge):
    lesson, grade_id, function = "03_plotting", "test_ex03_annulus_radii", "annulus_radii"

    def inputs(self, rng):
        from .manifest import get_preset
        from .synthetic import probe_maps

        p = get_preset("ci")
        maps = probe_maps(p, seed=int(rng.integers(1, 2**31)))  # a specimen no one has seen
        wander = float(np.hypot(maps["shift_x"], maps["shift_y"]).max())
        D = p.signal_shape[0]
        factor = float(rng.uniform(0.6, 1.8))
        scale = p.detector_scale_mrad * factor
        return {"D": D, "scale": scale, "offset": -D / 2 * scale, "alpha": D / 8 * scale,
                "wander": wander}

    def probe(self, fn, inp):
        import dask.array as da

        D = int(inp["D"])
        sig = _signal(da.zeros((2, 3, D, D), dtype="uint16", chunks=(2, 3, D // 2, D // 2)), None,
                      inp["scale"], inp["offset"])
        sig.metadata.set_item("Acquisition_instrument.TEM.convergence_angle", float(inp["alpha"]))
        v, err = _attempt(fn, sig)
        if err:
            return {"error": err}
        return {"got": [float(x) for x in v]}

    def judge(self, inp, out):
        if "error" in out:
            raise Failed(f"annulus_radii raised {out['error']}")
        inner, outer = out["got"]
        D, scale = int(inp["D"]), float(inp["scale"])
        axis = float(inp["offset"]) + scale * np.arange(D)
        reach = float(inp["alpha"]) + (float(inp["wander"]) + 0.5) * scale
        edge = min(axis[D // 2] - axis[0], axis[-1] - axis[D // 2])
        if inner < reach:
            raise Failed(f"with another calibration the inner radius {inner:.3f} mrad cuts the bright "
                         f"disk (it reaches {reach:.3f} mrad): derive it from the convergence angle")
        if outer > edge + 1e-9:
            raise Failed(f"with another calibration the outer radius {outer:.3f} mrad is past the "
                         f"detector edge ({edge:.3f} mrad): derive it from the signal axes")
        if outer - inner < 2 * scale - 1e-9:
            raise Failed("the ring is narrower than two detector pixels")


class AdfImage(Judge):
    lesson, grade_id, function = "03_plotting", "test_ex03_adf_image", "adf_image"

    def inputs(self, rng):
        shape = (int(rng.integers(4, 8)), int(rng.integers(5, 10)), int(rng.integers(16, 27)),
                 int(rng.integers(16, 27)))
        scale = float(rng.uniform(0.2, 0.5))
        return {"arr": rng.poisson(5.0, size=shape).astype("uint16"), "scale": scale,
                "offset": float(rng.uniform(-1.0, 1.0)), "inner": float(rng.uniform(2.5, 4.0)) * scale,
                "outer": float(rng.uniform(6.0, 7.5)) * scale}

    def probe(self, fn, inp):
        arr = inp["arr"]
        sig = _signal(arr, (3, 3, arr.shape[2] // 2, arr.shape[3] // 2), inp["scale"], inp["offset"])
        img, err = _attempt(fn, sig, float(inp["inner"]), float(inp["outer"]))
        if err:
            return {"error": err}
        data = getattr(img, "data", None)
        return {"lazy": _is_lazy(img), "sigdim": int(img.axes_manager.signal_dimension),
                "chunks": len(source_chunks(img, sig.data)), "n": int(sig.data.npartitions),
                "values": np.asarray(data.compute() if hasattr(data, "compute") else data, dtype=float)}

    def judge(self, inp, out):
        if "error" in out:
            raise Failed(f"adf_image raised {out['error']}")
        if not out["lazy"] or out["chunks"] != out["n"]:
            raise Failed("adf_image must return a lazy signal computed from the data (no compute)")
        if out["sigdim"] != 2:
            raise Failed("the ADF image should be an image (signal dimension 2): turn the navigation "
                         "axes into signal axes with .T")
        arr = inp["arr"].astype(float)
        scale, offset = float(inp["scale"]), float(inp["offset"])
        kx = offset + scale * np.arange(arr.shape[3])
        ky = offset + scale * np.arange(arr.shape[2])
        X, Y = np.meshgrid(kx, ky)
        cx, cy = kx[kx.size // 2], ky[ky.size // 2]
        vals = out["values"]
        for d in (0.0, 0.5, 0.5001, -0.5):  # pixel-centre conventions (CircleROI uses +0.5001)
            r2 = (X - cx - d * scale) ** 2 + (Y - cy - d * scale) ** 2
            ref = (arr * ((r2 >= inp["inner"] ** 2) & (r2 <= inp["outer"] ** 2))).sum(axis=(2, 3))
            if vals.shape == ref.shape and np.allclose(vals, ref, rtol=1e-6):
                return
        raise Failed("the ADF image differs from the sum over the ring on a fresh dataset "
                     "(check the ring's centre and radii, and the axes you sum over)")


class Choice(Judge):
    """A multiple-choice answer held in a variable of the notebook."""

    def __init__(self, lesson, grade_id, variable):
        self.lesson, self.grade_id, self.function = lesson, grade_id, variable

    @property
    def _right(self) -> str:
        from .quizzes import quiz

        return quiz(self.lesson, self.function)["answer"]

    def inputs(self, rng):
        return {}

    def probe(self, value, inp):
        return {"got": str(value)}

    def judge(self, inp, out):
        if out["got"].strip().upper() != self._right:
            raise Failed(f"{self.function} = {out['got']!r} is not the right choice: read the "
                         "explanation below the exercise")


_DTYPES = ("uint8", "uint16", "int16", "uint32", "float32", "float64")


def _shapes(rng, n, ndims=(3, 4, 5)):
    return [tuple(int(v) for v in rng.integers(2, 40, size=int(rng.choice(ndims)))) for _ in range(n)]


class _Arithmetic(Judge):
    """A function of a signal's geometry only: probed on signals whose data cannot be read."""

    def inputs(self, rng):
        shapes = _shapes(rng, 6)
        return {"shapes": [np.asarray(sh, dtype=np.int64) for sh in shapes],
                "dtypes": rng.integers(0, len(_DTYPES), 6), "chunks": rng.integers(1, 9, size=(6, 5))}

    def _call(self, fn, sig, i, inp):
        return fn(sig)

    def probe(self, fn, inp):
        got = []
        for i, (shape, d) in enumerate(zip(inp["shapes"], inp["dtypes"].tolist())):
            shape = tuple(int(v) for v in shape)
            chunks = tuple(int(c) for c in inp["chunks"][i][:len(shape)])
            sig = _signal(_unreadable(shape, _DTYPES[d], chunks), None)
            v, err = _attempt(self._call, fn, sig, i, inp)
            if err:
                return {"error": err}
            got.append(int(v))
        return {"got": np.asarray(got, dtype=np.int64)}

    def judge(self, inp, out):
        for i, (shape, d, got) in enumerate(zip(inp["shapes"], inp["dtypes"].tolist(), out["got"].tolist())):
            shape = tuple(int(v) for v in shape)
            chunks = tuple(min(int(c), n) for c, n in zip(inp["chunks"][i], shape))
            want = self.reference(shape, chunks, np.dtype(_DTYPES[d]), i, inp)
            if got != want:
                raise Failed(f"{self.function} on data of shape {shape} ({_DTYPES[d]}, chunks {chunks}): "
                             f"expected {want}, got {got}")


class DatasetNbytes(_Arithmetic):
    lesson, grade_id, function = "00_setup", "test_ex2_dataset_nbytes", "dataset_nbytes"

    def reference(self, shape, chunks, dtype, i, inp):
        return int(np.prod(shape)) * dtype.itemsize


class SumNbytes(_Arithmetic):
    lesson, grade_id, function = "02_loading", "test_ex2_sum_nbytes", "sum_nbytes"

    def reference(self, shape, chunks, dtype, i, inp):
        return int(np.prod(shape[-2:])) * np.zeros(1, dtype=dtype).sum().dtype.itemsize


class MapBlockNbytes(_Arithmetic):
    lesson, grade_id, function = "06_map", "map_block_nbytes_test", "map_block_nbytes"

    def reference(self, shape, chunks, dtype, i, inp):
        return int(np.prod(chunks[:-2])) * int(np.prod(shape[-2:])) * dtype.itemsize


class MemoryLimitFor(_Arithmetic):
    lesson, grade_id, function = "09_scaling_out", "test_memory_limit_for", "memory_limit_for"

    def inputs(self, rng):
        out = super().inputs(rng)
        out.update(n=rng.integers(1, 6, 6), target=rng.uniform(0.4, 0.9, 6))
        return out

    def _call(self, fn, sig, i, inp):
        import dask

        with dask.config.set({"distributed.worker.memory.target": float(inp["target"][i])}):
            return fn(sig, int(inp["n"][i]))

    def reference(self, shape, chunks, dtype, i, inp):
        block = int(np.prod(chunks[:-2])) * int(np.prod(shape[-2:])) * dtype.itemsize
        return int(np.ceil(int(inp["n"][i]) * block / float(inp["target"][i])))


class NumpyShapes(Judge):
    lesson, grade_id, function = "00_setup", "test_ex1_numpy_shapes", "numpy_shapes"

    def inputs(self, rng):
        return {"shapes": [np.asarray(sh, dtype=np.int64) for sh in _shapes(rng, 5, (2, 3, 4, 5))]}

    def probe(self, fn, inp):
        got = []
        for shape in inp["shapes"]:
            sig = _signal(_unreadable(tuple(int(v) for v in shape), "uint8", 2), None)
            v, err = _attempt(fn, sig)
            if err:
                return {"error": err}
            got.append({"nav": [int(x) for x in v[0]], "sig": [int(x) for x in v[1]], "lazy": _is_lazy(sig)})
        return {"got": got}

    def judge(self, inp, out):
        for shape, got in zip(inp["shapes"], out["got"]):
            shape = [int(v) for v in shape]
            if got["nav"] + got["sig"] != shape or len(got["sig"]) != 2:
                raise Failed(f"numpy_shapes on data of numpy shape {tuple(shape)} gave {tuple(got['nav'])} and "
                             f"{tuple(got['sig'])}: numpy order reverses HyperSpy's within each group")
            if not got["lazy"]:
                raise Failed("numpy_shapes changed the signal: it must stay lazy")


class ChunksTouched(Judge):
    lesson, grade_id, function = "01_lazy_basics", "test_ex1_chunks_touched", "chunks_touched"

    def inputs(self, rng):
        cases = []
        for _ in range(40):
            ndim = int(rng.integers(1, 5))
            shape = rng.integers(5, 60, size=ndim)
            row = []
            for n in shape:
                a = int(rng.integers(0, n))
                row.append([int(rng.integers(1, n + 1)), a, int(rng.integers(a + 1, n + 1))])
            cases.append(np.asarray(row, dtype=np.int64))
        return {"cases": cases}

    def probe(self, fn, inp):
        got = []
        for case in inp["cases"]:
            chunks = tuple(int(c) for c, _, _ in case.tolist())
            region = tuple(slice(int(a), int(b)) for _, a, b in case.tolist())
            v, err = _attempt(fn, chunks, region)
            if err:
                return {"error": err}
            got.append(int(v))
        return {"got": np.asarray(got, dtype=np.int64)}

    def judge(self, inp, out):
        for case, got in zip(inp["cases"], out["got"].tolist()):
            want = int(np.prod([(b - 1) // c - a // c + 1 for c, a, b in case.tolist()]))
            if got != want:
                raise Failed(f"chunks_touched with chunks {tuple(case[:, 0])} and region "
                             f"{[slice(int(a), int(b)) for a, b in case[:, 1:].tolist()]}: expected {want}, "
                             f"got {got}")


def _selection(row):
    kind, a, b = (int(v) for v in row)
    return [a, slice(a, b), slice(None, b), slice(a, None), slice(None, None)][kind]


class ChunksRead(Judge):
    lesson, grade_id, function = "04_chunking", "test_ex04_chunks_read", "chunks_read"

    def inputs(self, rng):
        shapes, chunks, sels = [], [], []
        for _ in range(30):
            shape = rng.integers(3, 30, 4)
            shapes.append(shape)
            chunks.append(np.array([rng.integers(1, n + 1) for n in shape]))
            rows = []
            for n in shape:
                a = int(rng.integers(0, n))
                rows.append([int(rng.integers(0, 5)), a, int(rng.integers(a + 1, n + 1))])
            sels.append(np.asarray(rows, dtype=np.int64))
        return {"shapes": np.asarray(shapes, dtype=np.int64), "chunks": np.asarray(chunks, dtype=np.int64),
                "sels": sels}

    def probe(self, fn, inp):
        got = []
        for shape, chunks, sel in zip(inp["shapes"].tolist(), inp["chunks"].tolist(), inp["sels"]):
            v, err = _attempt(fn, tuple(shape), tuple(chunks), tuple(_selection(r) for r in sel))
            if err:
                return {"error": err}
            got.append(int(v))
        return {"got": np.asarray(got, dtype=np.int64)}

    def judge(self, inp, out):
        import dask.array as da

        for shape, chunks, sel, got in zip(inp["shapes"].tolist(), inp["chunks"].tolist(), inp["sels"],
                                           out["got"].tolist()):
            x = da.zeros(tuple(shape), chunks=tuple(chunks), dtype="uint8")
            selection = tuple(_selection(r) for r in sel)
            want = len(source_chunks(x[selection], x))
            if got != want:
                raise Failed(f"chunks_read({tuple(shape)}, {tuple(chunks)}, {selection}): expected {want}, "
                             f"got {got}")


class SqrtSumPerPosition(Judge):
    lesson, grade_id, function = "01_lazy_basics", "test_ex2_sqrt_sum_per_position", "sqrt_sum_per_position"

    def inputs(self, rng):
        return {f"arr{k}": rng.integers(0, 50, size=tuple(int(v) for v in rng.integers(2, 9, 4))).astype(dt)
                for k, dt in enumerate(("uint16", "float32", "int32"))}

    def probe(self, fn, inp):
        import dask.array as da

        res = []
        for k in range(3):
            x = da.from_array(inp[f"arr{k}"], chunks=2)
            got, err = _attempt(fn, x)
            if err:
                return {"error": err}
            lazy = isinstance(got, da.Array)
            res.append({"lazy": lazy, "chunks": len(source_chunks(got, x)), "n": int(x.npartitions),
                        "values": np.asarray(got.compute() if lazy else got, dtype=float)})
        return {"cases": res}

    def judge(self, inp, out):
        for k, got in enumerate(out["cases"]):
            arr = inp[f"arr{k}"]
            if not got["lazy"] or got["chunks"] != got["n"]:
                raise Failed("sqrt_sum_per_position must return a dask array built from the data, not computed")
            want = np.sqrt(arr.astype(float)).sum(axis=(2, 3))
            if got["values"].shape != want.shape or not np.allclose(got["values"], want, rtol=1e-4):
                raise Failed(f"on a fresh {arr.dtype} array of shape {arr.shape} the sums of square roots "
                             "differ from the reference: take the square root first, then sum the last two axes")


class CentralCrop(Judge):
    lesson, grade_id, function = "10_capstone", "test_central_crop", "central_crop"

    def inputs(self, rng):
        cy, cx = (int(v) for v in rng.integers(3, 11, 2))
        ny, nx = (int(v) for v in rng.integers(2, 6, 2))
        return {"arr": rng.integers(0, 2**16, size=(ny, nx, 4 * cy, 4 * cx)).astype("uint32"), "cy": cy, "cx": cx}

    def probe(self, fn, inp):
        arr = inp["arr"]
        sig = _signal(arr, (2, 2, int(inp["cy"]), int(inp["cx"])))
        got, err = _attempt(fn, sig)
        if err:
            return {"error": err}
        data = getattr(got, "data", None)
        return {"lazy": _is_lazy(got), "chunks": source_chunks(got, sig.data),
                "values": np.asarray(data.compute() if hasattr(data, "compute") else data)}

    def judge(self, inp, out):
        arr, cy, cx = inp["arr"], int(inp["cy"]), int(inp["cx"])
        if not out["lazy"]:
            raise Failed("central_crop must return a lazy signal")
        want = arr[:, :, cy:3 * cy, cx:3 * cx]
        if out["values"].shape != want.shape or not np.array_equal(out["values"], want):
            raise Failed(f"on data with detector chunks of {cy} x {cx} pixels the crop is not the central "
                         "quarter: crop from one chunk in to three chunks in, along each detector axis")
        ny, nx = arr.shape[:2]
        if len(out["chunks"]) * 4 != -(-ny // 2) * -(-nx // 2) * 16:
            raise Failed("the crop reads more than a quarter of the chunks: align it to the chunk edges")


class CapstoneAdf(Judge):
    lesson, grade_id, function = "10_capstone", "test_adf_image", "adf_image"

    def inputs(self, rng):
        ky, kx = (int(v) for v in rng.integers(14, 26, 2))
        scale = float(rng.uniform(0.3, 0.7))
        return {"arr": rng.poisson(5.0, size=(int(rng.integers(3, 7)), int(rng.integers(3, 9)), ky, kx)).astype("uint16"),
                "scale": scale, "oy": -ky / 2 * scale + float(rng.uniform(-0.5, 0.5)) * scale,
                "ox": -kx / 2 * scale + float(rng.uniform(-0.5, 0.5)) * scale,
                "radii": np.array([[1.0, 4.0], [2.5, 5.5], [0.0, 0.75]]) * scale * 2}

    def probe(self, fn, inp):
        arr = inp["arr"]
        sig = _signal(arr, (3, 3, arr.shape[2] // 2, arr.shape[3] // 2), inp["scale"])
        kx_ax, ky_ax = sig.axes_manager.signal_axes
        kx_ax.offset, ky_ax.offset = float(inp["ox"]), float(inp["oy"])
        res = []
        for inner, outer in inp["radii"].tolist():
            got, err = _attempt(fn, sig, inner, outer)
            if err:
                return {"error": err}
            data = getattr(got, "data", None)
            res.append({"lazy": _is_lazy(got),
                        "values": np.asarray(data.compute() if hasattr(data, "compute") else data, dtype=float)})
        return {"cases": res}

    def judge(self, inp, out):
        arr, scale = inp["arr"], float(inp["scale"])
        kx = float(inp["ox"]) + scale * np.arange(arr.shape[3])
        ky = float(inp["oy"]) + scale * np.arange(arr.shape[2])
        r = np.hypot(kx[np.newaxis, :], ky[:, np.newaxis])
        for (inner, outer), got in zip(inp["radii"].tolist(), out["cases"]):
            if not got["lazy"]:
                raise Failed("adf_image must return a lazy signal")
            want = (arr * ((r >= inner) & (r < outer))).sum(axis=(2, 3))
            if np.squeeze(got["values"]).shape != want.shape or not np.allclose(np.squeeze(got["values"]), want):
                raise Failed(f"on a fresh dataset the ADF image for {inner:.2f} <= r < {outer:.2f} differs from the "
                             "sum over that ring (r measured from 0 mrad on the calibrated axes)")


# One line per lesson, so that lessons can gain judges independently.
JUDGES = {(j.lesson, j.grade_id): j for j in (
    NumpyShapes(), DatasetNbytes(),  # 00
    ChunksTouched(), SqrtSumPerPosition(),  # 01
    SumNbytes(), Choice("02_loading", "test_ex3_faster_format", "faster_format"),  # 02
    AnnulusRadii(), AdfImage(),  # 03
    ChunksRead(),  # 04
    SafeDtype(), RebinnedNbytes(), RebinLossless(),  # 05
    MapBlockNbytes(),  # 06
    QuarterCrop(), FractionRead(),  # 07
    StartingValues(), CentreMap(),  # 08
    ComputeOnCluster(), MemoryLimitFor(), BlocksForLimit(), Choice("09_scaling_out", "test_format_choice", "answer"),  # 09
    CapstoneAdf(), CentralCrop(),  # 10
)}


def for_lesson(lesson: str) -> dict:
    """grade_id -> judge, for the judged test cells of ``lesson``."""
    return {gid: j for (les, gid), j in JUDGES.items() if les == lesson}


# ------------------------------------------------------- grader and kernel

def _input_file(folder, judge) -> Path:
    return Path(folder) / f"{judge.lesson}-{judge.grade_id}.json"


def write_inputs(judge: Judge, folder: Path, seed: int | None = None) -> dict:
    """Draw the inputs of ``judge`` (a fresh seed unless given) and write them to ``folder``."""
    rng = np.random.default_rng(secrets.randbits(64) if seed is None else seed)
    inp = judge.inputs(rng)
    _input_file(folder, judge).write_text(json.dumps(pack(inp)))
    return inp


def read_inputs(judge: Judge, folder: Path) -> dict:
    return unpack(json.loads(_input_file(folder, judge).read_text()))


def decide(judge: Judge, export, folder) -> str | None:
    """None when the exported results pass, else the message to record."""
    if export is None:
        return ("the grader's tests of this cell did not run to the end (no results came back from "
                "the notebook): make sure the cells above run without stopping the kernel")
    if isinstance(export, dict) and "error" in export:
        return f"{judge.function} raised {export['error']}"
    try:
        judge.judge(read_inputs(judge, folder), export)
    except Failed as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 (malformed results are a failure, never a crash)
        return f"the results of {judge.function} could not be checked ({type(e).__name__}: {e})"
    return None


def find_export(outputs) -> dict | None:
    """The last probe export among a cell's outputs."""
    found = None
    for o in outputs:
        if o.get("output_type") == "display_data" and MIME in o.get("data", {}):
            found = o["data"][MIME]
    if found is None:
        return None
    try:
        return unpack(found if isinstance(found, dict) else json.loads(found))
    except Exception:  # noqa: BLE001
        return None


def probe(lesson: str, grade_id: str, namespace: dict) -> None:
    """Run the hidden test ``grade_id`` of ``lesson`` on the learner's function in ``namespace``.

    While grading, export the results for the judge; otherwise judge them now
    (on inputs from a fixed seed) and raise :class:`Failed` when wrong.
    """
    judge = JUDGES[(lesson, grade_id)]
    fn = namespace.get(judge.function)
    if fn is None:
        raise Failed(f"{judge.function} is not defined: run the cell that defines it")
    folder = os.environ.get(INPUTS_ENV)
    if folder and _input_file(folder, judge).exists():
        from IPython.display import display

        try:
            export = judge.probe(fn, read_inputs(judge, folder))
        except Exception as e:  # noqa: BLE001 (the learner's result broke the probe)
            export = {"error": f"{type(e).__name__}: {e}"}
        display({MIME: pack(export)}, raw=True)
        return
    inp = judge.inputs(np.random.default_rng(2026))
    judge.judge(unpack(pack(inp)), unpack(pack(judge.probe(fn, unpack(pack(inp))))))
