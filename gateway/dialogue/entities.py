"""Typed values for slot filling: rules and validators, no model.

A banking assistant asks "how much?", "which card?", "when was it?"; the answer arrives as typed chat
(with typos) or as speech-to-text ("two hundred and fifty euros", "one two three four", "yesterday").
A model is not needed to read these and would be harder to trust, so each type is a few patterns plus a
validator. Spoken numbers are first rewritten to digits in a shadow copy of the text that keeps a map back
to the original, so every pattern is written once, for digits, and every span still points into what the
user wrote.

Rules worth knowing (each is a choice, kept deliberately simple):

* amount: a number with a currency mark (symbol, ISO code, or word such as "euros", "quid") is an amount.
  A bare number is an amount only when it is the whole reply (fillers like "um, about" aside: an answer to
  "how much?") or directly follows a money word ("paid 250", "a transfer of 40") and is not followed by a
  unit ("3 days", "2 times", "5%"). A number inside a date, a time ("at 9", "9:30") or a card reference
  ("ending 1234") is never a bare amount.
* date: the user is describing something that happened, so dates are in the past: a day and month without a
  year that would be in the future is last year's, "the 28th" is this month's or last month's, and a weekday
  ("on monday", "last friday") is the most recent one strictly before today. "next friday" is not read.
* card_last4: four digits after a cue ("ending", "ends in", "last four", "card"), the last four of a full card
  number (16 digits, or 13-19 that pass the Luhn check), or four digits that are the whole reply.
* typos: a word of five letters or more matches a keyword one edit away (Damerau) when it starts with the
  same letter and is not a common word that happens to be that close ("safer" is not "saver").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from stdnum import luhn

__all__ = ["ENTITY_TYPES", "Entity", "extract", "extract_all", "parse_yes_no"]


@dataclass(frozen=True)
class Entity:
    type: str          # one of ENTITY_TYPES
    value: Any         # normalised, JSON-serialisable
    text: str          # the span as written
    start: int
    end: int


ENTITY_TYPES: frozenset[str] = frozenset(
    {"amount", "date", "card_last4", "account_type", "integer", "enum", "yes_no", "text"})


# --------------------------------------------------------------------------------------------------------
# Fuzzy words
# --------------------------------------------------------------------------------------------------------

# Real words one edit away from a keyword: reading them as typos would invent slots.
_NOT_TYPOS = frozenset({"safer", "saves", "saved", "sever", "saner", "savor", "sayings", "currant",
                        "busyness", "match", "marsh", "chewing", "checkin"})


def _osa(a: str, b: str) -> int:
    """Optimal-string-alignment distance, capped: typed typos are mostly one insert/delete/swap."""
    if abs(len(a) - len(b)) > 1:
        return 2
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def _word_match(word: str, keyword: str) -> bool:
    if word == keyword:
        return True
    if len(keyword) >= 3 and (word == keyword + "s" or keyword == word + "s"):
        return True
    return (len(keyword) >= 5 and len(word) >= 4 and word[0] == keyword[0] and word not in _NOT_TYPOS
            and _osa(word, keyword) <= 1)


_WORD_TOKEN = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")


@dataclass(frozen=True)
class _Tok:
    word: str   # lower case
    start: int
    end: int


def _words(text: str) -> list[_Tok]:
    text = text.replace("\u2019", "'")
    return [_Tok(m.group().lower(), m.start(), m.end()) for m in _WORD_TOKEN.finditer(text)]


# --------------------------------------------------------------------------------------------------------
# Spoken numbers → digits, in a shadow text that maps back to the original
# --------------------------------------------------------------------------------------------------------

_UNITS = {"zero": 0, "nought": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
          "seven": 7, "eight": 8, "nine": 9}
_TEENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
          "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "ninteen": 19}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90, "ninty": 90}
_SCALES = {"thousand": 1000, "million": 10**6, "billion": 10**9}
_ORD_UNITS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
              "eighth": 8, "eigth": 8, "ninth": 9}
_ORD_OTHER = {"tenth": 10, "eleventh": 11, "twelfth": 12, "twelth": 12, "thirteenth": 13, "fourteenth": 14,
              "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
              "twentieth": 20, "thirtieth": 30}
_MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
                "october", "november", "december")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CALENDAR_WORDS = tuple(w for w in (*_MONTH_NAMES, *_WEEKDAYS, "yesterday", "tomorrow") if len(w) >= 5)
_CALENDAR_MISSPELLINGS = {"wensday": "wednesday", "wendsday": "wednesday", "febuary": "february",
                          "feburary": "february"}


def _ordinal_suffix(n: int) -> str:
    if 10 <= n % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


@dataclass
class _Shadow:
    """``text`` is the original with spoken numbers as digits; ``span`` maps a shadow span back."""

    original: str
    text: str
    starts: list[int]
    ends: list[int]

    def span(self, a: int, b: int) -> tuple[int, int]:
        return self.starts[a], self.ends[b - 1]


def _shadow(text: str) -> _Shadow:
    toks = [_Tok(m.group().lower(), m.start(), m.end()) for m in re.finditer(r"[A-Za-z]+", text)]
    n = len(toks)

    def joined(k: int) -> bool:   # token k follows token k-1 with only spaces or hyphens between
        return k < n and re.fullmatch(r"[ \t\-]+", text[toks[k - 1].end:toks[k].start]) is not None

    def digit_of(k: int) -> str | None:
        w = toks[k].word
        if w in _UNITS:
            return str(_UNITS[w])
        if w in ("oh", "o") and not text.startswith("'", toks[k].end):
            return "0"
        return None

    def digit_run(i: int) -> tuple[str, int] | None:
        """"one two three four", "double four one two", "four oh one two" → the digits, read one by one."""
        digits, k, doubled = "", i, False
        while k < n and (k == i or joined(k)):
            w = toks[k].word
            if w in ("double", "triple") and k + 1 < n and joined(k + 1) and toks[k + 1].word in _UNITS:
                digits += str(_UNITS[toks[k + 1].word]) * (2 if w == "double" else 3)
                doubled, k = True, k + 2
                continue
            d = digit_of(k)
            if d is None:
                break
            digits, k = digits + d, k + 1
        if toks[i].word in ("oh", "o") and len(digits) != 4:   # "oh, one two three" is an exclamation
            return None
        if len(digits) >= 3 or (doubled and len(digits) >= 2):
            return digits, k
        return None

    def ordinal(i: int) -> tuple[int, int] | None:
        w = toks[i].word
        if w in _TENS and i + 1 < n and joined(i + 1) and toks[i + 1].word in _ORD_UNITS:
            return _TENS[w] + _ORD_UNITS[toks[i + 1].word], i + 2
        if w in _ORD_UNITS:
            return _ORD_UNITS[w], i + 1
        if w in _ORD_OTHER:
            return _ORD_OTHER[w], i + 1
        return None

    def cardinal(i: int) -> tuple[str, int] | None:
        total, group, last, last_scale = 0, 0, "", 10**12
        k, end = i, i
        while k < n:
            if k > i and not joined(k):
                break
            w = toks[k].word
            if k == i and w in ("a", "an"):
                if k + 1 < n and joined(k + 1) and toks[k + 1].word in ("hundred", *_SCALES):
                    group, last, k = 1, "unit", k + 1
                    continue
                return None
            if w == "and":
                if last in ("hundred", "scale") and k + 1 < n and joined(k + 1) and (
                        toks[k + 1].word in _UNITS or toks[k + 1].word in _TEENS or toks[k + 1].word in _TENS):
                    k += 1
                    continue
                break
            if w in _UNITS and last in ("", "hundred", "scale", "tens"):
                group, last = group + _UNITS[w], "unit"
            elif w in _TEENS and last in ("", "hundred", "scale"):
                group, last = group + _TEENS[w], "teen"
            elif w in _TENS and last in ("", "hundred", "scale"):
                group, last = group + _TENS[w], "tens"
            elif w == "hundred" and last in ("", "unit", "teen", "tens") and group < 100:
                group, last = (group or 1) * 100, "hundred"
            elif w in _SCALES and last in ("unit", "teen", "tens", "hundred") and _SCALES[w] < last_scale:
                total, group, last, last_scale = total + group * _SCALES[w], 0, "scale", _SCALES[w]
            else:
                break
            k, end = k + 1, k + 1
        if end == i:
            return None
        value = str(total + group)
        if end < n and joined(end) and toks[end].word == "point":
            frac, k = "", end + 1
            while k < n and joined(k) and toks[k].word in _UNITS:
                frac, k = frac + str(_UNITS[toks[k].word]), k + 1
            if frac:
                value, end = f"{value}.{frac}", k
        return value, end

    pieces: list[tuple[int, int, str]] = []   # (start, end, replacement) in the original
    i = 0
    while i < n:
        w = toks[i].word
        if w == "four" and i > 0 and joined(i) and toks[i - 1].word == "last":   # "last four", not a digit
            pieces.append((toks[i].start, toks[i].end, "4"))
            i += 1
            continue
        for reader in (digit_run, ordinal, cardinal):
            got = reader(i)
            if got is not None:
                value, j = got
                text_value = f"{value}{_ordinal_suffix(value)}" if reader is ordinal else str(value)
                pieces.append((toks[i].start, toks[j - 1].end, text_value))
                i = j
                break
        else:
            canonical = _CALENDAR_MISSPELLINGS.get(w)
            if canonical is None and len(w) >= 5 and w not in _CALENDAR_WORDS and w not in _NOT_TYPOS:
                canonical = next((c for c in _CALENDAR_WORDS if w[0] == c[0] and _osa(w, c) <= 1), None)
            if canonical is not None and canonical != w:
                pieces.append((toks[i].start, toks[i].end, canonical))
            i += 1

    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for a, b, rep in [*pieces, (len(text), len(text), "")]:
        for j in range(pos, a):
            out.append("'" if text[j] == "\u2019" else text[j])
            starts.append(j)
            ends.append(j + 1)
        out.append(rep)
        starts.extend([a] * len(rep))
        ends.extend([b] * len(rep))
        pos = b
    return _Shadow(text, "".join(out), starts, ends)


# --------------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------------

Span = tuple[int, int, Any]   # shadow start, shadow end, value


def _non_overlapping(cands: Iterable[Span]) -> list[Span]:
    """Longest first, then earliest; the survivors in reading order."""
    kept: list[Span] = []
    for c in sorted(cands, key=lambda c: (-(c[1] - c[0]), c[0])):
        if all(c[1] <= k[0] or c[0] >= k[1] for k in kept):
            kept.append(c)
    return sorted(kept, key=lambda c: c[0])


def _overlaps(a: int, b: int, spans: Iterable[tuple[int, int, Any]]) -> bool:
    return any(a < s[1] and s[0] < b for s in spans)


_FILLER = (r"it's|it\s+is|it\s+was|its|it|is|was|um+|uh+|er+m?|hmm+|ah+|the|yes|yeah|yep|ok|okay|sure|so|"
           r"they're|they\s+are|that's|that\s+is|i\s+think|like|well|about|around|roughly|approximately|"
           r"maybe|just|only|exactly|please|thanks|thank\s+you|my|number|digits|amount|are|of")
_LEAD_FILLER = re.compile(rf"[^\w€£$]+|(?:{_FILLER})\b", re.I)
_TRAIL_FILLER = re.compile(rf"[^\w€£$%]+$|\b(?:{_FILLER})$", re.I)


_SHORT_REPLY = 120


def _core(s: str) -> tuple[int, int]:
    """The reply without fillers and punctuation around it: "um, it's 1234." → "1234".

    Only a short reply can be "just the value"; longer text is left whole (and this stays linear)."""
    a, b = 0, len(s)
    if b > _SHORT_REPLY:
        return a, b
    while True:
        before = (a, b)
        m = _LEAD_FILLER.match(s, a, b)
        if m and m.end() > a:
            a = m.end()
        m = _TRAIL_FILLER.search(s, a, b)
        if m and m.start() < b:
            b = m.start()
        if (a, b) == before:
            return a, b


# --------------------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------------------

_MONTHS = {name: i + 1 for i, name in enumerate(_MONTH_NAMES)}
_MONTHS.update({"jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9,
                "oct": 10, "nov": 11, "dec": 12})
_MON = "|".join(sorted(_MONTHS, key=len, reverse=True))
_YEAR = r"(?P<year>\d{4}|(?:19|20)\s\d{2})"
_ORD = r"(?:st|nd|rd|th)"
_DAY_MONTH = re.compile(
    rf"\b(?:the\s+)?(?P<day>\d{{1,2}}){_ORD}?(?:\s+of)?[\s-]+(?P<mon>{_MON})\b\.?(?:(?:,?\s+|-){_YEAR}\b)?", re.I)
_MONTH_DAY = re.compile(
    rf"\b(?P<mon>{_MON})\b\.?\s+(?:the\s+)?(?P<day>\d{{1,2}}){_ORD}?\b(?![.,:]\d)(?:,?\s+{_YEAR}\b)?", re.I)
_ISO = re.compile(r"(?<![\d/.-])(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})(?!\d)")
_DMY = re.compile(r"(?<![\d/.-])(?P<a>\d{1,2})(?P<sep>[/.-])(?P<b>\d{1,2})(?P=sep)(?P<y>\d{4}|\d{2})(?![\d/.-]\d|\d)")
_DM = re.compile(r"(?<![\d/.-])(?P<a>\d{1,2})/(?P<b>\d{1,2})(?![\d/])")
_ORD_ONLY = re.compile(
    rf"(?:\bthe\s+|(?<=\bon\s))(?P<day>\d{{1,2}}){_ORD}\b"
    r"(?:\s+of\s+(?:the\s+)?(?P<rel>this|last|previous)\s+month)?", re.I)
_ORD_ONLY_FOLLOW = re.compile(
    r"\s*(?:$|[.,;:!?)]|(?:this|last|at|in|and|or|i|when|for|on|we|my|please|it|there|was|but|so|too)\b)", re.I)
_WEEKDAY = re.compile(
    r"\b(?:(?P<mod>last|this\s+past|past|on|this|next)\s+)?(?P<wd>" + "|".join(_WEEKDAYS) + r")\b", re.I)
_AGO = re.compile(r"\b(?P<n>\d{1,3}|an?|a\s+couple\s+of)\s+(?P<unit>days?|weeks?|fortnights?)\s+ago\b", re.I)
_RELATIVE: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"\b(?:the\s+)?day\s+before\s+yesterday\b", re.I), -2),
    (re.compile(r"\byesterday\b|\blast\s+night\b", re.I), -1),
    (re.compile(r"\btoday\b|\btonight\b|\bthis\s+(?:morning|afternoon|evening)\b", re.I), 0),
    (re.compile(r"\b(?:the\s+)?day\s+after\s+tomorrow\b", re.I), 2),
    (re.compile(r"\btomorrow\b", re.I), 1),
)


def _safe_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _past_day_month(today: date, month: int, day: int) -> date | None:
    """Without a year, the most recent such day not after today (a dispute is about the past)."""
    for year in range(today.year, today.year - 8, -1):
        got = _safe_date(year, month, day)
        if got is not None and got <= today:
            return got
    return None


def _past_day(today: date, day: int) -> date | None:
    """"the 28th": this month's if it has passed, else the most recent earlier month that has one."""
    y, m = today.year, today.month
    for _ in range(13):
        got = _safe_date(y, m, day)
        if got is not None and got <= today:
            return got
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return None


def _year(raw: str | None) -> int | None:
    if raw is None:
        return None
    digits = re.sub(r"\s", "", raw)
    return int(digits)


def _date_spans(sh: _Shadow, today: date) -> list[Span]:
    t = sh.text
    cands: list[Span] = []

    def add(m: re.Match[str], got: date | None) -> None:
        if got is not None:
            cands.append((m.start(), m.end(), got))

    for m in _ISO.finditer(t):
        add(m, _safe_date(int(m["y"]), int(m["m"]), int(m["d"])))
    for pattern in (_DMY, _DM):
        for m in pattern.finditer(t):
            a, b = int(m["a"]), int(m["b"])
            day, month = (a, b) if b <= 12 else (b, a)   # day first; month first only when it must be
            if month > 12 or (pattern is _DM and (a, b) == (24, 7)):
                continue
            if pattern is _DMY:
                year = int(m["y"]) + (2000 if len(m["y"]) == 2 else 0)
                add(m, _safe_date(year, month, day))
            else:
                add(m, _past_day_month(today, month, day))
    for pattern in (_DAY_MONTH, _MONTH_DAY):
        for m in pattern.finditer(t):
            month, day, year = _MONTHS[m["mon"].lower()], int(m["day"]), _year(m["year"])
            if year is not None and 1900 <= year <= 2100:
                add(m, _safe_date(year, month, day))
            elif year is None:
                add(m, _past_day_month(today, month, day))
    for m in _ORD_ONLY.finditer(t):
        day = int(m["day"])
        if m["rel"]:
            anchor = today if m["rel"].lower() == "this" else today.replace(day=1) - timedelta(days=1)
            add(m, _safe_date(anchor.year, anchor.month, day))
        elif _ORD_ONLY_FOLLOW.match(t, m.end()):
            add(m, _past_day(today, day))
    for m in _WEEKDAY.finditer(t):
        if (m["mod"] or "").lower() == "next":
            continue
        back = (today.weekday() - _WEEKDAYS.index(m["wd"].lower())) % 7 or 7
        add(m, today - timedelta(days=back))
    for m in _AGO.finditer(t):
        raw = m["n"].lower()
        count = int(raw) if raw.isdigit() else (2 if "couple" in raw else 1)
        unit = m["unit"].lower()
        days = count * (14 if unit.startswith("fortnight") else 7 if unit.startswith("week") else 1)
        add(m, today - timedelta(days=days))
    for pattern, offset in _RELATIVE:
        for m in pattern.finditer(t):
            add(m, today + timedelta(days=offset))
    return [(a, b, d.isoformat()) for a, b, d in _non_overlapping(cands)]


_TIME = re.compile(
    r"(?<!\d)(?:\d{1,2}[:h]\d{2}(?:\s?(?:am|pm|a\.m\.?|p\.m\.?))?"
    r"|\d{1,2}\s?(?:am|pm|a\.m\.?|p\.m\.?|o'?clock)\b"
    r"|(?<=\bat\s)\d{1,2}(?![\d.,:]))", re.I)


def _time_spans(sh: _Shadow) -> list[Span]:
    return [(m.start(), m.end(), m.group()) for m in _TIME.finditer(sh.text)]


# --------------------------------------------------------------------------------------------------------
# Card last four
# --------------------------------------------------------------------------------------------------------

_MONEY_WORD = r"(?:[€£$%]|(?:euros?|eur|dollars?|pounds?|quid|usd|gbp|bucks?)\b)"
_DIG4 = rf"(?<!\d)(?P<d>\d(?:[ -]?\d){{3}})(?![ -]?\d)(?!\s?{_MONEY_WORD})"
_CARD_CUE = re.compile(
    r"\b(?:ending|ends|ended|end\s+(?:in|with))(?:\s+(?:in|with|on))?"
    r"|\blast\s+(?:4|four)(?:\s+digits?)?(?:\s+of\s+(?:my|the)\s+card)?(?:\s+(?:are|is|were))?"
    r"|\bcard(?:\s+number)?(?:\s+(?:is|was))?"
    r"|\bdigits?(?:\s+(?:are|is))?", re.I)
_CARD_AFTER_CUE = re.compile(r"\s*[:#-]?\s*" + _DIG4, re.I)
_FULL_CARD = re.compile(r"(?<![\d])(?:\d[ -]?){12,18}\d(?!\d)")
_FOUR_DIGITS = re.compile(r"\d(?:[ -]?\d){3}")


def _card_spans(sh: _Shadow) -> list[Span]:
    t = sh.text
    cands: list[Span] = []
    for cue in _CARD_CUE.finditer(t):
        m = _CARD_AFTER_CUE.match(t, cue.end())
        if m:
            cands.append((m.start("d"), m.end("d"), re.sub(r"\D", "", m["d"])))
    for m in _FULL_CARD.finditer(t):
        digits = re.sub(r"\D", "", m.group())
        if len(digits) == 16 or luhn.is_valid(digits):
            cands.append((m.start(), m.end(), digits[-4:]))
    a, b = _core(t)
    if _FOUR_DIGITS.fullmatch(t, a, b):
        cands.append((a, b, re.sub(r"\D", "", t[a:b])))
    return _non_overlapping(cands)


# --------------------------------------------------------------------------------------------------------
# Amounts
# --------------------------------------------------------------------------------------------------------

# At most 15 digits: longer runs are identifiers, and Decimal/int() work within that.
# Thousands grouped by , . ' or a space (a plain one too: "6 500 euros" is how French and German speakers write
# 6,500; read without it, the amount was 6.00).
_NUM = (r"(?<!\d)(?<!\d[.,])(?P<num>\d{1,3}(?:[,.' \u00a0\u202f]\d{3}){1,4}(?:[.,]\d{1,2})?|\d{1,15}(?:[.,]\d{1,2})?)"
        r"(?!\d|[.,]\d)")
_MULT = r"(?:\s?(?P<mult>k|thousand|grand|million|mio|bn|billion)\b)?"
_OTHER_ISO = "SEK|NOK|DKK|PLN|CZK|HUF|JPY|CAD|AUD|NZD|RON|BGN|ISK"
_PREFIX = rf"(?P<cur>US\$|[€£$]|\b(?:eur|usd|gbp|chf)\b|\b(?-i:{_OTHER_ISO})\b)"
_SUFFIX = (r"(?P<cur>[€£$]|(?:eur|euros?|usd|dollars?|bucks?|gbp|pounds?(?:\s+sterling)?|quid|sterling|chf|francs?)\b"
           rf"|(?-i:{_OTHER_ISO})\b)")
_SUBUNIT = r"(?:\s?(?:cents?|pence)\b|p\b(?!\.?\s?m\b))"
_AMOUNT_PREFIXED = re.compile(_PREFIX + r"\s?" + _NUM + _MULT, re.I)
# "20 euros and 50 cents", and the spoken "twelve euros fifty" when nothing follows the cents.
_CENTS_TAIL = rf"(?:\s*(?:and\s+)?(?P<sub>\d{{1,2}}){_SUBUNIT}|\s+(?P<tail>\d{{2}})(?=\s*(?:$|[.,;!?])))?"
_AMOUNT_SUFFIXED = re.compile(_NUM + _MULT + r"\s?" + _SUFFIX + _CENTS_TAIL, re.I)
_AMOUNT_SUBUNIT = re.compile(r"(?<!\d)(?<!\d[.,])(?P<num>\d{1,2})(?P<unit>" + _SUBUNIT + ")", re.I)
_BARE = re.compile(_NUM + _MULT, re.I)
_MONEY_CUE = re.compile(
    r"\b(?:pay|paid|paying|pays|payment|send|sent|sending|transfer(?:red|ring)?|move|moved|"
    r"withdr[ae]wn?|withdrawing|take\s+out|took\s+out|spen[dt]|spending|charged?|charging|debited|credited|"
    r"refund(?:ed)?|deposit(?:ed)?|costs?|costing|owe[sd]?|amount|total|sum|price|fee|limit|worth|balance|"
    r"lend|lent|borrow(?:ed)?|top\s+up|topped\s+up|bill)"
    r"(?:\s+(?:of|is|was|be|me|you|him|her|them|us|it|about|around|roughly|approximately|exactly|only|just|"
    r"like|over|under|almost|nearly|the|a|an|my|back|out|up|to|by))*\s*$", re.I)
_NOT_MONEY_AFTER = re.compile(
    r"\s*(?:%|percent\b|per\s?cent\b|times?\b|days?\b|weeks?\b|months?\b|years?\b|hours?\b|hrs?\b|minutes?\b|"
    r"mins?\b|seconds?\b|secs?\b|am\b|pm\b|a\.m|p\.m|o'?clock\b|st\b|nd\b|rd\b|th\b|digits?\b|people\b|"
    r"persons?\b|cards?\b|transactions?\b|payments?\b|accounts?\b|items?\b|instal+ments?\b|x\b|[:/]\d)", re.I)
_MULTIPLIERS = {"k": 1000, "thousand": 1000, "grand": 1000, "million": 10**6, "mio": 10**6, "bn": 10**9,
                "billion": 10**9}
_DOLLAR_CURRENCIES = frozenset({"USD", "CAD", "AUD", "NZD", "SGD", "HKD"})


def _to_decimal(raw: str) -> Decimal:
    """"1,200.50", "1.200,50", "1'200", "1,5" → Decimal. The last separator is decimal unless 3 digits follow."""
    s = re.sub(r"[' \u00a0\u202f]", "", raw)
    if "," in s and "." in s:
        dec = "," if s.rfind(",") > s.rfind(".") else "."
        s = s.replace("." if dec == "," else ",", "").replace(dec, ".")
    elif "," in s or "." in s:
        parts = s.split("," if "," in s else ".")
        s = "".join(parts) if len(parts) > 2 or len(parts[-1]) == 3 else f"{parts[0]}.{parts[1]}"
    return Decimal(s)


def _currency(mark: str, default: str) -> str:
    m = re.sub(r"\s+", " ", mark.lower())
    if m in ("€", "eur", "euro", "euros"):
        return "EUR"
    if m in ("£", "gbp", "pound", "pounds", "quid", "sterling", "pounds sterling", "pound sterling", "pence", "p"):
        return "GBP"
    if m in ("$", "dollar", "dollars", "buck", "bucks"):
        return default if default in _DOLLAR_CURRENCIES else "USD"
    if m in ("us$", "usd"):
        return "USD"
    if m in ("chf", "franc", "francs"):
        return "CHF"
    if m in ("cent", "cents"):
        return default
    return mark.upper()


def _money(value: Decimal, currency: str) -> dict[str, str]:
    return {"value": str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)), "currency": currency}


def _amount_spans(sh: _Shadow, today: date, default_currency: str) -> list[Span]:
    t = sh.text
    cands: list[Span] = []

    def value_of(m: re.Match[str]) -> Decimal:
        v = _to_decimal(m["num"])
        if m["mult"]:
            v *= _MULTIPLIERS[m["mult"].lower()]
        return v

    for m in _AMOUNT_PREFIXED.finditer(t):
        cands.append((m.start(), m.end(), _money(value_of(m), _currency(m["cur"], default_currency))))
    for m in _AMOUNT_SUFFIXED.finditer(t):
        cents = m["sub"] or m["tail"]
        v = value_of(m) + (Decimal(cents) / 100 if cents else 0)
        cands.append((m.start(), m.end(), _money(v, _currency(m["cur"], default_currency))))
    for m in _AMOUNT_SUBUNIT.finditer(t):
        unit = m["unit"].strip().lower()
        cands.append((m.start(), m.end(), _money(Decimal(m["num"]) / 100, _currency(unit, default_currency))))
    marked = _non_overlapping(cands)

    blocked = [*marked, *_date_spans(sh, today), *_time_spans(sh), *_card_spans(sh)]
    a, b = _core(t)
    bare: list[Span] = []
    for m in _BARE.finditer(t):
        if _overlaps(m.start(), m.end(), blocked):
            continue
        whole = (m.start(), m.end()) == (a, b)
        cued = (_MONEY_CUE.search(t[max(0, m.start() - 80):m.start()]) is not None
                and not _NOT_MONEY_AFTER.match(t, m.end()))
        if whole or cued:
            bare.append((m.start(), m.end(), _money(value_of(m), default_currency)))
    return sorted((c for c in marked + bare if not _said_in_pairs(sh, c[0], c[1])), key=lambda c: c[0])


def _said_in_pairs(sh: _Shadow, start: int, end: int) -> bool:
    """A spoken number right next to another ("two fifty euros", "nineteen ninety-nine"): a price or a year
    said in pairs, which reads "2 50 euros". Either half alone is the wrong amount (it was 50), so neither is
    taken, and a flow asks for the amount again."""
    def spoken(pos: int) -> bool:
        return sh.original[sh.starts[pos]].isalpha()

    before = re.search(r"(\d)[ \-]+$", sh.text[:start])
    if before is not None and spoken(before.start(1)) and spoken(start):
        return True
    after = re.match(r"[ \-]+(\d)", sh.text[end:])   # only for a number that ends the amount ("paid two fifty"),
    return (after is not None and sh.text[end - 1].isdigit()   # not a currency word ("forty euros two days ago")
            and spoken(end + after.start(1)) and spoken(end - 1))


# --------------------------------------------------------------------------------------------------------
# Integers, account types, enums
# --------------------------------------------------------------------------------------------------------

_INT = re.compile(r"(?<!\d)(?<!\d[.,])(\d{1,3}(?:,\d{3}){1,4}|\d{1,15})(?!\d|[.,]\d|(?:st|nd|rd|th)\b)", re.I)


def _integer_spans(sh: _Shadow) -> list[Span]:
    return [(m.start(), m.end(), int(m.group().replace(",", ""))) for m in _INT.finditer(sh.text)]


_ACCOUNT_PHRASES: tuple[tuple[str, str], ...] = (
    ("business current account", "business"), ("business checking account", "business"),
    ("business savings account", "business"), ("business checking", "business"), ("business account", "business"),
    ("company account", "business"), ("business one", "business"),
    ("credit card account", "credit_card"), ("credit card", "credit_card"), ("creditcard", "credit_card"),
    ("current account", "checking"), ("checking account", "checking"), ("chequing account", "checking"),
    ("cheque account", "checking"), ("check account", "checking"), ("main account", "checking"),
    ("everyday account", "checking"), ("checking", "checking"), ("chequing", "checking"),
    ("savings account", "savings"), ("saving account", "savings"), ("saver account", "savings"),
    ("savings", "savings"), ("saver", "savings"), ("rainy day account", "savings"), ("rainy day fund", "savings"),
    ("deposit account", "savings"), ("cash isa", "savings"), ("isa", "savings"),
)
# A single word that names an account only when it is the whole reply ("which account?" "business").
_ACCOUNT_ALONE = {"business": "business", "current": "checking", "credit": "credit_card", "main": "checking"}
# "I was checking my balance": the verb, not the account.
_CHECKING_VERB_NEXT = frozenset("my the if whether on that this it out in up your a an with what how why "
                                "when where back over all some his her their our".split())
_CHECKING_VERB_PREV = frozenset("was am is are were been be i'm im m keep kept just still stop currently start "
                                "started by while after before without".split())


def _phrase_matches(text: str, phrases: Sequence[tuple[str, Any]],
                    accept: Callable[[list[_Tok], int, int, str], bool] | None = None) -> list[tuple[int, int, Any]]:
    """Longest phrase first at each word, left to right; words are typo-tolerant (see ``_word_match``)."""
    toks = _words(text)
    ordered = sorted(((p.lower().replace("_", " ").split(), v) for p, v in phrases), key=lambda p: -len(p[0]))
    ordered = [(ws, v) for ws, v in ordered if ws]
    out: list[tuple[int, int, Any]] = []
    i = 0
    while i < len(toks):
        for words, value in ordered:
            j = i + len(words)
            if j <= len(toks) and all(_word_match(toks[i + k].word, w) for k, w in enumerate(words)) and (
                    accept is None or accept(toks, i, j, " ".join(words))):
                out.append((toks[i].start, toks[j - 1].end, value))
                i = j
                break
        else:
            i += 1
    return out


def _not_checking_verb(toks: list[_Tok], i: int, j: int, phrase: str) -> bool:
    if phrase != "checking":
        return True
    after = toks[j].word if j < len(toks) else ""
    before = toks[i - 1].word if i > 0 else ""
    return after not in _CHECKING_VERB_NEXT and before not in _CHECKING_VERB_PREV


def _account_matches(text: str) -> list[tuple[int, int, Any]]:
    found = _phrase_matches(text, _ACCOUNT_PHRASES, _not_checking_verb)
    if not found:
        a, b = _core(text)
        core = text[a:b].lower()
        for word, kind in _ACCOUNT_ALONE.items():
            if _word_match(core, word):
                found = [(a, b, kind)]
    return found


# --------------------------------------------------------------------------------------------------------
# Yes / no
# --------------------------------------------------------------------------------------------------------

_YES_IDIOMS = re.compile(r"\b(?:no\s+problem|no\s+worries|not\s+a\s+problem|no\s+bother|why\s+not|"
                         r"(?:don'?t|do\s+not)\s+mind|no\s+doubt)\b")
_UNSURE = re.compile(r"\b(?:not\s+(?:sure|certain)|(?:don'?t|do\s+not)\s+know|no\s+idea|maybe|perhaps|"
                     r"let\s+me\s+think|hold\s+on|i\s+guess)\b")
_NO = re.compile(r"\b(?:no|nope|nah|nay|never|cancel|stop|abort|negative|incorrect|wrong|not|don'?t|won'?t|"
                 r"can'?t|cannot|shouldn'?t|didn'?t|haven'?t|hasn'?t|wasn'?t|isn'?t|aren'?t|doesn'?t|nevermind|"
                 r"hold\s+off)\b")
_YES = re.compile(r"\b(?:yes|yess|yeah|yea|yeh|yep|yup|ya|yah|aye|sure|ok|okay|k|alright|all\s+right|correct|"
                  r"that'?s\s+right|that\s+is\s+right|exactly|indeed|absolutely|definitely|certainly|"
                  r"of\s+course|affirmative|confirm(?:ed)?|proceed|go\s+ahead|go\s+for\s+it|do\s+it|do\s+that|"
                  r"please\s+do|yes\s+please|sounds\s+good|that\s+works|works\s+for\s+me|fine|perfect|great|agreed|"
                  r"uh\s+huh|mhm+|true|i\s+do|i\s+did)\b")
_YES_ALONE = frozenset({"please", "right"})
_QUESTION_START = re.compile(r"\s*(?:what|why|how|when|where|who|which|is|are|can|could|do|does|will|would|"
                             r"should|shall|may)\b")


# A reply that holds a yes-word but is not a yes to "shall I go ahead?": a pause ("okay wait"), a question
# asked on the way ("ok so what happens to my old card?"), or a change ("yes but make it 300").
_WH_WORD = re.compile(r"\b(?:what|why|how|when|where|who|which|whose)\b")
_HESITATE = re.compile(r"\b(?:wait|hold\s+on|hang\s+on|one\s+(?:moment|second|sec|minute)|just\s+a\s+(?:moment|second|"
                       r"sec|minute)|before\s+(?:i|you|we)\b|let\s+me\s+(?:check|see|think))\b")
_CHANGE = re.compile(r"\b(?:but|instead|rather|change|make\s+it|however|except)\b|\d")


def parse_yes_no(text: str) -> bool | None:
    """True / False for a confirmation, None when it is not one ("what's the fee?"). Any no wins; a yes
    counts only when nothing in the reply puts it in doubt (a question, a pause, a change, a number): a
    confirmation moves money, so "okay wait" or "yes but make it 300" is asked again, not executed."""
    s = text.lower().replace("\u2019", "'")
    s = re.sub(r"([a-z])\1{2,}", r"\1", s)              # "yesss", "nooo"
    s = _YES_IDIOMS.sub(" yes ", s)
    unsure = bool(_UNSURE.search(s))
    s = _UNSURE.sub(" ", s)
    if s.strip().endswith("?") and _QUESTION_START.match(s):
        return None
    if _NO.search(s):
        return False
    if unsure or "?" in s or _WH_WORD.search(s) or _HESITATE.search(s) or _CHANGE.search(s):
        return None
    if _YES.search(s):
        return True
    core = re.sub(r"[^a-z' ]", " ", s).strip()
    return True if core in _YES_ALONE else None


# --------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------


def _entities(kind: str, sh: _Shadow, spans: Iterable[Span]) -> list[Entity]:
    out = []
    for a, b, value in spans:
        start, end = sh.span(a, b)
        out.append(Entity(kind, value, sh.original[start:end], start, end))
    return out


def extract(text: str, entity_type: str, *, today: date, default_currency: str = "EUR",
            options: Sequence[str] = ()) -> list[Entity]:
    """All values of one type in text, in order of appearance."""
    if entity_type not in ENTITY_TYPES:
        raise ValueError(f"unknown entity type {entity_type!r}; expected one of {sorted(ENTITY_TYPES)}")
    if entity_type in ("text", "yes_no"):
        stripped = text.strip()
        if not stripped:
            return []
        start = len(text) - len(text.lstrip())
        value: Any = stripped if entity_type == "text" else parse_yes_no(text)
        return [] if value is None else [Entity(entity_type, value, stripped, start, start + len(stripped))]
    if entity_type in ("account_type", "enum"):
        if entity_type == "account_type":
            found = _account_matches(text)
        else:
            found = _phrase_matches(text, [(o, o) for o in options])
        return [Entity(entity_type, v, text[a:b], a, b) for a, b, v in found]
    sh = _shadow(text)
    if entity_type == "amount":
        return _entities("amount", sh, _amount_spans(sh, today, default_currency))
    if entity_type == "date":
        return _entities("date", sh, _date_spans(sh, today))
    if entity_type == "card_last4":
        return _entities("card_last4", sh, _card_spans(sh))
    return _entities("integer", sh, _integer_spans(sh))


def extract_all(text: str, types: Iterable[str], **kw: Any) -> dict[str, list[Entity]]:
    """Several types at once (each read independently: a span may count for more than one type)."""
    return {t: extract(text, t, **kw) for t in types}
