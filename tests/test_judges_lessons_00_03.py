"""The hidden tests of lessons 00-03, judged outside the kernel: on inputs no preset has, the
lesson's own solution passes, and a constant seen on `ci` or the obvious shortcut fails."""

import json
import warnings

import dask.array as da
import hyperspy.api as hs
import numpy as np
import pytest

from lazysignals import judges
from lazysignals.manifest import REPO_ROOT


def solution(lesson, grade_id):
    """The model answer of an exercise, executed from the lesson's source notebook."""
    nb = json.loads((REPO_ROOT / "solutions" / lesson / f"{lesson}.ipynb").read_text(encoding="utf-8"))
    code = next("".join(c["source"]) for c in nb["cells"]
                if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)
    namespace = {"np": np, "da": da, "hs": hs}
    exec(code, namespace)
    return namespace


def verdict(lesson, test_id, fn, seed):
    """None when ``fn`` passes the judge on inputs drawn from ``seed``, else the judge's message."""
    judge = judges.JUDGES[(lesson, test_id)]
    inp = judges.unpack(judges.pack(judge.inputs(np.random.default_rng(seed))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = judge.probe(fn, inp)
    if "error" in out:  # as judges.decide: the learner's function raised
        return f"{judge.function} raised {out['error']}"
    try:
        judge.judge(inp, judges.unpack(judges.pack(out)))
    except judges.Failed as e:
        return str(e)
    return None


def _computed(s, x, y):
    region = s.inav[x[0]:x[1], y[0]:y[1]]
    region.compute(show_progressbar=False)
    return region.mean()


WRONG = {
    ("00_setup", "test_ex1_numpy_shapes"): {
        "ci constant": lambda s: ((16, 55), (32, 32)),
        "two navigation axes assumed": lambda s: (s.data.shape[:2], s.data.shape[2:]),
        "HyperSpy order": lambda s: (s.axes_manager.navigation_shape, s.axes_manager.signal_shape),
    },
    ("00_setup", "test_ex2_mean_pattern"): {
        "ci region": lambda s, x, y: s.inav[1:9, 0:2].mean(),
        "x and y swapped": lambda s, x, y: s.inav[y[0]:y[1], x[0]:x[1]].mean(),
        "computed in numpy": lambda s, x, y: hs.signals.Signal2D(
            np.asarray(s.data)[y[0]:y[1], x[0]:x[1]].mean(axis=(0, 1))).as_lazy(),
        "computed too early": _computed,
    },
    ("01_lazy_basics", "test_ex1_chunks_touched"): {
        "ci constant": lambda c, r: 16,
        "length over chunk": lambda c, r: int(np.prod([-(-(s.stop - s.start) // n) for n, s in zip(c, r)])),
    },
    ("01_lazy_basics", "test_ex2_sqrt_sum_per_position"): {
        "ci shape": lambda d: da.sqrt(d.reshape(16, 55, 32, 32)).sum(axis=(2, 3)),
        "computed in numpy": lambda d: da.from_array(np.sqrt(np.asarray(d)).sum(axis=(2, 3))),
    },
    ("02_loading", "test_ex1_open_lazily"): {
        "no lazy=True": lambda p: hs.load(p),
        "a full load made lazy": lambda p: hs.load(p).as_lazy(),
    },
    ("02_loading", "test_ex2_sum_nbytes"): {
        "ci constant": lambda n, s, d: 8192,
        "the data's dtype": lambda n, s, d: int(np.prod(s)) * np.dtype(d).itemsize,
        "every axis": lambda n, s, d: int(np.prod(n)) * int(np.prod(s)) * 8,
    },
    ("03_plotting", "test_ex03_annulus_radii"): {
        "ci constant": lambda s: (1.6, 3.1),
        "measured from the data": lambda s: (float(s.data.max()), 1.0),
    },
}
ANSWERS = {
    ("00_setup", "test_ex1_numpy_shapes"): "ex1_numpy_shapes",
    ("00_setup", "test_ex2_mean_pattern"): "ex2_mean_pattern",
    ("01_lazy_basics", "test_ex1_chunks_touched"): "ex1_chunks_touched",
    ("01_lazy_basics", "test_ex2_sqrt_sum_per_position"): "ex2_sqrt_sum_per_position",
    ("02_loading", "test_ex1_open_lazily"): "ex1_open_lazily",
    ("02_loading", "test_ex2_sum_nbytes"): "ex2_sum_nbytes",
    ("03_plotting", "test_ex03_annulus_radii"): "ex03_annulus_radii",
    ("03_plotting", "test_ex03_adf_image"): "ex03_adf_image",
}


@pytest.mark.parametrize("key", list(ANSWERS), ids=lambda k: k[1])
def test_the_lessons_solution_passes_its_judge_on_fresh_inputs(key):
    lesson, test_id = key
    fn = solution(lesson, ANSWERS[key])[judges.JUDGES[key].function]
    for seed in (1, 2):
        assert verdict(lesson, test_id, fn, seed) is None


@pytest.mark.parametrize("key, name", [(k, n) for k, cases in WRONG.items() for n in cases],
                         ids=lambda v: v if isinstance(v, str) else v[1])
def test_a_constant_or_a_shortcut_fails_the_judge(key, name):
    message = verdict(*key, WRONG[key][name], seed=3)
    assert message, f"{name} passed the judge of {key[1]}"


def test_open_lazily_judge_names_the_missing_lazy_true_not_compute():
    message = verdict("02_loading", "test_ex1_open_lazily", lambda p: hs.load(p), seed=4)
    assert "lazy=True" in message and "compute" not in message
