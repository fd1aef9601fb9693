"""The lesson pipeline, step by step, written the way the course teaches it.

Used by the workshop benchmark (the original workshop notebook's sequence on
the 7.38 GB preset) and by the out-of-core demonstration (the 34 GB preset
under a hard memory cap). Every step is timed and its peak RSS recorded
(:class:`benchmarks.harness.Steps`); plots go to matplotlib's Agg backend.

Choices, each taken from the lessons:

* ADF: the ring of lesson 03 (inner = twice the convergence angle, outer =
  the nearest detector edge) as a boolean mask over the detector, ``(s *
  mask).sum(axis=(2, 3)).T`` - the way lesson 03 computes a whole-scan
  image. ``CircleROI(...)(s, axes=(2, 3)).nansum(axis=(2, 3)).T`` gives the
  same numbers, but on lazy data HyperSpy 2.5 builds its NaN mask as large
  as the whole scan for every detector chunk (4 GB at workshop size); the
  step ``adf_roi`` measures that route for reference.
* rebin: ``lazysignals.blocks.rebin_sum(s, (2, 2, 2, 2), "uint32")`` (lesson 05:
  the same values as ``rebin`` then ``change_dtype("uint32")``, summed chunk by
  chunk with strided adds, near the read floor where ``rebin`` is several times it). A
  result that takes at most half the memory allowed goes into one preallocated
  array with ``r.data.store`` (lesson 05), which holds it once instead of
  twice; a larger one (0.92 GB at workshop size against a 1.5 GB budget, 4.3
  GB for the 34 GB preset) is saved to a .zspy with the course's compressor
  instead - out of core, as the course teaches.
* plotting: ``s.plot()`` keeps the navigation chunk under the pointer in
  memory (64 x 64 x 256 x 256 uint16 = 512 MiB at workshop size, held after
  the figure closes). As lesson 04 teaches, the figures are drawn from a lazy
  view with a quarter of the stored navigation chunk along each axis (32 MiB
  cached); each move out of it reads the same storage chunks as before.
  ``s.T`` (navigating by detector pixel) gets the same treatment on its
  navigation axes, the detector.
* centre of mass: ``lazysignals.blocks.centre_of_mass(s)`` (lesson 06: the
  same positions as ``map(scipy.ndimage.center_of_mass)``, three integer sums
  per pattern in one compiled loop per storage chunk; nothing is rechunked and
  no function is called per pattern).
* thresholded centre of mass: ``blocks.centre_of_mass(s, threshold=...)``,
  the pixels at or above the threshold weighted by their counts (lesson 06's
  ``com_above(..., weighted=True)``, which ``map`` computes per pattern).
* one pass (``one_pass``, lesson 09): the ADF image, the rebinned data
  (written to a zarr array on disk), both centre-of-mass maps and the fit as
  lazy results of the same chunks, computed by one ``dask.compute`` that
  reads every chunk once; its results are compared, digest by digest, with
  those of the steps one by one.
* line profiles: for every probe position, the 8 detector rows just above
  the centre (one chunk row: 25 % of the data is read) summed into one
  profile across the bright-field disk; one Gaussian fitted to each with
  ``lazysignals.fitting`` (lesson 08's fast fit), every profile.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .harness import GB, Steps

PROFILE_ROWS = 8
THRESHOLD = 3


def plot_view(signal):
    """A lazy view for figures: a quarter of the stored chunk along each navigation axis, the stored chunks on
    the signal axes (lesson 04: a figure keeps one navigation chunk of whole patterns in memory)."""
    nav = signal.axes_manager.navigation_dimension
    return signal.rechunk(nav_chunks=tuple(max(c // 4, 1) for c in signal.data.chunksize[:nav]),
                          sig_chunks=signal.data.chunksize[nav:], inplace=False)


def _on_cluster() -> bool:
    """Is dask's scheduler a ``distributed`` client (worker processes), not threads in this process?"""
    try:
        from distributed import default_client

        default_client()
        return True
    except (ImportError, ValueError):
        return False


def _sha1(a) -> str:
    """SHA-1 of an array's bytes, with its dtype and shape: equal digests, identical results."""
    import hashlib

    a = np.ascontiguousarray(np.asarray(a))
    return hashlib.sha1(f"{a.dtype}{a.shape}".encode() + a.tobytes()).hexdigest()


def _chunk_sha1(block):
    import hashlib

    b = np.ascontiguousarray(block)
    d = np.frombuffer(hashlib.sha1(b.tobytes()).digest()[:8], dtype=np.uint64)
    return d.reshape((1,) * block.ndim)


def chunked_sha1(data) -> str:
    """Digest of a dask array, chunk by chunk on the current scheduler (nothing large in memory).

    Equal for equal values in equal chunks (unlike :func:`_sha1` of the whole array).
    """
    per_chunk = data.map_blocks(_chunk_sha1, dtype=np.uint64, chunks=tuple((1,) * len(c) for c in data.chunks))
    return _sha1(per_chunk.compute()) + f"-{data.dtype}{data.shape}"


def stored_sha1(path: str) -> str:
    """:func:`chunked_sha1` of a saved signal's data."""
    import hyperspy.api as hs

    return chunked_sha1(hs.load(path, lazy=True).data)


def ring_radii(s):
    """Lesson 03's annulus: twice the convergence angle to the nearest detector edge."""
    kx, ky = s.axes_manager.signal_axes
    cx, cy = kx.axis[kx.size // 2], ky.axis[ky.size // 2]
    edge = min(cx - kx.low_value, kx.high_value - cx, cy - ky.low_value, ky.high_value - cy)
    return cx, cy, 2 * s.metadata.Acquisition_instrument.TEM.convergence_angle, edge


def ring_mask(s):
    """Lesson 03's ring as a boolean mask over the detector, numpy order (ky, kx)."""
    cx, cy, inner, outer = ring_radii(s)
    kx, ky = s.axes_manager.signal_axes
    X, Y = np.meshgrid(kx.axis, ky.axis)
    r2 = (X - cx) ** 2 + (Y - cy) ** 2
    return (r2 <= outer ** 2) & (r2 >= inner ** 2)


def crop_slices(chunk: int) -> list[tuple[str, str, slice]]:
    """Lesson 07's two crops of the detector: (key, label, slice along each signal axis).

    With 4 chunks per side, the aligned crop touches 4 of the 16 signal
    chunks, the one a pixel wider all 16.
    """
    c = chunk
    return [("crop_aligned", "aligned", slice(c, 3 * c)), ("crop_wider", "one pixel wider", slice(c - 1, 3 * c + 1))]


def crop_sums(s, steps: Steps) -> dict:
    """Each crop summed over the detector (a virtual image), timed, with the chunks it read; their digests."""
    from lazysignals.measure import count_reads

    digests = {}
    for key, label, sl in crop_slices(s.data.chunksize[-1]):
        with steps(f"{label} crop: isig[{sl.start}:{sl.stop}, {sl.start}:{sl.stop}].sum(axis='sig')", key=key) as row:
            with count_reads() as reads:
                image = s.isig[sl, sl].sum(axis="sig")
                image.compute(show_progressbar=False)
            row.update(chunks_read=reads.chunks, chunks_total=s.data.npartitions,
                       MB_read=round(reads.bytes / 1e6, 1), bytes_read=reads.bytes)
        digests[key] = _sha1(image.data)
    return digests


def line_profiles(s):
    """One profile per probe position: PROFILE_ROWS detector rows above the centre, summed."""
    ky = s.axes_manager.signal_axes[1]
    mid = ky.size // 2
    band = s.isig[:, mid - PROFILE_ROWS:mid]
    return band.sum(axis=band.axes_manager.signal_axes[1].name)


def run(path: str, steps_to_run: list, result_dir: str | None = None, memory_budget: float = 1.5 * GB,
        fit_subset: int = 0, steps: Steps | None = None) -> dict:
    """Run the named steps on the dataset at ``path``; return timings and results.

    ``info["digests"]`` holds a SHA-1 of every result (the ADF image, the
    rebinned data - read back from disk when it was saved -, the maps, the
    crops' images, the fitted parameters), so that runs on different
    schedulers can be shown to give identical results. ``steps`` may be given
    to watch the run from another thread (``steps.current``).
    """
    import dask
    import hyperspy.api as hs
    import matplotlib.pyplot as plt

    from lazysignals import blocks, fitting
    from lazysignals.data import open_path
    from lazysignals.storage import course_compressor

    steps = steps if steps is not None else Steps()
    digest = {}
    info = {"dask_scheduler": dask.config.get("scheduler", "threads (default)"),
            "dask_workers": dask.config.get("num_workers", None) or "one per core"}
    with steps("open lazily", key="open"):
        s = open_path(path)  # what lazysignals.load() does: hs.load(path, lazy=True), ground truth in memory
    nx, ny = s.axes_manager.navigation_shape
    info.update(navigation_shape=[nx, ny], signal_shape=list(s.axes_manager.signal_shape),
                chunks=list(s.data.chunksize), nbytes=s.data.nbytes, patterns=nx * ny)
    want = set(steps_to_run)

    view = plot_view(s)
    if "plot" in want:
        with steps("view.plot(): lazy navigator, small navigation chunks", key="plot"):
            view.plot()  # lesson 04: the figure keeps one navigation chunk in memory, a small one here
            plt.close("all")
    if "adf" in want:
        with steps("ADF navigator: ring mask x signal, sum + .T, view.plot(navigator=adf)", key="adf"):
            adf = (s * ring_mask(s)).sum(axis=(2, 3)).T
            adf.compute(show_progressbar=False)
            view.plot(navigator=adf)
            plt.close("all")
        info["adf_mean"] = float(np.mean(adf.data))
        digest["adf"] = _sha1(adf.data)
    if "transpose" in want:
        with steps("s.T with small detector chunks, .plot(): navigate by detector pixel", key="transpose"):
            t = plot_view(s.T)
            t.plot()
            plt.close("all")
            del t
    if "rebin" in want:
        with steps("blocks.rebin_sum(s, (2,2,2,2), 'uint32'), stored in memory or saved", key="rebin") as row:
            r = blocks.rebin_sum(s, (2, 2, 2, 2), "uint32")  # lesson 05: chunk by chunk, uint32 up front
            row["result_gb"] = round(r.data.nbytes / GB, 3)
            # in memory beside the libraries and the chunks in flight only when it takes at most half the budget
            fits = r.data.nbytes <= memory_budget / 2
            if fits and _on_cluster():
                out = r.data.compute()  # worker processes cannot write into this process's array
                row["how"] = f"gathered from the cluster's workers ({r.data.nbytes / GB:.2f} GB)"
            elif fits:
                out = np.empty(r.data.shape, dtype=r.data.dtype)
                r.data.store(out, lock=False)
                row["how"] = f"into one preallocated array ({r.data.nbytes / GB:.2f} GB)"
            else:
                target = f"{result_dir}/rebinned.zspy"
                r.save(target, overwrite=True, show_progressbar=False, compressor=course_compressor())
                row["how"] = (f"saved to {Path(target).name} ({r.data.nbytes / GB:.2f} GB: more than half "
                              "the memory allowed)")
        if fits:
            info["rebin_total"] = int(out.sum(dtype=np.uint64))
            digest["rebin"] = _sha1(out)
            del out
        del r
        if not fits:  # read back from disk, outside the timed step
            digest["rebin"] = stored_sha1(target)
            info["rebin_saved"] = True
    if "com" in want:
        with steps("blocks.centre_of_mass(s): centre-of-mass map, chunk by chunk", key="com"):
            com = blocks.centre_of_mass(s)  # lesson 06: one matrix product per storage chunk
            com.compute(show_progressbar=False)
        info["com_mean"] = [float(v) for v in np.nanmean(com.data.reshape(-1, 2), axis=0)]
        digest["com"] = _sha1(com.data)
        del com
    if "com_threshold" in want:
        with steps(f"blocks.centre_of_mass(s, threshold={THRESHOLD}): pixels at or above the threshold",
                   key="com_threshold"):
            comt = blocks.centre_of_mass(s, threshold=THRESHOLD)  # lesson 06: the weighted com_above, per chunk
            comt.compute(show_progressbar=False)
        digest["com_threshold"] = _sha1(comt.data)
        del comt
    if "crops" in want:
        digest.update(crop_sums(s, steps))
    if "fit" in want:
        with steps("Gaussian fit of every line profile (fast fit)", key="fit") as row:
            profiles = line_profiles(s)
            params = fitting.fit_gaussian_lazy(profiles)
            params.compute(show_progressbar=False)
            n = int(np.prod(params.data.shape[:-1]))
            row["profiles"] = n
        row["fits_per_s"] = round(n / row["seconds"], 1)
        p = params.data.reshape(-1, 3)
        digest["fit"] = _sha1(params.data)
        info["fit"] = {"profiles": n, "failed": int(np.isnan(p).any(axis=1).sum()),
                       "median_A_sigma_centre": [float(v) for v in np.nanmedian(p, axis=0)]}
        if fit_subset:
            info["multifit_comparison"] = compare_with_multifit(profiles, fit_subset)
    if "one_pass" in want:
        import tempfile

        with tempfile.TemporaryDirectory(dir=result_dir) as scratch:
            one = one_pass(s, steps, scratch, rebin_digest_by_chunk=bool(info.get("rebin_saved")))
        info["one_pass"] = {"identical_to_step_by_step": {k: one[k] == digest.get(k) for k in one if k in digest}}
    # Last, so that what it holds does not inflate the peaks of the steps above.
    if "adf_roi" in want:
        with steps("ADF navigator the naive way: CircleROI + nansum + .T", key="adf_roi"):
            cx, cy, inner, outer = ring_radii(s)
            ring = hs.roi.CircleROI(cx, cy, outer, inner)
            adf_roi = ring(s, axes=(2, 3)).nansum(axis=(2, 3)).T
            adf_roi.compute(show_progressbar=False)
        info["adf_roi_mean"] = float(np.mean(adf_roi.data))
    info["steps"] = steps.rows
    info["digests"] = digest
    return info


def one_pass(s, steps: Steps, result_dir: str, rebin_digest_by_chunk: bool = False) -> dict:
    """Lesson 09's way: the whole-dataset results and the fit computed together, each chunk read once.

    The ADF image, the rebinned data (written chunk by chunk to a zarr array in
    ``result_dir``, with the course's compressor, so that it is never held in
    memory), both centre-of-mass maps and the fitted line profiles are lazy
    results of the same chunks; one ``dask.compute`` reads every chunk once and
    hands it to all of them. Returns the results' digests, to compare with the
    steps above (the rebinned data read back from disk, outside the timing, and
    digested chunk by chunk when the rebin step saved its result).
    """
    import dask
    import dask.array as da
    import hyperspy.api as hs
    import matplotlib.pyplot as plt
    import zarr

    from lazysignals import blocks, fitting
    from lazysignals.storage import course_compressor

    with steps("one pass (lesson 09): ADF + rebin to disk + both centre-of-mass maps + fit, one dask.compute",
               key="one_pass") as row:
        adf = (s * ring_mask(s)).sum(axis=(2, 3)).T
        r = blocks.rebin_sum(s, (2, 2, 2, 2), "uint32")
        com = blocks.centre_of_mass(s)
        comt = blocks.centre_of_mass(s, threshold=THRESHOLD)
        params = fitting.fit_gaussian_lazy(line_profiles(s))
        target = zarr.open(f"{result_dir}/one_pass_rebinned.zarr", mode="w", shape=r.data.shape,
                           chunks=r.data.chunksize, dtype=r.data.dtype, compressor=course_compressor())
        stored = da.store(r.data, target, lock=False, compute=False)
        _, adf_d, com_d, comt_d, params_d = dask.compute(stored, adf.data, com.data, comt.data, params.data)
        view = plot_view(s)
        view.plot(navigator=hs.signals.Signal2D(adf_d))  # the computed image as the navigator
        plt.close("all")
        row["how"] = f"rebinned data written to a zarr array on disk ({r.data.nbytes / GB:.2f} GB uncompressed)"
    rebinned = chunked_sha1(da.from_zarr(target)) if rebin_digest_by_chunk else _sha1(target[...])
    return {"adf": _sha1(adf_d), "rebin": rebinned, "com": _sha1(com_d),
            "com_threshold": _sha1(comt_d), "fit": _sha1(params_d)}


def compare_with_multifit(profiles, n: int) -> dict:
    """HyperSpy's multifit and the fast fit on the same ``n`` profiles, same starting values."""
    import hyperspy.api as hs

    from lazysignals import fitting

    nx, ny = profiles.axes_manager.navigation_shape
    rows = max(1, min(ny, int(np.ceil(n / nx))))
    sub = profiles.inav[:, :rows]
    sub.compute(show_progressbar=False)
    y = sub.data.reshape(-1, sub.data.shape[-1])[:n].astype(float)
    n = y.shape[0]
    x = sub.axes_manager.signal_axes[0].axis
    p0 = fitting.moments(x, y)
    one = hs.signals.Signal1D(y)
    one.axes_manager[-1].scale = sub.axes_manager.signal_axes[0].scale
    one.axes_manager[-1].offset = sub.axes_manager.signal_axes[0].offset
    m = one.create_model()
    g = hs.model.components1D.Gaussian()
    m.append(g)
    for i, par in enumerate((g.A, g.sigma, g.centre)):
        par.map["values"][:] = p0[:, i]
        par.map["is_set"][:] = True
    t0 = time.perf_counter()
    m.multifit(show_progressbar=False)
    t_multi = time.perf_counter() - t0
    multi = np.stack([g.A.map["values"], g.sigma.map["values"], g.centre.map["values"]], axis=-1)
    t0 = time.perf_counter()
    fast = fitting.fit_gaussian(x, y, p0=p0)
    t_fast = time.perf_counter() - t0
    ok = np.isfinite(multi).all(axis=1) & np.isfinite(fast).all(axis=1)
    rel = {
        "A": np.abs(fast[ok, 0] - multi[ok, 0]) / np.abs(multi[ok, 0]),
        "sigma": np.abs(fast[ok, 1] - multi[ok, 1]) / np.abs(multi[ok, 1]),
        "centre (in units of sigma)": np.abs(fast[ok, 2] - multi[ok, 2]) / np.abs(multi[ok, 1]),
    }
    tol = 1e-3
    agree = {k: {"median": float(np.median(v)), "p99": float(np.percentile(v, 99)), "max": float(v.max()),
                 f"share_within_{tol:g}": float(np.mean(v <= tol))} for k, v in rel.items()}
    within = float(np.mean(np.all(np.stack([v <= tol for v in rel.values()]), axis=0)))
    return {"profiles": n, "points_per_profile": int(y.shape[1]), "multifit_seconds": round(t_multi, 2),
            "multifit_fits_per_s": round(n / t_multi, 1), "fast_seconds": round(t_fast, 3),
            "fast_fits_per_s": round(n / t_fast, 1), "speedup": round(t_multi / t_fast, 1),
            "tolerance": tol, "share_of_profiles_within_tolerance": within, "relative_differences": agree,
            "both_converged": int(ok.sum())}


def child(path: str, steps: list, result_dir: str | None = None, memory_budget: float = 1.5 * GB,
          fit_subset: int = 0) -> dict:
    """Entry point for :func:`benchmarks.harness.run_child`."""
    return run(path, steps, result_dir=result_dir, memory_budget=memory_budget, fit_subset=fit_subset)
