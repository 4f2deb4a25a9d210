"""Rewrite a reply for a voice channel: what a text-to-speech engine should say, not what a screen shows.

A model's reply is written for a screen: markdown, citations like "[1]", "€1,250.50", "09:30", "BLK-7F3A2".
Read aloud as written these come out as "asterisk asterisk", "one comma two five zero", or a reference
number read as a quantity. This module rewrites them into words, deterministically, before synthesis.

Rules (English; kept simple on purpose):

* markdown: headings, emphasis, bullets, quotes, rules and code marks go; a link says its text; a table row
  becomes "a, b, c"; citations "[1]", "[2, 3]", "[^1]" go.
* amounts in EUR/GBP/USD (symbol or code, either side): "one thousand, two hundred and fifty euros and fifty
  cents"; other currencies are left to the number rules.
* times are read as on a 12-hour clock: "09:30" → "nine thirty", "9:00" → "nine o'clock", "17:00" →
  "five p m", "17:45" → "five forty-five p m", "0:00"/"12:00" → "midnight"/"noon"; a written am/pm is kept.
* ISO dates: "2026-11-28" → "the twenty-eighth of November twenty twenty-six"; "28 November" → "the
  twenty-eighth of November", "November 28" → "November twenty-eighth".
* digits after "ending"/"ends in"/"last four" (a card), numbers with a leading zero, numbers of seven digits or
  more, and phone numbers ("+44 …") are read digit by digit; references that mix letters and digits
  ("BLK-7F3A2") are spelled "B L K 7 F 3 A 2"; "3.5%" → "three point five percent"; "28th" → "twenty-eighth";
  a four-digit year after a month, "in", "since", "until" or "year" is read as a year; other numbers as words.

Other languages get the markdown and citation clean-up, spelled references, and plain numbers in words
where num2words knows the language; amounts, dates and times are left for the voice to read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from num2words import CONVERTER_CLASSES, num2words

__all__ = ["spoken"]

# --------------------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------------------

_FENCE = re.compile(r"^\s*(?:```|~~~).*$", re.M)
_FOOTNOTE_DEF = re.compile(r"^\s*\[\^?\d+\]:.*$", re.M)
_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
_RULE = re.compile(r"^\s*([-*_])(?:\s*\1){2,}\s*$", re.M)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$", re.M)
_QUOTE = re.compile(r"^\s*(?:>\s?)+", re.M)
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+", re.M)
# Spans are bounded (and stay on one line) so that stray marks cannot make a pass quadratic.
_IMAGE = re.compile(r"!\[([^\]\n]{0,300})\]\([^)\n]{0,2000}\)")
_LINK = re.compile(r"\[([^\]\n]{1,300})\]\([^)\n]{0,2000}\)")
_REF_LINK = re.compile(r"\[([^\]\n]{1,300})\]\[[^\]\n]{0,300}\]")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>]+)>")
_CITATION = re.compile(r"\s*(?:\[\^?\d+(?:\s*[,;–-]\s*\^?\d+)*\]|【[^】]*】)")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.{1,300}?)(?<=\S)\1")
_ITALIC_STAR = re.compile(r"(?<![\w*])\*(?=\S)(.{1,300}?)(?<=\S)\*(?![\w*])")
_ITALIC_UNDERSCORE = re.compile(r"(?<![\w_])_(?=\S)(.{1,300}?)(?<=\S)_(?![\w_])")
_STRIKE = re.compile(r"~~(.{1,300}?)~~")          # struck-out text is withdrawn: not said
_CODE = re.compile(r"`+([^`\n]{0,300}?)`+")
_BREAK = re.compile(r"<br\s*/?>", re.I)


def _table_row(line: str) -> str | None:
    """"| a | b | c |" → "a, b, c"; the separator row → ""; not a table row → None."""
    stripped = line.strip()
    if not (stripped.startswith("|") or stripped.count("|") >= 2):
        return None
    if _TABLE_SEPARATOR.match(stripped):
        return ""
    cells = [c.strip() for c in stripped.strip("|").split("|")]
    return ", ".join(c for c in cells if c)


def _strip_markdown(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _FOOTNOTE_DEF.sub("", _FENCE.sub("", text))
    lines = []
    for line in text.split("\n"):
        row = _table_row(line)
        lines.append(line if row is None else row)
    text = "\n".join(lines)
    text = _RULE.sub("", text)
    text = _HEADING.sub(r"\1", text)
    text = _QUOTE.sub("", text)
    text = _BULLET.sub("", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _REF_LINK.sub(r"\1", text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _CITATION.sub("", text)
    text = _BOLD.sub(r"\2", text)
    text = _ITALIC_STAR.sub(r"\1", text)
    text = _ITALIC_UNDERSCORE.sub(r"\1", text)
    text = _STRIKE.sub("", text)
    text = _CODE.sub(r"\1", text)
    return _BREAK.sub(" ", text)


# --------------------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------------------


class _Held:
    """Rewritten pieces are parked behind private-use placeholders, so later rules never reread them."""

    def __init__(self) -> None:
        self.pieces: list[str] = []

    def sub(self, pattern: re.Pattern[str], say: Callable[[re.Match[str]], str | None], text: str) -> str:
        def hold(m: re.Match[str]) -> str:
            said = say(m)
            if said is None:
                return m.group()
            self.pieces.append(said)
            return f"\ue000{chr(0xE100 + len(self.pieces) - 1)}\ue001"
        return pattern.sub(hold, text)

    def restore(self, text: str) -> str:
        return re.sub("\ue000(.)\ue001", lambda m: self.pieces[ord(m.group(1)) - 0xE100], text)


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_CURRENCY_WORDS = {"EUR": ("euro", "euros", "cent", "cents"), "GBP": ("pound", "pounds", "penny", "pence"),
                   "USD": ("dollar", "dollars", "cent", "cents")}
_SYMBOLS = {"€": "EUR", "£": "GBP", "$": "USD"}
# Bounded digit runs: longer ones are identifiers, and num2words/int() work within that.
_NUM = r"(?<!\d)(?<!\d[.,])(?P<num>\d{1,3}(?:[,.]\d{3}){1,4}(?:[.,]\d{1,2})?|\d{1,15}(?:[.,]\d{1,2})?)(?!\d|[.,]\d)"
# A sign on the amount ("-312.40 EUR", "-€5", "EUR -5"): a balance owed. Read without it, a caller who owes
# money heard a credit (espeak-ng drops the hyphen). Only a sign attached to the amount, at the start of a word:
# "100-200 EUR", "€5 - €10" and "Fees: - €5" are ranges and dashes.
_SIGN = r"(?:(?<![^\s(])(?P<{}>[-\u2212]))?"
_AMOUNT_BEFORE = re.compile(_SIGN.format("sign") + r"(?P<cur>[€£$]|\b(?:EUR|GBP|USD)\b)(?:\s?(?P<sign2>[-\u2212])|\s)?"
                            + _NUM, re.I)
_AMOUNT_AFTER = re.compile(_SIGN.format("sign") + _NUM + r"\s?(?P<cur>[€£$]|(?:EUR|GBP|USD)\b)", re.I)
_ISO_DATE = re.compile(r"(?<![\w-])(\d{4})-(\d{2})-(\d{2})(?![\w-])")
_AMPM = r"(?:\s?(?P<ap>[ap])\.?\s?m\b\.?)"
_CLOCK = re.compile(r"(?<![\w:.])(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)(?::[0-5]\d)?" + _AMPM + r"?(?![\w:])", re.I)
_HOUR_AMPM = re.compile(r"(?<![\w:.])(?P<h>1[0-2]|0?[1-9])" + _AMPM, re.I)
_PERCENT = re.compile(r"(?<![\w.])(?<!\d,)(?P<num>\d{1,15}(?:\.\d{1,15})?)\s?%")
_CARD_ENDING = re.compile(
    r"(?P<cue>\b(?:ending|ends|ended)(?:\s+(?:in|with))?|\blast\s+(?:four|4)(?:\s+digits)?(?:\s+(?:are|is))?)"
    r"(?P<sep>\s*:?\s*)(?P<d>\d{4,19})\b", re.I)
_ORDINAL = re.compile(r"(?<![\w.])(\d+)(st|nd|rd|th)\b", re.I)
_PHONE = re.compile(r"(?<![\w+])\+\d[\d ()-]{6,}\d")
_REFERENCE = re.compile(r"(?<![\w-])(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*(?![\w-])")
_NOT_A_REFERENCE = re.compile(r"\d+(?:-[a-z]{2,})+|\d+(?:\.\d+)?[a-z]{1,3}")   # "3-day", "5km"
_DECIMAL = re.compile(r"(?<![\w.])(?<!\d,)\d{1,15}\.\d{1,15}(?![\w]|\.\d)")
_INTEGER = re.compile(r"(?<![\w.])(?<!\d,)(?:\d{1,3}(?:,\d{3}){1,4}|\d{1,40})(?![\w]|[.,]\d)")
_MONTH_ALT = "|".join(_MONTHS)
_YEAR = r"(?:(,?\s+)(1[1-9]\d\d|20\d\d)(?![\w.,]\d|\w))?"
_DAY_MONTH = re.compile(rf"(?<![\w.,:])(\d{{1,2}})\s+({_MONTH_ALT})\b{_YEAR}")
_MONTH_DAY = re.compile(rf"\b({_MONTH_ALT})\s+(\d{{1,2}})(?![\w:]|[.,]\d){_YEAR}")
_YEAR_CUE = re.compile(rf"\b(?:in|since|until|year|{_MONTH_ALT}),?\s*$", re.I)

_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _digits(s: str) -> str:
    return " ".join(_DIGIT_WORDS[int(c)] for c in s if c.isdigit())


def _to_decimal(raw: str) -> Decimal:
    """"1,250.50", "1.250,50", "1250.50" → Decimal; a separator followed by three digits groups thousands."""
    if "," in raw and "." in raw:
        dec = "," if raw.rfind(",") > raw.rfind(".") else "."
        raw = raw.replace("." if dec == "," else ",", "").replace(dec, ".")
    elif "," in raw or "." in raw:
        parts = raw.split("," if "," in raw else ".")
        raw = "".join(parts) if len(parts) > 2 or len(parts[-1]) == 3 else f"{parts[0]}.{parts[1]}"
    return Decimal(raw)


def _money(value: Decimal, currency: str) -> str:
    one, many, sub_one, sub_many = _CURRENCY_WORDS[currency]
    value = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    whole, cents = int(value), int((value - int(value)) * 100)
    parts = []
    if whole or not cents:
        parts.append(f"{num2words(whole)} {one if whole == 1 else many}")
    if cents:
        parts.append(f"{num2words(cents)} {sub_one if cents == 1 else sub_many}")
    return " and ".join(parts)


def _say_amount(m: re.Match[str]) -> str:
    mark = m["cur"]
    negative = m["sign"] or m.groupdict().get("sign2")
    return ("minus " if negative else "") + _money(_to_decimal(m["num"]), _SYMBOLS.get(mark, mark.upper()))


def _say_iso_date(m: re.Match[str]) -> str | None:
    try:
        d = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None
    return f"the {num2words(d.day, to='ordinal')} of {_MONTHS[d.month - 1]} {num2words(d.year, to='year')}"


def _say_clock(m: re.Match[str]) -> str:
    hour, minute = int(m["h"]), int(m["m"]) if "m" in m.groupdict() and m["m"] else 0
    ap = (m["ap"] or "").lower()
    if not ap and minute == 0 and hour in (0, 12):
        return "midnight" if hour == 0 else "noon"
    if not ap and (hour == 0 or hour > 12):
        ap = "a" if hour == 0 else "p"
    h12 = hour % 12 or 12
    said = num2words(h12)
    if minute:
        said += f" oh {num2words(minute)}" if minute < 10 else f" {num2words(minute)}"
    elif not ap:
        said += " o'clock"
    return f"{said} {ap} m" if ap else said


def _say_decimal(raw: str, lang: str = "en") -> str:
    whole, _, frac = raw.partition(".")
    if not frac:
        return num2words(int(whole), lang=lang)
    point = {"en": "point"}.get(lang)
    if point is None:
        return num2words(Decimal(raw), lang=lang)
    return f"{num2words(int(whole))} {point} {_digits(frac)}"


def _ordinal(raw: str) -> str:
    return num2words(int(raw), to="ordinal")


def _year(m: re.Match[str]) -> str:
    """The optional year after a day and month, said as a year ("twenty twenty-six")."""
    return f"{m.group(3)}{num2words(int(m.group(4)), to='year')}" if m.group(4) else ""


def _say_reference(m: re.Match[str]) -> str | None:
    ref = m.group()
    if _NOT_A_REFERENCE.fullmatch(ref) or _ORDINAL.fullmatch(ref):
        return None
    return " ".join(c.upper() for c in ref if c.isalnum())


def _say_integer(m: re.Match[str], lang: str = "en") -> str:
    raw = m.group()
    digits = raw.replace(",", "")
    if "," not in raw and (len(raw) >= 7 or (raw.startswith("0") and len(raw) > 1)):
        return _digits(raw)
    n = int(digits)
    if lang == "en" and "," not in raw and 1100 <= n <= 2099 and _YEAR_CUE.search(m.string[:m.start()]):
        return num2words(n, to="year")
    return num2words(n, lang=lang)


def _english_numbers(text: str, held: _Held) -> str:
    text = held.sub(_ISO_DATE, _say_iso_date, text)
    text = held.sub(_AMOUNT_BEFORE, _say_amount, text)
    text = held.sub(_AMOUNT_AFTER, _say_amount, text)
    text = held.sub(_CLOCK, _say_clock, text)
    text = held.sub(_HOUR_AMPM, _say_clock, text)
    text = held.sub(_PERCENT, lambda m: f"{_say_decimal(m['num'])} percent", text)
    text = held.sub(_CARD_ENDING, lambda m: f"{m['cue']}{m['sep'] or ' '}{_digits(m['d'])}", text)
    text = held.sub(_PHONE, lambda m: "plus " + _digits(m.group()), text)
    text = held.sub(_DAY_MONTH, lambda m: f"the {_ordinal(m.group(1))} of {m.group(2)}{_year(m)}", text)
    text = held.sub(_MONTH_DAY, lambda m: f"{m.group(1)} {_ordinal(m.group(2))}{_year(m)}", text)
    text = held.sub(_ORDINAL, lambda m: num2words(int(m.group(1)), to="ordinal"), text)
    text = held.sub(_REFERENCE, _say_reference, text)
    text = held.sub(_DECIMAL, lambda m: _say_decimal(m.group()), text)
    return held.sub(_INTEGER, _say_integer, text)


def _other_numbers(text: str, held: _Held, lang: str) -> str:
    text = held.sub(_REFERENCE, _say_reference, text)
    if lang not in CONVERTER_CLASSES:
        return text
    text = held.sub(_DECIMAL, lambda m: _say_decimal(m.group(), lang), text)
    return held.sub(_INTEGER, lambda m: _say_integer(m, lang), text)


def _tidy(text: str) -> str:
    lines = []
    for line in text.split("\n"):
        line = re.sub(r"[ \t\u00a0]+", " ", line)
        line = re.sub(r" +([,.;:!?])", r"\1", line).strip()
        if line:
            lines.append(line)
    return "\n".join(lines)


def spoken(text: str, language: str = "en") -> str:
    """``text`` as it should be said aloud on a voice channel (see the module notes for the rules)."""
    lang = (language or "en").split("-")[0].split("_")[0].lower()
    held = _Held()
    text = _strip_markdown(text)
    text = _english_numbers(text, held) if lang == "en" else _other_numbers(text, held, lang)
    return _tidy(held.restore(text))
