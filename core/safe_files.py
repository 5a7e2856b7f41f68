"""Crash-safe writes, safe file names and safe archive extraction for anything a user hands in.

``atomic_write_bytes`` / ``atomic_write_text`` replace a file so that readers and crashes (SIGKILL, power loss after
the call returned) only ever see the old or the complete new file: temp file in the same folder, fsync, rename.
``safe_filename`` turns any text (an upload's name, a case title) into a name that is harmless on every file system.
``safe_extract_zip`` unpacks an archive without ever writing outside the destination folder (zip-slip: absolute
paths, ``..``, symlinks) and without filling the disk (zip bombs: declared sizes, compression ratio, and the bytes
actually inflated, which a forged header cannot hide).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import stat
import tempfile
import unicodedata
import zipfile
from collections.abc import Collection
from pathlib import Path, PurePosixPath
from typing import IO

from core.errors import InputError, TrainingDataError, WorkspaceError
from core.i18n import _

MAX_NAME = 120
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_stream(path: str | Path, stream: IO[bytes], chunk: int = 1 << 20) -> Path:
    """Copy ``stream`` (read to its end, ``chunk`` bytes at a time) to ``path`` so that readers and crashes only
    ever see the old or the complete new file; returns ``path``.

    Parent folders are created; an existing file's permissions are kept (new files: 0644). Raises
    :class:`WorkspaceError` when the folder is not writable or the disk is full.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:80]}.", suffix=".tmp", dir=path.parent)
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(stream, f, chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
        return path
    except OSError as exc:
        raise WorkspaceError(
            _("could not write {path}: {value}. Check that the folder is writable and the disk has free space, "
              "then try again.").format(path=path, value=exc.strerror or exc)) from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """:func:`atomic_write_stream` of a bytes object."""
    atomic_write_stream(path, io.BytesIO(data))


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8 by default, newlines written as given)."""
    atomic_write_bytes(path, text.encode(encoding))


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


def _member_parts(info: zipfile.ZipInfo, err: type[InputError], archive: Path) -> tuple[str, ...]:
    """Path components of a member, refusing anything that could land outside the destination."""
    raw = info.filename
    def bad(why: str) -> str:
        return _("archive {name} is unsafe: member {raw!r} {why}. Nothing was extracted from it; re-create the "
                 "archive from the original files (zip only relative paths, no links).").format(
                     name=archive.name, raw=raw, why=why)

    if any(ord(c) < 32 for c in raw):
        raise err(bad(_("has control characters in its name")))
    norm = raw.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        raise err(bad(_("has an absolute path")))
    parts = tuple(p for p in PurePosixPath(norm).parts if p not in ("", "."))
    if ".." in parts:
        raise err(bad(_("climbs out of the destination with '..'")))
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise err(bad(_("is a symbolic link")))
    if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise err(bad(_("is a device, pipe or other special file")))
    if info.flag_bits & 0x1:
        raise err(_("archive {name}: member {raw!r} is encrypted; extract it yourself and upload the files.").format(
                      name=archive.name, raw=raw))
    return parts


#: Free space an extraction always leaves on the disk: the smaller of 1 GB and 5 % of the disk.
RESERVE_BYTES = 1e9
RESERVE_FRACTION = 0.05


def _reserve(disk_total: float) -> float:
    """Bytes an extraction leaves free on a disk of ``disk_total`` bytes."""
    return min(RESERVE_BYTES, RESERVE_FRACTION * disk_total)


def safe_extract_zip(zip_path: str | Path, dest: str | Path, *, max_files: int = 10000,
                     max_total_bytes: float = 2e9, max_ratio: float = 200,
                     max_member_bytes: float | None = None, max_archive_ratio: float | None = None,
                     error_type: type[InputError] = TrainingDataError) -> list[Path]:
    """Extract ``zip_path`` into ``dest`` (created when missing) and return the files written, in archive order.

    Refuses with ``error_type`` (default :class:`TrainingDataError`, a kind of :class:`InputError`), before anything
    is written: more than ``max_files`` members; absolute, ``..``, symlink or special-file members; encrypted or
    duplicate members; a declared total above ``max_total_bytes`` or a member above ``max_member_bytes``; a member
    (over 1 MiB) inflating more than ``max_ratio`` times its compressed size, or the whole archive more than
    ``max_archive_ratio`` (default ``max_ratio``) times its size; a total that would leave the disk with less than
    the reserve (1 GB or 5 %). While inflating (streaming, 1 MiB at a time), the bytes actually written are counted:
    a member producing more than declared or than ``max_member_bytes``, a total past ``max_total_bytes`` or past
    the disk's free space less the reserve, or a CRC error aborts and removes everything written so far. Never
    writes outside ``dest``.
    """
    zip_path, err = Path(zip_path), error_type
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise err(_("{name} is not a readable zip archive ({exc}); re-create or re-download it.").format(
                      name=zip_path.name, exc=exc)) from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > max_files:
            raise err(_("archive {name} has {infos} entries; the limit is {max_files}. Split it into smaller "
                        "archives.").format(name=zip_path.name, infos=len(infos), max_files=max_files))
        plan: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
        seen: set[str] = set()
        total = 0
        for info in infos:
            parts = _member_parts(info, err, zip_path)
            if not parts:
                continue
            key = "/".join(parts)
            if key in seen:
                raise err(_("archive {name} lists {filename!r} twice; re-create it without duplicates.").format(
                              name=zip_path.name, filename=info.filename))
            seen.add(key)
            total += info.file_size
            if max_member_bytes is not None and info.file_size > max_member_bytes:
                raise err(_("archive {name}: {filename!r} would unpack to {value:.2f} GB; the limit per file is "
                            "{value2:.2f} GB. It was not extracted.").format(
                              name=zip_path.name, filename=info.filename, value=info.file_size / 1e9,
                              value2=max_member_bytes / 1e9))
            if info.file_size > (1 << 20) and info.file_size > max_ratio * max(info.compress_size, 1):
                raise err(_("archive {name} looks like a zip bomb: {filename!r} inflates {value:.0f}x (limit "
                            "{max_ratio:.0f}x). It was not extracted.").format(
                              name=zip_path.name, filename=info.filename,
                              value=info.file_size / max(info.compress_size, 1), max_ratio=max_ratio))
            plan.append((info, parts))
        if total > max_total_bytes:
            raise err(_("archive {name} would unpack to {value:.2f} GB; the limit is {value2:.2f} GB. Split it "
                        "into smaller archives.").format(
                          name=zip_path.name, value=total / 1e9, value2=max_total_bytes / 1e9))
        packed = max(zip_path.stat().st_size, 1)
        archive_ratio = max_ratio if max_archive_ratio is None else max_archive_ratio
        if total > (1 << 20) and total > archive_ratio * packed:
            raise err(_("archive {name} looks like a zip bomb: {packed} bytes would unpack to {total} bytes "
                        "({value:.0f}x, limit {archive_ratio:.0f}x). It was not extracted.").format(
                          name=zip_path.name, packed=packed, total=total, value=total / packed,
                          archive_ratio=archive_ratio))
        dest = Path(dest)
        budget = float(max_total_bytes)
        probe = next((p for p in (dest, *dest.absolute().parents) if p.exists()), None)
        if probe is not None:
            usage = shutil.disk_usage(probe)
            room = usage.free - _reserve(usage.total)
            if room < total:
                raise err(_("archive {name} needs {value:.0f} MB but {probe} has only {value2:.0f} MB free, and "
                            "{value3:.0f} MB must stay free; free some space and try again.").format(
                              name=zip_path.name, value=total / 1e6, probe=probe, value2=usage.free / 1e6,
                              value3=_reserve(usage.total) / 1e6))
            budget = min(budget, room)
        member_cap = float("inf") if max_member_bytes is None else float(max_member_bytes)
        return _extract(zf, plan, dest, zip_path, budget, member_cap, err)


def _extract(zf: zipfile.ZipFile, plan: list[tuple[zipfile.ZipInfo, tuple[str, ...]]], dest: Path,
             archive: Path, max_total_bytes: float, member_cap: float, err: type[InputError]) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    base = dest.resolve()
    written: list[Path] = []
    made_dirs: list[Path] = []
    budget = max_total_bytes
    try:
        for info, parts in plan:
            target = base.joinpath(*parts)
            is_dir = info.is_dir()
            folder = target if is_dir else target.parent
            for p in reversed([folder, *folder.parents]):  # create level by level, checking each for links
                if p == base or base not in p.parents:
                    continue
                if p.is_symlink() or (p.exists() and not p.is_dir()):
                    raise err(_("archive {name}: {filename!r} would be written through {p}, which is not a plain "
                                "folder; extract into an empty folder.").format(
                                  name=archive.name, filename=info.filename, p=p))
                if not p.exists():
                    p.mkdir()
                    made_dirs.append(p)
            if base not in target.resolve().parents and target.resolve() != base:
                raise err(_("archive {name}: {filename!r} resolves outside {dest}; refused.").format(
                              name=archive.name, filename=info.filename, dest=dest))
            if is_dir:
                continue
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
            try:
                fd = os.open(target, flags, 0o644)
            except FileExistsError:
                raise err(_("archive {name}: {filename!r} already exists "
                            "in {dest}; extract into an empty folder.").format(
                              name=archive.name, filename=info.filename, dest=dest)) from None
            written.append(target)
            size = 0
            with os.fdopen(fd, "wb") as out, zf.open(info) as src:
                while chunk := src.read(1 << 20):
                    size += len(chunk)
                    budget -= len(chunk)
                    if size > info.file_size or size > member_cap or budget < 0:
                        raise err(_("archive {name} looks like a zip bomb: {filename!r} inflates past its declared "
                                    "size or the size limits. Nothing was kept.").format(
                                      name=archive.name, filename=info.filename))
                    out.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as exc:
        _undo(written, made_dirs)
        raise err(_("archive {name} is damaged or uses an unsupported format ({exc}); re-create it.").format(
                      name=archive.name, exc=exc)) from exc
    except OSError as exc:
        _undo(written, made_dirs)
        raise err(_("could not extract {name} into {dest} ({value}); check free space and permissions.").format(
                      name=archive.name, dest=dest, value=exc.strerror or exc)) from exc
    except BaseException:
        _undo(written, made_dirs)
        raise
    return written


def _undo(files: list[Path], dirs: list[Path]) -> None:
    """Remove what an aborted extraction wrote (files, then the folders it created, deepest first)."""
    for f in files:
        try:
            f.unlink()
        except OSError:
            pass
    for d in reversed(dirs):
        shutil.rmtree(d, ignore_errors=True)
