"""Sessions share one device through a queue that batches their tiles, instead of taking turns behind a lock.

Every browser session (and job) calls ``Detector.predict`` on the same shared detector. With a lock, a session
holding one large tile keeps a GPU at a fraction of its throughput while the others wait. A :class:`BatchingQueue`
has one worker thread per device: it takes the oldest request and merges into it every waiting request for the same
model and tile shape, up to ``max_tiles`` tiles, runs them as one call and hands each caller its own rows back.
Requests for other models or shapes wait their turn in arrival order. Nothing is shared between requests but the
batch, and each caller gets exactly the rows it sent (tests/test_device_queue.py).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import numpy as np

Run = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]

#: Bytes of device memory one input pixel needs at inference (bf16 activations of the widest VGG16 layers, two
#: alive at once, plus the fp32 input, map and upsampling buffers), with a safety margin. Measured peak on a CPU run
#: of fcdd-vgg16 at 1120×2048: ~1.9 GB for 2.3 Mpx, i.e. ~830 B/px in fp32; bf16 halves the activations.
BYTES_PER_PX = 1000
#: Share of the free device memory the tiles of one batch may use (the rest: model, allocator slack, other users).
MEMORY_SHARE = 0.5


def batch_for_memory(free_bytes: int, tile_px: int, max_batch: int = 256, bytes_per_px: int = BYTES_PER_PX) -> int:
    """Tiles per batch that fit :data:`MEMORY_SHARE` of ``free_bytes``, between 1 and ``max_batch``."""
    if tile_px <= 0:
        raise ValueError(f"tile size must be positive, got {tile_px} px")
    fit = int(free_bytes * MEMORY_SHARE) // (tile_px * bytes_per_px)
    return max(1, min(int(max_batch), fit))


def budget_for_memory(free_bytes: int, bytes_per_px: int = BYTES_PER_PX) -> int:
    """Pixels per forward pass that fit :data:`MEMORY_SHARE` of ``free_bytes`` (at least 256²)."""
    return max(256 * 256, int(free_bytes * MEMORY_SHARE) // bytes_per_px)


@dataclass
class _Request:
    key: Hashable
    tiles: np.ndarray
    run: Run
    max_tiles: int
    done: threading.Event = field(default_factory=threading.Event)
    maps: np.ndarray | None = None
    scores: np.ndarray | None = None
    error: BaseException | None = None


class BatchingQueue:
    """One worker thread running merged requests for one device (see the module docstring)."""

    def __init__(self, name: str = "device") -> None:
        self.name = name
        self._pending: collections.deque[_Request] = collections.deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.calls = 0  #: merged calls run so far (tests, statistics)
        self.merged = 0  #: requests that rode along in another request's call

    def submit(self, key: Hashable, tiles: np.ndarray, run: Run, max_tiles: int) -> tuple[np.ndarray, np.ndarray]:
        """Run ``run`` on ``tiles`` (possibly merged with other callers' tiles of the same ``key``); block until
        done; return this caller's ``(maps, scores)`` or raise the error the call raised."""
        req = _Request(key, tiles, run, max(1, int(max_tiles)))
        with self._cond:
            self._pending.append(req)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name=f"bda-{self.name}-queue", daemon=True)
                self._thread.start()
            self._cond.notify()
        req.done.wait()
        if req.error is not None:
            raise req.error
        assert req.maps is not None and req.scores is not None
        return req.maps, req.scores

    def _take(self) -> list[_Request]:
        """The oldest request and every waiting one that can join it (same key and tile shape, within max)."""
        first = self._pending.popleft()
        group, n = [first], len(first.tiles)
        shape = first.tiles.shape[1:]
        for req in list(self._pending):
            if req.key == first.key and req.tiles.shape[1:] == shape and n + len(req.tiles) <= first.max_tiles:
                self._pending.remove(req)
                group.append(req)
                n += len(req.tiles)
        return group

    def _work(self) -> None:
        while True:
            with self._cond:
                if not self._cond.wait_for(lambda: bool(self._pending), timeout=30.0):
                    self._thread = None  # idle: let the thread end; the next submit starts another
                    return
                group = self._take()
            self.calls += 1
            self.merged += len(group) - 1
            try:
                tiles = group[0].tiles if len(group) == 1 else np.concatenate([r.tiles for r in group])
                maps, scores = group[0].run(tiles)
                i = 0
                for r in group:
                    k = len(r.tiles)
                    r.maps, r.scores = maps[i:i + k], scores[i:i + k]
                    i += k
            except BaseException as exc:  # noqa: BLE001 - handed to every caller of the merged call
                for r in group:
                    r.error = exc
            finally:
                for r in group:
                    r.done.set()


_QUEUES: dict[str, BatchingQueue] = {}
_GUARD = threading.Lock()


def device_queue(device: str) -> BatchingQueue:
    """The process-wide queue of ``device`` (e.g. ``"cuda:0"``)."""
    with _GUARD:
        q = _QUEUES.get(device)
        if q is None:
            q = _QUEUES[device] = BatchingQueue(device)
        return q
