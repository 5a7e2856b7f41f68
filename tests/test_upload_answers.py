"""Streamlit drops an upload's "file URLs" answer queued as a run starts; ui.upload_answers keeps it."""

from __future__ import annotations

from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.runtime.forward_msg_queue import ForwardMsgQueue

from ui.upload_answers import keep_upload_answers


def _queue() -> ForwardMsgQueue:
    q = ForwardMsgQueue()
    delta = ForwardMsg()
    delta.metadata.delta_path[:] = [0, 1]
    delta.delta.new_element.markdown.body = "old page"
    answer = ForwardMsg()
    answer.file_urls_response.response_id = "r1"
    answer.file_urls_response.file_urls.add(file_id="f1", upload_url="/_stcore/upload_file/s/f1")
    status = ForwardMsg()
    status.session_status_changed.script_is_running = True
    for m in (delta, answer, status):
        q.enqueue(m)
    return q


def _types(q: ForwardMsgQueue) -> list[str]:
    return [str(m.WhichOneof("type")) for m in q._queue]


def test_the_answer_survives_the_clear_a_starting_run_makes_and_is_sent_once() -> None:
    assert keep_upload_answers() and keep_upload_answers()  # installed once, idempotent
    q = _queue()
    q.clear(retain_lifecycle_msgs=True)  # what AppSession does when a script run starts
    assert _types(q) == ["session_status_changed", "file_urls_response"]
    assert q._queue[1].file_urls_response.file_urls[0].file_id == "f1"
    sent = q.flush()  # a flush sends everything once and keeps nothing
    assert [m.WhichOneof("type") for m in sent] == ["session_status_changed", "file_urls_response"]
    assert len(q) == 0
    q = _queue()
    q.clear()  # a plain clear still clears everything
    assert len(q) == 0


def test_streamlit_alone_still_drops_it() -> None:
    """Why the wrapper exists: when this fails, Streamlit keeps the answer itself and ui.upload_answers can go."""
    keep_upload_answers()
    q = _queue()
    ForwardMsgQueue.clear.__wrapped__(q, retain_lifecycle_msgs=True)  # type: ignore[attr-defined]
    assert _types(q) == ["session_status_changed"]
