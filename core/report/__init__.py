"""BDA damage report export: PDF report, findings CSV and GeoJSON, and a zip package of everything.

Public API::

    ReportContext(title, handling, scenes, ...)       # what a report is built from
    write_pdf(ctx, path) -> Path
    write_csv(ctx_or_findings, path, bom=False) -> Path
    write_geojson(ctx_or_findings, path) -> Path
    write_package(ctx, path, formats=FORMATS) -> Path
    FINDING_COLUMNS                                   # the documented CSV / GeoJSON columns
    scene_basis(scene, model_info) -> Basis           # heatmap (anomaly / change) + threshold of a scene's findings

Every writer writes atomically (temporary name + rename) and raises :class:`core.errors.ReportError` for unusable
input.
"""

from core.report.columns import FINDING_COLUMNS, Column, columns_doc
from core.report.context import ReportContext, analysis_model_info, pre_sources_of
from core.report.extraction import Basis, scene_basis
from core.report.package import FORMATS, write_package
from core.report.pdf import write_pdf
from core.report.tables import feature_collection, write_csv, write_geojson

__all__ = ["FINDING_COLUMNS", "FORMATS", "Basis", "Column", "ReportContext", "analysis_model_info", "columns_doc",
           "feature_collection", "pre_sources_of", "scene_basis", "write_csv", "write_geojson", "write_package",
           "write_pdf"]
