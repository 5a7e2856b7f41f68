"""A background stage: hand items to a worker thread that processes them in order while the caller goes on.

The scene pipeline runs the model on the calling thread and gives each batch's maps to a :class:`BackgroundStage`
that calibrates, stitches and writes them (deflate, preview), so that work overlaps the next batch's inference
instead of sitting between batches. The queue is bounded (``depth``), so a slow stage holds back the producer
rather than piling up score maps. An exception in the worker is re-raised in the caller at the next
:meth:`~BackgroundStage.submit` or at :meth:`~BackgroundStage.finish`; leaving the ``with`` block on an error stops
the worker without running what is still queued.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_STOP = object()


def caller_thread(run: Callable[[], None], name: str) -> threading.Thread:
    """A daemon thread (not started) that runs ``run`` in a copy of the caller's context: what it says is in the
    caller's language, and recorded when the caller records (:mod:`core.i18n`)."""
    return threading.Thread(target=contextvars.copy_context().run, args=(run,), name=name, daemon=True)


class BackgroundStage(Generic[T]):
    """Run ``fn(item)`` for each submitted item, in order, on one worker thread."""

    def __init__(self, fn: Callable[[T], None], depth: int = 2, name: str = "bda-stage") -> None:
        if depth < 1:
            raise ValueError(f"stage depth must be >= 1, got {depth}")
        self._fn = fn
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._abort = threading.Event()
        self._thread = caller_thread(self._run, name)
        self._thread.start()
        self._finished = False

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP or self._abort.is_set():
                return
            if self._error is not None:
                continue  # drain: the caller learns of the error and stops submitting
            try:
                self._fn(item)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            self._abort.set()
            raise err

    def submit(self, item: T) -> None:
        """Queue ``item`` (blocks while ``depth`` items wait); re-raises an earlier failure of the worker."""
        if self._finished:
            raise RuntimeError("the stage is finished")
        self._raise()
        while True:
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                self._raise()
                if not self._thread.is_alive():
                    raise RuntimeError("the background stage stopped") from None

    def finish(self) -> None:
        """Wait until every submitted item was processed; re-raise the worker's failure, if any."""
        if not self._finished:
            self._finished = True
            self._queue.put(_STOP)
            self._thread.join()
        self._raise()

    def close(self) -> None:
        """Stop the worker without processing what is still queued (idempotent)."""
        self._abort.set()
        self._finished = True
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        try:
            self._queue.put_nowait(_STOP)
        except queue.Full:  # pragma: no cover - the queue was just drained
            pass
        self._thread.join()

    def __enter__(self) -> BackgroundStage[T]:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.close()
