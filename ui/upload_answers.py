"""Keep Streamlit's answer to an upload's "file URLs" request when a rerun starts, so no upload is silently lost.

Streamlit's file uploader first asks the server, over the websocket, where to send each file (``file_urls_request``);
only when the answer (``file_urls_response``) arrives does it show the file and send it. Streamlit (1.67) queues
that answer like any other message, and when a script run starts it clears the session's queue of everything but
lifecycle messages and toasts. An answer queued in the few milliseconds between a rerun request (a click, a case
switch) and the new run's start is dropped: the browser waits for it forever, shows no file, and sends nothing.
Seen in this project's browser tests (a file chosen just after a case switch never appeared in the uploader; the
recorded websocket frames show the request sent and no answer), and an analyst who drops a file right after a click
would lose it the same way.

:func:`keep_upload_answers` wraps ``ForwardMsgQueue.clear`` so that a lifecycle-retaining clear (the one a starting
run makes) also keeps queued ``file_urls_response`` messages. The plain clear of a flush is left alone (those
messages are being sent). If Streamlit's internals change so the wrapper cannot apply, it does nothing and says so
in the server log.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

_MARK = "_bda_keeps_upload_answers"
_ANSWER = "file_urls_response"


def keep_upload_answers() -> bool:
    """Install the wrapper once per process; True when it is in place."""
    try:
        from streamlit.runtime.forward_msg_queue import ForwardMsgQueue
    except ImportError:  # pragma: no cover - Streamlit moved its internals
        log.warning("Streamlit's ForwardMsgQueue was not found; uploads chosen as a rerun starts may be lost")
        return False
    original = ForwardMsgQueue.clear
    if getattr(original, _MARK, False):
        return True

    def clear(self: Any, retain_lifecycle_msgs: bool = False, fragment_ids_this_run: list[str] | None = None
              ) -> None:
        queue = getattr(self, "_queue", None)
        answers = [m for m in queue if m.WhichOneof("type") == _ANSWER] \
            if retain_lifecycle_msgs and isinstance(queue, list) else []
        original(self, retain_lifecycle_msgs=retain_lifecycle_msgs, fragment_ids_this_run=fragment_ids_this_run)
        kept = [a for a in answers if not any(a is m for m in self._queue)]  # a later Streamlit may keep them
        if kept:  # not deltas: the queue's delta index is unaffected
            self._queue.extend(kept)
            log.info("kept %d upload answer(s) across the start of a run", len(kept))

    setattr(clear, _MARK, True)
    clear.__doc__ = original.__doc__
    clear.__wrapped__ = original  # type: ignore[attr-defined]
    ForwardMsgQueue.clear = clear  # type: ignore[method-assign]
    return True
