"""Inputs read on the server: typed file, folder, glob and weights paths kept inside ``$BDA_SERVER_PATHS``, xBD
folders.

A path typed on the Analyze or Models page makes the server read files, so it must be absolute and, when
``BDA_SERVER_PATHS`` is set (folders separated by ``os.pathsep``), lie inside one of its folders once links are
resolved (:func:`check_server_path` for one image file). Folders and globs add:

* no ``..`` component (a glob cannot be resolved, so ``/allowed/*/../../etc`` would escape);
* a glob's fixed leading folder (``/data/flood`` of ``/data/flood/**/*.tif``) is what must lie inside;
* every folder the job would list and every image it would read below it, links followed as the job follows them,
  must stay inside too (a link in an allowed folder pointing at ``/etc`` is refused);
* the look stops after :data:`MAX_SCAN_ENTRIES` entries or :data:`MAX_DEPTH` folder levels, so a folder such as
  ``/`` is refused instead of being read whole, allowed folders or not.

An xBD folder (:func:`check_xbd_folder`) is named literally (no glob) and obeys the same rules: the folder, its
``images/`` and ``labels/`` and every post image and label JSON the evaluation reads must lie inside. An uploaded zip
of one (:func:`stage_xbd_upload`) is unpacked safely into the workspace and its xBD folder found inside.

The look is made when the form is sent; the job then reads the same folder or glob. Nothing here draws: the pages
show the :class:`InputError` messages.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InputError
from core.i18n import N_, _
from core.imagery.xbd import find_xbd_labels
from core.server_files.paths import ENV_SERVER_PATHS, check_server_path, server_roots  # noqa: F401 (re-exported)
from core.store import Workspace
from core.store.job_uploads import save_job_uploads

MAX_SCAN_ENTRIES = 100_000  #: most folder entries a typed folder or glob may reach
MAX_DEPTH = 64  #: most folder levels below a typed folder (deeper: a link loop, or not a data folder)
_MAGIC = "*?["
XBD_POST = "*_post_disaster.png"  #: the post-event images :func:`core.learn.evaluation.evaluate_xbd` reads
XBD_LAYOUT = ("an xBD folder holds images/<tile>_post_disaster.png and labels/<tile>_post_disaster.json "
              "(e.g. /data/xbd/harvey)")


def allowed_note() -> str:
    """One line for the page saying which server folders may be named and how to change that."""
    roots = server_roots()
    if roots:
        return (f"Server folders must lie inside: {', '.join(f'`{r}`' for r in roots)} (set by the administrator "
                f"in `{ENV_SERVER_PATHS}`).")
    return (f"`{ENV_SERVER_PATHS}` is not set: any folder this server can read may be named. Set it to the data "
            f"folders (separated by `{os.pathsep}`) to confine server paths.")


def _inside(path: Path, roots: list[Path]) -> bool:
    return not roots or any(path.is_relative_to(r) for r in roots)


def _shown(path: Path, real: Path) -> str:
    """``path``, and where it links to when that is elsewhere."""
    return str(path) if real == path else _("{path} (a link to {real})").format(path=path, real=real)


def _outside(what: str, shown: str, roots: list[Path]) -> InputError:
    return InputError(_("{what}: {shown} is outside the folders this server lets you read ({roots}). Copy the files "
                        "into one of them, or ask the administrator to add their folder to {env} (folders separated "
                        "by '{sep}').").format(what=_(what), shown=shown, roots=", ".join(map(str, roots)),
                                               env=ENV_SERVER_PATHS, sep=os.pathsep))


def _real(path: Path, what: str) -> Path:
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


def _confined(text: str, what: str, example: str) -> tuple[Path, list[Path]]:
    """A typed path (see :func:`_typed`) whose real location, links resolved, lies inside the allowed folders;
    returns it with those folders."""
    path = _typed(text, what, example)
    roots = server_roots()
    real = _real(path, what)
    if not _inside(real, roots):
        raise _outside(what, _shown(path, real), roots)
    return path, roots


def check_weights_file(text: str) -> Path:
    """A backbone weights file typed on the page: absolute, no ``..``, inside ``$BDA_SERVER_PATHS`` (when set) once
    links are resolved, an existing readable file. Raises :class:`InputError` saying what is wrong."""
    what = N_("Weights file")
    path, roots = _confined(text, what, "/data/weights/resnet18.pth")
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
    roots = server_roots()
    parts = path.parts
    magic = next((i for i, p in enumerate(parts) if any(c in p for c in _MAGIC)), None)
    base = path if magic is None else Path(*parts[:magic])
    pattern = [] if magic is None else list(parts[magic:])
    real = _real(base, what)
    if not _inside(real, roots):
        raise _outside(what, _shown(base, real), roots)
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
        real = _real(folder, what)
        if not _inside(real, roots):
            raise _outside(what, _shown(folder, real), roots)
        try:
            with os.scandir(folder) as it:
                entries = [(e.name, *_kind(e)) for e in it]
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
                real = _real(f, what)
                if not _inside(real, roots):
                    raise _outside(what, _shown(f, real), roots)
                images.add(real)
    return len(images)


def _kind(entry: os.DirEntry[str]) -> tuple[bool, bool]:
    """(is a folder, is a file), links followed as the job's glob follows them; a broken link is neither."""
    try:
        return entry.is_dir(), entry.is_file()
    except OSError:
        return False, False


# -- xBD folders ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class XbdFolder:
    """A checked xBD folder: its post images and which of them have their label JSON."""

    root: Path
    posts: int  #: post-event images (``images/*_post_disaster.png``)
    unlabelled: list[str] = field(default_factory=list)  #: post images without a label JSON

    def note(self) -> str:
        """A remark for the job's result ("" when every post image has its labels)."""
        if not self.unlabelled:
            return ""
        names = ", ".join(self.unlabelled[:3]) + (" …" if len(self.unlabelled) > 3 else "")
        return (f"{len(self.unlabelled)} of {self.posts} post images have no label JSON ({names}): they add no "
                "buildings, only their image count")


def check_xbd_folder(text: str, what: str = N_("xBD folder")) -> XbdFolder:
    """A server xBD folder typed on the page (``images/`` + ``labels/``), checked with the server-path rules of the
    module notes and for post images and label JSONs. Raises :class:`InputError` saying what is wrong."""
    path, roots = _confined(text, what, "/data/xbd/harvey")
    if not path.exists():
        raise InputError(_("{what}: {path} does not exist on the server; check the spelling").format(
                             what=_(what), path=path))
    if not path.is_dir():
        raise InputError(_("{what}: {path} is not a folder; {xbd_layout}").format(
                             what=_(what), path=path, xbd_layout=XBD_LAYOUT))
    return xbd_contents(path, roots, what)


def xbd_contents(root: Path, roots: list[Path], what: str = N_("xBD folder")) -> XbdFolder:
    """Check that ``root`` holds ``images/`` with post images and ``labels/`` with their label JSONs, every one
    inside ``roots`` once links are resolved (no confinement when ``roots`` is empty). Raises :class:`InputError`."""
    images, labels = root / "images", root / "labels"
    lacking = [f"{d.name}/" for d in (images, labels) if not d.is_dir()]
    if lacking:
        hint = ("; " + _("name the folder above it ({parent})").format(parent=root.parent)
                if root.name.lower() in ("images", "labels") else "")
        raise InputError(_("{what}: {root} has no {value} folder{hint}; {xbd_layout}").format(
                             what=_(what), root=root, value=' and no '.join(lacking), hint=hint,
                             xbd_layout=XBD_LAYOUT))
    for d in (images, labels):
        real = _real(d, what)
        if not _inside(real, roots):
            raise _outside(what, _shown(d, real), roots)
    try:
        with os.scandir(images) as it:
            names = []
            for k, entry in enumerate(it):
                if k >= MAX_SCAN_ENTRIES:
                    raise InputError(_("{what}: {images} holds more than {max_scan_entries:,} entries; evaluate a "
                                       "smaller xBD folder (one disaster)").format(
                                         what=_(what), images=images, max_scan_entries=MAX_SCAN_ENTRIES))
                if fnmatch.fnmatchcase(entry.name, XBD_POST) and _kind(entry)[1]:
                    names.append(entry.name)
    except OSError as exc:
        raise InputError(_("{what}: {images} cannot be read ({value})").format(
                             what=_(what), images=images, value=exc.strerror or exc)) from exc
    if not names:
        raise InputError(_("{what}: no post-event images ({xbd_post}) in {images}; {xbd_layout}").format(
                             what=_(what), xbd_post=XBD_POST, images=images, xbd_layout=XBD_LAYOUT))
    unlabelled = []
    for name in sorted(names):
        post = images / name
        for f in (post, find_xbd_labels(post)):
            if f is None:
                unlabelled.append(name)
                continue
            real = _real(f, what)
            if not _inside(real, roots):
                raise _outside(what, _shown(f, real), roots)
    if len(unlabelled) == len(names):
        raise InputError(_("{what}: none of the {names} post images in {images} has its label JSON in {labels} "
                           "(e.g. {stem}.json); the building AUROC needs the xBD labels").format(
                             what=_(what), names=len(names), images=images, labels=labels, stem=Path(names[0]).stem))
    return XbdFolder(root=root, posts=len(names), unlabelled=unlabelled)


def find_xbd_root(folder: Path, what: str = N_("xBD zip")) -> Path:
    """The one folder at or below ``folder`` (an unpacked upload) that holds both ``images/`` and ``labels/``."""
    found = [d for d in (folder, *sorted(folder.rglob("*")))
             if d.is_dir() and "__MACOSX" not in d.parts and (d / "images").is_dir() and (d / "labels").is_dir()]
    if not found:
        raise InputError(_("{what}: the archive holds no folder with both images/ and labels/; zip the xBD folder "
                           "itself ({xbd_layout})").format(what=_(what), xbd_layout=XBD_LAYOUT))
    if len(found) > 1:
        names = ", ".join(str(d.relative_to(folder)) or "." for d in found[:4])
        raise InputError(_("{what}: the archive holds {found} xBD folders ({names}); zip one of them").format(
                             what=_(what), found=len(found), names=names))
    return found[0]


def stage_xbd_upload(ws: Workspace, upload: Any) -> tuple[Path, XbdFolder]:
    """Stream an uploaded zip of an xBD folder into a fresh workspace folder, unpack it safely
    (:func:`core.zip_extract.safe_extract_zip`), find and check the xBD folder in it. Returns (the staged folder, to
    remove if the job is refused; the checked xBD folder); on an error nothing is left behind."""
    if Path(str(upload.name)).suffix.lower() != ".zip":
        raise InputError(_("xBD zip: {name} is not a .zip; upload a zip "
                           "of the folder holding images/ and labels/").format(
                             name=upload.name))
    dest = save_job_uploads(ws, "eval-xbd", [upload])
    assert dest is not None
    try:
        return dest, xbd_contents(find_xbd_root(dest), [], N_("xBD zip"))
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
