"""Fonts bundled with installed packages, so reports render on a fresh machine without system fonts.

DejaVu Sans (matplotlib's package data) covers Latin, Cyrillic and Greek; NanumGothic (koreanize_matplotlib's
package data) is the fallback for Hangul. Both are used in the PDF (fpdf2) and in the matplotlib figures.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path

import matplotlib

from core.errors import ReportError
from core.i18n import _

PDF_FAMILY = "DejaVu"  #: the body family (NanumGothic files under this name in a Korean report)
PDF_FALLBACK_FAMILY = "Nanum"


@functools.lru_cache(maxsize=1)
def font_files() -> dict[str, Path]:
    """Paths of the four TTF files used: ``regular``, ``bold``, ``hangul``, ``hangul_bold``."""
    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    spec = importlib.util.find_spec("koreanize_matplotlib")
    if spec is None or spec.origin is None:
        raise ReportError(_("the koreanize-matplotlib package is missing (it carries the Hangul font NanumGothic); "
                            "install the project's requirements"))
    nanum = Path(spec.origin).parent / "fonts"
    files = {"regular": ttf / "DejaVuSans.ttf", "bold": ttf / "DejaVuSans-Bold.ttf",
             "hangul": nanum / "NanumGothic.ttf", "hangul_bold": nanum / "NanumGothicBold.ttf"}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise ReportError(_("report fonts not found: {value}; reinstall matplotlib and koreanize-matplotlib").format(
                              value=', '.join(missing)))
    return files


def register_pdf_fonts(pdf: object, hangul_first: bool = False) -> None:
    """Add the report's body family :data:`PDF_FAMILY` and its fallback to an ``fpdf.FPDF`` instance.

    Default: DejaVu (regular/bold) with NanumGothic as the per-glyph fallback for Hangul in names and notes. With
    ``hangul_first`` (a Korean report) the body family is NanumGothic, which has Latin glyphs too, and DejaVu the
    fallback (Cyrillic, Greek): fpdf2 switches fonts inside a line for every fallback glyph, and a paragraph that is
    mostly fallback text was laid out with wrong widths and garbled glyphs (seen in long Korean paragraphs).
    """
    f = font_files()
    # fontTools logs a line per table it cannot subset (harmless TSI* hinting tables of NanumGothic).
    logging.getLogger("fontTools.subset").setLevel(logging.ERROR)
    body, fallback = (("hangul", "hangul_bold"), ("regular", "bold")) if hangul_first else \
        (("regular", "bold"), ("hangul", "hangul_bold"))
    pdf.add_font(PDF_FAMILY, "", f[body[0]])  # type: ignore[attr-defined]
    pdf.add_font(PDF_FAMILY, "B", f[body[1]])  # type: ignore[attr-defined]
    pdf.add_font(PDF_FALLBACK_FAMILY, "", f[fallback[0]])  # type: ignore[attr-defined]
    pdf.add_font(PDF_FALLBACK_FAMILY, "B", f[fallback[1]])  # type: ignore[attr-defined]
    pdf.set_fallback_fonts([PDF_FALLBACK_FAMILY], exact_match=False)  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=1)
def mpl_font_family() -> list[str]:
    """Font family list for matplotlib text: DejaVu Sans first, NanumGothic as per-glyph fallback."""
    from matplotlib import font_manager

    path = font_files()["hangul"]
    font_manager.fontManager.addfont(str(path))
    font_manager.fontManager.addfont(str(font_files()["hangul_bold"]))
    nanum = font_manager.FontProperties(fname=str(path)).get_name()
    return ["DejaVu Sans", nanum]
