"""Write one test document in every format the knowledge base ingests, from one description.

``blocks`` is a list of ``(kind, payload)``: ``"h1"``/``"h2"``/``"h3"``/``"p"`` with a string, ``"table"`` with
rows of cells (header row first), ``"ul"`` with the items. The writers use each format's own structure
(Word heading styles and tables, HTML elements, Markdown syntax, PDF font sizes) so that a parser has to
recover it the way it would from a real document. Only ASCII/Latin-1 text is supported (the PDF writer
uses a core font).
"""

from __future__ import annotations

import html
from pathlib import Path

from docx import Document
from fpdf import FPDF

Blocks = list[tuple[str, object]]

_PDF_HEADING_SIZES = {"h1": 20, "h2": 16, "h3": 13}
_PDF_BODY_SIZE = 11


def make_pdf(blocks: Blocks, path: Path, encrypted: bool = False, title: str | None = None) -> Path:
    """Headings are bold and larger than the body (that is all a PDF keeps of them); tables are drawn
    cells; ``encrypted`` sets a user password, so the file cannot be opened without it."""
    pdf = FPDF()
    pdf.add_page()
    if title:
        pdf.set_title(title)
    for kind, payload in blocks:
        if kind in _PDF_HEADING_SIZES:
            pdf.set_font("Helvetica", "B", _PDF_HEADING_SIZES[kind])
            pdf.multi_cell(0, _PDF_HEADING_SIZES[kind] * 0.6, str(payload), new_x="LMARGIN", new_y="NEXT")
        elif kind == "p":
            pdf.set_font("Helvetica", "", _PDF_BODY_SIZE)
            pdf.multi_cell(0, 6, str(payload), new_x="LMARGIN", new_y="NEXT")
        elif kind == "table":
            pdf.set_font("Helvetica", "", _PDF_BODY_SIZE)
            with pdf.table() as table:
                for cells in payload:  # type: ignore[attr-defined]
                    row = table.row()
                    for cell in cells:
                        row.cell(cell)
        elif kind == "ul":
            pdf.set_font("Helvetica", "", _PDF_BODY_SIZE)
            for item in payload:  # type: ignore[attr-defined]
                pdf.multi_cell(0, 6, f"- {item}", new_x="LMARGIN", new_y="NEXT")
        else:
            raise ValueError(f"unknown block kind {kind!r}")
        pdf.ln(4)
    if encrypted:
        pdf.set_encryption(owner_password="owner-secret", user_password="user-secret")
    pdf.output(str(path))
    return path


def make_docx(blocks: Blocks, path: Path, title: str | None = None) -> Path:
    """Built-in styles only: "Heading N", "Normal", "List Bullet", a real table with a header row."""
    doc = Document()
    if title:
        doc.core_properties.title = title
    for kind, payload in blocks:
        if kind in ("h1", "h2", "h3"):
            doc.add_heading(str(payload), level=int(kind[1]))
        elif kind == "p":
            doc.add_paragraph(str(payload))
        elif kind == "table":
            rows: list[list[str]] = payload  # type: ignore[assignment]
            table = doc.add_table(rows=len(rows), cols=len(rows[0]))
            for r, cells in enumerate(rows):
                for c, cell in enumerate(cells):
                    table.cell(r, c).text = cell
        elif kind == "ul":
            for item in payload:  # type: ignore[attr-defined]
                doc.add_paragraph(item, style="List Bullet")
        else:
            raise ValueError(f"unknown block kind {kind!r}")
    doc.save(str(path))
    return path


def make_html(blocks: Blocks, title: str | None = None) -> str:
    """A whole page with the noise a real one has (script, style, nav, footer) around the content."""
    parts: list[str] = []
    for kind, payload in blocks:
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{html.escape(str(payload))}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{html.escape(str(payload))}</p>")
        elif kind == "table":
            header, *rows = payload  # type: ignore[misc]
            head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in payload) + "</ul>")  # type: ignore[attr-defined]
        else:
            raise ValueError(f"unknown block kind {kind!r}")
    head = f"<title>{html.escape(title)}</title>" if title else ""
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">{head}<style>p {{ color: red; }}</style>"
        "<script>var tracking = 'do not index me';</script></head>\n<body>"
        "<nav><a href=\"/\">Home</a> <a href=\"/help\">Help centre</a></nav>\n<main>\n"
        + "\n".join(parts)
        + "\n</main>\n<footer>Copyright Example Ltd</footer></body></html>\n"
    )


def make_markdown(blocks: Blocks) -> str:
    """CommonMark plus GFM pipe tables."""
    parts: list[str] = []
    for kind, payload in blocks:
        if kind in ("h1", "h2", "h3"):
            parts.append("#" * int(kind[1]) + f" {payload}")
        elif kind == "p":
            parts.append(str(payload))
        elif kind == "table":
            header, *rows = payload  # type: ignore[misc]
            lines = [_pipe_row(header), _pipe_row(["---"] * len(header)), *(_pipe_row(r) for r in rows)]
            parts.append("\n".join(lines))
        elif kind == "ul":
            parts.append("\n".join(f"- {item}" for item in payload))  # type: ignore[attr-defined]
        else:
            raise ValueError(f"unknown block kind {kind!r}")
    return "\n\n".join(parts) + "\n"


def make_text(blocks: Blocks) -> str:
    """Plain text as people write it: headings in capitals on their own line, tables as pipe rows."""
    parts: list[str] = []
    for kind, payload in blocks:
        if kind in ("h1", "h2", "h3"):
            parts.append(str(payload).upper())
        elif kind == "p":
            parts.append(str(payload))
        elif kind == "table":
            parts.append("\n".join(_pipe_row(r) for r in payload))  # type: ignore[attr-defined]
        elif kind == "ul":
            parts.append("\n".join(f"- {item}" for item in payload))  # type: ignore[attr-defined]
        else:
            raise ValueError(f"unknown block kind {kind!r}")
    return "\n\n".join(parts) + "\n"


def _pipe_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
