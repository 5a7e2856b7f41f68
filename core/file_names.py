"""Names made safe: file names harmless on every file system, names as people see them, unique names in a folder.

``safe_filename`` turns any text (an upload's name, a case title) into a name that is harmless on every file system;
``clean_name`` keeps a name people read (Unicode) but drops control, bidi-override and invisible characters;
``unique_name`` adds ``-2``, ``-3``... until a name is free.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection

MAX_NAME = 120
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def _to_ascii(text: str) -> str:
    """Accents dropped (``é`` -> ``e``), compatibility forms folded (``․`` -> ``.``), any other non-ASCII -> ``_``."""
    text = unicodedata.normalize("NFKD", text)
    return "".join(c if ord(c) < 128 else "_" for c in text if not unicodedata.combining(c))


def _clean(part: str) -> str:
    """ASCII letters, digits, ``._-`` only; no runs of dots or underscores; no leading/trailing dots or dashes."""
    part = _BAD.sub("_", part)
    part = re.sub(r"\.{2,}", ".", part)
    part = re.sub(r"[-_]*-[-_]*", "-", part)  # "a _-b" -> "a-b"
    part = re.sub(r"_{2,}", "_", part)
    return part.strip("._- ")


def safe_filename(name: str, default: str = "file") -> str:
    """A harmless file name made from ``name``: no path separators, no ``..``, no control characters, no leading
    dot, ASCII only, at most 120 characters, never empty, never a Windows device name. The extension (up to 16
    characters) is kept: ``"서울 사진.JPG"`` -> ``"file.JPG"``, ``"../../etc/passwd"`` -> ``"etc_passwd"``.
    Applying it again changes nothing.
    """
    text = _to_ascii(str(name))
    stem, dot, ext = text.rpartition(".")
    if not dot or not stem or "/" in ext or "\\" in ext:  # ".bashrc": a hidden name, not an extension
        stem, ext = text, ""
    ext = _clean(_clean(ext)[:16])
    if not ext:  # without an extension no dot may remain, or a second pass would read one
        stem = stem.replace(".", "_")
    stem = _clean(stem) or _clean(_to_ascii(str(default)).replace(".", "_")) or "file"
    if stem.split(".")[0].lower() in _RESERVED:
        stem = "_" + stem
    if ext:
        return stem[: MAX_NAME - len(ext) - 1].rstrip("._-") + "." + ext
    return stem[:MAX_NAME].rstrip("._-")


#: Characters that reorder or hide text (bidirectional embeddings, overrides, isolates and marks; zero-width space,
#: word joiner, byte-order mark): "evil\u202egnp.exe" shows as "evilexe.png".
_HIDDEN = frozenset("\u061c\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff")


def clean_name(text: object, default: str = "file", max_len: int = 200) -> str:
    """A name as people see and the workspace stores it (an upload's name, a case, an analyst): Unicode kept
    (NFC), but control characters (NUL, tabs, newlines...) and line separators become spaces, bidirectional
    overrides and invisible characters are removed, runs of spaces collapse, at most ``max_len`` characters,
    ``default`` when nothing is left (give ``""`` to test for that). Applying it again changes nothing. File names on
    disk use :func:`safe_filename`."""
    out = []
    for c in unicodedata.normalize("NFC", str(text)):
        if c in _HIDDEN or unicodedata.category(c) == "Cs":  # lone surrogates cannot even be stored as UTF-8
            continue
        out.append(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c)
    name = " ".join("".join(out).split())[:max_len].strip()
    return name or default


def unique_name(name: str, taken: Collection[str]) -> str:
    """``name``, or ``stem-2.ext``, ``stem-3.ext``... : the first one not in ``taken`` (compared case-insensitively,
    as on Windows and macOS file systems), kept within 120 characters."""
    lowered = {t.casefold() for t in taken}
    if name.casefold() not in lowered:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, dot, ext = name, "", ""
    n = 2
    while True:
        suffix = f"-{n}{dot}{ext}"
        candidate = stem[: max(1, MAX_NAME - len(suffix))] + suffix
        if candidate.casefold() not in lowered:
            return candidate
        n += 1
