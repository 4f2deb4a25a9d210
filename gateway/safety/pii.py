"""PII detection: which substrings of a message are personal data, by type, with a canonical form.

Design
------
* **Validators, not just shapes.** A pattern only proposes a candidate; a validator decides: Luhn plus a
  card-issuer prefix (CARD), ISO 7064 mod-97 plus the country's BBAN structure via python-stdnum (IBAN),
  SSA area/group/serial rules (SSN), HMRC prefix/suffix rules (NINO), octet ranges / ``ipaddress``
  (IP_ADDRESS), the ``phonenumbers`` metadata for the configured regions (PHONE). Shapes that are common in
  ordinary text (a bare 9-digit number, a date, a lower-case NINO) count only with a context word nearby
  ("SSN", "born", "national insurance"); a number right after "order", "invoice", "tracking", "ref"… is
  never taken for a phone or an SSN, so order numbers, tracking ids and amounts survive.
* **Configurable patterns.** PASSPORT and ACCOUNT (and anything an operator adds) are ``CustomPattern``
  regexes that count only when one of their context words appears shortly before the match.
* **Priorities.** Every detector proposes candidates; overlaps are resolved by type priority (validated
  types first, then context-bound patterns, phone, address, name), then by length. The result is sorted and
  non-overlapping, and a placeholder already in the text (``<CARD_1>``) is never touched.
* **Spoken forms.** Transcripts say numbers: "four five three two…", "oh"/"o"/"zero", "double five",
  "triple", "niner", "twenty one", "nineteen eighty five", "plus four four". Runs of number words are
  rewritten into digits in a *view* of the text that keeps a map back to the original offsets; all
  detectors run on that view, so a spoken card is validated exactly like a written one and its span
  covers the spoken words. Canonical values come from the view (digits), so "4111 1111…", "4111-1111…"
  and "four one one one…" are the same card.
* **E-mail** includes obfuscated and spoken forms ("john at example dot com", "john [at] example [dot]
  com") when the domain ends in a known top-level domain and the local part is not an ordinary word
  ("look at this dot com" stays).
* **Names and addresses, locally.** PERSON: cue phrases ("my name is", "this is", "I'm", "speak to",
  "Hi", "signed", "my wife,"…), titles (Mr, Dr…), and capitalised words that start with a known first
  name from the embedded gazetteer (``pii_names``), extended by following surname-like words; ambiguous
  first names ("Will", "May", "Grace") need a cue. ADDRESS: house number + street name + street type,
  with flat/unit, town, UK postcode or US state + ZIP; UK postcodes alone; a few continental forms;
  lower-case transcript addresses only after "I live at", "my address is"…

Speed: the text is lower-cased once and most patterns are written so that ``re`` can jump to their first
literal or character class (no leading look-behind; word boundaries are checked in Python instead); the
digit-based detectors run only when the text has enough digits, the rest behind cheap substring checks.

Known limits: names without a cue whose first word is not in the gazetteer (and single surnames without
a title) are missed; street addresses without a street-type word ("30 St Mary Axe") yield only their
postcode; a card written with its CVV glued on as one digit run is not split; spoken IBANs, e-mails
with spoken digits and spoken IP addresses are not recognised; a date near "born" that is not the birth
date is still taken as one.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import phonenumbers
from stdnum import iban as stdnum_iban

from gateway.safety.pii_names import AMBIGUOUS, CITIES, COMMON, FIRST_NAMES, NOT_NAME, SURNAME_FIRST


@dataclass(frozen=True, slots=True)
class PiiSpan:
    start: int
    end: int
    type: str
    value: str
    canonical: str


@dataclass(frozen=True, slots=True)
class CustomPattern:
    """An operator-defined detector: ``pattern`` is a regex; with ``context``, a match counts only when one
    of those words (case-insensitive) appears within ``CONTEXT_WINDOW`` characters before it."""

    type: str
    pattern: str
    context: tuple[str, ...] = ()


CONTEXT_WINDOW = 50
_TYPE_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*?_\d{1,4}>")

_ACCOUNT_WORDS = ("account", "acct", "acc", "a/c", "sort code")
DEFAULT_PATTERNS: tuple[CustomPattern, ...] = (
    CustomPattern("PASSPORT", r"(?<![\w-])(?:[A-Z]{1,2} ?\d{6,9}|[a-z]{1,2}\d{6,9}|\d{9})(?![\w-])", ("passport",)),
    CustomPattern("ACCOUNT", r"(?<![\w-])\d{2}[- ]\d{2}[- ]\d{2}[ ,/]+\d{8}(?![\w-])", (*_ACCOUNT_WORDS, "bank")),
    CustomPattern("ACCOUNT", r"(?<![\w-])\d{2}-\d{2}-\d{2}(?![\w-])", ("sort code",)),
    CustomPattern("ACCOUNT", r"(?<![\w-])(?:\d{8,12}|\d{4}[ -]\d{4}(?:[ -]\d{2,4})?)(?![\w-])", _ACCOUNT_WORDS),
)

# Lower number = wins an overlap. Operator patterns rank below the validated types, above weaker guesses.
_PRIORITY = {"CARD": 0, "IBAN": 1, "EMAIL": 2, "IP_ADDRESS": 3, "SSN": 4, "NINO": 5, "DOB": 7, "PHONE": 8,
             "ADDRESS": 9, "PERSON": 10}
_CUSTOM_PRIORITY = 6

# A candidate: (start, end, type, canonical) in view coordinates.
Candidate = tuple[int, int, str, str]


# ---------------------------------------------------------------- spoken numbers → digits (the view)

_UNITS = {"zero": "0", "oh": "0", "o": "0", "nought": "0", "one": "1", "two": "2", "three": "3", "four": "4",
          "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "niner": "9"}
_TEENS = {"ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14", "fifteen": "15",
          "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19"}
_TENS = {"twenty": "2", "thirty": "3", "forty": "4", "fifty": "5", "sixty": "6", "seventy": "7", "eighty": "8",
         "ninety": "9"}
_REPEAT = {"double": 2, "triple": 3}
_ZERO_WORDS = frozenset({"oh", "o"})
_NUMBER_WORD = "|".join(sorted({*_UNITS, *_TEENS, *_TENS, *_REPEAT, "hundred"}, key=len, reverse=True))
_NUMBER_RUN = re.compile(rf"(?:{_NUMBER_WORD})(?![\w'’])(?:(?:\s*[,-]\s*|\s+)(?:{_NUMBER_WORD})(?![\w'’]))*")
_PLUS_BEFORE = re.compile(r"plus\s+$")
_WORD_IN_RUN = re.compile(r"[a-z]+")


def _spoken_digits(low: str, start: int, end: int) -> list[tuple[int, int, str]]:
    """The digits the number words in ``low[start:end]`` stand for, as (start, end, digits) pieces."""
    words = [(m.start(), m.end(), m.group()) for m in _WORD_IN_RUN.finditer(low, start, end)]
    if len(words) > 1 and words[0][2] in _ZERO_WORDS and "," in low[words[0][1]:words[1][0]]:
        words = words[1:]                                   # "oh, four five…": an interjection, not a zero
    pieces, i = [], 0
    while i < len(words):
        w_start, w_end, word = words[i]
        nxt = words[i + 1][2] if i + 1 < len(words) else ""
        if word in _REPEAT and nxt in _UNITS:                               # "double five"
            pieces.append((w_start, words[i + 1][1], _UNITS[nxt] * _REPEAT[word]))
            i += 2
        elif word in _TENS and nxt in _UNITS and _UNITS[nxt] != "0":        # "twenty one"
            pieces.append((w_start, words[i + 1][1], _TENS[word] + _UNITS[nxt]))
            i += 2
        elif word in _UNITS and nxt == "hundred":                           # "eight hundred"
            pieces.append((w_start, words[i + 1][1], _UNITS[word] + "00"))
            i += 2
        else:
            digits = _UNITS.get(word) or _TEENS.get(word) or (_TENS[word] + "0" if word in _TENS else "")
            pieces.append((w_start, w_end, "+" if word == "plus" else digits))
            i += 1
    return pieces


def _worth_converting(pieces: list[tuple[int, int, str]]) -> bool:
    """A lone "one" or "oh" is a word, not a number: convert runs of two or more, or "twelve", "double five"."""
    return len(pieces) > 1 or any(len(p[2]) > 1 for p in pieces)


@dataclass(slots=True)
class _View:
    """The text with spoken number runs rewritten as digits, and the way back to original offsets."""

    text: str
    starts: list[int] | None = None     # per view character: original start / end of what produced it
    ends: list[int] | None = None

    @classmethod
    def of(cls, text: str, low: str) -> _View:
        out: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        pos = 0
        for run in _word_matches(_NUMBER_RUN, low):
            plus = _PLUS_BEFORE.search(low, max(pos, run.start() - 8), run.start())
            start = plus.start() if plus and _at_word_start(low, plus.start()) else run.start()
            pieces = _spoken_digits(low, start, run.end())
            if not _worth_converting(pieces):
                continue
            out.append(text[pos:pieces[0][0]])
            starts.extend(range(pos, pieces[0][0]))
            ends.extend(range(pos + 1, pieces[0][0] + 1))
            for start, end, digits in pieces:
                out.append(digits)
                starts.extend([start] * len(digits))
                ends.extend([end] * len(digits))
            pos = pieces[-1][1]
        if not out:
            return cls(text)
        out.append(text[pos:])
        starts.extend(range(pos, len(text)))
        ends.extend(range(pos + 1, len(text) + 1))
        return cls("".join(out), starts, ends)

    def original(self, start: int, end: int) -> tuple[int, int]:
        if self.starts is None or self.ends is None:
            return start, end
        return self.starts[start], self.ends[end - 1]


# ---------------------------------------------------------------- shared helpers

@dataclass(frozen=True, slots=True)
class _Doc:
    """A text as the finders see it: the view, its lower-case twin (same offsets) and its digit count."""

    text: str
    low: str
    digits: int

    @classmethod
    def of(cls, text: str) -> _Doc:
        return cls(text, _lower(text), _digit_count(text))


def _lower(text: str) -> str:
    """``text.lower()`` with the same offsets (a few characters, like "İ", lower-case to two)."""
    low = text.lower()
    return low if len(low) == len(text) else "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def _at_word_start(text: str, i: int) -> bool:
    return i == 0 or not (text[i - 1].isalnum() or text[i - 1] in "_'’")


def _word_matches(pattern: re.Pattern[str], text: str, pos: int = 0, endpos: int | None = None) -> Iterator[re.Match]:
    """Matches of ``pattern`` that start a word. The patterns have no leading look-behind so that ``re`` can
    skip ahead to their first literal; the word-start check is done here instead."""
    endpos = len(text) if endpos is None else endpos
    while pos < endpos and (m := pattern.search(text, pos, endpos)) is not None:
        if _at_word_start(text, m.start()):
            yield m
            pos = max(m.end(), m.start() + 1)
        else:
            pos = m.start() + 1


_NEGATIVE_CONTEXT = re.compile(
    r"(?i)\b(?:order|orders|invoice|inv|ref|reference|tracking|ticket|confirmation|booking|transaction|txn|receipt|"
    r"serial|sku|isbn|po|policy|claim|membership|(?:case|part|item|model|member|customer|id)\s*(?:no\b\.?|number|num\b|#))"
    r"(?![a-z])")
_PHONE_CUE = re.compile(r"(?i)\b(?:phone|call|tel|telephone|mobile|mob|cell|ring|text|whatsapp|fax|contact|reach)\b")


def _digit_count(text: str) -> int:
    return sum(map(text.count, "0123456789"))


def _preceded_by(pattern: re.Pattern[str], text: str, start: int, window: int = CONTEXT_WINDOW) -> re.Match | None:
    """The last match of ``pattern`` in the ``window`` characters before ``start``."""
    matches = list(pattern.finditer(text, max(0, start - window), start))
    return matches[-1] if matches else None


_REFERENCE_GAP = re.compile(r"(?i)[\s#:.\-]*(?:(?:no|nr|num|number|id|code|is|was)\b[\s#:.\-]*){0,3}")


def _looks_like_reference(text: str, start: int) -> bool:
    """A number right after "order", "invoice", "transaction"… ("order no. 12345", "ref: 1234") is a reference,
    unless a phone cue comes between. Only right after: "It's about a transaction, my number is 07911…"
    is a phone number (in a bank, "transaction" is in most messages)."""
    neg = _preceded_by(_NEGATIVE_CONTEXT, text, start, 30)
    if neg is None or _PHONE_CUE.search(text, neg.end(), start):
        return False
    return _REFERENCE_GAP.fullmatch(text, neg.end(), start) is not None


def _context_regex(words: Iterable[str]) -> re.Pattern[str]:
    """Context words, for the lower-case text: whole words, also plural or possessive ("accounts", "passport's").
    Use with ``_word_matches``/``_last_word_match`` (the word start is checked there)."""
    alternatives = "|".join(re.escape(w.lower()) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?:{alternatives})(?:s|'s|’s)?(?![a-z])")


def _last_word_match(pattern: re.Pattern[str], low: str, start: int, window: int = CONTEXT_WINDOW) -> re.Match | None:
    """The last word-start match of ``pattern`` in the ``window`` characters of ``low`` before ``start``."""
    matches = list(_word_matches(pattern, low, max(0, start - window), start))
    return matches[-1] if matches else None


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# ---------------------------------------------------------------- CARD

# A run of digits with single space or dash separators; which part of it is the card is decided in _cards
# (a card is often followed by its expiry or CVV: "4111 1111 1111 1111 12/26", "… 1111 123").
# Not glued to a word or a number before it ("x4111…", "1.4111…", "12/4111…"); punctuation after a label is
# fine ("No.4111…", "card-4111…"), and so is a comma after a number (a list of cards).
_CARD = re.compile(r"\d(?<![\w.,/-].)(?<!\d[ -].)(?:[ -]?\d){12,}|\d(?<=[^\W\d_][.,/-].)(?:[ -]?\d){12,}"
                   r"|\d(?<=[\d>],.)(?:[ -]?\d){12,}")
_GROUP_END = re.compile(r"\d(?=[ -]\d)")


def _issuer_ok(d: str) -> bool:
    """Card-issuer prefixes and their lengths: keeps random Luhn-passing numbers (ids, timestamps) out."""
    n, p2, p4 = len(d), int(d[:2]), int(d[:4])
    if d[0] == "4":
        return n in (13, 16, 19)                                    # Visa
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16                                              # Mastercard
    if p2 in (34, 37):
        return n == 15                                              # Amex
    if p2 in (30, 36, 38, 39):
        return 14 <= n <= 19                                        # Diners
    if p2 == 35:
        return 3528 <= p4 <= 3589 and 16 <= n <= 19                 # JCB
    if d[0] == "6" or p2 == 50 or 56 <= p2 <= 58:
        return 12 < n <= 19                                         # Discover, UnionPay, Maestro
    return False


def _cards(doc: _Doc) -> Iterator[Candidate]:
    """The longest front of each digit run, cut at a group boundary, that is a card (issuer and Luhn). A run
    that goes on into a decimal or a date ("1234567890123.45", "…/2026") is a number, not a card."""
    for m in _CARD.finditer(doc.text):
        run = m.group()
        ends = [len(run)] + [g.end() for g in reversed(list(_GROUP_END.finditer(run)))]
        for end in ends:
            if end == len(run) and re.match(r"\w|\.\d", doc.text[m.end():m.end() + 2]):
                continue          # the whole run goes on into a word or a decimal: only a cut at a separator may be a card
            digits = re.sub(r"\D", "", run[:end])
            if 12 < len(digits) <= 19 and _issuer_ok(digits) and _luhn_ok(digits):
                yield m.start(), m.start() + end, "CARD", digits
                break


# ---------------------------------------------------------------- IBAN

_IBAN = re.compile(r"[A-Za-z](?<![\w-].)[A-Za-z]\d{2}(?:[ -]?[A-Za-z0-9]){10,32}")


def _ibans(doc: _Doc) -> Iterator[Candidate]:
    text, pos = doc.text, 0
    while m := _IBAN.search(text, pos):
        pos = m.end()
        s = m.group()
        # Candidates may run into the next words: try the cuts that end at a group boundary, longest first,
        # and go on scanning right after the IBAN found (the next one may start inside this candidate).
        cuts = [i for i in range(len(s), 14, -1) if s[i - 1].isalnum() and (i == len(s) or not s[i].isalnum())]
        for cut in cuts:
            if stdnum_iban.is_valid(s[:cut]):
                yield m.start(), m.start() + cut, "IBAN", stdnum_iban.compact(s[:cut])
                pos = m.start() + cut
                break
        else:
            pos = m.start() + 1


# ---------------------------------------------------------------- SSN

_SSN_GROUPED = re.compile(r"(?<![\w-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w-]|[ -]\d)")
_SSN_BARE = re.compile(r"(?<![\w-])\d{9}(?![\w-])")
_SSN_CONTEXT = re.compile(r"(?i)\b(?:ssns?|ss#|ss\s?no|social(?:\s+security)?|soc\.?\s?sec)")


def _ssn_ok(digits: str) -> bool:
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _ssns(doc: _Doc) -> Iterator[Candidate]:
    text = doc.text
    for m in _SSN_GROUPED.finditer(text):
        digits = m.group(1) + m.group(3) + m.group(4)
        if _ssn_ok(digits) and not _looks_like_reference(text, m.start()):
            yield m.start(), m.end(), "SSN", digits
    for m in _SSN_BARE.finditer(text):
        if _ssn_ok(m.group()) and _preceded_by(_SSN_CONTEXT, text, m.start()):
            yield m.start(), m.end(), "SSN", m.group()


# ---------------------------------------------------------------- NINO

_NINO = re.compile(r"(?i)([A-CEGHJ-PR-TW-Z])(?<![\w-].)[ -]?([A-CEGHJ-NPR-TW-Z])[ -]?(\d{2})[ -]?(\d{2})[ -]?(\d{2})[ -]?([A-D])(?![\w-])")
_NINO_BAD_PREFIX = frozenset({"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"})
_NINO_CONTEXT = re.compile(r"(?i)\b(?:nino|ni|n\.i\.|national\s+insurance)\b")


def _ninos(doc: _Doc) -> Iterator[Candidate]:
    text = doc.text
    for m in _NINO.finditer(text):
        canonical = "".join(m.groups()).upper()
        if canonical[:2] in _NINO_BAD_PREFIX:
            continue
        if m.group().isupper() or _preceded_by(_NINO_CONTEXT, text, m.start()):
            yield m.start(), m.end(), "NINO", canonical


# ---------------------------------------------------------------- EMAIL

_EMAIL = re.compile(r"(?<![\w.%+'-])[A-Za-z0-9][A-Za-z0-9._%+'-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                    r"[A-Za-z]{2,24}(?![\w-]|\.[A-Za-z0-9])")
_TLDS = ("com|org|net|edu|gov|mil|int|io|co|uk|us|ca|au|nz|ie|de|fr|es|it|nl|be|ch|at|se|no|dk|fi|pl|pt|cz|ru|cn|jp|"
         "kr|in|br|mx|ar|za|ng|ke|info|biz|me|tv|app|dev|ai|eu|travel|online|email|mail|name|pro|xyz|tech|site")
_DOT = r"(?:\s+dot\s+|\s*\[dot\]\s*|\s*\(dot\)\s*|\.)"
_LOCAL_JOIN = r"(?:\s+(?:dot|underscore|dash|hyphen)\s+|\s*\[dot\]\s*|\s*\(dot\)\s*|[._-])"
# Spoken/obfuscated addresses are found from their "at" (cheap to look for), then the local part before it
# and the domain after it; all on the lower-case text.
_SPOKEN_AT = re.compile(r"at(?<=\sat)(?=\s)|\[at\]|\(at\)")
_SPOKEN_LOCAL = re.compile(rf"[a-z0-9]+(?:{_LOCAL_JOIN}[a-z0-9]+)*\s*$")
_SPOKEN_DOMAIN = re.compile(rf"\s*([a-z0-9-]+(?:{_DOT}[a-z0-9-]+)*{_DOT}(?:{_TLDS}))(?![\w-]|\.[a-z0-9])")
_NOT_LOCAL = frozenset("""a an the me us you him her them it this that these those here there home work school
look looking looked meet meeting met arrive arrived arriving be is are was were am stay stayed live lives lived
staying born left leave start starts end ends open opens close closes available back away good great bad better
aim aimed point pointed laugh laughed smile smiled shot stare staring glance glanced eat ate off up down out in on
once least all best first last noon night midnight lunch dinner breakfast time times someone anyone everyone
people she he we they i email mail reach contact write call""".split())


def _emails(doc: _Doc) -> Iterator[Candidate]:
    if "@" in doc.text:
        for m in _EMAIL.finditer(doc.text):
            yield m.start(), m.end(), "EMAIL", m.group().lower()
    for at in _SPOKEN_AT.finditer(doc.low):
        domain = _SPOKEN_DOMAIN.match(doc.low, at.end())
        local = next(_word_matches(_SPOKEN_LOCAL, doc.low, max(0, at.start() - 64), at.start()), None) if domain else None
        if local is None or doc.low[local.start() - 1:local.start()] in (".", "@", "-"):
            continue
        local_text = local.group().rstrip()
        if local_text not in _NOT_LOCAL:
            yield local.start(), domain.end(1), "EMAIL", _email_canonical(local_text, domain.group(1))


def _email_canonical(local: str, domain: str) -> str:
    def spell(part: str) -> str:
        part = re.sub(r"(?i)\s*(?:\[dot\]|\(dot\)|\bdot\b)\s*", ".", part)
        part = re.sub(r"(?i)\s*\bunderscore\b\s*", "_", part)
        return re.sub(r"(?i)\s*\b(?:dash|hyphen)\b\s*", "-", part).replace(" ", "")
    return f"{spell(local)}@{spell(domain)}".lower()


# ---------------------------------------------------------------- IP_ADDRESS

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4})?(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?<=:)(?:\d{1,3}\.){3}\d{1,3})?(?![\w:]|\.\w)")
_VERSION_CONTEXT = re.compile(r"(?i)\b(?:version|ver|v|build|release|firmware|update|python|node|java)\W{0,3}$")
_DOTTED_DIGITS = re.compile(r"\d\.\d+\.\d")
_HEX_COLONS = re.compile(r":[0-9A-Fa-f]{0,4}:")


def _ips(doc: _Doc) -> Iterator[Candidate]:
    text = doc.text
    if doc.digits >= 4 and _DOTTED_DIGITS.search(text):
        for m in _IPV4.finditer(text):
            if not _VERSION_CONTEXT.search(text, max(0, m.start() - 12), m.start()):
                yield m.start(), m.end(), "IP_ADDRESS", m.group()
    if _HEX_COLONS.search(text):
        for m in _IPV6.finditer(text):
            if not any(c.isdigit() for c in m.group()):
                continue
            try:
                address = ipaddress.IPv6Address(m.group())
            except ValueError:
                continue
            yield m.start(), m.end(), "IP_ADDRESS", address.compressed


# ---------------------------------------------------------------- DOB

_MONTHS = {"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10,
           "nov": 11, "dec": 12}
_MONTH = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
_ORDINAL_WORDS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
                  "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
                  "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
                  "twentieth": 20, "thirtieth": 30}
_DAY_WORD = r"(?:(?:twenty|thirty|20|30)[\s-]?)?(?:" + "|".join(sorted(_ORDINAL_WORDS, key=len, reverse=True)) + ")"
_DAY = rf"(?:(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?|{_DAY_WORD})"
_YEAR = r"(?:19|20)\d{2}"
_YEAR_OR_SHORT = r"(?:(?:19|20)\d{2}|\d{2})"    # "14 March 85": a date of birth is often written so
_DATE = re.compile(
    rf"(?i)(?<![\w/.-])(?:"
    rf"(?P<n1>\d{{1,2}})(?P<sep>[/.-])(?P<n2>\d{{1,2}})(?P=sep)(?P<n3>\d{{4}}|\d{{2}})"
    rf"|(?P<iy>\d{{4}})(?P<isep>[/.-])(?P<im>\d{{1,2}})(?P=isep)(?P<id>\d{{1,2}})"
    rf"|(?P<dd>{_DAY})(?:\s+of)?(?:\s+|\s?[-./]\s?)(?P<dm>{_MONTH})(?:(?:,?\s+|\s?[-./]\s?)(?P<dy>{_YEAR_OR_SHORT}))?"
    rf"|(?P<mm>{_MONTH})\s+(?:the\s+)?(?P<md>{_DAY})(?:,?\s+(?P<my>{_YEAR}))?"
    rf"|(?P<compact>\d{{8}})"
    rf")(?![\w/-]|\.\d)")
_BIRTH = re.compile(r"(?:born|birth\w*|b-?days?|dob|d\.\s?o\.\s?b\.?)(?![a-z])")


def _day_number(token: str) -> int:
    """3, "3rd", "third", "twenty first", "20 first" (after spoken-number conversion) → day of month."""
    token = token.lower()
    tens = 20 if token.startswith(("twenty", "20")) else 30 if token.startswith(("thirty", "30")) else 0
    word = re.sub(r"^(?:twenty|thirty|20|30)[\s-]?", "", token) if tens else token
    if word in _ORDINAL_WORDS:
        return tens + _ORDINAL_WORDS[word] if tens and _ORDINAL_WORDS[word] < 10 else _ORDINAL_WORDS[word]
    return int(re.sub(r"\D", "", token))


def _date_canonical(m: re.Match) -> str | None:
    """ISO form (``--MM-DD`` without a year) of a plausible calendar date, else None."""
    g = m.groupdict()
    if g["n1"]:
        a, b, year = int(g["n1"]), int(g["n2"]), g["n3"]
        day, month = (a, b) if b <= 12 else (b, a)          # day-first unless that cannot be
        year = year if len(year) == 4 else ("19" if int(year) > 30 else "20") + year
    elif g["iy"]:
        year, month, day = g["iy"], int(g["im"]), int(g["id"])
    elif g["compact"]:
        c = g["compact"]
        year, month, day = (c[:4], int(c[4:6]), int(c[6:])) if c[:2] in ("19", "20") else (c[4:], int(c[2:4]), int(c[:2]))
    else:
        word = g["dm"] or g["mm"]
        day, month, year = _day_number(g["dd"] or g["md"]), _MONTHS[word[:3].lower()], g["dy"] or g["my"]
        if year and len(year) == 2:
            year = ("19" if int(year) > 30 else "20") + year
    if not (1 <= month <= 12 and 1 <= day <= 31) or (year and not 1900 <= int(year) <= 2099):
        return None
    return f"{year}-{month:02d}-{day:02d}" if year else f"--{month:02d}-{day:02d}"


def _dobs(doc: _Doc) -> Iterator[Candidate]:
    """Dates that start up to 45 characters after a birth word, or end up to 30 before one."""
    for birth in _word_matches(_BIRTH, doc.low):
        for m in _DATE.finditer(doc.text, max(0, birth.start() - 60), min(len(doc.text), birth.end() + 90)):
            near = 0 <= m.start() - birth.end() <= 45 or 0 <= birth.start() - m.end() <= 30
            if near and (canonical := _date_canonical(m)):
                yield m.start(), m.end(), "DOB", canonical


# ---------------------------------------------------------------- PHONE

_PHONE = re.compile(r"(?<![\w+@])(?<![\w@+][./-])(?<![\d/][:+])(?:(?:\+|\b00)\s?)?\(?\d(?:(?:[ .\-]|\)\s?|\s?\()?\d|\s?\(0\)\s?\d){6,16}(?![\w@]|[.\-]?\d|,\d(?!\d{6}))")


class _PhoneValidator:
    """``phonenumbers`` validation for the configured regions. A national number must carry the region's
    trunk prefix ("0…" in the UK) unless the region has none in practice (NANP), so that a bare 10-digit
    reference is not read as a British number."""

    def __init__(self, regions: Sequence[str]) -> None:
        self.regions = [(r, phonenumbers.PhoneMetadata.metadata_for_region(r)) for r in regions]
        if unknown := [r for r, meta in self.regions if meta is None]:
            raise ValueError(f"unknown phone regions: {unknown}")

    def canonical(self, candidate: str) -> str | None:
        raw = candidate.strip()
        digits = re.sub(r"\D", "", raw)
        if not 7 <= len(digits) <= 15:
            return None
        if raw.startswith(("+", "00")):
            return self._e164("+" + (digits[2:] if raw.startswith("00") else digits), None)
        for region, meta in self.regions:
            if meta.national_prefix and meta.country_code != 1 and not digits.startswith(meta.national_prefix):
                continue
            if (e164 := self._e164(raw, region)) is not None:
                return e164
        return None

    @staticmethod
    def _e164(raw: str, region: str | None) -> str | None:
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_valid_number(number):
            return None
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _phones(doc: _Doc, validator: _PhoneValidator) -> Iterator[Candidate]:
    text = doc.text
    for m in _PHONE.finditer(text):
        if _looks_like_reference(text, m.start()):
            continue
        if (e164 := validator.canonical(m.group())) is not None:
            yield m.start(), m.end(), "PHONE", e164


# ---------------------------------------------------------------- custom patterns (PASSPORT, ACCOUNT…)

@dataclass(frozen=True, slots=True)
class _CompiledPattern:
    type: str
    regex: re.Pattern[str]
    context: re.Pattern[str] | None

    @classmethod
    def of(cls, p: CustomPattern) -> _CompiledPattern:
        if not _TYPE_NAME.fullmatch(p.type):
            raise ValueError(f"PII type {p.type!r} must match [A-Z][A-Z0-9_]*")
        try:
            regex = re.compile(p.pattern)
        except re.error as e:
            raise ValueError(f"PII pattern for {p.type} does not compile: {e}") from e
        return cls(p.type, regex, _context_regex(p.context) if p.context else None)

    def find(self, doc: _Doc) -> Iterator[Candidate]:
        if self.context is not None and next(_word_matches(self.context, doc.low), None) is None:
            return
        for m in self.regex.finditer(doc.text):
            if m.end() > m.start() and (self.context is None or _last_word_match(self.context, doc.low, m.start())):
                yield m.start(), m.end(), self.type, re.sub(r"[\s-]", "", m.group()).upper()


# ---------------------------------------------------------------- ADDRESS

_STREET_TYPE = ("Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Dr|Boulevard|Blvd|Close|Way|Court|Ct|Place|Pl|Terrace|"
                "Crescent|Cres|Gardens|Grove|Square|Sq|Parkway|Pkwy|Highway|Hwy|Row|Mews|Hill|Walk|Rise|Circle|Loop|"
                "Trail|Parade|Wharf|Quay|Green|Park|Vale|Plaza|Alley|Heights")
_UNIT = r"(?:Flat|Apartment|Apt|Unit|Suite|Ste|Room)\.?\s*#?\s*(?=[A-Za-z]?\d)\w{1,5}"
_STREET = re.compile(
    rf"(?i)\d(?<![\w/-].)\d{{0,4}}[a-z]?(?:/\d{{1,5}}[a-z]?)?,?\s+"
    rf"(?P<name>(?:(?:[nsew]|[^\W\d_][\w'’.-]*|\d{{1,3}}(?:st|nd|rd|th))\s+){{1,4}})"
    rf"(?P<type>{_STREET_TYPE})\b(?:\.(?=,))?(?:\s+(?:N|S|E|W|NE|NW|SE|SW)\b)?")
_ADDRESS_CUE = re.compile(r"(?i)\b(?:live|living|lives|lived|stay|staying|reside|resides|address|moved|move|deliver|"
                          r"send|ship|post|located|at)\b\W*(?:(?:it|is|to|at|number|no\.?)\W+)*$")
_UK_POSTCODE_REST = r"(?:\d[A-HJKPSTUW\d]?|[A-HK-Y]\d[ABEHMNPRV-Y\d]?) ?\d[ABD-HJLNP-UW-Z]{2}"
_UK_POSTCODE = rf"(?:[A-PR-UWYZ]{_UK_POSTCODE_REST})"
_POSTCODE_UPPER = re.compile(rf"[A-PR-UWYZ](?<![\w-].){_UK_POSTCODE_REST}(?![\w-])")
_POSTCODE_ANY = re.compile(rf"(?i)(?<![\w-]){_UK_POSTCODE}(?![\w-])")
_POSTCODE_CONTEXT = re.compile(r"(?i)\bpost\s?code")
_CONTINENTAL_HINTS = ("stra", "weg", "gasse", "platz", "allee", "ring", "damm", "ufer", "via", "piazza", "corso", "calle",
                      "avenida", "rua", "paseo", "carrer", "rue", "avenue", "boulevard", "bd", "place", "allée", "chemin",
                      "impasse", "quai", "cours")
_ZIP_ALONE = re.compile(r"(?i)\bzip(?:\s*code)?(?:\s+is)?[:\s]+(\d{5}(?:-\d{4})?)(?![\w-])")
_UNIT_BEFORE = re.compile(rf"(?i)(?<![\w]){_UNIT},?\s+$")
_UNIT_AFTER = re.compile(rf"(?i),?\s+(?:{_UNIT}|#\s*\w{{1,5}})")
_TOWN_WORD = r"[^\W\d_]+(?:['’.-][^\W\d_]+)*(?![\w'’-])"
_TOWN = re.compile(rf"(,\s*|\s+)({_TOWN_WORD}(?:[ ]{_TOWN_WORD}){{0,2}})")
_POSTAL_TAIL = re.compile(rf"(?:,?\s+)(?:{_UK_POSTCODE}|\d{{5}}(?:-\d{{4}})?)(?![\w-])", re.IGNORECASE)
_PO_BOX = re.compile(r"(?i)(?<![\w])P\.?\s?O\.?\s+Box\s+\d{1,6}")
_CONTINENTAL = re.compile(
    r"(?<![\w])(?:[A-ZÄÖÜ][\wäöüß-]*(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|ufer)\s+\d{1,4}[a-z]?"
    r"|(?:Via|Viale|Piazza|Corso|Calle|Avenida|Rua|Plaza|Paseo|Carrer)\s+(?:(?:de|del|della|di|da|do|dos|la|las|los)\s+)*"
    r"[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*){0,2},?\s+\d{1,4}[a-z]?"
    r"|\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?:rue|avenue|boulevard|bd|place|allée|chemin|impasse|quai|cours)\s+"
    r"(?:(?:de|du|des|la|le|l')\s*)*[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*){0,2})"
    r"(?:,?\s+\d{4,5}\s+[A-Z][\w'’-]+)?")
_TOWN_STOP = frozenset("""thanks thank please and but or the i it my we you he she they so then cheers regards best is was
ok okay yes no hi hello dear sorry tel phone email card call mobile ref order""".split())


def _name_words_ok(words: list[str], cued: bool) -> bool:
    """Street-name words: capitalised (or a number like 42nd), or any non-common word after an address cue."""
    if all(w[0].isupper() or w[0].isdigit() for w in words):
        return not any(w.lower() in _TOWN_STOP for w in words)
    return cued and not any(w.lower() in COMMON and w.lower() not in ("new", "old") for w in words)


def _extend_address(text: str, end: int, cued: bool) -> int:
    """Unit, up to two towns and a postcode/ZIP after a street; a town needs a comma, a known city name or a
    postcode after it."""
    if m := _UNIT_AFTER.match(text, end):
        end = m.end()
    for _ in range(2):
        town_end = _town_end(text, end, cued)
        if town_end is None:
            break
        end = town_end
    if m := _POSTAL_TAIL.match(text, end):
        end = m.end()
    return end


def _town_end(text: str, pos: int, cued: bool) -> int | None:
    """Where a town right after ``pos`` ends: capitalised words after a comma or before a postcode, or a known
    city (also lower case after an address cue); None if what follows is not a town."""
    m = _TOWN.match(text, pos)
    if not m or m.group(2).split()[0].lower() in _TOWN_STOP:
        return None
    words = m.group(2).split()
    if all(w[0].isupper() for w in words):
        if "," in m.group(1) or _POSTAL_TAIL.match(text, m.end()):
            return m.end()
    known = [n for n in range(len(words), 0, -1) if " ".join(words[:n]).lower() in CITIES]
    if known and (cued or words[0][0].isupper()):
        return m.start(2) + len(" ".join(words[:known[0]]))
    return None


def _addresses(doc: _Doc) -> Iterator[Candidate]:
    if not doc.digits:
        return
    text, low = doc.text, doc.low
    yield from _streets(text)
    if "box" in low:
        for m in _PO_BOX.finditer(text):
            end = _extend_address(text, m.end(), False)
            yield m.start(), end, "ADDRESS", _squash(text[m.start():end])
    if any(hint in low for hint in _CONTINENTAL_HINTS):
        for m in _CONTINENTAL.finditer(text):
            yield m.start(), m.end(), "ADDRESS", _squash(m.group())
    for m in _POSTCODE_UPPER.finditer(text):
        yield m.start(), m.end(), "ADDRESS", _squash(m.group())
    if "post" in low:
        for m in _POSTCODE_ANY.finditer(text):
            if _preceded_by(_POSTCODE_CONTEXT, text, m.start(), 30):
                yield m.start(), m.end(), "ADDRESS", _squash(m.group())
    if "zip" in low:
        for m in _ZIP_ALONE.finditer(text):
            yield m.start(1), m.end(1), "ADDRESS", m.group(1)


def _streets(text: str) -> Iterator[Candidate]:
    """House number + street name + street type, with a flat/unit before and town/postcode after."""
    for m in _STREET.finditer(text):
        unit = _UNIT_BEFORE.search(text, max(0, m.start() - 30), m.start())
        start = unit.start() if unit else m.start()
        cued = bool(_ADDRESS_CUE.search(text, max(0, start - 40), start))
        words = m.group("name").split()
        if not _name_words_ok(words, cued) or (m.group("type").lower() == "dr" and not words[-1][0].isupper()):
            continue
        end = _extend_address(text, m.end(), cued)
        yield start, end, "ADDRESS", _squash(text[start:end])


def _squash(value: str) -> str:
    return re.sub(r"[\s,]+", " ", value).strip().upper()


# ---------------------------------------------------------------- PERSON

_UPPER_CHARS = "".join(c for c in map(chr, range(0x41, 0x250)) if c.isupper())
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_CAP_WORD = re.compile(rf"[{re.escape(_UPPER_CHARS)}](?<![\w'’-].)[^\W\d_]*(?:['’-][^\W\d_]+)*")
_PARTICLES = frozenset({"van", "von", "de", "da", "del", "della", "di", "du", "la", "le", "der", "den", "ter", "ten",
                        "bin", "ibn", "al", "el", "dos", "das"})
_RELATIVES = r"wife|husband|son|daughter|mother|mum|mom|father|dad|brother|sister|partner|friend|colleague|boss|manager|" \
             r"grandmother|grandfather|grandma|grandpa|aunt|uncle|cousin|niece|nephew|fiancée?|girlfriend|boyfriend"
# Cues and titles are matched on the lower-case text (see ``_word_matches``).
_STRONG_CUE = re.compile(r"(?:my\s+name\s+is|my\s+name['’]s|name\s+is|name['’]s|names?\s*:|full\s+name\s*:?|"
                         r"name\s+on\s+(?:the\s+)?card\s+is|known\s+as|signed,?|sincerely,?|regards,?)\s+")
_WEAK_CUE = re.compile(rf"(?:this\s+is|it['’]s|it\s+is|i['’]m|i\s+am|call\s+me|speak(?:ing)?\s+(?:to|with)|"
                       rf"talk(?:ing)?\s+(?:to|with)|spoke\s+(?:to|with)|ask\s+for|hi|hello|hey|dear|thanks,?|"
                       rf"thank\s+you,?|cheers,?|best,?|from:|to:|cc:|(?:my|our|his|her)\s+(?:{_RELATIVES}),?|"
                       rf"for\s+my\s+(?:{_RELATIVES}),?|update\s+the\s+name\s+to|beneficiary\s+is|holders?:|"
                       rf"holder\s+is|confirm\s+with)\s+")
_TITLE = re.compile(r"(?:mr|mrs|ms|miss|mx|dr|prof|sir|dame|mister|inspector|detective|captain|rev)\.?\s+")
_SELF_CUE_AFTER = re.compile(r"\s+(?:here|speaking)\b")
_SAINT_BEFORE = re.compile(r"(?i)\b(?:st|saint)\.?\s+$")


def _is_name_word(word: str) -> bool:
    """A capitalised word only has to avoid the never-a-name list; a lower-case one also the common words."""
    lower = word.lower()
    return lower not in NOT_NAME and (word[0].isupper() or lower not in COMMON)


def _same_case(first: str, word: str) -> bool:
    """Following words must look like the first: Capitalised after Capitalised, lower after lower, CAPS after CAPS."""
    if first.isupper() and len(first) > 1:
        return word.isupper()
    if first[0].isupper():
        return word[0].isupper()
    return word.islower()


def _name_from(text: str, pos: int, need_known_first: bool, known_or_capitalised: bool = False,
               cued: bool = True) -> tuple[int, int] | None:
    """The name starting at ``pos`` (first word plus up to two more, with particles), or None. After a cue a
    known first name may be an ordinary word too ("I'm Will"); a possessive ("John's") ends the name."""
    first = _WORD.match(text, pos)
    if not first:
        return None
    word, end = _possessive_base(first.group()), first.start() + len(_possessive_base(first.group()))
    known = word.lower() in FIRST_NAMES
    if not (_is_name_word(word) or (cued and known and word[0].isupper())):
        return None
    if need_known_first and (not known or (word.islower() and word in AMBIGUOUS)):
        return None
    if known_or_capitalised and not known and not word[0].isupper():
        return None
    if end < first.end():
        return first.start(), end
    count, cursor = 1, end
    while count < 3:
        gap = re.match(r"[ ]+", text[cursor:cursor + 3])
        if not gap:
            break
        nxt = _WORD.match(text, cursor + len(gap.group()))
        if not nxt:
            break
        w = _possessive_base(nxt.group())
        if w.lower() in _PARTICLES and w.islower() and word[0].isupper():
            cursor = nxt.end()
            continue
        if not ((_is_name_word(w) or (w[0].isupper() and w.lower() in FIRST_NAMES)) and _same_case(word, w)):
            break
        end = cursor = nxt.start() + len(w)
        count += 1
        if cursor < nxt.end():
            break
    return first.start(), end


def _possessive_base(word: str) -> str:
    return word[:-2] if len(word) > 3 and word[-2:].lower() in ("'s", "’s") else word


def _persons(doc: _Doc) -> Iterator[Candidate]:
    text = doc.text
    for cue, need_known in ((_STRONG_CUE, False), (_WEAK_CUE, True)):
        for m in _word_matches(cue, doc.low):
            if (span := _name_from(text, m.end(), need_known)) is not None:
                yield span[0], span[1], "PERSON", _squash(text[span[0]:span[1]])
    for m in _word_matches(_TITLE, doc.low):
        if (span := _name_from(text, m.end(), False, known_or_capitalised=True)) is not None:
            yield span[0], span[1], "PERSON", _squash(text[span[0]:span[1]])
    yield from _gazetteer_names(text)


def _gazetteer_names(text: str) -> Iterator[Candidate]:
    """Capitalised words starting with a known first name (or a family name said first); an ambiguous first
    name only with a surname after it or "here"/"speaking"."""
    for m in _CAP_WORD.finditer(text):
        word = _possessive_base(m.group())
        lower = word.lower()
        if word.isupper() and len(word) > 1:
            continue
        if lower in SURNAME_FIRST:
            span = _name_from(text, m.start(), False, cued=False)
            if span and any(w.lower() in FIRST_NAMES for w in text[m.start() + len(word):span[1]].split()):
                yield span[0], span[1], "PERSON", _squash(text[span[0]:span[1]])
            continue
        if lower not in FIRST_NAMES or _SAINT_BEFORE.search(text, max(0, m.start() - 7), m.start()):
            continue
        span = _name_from(text, m.start(), True, cued=False)
        if span is None:
            continue
        alone = span[1] == m.start() + len(word)
        if lower in AMBIGUOUS and alone and not _SELF_CUE_AFTER.match(text, m.end()):
            continue
        yield span[0], span[1], "PERSON", _squash(text[span[0]:span[1]])


# ---------------------------------------------------------------- the detector

Finder = Callable[[_Doc], Iterable[Candidate]]


class PiiDetector:
    """Finds PII spans in a text; one instance is shared by all requests (it holds no per-call state)."""

    def __init__(self, patterns: Iterable[CustomPattern] = DEFAULT_PATTERNS, regions: Sequence[str] = ("US", "GB")) -> None:
        self.patterns = tuple(_CompiledPattern.of(p) for p in patterns)
        phone_validator = _PhoneValidator(regions)
        self._digit_finders: tuple[tuple[int, Finder], ...] = (
            (13, _cards), (7, lambda doc: _phones(doc, phone_validator)), (9, _ssns), (6, _ninos), (8, _ibans))
        self._other_finders: tuple[Finder, ...] = (_emails, _ips, _dobs, _addresses, _persons)

    def detect(self, text: str) -> list[PiiSpan]:
        if not text:
            return []
        low = _lower(text)
        view = _View.of(text, low)
        doc = _Doc(view.text, low, _digit_count(view.text)) if view.starts is None else _Doc.of(view.text)
        candidates = list(self._candidates(doc))
        blocked = [(m.start(), m.end()) for m in _PLACEHOLDER.finditer(doc.text)] if "<" in doc.text else []
        return [self._span(text, view, c) for c in _resolve(candidates, blocked)]

    def _candidates(self, doc: _Doc) -> Iterator[Candidate]:
        for min_digits, finder in self._digit_finders:
            if doc.digits >= min_digits:
                yield from finder(doc)
        for finder in self._other_finders:
            yield from finder(doc)
        for pattern in self.patterns:
            yield from pattern.find(doc)

    @staticmethod
    def _span(text: str, view: _View, c: Candidate) -> PiiSpan:
        start, end = view.original(c[0], c[1])
        return PiiSpan(start, end, c[2], text[start:end], c[3])


def _priority(c: Candidate) -> int:
    return _PRIORITY.get(c[2], _CUSTOM_PRIORITY)


def _resolve(candidates: list[Candidate], blocked: list[tuple[int, int]]) -> list[Candidate]:
    """Non-overlapping winners, by type priority then length then position; placeholders are never touched."""
    starts: list[int] = []
    ends: list[int] = []
    owners: list[Candidate | None] = []
    for start, end in blocked:
        _claim(starts, ends, owners, start, end, None)
    for c in sorted(set(candidates), key=lambda c: (_priority(c), c[0] - c[1], c[0])):
        i = bisect.bisect_left(starts, c[0])
        if (i == 0 or ends[i - 1] <= c[0]) and (i == len(starts) or starts[i] >= c[1]):
            _claim(starts, ends, owners, c[0], c[1], c)
    return [c for c in owners if c is not None]


def _claim(starts: list[int], ends: list[int], owners: list[Candidate | None], start: int, end: int,
           owner: Candidate | None) -> None:
    i = bisect.bisect_left(starts, start)
    starts.insert(i, start)
    ends.insert(i, end)
    owners.insert(i, owner)
