"""The hidden tests of lessons 04-06 (lazysignals/judges.py): inputs unlike any preset, so that
what the `ci` preset shows, typed as a constant, fails; and the true domains of lesson 06's
fresh specimen stay in the grader's memory, never in the inputs the learner's kernel can read."""

import numpy as np
import pytest

from lazysignals import judges


def _verdict(judge, fn, seed=11):
    inp = judges.unpack(judges.pack(judge.inputs(np.random.default_rng(seed))))
    out = judges.unpack(judges.pack(judge.probe(fn, inp)))
    if "error" in out:
        return f"raised {out['error']}"
    try:
        judge.judge(inp, out)
    except judges.Failed as e:
        return str(e)
    return None


def _navigation_blocks(s):
    ny, nx = s.data.numblocks[:2]
    return ny * nx


def _pattern_chunks(s):
    ky, kx = s.data.shape[2:]
    side = max(1, int(np.sqrt(int(np.prod(s.data.chunksize)) // (ky * kx))))
    return (side, side, ky, kx)


@pytest.mark.parametrize("grade_id,right,constant", [
    ("test_ex04_transpose", _navigation_blocks, lambda s: 14),  # 7 x 2 navigation chunks on every preset
    ("test_ex04_pattern_chunks", _pattern_chunks, lambda s: (2, 2, 32, 32)),  # ci's answer
])
def test_chunk_judges_pass_the_idea_and_fail_what_ci_shows(grade_id, right, constant):
    judge = judges.JUDGES[("04_chunking", grade_id)]
    assert _verdict(judge, right) is None
    assert _verdict(judge, constant) is not None


def test_com_safe_judge_names_the_nan_of_an_empty_pattern():
    from scipy.ndimage import center_of_mass

    judge = judges.JUDGES[("06_map", "com_safe_test")]
    message = _verdict(judge, lambda p, threshold: np.array(center_of_mass(p >= threshold)))
    assert message and "no pixel reaches the threshold" in message


def _plain_domain_map(s):
    from lazysignals import blocks

    com = blocks.centre_of_mass(s)  # the plain centre of mass, descan plane removed, projected
    com.compute(show_progressbar=False)
    return _project(np.asarray(com.data))


def _project(com):
    y, x = np.mgrid[0:com.shape[0], 0:com.shape[1]]
    design = np.column_stack([np.ones(x.size), x.ravel(), y.ravel()])
    d = [c - (design @ np.linalg.lstsq(design, c.ravel(), rcond=None)[0]).reshape(c.shape)
         for c in (com[..., 1], com[..., 0])]
    u = np.linalg.eigh(np.cov(np.stack([d[0].ravel(), d[1].ravel()])))[1][:, -1]
    return u[0] * d[0] + u[1] * d[1]


def test_domain_map_judge_keeps_the_truth_out_of_the_learners_reach():
    from lazysignals.manifest import get_preset
    from lazysignals.synthetic import probe_maps

    judge = judges.JUDGES[("06_map", "domain_map_test")]
    inp = judge.inputs(np.random.default_rng(5))
    assert set(inp) == {"arr", "chunks", "scale"}, "only the patterns, their chunks and calibration"
    assert inp["arr"].shape[2:] != tuple(get_preset("ci").signal_shape), "a detector no preset has"
    assert judges._digest(inp["arr"]) in judge._truths, "the truth is kept in the grader's memory"
    assert _verdict(judge, _plain_domain_map, seed=5) is None
    ci_truth = probe_maps(get_preset("ci"))["domain"]
    assert _verdict(judge, lambda s: ci_truth, seed=5) is not None


@pytest.mark.parametrize("key", [("06_map", "map_block_nbytes_test"), ("09_scaling_out", "test_memory_limit_for"),
                                 ("04_chunking", "test_ex04_transpose")])
def test_geometry_judges_never_draw_a_signal_too_many_blocks_to_wrap(key):
    # A draw of shape 39^5 in chunks of 2 (3.2 million blocks) made HyperSpy take 5.5 GB and 36 s to wrap
    # it: past the grading kernel's memory, so a correct answer lost its points now and then.
    judge = judges.JUDGES[key]
    for seed in range(300):
        inp = judge.inputs(np.random.default_rng(seed))
        for shape, chunks in zip(inp["shapes"], inp["chunks"]):
            blocks = np.prod([-(-int(n) // int(c)) for n, c in zip(shape, chunks)])
            assert blocks <= judges.MAX_BLOCKS, (seed, shape, chunks)
    # the answer is still judged on the chunks it gets
    def right(sig):
        return int(np.prod(sig.data.chunksize[:-2])) * int(np.prod(sig.data.shape[-2:])) * sig.data.dtype.itemsize

    if key[0] == "06_map":
        assert _verdict(judge, right) is None
        assert _verdict(judge, lambda sig: int(np.prod(sig.data.chunksize)) * sig.data.dtype.itemsize) is not None
