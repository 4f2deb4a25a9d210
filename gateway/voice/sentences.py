"""Streaming sentence splitter: cuts an LLM token stream into sentences for text-to-speech.

TTS can start speaking once the first sentence is complete, so the splitter emits a sentence as soon as its
end is certain, and no earlier: a terminator only ends a sentence when whitespace follows it, and a "." or an
ellipsis also waits for the next non-space character, because that is what separates "Dr. Smith", "e.g. the",
"well... maybe" or "1. Januar" from a real sentence end. Decisions depend only on the text seen so far and
never change once taken, so feeding a text character by character gives the same sentences as feeding it
whole.

Rules:

* a sentence ends at ".", "!", "?", "…" or "..." (runs such as "?!" count as one), followed by whitespace;
  closing quotes, brackets and markdown emphasis right after the terminator belong to the sentence;
* a "." does not end a sentence after a known abbreviation (Mr., e.g., etc., Jan., Mon., ...), a single
  initial ("J. Smith"), an initialism ("U.S.", "a.m."), "No."/"Nr." before a number, a list marker at the
  start of a line ("1. First"), a day before a German month ("1. Januar"), or when the next word starts in
  lowercase; decimals, times, versions, URLs and e-mail addresses never have whitespace after their dots;
* an ellipsis followed by a lowercase word continues the sentence;
* a newline always ends the current piece (a markdown list item is its own sentence, however short);
* ":" and ";" followed by whitespace end a piece only when it is already long (> max_chars / 2);
* a piece shorter than ``min_chars`` is merged with the next one (TTS sounds choppy on "Yes." alone),
  except at a newline or at the end of the stream;
* a piece longer than ``max_chars`` is cut before ``max_chars``: at an earlier sentence end, else after the
  last comma-like mark, else at the last space, else hard.

Text is emitted as written (stripped), markdown included: run it through ``gateway.dialogue.spoken`` per
sentence.
"""

from __future__ import annotations

import re
from enum import Enum

__all__ = ["SentenceSplitter"]

_TERMINATORS = frozenset(".!?…")
# Closing quotes/brackets, and markdown emphasis/code marks, that stay with the sentence they close.
_CLOSERS = frozenset("\"'”’“‘»«)]}*_`」』")  # “ ‘ close German quotes („So.“)
_OPENERS = "\"'“‘„«»([{*_`「『"
_SOFT_BREAKS = frozenset(",;:–—")

# Matched as written (titles, company suffixes, month and weekday abbreviations are capitalised).
_ABBREV_EXACT = frozenset(
    {
        "Mr", "Mrs", "Ms", "Mx", "Dr", "Prof", "St", "Sr", "Jr", "Mt", "Ft", "Rev", "Gen", "Col", "Lt", "Capt",
        "Sgt", "Gov", "Sen", "Rep", "Ph.D", "Inc", "Ltd", "Co", "Corp", "Bros", "Dept",
        "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec",
        "Mon", "Tue", "Tues", "Wed", "Thu", "Thur", "Thurs", "Fri", "Sat", "Sun",
        # German, for packs in that language
        "Hr", "Fr", "Frl", "Str", "Tel", "Mio", "Mrd", "Abs", "Abt", "Std",
    }
)
# Matched lowercase, or with a capital first letter at the start of a sentence ("Approx. 5 minutes").
_ABBREV_LOWER = frozenset(
    {
        "etc", "vs", "approx", "incl", "excl", "min", "max", "ref", "acc", "cf", "al", "esp", "resp", "fig",
        "vol", "pp", "ca", "bzw", "usw", "ggf", "evtl", "inkl", "vgl", "zzgl", "abzgl", "gem", "lt", "tel",
    }
)
_NOT_ABBREV = frozenset({"Max", "Min", "Al", "Fig", "Esp", "Lt"})
# Abbreviations for "number": only one before a digit or "#" ("No. 5"); "No. That's wrong." is a sentence.
_NUMBER_ABBREV = frozenset({"No", "no", "Nr", "nr", "Nos", "nos", "Nrn"})
_INITIALISM = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")  # U.S, e.g, a.m, z.B (the last dot is the terminator)
_GERMAN_MONTHS = frozenset(
    {"Januar", "Jänner", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
     "November", "Dezember"}
)


class _Verdict(Enum):
    END = "end"
    CONTINUE = "continue"
    WAIT = "wait"


class SentenceSplitter:
    """Turns a stream of text fragments into complete sentences, emitted as early as they are certain."""

    def __init__(self, min_chars: int = 12, max_chars: int = 240) -> None:
        if min_chars < 0 or max_chars < 2 or min_chars > max_chars:
            raise ValueError(f"need 0 <= min_chars <= max_chars and max_chars >= 2, got {min_chars}, {max_chars}")
        self.min_chars = min_chars
        self.max_chars = max_chars
        self._buf = ""  # text not emitted yet; starts at the current piece
        self._line_start = True  # whether the current piece starts a line (list markers "1. ...")

    def feed(self, text: str) -> list[str]:
        """Add a fragment; return the sentences that are now complete."""
        if not text:
            return []
        self._buf += text
        return self._scan(final=False)

    def flush(self) -> list[str]:
        """End of the stream: return everything left (short pieces included); the splitter can be reused."""
        out = self._scan(final=True)
        self._buf = ""
        self._line_start = True
        return out

    # -------------------------------------------------------------------------------------------------------

    @staticmethod
    def _skip_space(buf: str, k: int) -> tuple[int, bool]:
        saw_newline = False
        while k < len(buf) and buf[k].isspace():
            saw_newline = saw_newline or buf[k] == "\n"
            k += 1
        return k, saw_newline

    def _scan(self, final: bool) -> list[str]:
        """Re-scan the pending piece (at most ~max_chars long, so re-scanning per fragment stays cheap)."""
        buf, n = self._buf, len(self._buf)
        out: list[str] = []
        ps, newline = self._skip_space(buf, 0)  # piece start, always a non-space character
        line_start = self._line_start or newline
        merges: list[int] = []  # ends of accepted sentences that were too short to emit alone
        i = ps

        def close(end: int, resume: int) -> None:
            nonlocal ps, line_start, merges, i
            piece = buf[ps:end].strip()
            if piece:
                out.append(piece)
            ps, newline = self._skip_space(buf, resume)
            line_start = newline
            merges = []
            i = ps

        while i < n:
            ch = buf[i]
            if ch == "\n":
                close(i, i)  # skipping the newline sets line_start
                continue
            if ch.isspace():
                i += 1
                continue
            if i - ps >= self.max_chars:  # a non-space character beyond the limit: the piece is too long
                k = self._cut_point(buf, ps, merges)
                close(k, k)
                continue
            if ch in _TERMINATORS:
                verdict, end = self._judge(buf, ps, i, line_start, final)
                if end - ps > self.max_chars:  # the run and its closers overflow the piece, whatever the verdict
                    k = self._cut_point(buf, ps, merges)
                    close(k, k)
                elif verdict is _Verdict.WAIT:
                    break
                elif verdict is _Verdict.CONTINUE:
                    i = end
                elif end - ps < self.min_chars:
                    merges.append(end)
                    i = end
                else:
                    close(end, end)
                continue
            if ch in ":;" and i + 1 - ps > self.max_chars // 2:
                if i + 1 == n:
                    break  # need the next character to know whether this is a break (flush takes the rest)
                if buf[i + 1].isspace():
                    close(i + 1, i + 1)
                    continue
            i += 1

        if final:
            close(n, n)  # whatever is left, however short; the loop already cut it to max_chars
            return out
        self._buf = buf[ps:]
        self._line_start = line_start
        return out

    def _judge(self, buf: str, ps: int, i: int, line_start: bool, final: bool) -> tuple[_Verdict, int]:
        """Does the terminator run at ``i`` end the piece started at ``ps``? Returns the verdict and where the
        sentence (closers included) would end."""
        n = len(buf)
        r = i
        while r < n and buf[r] in _TERMINATORS:
            r += 1
        end = r
        while end < n and buf[end] in _CLOSERS:
            end += 1
        if end == n:
            return (_Verdict.END if final else _Verdict.WAIT), end
        if not buf[end].isspace():  # "3.5", "example.com", "?!x", "**Note.**" mid-token
            return _Verdict.CONTINUE, end
        run = buf[i:r]
        if "!" in run or "?" in run:
            return _Verdict.END, end
        k = end
        while k < n and buf[k].isspace():
            if buf[k] == "\n":  # the newline ends the piece anyway, whatever came before the dot
                return _Verdict.CONTINUE, end
            k += 1
        if k == n:
            return (_Verdict.END if final else _Verdict.WAIT), end
        nxt = buf[k]
        if nxt.islower():  # "e.g. the", "approx. five", "well... maybe"
            return _Verdict.CONTINUE, end
        if len(run) > 1 or "…" in run:  # an ellipsis before a capital, digit or quote ends the sentence
            return _Verdict.END, end
        t0 = i
        while t0 > ps and not buf[t0 - 1].isspace():
            t0 -= 1
        raw = buf[t0:i]
        token = raw.lstrip(_OPENERS)
        if _is_abbreviation(token, nxt):
            return _Verdict.CONTINUE, end
        if token.isdigit():
            if line_start and t0 == ps and token == raw:  # "1. First step" at the start of a line
                return _Verdict.CONTINUE, end
            w = k
            while w < n and buf[w].isalpha():
                w += 1
            word = buf[k:w]
            if w == n and not final and any(m.startswith(word) for m in _GERMAN_MONTHS):
                return _Verdict.WAIT, end
            if word in _GERMAN_MONTHS and len(token) <= 2 and 1 <= int(token) <= 31:  # "1. Januar"
                return _Verdict.CONTINUE, end
        return _Verdict.END, end

    def _cut_point(self, buf: str, ps: int, merges: list[int]) -> int:
        """Where to cut a piece that runs past max_chars: an earlier short sentence, a comma, a space, or hard."""
        limit = ps + self.max_chars
        if merges:
            return merges[-1]
        floor = ps + max(self.min_chars, self.max_chars // 4)
        for j in range(limit - 1, floor - 1, -1):
            if buf[j] in _SOFT_BREAKS and buf[j + 1].isspace():
                return j + 1
        for j in range(limit, ps, -1):
            if buf[j].isspace():
                return j
        return limit


def _is_abbreviation(token: str, nxt: str) -> bool:
    """Is ``token`` (the word before a ".") an abbreviation, given the next non-space character?"""
    if not token:
        return False
    if token in _ABBREV_EXACT or token in _ABBREV_LOWER:
        return True
    if token[0].isupper() and token[0].lower() + token[1:] in _ABBREV_LOWER and token not in _NOT_ABBREV:
        return True
    if len(token) == 1 and token.isalpha() and token != "I":  # an initial: "J. Smith"
        return True
    if _INITIALISM.fullmatch(token):
        return True
    return token in _NUMBER_ABBREV and (nxt.isdigit() or nxt == "#")
