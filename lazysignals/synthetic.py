"""The synthetic 4D-STEM twin: a magnetic thin film seen by a scanning probe.

Each probe position (x, y) gives a diffraction pattern (kx, ky) whose
expected counts per pixel are

* a bright-field disk, dimmed by absorption in thick specimen, whose centre
  moves with the probe: stripe-shaped magnetic domains deflect the beam one
  way or the other, and a slow linear descan ramp adds to it. The
  magnetisation lies in the plane of the film, along the stripes, one way or
  the other from one stripe to the next; the Lorentz force on the electrons
  (travelling along the beam, perpendicular to the film) deflects them at
  right angles to the magnetisation, that is across the stripes, along the
  normal of the domain walls (as in the Fe60Al40 stripes of the real data);
* diffuse scattering around the disk, of order one count per pixel over most
  of the detector, growing with specimen thickness and stronger on the
  substrate than on the film (none through vacuum);
* six Bragg discs whose strength follows the local crystal orientation, in
  Friedel pairs of equal strength, so that 0, 2, 4 or 6 of them stand out
  of the counting noise (ragged peak finding), and a faint high-angle ring;

then each pixel is an exact Poisson draw of its expected count, and, if the
preset asks for it, a few detector pixels are dead (always 0) or hot (stuck
at a high count, a fixed small fraction of a vacuum pattern's counts at every
detector size: it pulls an unmasked centre of mass about as far on every
preset).

How it is computed
------------------
Disk, diffuse halo and ring are round about the beam centre, so one pattern's
expected counts depend only on the distance ``r`` from that centre, sampled
every 1/``LUT_STEPS`` pixel. Expected counts are then rounded to a fixed
geometric grid of values 0.5 % apart (``LEVEL_STEP``; below
``LEVEL_MIN / 2`` they are 0). The model is defined on these grids: they are
not an approximation of the draw, and the rounding is far below the Poisson
noise (at 40 counts, 0.25 % against 16 %).

For every value of the grid, the Poisson cumulative distribution and a guide
table (Chen and Asau's method) are computed once per process. Each entry of
the guide table also says, decided once for all, whether the count is already
known or needs one comparison with the cumulative distribution, so a pixel
costs one uniform number, two look-ups and at most one comparison, with no
branch: an exact inversion of the Poisson distribution with no ``exp`` per
pixel. The table's last entry, where the tail's counts crowd together, is
split again (``GUIDE_TAIL``), so that the few draws that need a walk (about
6e-5 of the pixels below 5 counts) are queued and finished after the
pattern; beyond the end of a table the walk continues the series exactly,
and means above ``LEVEL_MAX`` are drawn as sums of smaller Poisson
variables, also exactly. Bragg discs, which are not round about the centre,
change the level of the pixels on their chord of each row before the draw.

Uniform numbers come from SplitMix64 used as a counter-based generator: the
n-th pixel of a chunk (in C order) draws number n of a stream whose key is
derived from ``(seed, MODEL_VERSION, chunk index)``. A chunk is thus the same
whichever thread or order computes it, a pixel's number does not depend on
which other pixels were drawn (rows through vacuum, mean 0, are skipped), and
a row's numbers are made in a vectorised loop. The kernel works row by row in
passes over short buffers (distance to the beam centre, level, uniform and
guide index, then the draws), all but the draws vectorised by the compiler.
The level of each radial sample of a pattern comes from a logarithm written
as a short series on the bits of the mean (vectorised, where ``np.log`` is
not), checked against ``np.log`` wherever it falls within 1e-7 of a tie
between two levels, so that every level is exactly the one of the grid.

The compiled kernel (numba, ``nogil``) renders one dask chunk at a time, so
a dataset of any size streams to disk with a few chunks in memory.

The ground truth (shift maps, domain and region maps, thickness, number of
detectable Bragg discs, defect masks) is stored in the signal's metadata under
``Sample.ground_truth``. The centre of mass of a pattern, in pixel index
units and with defect pixels left out, is ``D / 2 + shift`` to within a few
per cent of the shift: the detector edge cuts a little of the diffuse halo.
"""

from __future__ import annotations

import numba
import numpy as np

from .manifest import Preset

#: Version of the model; stored with every dataset so that an old file is remade.
MODEL_VERSION = 4

# Geometry as fractions of the detector side D, so every preset looks alike.
DISK_RADIUS = 1 / 8  # bright-field disk radius
DOMAIN_SHIFT = 0.012  # magnetic deflection, each way
DESCAN_SHIFT = 0.02  # descan ramp, from one scan edge to the other
HALO_DECAY = 0.35  # diffuse halo: exponential decay length beyond the disk
HALO_CUTOFF = 0.45  # diffuse halo: high-angle fall-off (exp(-(r / cutoff)^4))
BRAGG_RADIUS = 0.30  # distance of the Bragg discs from the centre
BRAGG_DISC = 1 / 40  # Bragg disc radius
RING_RADIUS = 0.44  # faint high-angle ring
RING_WIDTH = 1 / 64
LUT_STEPS = 4  # radial samples of the model per pixel
# Expected counts are rounded to a grid 0.5 % apart (and to 0 below
# LEVEL_MIN / 2), so that every value has its Poisson table ready.
LEVEL_MIN = 1e-3
LEVEL_MAX = 300.0  # above, pixels are drawn without a table (still exactly)
LEVEL_STEP = 0.005
GUIDE_SIZE = 256
GUIDE_TAIL = 64  # the last entry of the guide table, split again this many times

# Specimen: counts relative to the preset's dose (bright-field counts per pixel in vacuum).
ABSORPTION = 0.6  # disk dimming per unit thickness: exp(-ABSORPTION * t)
HALO_FILM = 0.09  # halo at the disk edge per unit thickness, film
HALO_SUBSTRATE = 0.13  # ... substrate (heavier atoms scatter more)
RING_STRENGTH = 0.02
BRAGG_STRENGTH = 0.5
# A Bragg disc is detectable when its counts above the background, summed over
# the disc, exceed BRAGG_SNR times the Poisson noise of the background over the
# same area: top * sqrt(pi) * radius / sqrt(background per pixel). This depends
# on the detector size (larger discs in pixels gather more counts), so the
# ground truth says what a peak finder can see on each preset.
BRAGG_SNR = 8.0
HOT_FRACTION = 0.1  # a hot pixel reads this fraction of a vacuum pattern's disk counts

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


def _specimen(rng, nx, ny):
    """Region map (vacuum band on top, film, substrate below) and thickness."""
    y, x = np.mgrid[0:ny, 0:nx].astype(float)
    u, v = x / nx, y / ny
    wav = _smooth_noise(rng, (ny, nx), scale=0.6 * nx)
    top = 0.14 + 0.04 * wav[0][None, :]
    bottom = 0.78 + 0.02 * np.sin(2 * np.pi * u * 1.5)
    region = np.full((ny, nx), FILM, dtype=np.uint8)
    region[v < top] = VACUUM
    region[v > bottom] = SUBSTRATE
    # A wedge: thickness rises from left to right, with a little roughness.
    thickness = (0.35 + 0.65 * u) * (1 + 0.08 * _smooth_noise(rng, (ny, nx), scale=0.1 * nx))
    thickness[region == VACUUM] = 0.0
    thickness[region == SUBSTRATE] *= 1.4
    return region, thickness


def _domains(rng, nx, ny, region, D):
    """Stripe domains (-1..1) and the beam shift they cause, plus descan."""
    y, x = np.mgrid[0:ny, 0:nx].astype(float)
    angle = rng.uniform(np.deg2rad(20), np.deg2rad(35))
    period = max(nx / 5.5, 4.0)
    phase = (x * np.cos(angle) + y * np.sin(angle)) / period
    phase += 0.12 * _smooth_noise(rng, (ny, nx), scale=0.5 * nx)
    wall = max(period / 12, 0.6)
    domain = np.tanh(np.sin(2 * np.pi * phase) * period / (2 * np.pi * wall))
    domain[region != FILM] = 0.0
    # The magnetisation lies along the stripes (perpendicular to the wall
    # normal, `angle`); the Lorentz force deflects the beam at right angles to
    # it, across the stripes, along the wall normal.
    direction = angle
    amp = DOMAIN_SHIFT * D
    shift_x = amp * domain * np.cos(direction) + DESCAN_SHIFT * D * (x / nx - 0.5)
    shift_y = amp * domain * np.sin(direction) + 0.5 * DESCAN_SHIFT * D * (y / ny - 0.5)
    return domain, shift_x, shift_y


def _defects(seed, kx, ky, enabled):
    """Dead and hot detector pixels, numpy order (ky, kx)."""
    dead = np.zeros((ky, kx), dtype=bool)
    hot = np.zeros((ky, kx), dtype=bool)
    if enabled:
        n_def = max(1, (kx * ky) // 8000)
        drng = np.random.default_rng([seed, 1])
        picks = drng.choice(kx * ky, n_def + max(1, n_def // 2), replace=False)
        dead.flat[picks[:n_def]] = True
        hot.flat[picks[n_def:]] = True
    return dead, hot


def probe_maps(preset: Preset, seed: int | None = None) -> dict[str, np.ndarray]:
    """Per-probe-position parameters and ground truth, in numpy order (y, x).

    Returns
    -------
    dict
        ``shift_x``, ``shift_y`` (true disk displacement in detector pixels,
        centre of mass = ``D / 2 + shift``), ``domain`` (-1..1 magnetisation),
        ``region`` (0 vacuum, 1 film, 2 substrate), ``thickness`` (relative),
        ``disk``, ``halo``, ``ring`` (expected counts per pixel at the
        maximum of each component) and ``bragg`` (expected peak counts of
        each of the 6 discs, shape (ny, nx, 6)), ``n_bragg`` (discs that
        stand out of the counting noise, see ``BRAGG_SNR``), plus ``dead``
        and ``hot`` (detector defect masks, numpy order (ky, kx)), ``dose``
        and ``hot_level`` (the count a hot pixel reads).
    """
    seed = preset.seed if seed is None else seed
    rng = np.random.default_rng(seed)
    (nx, ny), (kx, ky) = preset.navigation_shape, preset.signal_shape
    region, thickness = _specimen(rng, nx, ny)
    domain, shift_x, shift_y = _domains(rng, nx, ny, region, kx)

    dose = preset.dose
    solid = region != VACUUM
    disk = dose * np.exp(-ABSORPTION * thickness)
    halo = dose * np.where(region == SUBSTRATE, HALO_SUBSTRATE, HALO_FILM) * thickness
    ring = dose * RING_STRENGTH * thickness * solid
    # Bragg discs: crystal orientation varies in grains; opposite discs
    # (k and k + 3) are equally strong, so they light up in pairs.
    orient = _smooth_noise(rng, (ny, nx), scale=0.15 * nx)
    k = np.arange(6)
    excitation = np.cos(np.pi * (orient[..., None] * 2.5 + k / 3.0)) ** 6
    bragg = dose * BRAGG_STRENGTH * excitation * (thickness * solid)[..., None]
    n_bragg = _detectable(bragg, halo, ring, kx).sum(axis=-1).astype(np.uint8)
    dead, hot = _defects(seed, kx, ky, preset.defects)
    f32 = np.float32
    return dict(
        shift_x=shift_x.astype(f32), shift_y=shift_y.astype(f32),
        domain=domain.astype(f32), region=region, thickness=thickness.astype(f32),
        disk=disk.astype(f32), halo=halo.astype(f32), ring=ring.astype(f32),
        bragg=bragg.astype(f32), n_bragg=n_bragg, dead=dead, hot=hot, dose=np.float64(dose),
        hot_level=np.float64(hot_level(dose, kx)),
    )


def hot_level(dose: float, D: int) -> int:
    """Count of a hot pixel: ``HOT_FRACTION`` of the disk's counts in vacuum."""
    disk_counts = dose * np.pi * (DISK_RADIUS * D) ** 2
    return int(min(65535, round(HOT_FRACTION * disk_counts)))


def bragg_disc_radius(D: int) -> float:
    """Radius of a Bragg disc in detector pixels."""
    return max(BRAGG_DISC * D, 0.8)


def _detectable(bragg, halo, ring, D):
    """Which discs stand out of the background's counting noise (see BRAGG_SNR)."""
    prof = radial_profiles(D)
    q = min(int(round(BRAGG_RADIUS * D * LUT_STEPS)), prof.shape[1] - 1)
    background = (halo * prof[1, q] + ring * prof[2, q])[..., None]  # expected counts per pixel
    snr = bragg * np.sqrt(np.pi) * bragg_disc_radius(D) / np.sqrt(np.maximum(background, 1e-3))
    return snr > BRAGG_SNR


def radial_profiles(D: int) -> np.ndarray:
    """Unit radial profiles (disk, halo, ring) at r = q / LUT_STEPS pixels.

    The expected count of a pixel at distance r from the beam centre is
    ``disk * P[0, q] + halo * P[1, q] + ring * P[2, q]`` with ``q`` the
    nearest sample, plus the Bragg discs.
    """
    r = np.arange(int(np.ceil(D * 0.75 * LUT_STEPS)) + 2) / LUT_STEPS
    R = DISK_RADIUS * D
    disk = np.clip(R - r + 0.5, 0, 1)  # one-pixel soft edge
    halo = np.exp(-np.clip(r - R, 0, None) / (HALO_DECAY * D) - (r / (HALO_CUTOFF * D)) ** 4)
    halo *= 1 - disk
    ring = np.exp(-0.5 * ((r - RING_RADIUS * D) / (RING_WIDTH * D)) ** 2)
    ring[ring < 1e-3] = 0.0  # keep the disk interior exactly flat
    return np.stack([disk, halo, ring])


def _level_grid():
    """Expected counts the model can take: 0, then a geometric grid."""
    n = int(np.ceil(np.log(LEVEL_MAX / LEVEL_MIN) / np.log1p(LEVEL_STEP))) + 1
    return np.concatenate([[0.0], LEVEL_MIN * (1 + LEVEL_STEP) ** np.arange(n)])


_u64 = np.uint64
_STEPS = float(LUT_STEPS)
_G = GUIDE_SIZE
assert _G & (_G - 1) == 0, "u * GUIDE_SIZE must be exact: a power of 2"
_GT = GUIDE_TAIL
assert _GT & (_GT - 1) == 0, "a power of 2 as well"
_GSHIFT = 52 - (_G.bit_length() - 1)  # int(u * G) from u's 52 bits
_TSHIFT = _GSHIFT - (_GT.bit_length() - 1)  # the next bits: the tail's entry
_GROW = _G + _GT  # guide entries per level
_LOG_MIN, _LOG_STEP = float(np.log(LEVEL_MIN)), float(np.log1p(LEVEL_STEP))
# SplitMix64 (Steele, Lea and Flood, 2014): the n-th number of the stream
# with key K is a fixed mix of K + n * GOLDEN, so any number of the stream
# is computed on its own, and a row of them in a vectorised loop.
_GOLDEN = _u64(0x9E3779B97F4A7C15)
_MIX1, _MIX2 = _u64(0xBF58476D1CE4E5B9), _u64(0x94D049BB133111EB)
_ONE = _u64(0x3FF0000000000000)  # exponent bits of the float64 1.0
# Guide table entries: position in cdf << _POS | count << 1 | fallback flag.
_POS, _KMASK = 11, 1023


@numba.njit(inline="always", cache=True)
def _mix(z):
    """SplitMix64's output function: 64 well-mixed bits of z."""
    z = (z ^ (z >> _u64(30))) * _MIX1
    z = (z ^ (z >> _u64(27))) * _MIX2
    return z ^ (z >> _u64(31))


@numba.njit(inline="always", cache=True)
def _fill_uniforms(key, start, bits, entry, n):
    """Numbers start + 1 .. start + n of stream ``key`` into bits[:n], as floats in [1, 2).

    The 52 top bits of each number under the exponent of 1.0: read ``bits``
    as float64 and subtract 1 to get uniforms u in [0, 1) on a grid of
    2**-52, with no conversion instruction, so the loop is vectorised. Their
    top bits give the entry of the guide table's row, int(u * G) (or one of
    the tail's entries) into ``entry``.
    """
    c = key + _GOLDEN * _u64(start)
    for s in range(n):
        x = _mix(c + _GOLDEN * _u64(s + 1)) >> _u64(12)
        bits[s] = x | _ONE
        g = x >> _u64(_GSHIFT)
        # in the last entry, the tail's entries G, G + 1, ... (no branch)
        tail = (x >> _u64(_TSHIFT)) & _u64(_GT - 1)
        entry[s] = g + _u64(g == _G - 1) * (_u64(1) + tail)


@numba.njit(inline="always", cache=True)
def _uniform(key, n):
    """Number n of stream ``key``, a uniform in [0, 1) (53 bits)."""
    return (_mix(key + _GOLDEN * _u64(n)) >> _u64(11)) * (1.0 / 9007199254740992.0)


@numba.njit(nogil=True, cache=True)
def _tables(levels):
    """Cumulative Poisson tables and guide tables for every level.

    ``cdf[off[v]:off[v] + size[v]]`` is level v's cumulative distribution,
    followed by at least one sentinel 2.0 (above every u); ``plast[v]`` is
    the probability of its last count. Level 0 (mean 0) is the table [1.0];
    level ``nlev`` (one past the grid) is empty, so that every draw there
    goes to the exact fallback.

    Guide table (Chen and Asau): u in [g / G, (g + 1) / G) gives at least
    the count k of entry g, the first with cdf[k] >= g / G. Each entry also
    says how to finish, decided here once for all: if cdf[k] >= (g + 1) / G,
    the count is k whatever u (the entry points its comparison at a
    sentinel); if only cdf[k] lies inside the bucket, the count is k + (u >
    cdf[k]); otherwise (several counts in the bucket, or the end of the
    table) the fallback flag is set. A pixel thus costs two look-ups and one
    comparison, with no branch but the rare fallback's. Entries G, G + 1,
    ... split the last bucket [(G - 1) / G, 1) into GUIDE_TAIL equal parts
    (``_fill_uniforms`` sends u there), where the tail's counts crowd.
    """
    nlev = levels.shape[0]
    off = np.zeros(nlev + 2, dtype=np.int64)
    off[1] = 2  # level 0: its entry and a sentinel
    for v in range(1, nlev):
        m = levels[v]
        off[v + 1] = off[v] + int(m + 14.0 * np.sqrt(m) + 31.0)
    off[nlev + 1] = off[nlev] + 1
    cdf = np.full(off[nlev + 1], 2.0)  # 2.0: a sentinel above every u
    cdf[0] = 1.0
    size = np.zeros(nlev + 1, dtype=np.int64)
    size[0] = 1
    plast = np.zeros(nlev + 1)
    for v in range(1, nlev):
        m, o = levels[v], off[v]
        p = np.exp(-m)
        c = p
        n = 0
        while True:
            cdf[o + n] = c
            n += 1
            # stop past the mean once the tail is negligible (the slot
            # after the table keeps the sentinel); a draw in the tail
            # continues the series exactly
            if (n > m and p < 1e-13) or o + n == off[v + 1] - 1:
                break
            p *= m / n
            c += p
        size[v], plast[v] = n, p
    guide = np.zeros((nlev + 1, _GROW), dtype=np.int32)
    sentinel = 1  # cdf[1] is level 0's sentinel
    for v in range(nlev + 1):
        o, n = off[v], size[v]
        k = 0
        for g in range(_GROW):
            if g < _G:
                lo, hi = g / _G, (g + 1) / _G
            else:  # the last entry's tail, where the counts crowd together
                lo = (_G - 1) / _G + (g - _G) / (_G * _GT)
                hi = lo + 1 / (_G * _GT)
            while k < n - 1 and cdf[o + k] < lo:
                k += 1
            if n > 0 and cdf[o + k] >= hi:
                pos, flag = sentinel, 0  # the count is k
            elif k + 1 < n and cdf[o + k + 1] >= hi:
                pos, flag = o + k, 0  # k or k + 1
            else:
                pos, flag = sentinel, 1  # the fallback walks from k
            guide[v, g] = (pos << _POS) | (k << 1) | flag
    assert off[nlev + 1] < 2 ** (31 - _POS) and size.max() <= _KMASK
    return cdf, off, size, plast, guide


@numba.njit(inline="always", cache=True)
def _level_of(m, nlev):
    """Index of the grid level nearest to mean m (nlev: beyond the grid)."""
    if m < 0.5 * LEVEL_MIN:
        return 0
    return min(max(1, 1 + int(round((np.log(m) - _LOG_MIN) / _LOG_STEP))), nlev)



_MANT = _u64(0x000FFFFFFFFFFFFF)
_LN2 = float(np.log(2.0))
_SQRT2 = float(np.sqrt(2.0))
_INV_STEP = 1.0 / _LOG_STEP
#: A sample whose level index lies this close to half-way between two levels is
#: checked with np.log (the fast logarithm below is good to about 1e-15).
_TIE = 1e-7


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _levels(lam, lam_bits, mant_bits, mant, expo, lev, levg, qa, qb, nlev):
    """``_level_of`` of lam[qa:qb] into lev and levg, in vectorised loops; the last q whose level is above 0.

    log(m) = e ln 2 + log(f) from the bits of m = 2**e * f, with log(f) =
    2 atanh((f - 1) / (f + 1)) summed as a series (f in [sqrt(2) / 2, sqrt(2)));
    a sample near a tie between two levels takes np.log, so every level is the
    one ``_level_of`` gives.
    """
    for q in range(qa, qb):
        b = lam_bits[q]
        mant_bits[q] = (b & _MANT) | _ONE
        expo[q] = float(np.int64(b >> _u64(52)) - 1023)
    ties = 0
    for q in range(qa, qb):
        f = mant[q]
        e = expo[q]
        big = f > _SQRT2
        f = f * 0.5 if big else f
        e = e + 1.0 if big else e
        t = (f - 1.0) / (f + 1.0)
        t2 = t * t
        ser = 1.0 / 19.0
        ser = ser * t2 + 1.0 / 17.0
        ser = ser * t2 + 1.0 / 15.0
        ser = ser * t2 + 1.0 / 13.0
        ser = ser * t2 + 1.0 / 11.0
        ser = ser * t2 + 1.0 / 9.0
        ser = ser * t2 + 1.0 / 7.0
        ser = ser * t2 + 1.0 / 5.0
        ser = ser * t2 + 1.0 / 3.0
        ser = ser * t2 + 1.0
        x = max((e * _LN2 + 2.0 * t * ser - _LOG_MIN) * _INV_STEP, 0.0)  # below 0: level 1 (or 0)
        r = float(np.int64(x + 0.5))  # round half up (x >= 0)
        ties |= np.int64(abs(x - r) > 0.5 - _TIE)
        k = min(max(1.0, 1.0 + r), float(nlev))
        k = 0.0 if lam[q] < 0.5 * LEVEL_MIN else k
        lev[q] = np.int64(k)
        levg[q] = _u64(np.int64(k)) * _u64(_GROW)
    if ties:
        for q in range(qa, qb):
            f = mant[q]
            x = (expo[q] * _LN2 + np.log(f) - _LOG_MIN) * _INV_STEP
            if abs(x - np.floor(x + 0.5)) > 0.5 - 2 * _TIE:
                lev[q] = _level_of(lam[q], nlev)
                levg[q] = lev[q] * _GROW
    qz = qb - 1
    while qz >= qa and lev[qz] == 0:
        qz -= 1
    return qz if qz >= qa else -1


@numba.njit(nogil=True, cache=True)
def _series_tail(u, m, k, p, c):
    """Continue the inversion past a table that ends at k, pmf p, cdf c."""
    while u > c and p > 0.0:
        k += 1
        p *= m / k
        c += p
    return k


@numba.njit(nogil=True, cache=True)
def _finish(v, u, m, levels, cdf, off, size, plast, guide, key, n):
    """A draw the fast loop could not finish: a walk, a table's tail, or off the grid.

    ``key``, ``n``: the stream and count of the numbers used so far, for a
    mean beyond the grid, drawn as a sum of Poisson variables of at most
    100 (exact). Returns the count and the new n.
    """
    if v == levels.shape[0]:
        k = 0
        while m > 0.0:
            part = min(m, 100.0)
            m -= part
            n += 1
            e = np.exp(-part)
            k += _series_tail(_uniform(key, n), part, 0, e, e)
        return k, n
    o, last = off[v], size[v] - 1
    k = (guide[v, int(u * _G)] >> 1) & _KMASK
    while k < last and u > cdf[o + k]:
        k += 1
    if u <= cdf[o + k]:
        return k, n
    return _series_tail(u, levels[v], last, plast[v], cdf[o + last]), n


@numba.njit(inline="always", cache=True)
def _bragg_mean(b, p, s, c_x, c_y, ky0, kx0, a0, a1, a2, top, bragg_xy, bragg_r, profiles):
    """Expected count of pixel (p, s) of the window inside Bragg disc b (-1 outside).

    Discs have flat tops with a soft edge, on top of the round model.
    """
    dx, dy = kx0 + s - (c_x + bragg_xy[b, 0]), ky0 + p - (c_y + bragg_xy[b, 1])
    edge = bragg_r - np.sqrt(dx * dx + dy * dy) + 0.5
    if edge <= 0.0:
        return -1.0
    ddx, ddy = kx0 + s - c_x, ky0 + p - c_y
    q = min(int(np.sqrt(ddx * ddx + ddy * ddy) * _STEPS + 0.5), profiles.shape[1] - 1)
    return top * min(edge, 1.0) + a0 * profiles[0, q] + a1 * profiles[1, q] + a2 * profiles[2, q]


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _render(out, keys, ky0, kx0, cx, cy, amps, bragg, bragg_xy, bragg_r, profiles,
            fix_pix, fix_val, levels, cdf, off, size, plast, guide):
    """Draw Poisson patterns into out[ny, nx, h, w] (uint16).

    ``keys``: the chunk's two streams, one for the pixels (number n + 1 for
    the n-th pixel of the chunk in C order), one for the rare draws that need
    more numbers. ``fix_pix``, ``fix_val``: flat positions in the window of
    the defect pixels and what they read.

    Each row of a pattern is made in passes over short buffers: distances to
    the beam centre (vectorised), levels (the round model, then the Bragg
    discs that cross the row), uniforms and guide indices (vectorised), then
    the draws, without a branch; the rare ones are queued for after the
    pattern.
    """
    ny, nx, h, w = out.shape
    nlut = profiles.shape[1]
    nlev = levels.shape[0]
    nb = bragg_xy.shape[0]
    lev = np.zeros(nlut + 1, dtype=np.int64)  # lev[nlut]: outside the model
    lam = np.zeros(nlut + 1)
    lam_bits = lam.view(np.uint64)
    mant_bits = np.zeros(nlut + 1, dtype=np.uint64)
    mant = mant_bits.view(np.float64)
    expo = np.zeros(nlut + 1)
    qrow = np.empty(w, dtype=np.int64)
    # the first guide index of lev[q]; after nlut + 1, of the Bragg pixels of a row
    levg = np.zeros(nlut + 1 + w, dtype=np.uint64)
    entry = np.empty(w, dtype=np.uint64)  # each pixel's entry in its guide row
    bits = np.empty(w, dtype=np.uint64)
    unif = bits.view(np.float64)  # 1 + uniform
    pend_pix = np.empty(h * w, dtype=np.int64)
    pend_v = np.empty(h * w, dtype=np.int64)
    pend_u = np.empty(h * w)
    flat_guide = guide.reshape(-1)
    box = np.empty((nb, 4), dtype=np.int64)  # rows p0..p1, columns s0..s1 of each disc
    n_extra = 0  # numbers used from the second stream
    for j in range(ny):
        for i in range(nx):
            a0, a1, a2 = amps[j, i, 0], amps[j, i, 1], amps[j, i, 2]
            c_x, c_y = cx[j, i], cy[j, i]
            # the radial samples this chunk's window reaches
            ex = max(kx0 - c_x, 0.0, c_x - (kx0 + w - 1))
            ey = max(ky0 - c_y, 0.0, c_y - (ky0 + h - 1))
            fx = max(abs(kx0 - c_x), abs(kx0 + w - 1 - c_x))
            fy = max(abs(ky0 - c_y), abs(ky0 + h - 1 - c_y))
            qa = int(np.sqrt(ex * ex + ey * ey) * _STEPS + 0.5)
            qb = min(int(np.sqrt(fx * fx + fy * fy) * _STEPS + 0.5) + 1, nlut)
            for q in range(qa, qb):
                lam[q] = a0 * profiles[0, q] + a1 * profiles[1, q] + a2 * profiles[2, q]
            qz = _levels(lam, lam_bits, mant_bits, mant, expo, lev, levg, qa, qb, nlev)
            # the window's box around each Bragg disc (no rows if the disc is off)
            for b in range(nb):
                bx, by = c_x + bragg_xy[b, 0], c_y + bragg_xy[b, 1]
                box[b, 0] = max(int(by - bragg_r - 2) - ky0, 0)
                box[b, 1] = min(int(by + bragg_r + 3) - ky0, h) if bragg[j, i, b] > 0.0 else 0
                box[b, 2] = max(int(bx - bragg_r - 2) - kx0, 0)
                box[b, 3] = min(int(bx + bragg_r + 3) - kx0, w)
            npend = 0
            for p in range(h):
                dy = ky0 + p - c_y
                dy2 = dy * dy
                for s in range(w):  # radial sample of every pixel
                    dx = kx0 + s - c_x
                    qrow[s] = min(int(np.sqrt(dx * dx + dy2) * _STEPS + 0.5), nlut)
                in_disc = False
                for b in range(nb):  # Bragg discs crossing this row: their pixels' own levels
                    if box[b, 0] <= p < box[b, 1]:
                        in_disc = True
                        # only the disc's chord on this row, a pixel wider each way
                        dby = ky0 + p - (c_y + bragg_xy[b, 1])
                        half = np.sqrt(max((bragg_r + 0.5) ** 2 - dby * dby, 0.0)) + 1.0
                        mid = c_x + bragg_xy[b, 0] - kx0
                        for s in range(max(box[b, 2], int(mid - half)), min(box[b, 3], int(mid + half) + 1)):
                            m = _bragg_mean(b, p, s, c_x, c_y, ky0, kx0, a0, a1, a2, bragg[j, i, b],
                                            bragg_xy, bragg_r, profiles)
                            if m >= 0.0:
                                levg[nlut + 1 + s] = _level_of(m, nlev) * _GROW
                                qrow[s] = nlut + 1 + s
                # a row whose nearest pixel lies beyond the last mean above 0 (through
                # vacuum) has nothing to draw
                near = max(kx0 - c_x, 0.0, c_x - (kx0 + w - 1))
                if not in_disc and int(np.sqrt(near * near + dy2) * _STEPS + 0.5) > qz:
                    for s in range(w):
                        out[j, i, p, s] = 0
                    continue
                # (each pixel has its own number of the stream: skipping a row shifts no other)
                _fill_uniforms(keys[0], ((j * nx + i) * h + p) * w, bits, entry, w)
                orow = out[j, i, p]
                flags = 0
                for s in range(w):  # the draws, without a branch
                    u = unif[s] - 1.0
                    # (unsigned indices: no test for Python's negative ones)
                    e = flat_guide[levg[_u64(qrow[s])] + entry[s]]
                    orow[s] = ((e >> 1) & _KMASK) + (u > cdf[_u64(e >> _POS)])
                    flags |= e
                for s in range(w if flags & 1 else 0):  # queue the rare draws, if any
                    if flat_guide[levg[qrow[s]] + entry[s]] & 1:
                        pend_pix[npend] = p * w + s
                        pend_v[npend] = levg[qrow[s]] // _GROW
                        pend_u[npend] = unif[s] - 1.0
                        npend += 1
            for t in range(npend):
                p, s = pend_pix[t] // w, pend_pix[t] % w
                m = 0.0
                if pend_v[t] == nlev:  # beyond the grid: the pixel's own mean
                    dx, dy = kx0 + s - c_x, ky0 + p - c_y
                    m = lam[min(int(np.sqrt(dx * dx + dy * dy) * _STEPS + 0.5), nlut)]
                    for b in range(nb):
                        if box[b, 0] <= p < box[b, 1] and box[b, 2] <= s < box[b, 3]:
                            mb = _bragg_mean(b, p, s, c_x, c_y, ky0, kx0, a0, a1, a2, bragg[j, i, b],
                                             bragg_xy, bragg_r, profiles)
                            if mb >= 0.0:
                                m = mb
                k, n_extra = _finish(pend_v[t], pend_u[t], m, levels, cdf, off, size, plast, guide,
                                     keys[1], n_extra)
                out[j, i, p, s] = min(k, 65535)
            for t in range(fix_pix.shape[0]):
                out[j, i, fix_pix[t] // w, fix_pix[t] % w] = fix_val[t]
    return out


_TABLES = None


def _kernel():
    """The compiled renderer, the level grid and its Poisson tables (made once)."""
    global _TABLES
    if _TABLES is None:
        levels = _level_grid()
        _TABLES = (levels, _tables(levels))
    return _render, *_TABLES


def _block_state(seed: int, block_id) -> np.ndarray:
    """The two stream keys of one chunk, from the seed, model version and chunk index."""
    ss = np.random.SeedSequence([seed, MODEL_VERSION, *block_id])
    return ss.generate_state(2, dtype=np.uint64)


def _bragg_offsets(D: int) -> np.ndarray:
    ang = np.deg2rad(15 + 60 * np.arange(6))
    return BRAGG_RADIUS * D * np.stack([np.cos(ang), np.sin(ang)], axis=-1)


def _fixed_pixels(maps: dict, sky, skx):
    """Defect pixels of a detector window: flat positions and the count each reads."""
    dead, hot = maps["dead"][sky, skx], maps["hot"][sky, skx]
    pix = np.flatnonzero(dead | hot)
    val = np.where(hot.ravel()[pix], maps["hot_level"], 0).astype(np.uint16)
    return pix, val


#: No defect pixels (``fix_pix``, ``fix_val`` of the kernel).
NO_DEFECTS = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.uint16))


def render_block(maps: dict, D: int, seed: int, block_id, block_slices) -> np.ndarray:
    """Render the patterns of one chunk; ``block_slices`` in numpy order."""
    sy, sx, sky, skx = block_slices
    shape = tuple(s.stop - s.start for s in block_slices)
    out = np.empty(shape, dtype=np.uint16)
    amps = np.stack([maps[k][sy, sx] for k in ("disk", "halo", "ring")], axis=-1)
    render, levels, tabs = _kernel()
    render(
        out, _block_state(seed, block_id), float(sky.start), float(skx.start),
        D / 2 + maps["shift_x"][sy, sx].astype(float), D / 2 + maps["shift_y"][sy, sx].astype(float),
        amps.astype(float), np.ascontiguousarray(maps["bragg"][sy, sx], dtype=float),
        _bragg_offsets(D), bragg_disc_radius(D), radial_profiles(D), *_fixed_pixels(maps, sky, skx),
        levels, *tabs,
    )
    return out


def make_lazy_signal(preset: Preset, seed: int | None = None, chunks=None):
    """The synthetic dataset as a lazy HyperSpy signal, nothing computed yet.

    Parameters
    ----------
    preset : Preset
        Geometry, calibration and default seed (see ``data_manifest.yml``).
    seed : int, optional
        Another seed gives another specimen (domains, grains, noise).
    chunks : tuple, optional
        Chunks in numpy order ``(y, x, ky, kx)`` to render the patterns in
        (default: the preset's). Saving with other chunks than those rendered
        makes dask regroup rendered chunks, holding many at a time; rendering
        in the chunks to be saved holds a few. The counting noise depends on
        the chunks (each chunk has its own random stream); the specimen does
        not.

    Returns
    -------
    hyperspy.signals.LazySignal2D
        Navigation axes ``x``, ``y`` (nm) and signal axes ``kx``, ``ky``
        (mrad, zero at the detector centre), data in numpy order
        ``(y, x, ky, kx)``, chunks as in the preset (or ``chunks``), ground truth in
        ``metadata.Sample.ground_truth``.
    """
    import dask.array as da
    from dask.base import tokenize

    seed = preset.seed if seed is None else int(seed)
    maps = probe_maps(preset, seed)
    D = preset.signal_shape[0]

    def block(block_id=None, block_info=None):
        locs = block_info[None]["array-location"]
        return render_block(maps, D, seed, block_id, tuple(slice(a, b) for a, b in locs))

    data = da.map_blocks(
        block, dtype=np.uint16, chunks=da.core.normalize_chunks(chunks or preset.chunks, preset.data_shape),
        meta=np.empty((0, 0, 0, 0), dtype=np.uint16),
        name=f"synthetic-{preset.name}-{tokenize(preset, seed, MODEL_VERSION, chunks)}",
    )
    return _wrap(data, preset, seed, maps)


def _wrap(data, preset: Preset, seed: int, maps: dict):
    import hyperspy.api as hs

    (nx, ny), (kx, ky) = preset.navigation_shape, preset.signal_shape
    scan, det = preset.scan_scale_nm, preset.detector_scale_mrad
    # axes in numpy (data) order; HyperSpy shows navigation as (x, y), signal as (kx, ky)
    axes = [
        dict(name="y", units="nm", scale=scan, offset=0.0, size=ny, navigate=True),
        dict(name="x", units="nm", scale=scan, offset=0.0, size=nx, navigate=True),
        dict(name="ky", units="mrad", scale=det, offset=-(ky // 2) * det, size=ky, navigate=False),
        dict(name="kx", units="mrad", scale=det, offset=-(kx // 2) * det, size=kx, navigate=False),
    ]
    s = hs.signals.Signal2D(data, axes=axes).as_lazy()
    s.metadata.General.title = f"Synthetic 4D-STEM twin ({preset.name}, seed {seed})"
    s.metadata.Signal.quantity = "Counts"
    tem = "Acquisition_instrument.TEM"
    s.metadata.set_item(f"{tem}.beam_energy", 200.0)
    s.metadata.set_item(f"{tem}.convergence_angle", DISK_RADIUS * kx * det)
    s.metadata.set_item(f"{tem}.acquisition_mode", "STEM")
    s.metadata.set_item(
        "Sample.description",
        "Magnetic thin film with stripe domains on a substrate, vacuum at the top; "
        "thickness rises from left to right.",
    )
    s.metadata.set_item(
        "Sample.synthetic",
        {"preset": preset.name, "seed": seed, "model_version": MODEL_VERSION, "dose": preset.dose},
    )
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

    Raises
    ------
    CourseDataError
        If a file exists and ``overwrite`` is False, the format is unknown,
        or the disk is (or becomes) too full.
    """
    from pathlib import Path

    from . import storage

    dest = Path(dest)
    seed = preset.seed if seed is None else int(seed)
    formats = storage.check_formats(formats)
    finals = {fmt: dest / preset.filename(fmt, seed) for fmt in formats}
    for final in finals.values():  # before anything is written
        storage.refuse_existing(final, overwrite)
    # The counts compress to about a sixth; ask for a third to be safe.
    storage.check_free_space(dest, int(preset.nbytes / 3 * len(formats)))
    s = make_lazy_signal(preset, seed)
    for fmt, final in finals.items():
        with storage.atomic_target(final, overwrite=overwrite) as tmp:
            if progress:
                print(f"Writing {final} ({preset.nbytes / 1e9:.2f} GB uncompressed)")
            extra = {"compressor": storage.course_compressor()} if fmt == "zspy" else {}
            with storage.zarr2_notice_hidden():
                s.save(tmp, chunks=preset.chunks, show_progressbar=progress, **extra)
        storage.write_stamp(final, stamp(preset, seed))
    return finals


#: ``Sample.synthetic.truth`` of a copy made for grading: its ground truth was removed.
WITHHELD = "withheld for grading"


def copy_without_truth(src, dest, preset: Preset):
    """Copy the dataset ``src`` of ``preset`` into folder ``dest`` without its ground truth or seed.

    What the grading sandbox shows: the learner's code reads the patterns
    but no map to copy an answer from, and no seed to make the maps again.
    The copy is named and stamped as the preset without a seed
    (``synthetic_<preset>.zspy``), which a manifest whose seeds are removed finds.

    Returns
    -------
    Path
        The copy.
    """
    from dataclasses import replace
    from pathlib import Path

    import hyperspy.api as hs

    from . import storage

    src = Path(src)
    fmt = src.suffix.lstrip(".")
    unseeded = replace(preset, seed=None)
    final = Path(dest) / unseeded.filename(fmt)
    s = hs.load(src, lazy=True)
    md = s.metadata
    if md.has_item("Sample.ground_truth"):
        del md.Sample.ground_truth
    if md.has_item("Sample.synthetic.seed"):
        del md.Sample.synthetic.seed
    md.set_item("Sample.synthetic.truth", WITHHELD)
    md.General.title = f"Synthetic 4D-STEM twin ({preset.name})"
    s.tmp_parameters = type(s.tmp_parameters)()  # where it was read from: the master's name
    extra = {"compressor": storage.course_compressor()} if fmt == "zspy" else {}
    with storage.atomic_target(final) as tmp, storage.zarr2_notice_hidden():
        s.save(tmp, chunks=preset.chunks, show_progressbar=False, **extra)
    storage.write_stamp(final, stamp(unseeded, None))
    return final


def stamp(preset: Preset, seed: int) -> dict:
    """What a finished synthetic dataset records about itself (its stamp)."""
    return {"preset": preset.name, "seed": seed, "model_version": MODEL_VERSION,
            "shape": list(preset.data_shape), "chunks": list(preset.chunks)}
