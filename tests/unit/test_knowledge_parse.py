"""Knowledge-base parsing and chunking, without a database or a model.

One document (headings, paragraphs, a table, a list) is written in all five formats by
``tests.knowledge_files`` and must come back as the same blocks, within what each format can carry:
plain text has no heading levels (and capitalises its headings), a PDF keeps no table structure. Then the
refusals, each with its exact error code, and the chunker's rules, measured with a word counter.
"""

from __future__ import annotations

import io
import random
import re
import zipfile
from pathlib import Path

import pytest
from docx import Document
from fpdf import FPDF

from gateway.knowledge import parse
from gateway.knowledge.chunk import chunk_document
from gateway.knowledge.parse import Block, DocumentError, ParsedDocument, detect_format, parse_document
from tests.knowledge_files import make_docx, make_html, make_markdown, make_pdf, make_text

BLOCKS = [
    ("h1", "Cards and payments"),
    ("p", "This guide explains how cards work at Example Bank. It covers fees, limits and what to do when something goes wrong."),
    ("h2", "Fees"),
    ("p", "Most card services are free. A few carry a fee, listed below."),
    ("table", [["Service", "Debit card", "Credit card"], ["Replacement card", "0 EUR", "10 EUR"], ["Cash abroad", "1%", "3%"]]),
    ("h2", "Lost or stolen cards"),
    ("p", "Block the card in the app straight away. Then call us so that we can send a new one."),
    ("ul", ["Open the app", "Tap Cards", "Choose Block card"]),
    ("h3", "Replacement times"),
    ("p", "A new card arrives within five working days."),
]


def words(text: str) -> int:
    return len(text.split())


def document_bytes(fmt: str, blocks: list, tmp_path: Path, **kwargs: object) -> bytes:
    if fmt == "pdf":
        return make_pdf(blocks, tmp_path / "doc.pdf", **kwargs).read_bytes()  # type: ignore[arg-type]
    if fmt == "docx":
        return make_docx(blocks, tmp_path / "doc.docx", **kwargs).read_bytes()  # type: ignore[arg-type]
    writer = {"html": make_html, "md": make_markdown, "txt": make_text}[fmt]
    return writer(blocks, **kwargs).encode()  # type: ignore[operator]


def expected_blocks(fmt: str) -> list[tuple[str, int, str]]:
    """What each format can carry of BLOCKS, as (kind, level, text)."""
    out: list[tuple[str, int, str]] = []
    for kind, payload in BLOCKS:
        if kind in ("h1", "h2", "h3"):
            out.append(("heading", 1, str(payload).upper()) if fmt == "txt" else ("heading", int(kind[1]), str(payload)))
        elif kind == "p":
            out.append(("paragraph", 0, str(payload)))
        elif kind == "table" and fmt == "pdf":  # drawn cells: each row comes back as a line of text
            out += [("paragraph", 0, " ".join(row)) for row in payload]
        elif kind == "table":
            out.append(("table", 0, "\n".join("| " + " | ".join(row) + " |" for row in payload)))
        else:
            out.append(("list", 0, "\n".join(f"- {item}" for item in payload)))
    return out


def code_of(data: bytes, filename: str, **kwargs: object) -> str:
    with pytest.raises(DocumentError) as caught:
        parse_document(data, filename, **kwargs)  # type: ignore[arg-type]
    assert str(caught.value), "a DocumentError must say what is wrong"
    return caught.value.code


# -- the same document in every format -------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["txt", "md", "html", "pdf", "docx"])
def test_same_document_parses_to_the_same_blocks_in_every_format(fmt: str, tmp_path: Path) -> None:
    doc = parse_document(document_bytes(fmt, BLOCKS, tmp_path), f"guide.{fmt}")
    assert doc.format == fmt
    assert [(b.kind, b.level, b.text) for b in doc.blocks] == expected_blocks(fmt)
    assert doc.title.casefold() == "cards and payments"
    assert all(b.page == 1 for b in doc.blocks) if fmt == "pdf" else all(b.page is None for b in doc.blocks)


def test_html_drops_page_furniture_but_keeps_content_in_headers_and_loose_text() -> None:
    page = ("<html><head><title>T</title><script>var secret = 1;</script></head><body>"
            "<header><a href='/'>Logo</a></header><header><h1>Opening hours</h1></header>"
            "<nav>Home | Help</nav><div>Loose <b>bold</b> text<br>on two lines<p>A paragraph.</p>after it</div>"
            "<ul><li>Weekdays<ul><li>9 to 5</li></ul></li><li>Weekends</li></ul>"
            "<pre>line one\n  line two</pre><!-- a comment --><footer>Copyright</footer></body></html>")
    doc = parse_document(page.encode(), "hours.html")
    assert [(b.kind, b.text) for b in doc.blocks] == [
        ("heading", "Opening hours"),
        ("paragraph", "Loose bold text on two lines"),
        ("paragraph", "A paragraph."),
        ("paragraph", "after it"),
        ("list", "- Weekdays\n  - 9 to 5\n- Weekends"),
        ("paragraph", "line one\n  line two"),
    ]


def test_markdown_front_matter_nested_lists_and_code() -> None:
    text = "---\ntitle: ignored\n---\n# Setup\n\n- one\n  - one point one\n- two\n\n```\npip install x\npip install y\n```\n"
    doc = parse_document(text.encode(), "setup.md")
    assert [(b.kind, b.text) for b in doc.blocks] == [
        ("heading", "Setup"), ("list", "- one\n  - one point one\n- two"), ("paragraph", "pip install x\npip install y")]


def test_plain_text_heading_rules() -> None:
    text = "Opening hours:\nMonday to Friday, 9 to 5.\n\nNOTE\n\nWe are closed on holidays.\n\n- first\n- second\ncontinued\n"
    doc = parse_document(text.encode(), "notes.txt")
    assert [(b.kind, b.text) for b in doc.blocks] == [
        ("heading", "Opening hours"), ("paragraph", "Monday to Friday, 9 to 5."), ("heading", "NOTE"),
        ("paragraph", "We are closed on holidays."), ("list", "- first\n- second continued")]


def test_pdf_body_size_heading_needs_prose_after_it_and_page_numbers_are_dropped(tmp_path: Path) -> None:
    class Numbered(FPDF):
        def footer(self) -> None:
            self.set_y(-15)
            self.set_font("Helvetica", "", 9)
            self.cell(0, 10, str(self.page_no()), align="C")

    pdf = Numbered()
    pdf.set_font("Helvetica", "", 11)
    for page in (1, 2):
        pdf.add_page()
        pdf.multi_cell(0, 6, f"Section {page}", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
        pdf.multi_cell(0, 6, "This paragraph is long enough to be prose, and it ends the way a sentence ends.",
                       new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
        pdf.multi_cell(0, 6, "Not a heading", new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(tmp_path / "n.pdf"))
    doc = parse_document((tmp_path / "n.pdf").read_bytes(), "n.pdf")
    assert [(b.kind, b.text, b.page) for b in doc.blocks] == [
        ("heading", "Section 1", 1),
        ("paragraph", "This paragraph is long enough to be prose, and it ends the way a sentence ends.", 1),
        ("paragraph", "Not a heading", 1),
        ("heading", "Section 2", 2),
        ("paragraph", "This paragraph is long enough to be prose, and it ends the way a sentence ends.", 2),
        ("paragraph", "Not a heading", 2),
    ]


def test_pdf_paragraph_and_list_carried_over_a_page_break_stay_whole(tmp_path: Path) -> None:
    long = " ".join(f"clause {i} of the agreement applies to every card we issue and renew" for i in range(80)) + "."
    items = [f"step {i} of the procedure" for i in range(60)]
    doc = parse_document(make_pdf([("h1", "Terms"), ("p", long), ("ul", items)], tmp_path / "t.pdf").read_bytes(), "t.pdf")
    assert [(b.kind, b.page) for b in doc.blocks] == [("heading", 1), ("paragraph", 1), ("list", 2)]
    assert doc.blocks[1].text == long
    assert doc.blocks[2].text == "\n".join(f"- {item}" for item in items)


def test_docx_title_style_merged_cells_and_empty_paragraphs(tmp_path: Path) -> None:
    document = Document()
    document.add_heading("Price list", level=0)  # the "Title" style
    document.add_paragraph("")
    table = document.add_table(rows=2, cols=3)
    table.cell(0, 0).merge(table.cell(0, 1)).text = "Card"
    table.cell(0, 2).text = "Fee"
    for col, text in enumerate(["Debit", "Visa", "0 EUR"]):
        table.cell(1, col).text = text
    document.save(str(tmp_path / "p.docx"))
    doc = parse_document((tmp_path / "p.docx").read_bytes(), "p.docx")
    assert [(b.kind, b.level, b.text) for b in doc.blocks] == [
        ("heading", 1, "Price list"), ("table", 0, "| Card | Fee |\n| Debit | Visa | 0 EUR |")]
    assert doc.title == "Price list"


@pytest.mark.parametrize("fmt", ["pdf", "docx", "html", "md"])
def test_damaged_files_raise_only_document_errors(fmt: str, tmp_path: Path) -> None:
    """Seeded byte-level damage: whatever the parser libraries raise must come out as a DocumentError."""
    original = document_bytes(fmt, BLOCKS, tmp_path)
    rng = random.Random(fmt)
    for _ in range(40):
        damaged = bytearray(original)
        for _ in range(rng.randint(1, 20)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        try:
            parse_document(bytes(damaged[: rng.randint(len(damaged) // 2, len(damaged))]), f"doc.{fmt}")
        except DocumentError:
            pass


# -- titles ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["html", "pdf", "docx"])
def test_visible_title_beats_metadata_and_metadata_beats_the_file_name(fmt: str, tmp_path: Path) -> None:
    with_h1 = document_bytes(fmt, BLOCKS, tmp_path, title="Metadata title")
    assert parse_document(with_h1, f"f.{fmt}").title == "Cards and payments"
    no_headings = [("p", "Only a paragraph of text, nothing else.")]
    assert parse_document(document_bytes(fmt, no_headings, tmp_path, title="Metadata title"), f"f.{fmt}").title == "Metadata title"
    assert parse_document(document_bytes(fmt, no_headings, tmp_path), f"Fee schedule.{fmt}").title == "Fee schedule"


def test_title_falls_back_to_a_lower_heading_or_the_first_line() -> None:
    assert parse_document(b"## Fees\n\nSome text.", "x.md").title == "Fees"
    assert parse_document(b"Branch opening times\nMonday to Friday.", "x.txt").title == "Branch opening times"
    assert parse_document(b"Some text.", "notes.md").title == "notes"


# -- format detection ------------------------------------------------------------------------------------

def test_magic_bytes_win_over_a_wrong_extension_and_content_type(tmp_path: Path) -> None:
    pdf = make_pdf(BLOCKS, tmp_path / "a.pdf").read_bytes()
    docx = make_docx(BLOCKS, tmp_path / "a.docx").read_bytes()
    assert detect_format("report.txt", pdf, "text/plain") == "pdf"
    assert detect_format("report.pdf", docx, "application/pdf") == "docx"
    assert parse_document(pdf, "report.txt").format == "pdf"


def test_extension_then_content_type_then_sniffing() -> None:
    assert detect_format("a.markdown", b"# x", "text/html") == "md"
    assert detect_format("upload", b"# x", "text/markdown; charset=utf-8") == "md"
    assert detect_format("upload", b"<!DOCTYPE html><p>x</p>") == "html"
    assert detect_format("upload", b"just words") == "txt"


@pytest.mark.parametrize(("data", "filename"), [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), "photo.png"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), "photo.txt"),  # an image is an image, whatever its name
    (b"MZ\x90\x00\x03\x00\x00\x00" + bytes(64), "setup.exe"),
    (random.Random(0).randbytes(4096), "blob.bin"),
    (random.Random(0).randbytes(4096), "upload"),
    (b"plain words", "notes.log"),  # unknown extension and no content type
])
def test_not_one_of_our_formats_is_unsupported(data: bytes, filename: str) -> None:
    assert code_of(data, filename) == "unsupported_format"


def test_zip_that_is_not_a_word_document_is_unsupported() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "hello")
    assert code_of(buffer.getvalue(), "notes.docx") == "unsupported_format"


# -- refusals --------------------------------------------------------------------------------------------

def test_password_protected_pdf_is_refused_but_an_owner_password_alone_is_not(tmp_path: Path) -> None:
    assert code_of(make_pdf(BLOCKS, tmp_path / "e.pdf", encrypted=True).read_bytes(), "e.pdf") == "encrypted_document"
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", "", 11)
    pdf.cell(text="Printing is restricted, reading is not.")
    pdf.set_encryption(owner_password="owner-only")
    pdf.output(str(tmp_path / "o.pdf"))
    doc = parse_document((tmp_path / "o.pdf").read_bytes(), "o.pdf")
    assert [b.text for b in doc.blocks] == ["Printing is restricted, reading is not."]


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_pdf_is_malformed(keep: float, tmp_path: Path) -> None:
    pdf = make_pdf(BLOCKS, tmp_path / "t.pdf").read_bytes()
    assert code_of(pdf[: int(len(pdf) * keep)], "t.pdf") == "malformed_document"


def test_corrupted_docx_is_malformed(tmp_path: Path) -> None:
    docx = make_docx(BLOCKS, tmp_path / "c.docx").read_bytes()
    assert code_of(docx[: len(docx) // 2], "c.docx") == "malformed_document"  # central directory gone
    flipped = bytearray(docx)
    for i in range(len(docx) // 2, len(docx) // 2 + 200):
        flipped[i] ^= 0x5A  # inside a compressed member: CRC / inflate error
    assert code_of(bytes(flipped), "c.docx") == "malformed_document"
    assert code_of(bytes(flipped), "upload") == "malformed_document"  # still recognisably a Word file


def test_name_promises_a_format_the_bytes_do_not_deliver() -> None:
    assert code_of(random.Random(0).randbytes(4096), "notes.txt") == "malformed_document"
    assert code_of(b"hello world", "report.pdf") == "malformed_document"
    assert code_of(b"hello world", "report.docx") == "malformed_document"


@pytest.mark.parametrize(("data", "filename"), [
    (b"", "empty.txt"), (b" \n\t\r\n ", "blank.md"), (b"<html><script>x()</script></html>", "page.html"),
])
def test_nothing_to_read_is_empty(data: bytes, filename: str) -> None:
    assert code_of(data, filename) == "empty_document"


def test_pdf_without_text_says_it_may_be_a_scan(tmp_path: Path) -> None:
    with pytest.raises(DocumentError) as caught:
        parse_document(make_pdf([], tmp_path / "scan.pdf").read_bytes(), "scan.pdf")
    assert caught.value.code == "empty_document"
    assert "scan" in str(caught.value) and "OCR" in str(caught.value)


def test_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert code_of(b"a" * 1025, "big.txt", max_bytes=1024) == "document_too_large"
    assert parse_document(b"a" * 1024, "ok.txt", max_bytes=1024).blocks
    monkeypatch.setattr(parse, "MAX_UNPACKED_BYTES", 10_000)  # a small DOCX that unpacks big: a ZIP bomb
    assert code_of(make_docx(BLOCKS, tmp_path / "bomb.docx").read_bytes(), "bomb.docx") == "document_too_large"


def test_text_encodings() -> None:
    assert parse_document("Café crème – €5".encode("cp1252"), "menu.txt").blocks[0].text == "Café crème – €5"
    assert parse_document("\ufeffCafé".encode(), "menu.txt").blocks[0].text == "Café"
    assert parse_document("Café".encode("utf-16"), "menu.txt").blocks[0].text == "Café"


# -- chunking --------------------------------------------------------------------------------------------

def sentences(n: int, tag: str = "s") -> list[str]:
    return [f"{tag}{i} is a sentence of exactly eight words." for i in range(n)]


def test_chunks_follow_sections_with_their_heading_paths() -> None:
    doc = parse_document(make_markdown(BLOCKS).encode(), "guide.md")
    chunks = chunk_document(doc, words, max_tokens=200)
    assert [(c.ord, c.section) for c in chunks] == [
        (0, "Cards and payments"),
        (1, "Cards and payments > Fees"),
        (2, "Cards and payments > Fees"),  # the table, alone
        (3, "Cards and payments > Lost or stolen cards"),  # paragraph and list packed together
        (4, "Cards and payments > Lost or stolen cards > Replacement times"),
    ]
    table = next(b.text for b in doc.blocks if b.kind == "table")
    assert chunks[2].text == table
    assert chunks[3].text.startswith("Block the card") and chunks[3].text.endswith("- Choose Block card")
    assert all(c.tokens == words(c.text) and c.text.strip() for c in chunks)


def test_sections_never_mix_even_when_they_would_fit() -> None:
    doc = ParsedDocument("t", "md", [
        Block("paragraph", "Before any heading."),
        Block("heading", "A", level=1), Block("paragraph", "Alpha one."), Block("paragraph", "Alpha two."),
        Block("heading", "B", level=2), Block("paragraph", "Beta."),
        Block("heading", "C", level=1), Block("heading", "D", level=3), Block("paragraph", "Delta."),
    ])
    chunks = chunk_document(doc, words, max_tokens=1000)
    assert [(c.section, c.text) for c in chunks] == [
        ("", "Before any heading."), ("A", "Alpha one.\n\nAlpha two."), ("A > B", "Beta."), ("C > D", "Delta.")]


def test_blocks_are_packed_whole_up_to_the_limit() -> None:
    paragraphs = [" ".join(sentences(2, f"p{i}-")) for i in range(5)]  # 16 words each
    chunks = chunk_document(ParsedDocument("t", "md", [Block("paragraph", p) for p in paragraphs]), words, max_tokens=40)
    assert [c.text for c in chunks] == ["\n\n".join(paragraphs[0:2]), "\n\n".join(paragraphs[2:4]), paragraphs[4]]


def test_long_paragraph_is_split_at_sentences_with_overlap() -> None:
    text = " ".join(sentences(30))
    chunks = chunk_document(ParsedDocument("t", "txt", [Block("paragraph", text)]), words, max_tokens=50, overlap_tokens=16)
    assert len(chunks) > 1 and all(c.tokens <= 50 for c in chunks)
    for chunk in chunks:  # cut at sentence boundaries only
        assert chunk.text.startswith("s") and chunk.text.endswith("words.")
    for before, after in zip(chunks, chunks[1:], strict=False):
        shared = [s for s in sentences(30) if s in before.text and s in after.text]
        assert len(shared) == 2, "two whole 8-word sentences fit in 16 overlap tokens"
        assert after.text.startswith(shared[0])
    assert all(any(s in c.text for c in chunks) for s in sentences(30)), "nothing is lost"


def test_overlap_is_capped_at_half_the_limit() -> None:
    text = " ".join(sentences(20))
    chunks = chunk_document(ParsedDocument("t", "txt", [Block("paragraph", text)]), words, max_tokens=24)  # default overlap 40
    # overlap 12 = one 8-word sentence: three sentences a chunk, two of them new
    assert [c.tokens for c in chunks] == [24] * 9 + [16]
    assert all(before.text.split(". ")[-1] == after.text.split(". ")[0] + "." for before, after in zip(chunks, chunks[1:], strict=False))


def test_no_overlap_when_asked_for_none() -> None:
    text = " ".join(sentences(12))
    chunks = chunk_document(ParsedDocument("t", "txt", [Block("paragraph", text)]), words, max_tokens=24, overlap_tokens=0)
    assert " ".join(c.text for c in chunks) == text


def test_sentence_longer_than_the_limit_is_split_by_words() -> None:
    giant = " ".join(f"w{i}" for i in range(95)) + "."
    text = f"Short start. {giant} Short end."
    chunks = chunk_document(ParsedDocument("t", "txt", [Block("paragraph", text)]), words, max_tokens=20, overlap_tokens=5)
    assert all(c.tokens <= 20 for c in chunks)
    covered = {w for c in chunks for w in c.text.split()}
    assert covered == set(text.split())


def test_a_single_giant_word_is_cut_into_characters() -> None:
    url = "https://example.com/" + "x" * 120
    chunks = chunk_document(ParsedDocument("t", "txt", [Block("paragraph", url)]), len, max_tokens=50, overlap_tokens=0)
    assert all(c.tokens <= 50 for c in chunks) and "".join(c.text for c in chunks) == url


def test_table_is_kept_whole_or_split_by_rows_under_its_header() -> None:
    rows = [f"| item {i} | {i} EUR |" for i in range(20)]
    table = "\n".join(["| Item | Price |", *rows])
    doc = ParsedDocument("t", "md", [Block("paragraph", "Intro."), Block("table", table), Block("paragraph", "Outro.")])
    whole = chunk_document(doc, words, max_tokens=200)
    assert [c.text for c in whole] == ["Intro.", table, "Outro."]
    split = chunk_document(doc, words, max_tokens=30)
    pieces = [c.text.split("\n") for c in split if c.text.startswith("| Item")]
    assert len(pieces) > 1 and all(p[0] == "| Item | Price |" and len(p) > 1 for p in pieces)
    assert [row for p in pieces for row in p[1:]] == rows
    assert all(c.tokens <= 30 for c in split)


def test_long_list_is_split_between_items() -> None:
    items = [f"- step {i} of the procedure" for i in range(30)]
    doc = ParsedDocument("t", "md", [Block("list", "\n".join(items))])
    chunks = chunk_document(doc, words, max_tokens=30, overlap_tokens=6)
    assert all(c.tokens <= 30 and all(line in items for line in c.text.split("\n")) for c in chunks)
    assert {line for c in chunks for line in c.text.split("\n")} == set(items)


@pytest.mark.parametrize("max_tokens", [12, 25, 60, 200])
def test_limit_order_and_determinism_on_a_mixed_document(max_tokens: int) -> None:
    rng = random.Random(max_tokens)
    blocks: list = []
    for s in range(6):
        blocks.append(("h2", f"Topic {s}"))
        for p in range(rng.randint(1, 4)):
            blocks.append(("p", " ".join(sentences(rng.randint(1, 12), f"t{s}p{p}x"))))
        blocks.append(("ul", [f"item {i} of topic {s}" for i in range(rng.randint(1, 6))]))
    doc = parse_document(make_markdown(blocks).encode(), "mixed.md")
    chunks = chunk_document(doc, words, max_tokens=max_tokens, overlap_tokens=max_tokens // 5)
    assert chunks == chunk_document(doc, words, max_tokens=max_tokens, overlap_tokens=max_tokens // 5)
    assert [c.ord for c in chunks] == list(range(len(chunks)))
    assert all(0 < c.tokens <= max_tokens and c.text.strip() for c in chunks)
    topics = [int(re.search(r"Topic (\d)", c.section).group(1)) for c in chunks]  # type: ignore[union-attr]
    assert topics == sorted(topics) and set(topics) == set(range(6))


def test_pdf_chunks_carry_their_first_page(tmp_path: Path) -> None:
    long = [("p", " ".join(sentences(12, f"page{i}-"))) for i in range(12)]
    doc = parse_document(make_pdf([("h1", "Manual"), *long], tmp_path / "m.pdf").read_bytes(), "m.pdf")
    chunks = chunk_document(doc, words, max_tokens=120)
    pages = [c.page for c in chunks]
    assert pages[0] == 1 and pages[-1] > 1 and pages == sorted(pages)


@pytest.mark.parametrize(("max_tokens", "overlap"), [(0, 0), (10, -1)])
def test_bad_limits_are_rejected(max_tokens: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        chunk_document(ParsedDocument("t", "txt", [Block("paragraph", "x")]), words, max_tokens, overlap)


# -- what a review found lost or mangled ------------------------------------------------------------------

def test_docx_text_in_content_controls_tracked_insertions_fields_and_nested_tables() -> None:
    """python-docx's .text reads plain runs and hyperlinks only: content controls (cover pages, templates),
    tracked insertions Word shows, fields, smart tags and tables inside a cell were silently dropped."""
    from docx.oxml import parse_xml
    from docx.oxml.ns import nsdecls

    document = Document()
    document.add_heading("Card policy", 1)
    body, w = document.element.body, nsdecls("w")
    body.insert(len(body) - 1, parse_xml(
        f'<w:sdt {w}><w:sdtPr/><w:sdtContent><w:p><w:r><w:t>The daily ATM limit is 500 EUR.</w:t></w:r></w:p>'
        f'</w:sdtContent></w:sdt>'))
    body.insert(len(body) - 1, parse_xml(
        f'<w:p {w}><w:r><w:t xml:space="preserve">Fee is </w:t></w:r><w:ins w:id="1" w:author="a" '
        f'w:date="2024-01-01T00:00:00Z"><w:r><w:t>5 EUR</w:t></w:r></w:ins><w:del w:id="2" w:author="a" '
        f'w:date="2024-01-01T00:00:00Z"><w:r><w:delText>9 EUR</w:delText></w:r></w:del><w:r><w:t xml:space="preserve">'
        f' per </w:t></w:r><w:sdt><w:sdtContent><w:r><w:t>month</w:t></w:r></w:sdtContent></w:sdt><w:r><w:t xml:space='
        f'"preserve"> (</w:t></w:r><w:fldSimple w:instr="DOCPROPERTY tariff"><w:r><w:t>tariff B</w:t></w:r></w:fldSimple>'
        f'<w:r><w:t>).</w:t></w:r></w:p>'))
    table = document.add_table(rows=1, cols=2)
    table.cell(0, 0).text = "Outer"
    table.cell(0, 1).add_table(rows=1, cols=1).cell(0, 0).text = "Nested fee"
    out = io.BytesIO()
    document.save(out)
    blocks = [(b.kind, b.text) for b in parse_document(out.getvalue(), "policy.docx").blocks]
    assert blocks == [("heading", "Card policy"), ("paragraph", "The daily ATM limit is 500 EUR."),
                      ("paragraph", "Fee is 5 EUR per month (tariff B)."), ("table", "| Outer | Nested fee |")]


def test_html_block_elements_inside_list_items_and_cells_separate_words() -> None:
    html = (b"<ul><li><div>Block</div><div>overdraft</div></li><li><p>Report a lost card.</p><p>Call the hotline."
            b"</p></li><li>Plain <b>bold</b>er item</li></ul><table><tr><th>Fee</th><th>Note</th></tr><tr><td><p>Annual "
            b"fee 50 EUR.</p><p>Waived for students.</p></td><td>first<br>second</td></tr></table>")
    blocks = [(b.kind, b.text) for b in parse_document(html, "fees.html").blocks]
    assert blocks == [("list", "- Block overdraft\n- Report a lost card. Call the hotline.\n- Plain bolder item"),
                      ("table", "| Fee | Note |\n| Annual fee 50 EUR. Waived for students. | first second |")]


@pytest.mark.parametrize(("text", "kept"), [
    ("---\n\n# Title\n\nIntro.\n\n---\n\nMore.\n", ["Title", "Intro.", "More."]),          # a horizontal rule first
    ("---\nWelcome to the guide.\n\n---\n\n## Fees\n", ["Welcome to the guide.", "Fees"]),  # not YAML
    ("---\ntitle: Fees\ntags:\n  - cards\n# internal\n---\n# Fees\n", ["Fees"]),              # YAML front matter
])
def test_markdown_drops_only_yaml_front_matter(text: str, kept: list[str]) -> None:
    assert [b.text for b in parse_document(text.encode(), "guide.md").blocks] == kept


def test_control_characters_are_not_text() -> None:
    """A PDF font without a Unicode map gives NULs; Postgres refuses them, after every chunk was embedded."""
    content = b"BT /F1 12 Tf 72 700 Td (Fee is \\000\\001five euros a month.) Tj ET"
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> "
               b"/Contents 4 0 R >>", b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    pdf, offsets = io.BytesIO(), []
    pdf.write(b"%PDF-1.4\n")
    for number, body in enumerate(objects, 1):
        offsets.append(pdf.tell())
        pdf.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = pdf.tell()
    pdf.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets))
    pdf.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    (block,) = parse_document(pdf.getvalue(), "fees.pdf").blocks
    assert block.text == "Fee is five euros a month."


def test_a_table_row_too_big_for_its_header_names_each_value_by_its_column() -> None:
    """The header row used to be left out of every chunk when no row fit beside it."""
    header = "| Product | Annual fee | Foreign transaction fee | Cash withdrawal fee | Interest rate |"
    rows = ["| Gold credit card for frequent travellers | 50 EUR, waived in the first year | none within the EU, "
            "1.5 % outside | 2 % of the amount, at least 3 EUR | 14.9 % APR |",
            "| Silver | 20 EUR | 2 % | 3 EUR | 16.9 % APR |"]
    doc = ParsedDocument("fees", "md", [Block("table", "\n".join([header, *rows]))])
    chunks = [c.text for c in chunk_document(doc, words, max_tokens=40, overlap_tokens=0)]
    assert any(c.startswith("Product: Gold credit card for frequent travellers; Annual fee: 50 EUR") for c in chunks)
    assert f"{header}\n{rows[1]}" in chunks           # a row that fits keeps the header row above it
    assert all(words(c) <= 40 for c in chunks)
    # A title row over the whole table (one cell) names no columns: the row is kept whole, split as text.
    titled = ParsedDocument("fees", "html", [Block("table", "| Card fees 2025 |\n" + rows[0])])
    text = " ".join(c.text for c in chunk_document(titled, words, max_tokens=20, overlap_tokens=0))
    assert "14.9 % APR" in text and "1.5 % outside" in text


def test_docx_non_breaking_hyphens_and_absolute_tabs_are_kept() -> None:
    from docx.oxml import parse_xml
    from docx.oxml.ns import nsdecls

    document = Document()
    body, w = document.element.body, nsdecls("w")
    body.insert(len(body) - 1, parse_xml(
        f'<w:p {w}><w:r><w:t>Call 0800</w:t><w:noBreakHyphen/><w:t>123</w:t><w:noBreakHyphen/><w:t>456 for '
        f'help</w:t><w:ptab w:relativeTo="margin" w:alignment="right" w:leader="none"/><w:t>Page</w:t></w:r></w:p>'))
    out = io.BytesIO()
    document.save(out)
    (block,) = parse_document(out.getvalue(), "help.docx").blocks
    assert block.text == "Call 0800-123-456 for help Page"
