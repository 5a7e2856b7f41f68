"""Sessions sharing a device through the batching queue: merged batches, each caller's own rows back, errors to
every caller of a merged call; batch and tile sizes from free device memory. The CUDA copy path itself (pinned
double buffer, side stream) needs a GPU and is exercised by benchmarks/bench_throughput.py there."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from core.detection.detector import Detector
from core.detection.device_queue import BatchingQueue, batch_for_memory, budget_for_memory
from core.errors import InputError
from core.models import build_model


def test_batch_and_budget_from_free_memory():
    gib = 1 << 30
    assert batch_for_memory(80 * gib, 224 * 224) == 256  # an idle H100: capped
    assert batch_for_memory(8 * gib, 512 * 512) == 16
    assert batch_for_memory(100 << 20, 512 * 512) == 1  # nearly full: still one tile
    assert budget_for_memory(80 * gib) > 40_000_000 and budget_for_memory(0) == 256 * 256
    with pytest.raises(ValueError):
        batch_for_memory(gib, 0)


def test_waiting_requests_of_one_key_are_merged_and_split_back():
    q = BatchingQueue("test")
    gate, calls = threading.Event(), []

    def run(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gate.wait(5)
        calls.append(len(t))
        return t[..., 0].astype(np.float32), t.reshape(len(t), -1)[:, 0].astype(np.float32)

    results: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def client(i: int, n: int, key: str) -> None:
        results[i] = q.submit(key, np.full((n, 4, 4, 3), i, np.uint8), run, 16)

    threads = [threading.Thread(target=client, args=(0, 2, "a"))]
    threads[0].start()
    while q.calls == 0:  # the first call is running (held at the gate) ...
        threading.Event().wait(0.01)
    threads += [threading.Thread(target=client, args=(i, n, k)) for i, n, k in
                [(1, 3, "a"), (2, 1, "b"), (3, 4, "a"), (4, 20, "a")]]
    for t in threads[1:]:
        t.start()
    while len(q._pending) < 4:  # ... while the others queue up
        threading.Event().wait(0.01)
    gate.set()
    for t in threads:
        t.join(10)
    for i, n in [(0, 2), (1, 3), (2, 1), (3, 4), (4, 20)]:
        maps, scores = results[i]
        assert maps.shape == (n, 4, 4) and np.all(maps == i) and np.all(scores == i)
    assert calls[0] == 2 and 7 in calls and sorted(calls) == sorted([2, 7, 1, 20])  # 1 and 3 rode together
    assert q.merged == 1


def test_an_error_reaches_every_caller_of_the_merged_call():
    q = BatchingQueue("err")

    def run(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise InputError("tiles must be RGB")

    with pytest.raises(InputError, match="RGB"):
        q.submit("k", np.zeros((1, 4, 4, 3), np.uint8), run, 8)
    assert q.submit("k", np.zeros((1, 2, 2, 3), np.uint8), lambda t: (t[..., 0] * 1.0, t[:, 0, 0, 0] * 1.0), 8)[0] \
        .shape == (1, 2, 2)


def test_detector_through_the_queue_matches_the_lock_from_many_sessions(monkeypatch):
    """Eight threads on one shared detector (a real net, fp32): the queue gives each the same maps as the lock."""
    torch.manual_seed(0)
    net = build_model("fcdd-vgg11")
    rng = np.random.default_rng(0)
    inputs = [rng.integers(0, 255, (2, 64, 64, 3), dtype=np.uint8) for _ in range(8)]
    locked = Detector.from_model(net, precision="fp32")
    assert locked.share == "lock"
    expected = [locked.predict(x) for x in inputs]
    monkeypatch.setenv("BDA_DEVICE_SHARE", "queue")
    queued = Detector.from_model(net, precision="fp32")
    assert queued.share == "queue"
    got: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, queued.predict(inputs[i]))) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i in range(8):
        np.testing.assert_allclose(got[i][0], expected[i][0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got[i][1], expected[i][1], rtol=1e-4, atol=1e-6)
    monkeypatch.setenv("BDA_DEVICE_SHARE", "everyone")
    with pytest.raises(InputError, match="queue or lock"):
        Detector.from_model(net, precision="fp32")
