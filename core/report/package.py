"""One zip for the people who never open the tool: PDF, CSV, GeoJSON, heatmaps (anomaly and, for pre/post scenes,
change), their overlays and a README."""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from core.detection.findings import safe_name
from core.errors import ReportError
from core.i18n import N_, _
from core.report._io import atomic_output, check_output_path, clean_text
from core.report.context import ReportContext
from core.report.extraction import change_meta
from core.report.pdf import write_pdf
from core.report.readme import readme as package_readme
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


def write_package(ctx: ReportContext, path: str | Path, formats: Iterable[str] = FORMATS, bom: bool = True,
                  pdf_path: str | Path | None = None) -> Path:
    """Write one zip with the chosen ``formats`` (see :data:`FORMATS`) and a README.txt (in the language in use,
    :mod:`core.report.readme`); returns ``path``.

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
                ("pdf", "report.pdf", _("the damage report (BDA phase 1, physical damage)"), write_pdf),
                ("csv", "findings.csv", _("findings table for spreadsheets (columns below)"),
                 lambda c, p: write_csv(c, p, bom=bom)),
                ("geojson", "findings.geojson", _("findings as GIS polygons (WGS84)"), write_geojson)):
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
            files += [("buildings.geojson", _("every building footprint with its score, grade and review (WGS84)")),
                      ("buildings.csv", _("the buildings table: building_id, grade, score, confidence, change and "
                                          "post-only scores, review, label, area, MGRS, lat/lon"))]
        if ctx.area is not None:  # a multi-scene analysis: its findings merged across scene seams
            from core.report.area import write_area_csv, write_area_geojson

            if "csv" in wanted:
                entries.append((write_area_csv(ctx.area, work / "area_findings.csv", bom=bom), "area_findings.csv"))
                files.append(("area_findings.csv",
                              _("the area's findings, merged across scene seams (columns below)")))
            if "geojson" in wanted:
                entries.append((write_area_geojson(ctx.area, work / "area_findings.geojson"), "area_findings.geojson"))
                files.append(("area_findings.geojson", _("the area's findings as GIS polygons (WGS84)")))
        for sr in ctx.scenes:
            stem = _unique(safe_name(sr.scene_name, max_len=60), stems)  # one stem per scene for all its files
            change_overlay = change_meta(sr).get("overlay_path") if sr.change_path is not None else None
            for fmt, src, suffix, desc in (
                    ("heatmaps", sr.heatmap_path, "_heatmap.tif", N_("anomaly heatmap GeoTIFF")),
                    ("heatmaps", sr.change_path, "_change.tif", N_("change heatmap GeoTIFF (findings' source)")),
                    ("overlays", sr.overlay_path, "_overlay.png", N_("anomaly heatmap overlay PNG")),
                    ("overlays", change_overlay or None, "_change_overlay.png", N_("change heatmap overlay PNG"))):
                if fmt not in wanted or src is None:
                    continue
                label = _("{what} of scene '{name}'").format(what=_(desc), name=clean_text(sr.scene_name, 120))
                if not Path(src).is_file():
                    missing.append(label)
                    continue
                entries.append((Path(src), stem + suffix))
                files.append((entries[-1][1], label))
        readme = "README.txt"
        files.insert(0, (readme, _("this file")))
        with zipfile.ZipFile(tmp_zip, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(readme, package_readme(ctx, files, len(fc["features"]), len(left_out), missing))
            for src, arcname in entries:
                kind = zipfile.ZIP_STORED if src.suffix.lower() in _STORED else zipfile.ZIP_DEFLATED
                zf.write(src, arcname, compress_type=kind)
    return Path(path)
