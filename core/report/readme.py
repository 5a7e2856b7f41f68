"""README.txt of the zip package, in the report's language (:mod:`core.i18n`: ``report --lang``, the Report page's
language). File names, column names and the values stored in the CSV / GeoJSON stay as they are in the files."""

from __future__ import annotations

import unicodedata

from core.i18n import _
from core.report._io import clean_text
from core.report.columns import columns_doc
from core.report.context import ReportContext
from core.report.extraction import CHANGE

WIDTH = 100  #: display columns of the README's wrapped paragraphs (a Hangul syllable takes two)


def _cols(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def wrap(text: str, width: int = WIDTH, indent: str = "") -> list[str]:
    """``text`` broken at spaces into lines of at most ``width`` display columns (a longer word keeps its line)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if line and _cols(indent + candidate) > width:
            lines.append(indent + line)
            line = word
        else:
            line = candidate
    if line:
        lines.append(indent + line)
    return lines


def heading(text: str) -> list[str]:
    """A heading underlined to its display width."""
    return [text, "-" * _cols(text)]


def readme(ctx: ReportContext, files: list[tuple[str, str]], n_features: int, left_out: int,
           missing: list[str]) -> str:
    """The package's README: what each file is, the findings table's columns, the heatmaps, where each scene's
    findings come from and the limitations."""
    hl = clean_text(ctx.handling, 200).replace("\n", " ")
    title = clean_text(ctx.title, 300)
    lines = [hl, "", title, "=" * min(78, max(10, _cols(title))), ""]
    for k, v in ((_("Event / operation"), ctx.event), (_("Area of interest"), ctx.aoi), (_("Analyst"), ctx.analyst),
                 (_("Report date-time"), ctx.report_time_utc.strftime("%Y-%m-%d %H:%M UTC")),
                 (_("Model"), f"{ctx.model('name')} {ctx.model('version')} (sha256 {ctx.model('sha256')})")):
        lines.append(f"{k}: {clean_text(v, 300) or '-'}")
    lines += ["", *heading(_("FILES"))]
    width = max((len(n) for n, _d in files), default=10)
    lines += [f"  {n:<{width}}  {d}" for n, d in files]
    if missing:
        lines += ["", _("Not included (file missing when the package was made):")] + [f"  {m}" for m in missing]
    lines += ["", *heading(_("FINDINGS TABLE (findings.csv; same properties in findings.geojson)")),
              *wrap(_("UTF-8 (with BOM for Excel), comma-separated, one row per finding, header row first. Rows "
                      "with review_status=rejected were rejected by an analyst and are not counted in the report. "
                      "Text cells starting with = + - @ or a tab/CR are prefixed with ' so spreadsheets do not run "
                      "them as formulas; numeric columns are plain numbers. Column names and the values in them "
                      "stay in English so that GIS tools and scripts see stable fields. Columns:")),
              "", columns_doc(), "", *heading("GEOJSON"),
              *wrap(_("findings.geojson: RFC 7946 FeatureCollection, WGS84 longitude/latitude, {n} "
                      "feature(s).").format(n=n_features)),
              *wrap(_("Polygons follow the right-hand rule (exterior rings counter-clockwise) and are closed.")),
              *wrap(_("Findings left out because their image has no usable georeferencing: {n}.").format(
                  n=left_out)), "",
              *heading(_("HEATMAPS AND OVERLAYS")),
              *wrap(_("*_heatmap.tif: float32 GeoTIFF of calibrated anomaly scores of the post-event image alone, "
                      "in the CRS and grid of the analysed image (0 = median normal pixel, 1 = 99th percentile of "
                      "normal pixels; NaN = no data). *_overlay.png: RGBA rendering of it (transparent below its "
                      "threshold).")),
              *wrap(_("*_change.tif (pre/post scenes only): float32 GeoTIFF of calibrated change scores of the "
                      "post-event image against its pre-event image, on the same grid (0 = median no-change "
                      "pixel, 1 = 99th percentile of no-change pixels; NaN = not covered by both images). "
                      "*_change_overlay.png: RGBA rendering of it (transparent below the change threshold). The "
                      "findings of a pre/post scene come from its change heatmap; its anomaly heatmap is for "
                      "reference and gave no counted finding.")), "",
              *_area(ctx),
              *heading(_("WHAT EACH SCENE'S FINDINGS COME FROM")), *_sources(ctx), "",
              *heading(_("LIMITATIONS")),
              *wrap(_("Findings not confirmed by an analyst are automatic extraction, not field-validated. Grades "
                      "come from anomaly or change scores, not from observed structural damage. Change findings "
                      "mark what differs between the pre- and post-event images (season, shadows, vehicles, "
                      "construction and parallax differ too). See section 4 of the PDF.")), "", hl, ""]
    return "\n".join(lines)


def _area(ctx: ReportContext) -> list[str]:
    """The README's lines on the area findings (none for a report without an area)."""
    if ctx.area is None:
        return []
    from core.report.area import AREA_COLUMNS

    return [*heading(_("AREA FINDINGS (area_findings.csv / area_findings.geojson)")),
            *wrap(_("{n} finding(s) of the whole area of {scenes} georeferenced scenes: findings of different "
                    "scenes that touch across a scene seam are one area finding (geometry: their union; grade: the "
                    "worst of its parts; counted once). Rejected findings are left out. Numbered (obj_id) as in "
                    "the PDF's area section.").format(n=len(ctx.area.findings), scenes=len(ctx.area.scenes))),
            *wrap(_("Columns: {columns}.").format(columns=", ".join(AREA_COLUMNS))),
            *wrap(_("scenes / parts: the scene names and per-scene finding_ids it is made of, separated by ';'.")),
            ""]


def _sources(ctx: ReportContext) -> list[str]:
    """One README line per scene: the heatmap its findings were cut from and the threshold, with units."""
    lines = []
    for sr in ctx.scenes:
        b = ctx.basis(sr)
        thr = _("threshold not recorded") if b.threshold is None else _("threshold {thr} {units}").format(
            thr=f"{b.threshold:.3f}", units=_(b.units))
        what = (_("change heatmap against pre-event image '{pre}'").format(pre=clean_text(sr.pre_scene_name, 120))
                if b.kind == CHANGE else _("anomaly heatmap"))
        lines.append(f"  '{clean_text(sr.scene_name, 120)}': {what}, {thr} ({clean_text(_(b.method), 120)})")
    return lines
