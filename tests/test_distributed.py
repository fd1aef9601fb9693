"""A lazy pass on a cluster of worker processes survives a killed worker and gives the threaded result."""

import os
import signal
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from lazysignals import blocks  # noqa: E402
from lazysignals.data import prepare  # noqa: E402

SLOW = 0.03  # seconds each task waits, so the computation is still running when a worker dies


def test_rebin_on_a_cluster_survives_a_killed_worker_with_the_threaded_result(tmp_path):
    import hyperspy.api as hs

    path = prepare("ci", formats=("zspy",), dest=tmp_path, progress=False)["zspy"]
    s = hs.load(path, lazy=True)
    nx, ny = s.axes_manager.navigation_shape
    s = s.inav[: nx - nx % 2, : ny - ny % 2]
    summed = blocks.rebin_sum(s, (2, 2, 2, 2), "uint32").data
    slow = summed.map_blocks(lambda b: (time.sleep(SLOW), b)[1], dtype=summed.dtype)
    threaded = slow.compute(scheduler="threads")

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="400MB",
                                  dashboard_address=None, silence_logs=40) as cluster, \
            distributed.Client(cluster) as client:
        future = client.compute(slow)
        deadline = time.monotonic() + 20
        while not any(client.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # a few tasks done, others running
        assert not future.done(), "the computation ended before a worker could be killed: make the tasks slower"
        pids = client.run(os.getpid)
        victim_address, victim_pid = sorted(pids.items())[0]
        os.kill(victim_pid, signal.SIGKILL)
        result = future.result(timeout=60)
        after = client.run(os.getpid)

    assert victim_pid not in after.values(), "the killed worker process is still listed"
    np.testing.assert_array_equal(result, threaded)
