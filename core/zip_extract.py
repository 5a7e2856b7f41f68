"""Safe zip extraction of archives users hand in (training sets, xBD folders, case archives, footprints).

``safe_extract_zip`` unpacks an archive without ever writing outside the destination folder (zip-slip: absolute
paths, ``..``, symlinks) and without filling the disk (zip bombs: declared sizes, compression ratio, and the bytes
actually inflated while streaming, which a forged header cannot hide).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from core.errors import InputError, TrainingDataError
from core.i18n import _


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
