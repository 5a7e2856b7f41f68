"""Case import: an archive made by :meth:`~core.store.archive_export.ExportMixin.export_case` becomes a new case
(layout in :mod:`core.store.archive_format`).

An import puts the carried input images into the new case's upload folder and points the analyses at them. No
imported reference leaves the workspace: an image that was not carried (a server-side file of the exporting
machine, an upload left out) is rebased to ``<upload folder>/not-carried/<name>``, where it is missing until
someone puts it there, and output paths outside the analysis folder are dropped. So an archive cannot make this
workspace read, show or re-export a file of this server (``/etc/passwd``, another case's uploads, the database).
Import extracts with :func:`core.zip_extract.safe_extract_zip` into the workspace's ``tmp/``, checks every listed
file's sha256, then inserts everything in one transaction.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from core.errors import InputError
from core.file_names import clean_name, safe_filename, unique_name
from core.i18n import N_, _
from core.store.archive_format import FORMAT, FORMAT_VERSION
from core.store.base import WorkspaceBase
from core.store.codec import PRE_SOURCE, check_name
from core.store.db import inserted_id, utc_now
from core.store.files import ANALYSIS_PREFIX, ROOT_PREFIX, encode_path, file_sha256
from core.store.review import OUTCOME_APPLIED, OUTCOME_KEPT
from core.zip_extract import safe_extract_zip

_PATH_FIELDS = ("heatmap_path", "overlay_path", "change_path")
#: Limits of a case import, on the bytes actually written: the whole case, one file, and how many times its size
#: the whole archive may inflate.
MAX_IMPORT_BYTES = 50e9
MAX_IMPORT_MEMBER_BYTES = 20e9
MAX_IMPORT_RATIO = 50

#: Folder (inside a case's upload folder) that imported references to images the archive did not carry point into.
NOT_CARRIED = "not-carried"


def _in_analysis(ref: object) -> bool:
    """Whether a stored reference names a file inside its analysis folder (``@analysis/...`` without ``..``)."""
    if not isinstance(ref, str) or not ref.startswith(ANALYSIS_PREFIX):
        return False
    rest = ref[len(ANALYSIS_PREFIX):].replace("\\", "/")
    parts = PurePosixPath(rest).parts
    return bool(parts) and not rest.startswith("/") and ".." not in parts and not any(ord(c) < 32 for c in rest)


def _imported_ref(ref: str, moved_inputs: dict[str, str], case_id: int) -> str:
    """Where an input reference of an archive points in this workspace: the carried copy, else (the image stayed
    on the exporting machine) ``<case uploads>/not-carried/<its name>``, a place inside the workspace where it is
    simply missing. Never an absolute path or a workspace path the archive chose."""
    if ref in moved_inputs:
        return moved_inputs[ref]
    name = safe_filename(PurePosixPath(ref.replace("\\", "/")).name, default="image")
    return f"{ROOT_PREFIX}files/uploads/case-{case_id}/{NOT_CARRIED}/{name}"


def _name(value: object) -> str:
    """An input or scene name from an archive, cleaned as every stored name is (no control or bidi characters)."""
    return clean_name(str(value), default="image", max_len=1000)


def _portable_result(text: str, moved_inputs: dict[str, str], case_id: int) -> str:
    """Scene JSON from an archive: keep only output files inside the analysis folder (no '..'); drop other output
    paths, which name places on the exporting machine. The source and pre-event paths point at the carried copies
    in ``moved_inputs`` (stored reference -> new one), else at where they would be in the case's upload folder."""
    d = json.loads(text)
    for name in ("scene_name", "pre_scene_name"):
        if d.get(name) is not None:
            d[name] = clean_name(str(d[name]), default="image", max_len=1000)
    for name in _PATH_FIELDS:
        if d.get(name) is not None and not _in_analysis(d.get(name)):
            d[name] = None
    if d.get("source_path") is not None:
        d["source_path"] = _imported_ref(str(d["source_path"]), moved_inputs, case_id)
    meta = d.get("meta")
    if isinstance(meta, dict):
        if meta.get(PRE_SOURCE) is not None:
            meta[PRE_SOURCE] = _imported_ref(str(meta[PRE_SOURCE]), moved_inputs, case_id)
        change = meta.get("change")
        if isinstance(change, dict) and change.get("overlay_path") is not None \
                and not _in_analysis(change["overlay_path"]):
            meta["change"] = {**change, "overlay_path": None}
    return json.dumps(d)



def _carried_list(manifest: dict[str, Any], archive_name: str) -> list[dict[str, Any]]:
    """The manifest's carried input images, each checked to be a file the manifest lists (and so verified)."""
    listed = {e["path"] for e in manifest.get("files") or []}
    carried = manifest.get("inputs") or []
    ok = isinstance(carried, list) and all(
        isinstance(c, dict) and c.get("path") in listed and isinstance(c.get("name"), str)
        and isinstance(c.get("refs"), list) and all(isinstance(r, str) for r in c["refs"]) for c in carried)
    if not ok:
        raise InputError(_("{archive_name} is not a case archive of this workbench: its manifest's list of input "
                           "images is malformed. Export the case again from its workspace.").format(
                             archive_name=archive_name))
    return carried


class ImportMixin(WorkspaceBase):
    """Import of whole cases."""

    def import_case(self, archive: Path, *, max_total_bytes: float = MAX_IMPORT_BYTES, user: str | None = None) -> int:
        """Import a case archive made by :meth:`export_case` as a new case; returns the new case id. ``user``: the
        logged-in user, recorded with the import in the case's events.

        The archive is extracted safely (no zip-slip, no zip bomb), every file is checked against the manifest's
        sha256, and all rows go in in one transaction: a bad archive leaves the workspace unchanged.
        """
        archive = Path(archive)
        if user is not None:
            user = check_name(user, N_("user name"), max_len=200)  # before anything is written
        if not archive.is_file():
            raise InputError(_("case archive {archive} does not exist or is not a file; check the path.").format(
                                 archive=archive))
        tmp = self.root / "tmp" / f"import-{uuid.uuid4().hex}"
        moved: list[Path] = []
        try:
            # one member may inflate up to deflate's ~1032x (an uncompressed, mostly-nodata input tile), but an
            # export is mostly compressed files (deflate GeoTIFF heatmaps, PNG, PDF, JPEG): the whole archive
            # inflating more than MAX_IMPORT_RATIO times is a bomb, refused before a byte is written
            safe_extract_zip(archive, tmp, max_files=200_000, max_total_bytes=max_total_bytes,
                             max_member_bytes=min(max_total_bytes, MAX_IMPORT_MEMBER_BYTES), max_ratio=2000,
                             max_archive_ratio=MAX_IMPORT_RATIO, error_type=InputError)
            manifest, data = self._read_archive(archive, tmp)
            try:
                cid = self._insert_case(data, tmp, moved, _carried_list(manifest, archive.name))
            except (KeyError, TypeError, ValueError, AttributeError, sqlite3.IntegrityError) as exc:
                if isinstance(exc, InputError):
                    raise
                raise InputError(_("case archive {name} has malformed rows ({name2}: {exc}); export the case again "
                                   "from its workspace.").format(
                                     name=archive.name, name2=type(exc).__name__, exc=exc)) from exc
            if user is not None:
                self.record_event(cid, user, "import", archive.name)  # type: ignore[attr-defined]
            return cid
        except BaseException:
            for d in moved:
                if d.is_file():
                    d.unlink(missing_ok=True)
                else:
                    self._to_trash(d)
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def _read_archive(archive: Path, tmp: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        """Manifest and rows of an extracted archive, after checking format, version and every file's sha256."""
        bad = _("{name} is not a case archive of this workbench").format(name=archive.name)
        try:
            manifest = json.loads((tmp / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(_("{bad} (no readable manifest.json): {exc}. Export the case with 'Export case'.").format(
                                 bad=bad, exc=exc)) from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise InputError(_("{bad} (its manifest does not say format {format!r}).").format(
                                 bad=bad, format=FORMAT))
        if not isinstance(manifest.get("format_version"), int) or manifest["format_version"] > FORMAT_VERSION:
            raise InputError(_("{name} was made by a newer workbench (archive format {value!r}, this one reads up "
                               "to {format_version}); upgrade the workbench to import it.").format(
                                 name=archive.name, value=manifest.get('format_version'),
                                 format_version=FORMAT_VERSION))
        entries = [manifest.get("rows")] + list(manifest.get("files") or [])
        for e in entries:
            if not isinstance(e, dict) or not isinstance(e.get("path"), str):
                raise InputError(_("{bad}: its manifest lists a malformed file entry {e!r}.").format(bad=bad, e=e))
            parts = PurePosixPath(e["path"]).parts
            if not parts or ".." in parts or e["path"].startswith("/"):
                raise InputError(_("{bad}: its manifest names an unsafe path {path!r}.").format(
                                     bad=bad, path=e['path']))
            p = tmp.joinpath(*parts)
            if not p.is_file() or p.stat().st_size != e.get("size") or file_sha256(p) != e.get("sha256"):
                raise InputError(_("case archive {name} is damaged or incomplete: {path} is missing or does not "
                                   "match its checksum. Copy or export the archive again.").format(
                                     name=archive.name, path=e['path']))
        try:
            data = json.loads((tmp / "rows.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(_("{bad}: rows.json cannot be read ({exc}).").format(bad=bad, exc=exc)) from exc
        if not isinstance(data, dict) or not isinstance(data.get("analyses"), list):
            raise InputError(_("{bad}: rows.json has no list of analyses.").format(bad=bad))
        return manifest, data

    def _place_inputs(self, cid: int, carried: list[dict[str, Any]], tmp: Path, moved: list[Path]) -> dict[str, str]:
        """Move the carried input images into case ``cid``'s upload folder; returns old reference -> new one."""
        folder = self.uploads_dir(cid)
        if not folder.exists():
            folder.mkdir(parents=True)
            moved.append(folder)  # a failed import removes the folder it made...
        new_refs: dict[str, str] = {}
        for c in carried:
            dest = folder / unique_name(safe_filename(str(c["name"]), default="image"),
                                        [p.name for p in folder.iterdir()])
            os.replace(tmp.joinpath(*PurePosixPath(c["path"]).parts), dest)
            moved.append(dest)  # ...or, in a folder that was there, only the files it put in
            ref = encode_path(dest, analysis_dir=None, root=self.root)
            assert ref is not None
            new_refs.update({str(r): ref for r in c["refs"]})
        return new_refs

    def _insert_case(self, data: dict[str, Any], tmp: Path, moved: list[Path], carried: list[dict[str, Any]]) -> int:
        now = utc_now()
        c = data["case"]
        with self._db.write() as conn:
            name = clean_name(str(c["name"]), default="imported case", max_len=200)
            taken = {r[0] for r in conn.execute("SELECT name FROM cases").fetchall()}
            if name in taken:  # two cases of one name could not be told apart in the case list
                base = f"{name} (imported {now[:10]})"
                name = next(n for n in [base] + [f"{base} {k}" for k in range(2, len(taken) + 3)] if n not in taken)
            cid = inserted_id(conn.execute(
                "INSERT INTO cases(name, event, description, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                (name, str(c.get("event", "")), str(c.get("description", "")),
                 str(c.get("created_at") or now), now)))
            refs = self._place_inputs(cid, carried, tmp, moved) if carried else {}
            for item in data["analyses"]:
                a = item["analysis"]
                old = int(a["id"])
                status = a["status"] if a["status"] in ("done", "failed", "interrupted") else "interrupted"
                aid = inserted_id(conn.execute(
                    "INSERT INTO analyses(case_id, model_json, threshold, options_json, status, owner, created_at, "
                    "updated_at, finished_at) VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?)",
                    (cid, str(a["model_json"]), a["threshold"], str(a["options_json"]), status,
                     str(a["created_at"]), now, a.get("finished_at"))))
                for i in item["inputs"]:
                    conn.execute("INSERT INTO analysis_inputs(analysis_id, position, name, path, pre_path, "
                                 "extra_json) VALUES (?, ?, ?, ?, ?, ?)",
                                 (aid, int(i["position"]), _name(i["name"]), _imported_ref(str(i["path"]), refs, cid),
                                  _imported_ref(str(i["pre_path"]), refs, cid) if i.get("pre_path") else None,
                                  str(i.get("extra_json") or "{}")))
                scene_ids = {}
                for s in item["scenes"]:
                    scene_ids[s["id"]] = inserted_id(conn.execute(
                        "INSERT INTO scenes(analysis_id, input_name, status, error, result_json, n_findings, "
                        "saved_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (aid, _name(s["input_name"]), s["status"], s.get("error"),
                         _portable_result(s["result_json"], refs, cid), int(s["n_findings"]),
                         str(s["saved_at"]))))
                prefix, new_prefix = f"A{old}-", f"A{aid}-"

                def remap(fid: str, prefix: str = prefix, new_prefix: str = new_prefix) -> str:
                    return new_prefix + (fid[len(prefix):] if fid.startswith(prefix) else fid)

                for f in item["findings"]:
                    fid = remap(str(f["id"]))
                    d = json.loads(f["data_json"])
                    d["id"] = fid
                    conn.execute(
                        "INSERT INTO findings(id, analysis_id, scene_id, position, data_json, review_status, grade, "
                        "analyst, notes, det_method, reviewed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (fid, aid, scene_ids[f["scene_id"]], int(f["position"]), json.dumps(d), f["review_status"],
                         str(f["grade"]), clean_name(str(f["analyst"]), ""), str(f["notes"]), str(f["det_method"]),
                         f.get("reviewed_at")))
                conn.executemany(
                    "INSERT INTO reviews(finding_id, analyst, at, status_before, status_after, grade_before, "
                    "grade_after, notes_before, notes_after, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(remap(str(r["finding_id"])), clean_name(str(r["analyst"]), "unknown"), str(r["at"]),
                      r["status_before"], r["status_after"], r["grade_before"], r["grade_after"], r["notes_before"],
                      r["notes_after"], OUTCOME_KEPT if r.get("outcome") == OUTCOME_KEPT else OUTCOME_APPLIED)
                     for r in item["reviews"]])
                _insert_buildings(conn, item, aid, now)
                src, dst = tmp / "files" / "analyses" / str(old), self._analysis_path(aid)
                self._to_trash(dst)
                if src.is_dir():
                    os.replace(src, dst)
                else:
                    dst.mkdir(parents=True)
                moved.append(dst)
        return cid


def _insert_buildings(conn: sqlite3.Connection, item: dict[str, Any], aid: int, now: str) -> None:
    """The buildings, their reviews and calibration of one imported analysis (archives before schema 4 have none)."""
    from core.store.buildings import building_ref

    refs: dict[str, str] = {}
    for b in item.get("buildings") or []:
        bid = str(b["building_id"])
        ref = building_ref(aid, bid)
        refs[str(b["id"])] = ref
        status = b["review_status"] if b.get("review_status") in ("unreviewed", "confirmed", "rejected") \
            else "unreviewed"
        conn.execute(
            "INSERT INTO buildings(id, analysis_id, position, building_id, data_json, review_status, analyst_grade, "
            "analyst, notes, label, reviewed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (ref, aid, int(b["position"]), bid, str(b["data_json"]), status, b.get("analyst_grade"),
             clean_name(str(b.get("analyst") or ""), ""), str(b.get("notes") or ""), b.get("label"),
             b.get("reviewed_at")))
    conn.executemany(
        "INSERT INTO building_reviews(building_ref, analyst, at, status_before, status_after, grade_before, "
        "grade_after, notes_before, notes_after, label_before, label_after, outcome) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(refs[str(r["building_ref"])], clean_name(str(r["analyst"]), "unknown"), str(r["at"]), r["status_before"],
          r["status_after"], r["grade_before"], r["grade_after"], r["notes_before"], r["notes_after"],
          r.get("label_before"), r.get("label_after"), str(r.get("outcome") or OUTCOME_APPLIED))
         for r in item.get("building_reviews") or [] if str(r["building_ref"]) in refs])
    for s in item.get("building_sets") or []:
        conn.execute("INSERT INTO building_sets(analysis_id, summary_json, calibration_json, updated_at) "
                     "VALUES (?, ?, ?, ?)", (aid, str(s["summary_json"]), s.get("calibration_json"), now))
