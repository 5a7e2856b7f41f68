"""Reading ahead while the model runs: a :class:`Prefetcher` reads the next windows in a thread, and
:func:`batched` groups them for the model, timing how long the model waited for the reader."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import numpy as np
from rasterio.windows import Window

from core.detection.stage_thread import caller_thread
from core.i18n import _


class _Reader(Protocol):
    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]: ...


_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Prefetcher:
    """Read windows in a background thread, ``depth`` ahead of the consumer.

    Iterating yields ``(window, rgb, valid)`` in window order. ``transform(window, rgb, valid)`` (optional) runs in
    the reader thread too (resampling, padding). An exception raised while reading is re-raised in the consumer at
    the point where that window would have been yielded. Leaving the loop early (``break``, an exception, or
    :meth:`close` / the ``with`` block) stops the reader promptly; the thread never outlives :meth:`close`.
    """

    def __init__(self, source: _Reader, windows: list[Window], depth: int = 2,
                 transform: Callable[[Window, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None
                 ) -> None:
        if depth < 1:
            raise ValueError(_("prefetch depth must be >= 1, got {depth}").format(depth=depth))
        self._source = source
        self._windows = list(windows)
        self._transform = transform
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False

    def __len__(self) -> int:
        return len(self._windows)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for win in self._windows:
                if self._stop.is_set():
                    return
                rgb, valid = self._source.read(win)
                if self._transform is not None:
                    rgb, valid = self._transform(win, rgb, valid)
                if not self._put((win, rgb, valid)):
                    return
            self._put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            self._put(_Failure(exc))

    def start(self) -> Prefetcher:
        """Start the reader thread (iteration starts it on demand)."""
        if not self._started:
            self._started = True
            self._thread = caller_thread(self._run, "tile-prefetch")
            self._thread.start()
        return self

    def __iter__(self) -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
        if self._started:
            raise RuntimeError(_("a Prefetcher can be iterated only once"))
        self.start()
        try:
            while True:
                item = self._queue.get()
                if item is _DONE:
                    return
                if isinstance(item, _Failure):
                    raise item.exc
                yield item
        finally:
            self.close()

    def close(self) -> None:
        """Stop the reader and wait for it to finish (idempotent)."""
        self._stop.set()
        while True:  # unblock a reader waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    @property
    def alive(self) -> bool:
        """True while the reader thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def batched(items: Iterable[Any], n: int, on_wait: Callable[[float], None] | None = None) -> Iterator[list[Any]]:
    """Consecutive lists of up to ``n`` items (the last may be shorter). ``on_wait(seconds)`` is told how long each
    item took to arrive (with a :class:`Prefetcher`: the time the model waited for the reader)."""
    if n < 1:
        raise ValueError(_("batch size must be at least 1, got {n}").format(n=n))
    batch: list[Any] = []
    it = iter(items)
    while True:
        t0 = time.perf_counter()
        item = next(it, _END)
        if on_wait is not None:
            on_wait(time.perf_counter() - t0)
        if item is _END:
            break
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


_END = object()
