"""Whole-dataset passes written as one numpy function per chunk (``map_blocks``).

HyperSpy's ``rebin`` and ``map`` are general: any factor, any function, any
signal. Their cost on a lazy 4D-STEM dataset is not the reading but the
arithmetic inside each chunk: ``rebin`` sums with numpy's multi-axis
reduction and a cast to 64 bits, and ``map`` calls the function once per
pattern. The two functions here do the same work on whole chunks, with plain
strided adds and one output type chosen up front:

- :func:`rebin_sum`: the same values as ``s.rebin(scale=factors,
  rechunk=False)`` followed by ``change_dtype(dtype)``, with the same axes;
- :func:`centre_of_mass`: the same positions (to float rounding) as
  ``s.map(scipy.ndimage.center_of_mass, inplace=False)``.

Both return lazy HyperSpy signals; nothing is read until you compute.
"""

from __future__ import annotations

import dask.array as da
import numpy as np


def _numpy_factors(signal, factors) -> tuple[int, ...]:
    """``factors`` in HyperSpy order (navigation axes, then signal axes) -> numpy axis order."""
    axes = list(signal.axes_manager.navigation_axes) + list(signal.axes_manager.signal_axes)
    factors = tuple(factors)
    if len(factors) != len(axes):
        raise ValueError(f"give one factor per axis in HyperSpy order "
                         f"({', '.join(str(a.name) for a in axes)}): {len(axes)} factors, not {len(factors)}.")
    out = [1] * len(axes)
    for ax, f in zip(axes, factors):
        if int(f) != f or f < 1:
            raise ValueError(f"rebin factors must be positive integers; got {f!r} for axis {ax.name}.")
        out[ax.index_in_array] = int(f)
    return tuple(out)


def _sum_block(block, factors, out_dtype):
    """Sum ``block`` over bins of ``factors`` (numpy order) with strided adds, in ``dtype``."""
    out = None
    for axis, f in enumerate(factors):
        if f == 1:
            continue
        parts = [(slice(None),) * axis + (slice(i, None, f),) for i in range(f)]
        if out is None:  # the first reduction also converts: one pass, no full-size copy
            out = block[parts[0]].astype(out_dtype)
            for p in parts[1:]:
                out += block[p]
        else:
            acc = out[parts[0]].copy()
            for p in parts[1:]:
                acc += out[p]
            out = acc
    return block.astype(out_dtype) if out is None else out


def rebin_sum(signal, factors, dtype):
    """Rebin a lazy signal by integer ``factors`` (HyperSpy order, like ``rebin``'s ``scale``), summing in ``dtype``.

    Every factor must divide every chunk along its axis, so each output value
    comes from one chunk: the result keeps the chunk layout (each chunk
    shrunk by the factors) and no chunk is combined with another. Choose
    ``dtype`` so that no bin overflows: the product of the factors times the
    largest input value must fit (``uint32`` for 2 x 2 x 2 x 2 bins of
    ``uint16``). The axes are those of ``signal.rebin(scale=factors)``.
    """
    data = signal.data
    if not isinstance(data, da.Array):
        raise TypeError("rebin_sum works on lazy signals: call signal.as_lazy() first, "
                        "or use signal.rebin for data in memory.")
    dtype = np.dtype(dtype)
    nf = _numpy_factors(signal, factors)
    for axis, (f, chunks) in enumerate(zip(nf, data.chunks)):
        bad = sorted({c for c in chunks if c % f})
        if bad:
            raise ValueError(f"factor {f} does not divide the chunks {bad} of array axis {axis}: rechunk that "
                             f"axis to a multiple of {f} first (e.g. signal.rechunk(...)), or use signal.rebin.")
    chunks = tuple(tuple(c // f for c in cs) for f, cs in zip(nf, data.chunks))
    summed = data.map_blocks(_sum_block, factors=nf, out_dtype=dtype, dtype=dtype, chunks=chunks,
                             meta=np.empty((0,) * data.ndim, dtype))
    # the axes (scales multiplied, offsets moved to the bin centres) and metadata exactly as HyperSpy's rebin
    # gives them: rebin only builds its graph here, which is dropped unread
    out = signal.rebin(scale=tuple(factors), rechunk=False)
    out.data = summed
    return out


def _moments(block, out_dtype):
    """Centre of mass (row, column) of every pattern of ``block`` (patterns on the last two axes)."""
    acc = np.float64 if block.dtype.kind == "f" else (np.int64 if block.dtype.kind == "i" else np.uint64)
    rows = block.sum(axis=-1, dtype=acc).astype(np.float64)  # weight of each detector row
    cols = block.sum(axis=-2, dtype=acc).astype(np.float64)  # weight of each detector column
    total = rows.sum(axis=-1)
    out = np.empty(block.shape[:-2] + (2,), dtype=out_dtype)
    with np.errstate(invalid="ignore", divide="ignore"):  # an empty pattern gives nan, as scipy does
        out[..., 0] = rows @ np.arange(rows.shape[-1], dtype=np.float64) / total
        out[..., 1] = cols @ np.arange(cols.shape[-1], dtype=np.float64) / total
    return out


def centre_of_mass(signal, dtype="float64"):
    """Centre of mass of every pattern, ``(row, column)`` in pixel indices, as a lazy signal.

    The same positions as ``signal.map(scipy.ndimage.center_of_mass,
    inplace=False)``: a signal with the navigation axes of ``signal`` and one
    signal axis of length 2. Each chunk is reduced in one go (integer counts
    are summed exactly, then weighted in float64); the detector axes are
    joined into one chunk first if they are split, as ``map`` does.
    """
    import hyperspy.api as hs

    data = signal.data
    if not isinstance(data, da.Array):
        raise TypeError("centre_of_mass works on lazy signals: call signal.as_lazy() first.")
    if signal.axes_manager.signal_dimension != 2:
        raise ValueError(f"centre_of_mass needs 2D patterns; this signal has {signal.axes_manager.signal_dimension} "
                         "signal axes (transpose it with .T or pick a 2D signal).")
    nav = data.ndim - 2
    if len(data.chunks[-1]) > 1 or len(data.chunks[-2]) > 1:
        data = data.rechunk({nav: -1, nav + 1: -1})
    dtype = np.dtype(dtype)
    com = data.map_blocks(_moments, out_dtype=dtype, dtype=dtype, drop_axis=nav + 1, chunks=data.chunks[:nav] + ((2,),),
                          meta=np.empty((0,) * (nav + 1), dtype))
    out = hs.signals.Signal1D(com).as_lazy()  # a dask array is kept as it is: nothing computed
    for src, dst in zip(signal.axes_manager.navigation_axes, out.axes_manager.navigation_axes):
        for key in ("name", "units", "scale", "offset"):
            setattr(dst, key, getattr(src, key))
    out.metadata.General.title = f"centre of mass of {signal.metadata.General.title}".strip()
    return out
