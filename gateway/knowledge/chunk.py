"""Cut a parsed document into retrieval chunks that follow its structure.

Design
------
* **Sections never mix.** Every heading starts a new chunk, and each chunk carries its heading path
  ("Cards > Lost or stolen cards") so the caller can prepend it for embedding and show it as the source;
  the path is not repeated inside ``text``.
* **Whole blocks first.** Within a section, paragraphs and lists are packed whole, in order, while the
  chunk stays within ``max_tokens``; nothing that fits is ever cut.
* **Tables stand alone.** A table gets a chunk of its own; one bigger than ``max_tokens`` is split by rows
  and every piece repeats the header row, so each piece still says what its columns mean.
* **Long text is windowed.** A paragraph bigger than ``max_tokens`` is split into sentences (a list into
  its items), a sentence that alone is too big into words, and — last resort, for one giant "word" such as
  a URL or base64 under a real tokenizer — a word into characters. The units are packed into windows, and
  each window starts with the trailing whole units of the previous one, up to ``overlap_tokens``, so an
  answer that straddles a cut is still whole in one chunk. The overlap is capped at half of ``max_tokens``
  so a small limit with the default overlap still moves on.
* **Measured, not estimated.** Every chunk is measured with ``count_tokens`` (the embedding model's
  tokenizer in production) and is ≤ ``max_tokens``, provided the counter is monotonic (a longer text never
  has fewer tokens) and a single character fits. Chunk text keeps the document's own characters: windows
  are slices of the block, not re-joined words.
* Deterministic: the same document and counter always give the same chunks.

Limits: sentence boundaries are ``.``/``!``/``?`` (plus closing quotes) followed by white space, so "e.g. x"
splits too — harmless, as units are packed back together and only overlap boundaries move. Overlap applies
within one long block, never across blocks or sections. A heading with no text of its own yields no chunk;
it lives on in the section path of the headings below it. ``page`` is the page the chunk's first block starts
on, so a later window of a PDF paragraph that runs over a page break still names the earlier page.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gateway.knowledge.parse import Block, ParsedDocument

TokenCounter = Callable[[str], int]
Span = tuple[int, int]

_SENTENCE_BREAK = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"'”’)\]]))\s+|\n\s*")
_LINE_BREAK = re.compile(r"\n\s*")
_WORD = re.compile(r"\S+")


@dataclass
class Chunk:
    ord: int  # 0-based order in the document
    section: str  # heading path, e.g. "Cards > Lost or stolen cards" ("" before the first heading)
    text: str  # no heading path inside; the caller adds it for embedding
    tokens: int
    page: int | None = None  # first page the chunk starts on (PDF)


def chunk_document(doc: ParsedDocument, count_tokens: TokenCounter, max_tokens: int = 200, overlap_tokens: int = 40) -> list[Chunk]:
    """Chunks in document order; see the module docstring for the rules."""
    if max_tokens < 1 or overlap_tokens < 0:
        raise ValueError("need max_tokens >= 1 and overlap_tokens >= 0")
    overlap = min(overlap_tokens, max_tokens // 2)  # so that every window moves on by at least half
    chunks: list[Chunk] = []
    for section, blocks in _sections(doc.blocks):
        for text, page in _section_pieces(blocks, count_tokens, max_tokens, overlap):
            chunks.append(Chunk(ord=len(chunks), section=section, text=text, tokens=count_tokens(text), page=page))
    return chunks


def _sections(blocks: list[Block]) -> Iterator[tuple[str, list[Block]]]:
    """Runs of non-heading blocks with the heading path above them; a heading closes the run before it."""
    path: list[Block] = []
    body: list[Block] = []
    for block in blocks:
        if block.kind != "heading":
            body.append(block)
            continue
        if body:
            yield " > ".join(h.text for h in path), body
            body = []
        path = [h for h in path if h.level < block.level] + [block]
    if body:
        yield " > ".join(h.text for h in path), body


def _section_pieces(blocks: list[Block], count: TokenCounter, max_tokens: int, overlap: int) -> Iterator[tuple[str, int | None]]:
    """(text, page) per chunk of one section: blocks packed whole, tables alone, oversized blocks split."""
    pack: list[Block] = []
    for block in blocks:
        if block.kind != "table" and count("\n\n".join(b.text for b in [*pack, block])) <= max_tokens:
            pack.append(block)
            continue
        if pack:
            yield "\n\n".join(b.text for b in pack), pack[0].page
            pack = []
        if count(block.text) <= max_tokens:
            if block.kind == "table":
                yield block.text, block.page
            else:
                pack = [block]
        elif block.kind == "table":
            yield from ((text, block.page) for text in _split_table(block.text, count, max_tokens))
        else:
            breaker = _LINE_BREAK if block.kind == "list" else _SENTENCE_BREAK
            yield from ((text, block.page) for text in _split_text(block.text, breaker, count, max_tokens, overlap))
    if pack:
        yield "\n\n".join(b.text for b in pack), pack[0].page


def _split_table(text: str, count: TokenCounter, max_tokens: int) -> list[str]:
    """Rows packed under a repeated header row; a row too big even alone is split as text."""
    header, *rows = text.split("\n")
    if not rows:
        return _split_text(text, _WORD, count, max_tokens, 0)
    pieces: list[str] = []
    current: list[str] = []
    for row in rows:
        if count("\n".join([header, *current, row])) <= max_tokens:
            current.append(row)
            continue
        if current:
            pieces.append("\n".join([header, *current]))
            current = []
        if count(f"{header}\n{row}") <= max_tokens:
            current = [row]
        else:   # too big with its header: each value named by its column instead, split as text
            labelled = _labelled_row(header, row)
            pieces.extend(_split_text(labelled, _WORD, count, max_tokens, 0))
    if current:
        pieces.append("\n".join([header, *current]))
    return pieces


def _labelled_row(header: str, row: str) -> str:
    """"Annual fee: 50 EUR; Card: Gold" for a row too big to repeat the header row over: every piece of it
    still says what its values are (the header was in no chunk at all when no row fit beside it)."""
    names, values = _cells(header), _cells(row)
    if names is None or values is None or len(values) > len(names):   # a title row over the table: no names to give
        return f"{header}\n{row}"
    return "; ".join(f"{name}: {value}" if name else value for name, value in zip(names, values, strict=False) if value)


def _cells(line: str) -> list[str] | None:
    line = line.strip()
    if len(line) < 2 or not (line.startswith("|") and line.endswith("|")):
        return None
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line[1:-1])]


def _split_text(text: str, breaker: re.Pattern[str], count: TokenCounter, max_tokens: int, overlap: int) -> list[str]:
    """Overlapping windows over the units that ``breaker`` separates, each unit first made to fit."""
    units = [fit for span in _spans(text, breaker) for fit in _fit(text, span, count, max_tokens)]
    return _windows(text, units, count, max_tokens, overlap)


def _spans(text: str, breaker: re.Pattern[str]) -> list[Span]:
    """The (start, end) of the text between the breaker's matches; for ``_WORD`` the matches themselves."""
    if breaker is _WORD:
        return [m.span() for m in _WORD.finditer(text)]
    spans: list[Span] = []
    start = 0
    for match in breaker.finditer(text):
        if text[start:match.start()].strip():
            spans.append((start, match.start()))
        start = match.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


def _fit(text: str, span: Span, count: TokenCounter, max_tokens: int) -> list[Span]:
    """A unit that fits stays whole; one that does not falls apart into words, a giant word into characters."""
    start, end = span
    if count(text[start:end]) <= max_tokens:
        return [span]
    words = [(start + a, start + b) for a, b in _spans(text[start:end], _WORD)]
    if len(words) > 1:
        return [fit for word in words for fit in _fit(text, word, count, max_tokens)]
    pieces: list[Span] = []
    while start < end:
        cut = end
        while cut - start > 1 and count(text[start:cut]) > max_tokens:
            cut = start + (cut - start) // 2
        pieces.append((start, cut))
        start = cut
    return pieces


def _windows(text: str, units: list[Span], count: TokenCounter, max_tokens: int, overlap: int) -> list[str]:
    """Greedy windows of consecutive units; each next window re-opens with the previous window's tail."""
    windows: list[str] = []
    first = 0
    while first < len(units):
        last = first
        while last + 1 < len(units) and count(text[units[first][0]:units[last + 1][1]]) <= max_tokens:
            last += 1
        windows.append(text[units[first][0]:units[last][1]])
        if last == len(units) - 1:
            break
        nxt = last + 1
        while nxt - 1 > first and count(text[units[nxt - 1][0]:units[last][1]]) <= overlap:
            nxt -= 1
        while nxt <= last and count(text[units[nxt][0]:units[last + 1][1]]) > max_tokens:
            nxt += 1  # the overlap must leave room for the next unit, or the window would not advance
        first = nxt
    return windows
