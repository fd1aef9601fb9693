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


def check_shape(obj, expected, what: str = "the shape"):
    """Compare shapes (numpy order for arrays, or a signal's data shape)."""
    got = tuple(np.shape(_data(obj))) if not hasattr(_data(obj), "shape") else tuple(_data(obj).shape)
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
        _fail(what, " or ".join(str(a) for a in allowed), got, hint)


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
