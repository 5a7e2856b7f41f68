"""Text from files, archives and people put into Streamlit's markdown (captions, alerts, toasts, labels) as text.

Streamlit renders markdown in nearly every element, and markdown fetches images: a scene named
``![x](https:host/a.png).tif`` (an upload's name, a name in an imported case archive, a camera model in EXIF)
made every analyst's browser that showed it request that host, a beacon and a breach of the offline rule. HTML
is escaped by Streamlit already; markdown is not. :func:`plain` escapes it; :func:`in_code` is for a value set in a
code span (``\u0060{path}\u0060``), where escapes do not work.
"""

from __future__ import annotations

import re

#: Markdown fetches nothing without brackets: images and links (``![..](..)``, ``[..](..)``, ``[..][ref]``) and
#: Streamlit's ``:red[...]`` directives all need them, so brackets (and the backslash, which would undo an escape)
#: are escaped. The rest of markdown (emphasis, a ``#`` heading, code) can only change how a name looks, and
#: escaping it would litter paths and names (``tile\_1``) wherever a test or a log reads the markdown as sent.
_MARKUP = re.compile(r"([\\\[\]])")


def plain(text: object) -> str:
    """``text`` in a markdown element: no image, link or Streamlit directive can come from it (its brackets are
    escaped)."""
    return _MARKUP.sub(r"\\\1", "" if text is None else str(text))


def in_code(text: object) -> str:
    """``text`` for a markdown code span: a backtick would end the span, so it becomes a typographic quote."""
    return ("" if text is None else str(text)).replace("`", "\u02bc")
