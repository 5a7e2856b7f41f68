"""Paths users type on a page for the server to read: image files, folders and globs, weights files, checked
against the ``$BDA_SERVER_PATHS`` rules (:mod:`core.server_files.paths`).

A path typed on the Analyze or Models page makes the server read files, so it must be absolute and, when
``BDA_SERVER_PATHS`` is set (folders separated by ``os.pathsep``), lie inside one of its folders once links are
resolved (:func:`~core.server_files.paths.check_server_path` for one image file). Folders and globs add:

* no ``..`` component (a glob cannot be resolved, so ``/allowed/*/../../etc`` would escape);
* a glob's fixed leading folder (``/data/flood`` of ``/data/flood/**/*.tif``) is what must lie inside;
* every folder the job would list and every image it would read below it, links followed as the job follows them,
  must stay inside too (a link in an allowed folder pointing at ``/etc`` is refused);
* the look stops after :data:`MAX_SCAN_ENTRIES` entries or :data:`MAX_DEPTH` folder levels, so a folder such as
  ``/`` is refused instead of being read whole, allowed folders or not.

The look is made when the form is sent; the job then reads the same folder or glob. Nothing here draws: the pages
show the :class:`InputError` messages. xBD folders obey the same rules (:mod:`core.server_files.xbd_folders`).
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from core.errors import InputError
from core.i18n import N_, _
from core.server_files.paths import ENV_SERVER_PATHS, allowed_roots, inside_roots, server_roots

MAX_SCAN_ENTRIES = 100_000  #: most folder entries a typed folder or glob may reach
MAX_DEPTH = 64  #: most folder levels below a typed folder (deeper: a link loop, or not a data folder)
_MAGIC = "*?["


def allowed_note() -> str:
    """One line for the page saying which server folders may be named and how to change that."""
    try:
        roots = server_roots()
    except InputError as exc:  # a team server that opens no folder
        return str(exc)
    if roots:
        return (f"Server folders must lie inside: {', '.join(f'`{r}`' for r in roots)} (set by the administrator "
                f"in `{ENV_SERVER_PATHS}`).")
    return (f"`{ENV_SERVER_PATHS}` is not set: any folder this server can read may be named. Set it to the data "
            f"folders (separated by `{os.pathsep}`) to confine server paths.")


def shown_path(path: Path, real: Path) -> str:
    """``path``, and where it links to when that is elsewhere."""
    return str(path) if real == path else _("{path} (a link to {real})").format(path=path, real=real)


def outside_error(what: str, shown: str, roots: list[Path]) -> InputError:
    """The refusal of a path outside the allowed folders, saying what to do."""
    return InputError(_("{what}: {shown} is outside the folders this server lets you read ({roots}). Copy the files "
                        "into one of them, or ask the administrator to add their folder to {env} (folders separated "
                        "by '{sep}').").format(what=_(what), shown=shown, roots=", ".join(map(str, roots)),
                                               env=ENV_SERVER_PATHS, sep=os.pathsep))


def real_path(path: Path, what: str) -> Path:
    """``path`` with every link resolved; a link loop is the user's error, not a crash."""
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:
        raise InputError(_("{what}: {path} cannot be resolved ({exc}); is it a link loop?").format(
                             what=_(what), path=path, exc=exc)) from exc


def _typed(text: str, what: str, example: str) -> Path:
    raw = (text or "").strip().strip("'\"")
    if not raw:
        raise InputError(_("{what}: type the full path on the server, e.g. {example}").format(
                             what=_(what), example=example))
    if any(ord(c) < 32 for c in raw):
        raise InputError(_("{what}: the path contains control characters; type it again").format(what=_(what)))
    try:
        path = Path(raw).expanduser()
    except RuntimeError as exc:  # ~name of an unknown user
        raise InputError(_("{what}: {raw!r} names an unknown home folder; give the full path").format(
                             what=_(what), raw=raw)) from exc
    if not path.is_absolute():
        raise InputError(_("{what}: {raw!r} is not an absolute path; give the full path, starting with /").format(
                             what=_(what), raw=raw))
    if ".." in path.parts:
        raise InputError(_("{what}: {raw!r} contains '..'; give the folder's own full path, without '..'").format(
                             what=_(what), raw=raw))
    return path


def confined_path(text: str, what: str, example: str) -> tuple[Path, list[Path]]:
    """A typed path (see :func:`_typed`) whose real location, links resolved, lies inside the allowed folders;
    returns it with those folders."""
    path = _typed(text, what, example)
    real = real_path(path, what)
    roots = allowed_roots(real)
    if not inside_roots(real, roots):
        raise outside_error(what, shown_path(path, real), roots)
    return path, roots


def check_weights_file(text: str) -> Path:
    """A backbone weights file typed on the page: absolute, no ``..``, inside ``$BDA_SERVER_PATHS`` (when set) once
    links are resolved, an existing readable file. Raises :class:`InputError` saying what is wrong."""
    what = N_("Weights file")
    path, roots = confined_path(text, what, "/data/weights/resnet18.pth")
    if not path.is_file():
        raise InputError(_("{what}: {path} is not a file on the server; check the spelling (a torchvision "
                           "state_dict saved with torch.save(model.state_dict()))").format(what=_(what), path=path))
    if not os.access(path, os.R_OK):
        raise InputError(_("{what}: {path} is not readable by the workbench (permissions)").format(
                             what=_(what), path=path))
    return path


def check_image_source(text: str, what: str) -> str:
    """A server file, folder or glob of images typed on the page, checked (see the module notes) and returned as
    the job input spec. Raises :class:`InputError` saying what is wrong and what is allowed."""
    from core.learn.samples import (
        IMAGE_EXTS,  # the job's own list; core.learn.samples imports torch, so only when a form is sent
    )

    path = _typed(text, what, "/data/flood/normal or /data/flood/**/*.tif")
    parts = path.parts
    magic = next((i for i, p in enumerate(parts) if any(c in p for c in _MAGIC)), None)
    base = path if magic is None else Path(*parts[:magic])
    pattern = [] if magic is None else list(parts[magic:])
    real = real_path(base, what)
    roots = allowed_roots(real)
    if not inside_roots(real, roots):
        raise outside_error(what, shown_path(base, real), roots)
    if not base.exists():
        raise InputError(_("{what}: {base} does not exist on the server; check the spelling").format(
                             what=_(what), base=base))
    if magic is None and base.is_file():
        if not os.access(base, os.R_OK):
            raise InputError(_("{what}: {base} is not readable by the workbench (permissions)").format(
                                 what=_(what), base=base))
        return str(path)
    if not base.is_dir():
        raise InputError(_("{what}: {base} is neither a file nor a folder").format(what=_(what), base=base))
    if pattern and pattern[-1] == "**":
        pattern.append("*")  # a trailing ** lists everything below it, as **/* does
    images = _scan(base, pattern or ["**", "*"], roots, what)
    if not images:
        raise InputError(_("{what}: no images in {path} (looked for {value})").format(
                             what=_(what), path=path, value=', '.join(sorted(IMAGE_EXTS))))
    return str(path)


def _scan(base: Path, pattern: list[str], roots: list[Path], what: str) -> int:
    """Walk what ``pattern`` (glob components below ``base``) can reach, following links as :mod:`glob` does and
    matching at least what it matches; refuse what leaves ``roots`` or is too big. Returns the images matched."""
    from core.learn.samples import IMAGE_EXTS

    listed: dict[Path, list[tuple[str, bool, bool]]] = {}
    count = [0]

    def listing(folder: Path, depth: int) -> list[tuple[str, bool, bool]]:
        if folder in listed:
            return listed[folder]
        if depth > MAX_DEPTH:
            raise InputError(_("{what}: folders nest more than {max_depth} levels below {base} (a link loop?); "
                               "name the folder that holds the images").format(
                                 what=_(what), max_depth=MAX_DEPTH, base=base))
        real = real_path(folder, what)
        if not inside_roots(real, roots):
            raise outside_error(what, shown_path(folder, real), roots)
        try:
            with os.scandir(folder) as it:
                entries = [(e.name, *entry_kind(e)) for e in it]
        except OSError:
            entries = []  # unreadable: the job skips it too
        count[0] += len(entries)
        if count[0] > MAX_SCAN_ENTRIES:
            raise InputError(_("{what}: {base} holds more than {max_scan_entries:,} files and folders; name the "
                               "folder that holds the images (a narrower folder or glob)").format(
                                 what=_(what), base=base, max_scan_entries=MAX_SCAN_ENTRIES))
        listed[folder] = entries
        return entries

    images: set[Path] = set()
    stack: list[tuple[Path, int, int]] = [(base, 0, 0)]  # folder, index into pattern, depth
    seen: set[tuple[Path, int]] = set()
    while stack:
        folder, i, depth = stack.pop()
        if (folder, i) in seen:
            continue
        seen.add((folder, i))
        part, last = pattern[i], i == len(pattern) - 1
        if part == "**":
            stack.append((folder, i + 1, depth))  # zero folders
            stack += [(folder / n, i, depth + 1) for n, is_dir, _ in listing(folder, depth) if is_dir]
            continue
        for name, is_dir, is_file in listing(folder, depth):
            if not fnmatch.fnmatchcase(name, part):
                continue
            if not last:
                if is_dir:
                    stack.append((folder / name, i + 1, depth + 1))
            elif is_file and Path(name).suffix.lower() in IMAGE_EXTS:  # what the job reads
                f = folder / name
                real = real_path(f, what)
                if not inside_roots(real, roots):
                    raise outside_error(what, shown_path(f, real), roots)
                images.add(real)
    return len(images)


def entry_kind(entry: os.DirEntry[str]) -> tuple[bool, bool]:
    """(is a folder, is a file), links followed as the job's glob follows them; a broken link is neither."""
    try:
        return entry.is_dir(), entry.is_file()
    except OSError:
        return False, False
