"""xBD folders named on the Models page for a building-level evaluation: the layout (``images/`` with post-event
PNGs, ``labels/`` with their JSONs) checked, a typed folder confined by the server-path rules of
:mod:`core.server_files.typed_paths` (the folder, ``images/``, ``labels/`` and every post image and label JSON the
evaluation reads must lie inside), and an uploaded zip of one staged in the workspace with its xBD folder found.
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
from core.server_files.paths import inside_roots
from core.server_files.typed_paths import (
    MAX_SCAN_ENTRIES,
    confined_path,
    entry_kind,
    outside_error,
    real_path,
    shown_path,
)
from core.store import Workspace
from core.store.job_uploads import save_job_uploads

XBD_POST = "*_post_disaster.png"  #: the post-event images :func:`core.learn.evaluation.evaluate_xbd` reads
XBD_LAYOUT = ("an xBD folder holds images/<tile>_post_disaster.png and labels/<tile>_post_disaster.json "
              "(e.g. /data/xbd/harvey)")


@dataclass(frozen=True)
class XbdFolder:
    """A checked xBD folder: its post images and which of them have their label JSON."""

    root: Path
    posts: int  #: post-event images (``images/*_post_disaster.png``)
    unlabelled: list[str] = field(default_factory=list)  #: post images without a label JSON


def check_xbd_folder(text: str, what: str = N_("xBD folder")) -> XbdFolder:
    """A server xBD folder typed on the page (``images/`` + ``labels/``), checked with the server-path rules of
    :mod:`core.server_files.typed_paths` and for post images and label JSONs. Raises :class:`InputError` saying
    what is wrong."""
    path, roots = confined_path(text, what, "/data/xbd/harvey")
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
        real = real_path(d, what)
        if not inside_roots(real, roots):
            raise outside_error(what, shown_path(d, real), roots)
    try:
        with os.scandir(images) as it:
            names = []
            for k, entry in enumerate(it):
                if k >= MAX_SCAN_ENTRIES:
                    raise InputError(_("{what}: {images} holds more than {max_scan_entries:,} entries; evaluate a "
                                       "smaller xBD folder (one disaster)").format(
                                         what=_(what), images=images, max_scan_entries=MAX_SCAN_ENTRIES))
                if fnmatch.fnmatchcase(entry.name, XBD_POST) and entry_kind(entry)[1]:
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
            real = real_path(f, what)
            if not inside_roots(real, roots):
                raise outside_error(what, shown_path(f, real), roots)
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
