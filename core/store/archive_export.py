"""Case export: one zip with a manifest, the case's database rows and its analyses' files (layout in
:mod:`core.store.archive_format`).

An export carries the case's own uploads, and with ``inputs="all"`` the server-side files that pass the
``BDA_SERVER_PATHS`` rules at export time (``check_server_path``); never other workspace files. It is written
atomically: no half archive on a crash.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import core
from core.errors import InputError, WorkspaceError
from core.file_names import safe_filename
from core.i18n import _
from core.server_files.paths import server_path_allowed
from core.store.archive_format import FORMAT, FORMAT_VERSION, INPUT_MODES
from core.store.base import WorkspaceBase
from core.store.codec import PRE_SOURCE
from core.store.db import loads_row, utc_now
from core.store.files import ANALYSIS_PREFIX, ROOT_PREFIX, decode_path, file_sha256, inside_folder
from core.store.schema import SCHEMA_VERSION


def _rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    return [loads_row(r) for r in conn.execute(sql, params).fetchall()]  # type: ignore[misc]


def _input_refs(bundle: list[dict[str, Any]]) -> list[str]:
    """Every stored reference to an input image in the rows of a case (inputs, pre-event inputs, scene sources)."""
    refs: list[str] = []
    for item in bundle:
        for i in item["inputs"]:
            refs += [r for r in (i.get("path"), i.get("pre_path")) if isinstance(r, str)]
        for sc in item["scenes"]:
            d = json.loads(sc["result_json"])
            meta = d.get("meta") if isinstance(d.get("meta"), dict) else {}
            refs += [r for r in (d.get("source_path"), meta.get(PRE_SOURCE)) if isinstance(r, str)]
    return list(dict.fromkeys(refs))


class ExportMixin(WorkspaceBase):
    """Export of whole cases."""

    def _carried_inputs(self, case_id: int, bundle: list[dict[str, Any]],
                        inputs: str) -> list[tuple[Path, list[str]]]:
        """The input files an export carries, each with the stored references that name it: those in the case's
        upload folder for ``inputs="workspace"``; for ``"all"`` also server-side files outside the workspace that
        pass the ``BDA_SERVER_PATHS`` rules now; none for ``"none"``. Other files of the workspace (its database,
        other cases' uploads) are never carried, whatever a stored reference says."""
        if inputs not in INPUT_MODES:
            raise InputError(_("inputs must be one of {value}; got {inputs!r}.").format(
                                 value=', '.join(INPUT_MODES), inputs=inputs))
        uploads = self.uploads_dir(case_id)
        by_file: dict[Path, list[str]] = {}
        for ref in _input_refs(bundle) if inputs != "none" else []:
            if ref.startswith(ANALYSIS_PREFIX) or any(ord(c) < 32 for c in ref):
                continue
            path = decode_path(ref, analysis_dir=None, root=self.root)
            if path is None or not path.is_file():
                continue
            if inside_folder(path, uploads):
                ok = True
            elif inside_folder(path, self.root) or ref.startswith(ROOT_PREFIX):
                ok = False
            else:
                ok = inputs == "all" and path.is_absolute() and server_path_allowed(path)
            if ok:
                by_file.setdefault(path.resolve(), []).append(ref)
        return list(by_file.items())

    def export_case(self, case_id: int, dest: Path, *, inputs: str = "workspace", user: str | None = None) -> Path:
        """Write the case to one zip and return its path. ``dest`` is the zip's path, or an existing folder in
        which ``case-<id>-<name>-<date>.zip`` is created. Written atomically (no half archive on a crash).

        ``inputs``: which input images travel with it: ``"workspace"`` (the default) those uploaded into the
        workspace, ``"all"`` also the server-side files the analyses read (may be large), ``"none"`` none.
        ``user``: the logged-in user, recorded with the export in the case's events.
        """
        case = self.get_case(case_id)  # type: ignore[attr-defined]
        cid = case["id"]
        with self._db.snapshot() as conn:
            analyses = _rows(conn, "SELECT * FROM analyses WHERE case_id=? ORDER BY id", (cid,))
            bundle = []
            for a in analyses:
                aid = a["id"]
                a.pop("owner", None)
                bundle.append({
                    "analysis": a,
                    "inputs": _rows(conn, "SELECT * FROM analysis_inputs WHERE analysis_id=? ORDER BY position",
                                    (aid,)),
                    "scenes": _rows(conn, "SELECT * FROM scenes WHERE analysis_id=? ORDER BY id", (aid,)),
                    "findings": _rows(conn, "SELECT * FROM findings WHERE analysis_id=? ORDER BY scene_id, position",
                                      (aid,)),
                    "reviews": _rows(conn, "SELECT r.* FROM reviews r JOIN findings f ON f.id = r.finding_id "
                                     "WHERE f.analysis_id=? ORDER BY r.id", (aid,)),
                    # per-building assessment (schema 4): records, reviews and labels, the calibration
                    "buildings": _rows(conn, "SELECT * FROM buildings WHERE analysis_id=? ORDER BY position", (aid,)),
                    "building_reviews": _rows(conn, "SELECT r.* FROM building_reviews r JOIN buildings b ON "
                                              "b.id = r.building_ref WHERE b.analysis_id=? ORDER BY r.id", (aid,)),
                    "building_sets": _rows(conn, "SELECT * FROM building_sets WHERE analysis_id=?", (aid,)),
                })
        case_row = {k: case[k] for k in ("id", "name", "event", "description", "created_at", "updated_at")}
        rows_bytes = json.dumps({"case": case_row, "analyses": bundle}).encode()
        files = []
        for a in analyses:
            folder = self._analysis_path(a["id"])
            if folder.is_dir():
                for p in sorted(folder.rglob("*")):
                    if p.is_file() and not p.is_symlink():
                        rel = p.relative_to(folder).as_posix()
                        files.append((p, f"files/analyses/{a['id']}/{rel}"))
        carried = []
        for n, (p, refs) in enumerate(self._carried_inputs(cid, bundle, inputs), start=1):
            arc = f"files/inputs/{n}-{safe_filename(p.name, default='image')}"
            files.append((p, arc))
            carried.append({"path": arc, "name": p.name, "refs": refs})
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "schema_version": SCHEMA_VERSION,
            "workbench_version": core.__version__, "exported_at": utc_now(),
            "case": {k: case[k] for k in ("id", "name", "event")}, "analyses": [a["id"] for a in analyses],
            "inputs_included": inputs, "inputs": carried,
            "note": "heatmaps, overlays and reports are included; input images as 'inputs' lists them (the others "
                    "are referenced by their path on the exporting machine)",
            "rows": {"path": "rows.json", "size": len(rows_bytes), "sha256": hashlib.sha256(rows_bytes).hexdigest()},
            "files": [{"path": arc, "size": p.stat().st_size, "sha256": file_sha256(p)} for p, arc in files],
        }
        dest = Path(dest)
        if dest.is_dir():
            day = datetime.now(timezone.utc).strftime("%Y%m%d")
            dest = dest / safe_filename(f"case-{cid}-{case['name']}-{day}.zip")
        tmp = None
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o644)  # an archive is meant to be handed on, unlike mkstemp's private 0600
            with os.fdopen(fd, "wb") as fh:
                with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                    zf.writestr("manifest.json", json.dumps(manifest, indent=2))
                    zf.writestr("rows.json", rows_bytes)
                    for p, arc in files:
                        zf.write(p, arc)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
            tmp = None
        except OSError as exc:
            raise WorkspaceError(_("could not write the case archive {dest} ({value}); check that the folder is "
                                   "writable and has free space.").format(
                                       dest=dest, value=exc.strerror or exc)) from exc
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
        if user is not None:
            self.record_event(cid, user, "export", f"{dest.name} (images: {inputs})")  # type: ignore[attr-defined]
        return dest
