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


#: Most blocks of a probe's array. HyperSpy spends memory and time on every block of a lazy signal it
#: wraps: 3.2 million blocks (shape 39^5 in chunks of 2) take 36 s and 5.5 GB, past a grading kernel's limits.
MAX_BLOCKS = 2000


def _grow_to_few_blocks(shape, chunks) -> None:
    """Double, in place, the chunk of the most divided axis until ``shape`` has at most MAX_BLOCKS blocks."""
    def blocks():
        return [-(-n // int(c)) for n, c in zip(shape, chunks)]

    while np.prod(blocks()) > MAX_BLOCKS:
        axis = int(np.argmax(blocks()))
        chunks[axis] = min(2 * int(chunks[axis]), shape[axis])


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
        return {"arr": data, "_shift": shift, "chunk": c, "nav_chunk": nc, "scale": float(rng.uniform(0.05, 0.4))}

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
        shift, c, scale = inp["_shift"], int(inp["chunk"]), float(inp["scale"])
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
            if out is None:
                res.append({"none": True})
                continue
            data = getattr(out, "data", None)
            res.append({"lazy": _is_lazy(out), "dtype": str(getattr(data, "dtype", "")),
                        "chunks": len(source_chunks(out, sig.data)), "n": int(sig.data.npartitions),
                        "values": np.asarray(data.compute() if hasattr(data, "compute") else data)})
        return {"cases": res}

    def judge(self, inp, out):
        for k, got in enumerate(out["cases"]):
            if "error" in got and "the data was read" in got["error"]:
                raise Failed("rebin_lossless read the data while it ran: choose the type from the input type and "
                             "the factors, not from the values, and return the lazy signal without computing it")
            if "error" in got:
                raise Failed(f"rebin_lossless raised {got['error']}")
            if got.get("none"):
                raise Failed("rebin_lossless returned None: change_dtype() converts the signal in place and "
                             "returns None, so call it on its own line and return the signal itself")
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


def _ceil_div(n, c):
    return -(-int(n) // int(c))


class TransposeReads(Judge):
    """How many chunks one "pattern" of ``s.T`` (one detector pixel everywhere) reads, on other chunkings."""

    lesson, grade_id, function = "04_chunking", "test_ex04_transpose", "image_chunks_after_T"

    def inputs(self, rng):
        shapes, chunks = [], []
        while len(shapes) < 6:
            shape = rng.integers(4, 50, 4)
            ch = np.array([rng.integers(1, n + 1) for n in shape])
            nb = [_ceil_div(n, c) for n, c in zip(shape, ch)]
            if nb[0] * nb[1] in (nb[2] * nb[3], 14, int(np.prod(nb))):  # no case where a wrong count is right
                continue
            if np.prod(nb) > MAX_BLOCKS:  # (chunks of 1 along every axis: millions of blocks to wrap)
                continue
            shapes.append(shape)
            chunks.append(ch)
        return {"shapes": np.asarray(shapes, dtype=np.int64), "chunks": np.asarray(chunks, dtype=np.int64)}

    def probe(self, fn, inp):
        got = []
        for shape, chunks in zip(inp["shapes"].tolist(), inp["chunks"].tolist()):
            sig = _signal(_unreadable(tuple(shape), "uint16", tuple(chunks)), None)
            v, err = _attempt(fn, sig)
            if err:
                return {"error": err}
            got.append(int(v))
        return {"got": np.asarray(got, dtype=np.int64)}

    def judge(self, inp, out):
        for shape, chunks, got in zip(inp["shapes"].tolist(), inp["chunks"].tolist(), out["got"].tolist()):
            nb = [_ceil_div(n, c) for n, c in zip(shape, chunks)]
            want = nb[0] * nb[1]
            if got == want:
                continue
            where = f"on data of numpy shape {tuple(shape)} with chunks {tuple(chunks)}"
            if got == nb[2] * nb[3]:
                raise Failed(f"image_chunks_after_T {where} gave {got}, what one pattern of s reads: one "
                             "pattern of s.T is one detector pixel at every probe position")
            raise Failed(f"image_chunks_after_T {where}: expected {want}, got {got}; count from the signal's "
                         "chunk grid, not from the course dataset")


class PatternChunks(Judge):
    """Chunks for reading whole patterns, on other shapes, detectors that are not square and other chunks."""

    lesson, grade_id, function = "04_chunking", "test_ex04_pattern_chunks", "pattern_chunks"
    _dtypes = ("uint8", "uint16", "float32")

    def inputs(self, rng):
        cases = []
        for _ in range(6):
            ky, kx = (int(v) for v in rng.integers(6, 41, 2))
            kx += kx == ky  # never square
            cky, ckx = int(rng.integers(_ceil_div(ky, 4), ky + 1)), int(rng.integers(_ceil_div(kx, 4), kx + 1))
            cy, cx = (int(v) for v in rng.integers(4, 17, 2))  # a chunk holds at least one whole pattern
            ny, nx = (int(rng.integers(2 * max(cy, cx), 5 * max(cy, cx))) for _ in range(2))
            cases.append([ny, nx, ky, kx, cy, cx, cky, ckx, int(rng.integers(0, len(self._dtypes)))])
        return {"cases": np.asarray(cases, dtype=np.int64)}

    def probe(self, fn, inp):
        got = []
        for *shape, cy, cx, cky, ckx, d in inp["cases"].tolist():
            sig = _signal(_unreadable(tuple(shape), self._dtypes[d], (cy, cx, cky, ckx)), None)
            v, err = _attempt(fn, sig)
            if err:
                return {"error": err}
            got.append([-1 if c is None else int(c) for c in tuple(v)])
        return {"got": got}

    def judge(self, inp, out):
        import dask.array as da

        for (ny, nx, ky, kx, cy, cx, cky, ckx, d), got in zip(inp["cases"].tolist(), out["got"]):
            shape, itemsize = (ny, nx, ky, kx), np.dtype(self._dtypes[d]).itemsize
            where = f"for data of numpy shape {shape} with chunks {(cy, cx, cky, ckx)}"
            if len(got) != 4:
                raise Failed(f"pattern_chunks {where} gave {len(got)} chunk lengths, not 4 (y, x, ky, kx)")
            try:
                grid = da.core.normalize_chunks(tuple(int(c) for c in got), shape)
            except Exception:  # noqa: BLE001 (not chunks at all)
                raise Failed(f"pattern_chunks {where} gave {tuple(got)}, which are not chunk lengths") from None
            if grid[2] != (ky,) or grid[3] != (kx,):
                raise Failed(f"pattern_chunks {where} gave {tuple(got)}: one {ky} x {kx} pattern would be "
                             "cut into several chunks; keep both detector axes whole")
            old = cy * cx * cky * ckx * itemsize
            new = int(np.prod([max(c) for c in grid])) * itemsize
            if new > old:
                raise Failed(f"pattern_chunks {where} gave {tuple(got)}: a chunk of {new} bytes is larger than "
                             f"the current {old}; group fewer probe positions")
            if 4 * new < old:
                raise Failed(f"pattern_chunks {where} gave {tuple(got)}: a chunk of {new} bytes is less than a "
                             f"quarter of the current {old}; group more probe positions (a chunk length is cut "
                             "to its axis, so group them in a roughly square block)")


class ComSafe(Judge):
    """The thresholded centre of mass on fresh patterns of other shapes and dtypes, and through ``map``."""

    lesson, grade_id, function = "06_map", "com_safe_test", "com_safe"
    _dtypes = ("uint8", "uint16", "float32")

    def inputs(self, rng):
        out = {}
        for k in range(8):
            shape = tuple(int(v) for v in rng.integers(3, 25, 2))
            p = rng.poisson(float(rng.uniform(0.3, 8.0)), size=shape)
            out[f"p{k}"] = p.astype(self._dtypes[k % 3])
            out[f"t{k}"] = float(rng.uniform(0.5, 10.0))
        out["t7"] = float(out["p7"].max()) + float(rng.uniform(0.5, 3.0))  # no pixel reaches it
        ny, nx, ky, kx = (int(v) for v in rng.integers(3, 7, 2).tolist() + rng.integers(6, 15, 2).tolist())
        stack = rng.poisson(1.5, size=(ny, nx, ky, kx)).astype("uint16")
        stack[int(rng.integers(0, ny)), int(rng.integers(0, nx))] = 0  # one dark pattern
        out["stack"], out["t_stack"] = stack, float(rng.integers(2, 4))
        return out

    def probe(self, fn, inp):
        got = []
        for k in range(8):
            v, err = _attempt(lambda p, t: fn(p, threshold=t), inp[f"p{k}"], float(inp[f"t{k}"]))
            if err:
                return {"error": err}
            got.append(np.asarray(v, dtype=float))
        stack = inp["stack"]
        sig = _signal(stack, (2, 2) + stack.shape[2:])
        mapped, err = _attempt(lambda: sig.map(fn, threshold=float(inp["t_stack"]), inplace=False,
                                               show_progressbar=False))
        if err:
            return {"error": f"{err} (inside s.map)"}
        data = mapped.data
        return {"got": got, "mapped": np.asarray(data.compute() if hasattr(data, "compute") else data, dtype=float)}

    @staticmethod
    def _ref(p, t):
        r, c = np.nonzero(p >= t)
        if r.size == 0:
            return np.array([(p.shape[0] - 1) / 2, (p.shape[1] - 1) / 2])
        return np.array([r.mean(), c.mean()])

    def judge(self, inp, out):
        for k, got in enumerate(out["got"]):
            p, t = inp[f"p{k}"], float(inp[f"t{k}"])
            want = self._ref(p, t)
            what = f"com_safe on a fresh {p.shape[0]} x {p.shape[1]} {p.dtype} pattern with threshold {t:.2f}"
            if got.shape != (2,):
                raise Failed(f"{what} returned shape {got.shape}: return one [row, col] pair")
            if not np.all(np.isfinite(got)):
                raise Failed(f"{what} returned {got}: when no pixel reaches the threshold, return the middle "
                             "of the pattern")
            if np.allclose(got, want):
                continue
            if np.allclose(got[::-1], want):
                raise Failed(f"{what}: the two values are swapped; the result is [row, col]")
            above = np.where(p >= t, p.astype(float), 0)
            if above.sum() and np.allclose(got, [(above.sum(axis=1) @ np.arange(p.shape[0])) / above.sum(),
                                                  (above.sum(axis=0) @ np.arange(p.shape[1])) / above.sum()]):
                raise Failed(f"{what}: the pixels are weighted by their counts; count each one once")
            raise Failed(f"{what} gave {np.round(got, 3)}, not the centroid of the pixels at or above the "
                         "threshold (or, when there are none, the middle of the pattern)")
        stack, t = inp["stack"], float(inp["t_stack"])
        want = np.array([[self._ref(stack[i, j], t) for j in range(stack.shape[1])] for i in range(stack.shape[0])])
        if out["mapped"].shape != want.shape or not np.allclose(out["mapped"], want):
            raise Failed("s.map(com_safe, threshold=...) on a fresh lazy stack with one dark pattern does not "
                         "give one [row, col] pair per pattern equal to com_safe's")


def _digest(arr) -> str:
    import hashlib

    a = np.ascontiguousarray(arr)
    return hashlib.sha256(repr((a.dtype.str, a.shape)).encode() + a.tobytes()).hexdigest()


class DomainMap(Judge):
    """The domain map of a specimen drawn at grading time: another seed, geometry, calibration and chunking.

    The grader draws the specimen and keeps its true domains in its own
    memory (keyed by the data's digest): they are never written where the
    learner's code runs. The learner's map must follow them.
    """

    lesson, grade_id, function = "06_map", "domain_map_test", "domain_map"
    _truths: dict = {}

    def inputs(self, rng):
        from dataclasses import replace

        from .manifest import get_preset
        from .synthetic import make_lazy_signal, probe_maps

        # larger detectors than ci's: a thresholded centre of mass needs a disk of some pixels to follow
        # the domains reliably (measured: correlation >= 0.8 on 48 specimens at these sizes)
        nx, ny, D = int(rng.integers(40, 57)), int(rng.integers(14, 21)), int(rng.choice([40, 44]))
        preset = replace(get_preset("ci"), name="judge", navigation_shape=(nx, ny), signal_shape=(D, D),
                         detector_scale_mrad=float(rng.uniform(0.2, 0.5)))
        seed = int(rng.integers(1, 2**31))
        arr = np.asarray(make_lazy_signal(preset, seed).data.compute(scheduler="synchronous"))
        if len(self._truths) > 32:
            self._truths.clear()
        self._truths[_digest(arr)] = probe_maps(preset, seed)["domain"].astype(float)
        c = int(rng.integers(3, 8))
        return {"arr": arr, "chunks": np.array([c, c + int(rng.integers(1, 4)), D // 2, D // 4], dtype=np.int64),
                "scale": float(preset.detector_scale_mrad)}

    def probe(self, fn, inp):
        arr = inp["arr"]
        ky = arr.shape[2]
        sig = _signal(arr, tuple(int(c) for c in inp["chunks"]), inp["scale"], -(ky // 2) * float(inp["scale"]))
        got, err = _attempt(fn, sig)
        if err:
            return {"error": err}
        if got is None or _is_lazy(got) or hasattr(got, "compute"):
            return {"kind": "None" if got is None else "lazy"}
        return {"values": np.asarray(getattr(got, "data", got), dtype=float)}

    @staticmethod
    def _reference(arr):
        """Fallback when the truth is not in this process: the plain centre of mass, ramp removed, projected."""
        stuck = arr.max(axis=(0, 1)) == arr.min(axis=(0, 1))
        f = np.where(stuck, 0, arr).astype(float)
        ky, kx = f.shape[2:]
        w = f.sum(axis=(2, 3))
        with np.errstate(invalid="ignore", divide="ignore"):
            com = [f.sum(axis=3) @ np.arange(ky) / w, f.sum(axis=2) @ np.arange(kx) / w]
        y, x = np.mgrid[0:arr.shape[0], 0:arr.shape[1]]
        design = np.column_stack([np.ones(x.size), x.ravel(), y.ravel()])
        d = [c - (design @ np.linalg.lstsq(design, c.ravel(), rcond=None)[0]).reshape(c.shape) for c in com]
        vectors = np.linalg.eigh(np.cov(np.stack([d[1].ravel(), d[0].ravel()])))[1]
        return vectors[0, -1] * d[1] + vectors[1, -1] * d[0]

    def judge(self, inp, out):
        if "kind" in out:
            raise Failed(f"domain_map returned {'None' if out['kind'] == 'None' else 'a lazy result'}: return the "
                         "map as a numpy array (compute it, and keep what you compute, not what compute() returns)")
        arr, got = inp["arr"], np.squeeze(out["values"])
        truth = self._truths.get(_digest(arr))
        want = truth if truth is not None else self._reference(arr)
        if got.shape != want.shape:
            raise Failed(f"on a fresh specimen of {arr.shape[1]} x {arr.shape[0]} probe positions the map has "
                         f"shape {got.shape}, not {want.shape} (numpy order y, x)")
        ok = np.isfinite(got)
        if ok.mean() < 0.95:
            raise Failed("on a fresh specimen more than 5 % of the map is NaN or infinite: a dark pattern or a "
                         "threshold no pixel reaches gives no centre of mass")
        if got[ok].std() == 0:
            raise Failed("on a fresh specimen the map is constant: it shows no domains")
        r = abs(float(np.corrcoef(got[ok], want[ok])[0, 1]))
        if r < 0.5:
            raise Failed(f"on a fresh specimen (another seed, scan and detector size) the map follows the true domains "
                         f"with correlation {r:.2f}, at least 0.50 needed: derive the threshold and every size from "
                         "the signal you are given")


class AnnulusRadii(Judge):
    lesson, grade_id, function = "03_plotting", "test_ex03_annulus_radii", "annulus_radii"

    def inputs(self, rng):
        from .manifest import get_preset
        from .synthetic import probe_maps

        p = get_preset("ci")
        maps = probe_maps(p, seed=int(rng.integers(1, 2**31)))  # a specimen no one has seen
        wander = float(np.hypot(maps["shift_x"], maps["shift_y"]).max())
        D = p.signal_shape[0]
        # one calibration finer and one coarser than any preset's: no fixed ring fits both
        scales = p.detector_scale_mrad * np.array([rng.uniform(0.3, 0.6), rng.uniform(1.6, 2.5)])
        return {"D": D, "scales": scales, "_wander": wander}

    def probe(self, fn, inp):
        D = int(inp["D"])
        got = []
        for scale in inp["scales"].tolist():
            # Data that cannot be read: the ring comes from the axes and metadata, not from a pass over the data.
            sig = _signal(_unreadable((2, 3, D, D), "uint16", (2, 3, D // 2, D // 2)), None, scale, -D / 2 * scale)
            sig.metadata.set_item("Acquisition_instrument.TEM.convergence_angle", D / 8 * scale)
            v, err = _attempt(fn, sig)
            if err:
                return {"error": err}
            got.append([float(x) for x in v])
        return {"got": got}

    def judge(self, inp, out):
        if "error" in out:
            raise Failed(f"annulus_radii raised {out['error']}")
        D = int(inp["D"])
        for scale, (inner, outer) in zip(inp["scales"].tolist(), out["got"]):
            axis = -D / 2 * scale + scale * np.arange(D)
            reach = D / 8 * scale + (float(inp["_wander"]) + 0.5) * scale
            edge = min(axis[D // 2] - axis[0], axis[-1] - axis[D // 2])
            if inner < reach:
                raise Failed(f"with another calibration the inner radius {inner:.3f} mrad cuts the bright "
                             f"disk (it reaches {reach:.3f} mrad): derive it from the convergence angle")
            if outer > edge + 1e-9:
                raise Failed(f"with another calibration the outer radius {outer:.3f} mrad is past the "
                             f"detector edge ({edge:.3f} mrad): derive it from the signal axes")
            if outer - inner < 2 * scale - 1e-9:
                raise Failed("with another calibration the ring is narrower than two detector pixels")


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
        chunks = rng.integers(1, 9, size=(6, 5))
        for shape, row in zip(shapes, chunks):
            _grow_to_few_blocks(shape, row)
        return {"shapes": [np.asarray(sh, dtype=np.int64) for sh in shapes],
                "dtypes": rng.integers(0, len(_DTYPES), 6), "chunks": chunks}

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


_SUM_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "float32", "float64")


class SumNbytes(Judge):
    """Bytes of ``signal.sum()`` from the axis lengths and dtype alone (no signal to ask)."""

    lesson, grade_id, function = "02_loading", "test_ex2_sum_nbytes", "sum_nbytes"

    def inputs(self, rng):
        cases = []
        for k in range(12):
            nav = [int(v) for v in rng.integers(1, 300, size=k % 4)]  # 0 to 3 navigation axes
            sig = [int(v) for v in rng.integers(1, 300, size=1 + k % 2)]
            cases.append(np.asarray([len(nav), int(rng.integers(0, len(_SUM_DTYPES)))] + nav + sig, dtype=np.int64))
        return {"cases": cases}

    @staticmethod
    def _unpack(case):
        n_nav, d, *lengths = (int(v) for v in case)
        return tuple(lengths[:n_nav]), tuple(lengths[n_nav:]), np.dtype(_SUM_DTYPES[d])

    def probe(self, fn, inp):
        got = []
        for case in inp["cases"]:
            v, err = _attempt(fn, *self._unpack(case))
            if err:
                return {"error": err}
            got.append(int(v))
        return {"got": np.asarray(got, dtype=np.int64)}

    def judge(self, inp, out):
        for case, got in zip(inp["cases"], out["got"].tolist()):
            nav, sig, dtype = self._unpack(case)
            want = int(np.prod(sig)) * np.zeros(1, dtype=dtype).sum().dtype.itemsize
            if got != want:
                raise Failed(f"sum_nbytes({nav}, {sig}, {dtype}): expected {want}, got {got}")


def _h5_reads(counter, shape):
    """Patch h5py so that reading values of a dataset of ``shape`` adds one to ``counter`` (a list)."""
    import h5py

    cls = h5py.Dataset
    saved = {name: getattr(cls, name) for name in ("__getitem__", "read_direct", "__array__")}

    def wrap(original):
        def counted(self, *args, **kwargs):
            value = original(self, *args, **kwargs)
            if tuple(self.shape) == tuple(shape) and (value is None or np.size(value)):  # dask asks for 0 values
                counter.append(1)
            return value
        return counted

    for name, original in saved.items():
        setattr(cls, name, wrap(original))
    return lambda: [setattr(cls, name, original) for name, original in saved.items()]


class OpenLazily(Judge):
    """``open_lazily(path)`` on files written at grading time: lazy, nothing read, the file's data."""

    lesson, grade_id, function = "02_loading", "test_ex1_open_lazily", "open_lazily"
    _dtypes = ("uint16", "float32", "int32")

    def inputs(self, rng):
        out = {"token": int(rng.integers(1, 2**31))}
        for k, ext in enumerate(("zspy", "hspy")):
            shape = tuple(int(v) for v in rng.integers(2, 7, 4))
            dt = self._dtypes[int(rng.integers(0, 3))]
            out[f"arr{k}"] = rng.integers(0, 1000, size=shape).astype(dt)
            out[f"scale{k}"] = float(rng.uniform(0.05, 3.0))
        return out

    def probe(self, fn, inp):
        import tempfile
        import warnings

        import hyperspy.api as hs
        from dask.callbacks import Callback

        from .measure import count_reads

        res = []
        with tempfile.TemporaryDirectory() as tmp:
            for k, ext in enumerate(("zspy", "hspy")):
                arr = inp[f"arr{k}"]
                sig = hs.signals.Signal2D(arr)
                sig.metadata.General.title = f"specimen {inp['token']} {ext}"
                sig.axes_manager.signal_axes[0].scale = float(inp[f"scale{k}"])
                path = Path(tmp) / f"specimen{k}.{ext}"
                with warnings.catch_warnings():  # zarr 2 announces its version 3
                    warnings.simplefilter("ignore")
                    sig.save(path, overwrite=True)
                computes, h5 = [], []
                undo = _h5_reads(h5, arr.shape)
                try:
                    with count_reads() as reads, Callback(start=lambda dsk: computes.append(1)):
                        got, err = _attempt(fn, str(path) if k else path)
                finally:
                    undo()
                if err:
                    res.append({"error": err})
                    continue
                if got is None:
                    res.append({"none": True})
                    continue
                data = getattr(got, "data", None)
                one = {"lazy": _is_lazy(got), "reads": int(reads.chunks) + len(h5), "computes": len(computes),
                       "title": str(got.metadata.General.title) if hasattr(got, "metadata") else "",
                       "scale": float(got.axes_manager.signal_axes[0].scale) if hasattr(got, "axes_manager") else 0.0}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    one["values"] = np.asarray(data.compute() if hasattr(data, "compute") else data)
                res.append(one)
                del got, data
        return {"cases": res}

    def judge(self, inp, out):
        for k, (ext, got) in enumerate(zip(("zspy", "hspy"), out["cases"])):
            if "error" in got:
                raise Failed(f"open_lazily on a fresh .{ext} file raised {got['error']}")
            if got.get("none"):
                raise Failed(f"open_lazily returned None for a .{ext} file: return the signal that hs.load "
                             "gives (HyperSpy's compute() returns None)")
            if not got["lazy"]:
                if got["computes"]:
                    raise Failed(f"open_lazily returned a .{ext} file's data in memory: it was computed; leave "
                                 "out .compute(), the caller decides when to read")
                raise Failed(f"open_lazily read the whole .{ext} file into memory: pass lazy=True to hs.load")
            if got["reads"] or got["computes"]:
                raise Failed(f"open_lazily returned a lazy signal, but read the .{ext} file's data while "
                             "opening it (a full load made lazy afterwards?): open it with lazy=True")
            arr = inp[f"arr{k}"]
            if (got["title"] != f"specimen {inp['token']} {ext}" or not np.isclose(got["scale"], inp[f"scale{k}"])
                    or np.shape(got["values"]) != arr.shape or not np.array_equal(got["values"], arr)):
                raise Failed(f"open_lazily did not return the data, axes and title of the .{ext} file at path: "
                             "open the file it is given")


class MeanPattern(Judge):
    """A lazy mean pattern of a region of the scan, selected before it is averaged."""

    lesson, grade_id, function = "00_setup", "test_ex2_mean_pattern", "mean_pattern"

    def inputs(self, rng):
        out = {}
        for k, dt in enumerate(("uint16", "float32", "uint8")):
            ny, nx = (int(v) for v in rng.integers(5, 13, 2))
            while nx == ny:
                nx = int(rng.integers(5, 13))
            ky, kx = (int(v) for v in rng.integers(4, 17, 2))
            out[f"arr{k}"] = rng.integers(0, 200, size=(ny, nx, ky, kx)).astype(dt)
            out[f"chunks{k}"] = np.asarray([rng.integers(2, 5), rng.integers(2, 5), rng.integers(ky // 2, ky + 1),
                                            rng.integers(kx // 2, kx + 1)], dtype=np.int64)
            x0 = int(rng.integers(0, nx - 2))
            y0 = int(rng.integers(0, ny - 2))
            while y0 == x0:  # so that x and y swapped select other positions
                y0 = int(rng.integers(0, ny - 2))
            out[f"region{k}"] = np.asarray([x0, int(rng.integers(x0 + 1, min(nx, x0 + 5) + 1)),
                                            y0, int(rng.integers(y0 + 1, min(ny, y0 + 4) + 1))], dtype=np.int64)
        return out

    def probe(self, fn, inp):
        from dask.callbacks import Callback

        res = []
        for k in range(3):
            arr = inp[f"arr{k}"]
            sig = _signal(arr, tuple(int(c) for c in inp[f"chunks{k}"]))
            x0, x1, y0, y1 = (int(v) for v in inp[f"region{k}"])
            computes = []
            with Callback(start=lambda dsk: computes.append(1)):
                got, err = _attempt(fn, sig, (x0, x1), (y0, y1))
            if err:
                res.append({"error": err})
                continue
            if got is None:
                res.append({"none": True})
                continue
            data = getattr(got, "data", None)
            res.append({"lazy": _is_lazy(got), "computes": len(computes), "chunks": source_chunks(got, sig.data),
                        "values": np.asarray(data.compute() if hasattr(data, "compute") else data, dtype=float)})
        return {"cases": res}

    def judge(self, inp, out):
        for k, got in enumerate(out["cases"]):
            if "error" in got:
                raise Failed(f"mean_pattern raised {got['error']}")
            if got.get("none"):
                raise Failed("mean_pattern returned None: return the lazy signal (compute() returns None)")
            if not got["lazy"] or got["computes"]:
                raise Failed("mean_pattern computed something: return a lazy signal and leave compute() to the caller")
            arr = inp[f"arr{k}"]
            x0, x1, y0, y1 = (int(v) for v in inp[f"region{k}"])
            want = arr[y0:y1, x0:x1].astype(float).mean(axis=(0, 1))
            vals = np.asarray(got["values"])
            if vals.shape != want.shape or not np.allclose(vals, want, rtol=1e-4):
                raise Failed(f"on a fresh scan of {arr.shape[1]} x {arr.shape[0]} positions, the mean pattern of "
                             f"x in [{x0}, {x1}), y in [{y0}, {y1}) is not right: select x first, then y, and "
                             "average over the probe positions only")
            cy, cx, cky, ckx = (int(c) for c in inp[f"chunks{k}"])
            ky, kx = arr.shape[2:]
            want_chunks = sorted([i, j, a, b] for i in range(y0 // cy, (y1 - 1) // cy + 1)
                                 for j in range(x0 // cx, (x1 - 1) // cx + 1)
                                 for a in range(-(-ky // cky)) for b in range(-(-kx // ckx)))
            if sorted(list(map(int, c)) for c in got["chunks"]) != want_chunks:
                raise Failed(f"mean_pattern reads {len(got['chunks'])} chunks of the data, not the "
                             f"{len(want_chunks)} that hold the region: select the positions from the signal "
                             "itself, before averaging")


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
        shapes = [tuple(int(v) for v in rng.integers(2, 40, size=n)) for n in (2, 3, 5, 4)]  # 0, 1, 3, 2 nav axes
        return {"shapes": [np.asarray(sh, dtype=np.int64) for sh in shapes + _shapes(rng, 2, (3, 4, 5))]}

    def probe(self, fn, inp):
        got = []
        for shape in inp["shapes"]:
            sig = _signal(_unreadable(tuple(int(v) for v in shape), "uint8", -1), None)
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


# ------------------------------------------------- 10: the capstone's new specimen

def _calibrated(arr, chunks, scale, ox, oy):
    """A lazy Signal2D of ``arr`` with explicit ``chunks``, one ``scale`` and offsets for kx and ky."""
    import dask.array as da

    sig = _signal(da.from_array(arr, chunks=chunks), None, scale)
    kx_ax, ky_ax = sig.axes_manager.signal_axes
    kx_ax.offset, ky_ax.offset = float(ox), float(oy)
    return sig


def _split(rng, n, lo, hi):
    """Random chunk lengths between ``lo`` and ``hi`` adding up to ``n`` (the last may be shorter)."""
    out = []
    while sum(out) < n:
        out.append(int(min(rng.integers(lo, hi + 1), n - sum(out))))
    return np.asarray(out, dtype=np.int64)


def _edges(chunks):
    return np.concatenate([[0], np.cumsum(np.asarray(chunks, dtype=np.int64))])


def _block_of(chunks, index):
    """(number, start, stop) of the chunk that holds ``index``."""
    edges = _edges(chunks)
    k = int(np.searchsorted(edges, index, side="right")) - 1
    return k, int(edges[k]), int(edges[k + 1])


def _ring_radius(rng, lo, hi):
    """A radius (in pixels) that no pixel-to-pixel distance equals: sqrt(m + 1/2) for an integer m."""
    return float(np.sqrt(int(rng.integers(lo, hi)) + 0.5))


def _centred(n, scale, offset):
    """Calibrated coordinates of an axis measured from its centre pixel (index n // 2), lesson 03's centre."""
    axis = float(offset) + float(scale) * np.arange(n)
    return axis - axis[n // 2], axis


def _memory_note(got, what):
    if got["largest"] > got["chunk_bytes"]:
        raise Failed(f"{what}: a step of your recipe makes blocks of {got['largest']} bytes, "
                     f"{got['largest'] / got['chunk_bytes']:.1f} times a chunk of the data "
                     f"({got['chunk_bytes']} bytes), over the memory budget: keep the counts in their integer "
                     "type (multiply by a boolean mask, not a float one) and sum over a detector axis before "
                     "anything becomes float")


class ChooseChunks(Judge):
    lesson, grade_id, function = "10_capstone", "test_choose_chunks", "choose_chunks"
    _dtypes = ("uint8", "uint16", "uint32", "float32")

    def inputs(self, rng):
        cases = []
        for k in range(14):
            ky, kx = (4 * int(v) for v in rng.integers(2, 70, 2))
            ny, nx = (int(v) for v in rng.integers(1, 700, 2))
            if k < 3:  # a narrow scan: a square chunk would waste the budget
                ny = int(rng.integers(1, 4))
            d = int(rng.integers(0, len(self._dtypes)))
            unit = (ky // 4) * (kx // 4) * np.dtype(self._dtypes[d]).itemsize
            budget = int(unit * rng.integers(4, 6000) + rng.integers(0, unit))
            cases.append([ny, nx, ky, kx, d, budget])
        return {"cases": np.asarray(cases, dtype=np.int64)}

    def probe(self, fn, inp):
        got = []
        for ny, nx, ky, kx, d, budget in inp["cases"].tolist():
            v, err = _attempt(fn, (ny, nx, ky, kx), self._dtypes[d], budget)
            if err:
                return {"error": err}
            try:
                got.append([int(c) for c in v])
            except (TypeError, ValueError):
                return {"error": f"it returned {v!r}, not four whole numbers"}
        return {"got": got}

    def judge(self, inp, out):
        for (ny, nx, ky, kx, d, budget), got in zip(inp["cases"].tolist(), out["got"]):
            dtype = self._dtypes[d]
            where = f"for data of shape {(ny, nx, ky, kx)} ({dtype}) and a budget of {budget} bytes"
            if len(got) != 4 or min(got) < 1:
                raise Failed(f"{where}, choose_chunks gave {tuple(got)}: give four positive lengths, numpy order "
                             "(y, x, ky, kx)")
            cy, cx, cky, ckx = got
            if (cky, ckx) != (ky // 4, kx // 4):
                raise Failed(f"{where}, the detector chunks {(cky, ckx)} do not cut the {ky} x {kx} detector into "
                             "4 x 4 equal chunks (the last two lengths, numpy order ky, kx)")
            if cy > ny or cx > nx:
                raise Failed(f"{where}, the navigation chunks {(cy, cx)} are longer than the scan {(ny, nx)}")
            nbytes = cy * cx * cky * ckx * np.dtype(dtype).itemsize
            if nbytes > budget:
                raise Failed(f"{where}, one chunk of {tuple(got)} holds {nbytes} bytes: over the budget")
            if 4 * nbytes < budget and (cy, cx) != (ny, nx):
                raise Failed(f"{where}, one chunk of {tuple(got)} holds only {nbytes} bytes, less than a quarter "
                             "of the budget: every chunk costs a task and a read, so make the navigation chunks "
                             "as large as the budget allows (longer along x when the scan is only a few rows high)")


class DefectMask(Judge):
    lesson, grade_id, function = "10_capstone", "test_defect_mask", "defect_mask"

    def inputs(self, rng):
        ny, nx = int(rng.integers(7, 13)), int(rng.integers(7, 15))
        ky, kx = int(rng.integers(10, 21)), int(rng.integers(10, 21))
        arr = rng.poisson(8.0, size=(ny, nx, ky, kx)).astype("uint16")
        cy, cx = _split(rng, ny, 2, 5), _split(rng, nx, 2, 5)
        cky, ckx = _split(rng, ky, 4, 8), _split(rng, kx, 4, 8)
        pixels = rng.choice(ky * kx, 6, replace=False)
        arr[..., pixels[0] // kx, pixels[0] % kx] = 0  # dead
        arr[..., pixels[1] // kx, pixels[1] % kx] = 0
        arr[..., pixels[2] // kx, pixels[2] % kx] = 4000  # hot
        arr[..., pixels[3] // kx, pixels[3] % kx] = 4000
        # stuck in the central navigation chunk only, and stuck everywhere but there
        _, ys, ye = _block_of(cy, ny // 2)
        _, xs, xe = _block_of(cx, nx // 2)
        arr[ys:ye, xs:xe, pixels[4] // kx, pixels[4] % kx] = 7
        arr[:, :, pixels[5] // kx, pixels[5] % kx] = 9
        arr[ys:ye, xs:xe, pixels[5] // kx, pixels[5] % kx] = rng.poisson(30.0, size=(ye - ys, xe - xs))
        return {"arr": arr, "cy": cy, "cx": cx, "cky": cky, "ckx": ckx, "scale": float(rng.uniform(0.05, 0.5))}

    def probe(self, fn, inp):
        chunks = tuple(tuple(int(v) for v in inp[k]) for k in ("cy", "cx", "cky", "ckx"))
        sig = _calibrated(inp["arr"], chunks, inp["scale"], 0.0, 0.0)
        got, err = _attempt(fn, sig)
        if err:
            return {"error": err}
        data = getattr(got, "data", got)
        lazy = hasattr(data, "dask")
        return {"lazy": lazy, "chunks": source_chunks(got, sig.data),
                "values": np.asarray(data.compute() if lazy else data).astype(bool)}

    def judge(self, inp, out):
        arr = inp["arr"]
        ny, nx = arr.shape[:2]
        iy, ys, ye = _block_of(inp["cy"], ny // 2)
        ix, xs, xe = _block_of(inp["cx"], nx // 2)
        block = arr[ys:ye, xs:xe]
        want = block.max(axis=(0, 1)) == block.min(axis=(0, 1))
        if not out["lazy"]:
            raise Failed("defect_mask must return a lazy result (a dask array or a lazy signal): nothing is read "
                         "until the caller computes it")
        got = np.squeeze(out["values"])
        if got.shape != want.shape:
            raise Failed(f"on a detector of {want.shape[0]} x {want.shape[1]} pixels (ky, kx) the mask has shape "
                         f"{got.shape}: one value per detector pixel, numpy order (ky, kx)")
        if not np.array_equal(got, want):
            whole = arr.max(axis=(0, 1)) == arr.min(axis=(0, 1))
            if np.array_equal(got, whole):
                raise Failed("your mask is that of the whole scan: use the patterns of the navigation chunk that "
                             "holds the central probe position only (a pixel can be stuck there and not elsewhere)")
            raise Failed(f"on fresh data your mask marks {int((got & ~want).sum())} pixels that change and misses "
                         f"{int((want & ~got).sum())} that keep one value across the patterns of the navigation chunk "
                         "that holds the central probe position: take that chunk's patterns, and mark the pixels "
                         "whose largest and smallest values there are equal")
        need = sorted([iy, ix, a, b] for a in range(len(inp["cky"])) for b in range(len(inp["ckx"])))
        read = [list(map(int, c)) for c in out["chunks"]]
        if read != need:
            raise Failed(f"on data with other chunks your mask reads {len(read)} chunks; the navigation chunk that "
                         f"holds the central probe position has {len(need)}: slice the navigation axes on that "
                         "chunk's edges (from signal.data.chunks)")


class CapstoneAdf(Judge):
    lesson, grade_id, function = "10_capstone", "test_adf_image", "adf_image"

    def inputs(self, rng):
        ky, kx = (int(v) for v in rng.integers(14, 26, 2))
        scale = float(rng.uniform(0.3, 0.7))
        shift = rng.uniform(1.0, 3.0, 2) * rng.choice([-1, 1], 2)  # the centre pixel is not at 0
        radii = sorted([_ring_radius(rng, 4, 20), _ring_radius(rng, 25, 60)])
        return {"arr": rng.poisson(5.0, size=(int(rng.integers(3, 7)), int(rng.integers(3, 9)), ky, kx)).astype("uint16"),
                "scale": scale, "ox": float((-(kx // 2) + shift[0]) * scale), "oy": float((-(ky // 2) + shift[1]) * scale),
                "radii": np.array([radii, [0.0, _ring_radius(rng, 2, 12)]]) * scale,
                "one": rng.integers(0, 3, 2)}

    def probe(self, fn, inp):
        from .measure import largest_block, max_chunk_bytes

        arr = inp["arr"]
        chunks = (3, 3, -(-arr.shape[2] // 2), -(-arr.shape[3] // 2))
        sig = _calibrated(arr, chunks, inp["scale"], inp["ox"], inp["oy"])
        res = []
        for inner, outer in inp["radii"].tolist():
            got, err = _attempt(fn, sig, inner, outer)
            if err:
                return {"error": err}
            lazy = _is_lazy(got)
            if not lazy:
                res.append({"lazy": False})
                continue
            (values,), largest = largest_block(got.data, exclude=[sig.data])
            res.append({"lazy": True, "values": np.asarray(values, dtype=float), "largest": largest,
                        "chunk_bytes": max_chunk_bytes(sig.data)})
        j, i = (int(v) for v in inp["one"])
        one = _calibrated(arr[j, i], chunks[2:], inp["scale"], inp["ox"], inp["oy"])
        inner, outer = inp["radii"][0].tolist()
        got, err = _attempt(fn, one, inner, outer)
        if err:
            return {"cases": res, "one_error": err}
        data = getattr(got, "data", got)
        return {"cases": res, "one": np.asarray(data.compute() if hasattr(data, "compute") else data, dtype=float)}

    def judge(self, inp, out):
        arr, scale = inp["arr"], float(inp["scale"])
        dkx, kx = _centred(arr.shape[3], scale, inp["ox"])
        dky, ky = _centred(arr.shape[2], scale, inp["oy"])
        r = np.hypot(dkx[np.newaxis, :], dky[:, np.newaxis])
        r0 = np.hypot(kx[np.newaxis, :], ky[:, np.newaxis])
        for (inner, outer), got in zip(inp["radii"].tolist(), out["cases"]):
            if not got["lazy"]:
                raise Failed("adf_image must return a lazy signal (do not compute it)")
            want = (arr * ((r >= inner) & (r <= outer))).sum(axis=(2, 3))
            values = np.squeeze(got["values"])
            if values.shape != want.shape:
                raise Failed(f"on a scan of {want.shape} probe positions (y, x) the ADF image has shape "
                             f"{values.shape}: one value per probe position")
            if not np.allclose(values, want):
                if np.allclose(values, (arr * ((r0 >= inner) & (r0 <= outer))).sum(axis=(2, 3))):
                    raise Failed("on a detector whose centre pixel is not at 0 mrad your ring is centred on 0 mrad: "
                                 "measure r from the pixel at index size // 2 of each signal axis (lesson 03)")
                raise Failed(f"on a fresh dataset the ADF image for {inner:.3f} <= r <= {outer:.3f} differs from the "
                             "sum over that ring (r measured from the centre pixel, index size // 2 of each axis)")
            _memory_note(got, "adf_image")
        if "one_error" in out:
            raise Failed(f"adf_image failed on a single pattern (a signal with no navigation axes) with "
                         f"{out['one_error']}: sum over the signal axes by name (axis=\"sig\"), not by their numbers")
        j, i = (int(v) for v in inp["one"])
        inner, outer = inp["radii"][0].tolist()
        want = (arr[j, i] * ((r >= inner) & (r <= outer))).sum()
        if np.asarray(out["one"]).size != 1 or not np.isclose(float(np.asarray(out["one"]).ravel()[0]), want):
            raise Failed("adf_image of a single pattern (a signal with no navigation axes) is not the sum over "
                         "the ring of that pattern")


class CentralCrop(Judge):
    lesson, grade_id, function = "10_capstone", "test_central_crop", "central_crop"

    def inputs(self, rng):
        out = {}
        for k in range(3):
            ky, kx = (int(v) for v in rng.integers(12, 31, 2))
            scale = float(rng.uniform(0.05, 0.5))
            reach = int(rng.integers(1, 4 if k == 0 else min(ky, kx) // 2 + (2 if k == 2 else 0)))
            if k == 0:  # the pixels needed end on chunk edges: one pixel more reads more chunks
                cky, ckx = ([*_split(rng, n // 2 + reach + 1, 3, 8), *_split(rng, n - n // 2 - reach - 1, 3, 8)]
                            for n in (ky, kx))
            else:
                cky, ckx = _split(rng, ky, 3, 8), _split(rng, kx, 3, 8)
            out.update({f"arr{k}": rng.integers(0, 2**16, size=(int(rng.integers(2, 5)), int(rng.integers(2, 5)), ky, kx)
                                                ).astype("uint16"),
                        f"cky{k}": np.asarray(cky, dtype=np.int64), f"ckx{k}": np.asarray(ckx, dtype=np.int64),
                        f"scale{k}": scale,
                        f"ox{k}": float(rng.uniform(-1.0, 1.0)), f"oy{k}": float(rng.uniform(-1.0, 1.0)),
                        f"radius{k}": (reach + float(rng.uniform(0.2, 0.8))) * scale})
        return out

    def probe(self, fn, inp):
        res = []
        for k in range(3):
            arr = inp[f"arr{k}"]
            chunks = (2, 2, tuple(int(v) for v in inp[f"cky{k}"]), tuple(int(v) for v in inp[f"ckx{k}"]))
            sig = _calibrated(arr, chunks, inp[f"scale{k}"], inp[f"ox{k}"], inp[f"oy{k}"])
            crop, err = _attempt(fn, sig, float(inp[f"radius{k}"]))
            if err:
                return {"error": err}
            if not _is_lazy(crop):
                res.append({"lazy": False})
                continue
            res.append({"lazy": True, "shape": list(crop.data.shape),
                        "offsets": [float(a.offset) for a in crop.axes_manager.signal_axes],
                        "chunks": source_chunks(crop, sig.data), "values": np.asarray(crop.data[0, 0].compute())})
        return {"cases": res}

    def judge(self, inp, out):
        for k, got in enumerate(out["cases"]):
            arr, scale, radius = inp[f"arr{k}"], float(inp[f"scale{k}"]), float(inp[f"radius{k}"])
            ny, nx, ky, kx = arr.shape
            if not got["lazy"]:
                raise Failed("central_crop must return a lazy signal (do not compute it)")
            if len(got["shape"]) != 4 or got["shape"][:2] != [ny, nx]:
                raise Failed(f"the crop has shape {tuple(got['shape'])}: keep every probe position and crop the "
                             "detector only (isig)")
            reach = int(np.floor(radius / scale))  # pixels within the radius, each way from the centre pixel
            lo = [max(n // 2 - reach, 0) for n in (kx, ky)]
            hi = [min(n // 2 + reach, n - 1) for n in (kx, ky)]
            starts = [int(round((off - float(inp[f"o{a}{k}"])) / scale)) for off, a in zip(got["offsets"], "xy")]
            stops = [starts[0] + got["shape"][3], starts[1] + got["shape"][2]]
            where = (f"on a {ky} x {kx} detector with chunks {tuple(int(c) for c in inp[f'cky{k}'])} x "
                     f"{tuple(int(c) for c in inp[f'ckx{k}'])}")
            if any(s > a for s, a in zip(starts, lo)) or any(e <= b for e, b in zip(stops, hi)):
                raise Failed(f"{where} and a radius of {radius / scale:.2f} pixels the crop (kx {starts[0]}:{stops[0]}, "
                             f"ky {starts[1]}:{stops[1]}) leaves out pixels within the radius of the centre pixel "
                             "(index size // 2 of each axis)")
            if not np.array_equal(got["values"], arr[0, 0, starts[1]:stops[1], starts[0]:stops[0]]):
                raise Failed("the cropped values do not match the detector pixels at the crop's axes")
            ya, yb = _block_of(inp[f"cky{k}"], lo[1])[0], _block_of(inp[f"cky{k}"], hi[1])[0]
            xa, xb = _block_of(inp[f"ckx{k}"], lo[0])[0], _block_of(inp[f"ckx{k}"], hi[0])[0]
            want = sorted([i, j, a, b] for i in range(-(-ny // 2)) for j in range(-(-nx // 2))
                          for a in range(ya, yb + 1) for b in range(xa, xb + 1))
            read = [list(map(int, c)) for c in got["chunks"]]
            if read != want:
                raise Failed(f"{where} and a radius of {radius / scale:.2f} pixels your crop reads {len(read)} chunks; "
                             f"the pixels within the radius need only {len(want)}: a crop that reaches one pixel "
                             "into a chunk reads that whole chunk")


class CapstoneCentreOfMass(Judge):
    lesson, grade_id, function = "10_capstone", "test_centre_of_mass", "centre_of_mass"

    def inputs(self, rng):
        ky, kx = (int(v) for v in rng.integers(16, 25, 2))
        scale = float(rng.uniform(0.2, 0.6))
        shift = rng.uniform(1.0, 3.0, 2) * rng.choice([-1, 1], 2)
        good = np.ones((ky, kx), dtype=bool)
        r = np.hypot(*np.meshgrid(np.arange(kx) - kx // 2, np.arange(ky) - ky // 2))
        near = np.flatnonzero(r.ravel() < 2.5)  # inside every radius drawn below
        good.flat[rng.choice(near, 3, replace=False)] = False
        arr = rng.poisson(6.0, size=(int(rng.integers(3, 7)), int(rng.integers(3, 8)), ky, kx)).astype("uint16")
        arr[..., ~good] = 3000  # hot pixels near the centre: they must be left out
        return {"arr": arr, "good": good, "scale": scale, "ox": float((-(kx // 2) + shift[0]) * scale),
                "oy": float((-(ky // 2) + shift[1]) * scale),
                "radii": np.array([_ring_radius(rng, 8, 30), _ring_radius(rng, 30, 80)]) * scale,
                "one": rng.integers(0, 3, 2)}

    def _run(self, fn, sig, radius, good):
        from .measure import largest_block, max_chunk_bytes

        got, err = _attempt(fn, sig, radius, good)
        if err:
            return {"error": err}
        try:
            cx, cy = got
        except (TypeError, ValueError):
            return {"error": f"it returned {type(got).__name__}, not the pair (cx, cy)"}
        cx, cy = getattr(cx, "data", cx), getattr(cy, "data", cy)
        if not (hasattr(cx, "dask") and hasattr(cy, "dask")):
            return {"lazy": False}
        (vx, vy), largest = largest_block(cx, cy, exclude=[sig.data])
        return {"lazy": True, "cx": np.asarray(vx, dtype=float), "cy": np.asarray(vy, dtype=float),
                "largest": largest, "chunk_bytes": max_chunk_bytes(sig.data)}

    def probe(self, fn, inp):
        arr, good = inp["arr"], np.asarray(inp["good"], dtype=bool)
        chunks = (2, 3, -(-arr.shape[2] // 2), -(-arr.shape[3] // 2))
        sig = _calibrated(arr, chunks, inp["scale"], inp["ox"], inp["oy"])
        res = [self._run(fn, sig, float(radius), good) for radius in inp["radii"].tolist()]
        j, i = (int(v) for v in inp["one"])
        one = _calibrated(arr[j, i], chunks[2:], inp["scale"], inp["ox"], inp["oy"])
        return {"cases": res, "one": self._run(fn, one, float(inp["radii"][0]), good)}

    def _reference(self, arr, inp, radius, good=True, centred=True):
        dkx, kx = _centred(arr.shape[-1], inp["scale"], inp["ox"])
        dky, ky = _centred(arr.shape[-2], inp["scale"], inp["oy"])
        x, y = (dkx, dky) if centred else (kx, ky)
        w = arr * ((np.hypot(dkx[np.newaxis, :], dky[:, np.newaxis]) <= radius) & good)
        total = w.sum(axis=(-2, -1))
        return (w * x[np.newaxis, :]).sum(axis=(-2, -1)) / total, (w * y[:, np.newaxis]).sum(axis=(-2, -1)) / total

    def _compare(self, got, arr, inp, radius, what):
        if "error" in got:
            raise Failed(f"centre_of_mass failed {what} with {got['error']}"
                         + (": work on the last two axes (the detector), whatever comes before them"
                            if "single" in what else ""))
        if not got["lazy"]:
            raise Failed("centre_of_mass must return two lazy results (dask arrays or lazy signals): do not compute")
        good = np.asarray(inp["good"], dtype=bool)
        cx, cy = self._reference(arr, inp, radius, good)
        gx, gy = np.squeeze(got["cx"]), np.squeeze(got["cy"])
        if gx.shape != np.shape(cx) or gy.shape != np.shape(cy):
            raise Failed(f"{what}, cx and cy have shapes {gx.shape} and {gy.shape}, not {np.shape(cx)}: one value "
                         "per probe position, numpy order (y, x)")
        if np.allclose(gx, cx, rtol=1e-6) and np.allclose(gy, cy, rtol=1e-6):
            return
        if np.allclose(gx, cy, rtol=1e-6) and np.allclose(gy, cx, rtol=1e-6):
            raise Failed(f"{what}, cx and cy are swapped: kx runs along the last numpy axis, ky along the one before")
        if np.allclose(gx, self._reference(arr, inp, radius)[0], rtol=1e-6):
            raise Failed(f"{what}, the defective pixels (False in good) are still in your sums: leave them out")
        if np.allclose(gx, self._reference(arr, inp, radius, good, centred=False)[0], rtol=1e-6):
            raise Failed(f"{what}, the coordinates are measured from 0 mrad: measure them from the centre pixel "
                         "(index size // 2 of each signal axis), as the radius is")
        raise Failed(f"{what}, the centre of mass differs from the reference (r <= radius from the centre pixel, "
                     "good pixels only, coordinates from the centre pixel)")

    def judge(self, inp, out):
        arr = inp["arr"]
        for radius, got in zip(inp["radii"].tolist(), out["cases"]):
            self._compare(got, arr, inp, radius, f"on a fresh scan with radius {radius:.3f}")
            _memory_note(got, "centre_of_mass")
        j, i = (int(v) for v in inp["one"])
        self._compare(out["one"], arr[j, i], inp, float(inp["radii"][0]),
                      "on a single pattern (a signal with no navigation axes)")


# One line per lesson, so that lessons can gain judges independently.
JUDGES = {(j.lesson, j.grade_id): j for j in (
    NumpyShapes(), MeanPattern(),  # 00
    ChunksTouched(), SqrtSumPerPosition(),  # 01
    OpenLazily(), SumNbytes(), Choice("02_loading", "test_ex3_faster_format", "faster_format"),  # 02
    AnnulusRadii(), AdfImage(),  # 03
    ChunksRead(), TransposeReads(), Choice("04_chunking", "test_ex04_transpose_quiz", "transpose_answer"), PatternChunks(),  # 04
    SafeDtype(), RebinnedNbytes(), RebinLossless(),  # 05
    ComSafe(), DomainMap(), MapBlockNbytes(),  # 06
    QuarterCrop(), FractionRead(),  # 07
    StartingValues(), CentreMap(),  # 08
    ComputeOnCluster(), MemoryLimitFor(), BlocksForLimit(), Choice("09_scaling_out", "test_format_choice", "answer"),  # 09
    ChooseChunks(), DefectMask(), CapstoneAdf(), CentralCrop(), CapstoneCentreOfMass(),  # 10
)}


def for_lesson(lesson: str) -> dict:
    """grade_id -> judge, for the judged test cells of ``lesson``."""
    return {gid: j for (les, gid), j in JUDGES.items() if les == lesson}


# ------------------------------------------------------- grader and kernel

def _input_file(folder, judge) -> Path:
    return Path(folder) / f"{judge.lesson}-{judge.grade_id}.json"


def shown(inp: dict) -> dict:
    """The inputs the learner's kernel may see: keys starting with "_" are the judge's alone."""
    return {k: v for k, v in inp.items() if not k.startswith("_")}


def _kept_file(folder, judge) -> Path:
    return Path(folder) / f"{judge.lesson}-{judge.grade_id}.judge.json"


def write_inputs(judge: Judge, folder: Path, seed: int | None = None, private: Path | None = None) -> dict:
    """Draw the inputs of ``judge`` (a fresh seed unless given) and write them.

    What the probe needs goes to ``folder`` (shown to the kernel); values only
    the judge needs (keys starting with "_", e.g. a specimen's true shifts) go
    to ``private``, a folder the kernel cannot see (``folder`` when not given).
    """
    rng = np.random.default_rng(secrets.randbits(64) if seed is None else seed)
    inp = judge.inputs(rng)
    _input_file(folder, judge).write_text(json.dumps(pack(shown(inp))))
    kept = {k: v for k, v in inp.items() if k not in shown(inp)}
    if kept:
        _kept_file(private or folder, judge).write_text(json.dumps(pack(kept)))
    return inp


def read_inputs(judge: Judge, folder: Path, private: Path | None = None) -> dict:
    """The inputs written by :func:`write_inputs`; with ``private``, also the judge's own values."""
    inp = unpack(json.loads(_input_file(folder, judge).read_text()))
    if private is not None and _kept_file(private, judge).exists():
        inp.update(unpack(json.loads(_kept_file(private, judge).read_text())))
    return inp


def decide(judge: Judge, export, folder, private: Path | None = None) -> str | None:
    """None when the exported results pass, else the message to record (``private``: see write_inputs)."""
    if export is None:
        return ("the grader's tests of this cell did not run to the end (no results came back from "
                "the notebook): make sure the cells above run without stopping the kernel")
    if isinstance(export, dict) and "error" in export:
        return f"{judge.function} raised {export['error']}"
    try:
        judge.judge(read_inputs(judge, folder, private or folder), export)
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
    judge.judge(unpack(pack(inp)), unpack(pack(judge.probe(fn, unpack(pack(shown(inp)))))))
