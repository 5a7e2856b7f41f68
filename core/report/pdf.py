"""The PDF damage report: :func:`write_pdf`."""

from __future__ import annotations

from pathlib import Path

from fpdf.errors import FPDFException

from core.errors import ReportError
from core.i18n import _, use
from core.report._io import atomic_output, check_output_path
from core.report.blocks import finding_details
from core.report.context import ReportContext
from core.report.layout import ReportPDF
from core.report.method import method
from core.report.rasters import SceneCache
from core.report.sections import appendix, cover, damage_table, summary
from core.report.summary import summarise


def write_pdf(ctx: ReportContext, path: str | Path, lang: str | None = None) -> Path:
    """Write the BDA phase 1 damage report as a PDF at ``path`` (atomically) and return ``path``.

    Sections: cover, executive summary with maps, phase 1 damage table, finding details with chips, method and
    limitations (with phase 2/3 fields), appendix with per-image scores. ``lang`` (``"en"``, ``"ko"``): the
    language of the report's own text (default: the language in use, :mod:`core.i18n`). Raises
    :class:`ReportError` for a context that cannot make a report or an output path that cannot be written.
    """
    with use(lang):
        return _write_pdf(ctx, path)


def _write_pdf(ctx: ReportContext, path: str | Path) -> Path:
    if not isinstance(ctx, ReportContext):
        raise ReportError(_("write_pdf needs a ReportContext, got {name}").format(name=type(ctx).__name__))
    ctx.validate()
    check_output_path(path)  # fail before the slow part
    s = summarise(ctx)
    pdf = ReportPDF(ctx.handling, ctx.title, ctx.report_time_utc)
    pdf.set_author(ctx.analyst[:200])
    pdf.set_subject(ctx.event[:200])
    with SceneCache() as cache:
        try:
            cover(pdf, ctx, s)
            summary(pdf, ctx, s, cache)
            if ctx.area is not None:
                from core.report.area_pdf import area_section

                area_section(pdf, ctx, ctx.area)
            damage_table(pdf, s)
            finding_details(pdf, ctx, s, cache)
            method(pdf, ctx, s)
            appendix(pdf, s)
        except FPDFException as err:
            raise ReportError(_("the PDF layout failed ({err}); shorten very long names or notes and retry").format(
                                  err=err)) \
                from err
    with atomic_output(path) as tmp:
        pdf.output(str(tmp))
    return Path(path)
