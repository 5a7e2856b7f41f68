"""One zip for the people who never open the tool: PDF, CSV, GeoJSON, heatmaps (anomaly and, for pre/post scenes,
change), their overlays and a README."""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from core.detection.findings import safe_name
from core.errors import ReportError
from core.i18n import _
from core.report._io import atomic_output, check_output_path, clean_text
from core.report.columns import columns_doc
from core.report.context import ReportContext
from core.report.extraction import CHANGE, change_meta
from core.report.pdf import write_pdf
from core.report.tables import feature_collection, write_csv, write_geojson

#: What a package can hold; ``write_package(formats=...)`` takes any subset.
FORMATS: tuple[str, ...] = ("pdf", "csv", "geojson", "heatmaps", "overlays")
_STORED = {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".zip"}  # already compressed: do not deflate again


def _unique(wanted: str, used: set[str]) -> str:
    """``wanted``, or ``wanted-2``, ``wanted-3``... so that it is unique (case-insensitively) in ``used``."""
    name, k = wanted, 1
    while name.lower() in used:
        k += 1
        name = f"{wanted}-{k}"
    used.add(name.lower())
    return name


def _readme(ctx: ReportContext, files: list[tuple[str, str]], n_features: int, left_out: int,
            missing: list[str]) -> str:
    hl = clean_text(ctx.handling, 200).replace("\n", " ")
    lines = [hl, "", clean_text(ctx.title, 300), "=" * min(78, max(10, len(ctx.title))), ""]
    for k, v in (("Event / operation", ctx.event), ("Area of interest", ctx.aoi), ("Analyst", ctx.analyst),
                 ("Report date-time", ctx.report_time_utc.strftime("%Y-%m-%d %H:%M UTC")),
                 ("Model", f"{ctx.model('name')} {ctx.model('version')} (sha256 {ctx.model('sha256')})")):
        lines.append(f"{k}: {clean_text(v, 300) or '-'}")
    lines += ["", "FILES", "-----"]
    width = max((len(n) for n, _ in files), default=10)
    lines += [f"  {n:<{width}}  {d}" for n, d in files]
    if missing:
        lines += ["", "Not included (file missing when the package was made):"] + [f"  {m}" for m in missing]
    lines += ["", "FINDINGS TABLE (findings.csv; same properties in findings.geojson)", "-" * 66,
              "UTF-8 (with BOM for Excel), comma-separated, one row per finding, header row first.",
              "Rows with review_status=rejected were rejected by an analyst and are not counted in the report.",
              "Text cells starting with = + - @ or a tab/CR are prefixed with ' so spreadsheets do not run them",
              "as formulas; numeric columns are plain numbers. Columns:", "", columns_doc(), "",
              "GEOJSON", "-------",
              f"findings.geojson: RFC 7946 FeatureCollection, WGS84 longitude/latitude, {n_features} feature(s).",
              "Polygons follow the right-hand rule (exterior rings counter-clockwise) and are closed.",
              f"Findings left out because their image has no usable georeferencing: {left_out}.", "",
              "HEATMAPS AND OVERLAYS", "---------------------",
              "*_heatmap.tif: float32 GeoTIFF of calibrated anomaly scores of the post-event image alone, in the",
              "CRS and grid of the analysed image (0 = median normal pixel, 1 = 99th percentile of normal pixels;",
              "NaN = no data). *_overlay.png: RGBA rendering of it (transparent below its threshold).",
              "*_change.tif (pre/post scenes only): float32 GeoTIFF of calibrated change scores of the post-event",
              "image against its pre-event image, on the same grid (0 = median no-change pixel, 1 = 99th",
              "percentile of no-change pixels; NaN = not covered by both images). *_change_overlay.png: RGBA",
              "rendering of it (transparent below the change threshold). The findings of a pre/post scene come",
              "from its change heatmap; its anomaly heatmap is for reference and gave no counted finding.", "",
              *_area_readme(ctx),
              "WHAT EACH SCENE'S FINDINGS COME FROM", "-" * 36, *_sources(ctx), "",
              "LIMITATIONS", "-----------",
              "Findings not confirmed by an analyst are automatic extraction, not field-validated. Grades come from",
              "anomaly or change scores, not from observed structural damage. Change findings mark what differs",
              "between the pre- and post-event images (season, shadows, vehicles, construction and parallax",
              "differ too). See section 4 of the PDF.", "", hl, ""]
    return "\n".join(lines)


def _area_readme(ctx: ReportContext) -> list[str]:
    """The README's lines on the area findings (none for a report without an area)."""
    if ctx.area is None:
        return []
    from core.report.area import AREA_COLUMNS

    return ["AREA FINDINGS (area_findings.csv / area_findings.geojson)", "-" * 56,
            f"{len(ctx.area.findings)} finding(s) of the whole area of {len(ctx.area.scenes)} georeferenced scenes: "
            "findings of",
            "different scenes that touch across a scene seam are one area finding (geometry: their union; grade:",
            "the worst of its parts; counted once). Rejected findings are left out. Numbered (obj_id) as in the",
            "PDF's area section. Columns: " + ", ".join(AREA_COLUMNS) + ".",
            "scenes / parts: the scene names and per-scene finding_ids it is made of, separated by ';'.", ""]


def _sources(ctx: ReportContext) -> list[str]:
    """One README line per scene: the heatmap its findings were cut from and the threshold, with units."""
    lines = []
    for sr in ctx.scenes:
        b = ctx.basis(sr)
        thr = "threshold not recorded" if b.threshold is None else f"threshold {b.threshold:.3f} {b.units}"
        what = (f"change heatmap against pre-event image '{clean_text(sr.pre_scene_name, 120)}'"
                if b.kind == CHANGE else "anomaly heatmap")
        lines.append(f"  '{clean_text(sr.scene_name, 120)}': {what}, {thr} ({clean_text(b.method, 120)})")
    return lines


def write_package(ctx: ReportContext, path: str | Path, formats: Iterable[str] = FORMATS, bom: bool = True,
                  pdf_path: str | Path | None = None) -> Path:
    """Write one zip with the chosen ``formats`` (see :data:`FORMATS`) and a README.txt; returns ``path``.

    ``pdf_path`` names a PDF already written by :func:`write_pdf` for the same context: it is packed as is instead
    of being rendered a second time (the slow part of a package).

    Archive names are flat, ASCII and unique whatever the uploaded image names were (no path separators, no
    "..", no absolute paths). Heatmap / overlay files that no longer exist are listed in the README.
    """
    if not isinstance(ctx, ReportContext):
        raise ReportError(_("write_package needs a ReportContext, got {name}").format(name=type(ctx).__name__))
    wanted = [formats] if isinstance(formats, str) else list(formats)
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown or not wanted:
        raise ReportError(_("unknown package format(s) {value}; choose from {value2}").format(
                              value=unknown or wanted, value2=', '.join(FORMATS)))
    ctx.validate()
    check_output_path(path)
    if pdf_path is not None and not Path(pdf_path).is_file():
        raise ReportError(_("the PDF to pack ({pdf_path}) does not exist; write it with write_pdf first or leave "
                            "pdf_path out").format(pdf_path=pdf_path))
    stems: set[str] = set()
    files: list[tuple[str, str]] = []
    missing: list[str] = []
    fc, left_out = feature_collection(ctx)
    with tempfile.TemporaryDirectory(prefix="bda-report-") as tmpdir, atomic_output(path) as tmp_zip:
        work = Path(tmpdir)
        entries: list[tuple[Path, str]] = []
        for fmt, fname, desc, writer in (
                ("pdf", "report.pdf", "the damage report (BDA phase 1, physical damage)", write_pdf),
                ("csv", "findings.csv", "findings table for spreadsheets (columns below)",
                 lambda c, p: write_csv(c, p, bom=bom)),
                ("geojson", "findings.geojson", "findings as GIS polygons (WGS84)", write_geojson)):
            if fmt in wanted:
                if fmt == "pdf" and pdf_path is not None:
                    entries.append((Path(pdf_path), fname))
                    files.append((fname, desc))
                    continue
                writer(ctx, work / fname)
                entries.append((work / fname, fname))
                files.append((fname, desc))
        if ctx.buildings:  # analysed with footprints: one row / feature per building (core.buildings)
            from core.buildings import write_buildings

            gj, cs = write_buildings(ctx.buildings, work)
            entries += [(gj, "buildings.geojson"), (cs, "buildings.csv")]
            files += [("buildings.geojson", "every building footprint with its score, grade and review (WGS84)"),
                      ("buildings.csv", "the buildings table: building_id, grade, score, confidence, change and "
                                        "post-only scores, review, label, area, MGRS, lat/lon")]
        if ctx.area is not None:  # a multi-scene analysis: its findings merged across scene seams
            from core.report.area import write_area_csv, write_area_geojson

            if "csv" in wanted:
                entries.append((write_area_csv(ctx.area, work / "area_findings.csv", bom=bom), "area_findings.csv"))
                files.append(("area_findings.csv", "the area's findings, merged across scene seams (columns below)"))
            if "geojson" in wanted:
                entries.append((write_area_geojson(ctx.area, work / "area_findings.geojson"), "area_findings.geojson"))
                files.append(("area_findings.geojson", "the area's findings as GIS polygons (WGS84)"))
        for sr in ctx.scenes:
            stem = _unique(safe_name(sr.scene_name, max_len=60), stems)  # one stem per scene for all its files
            change_overlay = change_meta(sr).get("overlay_path") if sr.change_path is not None else None
            for fmt, src, suffix, desc in (
                    ("heatmaps", sr.heatmap_path, "_heatmap.tif", "anomaly heatmap GeoTIFF"),
                    ("heatmaps", sr.change_path, "_change.tif", "change heatmap GeoTIFF (findings' source)"),
                    ("overlays", sr.overlay_path, "_overlay.png", "anomaly heatmap overlay PNG"),
                    ("overlays", change_overlay or None, "_change_overlay.png", "change heatmap overlay PNG")):
                if fmt not in wanted or src is None:
                    continue
                label = f"{desc} of scene '{clean_text(sr.scene_name, 120)}'"
                if not Path(src).is_file():
                    missing.append(label)
                    continue
                entries.append((Path(src), stem + suffix))
                files.append((entries[-1][1], label))
        readme = "README.txt"
        files.insert(0, (readme, "this file"))
        with zipfile.ZipFile(tmp_zip, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(readme, _readme(ctx, files, len(fc["features"]), len(left_out), missing))
            for src, arcname in entries:
                kind = zipfile.ZIP_STORED if src.suffix.lower() in _STORED else zipfile.ZIP_DEFLATED
                zf.write(src, arcname, compress_type=kind)
    return Path(path)
