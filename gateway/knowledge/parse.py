"""Turn an uploaded document into a title and a flat list of structural blocks — headings, paragraphs,
tables, lists — the one shape the chunker needs, whatever the format.

Design
------
* **Format by content first.** Magic bytes (``%PDF-`` at the start; a ZIP holding ``word/document.xml``) win over the
  name, the name over the declared content type: a PDF called ``.txt`` is read as a PDF, a PNG called
  ``.txt`` is refused as an image. A file whose name promises a format its bytes do not deliver (binary
  junk called ``.txt``, a truncated ``.docx``) is ``malformed_document``; a file that is not one of ours
  at all (image, executable, other archive, unnamed binary data, an unknown extension without a known
  content type) is ``unsupported_format``.
* **Stable error codes.** Every refusal is a ``DocumentError`` whose ``code`` the API can map and whose
  message a person can read. Third-party parsers raise anything on hostile input (KeyError, zlib.error,
  AssertionError, RecursionError…), so each parser call is wrapped whole and its failure becomes
  ``malformed_document``; only our own ``DocumentError`` passes through. Size: the upload is capped by
  ``max_bytes``, a DOCX also by what it unpacks to (``MAX_UNPACKED_BYTES``), a PDF by pypdf's own
  decompression limits.
* **Text encodings.** UTF-8 (BOM or not), UTF-16 with a BOM, else cp1252 (what Windows tools write), else
  latin-1, which never fails. Decoded text with a NUL or more than 10 % control characters is binary.
* **Structure per format.** Markdown: markdown-it tokens (CommonMark + pipe tables; YAML front matter is
  dropped). HTML: the stdlib parser via BeautifulSoup; script/style/nav/footer and headers without a
  heading are dropped, block elements become blocks, inline elements join their paragraph. DOCX: body
  paragraphs and tables in order; "Heading N"/"Title" styles are headings, "List…" styles or numbering
  make list items. Plain text: paragraphs are separated by blank lines; a short first line of a paragraph
  that is ALL CAPS or ends with ":" is a level-1 heading; pipe rows make a table, "- "/"1." lines a list.
* **PDF is guesswork**, because a PDF keeps glyph positions, not structure. Lines come from pypdf's text
  extraction with their font size, boldness and baseline. A paragraph ends at a vertical gap wider than
  1.3× the document's usual line pitch (at most 2× the font size), a change of font size or weight, or a
  page break — unless the text goes on mid-sentence (or mid-list) at the top of the next page; a block's
  ``page`` is the page it starts on. A short paragraph (≤ 20 words, not ending in ``.``/``,``/``;``) in a font ≥ 15 % larger than
  the body text (the size most characters have) is a heading, ranked by size (largest = level 1). A single
  body-size line of ≤ 12 words without final punctuation or list marker is a heading one level below the
  sized ones only when prose follows: a paragraph ≥ 3× as long ending in ``.``/``!``/``?``/``:``. Bold alone
  is not enough (table header rows are bold). A page's first or last line that is only a page number
  ("7", "Page 7 of 9") is dropped.
* **Title.** The first level-1 heading, else the metadata title (HTML ``<title>``, DOCX core title, PDF
  /Title; the first line for plain text), else the first heading, else the file name without extension.

Limits: no OCR (a scanned PDF is ``empty_document``); PDF tables come out as rows of text, not table
blocks, and running headers/footers other than page numbers are kept; password-protected PDFs are refused,
but a PDF with only an owner password (opens without one, merely restricts printing/copying) is read;
DOCX headers, footers, footnotes, comments and text boxes are ignored; legacy .doc, RTF and ODT are
unsupported.
"""

from __future__ import annotations

import codecs
import io
import math
import re
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Literal

import docx
from bs4 import BeautifulSoup
from bs4.element import NavigableString, PreformattedString, Tag
from docx.enum.style import WD_STYLE_TYPE
from docx.table import Table
from markdown_it import MarkdownIt
from pypdf import PasswordType, PdfReader
from pypdf.errors import LimitReachedError


class DocumentError(ValueError):
    """A document we cannot ingest; `code` is a stable machine code, the message says what is wrong in plain words."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Block:
    kind: Literal["heading", "paragraph", "table", "list"]
    text: str  # tables as "| a | b |" rows (header first); lists as "- item" lines
    level: int = 0  # heading level 1..6 (0 for non-headings)
    page: int | None = None  # 1-based page for PDFs


@dataclass
class ParsedDocument:
    title: str
    format: str
    blocks: list[Block]


FORMATS = ("txt", "md", "html", "pdf", "docx")
MAX_UNPACKED_BYTES = 256 * 1024 * 1024  # a DOCX is a ZIP: refuse decompression bombs before unpacking

_EXTENSIONS = {".txt": "txt", ".text": "txt", ".md": "md", ".markdown": "md", ".html": "html", ".htm": "html",
               ".xhtml": "html", ".pdf": "pdf", ".docx": "docx"}
_CONTENT_TYPES = {"text/plain": "txt", "text/markdown": "md", "text/x-markdown": "md", "text/html": "html",
                  "application/xhtml+xml": "html", "application/pdf": "pdf",
                  "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx"}
_FOREIGN_MAGIC = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
                  b"MZ": "a Windows program", b"\x7fELF": "a program", b"\x1f\x8b": "a gzip archive",
                  b"\xd0\xcf\x11\xe0": "a legacy Office file (.doc/.xls/.ppt); save it as .docx",
                  b"{\\rtf": "an RTF document; save it as .docx"}
_LIST_ITEM = re.compile(r"^(?:[-*•‣◦▪–]|\d{1,3}[.)])\s+")
_PAGE_NUMBER = re.compile(r"^(?:page\s*)?\d+(?:\s*(?:of|/)\s*\d+)?$", re.IGNORECASE)
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.DOTALL)
_YAML_LINE = re.compile(r"[\w.-]+[ \t]*:(?:\s|$)|[ \t]+\S|-[ \t]|#|$")   # key:, an indented or list line, a comment
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HTML_DROP = ["script", "style", "noscript", "template", "svg", "canvas", "iframe", "object", "nav", "footer"]
_HTML_HEADINGS = ["h1", "h2", "h3", "h4", "h5", "h6"]
_HTML_INLINE = {"a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "del", "dfn", "em", "font", "i", "img", "ins",
                "kbd", "label", "mark", "q", "s", "samp", "small", "span", "strong", "sub", "sup", "time", "u", "var"}


def detect_format(filename: str, data: bytes, content_type: str | None = None) -> str:
    """One of FORMATS, judged by magic bytes, then the file extension, then the declared content type."""
    if data.lstrip()[:5] == b"%PDF-":
        return "pdf"
    suffix = PurePath(filename).suffix.lower()
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                is_docx: bool | None = "word/document.xml" in archive.namelist()
        except Exception:  # zipfile raises BadZipFile, NotImplementedError, OSError… on a damaged archive
            is_docx = None  # a Word file if it says so, and then parsing reports malformed_document
        if is_docx or (is_docx is None and (b"word/document.xml" in data or suffix == ".docx")):
            return "docx"
        if is_docx is False:
            raise DocumentError("unsupported_format", "This is a ZIP archive, not a Word (.docx) document.")
    text = _decode(data[:65536])
    if _is_binary(text):
        for magic, what in _FOREIGN_MAGIC.items():
            if data.startswith(magic):
                raise DocumentError("unsupported_format", f"This file is {what}, which is not supported.")
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared in _CONTENT_TYPES:
        return _CONTENT_TYPES[declared]
    if suffix or _is_binary(text):
        what = f'Files of type "{suffix}"' if suffix else "Binary files"
        raise DocumentError("unsupported_format", f"{what} are not supported; upload PDF, DOCX, HTML, Markdown or text.")
    return "html" if re.match(r"\s*<(?:!doctype html|html)", text, re.IGNORECASE) else "txt"


def parse_document(data: bytes, filename: str, content_type: str | None = None, max_bytes: int = 20 * 1024 * 1024) -> ParsedDocument:
    """Parse an upload into blocks; raises DocumentError (never a library exception) when it cannot."""
    if len(data) > max_bytes:
        raise DocumentError("document_too_large", f"The file is {_size(len(data))}; the limit is {_size(max_bytes)}.")
    if not data.strip():
        raise DocumentError("empty_document", "The file is empty.")
    fmt = detect_format(filename, data, content_type)
    try:
        meta_title, blocks = _PARSERS[fmt](data)
    except DocumentError:
        raise
    except LimitReachedError as exc:
        raise DocumentError("document_too_large", "The PDF expands to more data than we accept.") from exc
    except Exception as exc:  # any parser failure on a hostile or damaged file is the file's fault
        raise DocumentError("malformed_document", f"The {fmt.upper()} file could not be read; it may be damaged or truncated.") from exc
    # Control characters (a PDF font without a Unicode map gives NULs) are no text, and Postgres refuses a NUL:
    # the upload failed after every chunk was embedded, blamed on "a value in the request".
    blocks = [Block(b.kind, text, b.level, b.page) for b in blocks if (text := _CONTROL.sub("", b.text)).strip()]
    if not blocks:
        raise DocumentError("empty_document", "The document contains no text.")
    return ParsedDocument(title=_title(_CONTROL.sub("", meta_title), blocks, filename), format=fmt, blocks=blocks)


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB" if n >= 2**10 else f"{n} bytes"


def _title(meta_title: str, blocks: list[Block], filename: str) -> str:
    """The visible title beats metadata, which is often stale ("Microsoft Word - Document1")."""
    headings = [b for b in blocks if b.kind == "heading"]
    candidates = [next((b.text for b in headings if b.level == 1), ""), meta_title, headings[0].text if headings else ""]
    return next((_squash(c) for c in candidates if c and c.strip()), PurePath(filename).stem or "Untitled")


# -- text ------------------------------------------------------------------------------------------------

def _decode(data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _is_binary(text: str) -> bool:
    sample = text[:8192]
    controls = sum(1 for ch in sample if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f\v")
    return "\x00" in text or controls > 0.1 * len(sample)


def _text(data: bytes) -> str:
    text = _decode(data)
    if _is_binary(text):
        raise DocumentError("malformed_document", "The file should be text but contains binary data.")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _squash(text: str) -> str:
    return " ".join(text.split())


def _table_block(rows: list[list[str]], page: int | None = None) -> list[Block]:
    """Markdown-ish rows, header first; empty rows dropped, "|" inside cells escaped."""
    lines = ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows if any(row)]
    return [Block("table", "\n".join(lines), page=page)] if lines else []


def _lines_block(lines: list[str], page: int | None = None) -> list[Block]:
    """A group of non-empty lines: pipe rows make a table, marker lines a list, anything else one paragraph."""
    if all(line.startswith("|") and line.endswith("|") for line in lines):
        rows = [[c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line[1:-1])] for line in lines]
        rows = [r for r in rows if not all(re.fullmatch(r":?-+:?", c) for c in r)]  # Markdown separator rows
        return _table_block(rows, page)
    if _LIST_ITEM.match(lines[0]):
        items: list[str] = []
        for line in lines:
            marker = _LIST_ITEM.match(line)
            if marker:
                items.append(line[marker.end():])
            else:  # a wrapped item continues on the next line
                items[-1] = f"{items[-1]} {line}"
        return [Block("list", "\n".join(f"- {_squash(item)}" for item in items), page=page)]
    return [Block("paragraph", _squash(" ".join(lines)), page=page)]


def _parse_txt(data: bytes) -> tuple[str, list[Block]]:
    text = _text(data)
    blocks: list[Block] = []
    for group in re.split(r"\n\s*\n", text):
        lines = [line.strip() for line in group.split("\n") if line.strip()]
        if lines and _is_text_heading(lines[0]):
            blocks.append(Block("heading", lines.pop(0).rstrip(":").strip(), level=1))
        if lines:
            blocks.extend(_lines_block(lines))
    first_line = next((line.strip() for line in text.split("\n") if line.strip()), "")
    return (first_line if len(first_line) <= 100 else ""), blocks


def _is_text_heading(line: str) -> bool:
    letters = [ch for ch in line if ch.isalpha()]
    short = len(line) <= 80 and len(line.split()) <= 12 and len(letters) >= 2
    return short and not _LIST_ITEM.match(line) and not line.startswith("|") and (line.isupper() or line.endswith(":"))


# -- Markdown --------------------------------------------------------------------------------------------

def _without_front_matter(text: str) -> str:
    """``text`` without a leading YAML block (``---`` / ``key: value`` lines / ``---``). Only YAML: a document
    that opens with a horizontal rule keeps what follows it (it lost its title and introduction)."""
    m = _FRONT_MATTER.match(text)
    if m is None or not m.group(1).strip() or not m.group(1)[:1].strip():
        return text
    if not all(_YAML_LINE.match(line) for line in m.group(1).split("\n")):
        return text
    return text[m.end():]


def _parse_md(data: bytes) -> tuple[str, list[Block]]:
    tokens = MarkdownIt("commonmark").enable("table").parse(_without_front_matter(_text(data)))
    blocks: list[Block] = []
    items: list[str] = []
    rows: list[list[str]] | None = None
    depth = 0
    for i, token in enumerate(tokens):
        if token.type in ("bullet_list_open", "ordered_list_open"):
            depth += 1
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            depth -= 1
            if depth == 0 and items:
                blocks.append(Block("list", "\n".join(items)))
                items = []
        elif token.type == "table_open":
            rows = []
        elif token.type == "tr_open" and rows is not None:
            rows.append([])
        elif token.type == "table_close" and rows is not None:
            blocks.extend(_table_block(rows))
            rows = None
        elif token.type == "html_block":
            blocks.extend(_html_blocks(BeautifulSoup(token.content, "html.parser")))
        elif token.type in ("inline", "fence", "code_block"):
            text = _md_inline_text(token) if token.type == "inline" else token.content.strip("\n")
            if rows is not None:
                rows[-1].append(text)
            elif not text.strip():
                continue
            elif tokens[i - 1].type == "heading_open":
                blocks.append(Block("heading", text, level=int(tokens[i - 1].tag[1])))
            elif depth:
                items.append("  " * (depth - 1) + "- " + _squash(text))
            else:
                blocks.append(Block("paragraph", text))
    return "", blocks


def _md_inline_text(token: Any) -> str:
    parts = [c.content if c.type in ("text", "code_inline", "image") else " " if c.type.endswith("break") else ""
             for c in token.children or []]
    return _squash("".join(parts))


# -- HTML ------------------------------------------------------------------------------------------------

def _parse_html(data: bytes) -> tuple[str, list[Block]]:
    soup = BeautifulSoup(_text(data), "html.parser")
    title = soup.title.get_text() if soup.title else ""
    return title, _html_blocks(soup)


def _html_blocks(soup: BeautifulSoup) -> list[Block]:
    """Drop page furniture, then walk what is left in document order."""
    for tag in [*soup.find_all(["head", *_HTML_DROP]), *(h for h in soup.find_all("header") if not h.find(_HTML_HEADINGS))]:
        if not tag.decomposed:
            tag.decompose()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    blocks: list[Block] = []
    _html_walk(soup, blocks)
    return blocks


def _html_walk(node: Tag, blocks: list[Block]) -> None:
    """Block elements become blocks; text and inline elements between them gather into one paragraph."""
    inline: list[str] = []
    for child in [*node.children, None]:
        if isinstance(child, NavigableString):
            inline.append("" if isinstance(child, PreformattedString) else str(child))  # comments, doctype, CDATA
            continue
        if isinstance(child, Tag) and child.name in _HTML_INLINE:
            inline.append(child.get_text())
            continue
        if _squash("".join(inline)):
            blocks.append(Block("paragraph", _squash("".join(inline))))
        inline = []
        if not isinstance(child, Tag):
            continue
        if child.name in _HTML_HEADINGS and _squash(child.get_text()):
            blocks.append(Block("heading", _squash(child.get_text()), level=int(child.name[1])))
        elif child.name == "table":
            rows = [tr for tr in child.find_all("tr") if tr.find_parent("table") is child]
            blocks.extend(_table_block([[_squash(_html_text(c)) for c in tr.find_all(["td", "th"], recursive=False)] for tr in rows]))
        elif child.name in ("ul", "ol"):
            lines = _html_list_lines(child, 0)
            blocks.extend([Block("list", "\n".join(lines))] if lines else [])
        elif child.name in ("p", "pre"):
            text = child.get_text().strip("\n") if child.name == "pre" else _squash(child.get_text())
            blocks.extend([Block("paragraph", text)] if text.strip() else [])
        else:
            _html_walk(child, blocks)


def _html_text(tag: Tag) -> str:
    """``tag.get_text()`` with a space where a block element (``<p>``, ``<div>``, ``<br>``) starts or ends:
    a loose list item or a cell of two paragraphs read "lost card.Call the hotline" and "Blockoverdraft",
    words that no search finds. Inline elements (``<b>``, ``<a>``) join their text as before."""
    parts: list[str] = []
    stack: list[Any] = [tag]
    while stack:
        node = stack.pop()
        if node is None:                    # the end of a block element
            parts.append(" ")
        elif isinstance(node, NavigableString):
            if not isinstance(node, PreformattedString):     # comments, CDATA, doctype: not text
                parts.append(str(node))
        elif isinstance(node, Tag):
            block = node is not tag and node.name not in _HTML_INLINE
            if block:
                parts.append(" ")
                stack.append(None)
            stack.extend(reversed(node.contents))
    return "".join(parts)


MAX_LIST_DEPTH = 8   # deeper lists are flattened: 900 nested <ul> in 67 KB took 9 s and made 10 MB of indentation


def _html_list_lines(lst: Tag, depth: int) -> list[str]:
    """One "- item" line per <li>, nested lists indented below their item (at most MAX_LIST_DEPTH deep)."""
    lines: list[str] = []
    for li in lst.find_all("li", recursive=False):
        # Only this item's own sub-lists (its children, or inside its inline wrappers), found without walking
        # every descendant at every level, which made deep nesting quadratic.
        nested = [n.extract() for n in _own_lists(li)] if depth < MAX_LIST_DEPTH else []
        text = _squash(_html_text(li))
        lines += [f"{'  ' * depth}- {text}"] if text else []
        for sub in nested:
            lines += _html_list_lines(sub, depth + 1)
    return lines


def _own_lists(li: Tag) -> list[Tag]:
    """The <ul>/<ol> elements of ``li`` not inside a deeper <li>: a walk that stops at each list it finds."""
    found, stack = [], list(li.children)
    while stack:
        node = stack.pop(0)
        if not isinstance(node, Tag):
            continue
        if node.name in ("ul", "ol"):
            found.append(node)
        elif node.name != "li":
            stack.extend(node.children)
    return found


# -- DOCX ------------------------------------------------------------------------------------------------

def _parse_docx(data: bytes) -> tuple[str, list[Block]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        if sum(info.file_size for info in archive.infolist()) > MAX_UNPACKED_BYTES:
            raise DocumentError("document_too_large", "The Word document unpacks to more data than we accept.")
    document = docx.Document(io.BytesIO(data))
    # Style names by id, read once: python-docx looks a paragraph's style up in the styles part on every
    # access (most of the parse time: a 2 MiB document took 51 s).
    style_names = {s.style_id: s.name or "" for s in document.styles if s.type == WD_STYLE_TYPE.PARAGRAPH}
    default_style = document.styles.default(WD_STYLE_TYPE.PARAGRAPH)
    default_name = default_style.name or "" if default_style is not None else ""
    blocks: list[Block] = []
    items: list[str] = []
    for element in _docx_body(document.element.body):
        if element.tag == _W_TBL:
            if items:
                blocks.append(Block("list", "\n".join(items)))
                items = []
            blocks.extend(_table_block(_docx_rows(Table(element, document._body))))
            continue
        text = _squash(_docx_text(element))
        ppr = element.pPr
        style = style_names.get(ppr.pStyle.val, "") if ppr is not None and ppr.pStyle is not None else default_name
        # python-docx has no public numbering API: a paragraph with <w:numPr> is a numbered/bulleted item
        numbered = ppr is not None and ppr.numPr is not None
        heading = re.fullmatch(r"Heading (\d)", style)
        level = 1 if style == "Title" else min(int(heading.group(1)), 6) if heading else 0
        if (style.startswith("List") or numbered) and text and not level:  # numbered headings stay headings
            items.append(f"- {text}")
            continue
        if items:
            blocks.append(Block("list", "\n".join(items)))
            items = []
        if text:
            blocks.append(Block("heading", text, level=level) if level else Block("paragraph", text))
    if items:
        blocks.append(Block("list", "\n".join(items)))
    return document.core_properties.title or "", blocks


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_W_P, _W_TBL, _W_SDT, _W_SDT_CONTENT, _W_T = f"{_W}p", f"{_W}tbl", f"{_W}sdt", f"{_W}sdtContent", f"{_W}t"
_W_SPACES = {f"{_W}tab", f"{_W}ptab", f"{_W}br", f"{_W}cr"}
_W_HYPHEN = f"{_W}noBreakHyphen"     # Word's non-breaking hyphen ("0800-123-456"): python-docx reads it as "-"
# Text that is not the document's current text: tracked deletions and the old place of moved text (their runs
# hold w:t too), the fallback copy of a drawing, and text boxes (python-docx never read them either).
_W_SKIP = {f"{_W}del", f"{_W}moveFrom", f"{_W}txbxContent", f"{_W}pPr", f"{_W}rPr",
           "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"}


def _docx_body(container: Any) -> Iterator[Any]:
    """The paragraphs and tables of the body in order, those inside block content controls (``w:sdt``: cover
    pages, tables of contents, form templates) included: python-docx's own walk skips them."""
    for child in container.iterchildren():
        if child.tag in (_W_P, _W_TBL):
            yield child
        elif child.tag == _W_SDT:
            content = child.find(_W_SDT_CONTENT)
            if content is not None:
                yield from _docx_body(content)


def _docx_text(element: Any) -> str:
    """The visible text under ``element``, in order: runs in tracked insertions, content controls, fields,
    hyperlinks and smart tags too (python-docx's ``.text`` reads plain runs and hyperlinks only), tables
    nested in a cell as well; a tab or a line break is a space."""
    parts: list[str] = []
    stack = [element]
    while stack:
        node = stack.pop()
        tag = node.tag
        if tag == _W_T:
            parts.append(node.text or "")
        elif tag in _W_SPACES:
            parts.append(" ")
        elif tag == _W_HYPHEN:
            parts.append("-")
        elif tag == _W_P and node is not element:
            parts.append(" ")           # paragraphs of a cell, or of a nested table
        if tag not in _W_SKIP and isinstance(tag, str):
            stack.extend(reversed(node))
    return "".join(parts)


def _docx_rows(table: Table) -> list[list[str]]:
    """A merged cell is reported once per grid column it spans; keep it once."""
    rows = []
    for row in table.rows:
        cells: list[Any] = []
        for cell in row.cells:
            if not cells or cell._tc is not cells[-1]._tc:
                cells.append(cell)
        rows.append([_squash(_docx_text(cell._tc)) for cell in cells])
    return rows


# -- PDF -------------------------------------------------------------------------------------------------

@dataclass
class _Line:
    text: str
    page: int
    y: float = 0.0
    size: float = 0.0
    bold: bool = True


def _parse_pdf(data: bytes) -> tuple[str, list[Block]]:
    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
        raise DocumentError("encrypted_document", "The PDF is password-protected; remove the password and upload it again.")
    lines = [line for number, page in enumerate(reader.pages, 1) for line in _pdf_page_lines(page, number)]
    if not lines:
        raise DocumentError("empty_document", "The PDF has no extractable text; it may be a scanned image, and OCR is not supported.")
    meta_title = reader.metadata.title if reader.metadata else None
    return str(meta_title or ""), _pdf_blocks(_pdf_paragraphs(lines))


def _pdf_page_lines(page: Any, number: int) -> list[_Line]:
    """pypdf's extracted lines, each with the baseline, the largest font size and whether it is all bold."""
    lines = [_Line("", number)]

    def visit(text: str, cm: list[float], tm: list[float], font: dict | None, font_size: float) -> None:
        for i, part in enumerate(text.split("\n")):
            if i:
                lines.append(_Line("", number))
            line = lines[-1]
            if part.strip():
                c, d = tm[2] * cm[0] + tm[3] * cm[2], tm[2] * cm[1] + tm[3] * cm[3]  # text space → page space
                y, size = tm[4] * cm[1] + tm[5] * cm[3] + cm[5], font_size * math.hypot(c, d)
                line.y = y if not line.text.strip() else line.y
                line.size = max(line.size, size)
                line.bold = line.bold and bool(re.search(r"bold|black|heavy", str((font or {}).get("/BaseFont", "")), re.I))
            line.text += part

    page.extract_text(visitor_text=visit)
    lines = [line for line in lines if line.text.strip()]
    for edge in (-1, 0):  # a page number sits at the top or the bottom: the first or last line in reading order
        if lines and _PAGE_NUMBER.match(lines[edge].text.strip()):
            lines.pop(edge)
    return lines


def _pdf_paragraphs(lines: list[_Line]) -> list[list[_Line]]:
    """Group lines into paragraphs at wide gaps, font changes and page breaks; list items stay together."""
    pitches = Counter(round(abs(a.y - b.y) / a.size, 1) for a, b in zip(lines, lines[1:], strict=False)
                      if a.page == b.page and a.size and math.isclose(a.size, b.size, rel_tol=0.05))
    # the usual pitch, unless every line is its own paragraph: no body text is set wider than 2× its size
    gap = min(1.3 * pitches.most_common(1)[0][0], 2.0) if pitches else 2.0
    groups: list[list[_Line]] = []
    for line in lines:
        in_list = bool(groups and _LIST_ITEM.match(groups[-1][0].text.strip()))
        starts_item = bool(_LIST_ITEM.match(line.text.strip())) and not in_list
        if groups and not starts_item and _continues(groups[-1][-1], line, gap, in_list):
            groups[-1].append(line)
        else:
            groups.append([line])
    return groups


def _continues(prev: _Line, line: _Line, gap: float, in_list: bool) -> bool:
    """Same type, and close below the previous line or carried over a page break mid-sentence (or mid-list)."""
    if prev.bold != line.bold or not line.size or not math.isclose(prev.size, line.size, rel_tol=0.1):
        return False
    if prev.page == line.page:
        return abs(prev.y - line.y) <= gap * line.size
    mid_sentence = line.text.strip()[:1].islower() and not re.search(r"[.!?:]$", prev.text.strip())
    return prev.page + 1 == line.page and (in_list or mid_sentence)


def _pdf_blocks(groups: list[list[_Line]]) -> list[Block]:
    chars: Counter[float] = Counter()
    for group in groups:
        for line in group:
            chars[round(line.size * 2) / 2] += len(line.text)
    body = chars.most_common(1)[0][0]
    texts = [_squash(" ".join(line.text for line in group)) for group in groups]
    sized = sorted({round(g[0].size * 2) / 2 for g, t in zip(groups, texts, strict=True) if _pdf_heading_size(g, t, body)}, reverse=True)
    blocks: list[Block] = []
    for i, (group, text) in enumerate(zip(groups, texts, strict=True)):
        page = group[0].page
        if _pdf_heading_size(group, text, body):
            blocks.append(Block("heading", text, level=min(sized.index(round(group[0].size * 2) / 2) + 1, 6), page=page))
        elif len(group) == 1 and _plain_heading(text) and _prose_follows(texts, i):
            blocks.append(Block("heading", text, level=min(len(sized) + 1, 6), page=page))
        else:
            blocks.extend(_lines_block([line.text.strip() for line in group], page))
    return blocks


def _pdf_heading_size(group: list[_Line], text: str, body: float) -> bool:
    """Large type is a heading even when numbered ("2.1 Fees") or a question ("Lost your card?")."""
    return group[0].size >= 1.15 * body > 0 and len(text.split()) <= 20 and not re.search(r"[.,;]$", text)


def _plain_heading(text: str) -> bool:
    """Body-size type needs more: short, no list marker, no final punctuation at all."""
    return len(text.split()) <= 12 and not _LIST_ITEM.match(text) and not re.search(r"[.,;:!?]$", text)


def _prose_follows(texts: list[str], i: int) -> bool:
    following = texts[i + 1] if i + 1 < len(texts) else ""
    return len(following.split()) >= 3 * len(texts[i].split()) and bool(re.search(r"[.!?:]$", following))


_PARSERS = {"txt": _parse_txt, "md": _parse_md, "html": _parse_html, "pdf": _parse_pdf, "docx": _parse_docx}
