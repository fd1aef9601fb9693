"""The synthetic 4D-STEM twin: what the lessons may rely on.

Everything runs on the ``ci`` preset or on small presets made here, so the
file takes seconds; one test makes a few hundred MB in a child process to
show that generation streams (peak memory far below the dataset's size).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lazysignals import manifest, synthetic

# Centre of mass against the stored shift, on `ci` (32 x 32 detector, dose 60):
# the Poisson noise gives about 0.12 px RMS per pattern, the diffuse halo cut
# by the detector edge scales the shift by about 0.96.
COM_RMS_TOL = 0.2  # pixels, per pattern, both axes together
COM_SLOPE_RANGE = (0.9, 1.05)
DOMAIN_CORRELATION_MIN = 0.9


@pytest.fixture(scope="module")
def ci():
    return manifest.get_preset("ci")


@pytest.fixture(scope="module")
def ci_signal(ci):
    return synthetic.make_lazy_signal(ci)


@pytest.fixture(scope="module")
def ci_data(ci_signal):
    return np.asarray(ci_signal.data.compute())


@pytest.fixture(scope="module")
def truth(ci_signal):
    node = ci_signal.metadata.Sample.ground_truth
    return {k: np.asarray(v) for k, v in node.as_dictionary().items()}


def centre_of_mass(data, truth):
    """Centre of mass of every pattern in pixel index units, defects masked."""
    good = ~(truth["dead_pixels"] | truth["hot_pixels"])
    d = data.astype(float) * good
    k = np.arange(d.shape[-1])
    total = d.sum(axis=(2, 3))
    return (d.sum(axis=2) * k).sum(-1) / total, (d.sum(axis=3) * k).sum(-1) / total


# --------------------------------------------------------------------------
# Geometry, axes and metadata
# --------------------------------------------------------------------------

def test_signal_has_preset_shape_dtype_and_chunks(ci, ci_signal):
    assert ci_signal._lazy
    assert ci_signal.data.shape == ci.data_shape == (16, 55, 32, 32)
    assert ci_signal.data.dtype == np.uint16
    assert ci_signal.data.chunksize == ci.chunks
    assert ci_signal.axes_manager.navigation_shape == ci.navigation_shape
    assert ci_signal.axes_manager.signal_shape == ci.signal_shape


def test_axes_are_named_calibrated_and_in_hyperspy_order(ci, ci_signal):
    nav = ci_signal.axes_manager.navigation_axes
    sig = ci_signal.axes_manager.signal_axes
    assert [a.name for a in nav] == ["x", "y"]
    assert [a.name for a in sig] == ["kx", "ky"]
    assert [a.size for a in nav] == [55, 16]  # x runs along the data's second index
    for a in nav:
        assert (a.units, a.scale, a.offset) == ("nm", ci.scan_scale_nm, 0.0)
    for a in sig:
        assert a.units == "mrad"
        assert a.scale == pytest.approx(ci.detector_scale_mrad)
        # pixel index D/2 is the detector centre, 0 mrad
        assert a.index2value(ci.signal_shape[0] // 2) == pytest.approx(0.0, abs=1e-9)


def test_metadata_names_the_dataset_and_holds_the_ground_truth(ci, ci_signal, truth):
    md = ci_signal.metadata
    assert "ci" in md.General.title and str(ci.seed) in md.General.title
    assert md.Sample.synthetic.model_version == synthetic.MODEL_VERSION
    assert md.Acquisition_instrument.TEM.beam_energy > 0
    assert set(truth) == {"shift_x", "shift_y", "domain", "region", "thickness", "n_bragg",
                          "dead_pixels", "hot_pixels"}
    for k in ("shift_x", "shift_y", "domain", "region", "thickness", "n_bragg"):
        assert truth[k].shape == ci.data_shape[:2], k
    assert truth["dead_pixels"].shape == ci.data_shape[2:]


# --------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------

def test_same_seed_gives_identical_data_whatever_the_chunk_order(ci, ci_data):
    s = synthetic.make_lazy_signal(ci)
    reversed_order = s.data[::-1, ::-1].compute(scheduler="threads")[::-1, ::-1]
    np.testing.assert_array_equal(reversed_order, ci_data)
    np.testing.assert_array_equal(s.data.compute(scheduler="synchronous"), ci_data)


def test_another_seed_gives_another_specimen(ci, ci_data, truth):
    other = synthetic.make_lazy_signal(ci, seed=ci.seed + 1)
    gt = other.metadata.Sample.ground_truth
    assert not np.array_equal(np.asarray(gt.domain), truth["domain"])
    assert (np.asarray(other.data.compute()) != ci_data).mean() > 0.3


# --------------------------------------------------------------------------
# Ground truth agrees with the data
# --------------------------------------------------------------------------

def test_centre_of_mass_matches_half_detector_plus_stored_shift(ci, ci_data, truth):
    D = ci.signal_shape[0]
    cx, cy = centre_of_mass(ci_data, truth)
    ex, ey = cx - D / 2 - truth["shift_x"], cy - D / 2 - truth["shift_y"]
    rms = np.sqrt(np.mean(ex**2 + ey**2))
    assert rms < COM_RMS_TOL, f"COM differs from D/2 + shift by {rms:.3f} px RMS"
    slope = np.polyfit(truth["shift_x"].ravel(), (cx - D / 2).ravel(), 1)[0]
    assert COM_SLOPE_RANGE[0] < slope < COM_SLOPE_RANGE[1]


def test_centre_of_mass_recovers_the_domain_map(ci, ci_data, truth):
    cx, cy = centre_of_mass(ci_data, truth)
    film = truth["region"] == synthetic.FILM
    ny, nx = cx.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    ramp = np.c_[np.ones(xx.size), xx.ravel(), yy.ravel()][film.ravel()]
    # remove the descan ramp (a plane), then find the deflection direction
    resid = [c.ravel()[film.ravel()] - ramp @ np.linalg.lstsq(ramp, c.ravel()[film.ravel()], rcond=None)[0]
             for c in (cx, cy)]
    comp = np.c_[resid[0], resid[1]]
    w = np.linalg.lstsq(comp, truth["domain"][film], rcond=None)[0]
    r = np.corrcoef(comp @ w, truth["domain"][film])[0, 1]
    assert r > DOMAIN_CORRELATION_MIN, f"domain map correlation {r:.3f}"


def test_annular_dark_field_shows_vacuum_film_and_substrate(ci, ci_data, truth):
    D = ci.signal_shape[0]
    k = np.arange(D) - D / 2
    r = np.hypot(*np.meshgrid(k, k))
    ring = (r > 0.2 * D) & (r < 0.45 * D) & ~(truth["dead_pixels"] | truth["hot_pixels"])
    adf = (ci_data * ring).sum(axis=(2, 3))
    vac, film, sub = (adf[truth["region"] == v].mean() for v in (synthetic.VACUUM, synthetic.FILM,
                                                                  synthetic.SUBSTRATE))
    assert vac * 10 < film < sub
    # the film thickens from left to right, so does its dark-field signal
    film_rows = adf * (truth["region"] == synthetic.FILM)
    counts = (truth["region"] == synthetic.FILM).sum(0)
    profile = film_rows.sum(0) / np.maximum(counts, 1)
    third = profile.size // 3
    assert profile[-third:].mean() > 1.5 * profile[:third].mean()


def test_patterns_look_like_counting_detector_data(ci, ci_data, truth):
    """Disk of tens of counts, a diffuse background of about a count, few zeros on film."""
    D = ci.signal_shape[0]
    film = ci_data[truth["region"] == synthetic.FILM].astype(float)
    mean_pattern = film.mean(axis=0)
    assert 20 < mean_pattern[D // 2, D // 2] < ci.dose
    k = np.arange(D) - D / 2
    r = np.hypot(*np.meshgrid(k, k))
    halo = mean_pattern[(r > 0.2 * D) & (r < 0.35 * D)]
    assert 0.5 < np.median(halo) < 3
    vacuum = ci_data[truth["region"] == synthetic.VACUUM]
    assert (vacuum[:, r > 0.2 * D] == 0).mean() > 0.95  # nothing scatters in vacuum


def test_hot_pixel_carries_the_same_small_share_of_a_pattern_on_every_detector(tiny_preset):
    shares = []
    for D in (32, 64, 128):
        p = tiny_preset(navigation_shape=(8, 8), signal_shape=(D, D), chunk=D // 4)
        vacuum = synthetic.make_lazy_signal(p).data[0, 0].compute()  # top-left: vacuum
        hot = synthetic.probe_maps(p)["hot"]
        shares.append(vacuum[hot].sum() / vacuum.sum())
    assert max(shares) < 0.15 and max(shares) - min(shares) < 0.02, shares


def test_magnetic_deflection_is_across_the_stripes(truth):
    """In-plane magnetisation along the stripes deflects the beam across them (wall normal)."""
    film = (truth["region"] == synthetic.FILM)
    gy, gx = np.gradient(truth["domain"].astype(float))
    walls = film & (np.hypot(gx, gy) > 0.5 * np.hypot(gx, gy)[film].max())
    normal = np.array([np.median(np.abs(gx[walls])), np.median(np.abs(gy[walls]))])
    # the shift's domain part: the shift minus its descan plane, projected on the domain map
    d = truth["domain"][film]
    along = np.array([np.polyfit(d, truth[k][film] - plane(truth[k], film)[film], 1)[0]
                      for k in ("shift_x", "shift_y")])
    cos = abs(np.dot(np.abs(along), normal)) / np.linalg.norm(along) / np.linalg.norm(normal)
    assert cos > np.cos(np.deg2rad(15)), f"deflection {np.degrees(np.arccos(cos)):.0f} degrees from the wall normal"


def plane(z, where):
    """Least-squares plane a + b x + c y through z[where], evaluated everywhere."""
    ny, nx = z.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    A = np.c_[np.ones(z.size), xx.ravel(), yy.ravel()]
    coef = np.linalg.lstsq(A[where.ravel()], z.ravel()[where.ravel()], rcond=None)[0]
    return (A @ coef).reshape(z.shape)


def test_bragg_discs_counted_as_detectable_stand_out_of_the_noise(ci, ci_data):
    """Counts in each disc above the model background, in units of its Poisson noise."""
    m = synthetic.probe_maps(ci)
    D = ci.signal_shape[0]
    R = synthetic.bragg_disc_radius(D)
    prof = synthetic.radial_profiles(D)
    k = np.arange(D)
    z_detectable, z_faint = [], []
    for j, i in np.argwhere(m["region"] != synthetic.VACUUM)[::7]:
        cx, cy = D / 2 + m["shift_x"][j, i], D / 2 + m["shift_y"][j, i]
        r_beam = np.hypot(k[None, :] - cx, k[:, None] - cy)
        q = np.minimum((r_beam * synthetic.LUT_STEPS + 0.5).astype(int), prof.shape[1] - 1)
        background = m["halo"][j, i] * prof[1, q] + m["ring"][j, i] * prof[2, q]
        order = np.argsort(m["bragg"][j, i])[::-1]
        for rank, (bx, by) in enumerate(synthetic._bragg_offsets(D)[order]):
            disc = np.hypot(k[None, :] - cx - bx, k[:, None] - cy - by) < R + 0.5
            excess = ci_data[j, i][disc].sum() - background[disc].sum()
            z = excess / np.sqrt(max(background[disc].sum(), 1.0))
            (z_detectable if rank < m["n_bragg"][j, i] else z_faint).append(z)
    assert np.median(z_detectable) > 5, np.median(z_detectable)
    assert np.median(z_faint) < 2, np.median(z_faint)


def test_visible_bragg_discs_vary_in_number(truth):
    counts = np.unique(truth["n_bragg"][truth["region"] != synthetic.VACUUM])
    assert len(counts) >= 2
    assert set(counts) <= {0, 2, 4, 6}  # Friedel pairs light up together


def test_dead_pixels_read_zero_and_hot_pixels_read_high(ci, ci_data, truth, tiny_preset):
    assert truth["dead_pixels"].any() and truth["hot_pixels"].any()
    assert (ci_data[..., truth["dead_pixels"]] == 0).all()
    hot = ci_data[..., truth["hot_pixels"]]
    assert (hot == hot.flat[0]).all() and hot.flat[0] > 3 * ci.dose  # stuck, brighter than the disk
    clean = synthetic.make_lazy_signal(tiny_preset(defects=False))
    gt = clean.metadata.Sample.ground_truth
    assert not np.asarray(gt.dead_pixels).any() and not np.asarray(gt.hot_pixels).any()


# --------------------------------------------------------------------------
# Honest statistics
# --------------------------------------------------------------------------

def on_level_grid(lam, levels):
    """The model's expected counts: rounded to the grid of levels, 0 below half its start."""
    v = 1 + np.round((np.log(np.maximum(lam, 1e-300)) - np.log(synthetic.LEVEL_MIN))
                     / np.log1p(synthetic.LEVEL_STEP)).astype(int)
    v = np.clip(v, 1, len(levels) - 1)
    return np.where(lam < 0.5 * synthetic.LEVEL_MIN, 0.0, levels[v])


def test_counts_are_poisson_with_the_model_mean():
    """Many patterns of one constant specimen: per-pixel mean and variance equal the model."""
    D, n = 32, 48
    prof = synthetic.radial_profiles(D)
    render, levels, tabs = synthetic._kernel()
    out = np.empty((n, n, D, D), dtype=np.uint16)
    amps = np.broadcast_to([30.0, 2.5, 0.8], (n, n, 3)).copy()
    centre = np.full((n, n), D / 2 + 0.3)
    render(out, synthetic._block_state(5, (0, 0, 0, 0)), 0.0, 0.0, centre, centre, amps,
           np.zeros((n, n, 6)), synthetic._bragg_offsets(D), 1.0, prof, *synthetic.NO_DEFECTS, levels, *tabs)
    k = np.arange(D) - (D / 2 + 0.3)
    q = np.minimum((np.hypot(*np.meshgrid(k, k)) * synthetic.LUT_STEPS + 0.5).astype(int), prof.shape[1] - 1)
    lam = on_level_grid(30.0 * prof[0, q] + 2.5 * prof[1, q] + 0.8 * prof[2, q], levels)
    x = out.reshape(n * n, D, D).astype(float)
    mean, var, m = x.mean(0), x.var(0, ddof=1), n * n
    sel = lam > 0.05
    z_mean = (mean[sel] - lam[sel]) / np.sqrt(lam[sel] / m)
    assert np.abs(z_mean).max() < 5 and abs(z_mean.mean()) < 0.2
    # the variance of a Poisson variable is its mean
    z_var = (var[sel] - lam[sel]) / np.sqrt((lam[sel] + 2 * lam[sel] ** 2) / m)
    assert np.abs(z_var).max() < 5 and abs(z_var.mean()) < 0.2


def guide_entry(u):
    """Guide table entry of uniform u, as the kernel finds it from u's bits."""
    g = np.floor(u * synthetic.GUIDE_SIZE).astype(int)
    tail = np.floor((u * synthetic.GUIDE_SIZE - (synthetic.GUIDE_SIZE - 1)) * synthetic.GUIDE_TAIL).astype(int)
    return np.where(g == synthetic.GUIDE_SIZE - 1, synthetic.GUIDE_SIZE + tail, g)


def test_guide_table_shortcut_is_the_exact_inversion_and_rarely_needs_the_fallback():
    """Count from (entry, one comparison) == first k with cdf[k] >= u, for every u the shortcut takes."""
    levels = synthetic._level_grid()
    cdf, off, size, plast, guide = synthetic._tables(levels)
    rng = np.random.default_rng(1)
    G, T = synthetic.GUIDE_SIZE, synthetic.GUIDE_TAIL
    edges = np.r_[np.arange(G) / G, (G - 1) / G + np.arange(T) / (G * T)]
    for mean in (0.0, 0.002, 0.05, 0.7, 3.0, 40.0, 250.0):
        v = 0 if mean == 0 else int(np.argmin(np.abs(levels - mean)))
        table = cdf[off[v]:off[v] + size[v]]
        # random numbers, the buckets' edges and the counts' own thresholds, on the 2**-52 grid
        u = np.r_[rng.random(20000), edges, np.nextafter(edges, 0), table, np.nextafter(table, 2)]
        u = np.floor(u[(u >= 0) & (u < 1)] * 2.0**52) / 2.0**52
        e = guide[v, guide_entry(u)]
        fast = ((e >> 1) & synthetic._KMASK) + (u > cdf[e >> synthetic._POS])
        exact = np.searchsorted(table, u, side="left")
        shortcut = (e & 1) == 0
        np.testing.assert_array_equal(fast[shortcut], exact[shortcut], err_msg=f"mean {mean}")
        # the share of u that needs the fallback: the tail beyond 1 - 1/(G T); a few per cent at most
        # for the brightest levels, whose low tail crowds into the first entries
        rare = (guide[v, :G - 1] & 1).sum() / G + (guide[v, G:] & 1).sum() / (G * T)
        assert rare <= (1 / (G * T) if mean < 5 else 0.03), (mean, rare)


def test_fast_levels_are_exactly_the_levels_of_np_log_even_at_ties():
    levels = synthetic._level_grid()
    nlev = levels.shape[0]
    k = np.arange(0, nlev + 40)
    ties = synthetic.LEVEL_MIN * np.exp((k + 0.5) * synthetic._LOG_STEP)  # half-way between two levels
    rng = np.random.default_rng(0)
    means = np.concatenate([
        [0.0, 1e-9, 0.49e-3, 0.5e-3, 0.51e-3, 1e-3, synthetic.LEVEL_MAX, 1e4],
        ties, np.nextafter(ties, 0), np.nextafter(ties, np.inf), levels,
        np.exp(rng.uniform(np.log(1e-4), np.log(1e3), 20000)),
    ])
    n = means.size
    lam = means.copy()
    lev, levg = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.uint64)
    mant_bits, expo = np.zeros(n, dtype=np.uint64), np.zeros(n)
    qz = synthetic._levels(lam, lam.view(np.uint64), mant_bits, mant_bits.view(np.float64), expo, lev, levg,
                           0, n, nlev)
    exact = np.array([synthetic._level_of(m, nlev) for m in means])
    np.testing.assert_array_equal(lev, exact)
    np.testing.assert_array_equal(levg, exact.astype(np.uint64) * np.uint64(synthetic._GROW))
    assert qz == np.flatnonzero(exact > 0).max()


def test_large_means_beyond_the_tables_are_drawn_correctly():
    D, n = 32, 24
    prof = synthetic.radial_profiles(D)
    render, levels, tabs = synthetic._kernel()
    big = 2.5 * synthetic.LEVEL_MAX
    out = np.empty((n, n, D, D), dtype=np.uint16)
    amps = np.broadcast_to([big, 0.0, 0.0], (n, n, 3)).copy()
    centre = np.full((n, n), D / 2)
    render(out, synthetic._block_state(6, (0, 0, 0, 0)), 0.0, 0.0, centre, centre, amps,
           np.zeros((n, n, 6)), synthetic._bragg_offsets(D), 1.0, prof, *synthetic.NO_DEFECTS, levels, *tabs)
    inside = out[:, :, D // 2 - 2:D // 2 + 2, D // 2 - 2:D // 2 + 2].astype(float).ravel()
    assert abs(inside.mean() - big) < 5 * np.sqrt(big / inside.size)
    assert 0.9 < inside.var() / big < 1.1


# --------------------------------------------------------------------------
# Memory: generation streams
# --------------------------------------------------------------------------

STREAM_PRESET = dict(name="stream", description="memory test", navigation_shape=(128, 112),
                     signal_shape=(128, 128), chunk=32, dtype="uint16", seed=3, scan_scale_nm=1.0,
                     detector_scale_mrad=0.1, dose=60.0, defects=True)
# The dataset is 470 MB. Compiling the kernel (once per machine, then cached)
# costs memory of its own, so the child makes a tiny dataset first, then
# measures the big one with measure.peak_memory.
# Measured after the imports: about 110 MB; at the peak 235-310 MB, the same
# for a dataset half as large: memory does not grow with the dataset.
# It grows with dask's thread count instead (each thread holds its blocks:
# 252 MB with 2 threads, 302 MB with 8, 400 MB with 32), so the child runs a
# fixed number of threads, and the bound holds on any machine.
PEAK_RSS_LIMIT_MB = 400
STREAM_THREADS = 2


def _peak_code(preset, tmp_path):
    return textwrap.dedent(f"""
        import json
        import dask
        from lazysignals.manifest import Preset
        from lazysignals.measure import peak_memory
        from lazysignals import synthetic
        warm = dict({preset!r}, name="warm", navigation_shape=(8, 8), signal_shape=(32, 32), chunk=8)
        synthetic.generate(Preset(**warm), {str(tmp_path / "warm")!r}, progress=False)
        p = Preset(**{preset!r})
        with dask.config.set(scheduler="threads", num_workers={STREAM_THREADS}):
            with peak_memory(interval=0.01) as mem:
                synthetic.generate(p, {str(tmp_path)!r}, progress=False)
        print(json.dumps({{"nbytes": p.nbytes, "peak": mem.peak}}))
    """)


@pytest.mark.slow
def test_generating_more_than_the_memory_bound_keeps_peak_rss_below_it(tmp_path):
    code = _peak_code(STREAM_PRESET, tmp_path)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["nbytes"] > PEAK_RSS_LIMIT_MB * 1e6
    assert info["peak"] < PEAK_RSS_LIMIT_MB * 1e6, f"peak RSS {info['peak'] / 1e6:.0f} MB"


# --------------------------------------------------------------------------
# Files: the .hspy copy
# --------------------------------------------------------------------------

def test_hspy_copy_on_request_loads_with_the_same_data(tmp_path, tiny_preset):
    import hyperspy.api as hs

    p = tiny_preset()
    paths = synthetic.generate(p, tmp_path, formats=("zspy", "hspy"), progress=False)
    assert set(paths) == {"zspy", "hspy"}
    z = hs.load(paths["zspy"], lazy=True)
    h = hs.load(paths["hspy"], lazy=True)
    np.testing.assert_array_equal(np.asarray(h.data), np.asarray(z.data))
    np.testing.assert_array_equal(np.asarray(z.data), synthetic.make_lazy_signal(p).data.compute())
    assert [a.name for a in h.axes_manager._axes] == [a.name for a in z.axes_manager._axes]
    np.testing.assert_array_equal(np.asarray(h.metadata.Sample.ground_truth.shift_x),
                                  np.asarray(z.metadata.Sample.ground_truth.shift_x))


def test_scan_with_partial_edge_chunks_renders_every_pattern(tiny_preset):
    p = tiny_preset(navigation_shape=(21, 11))  # 21 and 11 are not multiples of the chunk, 8
    d = np.asarray(synthetic.make_lazy_signal(p).data.compute())
    assert d.shape == (11, 21, 32, 32)
    assert d.sum(axis=(2, 3)).min() > 0.5 * (np.pi * (synthetic.DISK_RADIUS * 32) ** 2) * p.dose * 0.3
