"""The checks behind the lessons' visible feedback: each passes a right answer
quietly and fails a typical mistake with a message that names what was
found and (where one helps) what to try. A wrong answer never shows the
expected value: only its direction (too large, too small, off by one, another
order); shapes, sizes and allowed choices, which are not the answer, are shown.

Assertions look for the numbers and names a learner needs in the message,
not for its exact wording.
"""

import re
import warnings

import dask.array as da
import hyperspy.api as hs
import numpy as np
import pytest

from lazysignals import checks, measure
from lazysignals.checks import CheckFailed


def lazy_signal(shape=(4, 6, 8, 8), chunks=4):
    return hs.signals.Signal2D(da.zeros(shape, dtype="uint16", chunks=chunks)).as_lazy()


def test_a_failed_check_is_an_assertion_error_so_nbgrader_counts_it():
    assert issubclass(CheckFailed, AssertionError)


# is_lazy, check_lazy, check_computed

def test_is_lazy_tells_lazy_signals_and_dask_arrays_from_computed_data():
    s = lazy_signal()
    assert checks.is_lazy(s) is True
    assert checks.is_lazy(s.data) is True
    assert checks.is_lazy(hs.signals.Signal2D(np.zeros((2, 2)))) is False
    assert checks.is_lazy(np.zeros(3)) is False
    assert checks.is_lazy(None) is False


def test_check_lazy_passes_a_lazy_result_and_names_a_computed_one():
    checks.check_lazy(lazy_signal())
    checks.check_lazy(da.zeros(3))
    with pytest.raises(CheckFailed, match=r"^the crop is already in memory \(ndarray\) - keep it lazy"
                                          r".*lazy=True.*\.compute\(\)"):
        checks.check_lazy(np.zeros(3), "the crop")
    with pytest.raises(CheckFailed, match=r"^the crop is None.*returns None"):
        checks.check_lazy(None, "the crop")


def test_check_computed_passes_numbers_in_memory_and_names_a_lazy_result():
    checks.check_computed(np.zeros(3))
    with pytest.raises(CheckFailed, match=r"^the image is still lazy.*\.compute\(\)"):
        checks.check_computed(lazy_signal(), "the image")
    with pytest.raises(CheckFailed, match=r"^the image is None"):
        checks.check_computed(None, "the image")
    with pytest.raises(CheckFailed, match="^your result is still lazy"):
        checks.check_computed(da.zeros(3))


# check_defined

def test_check_defined_names_every_missing_or_none_variable():
    checks.check_defined({"a": 1, "b": 0}, "a", "b")
    with pytest.raises(CheckFailed) as e:
        checks.check_defined({"a": 1, "b": None}, "a", "b", "c")
    assert str(e.value).startswith("b, c is not defined yet")
    assert "compute() returns None" in str(e.value)


# check_shape, check_dtype

def test_check_shape_accepts_arrays_signals_and_nested_lists():
    checks.check_shape(np.zeros((2, 3)), (2, 3))
    checks.check_shape(lazy_signal(), [4, 6, 8, 8])
    checks.check_shape([[1, 2, 3], [4, 5, 6]], (2, 3))


def test_check_shape_says_expected_and_got_and_spots_a_transpose():
    with pytest.raises(CheckFailed) as e:
        checks.check_shape(np.zeros((3, 2)), (2, 3), "the image")
    assert str(e.value).startswith("the image: expected (2, 3), got (3, 2).")
    assert "another order" in str(e.value) and ".T" in str(e.value)
    with pytest.raises(CheckFailed) as e:
        checks.check_shape(np.zeros((3, 3)), (2, 3))
    assert str(e.value) == "the shape: expected (2, 3), got (3, 3)."


def test_check_dtype_accepts_any_allowed_type_and_names_the_wrong_one_without_the_answer():
    checks.check_dtype(np.zeros(2, dtype="uint32"), ["uint32", "uint64"])
    checks.check_dtype(np.zeros(2, dtype="uint64"), ["uint32", "uint64"])
    checks.check_dtype(lazy_signal(), "uint16")
    with pytest.raises(CheckFailed) as e:
        checks.check_dtype(np.zeros(2, dtype="uint16"), ["uint32", "uint64"], hint="a bin can overflow.")
    assert str(e.value) == "the dtype: uint16 is not right yet. Hint: a bin can overflow."
    assert "uint32" not in str(e.value) and "uint64" not in str(e.value)


# check_close

def test_check_close_accepts_values_within_tolerance():
    checks.check_close([1.0, 2.0], np.array([1.0, 2.0 + 1e-9]))
    checks.check_close(np.array([1.0, np.nan]), [1.0, np.nan])  # NaN where NaN is expected
    checks.check_close(1.05, 1.0, rtol=0.1)
    checks.check_close(0.01, 0.0, atol=0.02)
    checks.check_close(hs.signals.Signal1D(np.ones(3)), np.ones(3))


def test_check_close_counts_the_differences_and_shows_the_first_without_the_reference():
    expected = np.full((2, 3), 7.25)
    got = expected.copy()
    got[1, 2] = 9.5
    got[1, 0] = 4.5
    with pytest.raises(CheckFailed) as e:
        checks.check_close(got, expected, "the sums", hint="sum over the signal axes.")
    msg = str(e.value)
    assert msg.startswith("the sums: 2 of 6 values are not right yet; first at index (1, 0): "
                          "4.5 (too small).")
    assert msg.endswith("Hint: sum over the signal axes.")
    assert "7.25" not in msg and "9.5" not in msg


def test_check_close_tolerances_are_the_ones_given():
    with pytest.raises(CheckFailed):
        checks.check_close(1.05, 1.0, rtol=0.01)
    with pytest.raises(CheckFailed):
        checks.check_close(0.03, 0.0, atol=0.02)
    with pytest.raises(CheckFailed):
        checks.check_close(1.0 + 2e-6, 1.0)  # the default rtol is 1e-6
    with pytest.raises(CheckFailed):
        checks.check_close(np.nan, 1.0)


def test_check_close_of_a_scalar_shows_its_value_and_direction_not_the_reference():
    with pytest.raises(CheckFailed) as e:
        checks.check_close(3.0, 2.0, "the radius")
    assert str(e.value) == ("the radius: 1 of 1 values are not right yet; 3 (too large); it is off by "
                            "one: check where a range starts and whether its end is included.")
    assert "2" not in str(e.value)
    with pytest.raises(CheckFailed) as e:
        checks.check_close(2.5, 6.75, "the radius")
    assert str(e.value) == "the radius: 1 of 1 values are not right yet; 2.5 (too small)."


def test_check_close_reports_a_shape_mismatch_first():
    with pytest.raises(CheckFailed) as e:
        checks.check_close(np.zeros(3), np.zeros(4), "the profile")
    assert str(e.value) == "the profile (shape): expected (4,), got (3,)."


# source_chunks_read, check_read_fraction

def test_source_chunks_read_counts_the_chunks_a_crop_needs():
    s = lazy_signal(shape=(4, 6, 16, 16), chunks=(4, 6, 4, 4))  # 4 x 4 chunks on the detector
    assert checks.source_chunks_read(s.isig[4:12, 4:12], s) == (4, 16)
    assert checks.source_chunks_read(s.isig[3:13, 3:13], s) == (16, 16)
    assert checks.source_chunks_read(s.isig[0, 0], s.data) == (1, 16)
    assert checks.source_chunks_read(s.sum(axis=(2, 3)).data, s) == (16, 16)
    assert checks.source_chunks_read(lazy_signal(), s) == (0, 16)  # made from another array


def test_check_read_fraction_passes_an_aligned_crop():
    s = lazy_signal(shape=(4, 6, 16, 16), chunks=(4, 6, 4, 4))
    checks.check_read_fraction(s.isig[4:12, 4:12], s, 0.25)


def test_check_read_fraction_says_how_to_align_a_crop_that_reads_too_much():
    s = lazy_signal(shape=(4, 6, 16, 16), chunks=(4, 6, 4, 4))
    with pytest.raises(CheckFailed) as e:
        checks.check_read_fraction(s.isig[3:13, 3:13], s, 0.25, "the crop")
    msg = str(e.value)
    assert msg.startswith("the crop reads 16 of 16 chunks (100%); the goal is 25%.")
    assert "multiples of the chunk size (4 detector pixels here)" in msg


def test_check_read_fraction_says_when_a_crop_reads_too_little():
    s = lazy_signal(shape=(4, 6, 16, 16), chunks=(4, 6, 4, 4))
    with pytest.raises(CheckFailed) as e:
        checks.check_read_fraction(s.isig[4:8, 4:8], s, 0.25)
    assert str(e.value).startswith("your crop reads 1 of 16 chunks (6%); the goal is 25%.")
    assert "reads less than asked" in str(e.value)


def test_check_read_fraction_refuses_a_crop_of_a_copy_or_a_computed_one():
    s = lazy_signal(shape=(4, 6, 16, 16), chunks=(4, 6, 4, 4))
    copy = hs.signals.Signal2D(da.ones((4, 6, 16, 16), dtype="uint16", chunks=(4, 6, 4, 4))).as_lazy()
    with pytest.raises(CheckFailed, match="^the crop reads none of the dataset's chunks.*s.isig"):
        checks.check_read_fraction(copy.isig[4:12, 4:12], s, 0.25, "the crop")
    with pytest.raises(CheckFailed, match="^the crop is already in memory.*keep it lazy"):
        checks.check_read_fraction(np.zeros(3), s, 0.25, "the crop")


# check_correlated

def test_check_correlated_passes_a_map_that_follows_the_reference():
    ref = np.arange(20.0).reshape(4, 5)
    checks.check_correlated(2 * ref + 1, ref)
    checks.check_correlated(-ref, ref, sign_free=True)
    noisy = ref + np.where(np.arange(20).reshape(4, 5) % 2, 3.0, -3.0)
    checks.check_correlated(noisy, ref, min_r=0.8)
    with_nan = ref.copy()
    with_nan[0, 0] = np.nan
    checks.check_correlated(with_nan, ref)  # NaN pixels are left out


def test_check_correlated_gives_the_correlation_found_and_needed():
    ref = np.arange(20.0).reshape(4, 5)
    with pytest.raises(CheckFailed) as e:
        checks.check_correlated(-ref, ref, what="the domain map")
    assert str(e.value).startswith("the domain map does not follow the expected pattern: "
                                   "correlation -1.00, at least 0.90 needed.")
    noisy = ref + np.where(np.arange(20).reshape(4, 5) % 2, 30.0, -30.0)
    r = np.corrcoef(noisy.ravel(), ref.ravel())[0, 1]
    with pytest.raises(CheckFailed, match=f"correlation {r:.2f}, at least 0.95 needed"):
        checks.check_correlated(noisy, ref, min_r=0.95)
    checks.check_correlated(noisy, ref, min_r=round(r, 2) - 0.01)


def test_check_correlated_refuses_a_constant_map_and_a_map_of_another_size():
    ref = np.arange(20.0).reshape(4, 5)
    with pytest.raises(CheckFailed, match="^the map is constant"):
        checks.check_correlated(np.ones((4, 5)), ref, what="the map")
    with pytest.raises(CheckFailed) as e:
        checks.check_correlated(np.ones((5, 5)), ref)
    assert str(e.value).startswith("your map (size): expected (20,), got (25,).")


# check_equal

def test_check_equal_compares_numbers_tuples_and_lists_alike():
    checks.check_equal(np.int64(3), 3)
    checks.check_equal([4, 6], (4, 6))
    checks.check_equal((np.int32(4), np.int64(6)), (4, 6))
    checks.check_equal("B", "B")


def test_check_equal_says_what_was_got_not_the_answer_and_spots_the_reversed_order():
    with pytest.raises(CheckFailed) as e:
        checks.check_equal((6, 4), (4, 6), "the navigation shape")
    msg = str(e.value)
    assert msg.startswith("the navigation shape: (6, 4) is not right yet.")
    assert "another order" in msg and "reverse of HyperSpy's" in msg
    assert "(4, 6)" not in msg
    with pytest.raises(CheckFailed) as e:
        checks.check_equal(np.int64(7), 4, "the count", hint="count the chunks.")
    assert str(e.value) == "the count: 7 is not right yet (too large). Hint: count the chunks."
    with pytest.raises(CheckFailed) as e:
        checks.check_equal(3, 4, "the count")
    assert str(e.value).startswith("the count: 3 is not right yet (too small); it is off by one")
    assert "4" not in str(e.value)
    with pytest.raises(CheckFailed) as e:
        checks.check_equal((6, 4), (4, 6), hint="mine.")
    assert str(e.value) == "your answer: (6, 4) is not right yet. Hint: mine."
    with pytest.raises(CheckFailed) as e:
        checks.check_equal((4, 5), (4, 6))
    assert "Hint" not in str(e.value) and "(4, 6)" not in str(e.value)
    with pytest.raises(CheckFailed) as e:
        checks.check_equal("C", "B", "your choice")
    assert str(e.value) == "your choice: 'C' is not right yet."


# check_choice

# check_open_lazily, check_mean_pattern, check_sum_nbytes (lessons 00 and 02)

@pytest.fixture(scope="module")
def zspy_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("open") / "small.zspy"
    with warnings.catch_warnings():  # zarr 2 announces its version 3
        warnings.simplefilter("ignore")
        hs.signals.Signal2D(np.arange(4 * 6 * 8 * 8, dtype="uint16").reshape(4, 6, 8, 8)).save(path, chunks=(2, 3, 4, 4))
    return path


def _computed_after_a_lazy_open(path):
    s = hs.load(path, lazy=True)
    s.compute(show_progressbar=False)
    return s


def test_check_open_lazily_passes_a_lazy_load_and_returns_it(zspy_file):
    assert checks.check_open_lazily(lambda p: hs.load(p, lazy=True), zspy_file)._lazy


@pytest.mark.parametrize("func, says, never", [
    (lambda p: hs.load(p), "pass lazy=True", "compute"),
    (_computed_after_a_lazy_open, "remove the .compute()", "lazy=True"),
    (lambda p: hs.load(p, lazy=True).compute(), "returned None", "lazy=True"),
    (lambda p: hs.load(p).as_lazy(), "chunks of the file were read while opening it", "compute"),
], ids=["forgot lazy=True", "computed", "kept the None", "made lazy after a full load"])
def test_check_open_lazily_names_the_mistake_that_was_made(zspy_file, func, says, never):
    with pytest.raises(CheckFailed) as e:
        checks.check_open_lazily(func, zspy_file)
    assert says in str(e.value) and never not in str(e.value)


def _mean_pattern(signal, x_range, y_range):
    return signal.inav[x_range[0]:x_range[1], y_range[0]:y_range[1]].mean()


def test_check_mean_pattern_passes_a_selection_averaged_lazily():
    s = hs.signals.Signal2D(da.from_array(np.random.default_rng(0).random((6, 9, 5, 5)), chunks=(2, 3, 5, 5))).as_lazy()
    checks.check_mean_pattern(_mean_pattern, s)


@pytest.mark.parametrize("func, says", [
    (lambda s, x, y: s.inav[y[0]:y[1], x[0]:x[1]].mean(), "x first"),
    (lambda s, x, y: _mean_pattern(s, x, y).compute(), "is None"),
    (lambda s, x, y: s.inav[x[0]:x[1], y[0]:y[1]].mean(axis=(2, 3)), "not over the detector"),
    (lambda s, x, y: hs.signals.Signal2D(np.asarray(_mean_pattern(s, x, y).data)).as_lazy(), "computed something"),
    (lambda s, x, y: hs.signals.Signal2D(da.zeros(s.data.shape[2:])).as_lazy(), "none of the dataset's chunks"),
    (lambda s, x, y: s.inav[:, :].mean() * 0 + _mean_pattern(s, x, y), "select the probe positions first"),
], ids=["x and y swapped", "kept the None", "averaged the detector", "a computed copy", "not from the data",
     "read the whole scan"])
def test_check_mean_pattern_names_the_mistake_that_was_made(func, says):
    s = hs.signals.Signal2D(da.from_array(np.random.default_rng(0).random((6, 9, 5, 5)), chunks=(2, 3, 5, 5))).as_lazy()
    with pytest.raises(CheckFailed) as e:
        checks.check_mean_pattern(func, s)
    assert says in str(e.value)


def _sum_nbytes(navigation_shape, signal_shape, dtype):
    return int(np.prod(signal_shape)) * np.zeros(1, dtype=dtype).sum().dtype.itemsize


@pytest.mark.parametrize("func, says", [
    (lambda n, s, d: int(np.prod(s)) * np.dtype(d).itemsize, "numpy adds integers in 64 bits"),
    (lambda n, s, d: int(np.prod(n)) * int(np.prod(s)) * np.dtype(d).itemsize, "the sum keeps only the signal axes"),
    (lambda n, s, d: int(np.prod(n)) * 8, "adds over the navigation axes"),
    (lambda n, s, d: None, "returned None"),
], ids=["the data's dtype", "every axis", "the navigation axes kept", "no number"])
def test_check_sum_nbytes_names_the_mistake_without_the_answer(func, says):
    s = lazy_signal()
    checks.check_sum_nbytes(_sum_nbytes, s)
    with pytest.raises(CheckFailed) as e:
        checks.check_sum_nbytes(func, s)
    assert says in str(e.value) and str(8 * 8 * 8) not in str(e.value)


def test_check_choice_accepts_a_letter_in_any_case_and_spacing():
    checks.check_choice(" b ", ["A", "B", "C", "D"])
    checks.check_choice("C", ["a", "b", "c"])


def test_check_choice_shows_the_letters_to_write():
    for bad in ("E", 2, None):
        with pytest.raises(CheckFailed) as e:
            checks.check_choice(bad, ["A", "B"], "faster_format")
        assert str(e.value).startswith(f"faster_format is {bad!r}; write one of 'A', 'B' as a string")


# check_annulus

def detector(scale=0.5, size=32, convergence=2.0, shift=None):
    s = hs.signals.Signal2D(np.zeros((2, 2, size, size), dtype="uint16"))
    for ax in s.axes_manager.signal_axes:
        ax.scale, ax.offset, ax.units = scale, -scale * (size // 2), "mrad"
    s.metadata.set_item("Acquisition_instrument.TEM.convergence_angle", convergence)
    if shift is not None:
        s.metadata.set_item("Sample.ground_truth.shift_x", np.full((2, 2), shift[0]))
        s.metadata.set_item("Sample.ground_truth.shift_y", np.full((2, 2), shift[1]))
    return s


def test_check_annulus_accepts_a_ring_between_the_disk_and_the_edge():
    s = detector()  # centre at 0 mrad, nearest edge 7.5 mrad away, disk radius 2 mrad
    checks.check_annulus(s, 4.0, 7.5)
    checks.check_annulus(s, 2.25, 7.5)  # just clears the disk and its half-pixel edge
    checks.check_annulus(s, "4", np.float32(6.5))


def test_check_annulus_refuses_a_ring_the_disk_reaches():
    with pytest.raises(CheckFailed) as e:
        checks.check_annulus(detector(), 2.2, 7.5)
    assert str(e.value).startswith("inner radius 2.200 mrad: the bright-field disk (radius 2.000) wanders "
                                   "by up to 0.000 mrad, so it reaches 2.250 mrad")


def test_check_annulus_takes_the_disks_wander_from_the_ground_truth():
    s = detector(shift=(3.0, 4.0))  # moves 5 pixels = 2.5 mrad
    with pytest.raises(CheckFailed, match="wanders by up to 2.500 mrad, so it reaches 4.750 mrad"):
        checks.check_annulus(s, 4.0, 7.5)
    checks.check_annulus(s, 4.75, 7.5)


def test_check_annulus_refuses_a_ring_past_the_detector_edge():
    with pytest.raises(CheckFailed) as e:
        checks.check_annulus(detector(), 4.0, 7.6)
    assert str(e.value).startswith("outer radius 7.600 mrad goes past the detector edge, 7.500 mrad from the centre")


def test_check_annulus_needs_a_ring_two_pixels_wide():
    checks.check_annulus(detector(), 6.5, 7.5)  # exactly 2 pixels
    with pytest.raises(CheckFailed) as e:
        checks.check_annulus(detector(), 7.0, 7.5)
    assert str(e.value).startswith("the ring is 1.0 pixels wide; make it at least 2 pixels (1.000 mrad)")


def test_check_annulus_says_the_radii_must_be_numbers():
    with pytest.raises(CheckFailed, match="^the radii should be two numbers, got 'wide' and None"):
        checks.check_annulus(detector(), "wide", None)


# how a failed check looks in a notebook

def test_a_failed_check_shows_its_message_not_a_traceback():
    shown = []

    class Shell:
        def _showtraceback(self, etype, value, stb):
            shown.append((etype, value, stb))

    err = CheckFailed("the crop reads 16 of 16 chunks")
    stb = checks._show_check_failed(Shell(), CheckFailed, err, None)
    assert stb == ["\x1b[0;31mCheckFailed\x1b[0m: the crop reads 16 of 16 chunks"]
    assert shown == [(CheckFailed, err, stb)]


def _raised_in(filename, source):
    try:
        exec(compile(source, filename, "exec"), {})
    except NotImplementedError as err:
        return err


def test_a_blank_exercise_cell_is_shown_as_not_answered_yet_and_other_errors_as_usual():
    shown = []

    class Shell:
        class InteractiveTB:
            @staticmethod
            def structured_traceback(etype, value, tb, tb_offset=None):
                return ["full traceback"]

        def _showtraceback(self, etype, value, stb):
            shown.append(stb)

    blank = _raised_in("/tmp/ipykernel_1234/567.py", "raise NotImplementedError()")
    stb = checks._show_check_failed(Shell(), NotImplementedError, blank, blank.__traceback__)
    assert stb == [f"\x1b[0;31mNot answered yet\x1b[0m: {checks.BLANK}"]
    assert "raise NotImplementedError()" in checks.BLANK
    # raised by library code, or with a message of its own: a real error, shown in full
    deep = _raised_in("/usr/lib/python3/somewhere.py", "raise NotImplementedError()")
    assert checks._show_check_failed(Shell(), NotImplementedError, deep, deep.__traceback__) == ["full traceback"]
    named = _raised_in("/tmp/ipykernel_1234/567.py", "raise NotImplementedError('no 5D data')")
    assert checks._show_check_failed(Shell(), NotImplementedError, named, named.__traceback__) == ["full traceback"]
    assert len(shown) == 3


def test_inside_ipython_failed_checks_use_the_short_display(monkeypatch):
    import builtins

    registered = []

    class Shell:
        def set_custom_exc(self, types, handler):
            registered.append((types, handler))

    monkeypatch.setattr(builtins, "get_ipython", lambda: Shell(), raising=False)
    checks._install_display()
    assert registered == [((CheckFailed, NotImplementedError), checks._show_check_failed)]
    monkeypatch.setattr(builtins, "get_ipython", lambda: None, raising=False)
    checks._install_display()  # no shell: nothing to do, no error
    assert len(registered) == 1


# answers of the wrong kind get a check's message, not a Python error

def test_a_none_among_the_numbers_is_reported_as_a_difference():
    with pytest.raises(CheckFailed, match=r"1 of 2 values are not right yet; first at index \(1,\): nan"):
        checks.check_close([1.0, None], [1.0, 2.0])
    with pytest.raises(CheckFailed, match="does not follow the expected pattern"):
        checks.check_correlated([3.0, None, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0])


def test_a_number_where_a_tuple_is_expected_is_a_plain_difference():
    with pytest.raises(CheckFailed) as e:
        checks.check_equal(5, (5,))
    assert str(e.value) == "your answer: 5 is not right yet."


def test_numpy_integers_in_a_tuple_are_shown_as_plain_numbers_and_floats_kept():
    with pytest.raises(CheckFailed) as e:
        checks.check_equal((np.int64(6), np.int64(4)), (4, 6))
    assert "(6, 4) is not right yet." in str(e.value) and "int64" not in str(e.value)
    checks.check_equal((1.5, 2), (1.5, 2))
    with pytest.raises(CheckFailed):
        checks.check_equal((1.5, 2), (1, 2))


def test_defaults_name_the_result_generically():
    with pytest.raises(CheckFailed, match="^your result is already in memory"):
        checks.check_lazy(np.zeros(2))
    with pytest.raises(CheckFailed, match="^the values: 1 of 1 values are not right yet"):
        checks.check_close(1.0, 2.0)
    with pytest.raises(CheckFailed, match="^your choice is 'E'"):
        checks.check_choice("E", ["A"])
    with pytest.raises(CheckFailed) as e:
        checks.check_dtype(np.zeros(2, dtype="int8"), "uint8")
    assert str(e.value) == "the dtype: int8 is not right yet."


def test_hints_reach_the_message_of_a_shape_or_size_mismatch():
    with pytest.raises(CheckFailed) as e:
        checks.check_close(np.zeros(3), np.zeros(4), "the profile", hint="sum over ky only.")
    assert str(e.value) == "the profile (shape): expected (4,), got (3,). Hint: sum over ky only."
    with pytest.raises(CheckFailed) as e:
        checks.check_correlated(np.ones(5), np.arange(4.0))
    assert str(e.value) == "your map (size): expected (4,), got (5,). Hint: compare maps of the same scan."


def test_nan_pixels_are_left_out_of_the_correlation_not_hiding_a_wrong_map():
    ref = np.arange(20.0)
    wrong = -ref
    wrong[3] = np.nan
    with pytest.raises(CheckFailed, match="correlation -1.00"):
        checks.check_correlated(wrong, ref)


def test_a_correlation_equal_to_the_minimum_passes():
    ref = np.arange(20.0)
    got = ref + np.where(np.arange(20) % 3, 4.0, -4.0)
    r = float(np.corrcoef(got, ref)[0, 1])
    checks.check_correlated(got, ref, min_r=r)


def test_a_shell_without_custom_exceptions_is_left_alone(monkeypatch):
    import builtins

    monkeypatch.setattr(builtins, "get_ipython", lambda: object(), raising=False)
    checks._install_display()


def skewed_detector(kx_size, ky_size, scale=0.5):
    """Axes whose centre is off zero, with the nearest edge on a chosen side."""
    s = hs.signals.Signal2D(np.zeros((2, 2, ky_size, kx_size), dtype="uint16"))
    for ax, offset in zip(s.axes_manager.signal_axes, (-3.3, 2.1)):
        ax.scale, ax.offset, ax.units = scale, offset, "mrad"
    s.metadata.set_item("Acquisition_instrument.TEM.convergence_angle", 1.0)
    return s


@pytest.mark.parametrize("kx_size, ky_size", [(30, 34), (34, 30), (31, 35), (35, 31)])
def test_the_outer_radius_may_reach_the_nearest_edge_on_any_side(kx_size, ky_size):
    s = skewed_detector(kx_size, ky_size)
    edge = 0.5 * min(n // 2 if side == 0 else n - 1 - n // 2 for n in (kx_size, ky_size) for side in (0, 1))
    checks.check_annulus(s, 2.0, edge)
    with pytest.raises(CheckFailed, match="from the centre: take it from the signal axes"):
        checks.check_annulus(s, 2.0, edge + 0.01)


# check_quiz: instant feedback from lazysignals.quizzes, one source with the grader's judge

def test_a_wrong_quiz_choice_fails_at_once_with_the_reason_it_is_wrong():
    from lazysignals.quizzes import QUIZZES

    for (lesson, variable), q in QUIZZES.items():
        for letter, reason in q["why"].items():
            if letter == q["answer"]:
                continue
            with pytest.raises(checks.CheckFailed) as err:
                checks.check_quiz(lesson, variable, letter.lower())
            assert reason in str(err.value) and "try another letter" in str(err.value)


def test_the_right_quiz_choice_prints_the_success_line_and_why(capsys):
    from lazysignals.quizzes import QUIZZES

    for (lesson, variable), q in QUIZZES.items():
        checks.check_quiz(lesson, variable, f" {q['answer']} ")
        out = capsys.readouterr().out
        assert out.startswith("Well done:") and q["why"][q["answer"]] in out


def test_every_quiz_gives_a_reason_for_each_letter_and_its_judge_agrees():
    from lazysignals import judges
    from lazysignals.quizzes import QUIZZES

    choices = [j for j in judges.JUDGES.values() if isinstance(j, judges.Choice)]
    assert {(j.lesson, j.function) for j in choices} <= set(QUIZZES)
    for j in choices:
        q = QUIZZES[(j.lesson, j.function)]
        assert q["answer"] in q["why"] and len(q["why"]) >= 3
        j.judge({}, {"got": q["answer"].lower()})
        for wrong in set(q["why"]) - {q["answer"]}:
            with pytest.raises(judges.Failed):
                j.judge({}, {"got": wrong})


# the capstone's chunk choice, memory budget and crop

def test_check_chunk_choice_passes_chunks_within_the_budget_and_names_the_waste_or_the_excess():
    shape, budget = (40, 100, 32, 32), 64 * 100 * 2  # 100 positions of 8 x 8 uint16
    checks.check_chunk_choice((10, 10, 8, 8), shape, "uint16", budget)
    with pytest.raises(CheckFailed, match="over the budget"):
        checks.check_chunk_choice((11, 10, 8, 8), shape, "uint16", budget)
    with pytest.raises(CheckFailed, match="less than a quarter"):
        checks.check_chunk_choice((2, 2, 8, 8), shape, "uint16", budget)
    with pytest.raises(CheckFailed, match="4 x 4 equal chunks"):
        checks.check_chunk_choice((8, 8, 10, 10), shape, "uint16", budget)
    with pytest.raises(CheckFailed, match="four whole numbers"):
        checks.check_chunk_choice(None, shape, "uint16", budget)


def test_check_block_budget_names_a_float_step_four_times_a_chunk():
    s = lazy_signal()
    ring = np.ones((8, 8), dtype=bool)
    checks.check_block_budget(s, (s * ring).sum(axis="sig").data)
    with pytest.raises(CheckFailed, match=r"4\.0 times a chunk"):
        checks.check_block_budget(s, (s.data * ring.astype(float)).sum(axis=(2, 3)), what="adf")


def test_check_crop_reads_passes_the_chunks_around_the_disk_and_names_one_pixel_too_many():
    s = lazy_signal((4, 6, 16, 16), chunks=(4, 6, 4, 4))  # centre pixel 8, chunk edges at 4, 8, 12
    checks.check_crop_reads(s.isig[4:12, 4:12], s, 3.5)  # pixels 5..11 need chunks 1..2 of each axis
    with pytest.raises(CheckFailed, match="need only 4"):
        checks.check_crop_reads(s.isig[4:13, 4:12], s, 3.5)
    with pytest.raises(CheckFailed, match="leaves out"):
        checks.check_crop_reads(s.isig[6:12, 4:12], s, 3.5)


# check_memory_limit (lesson 09), check_on_fresh_data

def _limit(n_blocks, block, target):
    return int(np.ceil(n_blocks * block / target))


def test_a_worker_memory_limit_is_checked_without_showing_it_and_names_each_slip():
    import dask
    import distributed  # noqa: F401 (its memory settings join dask's configuration)

    s = lazy_signal((6, 10, 16, 12), chunks=(3, 5, 4, 4))
    block = 3 * 5 * 16 * 12 * 2  # a navigation chunk times the whole pattern, uint16

    def right(signal, n):
        return _limit(n, block, dask.config.get("distributed.worker.memory.target"))

    checks.check_memory_limit(right, s, 2)
    target = 0.6  # the value a learner sees, typed in by one slip
    slips = {
        "whole patterns": lambda signal, n: _limit(n, 3 * 5 * 4 * 4 * 2, target),
        "divide by the fraction": lambda signal, n: int(n * block * target),
        "larger than the blocks": lambda signal, n: n * block,
        "dask.config.get": lambda signal, n: _limit(n, block, 0.6),
        "an int": lambda signal, n: n * block / target,
    }
    with dask.config.set({"distributed.worker.memory.target": 0.6}):
        for words, slip in slips.items():
            with pytest.raises(CheckFailed) as err:
                checks.check_memory_limit(slip, s, 2)
            assert words in str(err.value)
            assert str(_limit(2, block, 0.6)) not in str(err.value)


def test_a_function_is_tried_on_the_graders_fresh_inputs_with_its_message():
    def chunks_touched(start, stop, chunk, size):
        return ((stop - 1) // chunk - start // chunk + 1) / -(-size // chunk)

    checks.check_on_fresh_data("07_cropping", "test_fraction_read", {"fraction_read": chunks_touched})
    with pytest.raises(CheckFailed, match="count the chunks the slice touches"):
        checks.check_on_fresh_data("07_cropping", "test_fraction_read",
                                   {"fraction_read": lambda start, stop, chunk, size: (stop - start) / size})
    with pytest.raises(CheckFailed, match="ZeroDivisionError"):
        checks.check_on_fresh_data("07_cropping", "test_fraction_read", {"fraction_read": lambda *a: 1 / 0})


# The whole teaching message of each slip, word for word: a learner reads exactly this.

def test_each_worker_memory_slip_gets_its_whole_hint_and_an_off_by_one_byte_still_does():
    import dask
    import distributed  # noqa: F401 (its memory settings join dask's configuration)

    s = lazy_signal((6, 10, 16, 12), chunks=(3, 5, 4, 4))
    block, chunk = 3 * 5 * 16 * 12 * 2, 3 * 5 * 4 * 4 * 2
    key = "distributed.worker.memory.target"
    hints = {
        2 * block: "the worker starts spilling at the target fraction of its limit, so the limit must be larger "
                   "than the blocks it holds.",
        int(2 * block * 0.6): "the blocks must stay below target times the limit: divide by the fraction, do not "
                              "multiply.",
        _limit(2, chunk, 0.6): "a map block holds whole patterns: all of the signal axes, not one chunk of them.",
        _limit(1, block, 0.6): "the worker holds 2 blocks at once.",
        _limit(2, s.data.nbytes, 0.6): "a worker holds blocks, not the whole dataset.",
    }
    with dask.config.set({key: 0.6}):
        for value, hint in hints.items():
            for got in (value, value + 1):
                with pytest.raises(CheckFailed) as err:
                    checks.check_memory_limit(lambda signal, n, g=got: g, s, 2)
                assert str(err.value) == f"memory_limit_for(s, 2): {got} bytes is not right yet. Hint: {hint}"
        with pytest.raises(CheckFailed) as err:
            checks.check_memory_limit(lambda signal, n: 12, s, 2)
        assert "Hint: a block of map is the largest navigation chunk times the whole signal; the worker spills " \
               "when what it holds passes the target fraction of its limit." in str(err.value)
        with pytest.raises(CheckFailed) as err:
            checks.check_memory_limit(lambda signal, n: True, s, 2)
        assert str(err.value) == ("memory_limit_for(s, 2) should return an int (a number of bytes), got bool: "
                                  "round up to a whole byte.")
        with pytest.raises(CheckFailed) as err:
            checks.check_memory_limit(lambda signal, n: _limit(n, block, 0.6), s, 2)
        assert str(err.value).startswith("with the target fraction set to 0.5 in dask's configuration, "
                                         "memory_limit_for(s, 2) does not follow it: read the fraction from "
                                         'dask.config.get("distributed.worker.memory.target") inside the function')
    with dask.config.set({key: 0.5}):  # the other fraction tried is then 0.4
        with pytest.raises(CheckFailed, match="set to 0.4"):
            checks.check_memory_limit(lambda signal, n: _limit(n, block, 0.5), s, 2)
        checks.check_memory_limit(lambda signal, n: _limit(n, block, dask.config.get(key)), s, 2)
        checks.check_memory_limit(lambda signal, n: _limit(n, block, dask.config.get(key)), s, 3)


def test_each_crop_slip_gets_its_whole_message():
    s = lazy_signal((4, 6, 16, 16), chunks=(4, 6, 4, 4))
    for axis in s.axes_manager.signal_axes:
        axis.units = "mrad"
    with pytest.raises(CheckFailed) as err:
        checks.check_crop_reads(s.isig[4:13, 4:12], s, 3.5, what="crop_disk(s)")
    assert str(err.value) == ("crop_disk(s) reads 6 of 16 chunks; the pixels within the radius need only 4. Hint: a "
                              "crop that reaches one pixel into a chunk reads that whole chunk: stop at the chunk "
                              "edges around the pixels you need (signal.data.chunks).")
    with pytest.raises(CheckFailed) as err:
        checks.check_crop_reads(s.isig[6:12, 4:12], s, 3.5, what="crop_disk(s)")
    kx = s.axes_manager.signal_axes[0].name
    assert str(err.value) == (f"crop_disk(s) keeps {kx} pixels 6 to 11: it leaves out pixels within 3.5 mrad of "
                              "the centre pixel (index 8).")
    with pytest.raises(CheckFailed) as err:
        checks.check_crop_reads(s.isig[4:12, 6:12], s, 3.5, what="crop_disk(s)")
    ky = s.axes_manager.signal_axes[1].name
    assert str(err.value).startswith(f"crop_disk(s) keeps {ky} pixels 6 to 11")
    checks.check_crop_reads(s.isig[4:12, 5:12], s, 3.5)  # pixels 5..11 kept: right, and the same chunks
    with pytest.raises(CheckFailed) as err:
        checks.check_crop_reads(lazy_signal((4, 6, 8, 8)), s, 3.5, what="crop_disk(s)")
    assert str(err.value) == ("crop_disk(s) reads none of the dataset's chunks: crop the signal itself with "
                              "isig[...].")
    checks.check_crop_reads(s.isig[4:12, 4:12], s, 3.5)  # exactly the chunks around the pixels within 3.5
    checks.check_crop_reads(s.isig[0:16, 0:16], s, 8.0)  # every pixel needed: every chunk may be read


# Word for word and at the edges: what a learner reads for each slip, and where each rule starts to apply.

def test_direction_names_the_side_and_the_usual_slips():
    one = "; it is off by one: check where a range starts and whether its end is included"
    factor = "; it is off by a whole factor: check the bytes per value (the dtype) and each axis length"
    cases = {
        (4, 5): " (too large)" + one, (4, 3): " (too small)" + one, (0, 1): " (too large)" + one,
        (4, 6): " (too large)", (4, 7): " (too large)", (2.5, 3.5): " (too large)",  # 2 apart; not whole
        (4, 8): " (too large)" + factor, (16, 4): " (too small)" + factor, (4, 32): " (too large)" + factor,
        (0.5, 1.0): " (too large)" + factor,  # a whole factor between small numbers too
        (4, 12): " (too large)", (4, 20): " (too large)", (4, 36): " (too large)",  # 3, 5, 9 times
        (-4, -8): " (too small)", (-2, 4): " (too large)", (0, 8): " (too large)",
        (3, 3): "", ("a", 3): "", (None, 3): "", (3, "many"): "",
    }
    for (expected, got), words in cases.items():
        assert checks._direction(expected, got) == words, (expected, got)


def test_a_blank_exercise_function_is_named_as_not_answered_before_anything_missing():
    def blank(signal):
        raise NotImplementedError()

    def started(signal):
        signal.sum()  # the learner has begun: not the template any more
        raise NotImplementedError()

    assert checks._blank(blank) and not checks._blank(started)
    assert not checks._blank(lambda s: s.sum()) and not checks._blank(3) and not checks._blank(None)
    checks.check_defined({"f": lambda s: s, "n": 3}, "f", "n")
    with pytest.raises(CheckFailed) as e:
        checks.check_defined({"f": blank, "g": blank, "h": None}, "f", "g", "h")
    assert str(e.value) == f"f, g: {checks.BLANK}"
    with pytest.raises(CheckFailed) as e:
        checks.check_defined({"f": lambda s: s}, "f", "h")
    assert str(e.value) == (f"h is not defined yet (or is None): {checks.BLANK} Remember that HyperSpy's compute() "
                            "returns None: keep the signal, not what compute() returns.")


def test_check_sum_nbytes_gives_a_hint_for_exactly_the_named_slips_and_only_the_direction_otherwise():
    s = lazy_signal()  # navigation (6, 4), signal (8, 8), uint16: its sum is uint64, 8 bytes a value
    positions, pixels = 6 * 4, 8 * 8
    hints = {  # what each slip gives, worked out from the shapes, with the hint the learner reads
        "uint16": {pixels * 2: "the sum of integers is not stored in the data's dtype: numpy adds integers in 64 bits.",
                   positions * pixels * 2: "that counts every probe position: the sum keeps only the signal axes.",
                   positions * pixels * 8: "that counts every probe position: the sum keeps only the signal axes.",
                   positions * 8: "that is one value per probe position: signal.sum() adds over the navigation axes."},
        "float32": {positions * pixels * 4: "that counts every probe position: the sum keeps only the signal axes.",
                    positions * 4: "that is one value per probe position: signal.sum() adds over the navigation axes."},
    }
    right = {"uint16": pixels * 8, "float32": pixels * 4}
    # every small number (a quotient where a product belongs lands there), and each side of the right one
    for dtype, tried in (("uint16", [*range(1, 130), 511, 513]), ("float32", [*range(1, 100), 255, 257])):
        what = f"sum_nbytes((6, 4), (8, 8), {dtype!r})"
        for got in sorted(set(tried) | set(hints[dtype])):
            def answer(nav, sig, dt, got=got, dtype=dtype):
                return got if np.dtype(dt).name == dtype else right[np.dtype(dt).name]
            with pytest.raises(CheckFailed) as e:
                checks.check_sum_nbytes(answer, s)
            msg = str(e.value)
            side = "(too small)" if got < right[dtype] else "(too large)"
            assert msg.startswith(f"{what}: {got} is not right yet {side}"), msg
            if got in hints[dtype]:
                assert msg.endswith(f". Hint: {hints[dtype][got]}"), msg
            else:
                assert "Hint" not in msg, msg


def test_check_sum_nbytes_accepts_any_kind_of_number_and_says_what_else_came_back():
    s = lazy_signal()
    checks.check_sum_nbytes(lambda nav, sig, dt: float(_sum_nbytes(nav, sig, dt)), s)
    checks.check_sum_nbytes(lambda nav, sig, dt: np.int64(_sum_nbytes(nav, sig, dt)), s)
    with pytest.raises(CheckFailed) as e:
        checks.check_sum_nbytes(lambda nav, sig, dt: True, s)
    assert str(e.value) == ("sum_nbytes((6, 4), (8, 8), 'uint16') returned True: return the number of bytes as "
                            "an integer.")
    with pytest.raises(CheckFailed) as e:
        checks.check_sum_nbytes(lambda nav, sig, dt: nav[2], s)
    assert str(e.value) == ("sum_nbytes((6, 4), (8, 8), 'uint16') failed with IndexError: tuple index out of "
                            "range.")
    with pytest.raises(CheckFailed) as e:  # counts the data's bytes per value: right for uint16's sum only by luck
        checks.check_sum_nbytes(lambda nav, sig, dt: int(np.prod(sig)) * 8, s)
    assert str(e.value).startswith("sum_nbytes((6, 4), (8, 8), 'float32'): 512 is not right yet (too large)")


def test_check_shape_shows_its_whole_hint_for_lengths_in_another_order():
    with pytest.raises(CheckFailed) as e:
        checks.check_shape(lazy_signal((4, 6, 8, 10)), (4, 6, 10, 8), "the stack")
    assert str(e.value) == ("the stack: expected (4, 6, 10, 8), got (4, 6, 8, 10). Hint: the lengths are right but "
                            "in another order: check the axis order (try .T).")


def test_check_block_budget_says_how_large_a_step_is_against_a_chunk_word_for_word():
    s = lazy_signal()  # chunks of 4 x 4 x 4 x 4 uint16: 512 bytes
    ring = np.ones((8, 8), dtype=bool)
    with pytest.raises(CheckFailed) as e:
        checks.check_block_budget(s, (s.data * ring.astype(float)).sum(axis=(2, 3)))
    assert str(e.value) == (f"your recipe: a step makes blocks of {4 ** 4 * 8} bytes, 4.0 times a chunk of the data "
                            f"({4 ** 4 * 2} bytes): over the memory budget. Hint: keep the counts in their integer "
                            "type (multiply by a boolean mask, not a float one) and sum over a detector axis before "
                            "anything becomes float.")
    with pytest.raises(CheckFailed, match=r"^adf is already in memory \(ndarray\) - keep it lazy"):
        checks.check_block_budget(s, (s * ring).sum(axis="sig").data, np.zeros(3), what="adf")
    with pytest.raises(CheckFailed, match=r"^your recipe is already in memory \(ndarray\)"):
        checks.check_block_budget(s, np.zeros(3))


def test_check_block_budget_does_not_count_the_steps_that_make_the_data_itself():
    # read in one piece and cut into chunks afterwards: the piece is the data's business, not the recipe's
    data = da.ones((4, 6, 8, 8), dtype="uint16", chunks=-1).rechunk((2, 3, 4, 4))
    s = hs.signals.Signal2D(data).as_lazy()
    adf = (s * np.ones((8, 8), dtype=bool)).sum(axis="sig").data
    assert measure.largest_block(adf)[1] == 16 * measure.max_chunk_bytes(s)  # the one piece, counted
    checks.check_block_budget(s, adf)


def calibrated_detector(shape, chunks):
    """A lazy signal whose 15 x 15 detector pixels are 0.5 mrad, centred on pixel 7 (0 mrad)."""
    s = hs.signals.Signal2D(da.zeros(shape, dtype="uint16", chunks=chunks)).as_lazy()
    for axis, name in zip(s.axes_manager.signal_axes, ("kx", "ky")):
        axis.name, axis.units, axis.scale, axis.offset = name, "mrad", 0.5, -3.5
    return s


@pytest.mark.parametrize("shape, chunks, nav_chunks", [
    ((2, 4, 15, 15), (2, 2, 4, 4), 2),  # a scan in two navigation chunks; detector chunks of 4, 4, 4, 3 pixels
    ((6, 15, 15), (3, 4, 4), 2),  # a line scan
])
def test_check_crop_reads_counts_the_chunks_the_disk_needs_at_the_chunk_edges(shape, chunks, nav_chunks):
    s = calibrated_detector(shape, chunks)
    total = nav_chunks * 4 * 4
    # 1.5 mrad = 3 pixels: pixels 4..10, the first of chunk 1 to inside chunk 2: chunks 1..2 on each axis
    checks.check_crop_reads(s.isig[4:11, 4:11], s, 1.5)
    with pytest.raises(CheckFailed) as e:
        checks.check_crop_reads(s.isig[0:11, 4:11], s, 1.5, what="crop_disk(s)")
    assert str(e.value).startswith(f"crop_disk(s) reads {nav_chunks * 3 * 2} of {total} chunks; the pixels within "
                                   f"the radius need only {nav_chunks * 2 * 2}. Hint:")
    # 2 mrad = 4 pixels: pixels 3..11, the last of chunk 0 to the last of chunk 2 (a pixel at the radius counts)
    checks.check_crop_reads(s.isig[0:12, 0:12], s, 2.0)
    with pytest.raises(CheckFailed, match=f"need only {nav_chunks * 3 * 3}[.]"):
        checks.check_crop_reads(s.isig[0:13, 0:12], s, 2.0)
    # 2.5 mrad = 5 pixels: pixels 2..12, into the last chunk: every chunk is needed
    checks.check_crop_reads(s.isig[:, :], s, 2.5)
    with pytest.raises(CheckFailed) as e:  # stops one pixel short on the far side
        checks.check_crop_reads(s.isig[4:11, 4:10], s, 1.5, what="crop_disk(s)")
    assert str(e.value) == ("crop_disk(s) keeps ky pixels 4 to 9: it leaves out pixels within 1.5 mrad of the "
                            "centre pixel (index 7).")
    with pytest.raises(CheckFailed, match=r"^crop_disk\(s\) is already in memory \(ndarray\) - keep it lazy"):
        checks.check_crop_reads(np.zeros(3), s, 1.5, what="crop_disk(s)")


def test_a_worker_memory_limit_worked_out_from_the_signal_passes_and_errors_name_the_call():
    import dask
    import distributed  # noqa: F401 (its memory settings join dask's configuration)

    key = "distributed.worker.memory.target"
    s = lazy_signal((6, 10, 16, 12), chunks=(3, 5, 4, 4))

    def from_the_signal(signal, n):  # what the lesson asks: a navigation chunk of whole patterns, n of them
        nav = signal.axes_manager.navigation_dimension
        data = signal.data
        block = int(np.prod(data.chunksize[:nav])) * int(np.prod(data.shape[nav:])) * data.dtype.itemsize
        return int(np.ceil(n * block / dask.config.get(key)))

    checks.check_memory_limit(from_the_signal, s, 2)
    checks.check_memory_limit(from_the_signal, lazy_signal((4, 6, 8, 8), chunks=(2, 3, 8, 8)), 3)
    with pytest.raises(CheckFailed) as err:
        checks.check_memory_limit(lambda signal, n: signal.data.chunks[5], s, 2)
    assert str(err.value) == "memory_limit_for(s, 2) failed with IndexError: tuple index out of range."

    def typed_in(signal, n):
        if dask.config.get(key) != 0.6:
            raise ValueError(f"the target is {dask.config.get(key)}, not 0.6")
        return from_the_signal(signal, n)

    with dask.config.set({key: 0.6}):
        with pytest.raises(CheckFailed) as err:
            checks.check_memory_limit(typed_in, s, 2)
    assert str(err.value) == "memory_limit_for(s, 2) failed with ValueError: the target is 0.5, not 0.6."


def test_a_slip_is_recognised_within_a_byte_of_rounding_and_no_further():
    import dask
    import distributed  # noqa: F401 (its memory settings join dask's configuration)

    s = lazy_signal((6, 10, 16, 12), chunks=(3, 5, 4, 4))
    block = 3 * 5 * 16 * 12 * 2
    generic = ("Hint: a block of map is the largest navigation chunk times the whole signal; the worker spills when "
               "what it holds passes the target fraction of its limit.")
    with dask.config.set({"distributed.worker.memory.target": 0.6}):
        for slip in (2 * block, int(2 * block * 0.6), _limit(1, block, 0.6)):
            with pytest.raises(CheckFailed, match="bytes is not right yet. Hint:"):
                checks.check_memory_limit(lambda signal, n, g=slip - 1: g, s, 2)
            for off in (slip - 2, slip + 2):
                with pytest.raises(CheckFailed) as err:
                    checks.check_memory_limit(lambda signal, n, g=off: g, s, 2)
                assert str(err.value).endswith(generic)
        with pytest.raises(CheckFailed) as err:
            checks.check_memory_limit(lambda signal, n: 12, s, 2)
        assert str(err.value) == f"memory_limit_for(s, 2): 12 is not right yet (too small). {generic}"


def test_check_annulus_messages_word_for_word():
    s = detector()  # 0.5 mrad pixels, centre at 0 mrad, nearest edge 7.5 mrad away, disk radius 2 mrad
    with pytest.raises(CheckFailed) as e:
        checks.check_annulus(s, 2.2, 7.5)
    assert str(e.value) == ("inner radius 2.200 mrad: the bright-field disk (radius 2.000) wanders by up to 0.000 "
                            "mrad, so it reaches 2.250 mrad at some probe positions. Move the inner radius out.")
    with pytest.raises(CheckFailed) as e:
        checks.check_annulus(s, 4.0, 7.6)
    assert str(e.value) == ("outer radius 7.600 mrad goes past the detector edge, 7.500 mrad from the centre: take "
                            "it from the signal axes.")
    with pytest.raises(CheckFailed) as e:
        checks.check_annulus(s, 7.0, 7.5)
    assert str(e.value) == "the ring is 1.0 pixels wide; make it at least 2 pixels (1.000 mrad)."


def _scan(chunks):
    return hs.signals.Signal2D(da.from_array(np.random.default_rng(0).random((6, 9, 5, 5)), chunks=chunks)).as_lazy()


MEAN_PATTERN = "mean_pattern(s, (1, 4), (0, 2))"  # navigation chunks of 3 x 2: one chunk wide and a column more


@pytest.mark.parametrize("func, message", [
    (lambda s, x, y: _mean_pattern(s, x, y).compute(),
     f"{MEAN_PATTERN} is None. HyperSpy's compute() works in place and returns None; keep a reference to the signal "
     "instead of the value compute() returns."),
    (lambda s, x, y: s.inav[x[0]:x[1], y[0]:y[1]].mean(axis=(2, 3)),
     f"the shape of {MEAN_PATTERN}: expected (5, 5), got (2, 3). Hint: it has the scan's shape: average over the "
     "probe positions (the navigation axes), not over the detector."),
    (lambda s, x, y: s.inav[x[0]:x[1], y[0]:y[1]],
     f"the shape of {MEAN_PATTERN}: expected (5, 5), got (2, 3, 5, 5). Hint: average over the probe positions of "
     "the region, keeping the detector axes."),
    (lambda s, x, y: hs.signals.Signal2D(np.asarray(_mean_pattern(s, x, y).data)).as_lazy(),
     f"{MEAN_PATTERN} computed something while it ran: build the result lazily and leave compute() to the caller."),
    (lambda s, x, y: hs.signals.Signal2D(da.zeros(s.data.shape[2:])).as_lazy(),
     f"{MEAN_PATTERN} reads none of the dataset's chunks: build it from the signal itself (s.inav[...]), not from a "
     "computed copy of its data."),
    (lambda s, x, y: s.inav[:, :].mean() * 0 + _mean_pattern(s, x, y),
     f"computing {MEAN_PATTERN} would read 9 of the 9 chunks, more than the region needs: select the probe "
     "positions first, then average."),
    (lambda s, x, y: s.inav[x[0]:x[2], y[0]:y[1]].mean(),
     f"{MEAN_PATTERN} failed with IndexError: tuple index out of range."),
], ids=["kept the None", "averaged the detector", "averaged nothing", "a computed copy", "not from the data",
        "read the whole scan", "an error"])
def test_check_mean_pattern_messages_word_for_word(func, message):
    with pytest.raises(CheckFailed) as e:
        checks.check_mean_pattern(func, _scan((2, 3, 5, 5)))
    assert str(e.value) == message


def test_check_mean_pattern_swapped_axes_get_the_values_message_and_its_hint():
    with pytest.raises(CheckFailed) as e:
        checks.check_mean_pattern(lambda s, x, y: s.inav[y[0]:y[1], x[0]:x[1]].mean(), _scan((2, 3, 5, 5)))
    assert str(e.value).startswith(f"the values of {MEAN_PATTERN}: ")
    assert str(e.value).endswith(" Hint: s.inav takes x first, then y (HyperSpy order); the ranges stop before their end.")


@pytest.mark.parametrize("chunks, ranges", [
    ((2, 3, 5, 5), "(1, 4), (0, 2)"),
    ((3, 9, 5, 5), "(1, 9), (0, 2)"),  # one chunk across the scan: x stops at its end; two rows of three
    ((1, 3, 5, 5), "(1, 4), (0, 1)"),  # chunks one row tall: one row
])
def test_check_mean_pattern_asks_for_a_region_across_one_chunk_edge_in_the_first_chunk_row(chunks, ranges):
    with pytest.raises(CheckFailed, match=rf"^mean_pattern\(s, {re.escape(ranges)}\) is None"):
        checks.check_mean_pattern(lambda s, x, y: None, _scan(chunks))


@pytest.mark.parametrize("func, message", [
    (lambda p: hs.load(p),
     "open_lazily(path) read the whole file into memory (Signal2D): hs.load reads everything unless you pass "
     "lazy=True."),
    (_computed_after_a_lazy_open,
     "open_lazily(path) returned the data in memory because it was computed: remove the .compute(), the caller "
     "decides when to read."),
    (lambda p: hs.load(p, lazy=True).compute(),
     "open_lazily(path) returned None: return the signal that hs.load gives you. (If you called .compute() on it: "
     "HyperSpy's compute() returns None, and it reads everything.)"),
    (lambda p: hs.load(p).as_lazy(),  # the file has 2 x 2 x 2 x 2 chunks, and a full load reads each once
     "open_lazily(path) is lazy, but 16 chunks of the file were read while opening it (a full load made lazy "
     "afterwards?): open it with hs.load(path, lazy=True) directly."),
    (lambda p: hs.load(p.name[99], lazy=True), "open_lazily(path) failed with IndexError: string index out of range."),
], ids=["forgot lazy=True", "computed", "kept the None", "made lazy after a full load", "an error"])
def test_check_open_lazily_messages_word_for_word(zspy_file, func, message):
    with pytest.raises(CheckFailed) as e:
        checks.check_open_lazily(func, zspy_file)
    assert str(e.value) == message


def test_any_other_error_is_shown_with_ipythons_own_traceback_of_it():
    asked = []

    class Shell:
        class InteractiveTB:
            @staticmethod
            def structured_traceback(etype, value, tb, tb_offset=None):
                asked.append((etype, value, tb, tb_offset))
                return ["full traceback"]

        def _showtraceback(self, etype, value, stb):
            pass

    err = ValueError("bad shape")
    checks._show_check_failed(Shell(), ValueError, err, "the traceback", tb_offset=2)
    assert asked == [(ValueError, err, "the traceback", 2)]


def test_a_cell_is_recognised_by_its_file_name_in_old_and_new_ipython():
    assert checks._from_a_cell(_raised_in("<ipython-input-3-1f2e>", "raise NotImplementedError()").__traceback__)
    assert checks._from_a_cell(_raised_in("/tmp/ipykernel_77/3.py", "raise NotImplementedError()").__traceback__)
    assert not checks._from_a_cell(_raised_in("/srv/lib/ipython_input.py", "raise NotImplementedError()").__traceback__)
    assert not checks._from_a_cell(None)  # no traceback at all


def test_default_names_in_the_capstones_and_lesson_09s_messages():
    with pytest.raises(CheckFailed, match=r"^choose_chunks: "):
        checks.check_chunk_choice((11, 10, 8, 8), (40, 100, 32, 32), "uint16", 64 * 100 * 2)
    s = lazy_signal((4, 6, 16, 16), chunks=(4, 6, 4, 4))
    with pytest.raises(CheckFailed, match=r"^your crop reads 6 of 16 chunks"):
        checks.check_crop_reads(s.isig[4:13, 4:12], s, 3.5)
    with pytest.raises(CheckFailed, match=r"^memory_limit_for\(s, 2\): 12 is not right yet"):
        checks.check_memory_limit(lambda signal, n: 12, s)


def test_messages_of_the_smaller_checks_word_for_word():
    s = lazy_signal(shape=(4, 6, 16, 32), chunks=(4, 6, 4, 8))  # detector chunks 4 tall, 8 wide
    with pytest.raises(CheckFailed) as e:
        checks.check_read_fraction(s.isig[3:29, 1:15], s, 0.25, "the crop")
    assert str(e.value) == ("the crop reads 16 of 16 chunks (100%); the goal is 25%. Hint: align the crop to the chunk "
                            "edges: start and stop at multiples of the chunk size (8 detector pixels here).")
    with pytest.raises(CheckFailed) as e:
        checks.check_read_fraction(s.isig[8:16, 4:8], s, 0.25, "the crop")
    assert str(e.value) == ("the crop reads 1 of 16 chunks (6%); the goal is 25%. Hint: the crop reads less than asked: "
                            "check its bounds.")
    with pytest.raises(CheckFailed) as e:
        checks.check_read_fraction(lazy_signal(shape=(4, 6, 16, 32)).isig[8:24, 4:12], s, 0.25, "the crop")
    assert str(e.value) == ("the crop reads none of the dataset's chunks: make it from the dataset signal itself (for "
                            "example s.isig[...]), not from a copy or new array.")
    ref = np.arange(20.0)
    with pytest.raises(CheckFailed) as e:
        checks.check_correlated(-ref, ref)
    assert str(e.value) == ("your map does not follow the expected pattern: correlation -1.00, at least 0.90 needed. "
                            "Check the axis order (x versus y) and what is subtracted.")
    with pytest.raises(CheckFailed) as e:
        checks.check_equal((6, 4), (4, 6), "the navigation shape")
    assert str(e.value) == ("the navigation shape: (6, 4) is not right yet. Hint: the items are right but in another "
                            "order (numpy order is the reverse of HyperSpy's).")
    with pytest.raises(CheckFailed) as e:
        checks.check_choice("E", ["A", "B"], "faster_format")
    assert str(e.value) == "faster_format is 'E'; write one of 'A', 'B' as a string, for example answer = \"A\"."


def test_a_quiz_answer_that_is_no_letter_is_named_by_its_variable_and_a_wrong_one_asks_for_another():
    from lazysignals.quizzes import QUIZZES

    (lesson, variable), q = next(iter(QUIZZES.items()))
    with pytest.raises(CheckFailed, match=rf"^{variable} is 'Z'; write one of "):
        checks.check_quiz(lesson, variable, "Z")
    wrong = next(letter for letter in sorted(q["why"]) if letter != q["answer"])
    with pytest.raises(CheckFailed) as e:
        checks.check_quiz(lesson, variable, wrong)
    assert str(e.value) == (f"{variable} = {wrong!r} is not the best answer: {q['why'][wrong]} Read the choices again "
                            "and try another letter.")


def test_fresh_data_is_the_graders_recipe_with_seed_0_every_time_and_an_error_is_named():
    from lazysignals import judges

    tried = []

    def chunks_touched(start, stop, chunk, size):
        tried.append((start, stop, chunk, size))
        return ((stop - 1) // chunk - start // chunk + 1) / -(-size // chunk)

    checks.check_on_fresh_data("07_cropping", "test_fraction_read", {"fraction_read": chunks_touched})
    recipe = judges.JUDGES[("07_cropping", "test_fraction_read")].inputs(np.random.default_rng(0))
    assert tried == [tuple(case) for case in recipe["cases"].tolist()]
    with pytest.raises(CheckFailed) as e:
        checks.check_on_fresh_data("07_cropping", "test_fraction_read", {"fraction_read": lambda *a: 1 / 0})
    assert str(e.value).startswith("on a fresh dataset, fraction_read failed: ") and "ZeroDivisionError" in str(e.value)


def test_check_lazy_and_check_runs_messages_word_for_word():
    with pytest.raises(CheckFailed) as e:
        checks.check_lazy(np.zeros(3), "the crop")
    assert str(e.value) == ("the crop is already in memory (ndarray) - keep it lazy. Open the file with lazy=True, and "
                            "leave out .compute(), np.asarray() or anything else that makes numbers before the last "
                            "step, so that only the last step reads the data.")

    def blank(signal):
        raise NotImplementedError()

    with pytest.raises(CheckFailed) as e:
        checks.check_runs(blank, 1)
    assert str(e.value) == f"your function: {checks.BLANK}"
    with pytest.raises(NotImplementedError, match="^5D data$"):  # the learner's own error, with its reason
        checks.check_runs(lambda s: (_ for _ in ()).throw(NotImplementedError("5D data")), 1)
    with pytest.raises(CheckFailed) as e:
        checks.check_runs(lambda s: s[3], (1, 2), what="third(s)", hint="it has two items.")
    assert str(e.value) == "third(s) failed with IndexError: tuple index out of range. Hint: it has two items."
    assert checks.check_runs(lambda a, b: a + b, 2, 3) == 5
