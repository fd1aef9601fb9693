"""Feedback for learners: checks that say what was expected, what was found,
and what to try.

Every check raises :class:`CheckFailed` (an ``AssertionError``, so nbgrader
counts it as a failed test) with a message written for the learner, or
returns quietly. These give the *visible* feedback in the lessons; the
hidden tests compute their own references and do not rely on this module.
"""

from __future__ import annotations

import numpy as np


class CheckFailed(AssertionError):
    """A learner's answer is not right yet; the message says why and what to try."""


BLANK = ("this exercise is not answered yet: write your answer in the exercise cell above "
         "(in place of `raise NotImplementedError()`), run that cell, then run this one again.")


def _from_a_cell(tb) -> bool:
    """True when the innermost frame of ``tb`` is code typed in a notebook cell."""
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    name = tb.tb_frame.f_code.co_filename if tb is not None else ""
    return "ipykernel_" in name or name.startswith("<ipython-input")


def _show_check_failed(shell, etype, value, tb, tb_offset=None):
    """Show a failed check as its message, not as a traceback into this module.

    The untouched exercise template (``raise NotImplementedError()`` typed in
    a cell) is shown as the message :data:`BLANK`; any other error as usual.
    The cell still ends in an error, so nbgrader counts the test as failed,
    and the feedback it generates shows exactly this message.
    """
    if issubclass(etype, CheckFailed):
        stb = [f"\x1b[0;31mCheckFailed\x1b[0m: {value}"]
    elif issubclass(etype, NotImplementedError) and not str(value) and _from_a_cell(tb):
        stb = [f"\x1b[0;31mNot answered yet\x1b[0m: {BLANK}"]
    else:
        stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
    shell._showtraceback(etype, value, stb)
    return stb


def _install_display():
    try:
        shell = get_ipython()  # noqa: F821 (defined inside IPython only)
    except NameError:
        return
    if shell is not None and hasattr(shell, "set_custom_exc"):
        shell.set_custom_exc((CheckFailed, NotImplementedError), _show_check_failed)


_install_display()


def _direction(expected, got) -> str:
    """ "too large" / "too small" for two numbers, with a word on the usual slips."""
    try:
        e, g = float(expected), float(got)
    except (TypeError, ValueError):
        return ""
    if g == e:
        return ""
    words = " (too large)" if g > e else " (too small)"
    if abs(g - e) == 1 and float(e).is_integer():
        words += "; it is off by one: check where a range starts and whether its end is included"
    elif e and g and (max(e, g) / min(e, g)) in (2, 4, 8) and e * g > 0:
        words += "; it is off by a whole factor: check the bytes per value (the dtype) and each axis length"
    return words


def _fail(what: str, expected, got, hint: str = "", show_expected: bool = False):
    """Raise CheckFailed; the expected value is shown only for what is not the answer (a shape)."""
    if show_expected:
        msg = f"{what}: expected {expected}, got {got}."
    else:
        shown = repr(got) if isinstance(got, str) else str(got)
        msg = f"{what}: {shown} is not right yet{_direction(expected, got)}."
    if hint:
        msg += f" Hint: {hint}"
    raise CheckFailed(msg)


def _data(obj):
    """The array behind a HyperSpy signal, or the object itself."""
    if isinstance(obj, np.ndarray):  # its .data is a raw memory buffer, not the values
        return obj
    return getattr(obj, "data", obj)


def is_lazy(obj) -> bool:
    """True for a lazy HyperSpy signal or a dask array (nothing computed yet)."""
    if hasattr(obj, "_lazy"):
        return bool(obj._lazy)
    import dask.array as da

    return isinstance(obj, da.Array)


def _blank(value) -> bool:
    """The exercise template: a function whose whole body raises NotImplementedError."""
    code = getattr(value, "__code__", None)
    return code is not None and tuple(code.co_names) == ("NotImplementedError",)


def check_defined(namespace: dict, *names: str):
    """Check that the exercise's variables exist and are answered (the learner ran the cell)."""
    blank = [n for n in names if n in namespace and _blank(namespace[n])]
    if blank:
        raise CheckFailed(f"{', '.join(blank)}: {BLANK}")
    missing = [n for n in names if n not in namespace or namespace[n] is None]
    if missing:
        raise CheckFailed(
            f"{', '.join(missing)} is not defined yet (or is None): {BLANK} "
            "Remember that HyperSpy's compute() returns None: keep the signal, not what compute() returns."
        )


def check_lazy(obj, what: str = "your result"):
    """The object must still be lazy: nothing computed before the last step."""
    if obj is None:
        raise CheckFailed(
            f"{what} is None. HyperSpy's compute() works in place and returns None; "
            "keep a reference to the signal instead of the value compute() returns."
        )
    if not is_lazy(obj):
        raise CheckFailed(
            f"{what} is already in memory ({type(obj).__name__}) - keep it lazy. Open the file "
            "with lazy=True, and leave out .compute(), np.asarray() or anything else that makes "
            "numbers before the last step, so that only the last step reads the data."
        )


def check_computed(obj, what: str = "your result"):
    """The object must hold numbers in memory (a computed signal or a numpy array)."""
    if obj is None:
        raise CheckFailed(
            f"{what} is None. s.compute() returns None; call it on its own line and keep s."
        )
    if is_lazy(obj):
        raise CheckFailed(f"{what} is still lazy: call .compute() on it as the last step.")


def _counting_computes():
    """A dask callback and the list it appends to each time a computation starts."""
    from dask.callbacks import Callback

    started = []
    return Callback(start=lambda dsk: started.append(1)), started


def check_open_lazily(func, path, what: str = "open_lazily(path)"):
    """The function must open the ``.zspy`` file at ``path`` lazily, reading none of its data.

    Returns the signal it opened.
    """
    from .measure import count_reads

    callback, computes = _counting_computes()
    with count_reads() as reads, callback:
        opened = check_runs(func, path, what=what)
    if opened is None:
        raise CheckFailed(f"{what} returned None: return the signal that hs.load gives you. (If you "
                          "called .compute() on it: HyperSpy's compute() returns None, and it reads everything.)")
    if not is_lazy(opened):
        if computes:
            raise CheckFailed(f"{what} returned the data in memory because it was computed: remove the "
                              ".compute(), the caller decides when to read.")
        raise CheckFailed(f"{what} read the whole file into memory ({type(opened).__name__}): hs.load reads "
                          "everything unless you pass lazy=True.")
    if reads.chunks or computes:
        raise CheckFailed(f"{what} is lazy, but {reads.chunks} chunks of the file were read while opening it "
                          "(a full load made lazy afterwards?): open it with hs.load(path, lazy=True) directly.")
    return opened


def check_mean_pattern(func, signal):
    """``func(signal, x_range, y_range)``: a lazy mean pattern reading only the chunks of the region."""
    nx, ny = signal.axes_manager.navigation_shape
    cy, cx = signal.data.chunksize[:2]
    x_range, y_range = (1, min(nx, cx + 1)), (0, min(ny, cy, 2))  # wider than tall, in the first chunks
    what = f"mean_pattern(s, {x_range}, {y_range})"
    callback, computes = _counting_computes()
    with callback:
        got = check_runs(func, signal, x_range, y_range, what=what)
    check_lazy(got, what)
    if computes:
        raise CheckFailed(f"{what} computed something while it ran: build the result lazily and leave "
                          "compute() to the caller.")
    sig_shape = signal.data.shape[signal.axes_manager.navigation_dimension:]
    if tuple(_data(got).shape) != tuple(sig_shape):
        hint = ("it has the scan's shape: average over the probe positions (the navigation axes), "
                "not over the detector." if tuple(_data(got).shape) == (y_range[1] - y_range[0], x_range[1] - x_range[0])
                else "average over the probe positions of the region, keeping the detector axes.")
        _fail(f"the shape of {what}", sig_shape, tuple(_data(got).shape), hint, show_expected=True)
    read, total = source_chunks_read(got, signal)
    if read == 0:
        raise CheckFailed(f"{what} reads none of the dataset's chunks: build it from the signal itself "
                          "(s.inav[...]), not from a computed copy of its data.")
    region = signal.data[y_range[0]:y_range[1], x_range[0]:x_range[1]]
    ref = np.asarray(region.mean(axis=(0, 1)).compute(), dtype=float)
    check_close(_data(got), ref, f"the values of {what}",  # computed here, after the checks above
                rtol=1e-5, hint="s.inav takes x first, then y (HyperSpy order); the ranges stop before their end.")
    wanted = source_chunks_read(region, signal)[0]
    if read > wanted:
        raise CheckFailed(f"computing {what} would read {read} of the {total} chunks, more than the region "
                          "needs: select the probe positions first, then average.")


def check_sum_nbytes(func, signal):
    """``func(navigation_shape, signal_shape, dtype)`` must give the bytes of ``signal.sum()`` for two dtypes."""
    nav, sig = signal.axes_manager.navigation_shape, signal.axes_manager.signal_shape
    nav_axes = tuple(range(signal.axes_manager.navigation_dimension))
    for dtype in (signal.data.dtype, np.dtype("float32")):
        what = f"sum_nbytes({nav}, {sig}, {np.dtype(dtype).name!r})"
        got = check_runs(func, nav, sig, np.dtype(dtype), what=what)
        lazy_sum = signal.data.astype(dtype).sum(axis=nav_axes)  # lazy: its size is known, nothing is read
        want = int(lazy_sum.nbytes)
        if isinstance(got, bool) or not isinstance(got, (int, float, np.integer, np.floating)):
            raise CheckFailed(f"{what} returned {got!r}: return the number of bytes as an integer.")
        if int(got) == want:
            continue
        per_value = np.dtype(dtype).itemsize
        hint = ""
        if int(got) == int(np.prod(sig)) * per_value and per_value != lazy_sum.dtype.itemsize:
            hint = "the sum of integers is not stored in the data's dtype: numpy adds integers in 64 bits."
        elif int(got) in (int(np.prod(nav)) * int(np.prod(sig)) * k for k in (per_value, lazy_sum.dtype.itemsize)):
            hint = "that counts every probe position: the sum keeps only the signal axes."
        elif int(got) == int(np.prod(nav)) * lazy_sum.dtype.itemsize:
            hint = "that is one value per probe position: signal.sum() adds over the navigation axes."
        _fail(what, want, int(got), hint)


def check_shape(obj, expected, what: str = "the shape"):
    """Compare shapes (numpy order for arrays, or a signal's data shape)."""
    got = tuple(np.shape(_data(obj)))  # an array's own .shape, or a nested list's
    expected = tuple(expected)
    if got != expected:
        hint = ""
        if sorted(got) == sorted(expected):
            hint = "the lengths are right but in another order: check the axis order (try .T)."
        _fail(what, expected, got, hint, show_expected=True)


def check_dtype(obj, allowed, what: str = "the dtype", hint: str = ""):
    """The data type must be one of ``allowed`` (a dtype or a list of them)."""
    allowed = [np.dtype(a) for a in np.atleast_1d(allowed)]
    got = np.dtype(_data(obj).dtype)
    if got not in allowed:
        _fail(what, allowed, got, hint)  # the allowed types are the answer: not shown


def check_close(got, expected, what: str = "the values", rtol: float = 1e-6, atol: float = 0.0,
                hint: str = ""):
    """Numbers must agree with the reference within the tolerances."""
    got_arr = np.asarray(_data(got), dtype=float)
    exp_arr = np.asarray(_data(expected), dtype=float)
    if got_arr.shape != exp_arr.shape:
        _fail(f"{what} (shape)", exp_arr.shape, got_arr.shape, hint, show_expected=True)
    bad = ~np.isclose(got_arr, exp_arr, rtol=rtol, atol=atol, equal_nan=True)
    if bad.any():
        i = np.unravel_index(np.argmax(bad), bad.shape) if bad.ndim else ()
        where = f" first at index {tuple(int(v) for v in i)}:" if bad.ndim else ""
        raise CheckFailed(
            f"{what}: {int(bad.sum())} of {bad.size} values are not right yet;{where} "
            f"{got_arr[i]:.6g}{_direction(exp_arr[i], got_arr[i])}."
            + (f" Hint: {hint}" if hint else "")
        )


def source_chunks_read(derived, source) -> tuple[int, int]:
    """How many chunks of ``source`` computing ``derived`` would read.

    Parameters
    ----------
    derived, source : dask array or lazy signal
        ``derived`` is computed from ``source`` (a crop, a slice, a sum).

    Returns
    -------
    (read, total) : tuple of int
    """
    from dask.core import flatten
    from dask.optimization import cull

    d, s = _data(derived), _data(source)
    graph = dict(d.__dask_graph__())
    needed, _ = cull(graph, list(flatten(d.__dask_keys__())))
    total = len(list(flatten(s.__dask_keys__())))
    read = sum(1 for k in needed if isinstance(k, tuple) and k and k[0] == s.name)
    return read, total


def check_read_fraction(derived, source, expected: float, what: str = "your crop"):
    """The crop or slice must read the expected fraction of ``source``'s chunks."""
    check_lazy(derived, what)
    read, total = source_chunks_read(derived, source)
    if read == 0:
        raise CheckFailed(
            f"{what} reads none of the dataset's chunks: make it from the dataset signal itself "
            "(for example s.isig[...]), not from a copy or new array."
        )
    frac = read / total
    if not np.isclose(frac, expected):
        chunks = _data(source).chunksize
        hint = (
            f"align the crop to the chunk edges: start and stop at multiples of the chunk "
            f"size ({chunks[-1]} detector pixels here)."
            if frac > expected else "the crop reads less than asked: check its bounds."
        )
        raise CheckFailed(
            f"{what} reads {read} of {total} chunks ({frac:.0%}); the goal is {expected:.0%}. Hint: {hint}"
        )


def check_correlated(got, reference, min_r: float = 0.9, what: str = "your map", sign_free: bool = False):
    """A map must follow the reference pattern (Pearson r >= ``min_r``)."""
    g = np.asarray(_data(got), dtype=float).ravel()
    r_ = np.asarray(_data(reference), dtype=float).ravel()
    if g.shape != r_.shape:
        _fail(f"{what} (size)", r_.shape, g.shape, "compare maps of the same scan.", show_expected=True)
    ok = np.isfinite(g) & np.isfinite(r_)
    if g[ok].std() == 0:
        raise CheckFailed(f"{what} is constant: it shows no structure at all.")
    r = float(np.corrcoef(g[ok], r_[ok])[0, 1])
    if sign_free:
        r = abs(r)
    if r < min_r:
        raise CheckFailed(
            f"{what} does not follow the expected pattern: correlation {r:.2f}, at least {min_r:.2f} "
            "needed. Check the axis order (x versus y) and what is subtracted."
        )


def check_equal(got, expected, what: str = "your answer", hint: str = ""):
    """An exact answer (a number, a tuple of lengths, a string) must equal ``expected``.

    Tuples and lists compare alike; when ``got`` has the right items in
    another order, the message says so.
    """
    norm = (lambda v: tuple(v) if isinstance(v, (list, tuple)) else v)
    g, e = norm(got), norm(expected)
    if isinstance(g, tuple) and isinstance(e, tuple):
        g = tuple(int(v) if isinstance(v, (int, np.integer)) else v for v in g)
    elif isinstance(g, np.integer):
        g = int(g)
    if g != e:
        if not hint and isinstance(g, tuple) and isinstance(e, tuple) and sorted(g) == sorted(e):
            hint = "the items are right but in another order (numpy order is the reverse of HyperSpy's)."
        _fail(what, e, g, hint)


def check_runs(func, *args, what: str = "your function", hint: str = ""):
    """Call the learner's function; an error inside it becomes a message, not a traceback.

    Returns what the function returns.
    """
    try:
        return func(*args)
    except CheckFailed:
        raise
    except NotImplementedError as err:
        if not str(err):
            raise CheckFailed(f"{what}: {BLANK}") from None
        raise
    except Exception as err:  # the learner's code: any error is feedback
        raise CheckFailed(f"{what} failed with {type(err).__name__}: {err}."
                          + (f" Hint: {hint}" if hint else "")) from None


def passed(what: str):
    """The line every exercise prints when its visible checks pass."""
    print(f"Well done: {what}")


def check_choice(answer, options, what: str = "your choice"):
    """A multiple-choice answer must be one of ``options`` (letters such as "A"-"D")."""
    if not isinstance(answer, str) or answer.strip().upper() not in [o.upper() for o in options]:
        raise CheckFailed(
            f"{what} is {answer!r}; write one of {', '.join(repr(o) for o in options)} "
            "as a string, for example answer = \"A\"."
        )


def check_quiz(lesson: str, variable: str, answer):
    """Instant feedback on a multiple-choice answer: why the chosen letter is right or wrong.

    A wrong letter fails with its reason (and asks for another try); the right
    one prints the success line with its reason. The letters and reasons live
    in :mod:`lazysignals.quizzes`; the graded answer is judged again by the grader.
    """
    from .quizzes import quiz

    q = quiz(lesson, variable)
    options = sorted(q["why"])
    check_choice(answer, options, variable)
    letter = answer.strip().upper()
    if letter != q["answer"]:
        raise CheckFailed(f"{variable} = {letter!r} is not the best answer: {q['why'][letter]} "
                          "Read the choices again and try another letter.")
    passed(f"{letter} is right: {q['why'][letter]}")


def check_annulus(signal, inner: float, outer: float):
    """An ADF ring must clear the bright-field disk everywhere and fit the detector.

    Uses the signal's convergence angle and, for the synthetic data, the
    disk's wander stored in the ground truth; radii in signal-axis units.
    """
    kx, ky = signal.axes_manager.signal_axes
    try:
        inner, outer = float(inner), float(outer)
    except (TypeError, ValueError):
        raise CheckFailed(f"the radii should be two numbers, got {inner!r} and {outer!r}.") from None
    disk = float(signal.metadata.Acquisition_instrument.TEM.convergence_angle)
    wander = 0.0
    try:
        gt = signal.metadata.Sample.ground_truth
        wander = float(np.hypot(np.asarray(gt.shift_x), np.asarray(gt.shift_y)).max())
    except AttributeError:
        pass
    reach = disk + (wander + 0.5) * kx.scale
    if inner < reach:
        raise CheckFailed(
            f"inner radius {inner:.3f} {kx.units}: the bright-field disk (radius {disk:.3f}) wanders by "
            f"up to {wander * kx.scale:.3f} {kx.units}, so it reaches {reach:.3f} {kx.units} at some "
            "probe positions. Move the inner radius out."
        )
    cx, cy = kx.axis[kx.size // 2], ky.axis[ky.size // 2]
    edge = min(cx - kx.axis[0], kx.axis[-1] - cx, cy - ky.axis[0], ky.axis[-1] - cy)
    if outer > edge + 1e-9:
        raise CheckFailed(
            f"outer radius {outer:.3f} {kx.units} goes past the detector edge, {edge:.3f} {kx.units} "
            "from the centre: take it from the signal axes."
        )
    if outer - inner < 2 * kx.scale - 1e-9:
        raise CheckFailed(
            f"the ring is {(outer - inner) / kx.scale:.1f} pixels wide; make it at least 2 pixels "
            f"({2 * kx.scale:.3f} {kx.units})."
        )


def check_chunk_choice(chunks, shape, dtype, budget, what: str = "choose_chunks"):
    """Chunks (numpy order) for ``shape`` must cut the detector 4 x 4, fit ``budget`` bytes and not waste it."""
    from .judges import ChooseChunks, Failed

    try:
        got = [int(c) for c in chunks]
    except (TypeError, ValueError):
        raise CheckFailed(f"{what} returned {chunks!r}: return four whole numbers, numpy order (y, x, ky, kx).") from None
    dtypes = [np.dtype(d) for d in ChooseChunks._dtypes]
    case = [*[int(n) for n in shape], dtypes.index(np.dtype(dtype)), int(budget)]
    try:
        ChooseChunks().judge({"cases": np.asarray([case])}, {"got": [got]})
    except Failed as e:
        raise CheckFailed(f"{what}: {e}.") from None


def check_block_budget(source, *results, what: str = "your recipe"):
    """No step of the recipes of ``results`` may make a block larger than a chunk of ``source``.

    Computes ``results`` step by step (:func:`lazysignals.measure.largest_block`):
    give it a small piece of the data, such as one navigation chunk.
    """
    from .measure import largest_block, max_chunk_bytes

    for r in results:
        check_lazy(r, what)
    _, largest = largest_block(*results, exclude=[source])
    chunk = max_chunk_bytes(source)
    if largest > chunk:
        raise CheckFailed(
            f"{what}: a step makes blocks of {largest} bytes, {largest / chunk:.1f} times a chunk of the data "
            f"({chunk} bytes): over the memory budget. Hint: keep the counts in their integer type (multiply "
            "by a boolean mask, not a float one) and sum over a detector axis before anything becomes float."
        )


def check_crop_reads(crop, signal, radius: float, what: str = "your crop"):
    """A crop must keep every detector pixel within ``radius`` of the centre pixel and read no other chunk."""
    check_lazy(crop, what)
    read, total = source_chunks_read(crop, signal)
    if read == 0:
        raise CheckFailed(f"{what} reads none of the dataset's chunks: crop the signal itself with isig[...].")
    data = _data(signal)
    need = int(np.prod(data.numblocks[:-2]))
    for full, kept, chunks in zip(signal.axes_manager.signal_axes, crop.axes_manager.signal_axes, data.chunks[::-1]):
        within = np.flatnonzero(np.abs(full.axis - full.axis[full.size // 2]) <= radius)
        start = int(round((kept.offset - full.offset) / full.scale))
        if within[0] < start or within[-1] >= start + kept.size:
            raise CheckFailed(
                f"{what} keeps {full.name} pixels {start} to {start + kept.size - 1}: it leaves out pixels within "
                f"{radius:.3g} {full.units} of the centre pixel (index {full.size // 2}).")
        edges = np.cumsum((0,) + tuple(chunks))
        first, last = np.searchsorted(edges, (within[0], within[-1]), side="right")  # chunk index + 1 of each
        need *= int(last - first) + 1
    if read > need:
        raise CheckFailed(
            f"{what} reads {read} of {total} chunks; the pixels within the radius need only {need}. Hint: a crop "
            "that reaches one pixel into a chunk reads that whole chunk: stop at the chunk edges around the "
            "pixels you need (signal.data.chunks).")


def check_on_fresh_data(lesson: str, grade_id: str, namespace: dict, seed: int = 0):
    """Run an exercise's function on fresh inputs, as the grader will, and say what is wrong.

    The inputs come from the grader's own recipe (:mod:`lazysignals.judges`)
    with a fixed ``seed``; a wrong result fails with the grader's message.
    """
    from . import judges

    judge = judges.JUDGES[(lesson, grade_id)]
    inp = judges.unpack(judges.pack(judge.inputs(np.random.default_rng(seed))))
    out = judges.unpack(judges.pack(judge.probe(namespace[judge.function], inp)))
    if isinstance(out, dict) and "error" in out:
        raise CheckFailed(f"on a fresh dataset, {judge.function} failed: {out['error']}")
    try:
        judge.judge(inp, out)
    except judges.Failed as e:
        raise CheckFailed(str(e)) from None


def check_memory_limit(func, signal, n_blocks: int = 2):
    """A worker ``memory_limit`` (lesson 09) must hold ``n_blocks`` blocks of ``map`` below ``target``.

    The message names the usual slip (one chunk for a block, the fraction
    multiplied or typed, a float) without giving the value.
    """
    import dask
    import distributed  # noqa: F401 (its memory thresholds join dask's configuration)

    key = "distributed.worker.memory.target"
    what = f"memory_limit_for(s, {n_blocks})"
    got = check_runs(func, signal, n_blocks, what=what)
    if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
        raise CheckFailed(f"{what} should return an int (a number of bytes), got {type(got).__name__}: "
                          "round up to a whole byte.")
    nav = signal.axes_manager.navigation_dimension
    itemsize = signal.data.dtype.itemsize
    block = int(np.prod(signal.data.chunksize[:nav])) * int(np.prod(signal.data.shape[nav:])) * itemsize
    chunk = int(np.prod(signal.data.chunksize)) * itemsize

    def want(target, n=n_blocks, size=block):
        return int(np.ceil(n * size / target))

    target = dask.config.get(key)
    slips = [
        (n_blocks * block, "the worker starts spilling at the target fraction of its limit, so the limit "
                           "must be larger than the blocks it holds."),
        (n_blocks * block * target, "the blocks must stay below target times the limit: divide by the "
                                    "fraction, do not multiply."),
        (want(target, size=chunk), "a map block holds whole patterns: all of the signal axes, not one chunk "
                                   "of them."),
        (want(target, n=1), f"the worker holds {n_blocks} blocks at once."),
        (want(target, size=int(signal.data.nbytes)), "a worker holds blocks, not the whole dataset."),
    ]
    if got != want(target):
        for value, hint in slips:
            if abs(int(got) - value) <= 1:
                raise CheckFailed(f"{what}: {got} bytes is not right yet. Hint: {hint}")
        _fail(what, want(target), int(got), "a block of map is the largest navigation chunk times the whole "
              "signal; the worker spills when what it holds passes the target fraction of its limit.")
    other = 0.5 if target != 0.5 else 0.4
    with dask.config.set({key: other}):
        moved = check_runs(func, signal, n_blocks, what=what)
    if moved != want(other):
        raise CheckFailed(f"with the target fraction set to {other} in dask's configuration, {what} does not "
                          f"follow it: read the fraction from "
                          f"dask.config.get(\"{key}\") inside the function, do not type it.")
