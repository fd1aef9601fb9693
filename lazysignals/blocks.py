"""Whole-dataset passes written as one function per chunk (``map_blocks``).

HyperSpy's ``rebin`` and ``map`` are general: any factor, any function, any
signal. Their cost on a lazy 4D-STEM dataset is not the reading but the
arithmetic inside each chunk: ``rebin`` sums with numpy's multi-axis
reduction and a cast to 64 bits, and ``map`` calls the function once per
pattern. The two functions here do the same work on whole chunks, with one
output type chosen up front: strided numpy adds for the rebin, one compiled
(numba) loop over the chunk's values for the centre of mass:

- :func:`rebin_sum`: the same values as ``s.rebin(scale=factors,
  rechunk=False)`` followed by ``change_dtype(dtype)``, with the same axes;
- :func:`centre_of_mass`: the same positions as
  ``s.map(scipy.ndimage.center_of_mass, inplace=False)``, optionally from the
  pixels above a threshold only.

Both return lazy HyperSpy signals; nothing is read until you compute.
"""

from __future__ import annotations

import dask.array as da
import numba
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


@numba.njit(nogil=True, cache=True)
def _pattern_sums(f, threshold, use_threshold, zero, out):
    """Weight, row moment and column moment of each pattern of ``f`` (patterns, rows, columns) into ``out``.

    One loop over the chunk's values, in the order they lie in memory. ``zero``
    sets the type of the sums: an integer for integer counts (exact at any
    size), a float otherwise. With ``use_threshold`` only the values at or
    above ``threshold`` count.
    """
    n, ky, kx = f.shape
    for i in range(n):
        total = zero
        row_moment = zero
        col_moment = zero
        for y in range(ky):
            row = zero
            row_cols = zero
            for x in range(kx):
                v = f[i, y, x]
                if use_threshold and not v >= threshold:
                    continue
                row += v
                row_cols += v * x
            total += row
            row_moment += row * y
            col_moment += row_cols
        out[i, 0] = total
        out[i, 1] = row_moment
        out[i, 2] = col_moment


def _moments(block, threshold=None, block_info=None):
    """Total, row-weighted and column-weighted sums of every pattern of one chunk, detector indices global.

    Integer counts are added up as integers, so the sums are exact; they are
    returned as float64 (exact up to 2**53), ready to be added over the
    detector's chunks.
    """
    (y0, _), (x0, _) = block_info[0]["array-location"][-2:]
    ky, kx = block.shape[-2:]
    f = np.ascontiguousarray(block).reshape(-1, ky, kx)
    integer = np.issubdtype(f.dtype, np.integer) or f.dtype == np.bool_
    if f.dtype == np.bool_:
        f = f.view(np.uint8)
    sums = np.empty((f.shape[0], 3), dtype=np.int64 if integer else np.float64)
    zero = np.int64(0) if integer else 0.0
    level = threshold if threshold is not None else 0
    level = np.int64(np.ceil(level)) if integer else float(level)  # v >= 2.5 <=> v >= 3 for integers
    _pattern_sums(f, level, threshold is not None, zero, sums)
    out = sums.astype(np.float64)
    out[:, 1] += y0 * out[:, 0]  # local row and column indices -> indices on the whole detector
    out[:, 2] += x0 * out[:, 0]
    return out.reshape(block.shape[:-2] + (1, 1, 3))


def _divide(moments, out_dtype):
    with np.errstate(invalid="ignore", divide="ignore"):  # an empty pattern gives nan, as scipy does
        return (moments[..., 1:] / moments[..., :1]).astype(out_dtype)


def centre_of_mass(signal, dtype="float64", threshold=None):
    """Centre of mass of every pattern, ``(row, column)`` in pixel indices, as a lazy signal.

    The same positions as ``signal.map(scipy.ndimage.center_of_mass,
    inplace=False)``: a signal with the navigation axes of ``signal`` and one
    signal axis of length 2. Each chunk is reduced to three sums per pattern
    (weight, row moment, column moment) by one compiled loop over its values
    (integers stay integers, so the sums are exact), whatever the chunking of
    the detector axes: nothing is rechunked, no function is called per
    pattern.

    With ``threshold``, only the pixels at or above it count, each weighted by
    its counts: the same as ``map`` of ``center_of_mass(np.where(p >=
    threshold, p, 0))`` (lesson 06's ``com_above(..., weighted=True)``). A
    pattern with no pixel at or above it gives NaN, as scipy does.
    """
    import hyperspy.api as hs

    data = signal.data
    if not isinstance(data, da.Array):
        raise TypeError("centre_of_mass works on lazy signals: call signal.as_lazy() first.")
    if signal.axes_manager.signal_dimension != 2:
        raise ValueError(f"centre_of_mass needs 2D patterns; this signal has {signal.axes_manager.signal_dimension} "
                         "signal axes (transpose it with .T or pick a 2D signal).")
    nav = data.ndim - 2
    dtype = np.dtype(dtype)
    # per chunk: three sums per pattern; then added over the detector's chunks, then two divisions
    if threshold is not None and not np.isscalar(threshold):
        raise TypeError(f"threshold must be one number (counts), not {type(threshold).__name__}.")
    parts = data.map_blocks(_moments, threshold=threshold, dtype=np.float64, new_axis=data.ndim,
                            chunks=data.chunks[:nav] + tuple((1,) * len(c) for c in data.chunks[nav:]) + ((3,),),
                            meta=np.empty((0,) * (data.ndim + 1)))
    moments = parts.sum(axis=(nav, nav + 1))
    com = moments.map_blocks(_divide, out_dtype=dtype, dtype=dtype, chunks=moments.chunks[:nav] + ((2,),),
                             meta=np.empty((0,) * (nav + 1), dtype))
    out = hs.signals.Signal1D(com).as_lazy()  # a dask array is kept as it is: nothing computed
    for src, dst in zip(signal.axes_manager.navigation_axes, out.axes_manager.navigation_axes):
        for key in ("name", "units", "scale", "offset"):
            setattr(dst, key, getattr(src, key))
    out.metadata.General.title = f"centre of mass of {signal.metadata.General.title}".strip()
    return out
