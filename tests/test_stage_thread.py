"""The background stage the scene pipeline stitches and writes on: order, bounded queue, errors, early exit."""

from __future__ import annotations

import threading
import time

import pytest

from core.detection.stage_thread import BackgroundStage


def test_items_run_in_order_on_another_thread():
    seen: list[tuple[int, str]] = []
    with BackgroundStage(lambda i: seen.append((i, threading.current_thread().name)), depth=2, name="w") as st:
        for i in range(50):
            st.submit(i)
    assert [i for i, _ in seen] == list(range(50)) and {n for _, n in seen} == {"w"}


def test_work_overlaps_the_caller():
    """Four 0.1 s items while the caller also spends 0.1 s per item: about 0.5 s, not 0.8 s."""
    t0 = time.perf_counter()
    with BackgroundStage(lambda _: time.sleep(0.1), depth=2) as st:
        for i in range(4):
            time.sleep(0.1)
            st.submit(i)
    assert time.perf_counter() - t0 < 0.7


def test_a_failure_is_raised_in_the_caller_and_later_items_are_skipped():
    done: list[int] = []

    def fn(i: int) -> None:
        if i == 3:
            raise ValueError("disk full")
        done.append(i)

    with pytest.raises(ValueError, match="disk full"), BackgroundStage(fn, depth=1) as st:
        for i in range(100):
            st.submit(i)
    assert done == [0, 1, 2]


def test_leaving_on_an_error_stops_the_worker_without_running_the_queue():
    done: list[int] = []
    with pytest.raises(RuntimeError, match="model failed"), BackgroundStage(
            lambda i: (time.sleep(0.05), done.append(i)), depth=4, name="abandoned") as st:
        for i in range(4):
            st.submit(i)
        raise RuntimeError("model failed")
    assert len(done) < 4 and not any(t.name == "abandoned" for t in threading.enumerate())
    with pytest.raises(ValueError):
        BackgroundStage(lambda _: None, depth=0)
