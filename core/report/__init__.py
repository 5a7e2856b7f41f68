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

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.report.columns import FINDING_COLUMNS, Column, columns_doc
    from core.report.context import ReportContext, analysis_model_info, pre_sources_of
    from core.report.extraction import Basis, scene_basis
    from core.report.package import FORMATS, write_package
    from core.report.pdf import write_pdf
    from core.report.tables import feature_collection, write_csv, write_geojson

#: Where each public name lives. Loaded on first use: the PDF writer pulls matplotlib and fpdf (about 1 CPU-s),
#: which an analysis writing only CSV and GeoJSON must not pay for (tests/test_lazy_imports.py).
_HOME = {"Basis": "extraction", "scene_basis": "extraction", "FINDING_COLUMNS": "columns", "Column": "columns",
         "columns_doc": "columns", "ReportContext": "context", "analysis_model_info": "context",
         "pre_sources_of": "context", "FORMATS": "package", "write_package": "package", "write_pdf": "pdf",
         "feature_collection": "tables", "write_csv": "tables", "write_geojson": "tables"}


def __getattr__(name: str) -> Any:
    """Import the submodule of a public name on first access (PEP 562)."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'core.report' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"core.report.{home}"), name)
    globals()[name] = value
    return value

__all__ = ["FINDING_COLUMNS", "FORMATS", "Basis", "Column", "ReportContext", "analysis_model_info", "columns_doc",
           "feature_collection", "pre_sources_of", "scene_basis", "write_csv", "write_geojson", "write_package",
           "write_pdf"]
