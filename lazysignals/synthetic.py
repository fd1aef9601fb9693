"""The synthetic 4D-STEM twin: a magnetic thin film seen by a scanning probe.

Each probe position (x, y) gives a diffraction pattern (kx, ky) made of

* a bright-field disk whose centre moves with the probe: stripe-shaped
  magnetic domains deflect the beam one way or the other, and a slow linear
  descan ramp adds to it;
* diffuse scattering around the disk that grows with specimen thickness and
  depends on the region (vacuum, magnetic film, substrate);
* six small Bragg discs whose strength follows the local crystal
  orientation (so how many are visible varies: ragged peak finding), and a
  faint high-angle ring;
* Poisson counting noise, and optionally a few dead and hot detector pixels.

The expected counts are evaluated and the Poisson draw made in one compiled
pass per pattern (numba), chunk by chunk in a dask graph, so a dataset of any
size is streamed to disk with a few chunks in memory. The ground truth
(shift maps, domain and region maps, number of visible Bragg discs, defect
mask) is stored in the signal's metadata under ``Sample.ground_truth``.
"""

from __future__ import annotations

import numpy as np

from .manifest import Preset

#: Version of the model; stored with every dataset so that an old file is remade.
MODEL_VERSION = 1

# Geometry as fractions of the detector side D, so every preset looks alike.
DISK_RADIUS = 1 / 8  # bright-field disk radius
DOMAIN_SHIFT = 0.012  # magnetic deflection, each way
DESCAN_SHIFT = 0.02  # descan ramp, from one scan edge to the other
BRAGG_RADIUS = 0.30  # distance of the Bragg discs from the centre
BRAGG_DISC = 1 / 40  # Bragg disc radius
RING_RADIUS = 0.44  # faint high-angle ring
RING_WIDTH = 1 / 64
LUT_STEPS = 4  # radial look-up table samples per pixel

VACUUM, FILM, SUBSTRATE = 0, 1, 2


def _smooth_noise(rng, shape, scale):
    """Smooth random field in [-1, 1] (a sum of a few random waves)."""
    ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx].astype(float)
    field = np.zeros(shape)
    for _ in range(6):
        k = rng.normal(size=2) / scale
        field += np.cos(2 * np.pi * (k[0] * y + k[1] * x) + rng.uniform(0, 2 * np.pi))
    return field / 6


def probe_maps(preset: Preset, seed: int | None = None) -> dict[str, np.ndarray]:
    """Per-probe-position parameters and ground truth, in numpy order (y, x).

    Returns
    -------
    dict
        ``shift_x``, ``shift_y`` (true disk displacement in detector pixels,
        centre of mass = ``D / 2 + shift``), ``domain`` (-1..1 magnetisation),
        ``region`` (0 vacuum, 1 film, 2 substrate), ``thickness`` (relative),
        ``disk``, ``diffuse``, ``ring`` (expected counts per pixel) and
        ``bragg`` (expected peak counts of each of the 6 discs, shape
        (ny, nx, 6)), ``n_bragg`` (discs brighter than the disk edge), plus
        ``dead`` and ``hot`` (detector defect masks, numpy order (ky, kx)).
    """
    seed = preset.seed if seed is None else seed
    rng = np.random.default_rng(seed)
    (nx, ny), (kx, ky) = preset.navigation_shape, preset.signal_shape
    D = kx
    y, x = np.mgrid[0:ny, 0:nx].astype(float)
    u, v = x / nx, y / ny  # 0..1 across the scan

    # Regions: a vacuum band at the top with a wavy edge, the film, the substrate below.
    wav = _smooth_noise(rng, (ny, nx), scale=0.6 * nx)
    top = 0.14 + 0.04 * wav[0][None, :] * np.ones_like(v)
    bottom = 0.78 + 0.02 * np.sin(2 * np.pi * u * 1.5)
    region = np.full((ny, nx), FILM, dtype=np.uint8)
    region[v < top] = VACUUM
    region[v > bottom] = SUBSTRATE
    # A wedge: thickness rises across the scan, with a little roughness.
    thickness = (0.35 + 0.65 * u) * (1 + 0.08 * _smooth_noise(rng, (ny, nx), scale=0.1 * nx))
    thickness[region == VACUUM] = 0.0
    thickness[region == SUBSTRATE] *= 1.4

    # Stripe domains written into the film, walls with a finite width.
    angle = rng.uniform(np.deg2rad(20), np.deg2rad(35))
    period = max(nx / 5.5, 4.0)
    phase = (x * np.cos(angle) + y * np.sin(angle)) / period
    phase += 0.12 * _smooth_noise(rng, (ny, nx), scale=0.5 * nx)
    wall = max(period / 12, 0.6)
    domain = np.tanh(np.sin(2 * np.pi * phase) * period / (2 * np.pi * wall))
    domain[region != FILM] = 0.0
    direction = angle + np.pi / 2  # deflection along the stripes
    amp = DOMAIN_SHIFT * D
    shift_x = amp * domain * np.cos(direction) + DESCAN_SHIFT * D * (u - 0.5)
    shift_y = amp * domain * np.sin(direction) + 0.5 * DESCAN_SHIFT * D * (v - 0.5)

    dose = preset.dose
    absorb = np.exp(-0.6 * thickness)
    disk = dose * absorb
    diffuse_strength = np.where(region == SUBSTRATE, 0.05, 0.035)
    diffuse = dose * diffuse_strength * thickness
    ring = dose * 0.02 * thickness * (region != VACUUM)
    # Bragg discs: crystal orientation varies in grains; discs light up by turns.
    orient = _smooth_noise(rng, (ny, nx), scale=0.15 * nx)
    k = np.arange(6)
    excitation = np.cos(np.pi * (orient[..., None] * 2.5 + k / 3.0)) ** 6
    bragg = dose * 0.6 * excitation * thickness[..., None] * (region != VACUUM)[..., None]
    n_bragg = (bragg > 0.5 * dose).sum(axis=-1).astype(np.uint8)

    dead = np.zeros((ky, kx), dtype=bool)
    hot = np.zeros((ky, kx), dtype=bool)
    if preset.defects:
        n_def = max(1, (kx * ky) // 8000)
        drng = np.random.default_rng(seed + 1)
        dead.flat[drng.choice(kx * ky, n_def, replace=False)] = True
        hot.flat[drng.choice(kx * ky, max(1, n_def // 2), replace=False)] = True
        hot &= ~dead
    return dict(
        shift_x=shift_x.astype(np.float32), shift_y=shift_y.astype(np.float32),
        domain=domain.astype(np.float32), region=region, thickness=thickness.astype(np.float32),
        disk=disk.astype(np.float32), diffuse=diffuse.astype(np.float32),
        ring=ring.astype(np.float32), bragg=bragg.astype(np.float32), n_bragg=n_bragg,
        dead=dead, hot=hot,
    )


def _radial_profiles(D: int) -> np.ndarray:
    """Unit radial profiles (disk, diffuse, ring) sampled every 1/LUT_STEPS pixel."""
    r = np.arange(int(np.ceil(D * 0.75 * LUT_STEPS)) + 2) / LUT_STEPS
    R = DISK_RADIUS * D
    disk = np.clip(R - r + 0.5, 0, 1)  # one-pixel soft edge
    diffuse = np.exp(-np.clip(r - R, 0, None) / (0.06 * D)) * (1 - disk)
    ring = np.exp(-0.5 * ((r - RING_RADIUS * D) / (RING_WIDTH * D)) ** 2)
    return np.stack([disk, diffuse, ring]).astype(np.float32)


def _compile_kernel():
    import numba

    @numba.njit(nogil=True, cache=True)
    def render(out, seed, ky0, kx0, cx, cy, amps, bragg, bragg_xy, bragg_r, profiles):
        """Draw Poisson patterns into out[ny, nx, h, w] (uint16)."""
        np.random.seed(seed)
        ny, nx, h, w = out.shape
        nlut = profiles.shape[1]
        lut = np.empty(nlut, dtype=np.float32)
        lam = np.empty((h, w), dtype=np.float32)
        for j in range(ny):
            for i in range(nx):
                a0, a1, a2 = amps[j, i, 0], amps[j, i, 1], amps[j, i, 2]
                for q in range(nlut):
                    lut[q] = a0 * profiles[0, q] + a1 * profiles[1, q] + a2 * profiles[2, q]
                c_x, c_y = cx[j, i], cy[j, i]
                for p in range(h):
                    dy = ky0 + p - c_y
                    for s in range(w):
                        dx = kx0 + s - c_x
                        q = int(np.sqrt(dx * dx + dy * dy) * 4.0 + 0.5)
                        lam[p, s] = lut[q] if q < nlut else 0.0
                # Bragg discs: flat tops with a soft edge, only where they land.
                for b in range(bragg_xy.shape[0]):
                    peak = bragg[j, i, b]
                    if peak <= 0.0:
                        continue
                    bx, by = c_x + bragg_xy[b, 0], c_y + bragg_xy[b, 1]
                    p0 = max(int(by - bragg_r - 2) - ky0, 0)
                    p1 = min(int(by + bragg_r + 3) - ky0, h)
                    s0 = max(int(bx - bragg_r - 2) - kx0, 0)
                    s1 = min(int(bx + bragg_r + 3) - kx0, w)
                    for p in range(p0, p1):
                        for s in range(s0, s1):
                            dx, dy = kx0 + s - bx, ky0 + p - by
                            edge = bragg_r - np.sqrt(dx * dx + dy * dy) + 0.5
                            if edge > 0.0:
                                lam[p, s] += peak * min(edge, 1.0)
                # Poisson draw by inversion: exact, one uniform per pixel.
                for p in range(h):
                    for s in range(w):
                        m = lam[p, s]
                        if m <= 0.0:
                            out[j, i, p, s] = 0
                            continue
                        if m > 30.0:
                            k = np.random.poisson(m)
                        else:
                            u = np.random.random()
                            t = np.exp(-m)
                            c = t
                            k = 0
                            while u > c and k < 200:
                                k += 1
                                t *= m / k
                                c += t
                        out[j, i, p, s] = min(k, 65535)
        return out

    return render


_KERNEL = None


def _kernel():
    global _KERNEL
    if _KERNEL is None:
        _KERNEL = _compile_kernel()
    return _KERNEL


def _block_seed(seed: int, block_id) -> int:
    ss = np.random.SeedSequence([seed, MODEL_VERSION, *block_id])
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def render_block(maps: dict, D: int, seed: int, block_id, block_slices) -> np.ndarray:
    """Render the patterns of one chunk; ``block_slices`` in numpy order."""
    sy, sx, sky, skx = block_slices
    shape = tuple(s.stop - s.start for s in block_slices)
    out = np.empty(shape, dtype=np.uint16)
    cx = (D / 2 + maps["shift_x"][sy, sx]).astype(np.float32)
    cy = (D / 2 + maps["shift_y"][sy, sx]).astype(np.float32)
    amps = np.stack([maps["disk"][sy, sx], maps["diffuse"][sy, sx], maps["ring"][sy, sx]], axis=-1)
    ang = np.deg2rad(15 + 60 * np.arange(6))
    bragg_xy = (BRAGG_RADIUS * D * np.stack([np.cos(ang), np.sin(ang)], axis=-1)).astype(np.float32)
    _kernel()(
        out, _block_seed(seed, block_id), sky.start, skx.start, cx, cy,
        np.ascontiguousarray(amps, dtype=np.float32),
        np.ascontiguousarray(maps["bragg"][sy, sx]), bragg_xy,
        np.float32(max(BRAGG_DISC * D, 0.8)), _radial_profiles(D),
    )
    dead = maps["dead"][sky, skx]
    hot = maps["hot"][sky, skx]
    if dead.any():
        out[..., dead] = 0
    if hot.any():
        out[..., hot] = np.uint16(min(65535, int(40 * max(maps["disk"].max(), 1))))
    return out


def make_lazy_signal(preset: Preset, seed: int | None = None):
    """The synthetic dataset as a lazy HyperSpy signal, nothing computed yet.

    Parameters
    ----------
    preset : Preset
        Geometry, calibration and default seed (see ``data_manifest.yml``).
    seed : int, optional
        Another seed gives another specimen (domains, grains, noise).

    Returns
    -------
    hyperspy.signals.LazySignal2D
        Axes named and calibrated (scan in nm, detector in mrad), chunks as
        in the preset, ground truth in ``metadata.Sample.ground_truth``.
    """
    import dask.array as da
    import hyperspy.api as hs

    seed = preset.seed if seed is None else seed
    maps = probe_maps(preset, seed)
    D = preset.signal_shape[0]

    def block(block_id=None, block_info=None):
        locs = block_info[None]["array-location"]
        return render_block(maps, D, seed, block_id, tuple(slice(a, b) for a, b in locs))

    data = da.map_blocks(
        block, dtype=np.uint16, chunks=da.core.normalize_chunks(preset.chunks, preset.data_shape),
        meta=np.empty((0, 0, 0, 0), dtype=np.uint16), name=f"synthetic-{preset.name}-{seed}",
    )
    return _wrap(data, preset, seed, maps)


def _wrap(data, preset: Preset, seed: int, maps: dict):
    import hyperspy.api as hs

    (nx, ny), (kx, ky) = preset.navigation_shape, preset.signal_shape
    R = DISK_RADIUS * kx
    axes = [
        dict(name="y", units="nm", scale=preset.scan_scale_nm, offset=0.0, size=ny, navigate=True),
        dict(name="x", units="nm", scale=preset.scan_scale_nm, offset=0.0, size=nx, navigate=True),
        dict(name="ky", units="mrad", scale=preset.detector_scale_mrad,
             offset=-ky / 2 * preset.detector_scale_mrad, size=ky, navigate=False),
        dict(name="kx", units="mrad", scale=preset.detector_scale_mrad,
             offset=-kx / 2 * preset.detector_scale_mrad, size=kx, navigate=False),
    ]
    s = hs.signals.Signal2D(data, axes=axes).as_lazy()
    s.metadata.General.title = f"Synthetic 4D-STEM twin ({preset.name}, seed {seed})"
    s.metadata.set_item("Acquisition_instrument.TEM.beam_energy", 200.0)
    s.metadata.set_item("Acquisition_instrument.TEM.convergence_angle", R * preset.detector_scale_mrad)
    s.metadata.set_item("Acquisition_instrument.TEM.acquisition_mode", "STEM")
    s.metadata.set_item(
        "Sample.description",
        "Magnetic thin film with stripe domains on a substrate, vacuum at the top; "
        "thickness rises from left to right.",
    )
    s.metadata.set_item("Sample.synthetic", {"preset": preset.name, "seed": seed, "model_version": MODEL_VERSION})
    truth = {k: maps[k] for k in ("shift_x", "shift_y", "domain", "region", "thickness", "n_bragg")}
    truth["dead_pixels"] = maps["dead"]
    truth["hot_pixels"] = maps["hot"]
    for k, v in truth.items():
        s.metadata.set_item(f"Sample.ground_truth.{k}", v)
    return s


def generate(
    preset: Preset,
    dest,
    formats=("zspy",),
    seed: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Write a synthetic dataset, chunk by chunk, atomically.

    Parameters
    ----------
    preset : Preset
    dest : path-like
        Folder to write into (created if needed).
    formats : sequence of {"zspy", "hspy"}
        The formats to write; the format lesson needs both.
    seed : int, optional
        Another specimen than the preset's default seed.
    overwrite : bool
        Replace a dataset that is already there.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        Format -> path of the finished file.
    """
    from pathlib import Path

    from . import storage

    dest = Path(dest)
    seed = preset.seed if seed is None else int(seed)
    formats = tuple(formats)
    for fmt in formats:
        if fmt not in ("zspy", "hspy"):
            raise storage.CourseDataError(f"Unknown format '{fmt}'. Valid formats: zspy, hspy.")
        final = dest / preset.filename(fmt, seed)
        if final.exists() and not overwrite:
            raise storage.CourseDataError(
                f"{final} already exists; it was left as it is. Pass --overwrite "
                "(overwrite=True) to replace it, or choose another --dest."
            )
    # Noisy uint16 patterns compress to about a third; ask for half to be safe.
    storage.check_free_space(dest, int(preset.nbytes * 0.5 * len(formats)))
    s = make_lazy_signal(preset, seed)
    paths = {}
    for fmt in formats:
        final = dest / preset.filename(fmt, seed)
        with storage.atomic_target(final, overwrite=overwrite) as tmp:
            if progress:
                print(f"Writing {final} ({preset.nbytes / 1e9:.2f} GB uncompressed)")
            s.save(tmp, chunks=preset.chunks, show_progressbar=progress)
            if fmt == "zspy":
                storage.write_stamp(
                    tmp, {"preset": preset.name, "seed": seed, "model_version": MODEL_VERSION,
                          "shape": list(preset.data_shape), "chunks": list(preset.chunks)},
                )
        paths[fmt] = final
    return paths
