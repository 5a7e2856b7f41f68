"""The report's page frame on top of fpdf2: handling line on every page, headings, paragraphs, tables, images."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime

from fpdf import FPDF
from fpdf.enums import TableBordersLayout
from fpdf.fonts import FontFace
from PIL import Image

from core.i18n import _, get_lang
from core.report._io import clean_text
from core.report.fonts import PDF_FAMILY, register_pdf_fonts

FONT = PDF_FAMILY
GREY = (90, 90, 90)
HEAD_FILL = (225, 230, 238)
CELL_PAD = 2.8  #: mm a table cell needs beyond its text (padding and borders)


class ReportPDF(FPDF):
    """A4 portrait document whose header and footer carry the handling line on every page."""

    def __init__(self, handling: str, title: str, when: datetime) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        register_pdf_fonts(self, hangul_first=get_lang() == "ko")
        self.handling = clean_text(handling, 160).replace("\n", " ")
        self.doc_title = clean_text(title, 120).replace("\n", " ")
        self.when = when
        self.set_margins(12, 20, 12)
        self.set_auto_page_break(True, margin=18)
        self.alias_nb_pages()
        self.set_title(self.doc_title)
        self.set_creation_date(when)
        self.set_creator("BDA workbench (core.report)")
        self.figure_no = 0

    def header(self) -> None:
        """Handling line centred at the top; running title and date from page 2 on."""
        self.set_y(6)
        self.set_font(FONT, "B", 8.5)
        self.set_text_color(0, 0, 0)
        self.cell(0, 4, self.handling, align="C", new_x="LMARGIN", new_y="NEXT")
        if self.page_no() > 1:
            self.set_font(FONT, "", 7)
            self.set_text_color(*GREY)
            y = self.get_y() + 0.5
            self.set_y(y)
            self.cell(self.epw * 0.7, 3.5, clean_text(self.doc_title, 90), new_x="RIGHT", new_y="TOP")
            self.cell(0, 3.5, self.when.strftime("%Y-%m-%d %H:%M UTC"), align="R", new_x="LMARGIN", new_y="NEXT")
            self.set_draw_color(170, 170, 170)
            self.line(self.l_margin, self.get_y() + 0.5, self.w - self.r_margin, self.get_y() + 0.5)
            self.set_text_color(0, 0, 0)
        self.set_y(20)

    def footer(self) -> None:
        """Handling line centred at the bottom, page number on the right."""
        self.set_y(-13)
        self.set_font(FONT, "", 7)
        self.set_text_color(*GREY)
        self.cell(0, 3.5, _("Page {page} of {pages}").format(page=self.page_no(), pages="{nb}"), align="R",
                  new_x="LMARGIN", new_y="TOP")
        self.set_x(self.l_margin)
        self.cell(0, 3.5, _("Automatic extraction unless marked confirmed"), align="L", new_x="LMARGIN",
                  new_y="NEXT")
        self.set_font(FONT, "B", 8.5)
        self.set_text_color(0, 0, 0)
        self.cell(0, 4.5, self.handling, align="C")

    # -- text ------------------------------------------------------------------------------------------------
    def h1(self, text: str, new_page: bool = True) -> None:
        """Section heading (also a PDF bookmark)."""
        if new_page:
            self.add_page()
        self.start_section(text, level=0)
        self.set_font(FONT, "B", 14)
        self.set_text_color(20, 40, 70)
        self.multi_cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")
        self.set_text_color(0, 0, 0)
        self.ln(1.5)

    def h2(self, text: str) -> None:
        """Sub-heading, kept with at least a few lines of what follows."""
        if self.will_page_break(20):
            self.add_page()
        self.ln(1.5)
        self.set_font(FONT, "B", 10.5)
        self.multi_cell(0, 5.5, text, new_x="LMARGIN", new_y="NEXT")
        self.ln(0.5)

    def para(self, text: str, size: float = 9, bold: bool = False, colour: tuple[int, int, int] = (0, 0, 0),
             h: float = 4.6) -> None:
        """A wrapped paragraph of literal text (never markup)."""
        self.set_font(FONT, "B" if bold else "", size)
        self.set_text_color(*colour)
        self.multi_cell(0, h, clean_text(text), align="L", new_x="LMARGIN", new_y="NEXT")
        self.set_text_color(0, 0, 0)

    def bullets(self, items: Sequence[str], size: float = 9) -> None:
        """A bulleted list."""
        self.set_font(FONT, "", size)
        for item in items:
            self.set_x(self.l_margin + 2)
            self.cell(4, 4.6, "•")
            self.multi_cell(0, 4.6, clean_text(item), align="L", new_x="LMARGIN", new_y="NEXT")

    # -- tables ----------------------------------------------------------------------------------------------
    def grid(self, rows: Sequence[Sequence[str]], widths: Sequence[float], size: float = 7.5,
             header: bool = True, align: str = "LEFT", line_height: float | None = None) -> None:
        """A table; long tables continue on the next page with the header row repeated."""
        self.set_font(FONT, "", size)
        self.set_fill_color(255, 255, 255)
        self.set_draw_color(160, 160, 160)
        self.set_line_width(0.15)
        style = FontFace(emphasis="BOLD", fill_color=HEAD_FILL)
        with self.table(col_widths=tuple(widths), width=sum(widths), align="LEFT", text_align=align,
                        first_row_as_headings=header, headings_style=style, repeat_headings=1,
                        line_height=line_height or size * 0.48, padding=(0.8, 1.0),
                        borders_layout=TableBordersLayout.HORIZONTAL_LINES) as table:
            for row in rows:
                table.row([clean_text(c) for c in row])
        self.ln(2)

    def fit_widths(self, rows: Sequence[Sequence[str]], size: float, no_wrap: dict[int, float],
                   fixed: dict[int, float], min_last: float = 20.0) -> list[float]:
        """Column widths (mm) for :meth:`grid`: each ``no_wrap`` column as wide as its widest cell up to its cap, so
        numbers and ids stay on one line (a header may wrap between words, never inside one); ``fixed`` columns
        as given, narrowed when the page is too small for all; the last column what is left (at least
        ``min_last``)."""
        widths: dict[int, float] = {}
        for k in no_wrap:
            self.set_font(FONT, "B", size)
            need = max((self.get_string_width(w) for w in clean_text(rows[0][k]).split()), default=0.0)
            self.set_font(FONT, "", size)
            need = max([need] + [self.get_string_width(clean_text(r[k])) for r in rows[1:]])
            widths[k] = min(need + CELL_PAD, no_wrap[k])
        room = self.epw - min_last - sum(widths.values())
        total_fixed = sum(fixed.values())
        shrink = min(1.0, max(room, 0.0) / total_fixed) if total_fixed else 1.0
        widths |= {k: max(v * shrink, min(v, 10.0)) for k, v in fixed.items()}
        out = [widths[k] for k in range(len(rows[0]) - 1)]
        return out + [max(self.epw - sum(out), min_last)]

    def key_values(self, pairs: Sequence[tuple[str, str]], size: float = 9, key_w: float = 48) -> None:
        """Two-column label/value list."""
        self.set_font(FONT, "", size)
        self.set_fill_color(255, 255, 255)
        with self.table(col_widths=(key_w, self.epw - key_w), width=self.epw, first_row_as_headings=False,
                        text_align="LEFT", line_height=size * 0.5, padding=(0.6, 1.0),
                        borders_layout=TableBordersLayout.NONE) as table:
            for k, v in pairs:
                row = table.row()
                row.cell(clean_text(k), style=FontFace(emphasis="BOLD", color=GREY))
                row.cell(clean_text(v) or "—")
        self.ln(1)

    # -- images ----------------------------------------------------------------------------------------------
    def figure(self, data: bytes, caption: str, max_w: float | None = None, max_h: float = 215) -> None:
        """Place an encoded image centred, scaled to fit, starting a page when it does not fit; then a caption."""
        with Image.open(io.BytesIO(data)) as im:
            pw, ph = im.size
        w = min(max_w or self.epw, self.epw)
        h = w * ph / pw
        if h > max_h:
            h, w = max_h, max_h * pw / ph
        if self.will_page_break(h + 12):
            self.add_page()
        else:
            self.ln(2)
        self.figure_no += 1
        self.image(io.BytesIO(data), x=self.l_margin + (self.epw - w) / 2, y=self.get_y(), w=w, h=h)
        self.set_y(self.get_y() + h + 1)
        self.para(_("Figure {n}. {caption}").format(n=self.figure_no, caption=caption), size=7.5, colour=GREY, h=3.6)
        self.ln(2)

    def blank_box(self, lines: int = 6) -> None:
        """Ruled empty area for hand-written notes."""
        h = lines * 7.0
        if self.will_page_break(h + 2):
            self.add_page()
        y0 = self.get_y()
        self.set_draw_color(150, 150, 150)
        self.rect(self.l_margin, y0, self.epw, h)
        self.set_draw_color(215, 215, 215)
        for i in range(1, lines):
            self.line(self.l_margin + 2, y0 + i * 7.0, self.l_margin + self.epw - 2, y0 + i * 7.0)
        self.set_y(y0 + h + 3)
