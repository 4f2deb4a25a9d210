"""A local frustration signal: should this conversation go to a person?

Escalation needs an answer on every turn, on the appliance, in microseconds, and one that can be explained
("it said 'useless' and shouted"); a lexicon with a few cues does that. Each cue found has a weight, the
weights combine as independent evidence (noisy-OR: 1 - Π(1 - w)), and politeness scales the result down.

* strong words and phrases ("useless", "waste of time", "I already told you", "for the third time",
  "you're not listening") weigh 0.7 each: one of them alone crosses the threshold;
* profanity weighs 0.45 (swearing 0.55), mild words ("bad", "slow", "disappointed", "again") 0.15-0.35: they need company;
* shouting: most of a sentence in capitals (acronyms like ATM or IBAN aside) 0.6, some capitals less;
  "!!" / "!!!" / "?!" 0.2-0.35;
* a negator just before a word cancels it ("not bad", "isn't terrible"); each of up to two polite cues
  ("thanks", "no problem", "appreciate it") multiplies the score by 0.8, a hedge ("a bit", "slightly") by 0.85.

Worry is not frustration: "I'm worried my card was stolen" or "my card is not working" stay low.
"""

from __future__ import annotations

import re

__all__ = ["FRUSTRATION_THRESHOLD", "frustration"]

FRUSTRATION_THRESHOLD = 0.6

_STRONG = 0.7
_PROFANE = 0.45       # "damn", "bloody", "crap": common in calm speech too
_SWEARING = 0.55      # "fuck", "shit", "wtf": stronger, still short of the threshold alone

_STRONG_WORDS = (
    "useless", "ridiculous", "stupid", "terrible", "worst", "pathetic", "hopeless", "incompetent", "unacceptable",
    "outrageous", "disgraceful", "disgrace", "disgusting", "awful", "horrible", "horrendous", "appalling", "rubbish",
    "garbage", "nonsense", "idiots?", "idiotic", "dumb", "morons?", "moronic", "hate", "furious", "livid", "fuming",
    "angry", "frustrated", "frustrating", "infuriating", "infuriated", "annoyed", "annoying", "absurd", "insane",
    "scam", "shambles", "joke", "bullshit", "unhelpful", "clueless", "sick\\s+of", "fed\\s+up", "pissed\\s+off",
)
_STRONG_PHRASES = (
    r"sick\s+and\s+tired", r"waste\s+of\s+(?:my\s+)?time", r"wasting\s+my\s+time",
    r"(?:i\s+)?already\s+(?:told|said|explained|gave)(?:\s+(?:you|that|this|it))?", r"i\s+just\s+told\s+you",
    r"for\s+the\s+(?:second|third|fourth|fifth|tenth|hundredth|millionth|umpteenth|nth|last|\d+(?:st|nd|rd|th))\s+time",
    r"how\s+many\s+(?:more\s+)?times", r"(?:this\s+is\s+|you'?re\s+|you\s+are\s+)?not\s+help(?:ing|ful)",
    r"(?:you'?re|you\s+are|you\s+aren'?t)\s+(?:not\s+)?(?:even\s+)?listening", r"not\s+listening",
    r"are\s+you\s+(?:even\s+)?listening", r"you\s+(?:don'?t|do\s+not|never)\s+(?:understand|listen)",
    r"you'?re\s+not\s+understanding", r"are\s+you\s+(?:kidding|serious|joking)(?:\s+me)?",
    r"give\s+me\s+a\s+break", r"thanks\s+for\s+nothing", r"for\s+(?:god'?s|heaven'?s|christ'?s|pete'?s)\s+sake",
    r"what\s+a\s+(?:joke|mess|nightmare)", r"daylight\s+robbery", r"i'?ve\s+had\s+enough", r"enough\s+is\s+enough",
    r"i\s+give\s+up", r"can'?t\s+believe\s+this", r"what'?s\s+wrong\s+with\s+you", r"is\s+wrong\s+with\s+you",
)
_PROFANITY = (r"damn", r"dammit", r"goddamn", r"hell", r"bloody", r"crap", r"crappy", r"bs", r"piss", r"arse",
              r"ass", r"sucks?")
_SWEARWORDS = (r"shit\w*", r"fuck\w*", r"f\*+k\w*", r"wtf", r"ffs", r"omfg", r"bastards?")
# (pattern, weight): weaker signs that need company to cross the threshold.
_MILD: tuple[tuple[str, float], ...] = (
    (r"bad", 0.3), (r"poor", 0.3), (r"slow", 0.3), (r"confusing", 0.3), (r"disappoint(?:ed|ing)", 0.4),
    (r"unhappy", 0.4), (r"upset", 0.4), (r"not\s+happy", 0.45), (r"ugh+", 0.4), (r"argh+", 0.4),
    (r"come\s+on", 0.3), (r"seriously", 0.3), (r"again", 0.15), (r"still", 0.15), (r"not\s+working", 0.2),
    (r"(?:always|never)\s+works?", 0.2), (r"real\s+(?:person|human)", 0.25), (r"speak\s+to\s+(?:a\s+)?human", 0.25),
    (r"so+\s+hard", 0.3), (r"why\s+(?:is|does)\s+(?:it|this)\s+(?:so|always)", 0.3),
)


def _words_re(alternatives: tuple[str, ...] | list[str]) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.I)


_STRONG_RE = _words_re([*_STRONG_PHRASES, *_STRONG_WORDS])
_PROFANITY_RE = _words_re(_PROFANITY)
_SWEARING_RE = _words_re(_SWEARWORDS)
_HEDGE_RE = re.compile(r"\b(?:a\s+(?:bit|little)|slightly|somewhat|kind\s+of|sort\s+of)\b", re.I)
_MILD_RES = tuple((_words_re((p,)), w) for p, w in _MILD)
_POLITE_RE = re.compile(
    r"\b(?:thanks(?!\s+for\s+nothing)|thank\s+you|thx|cheers|appreciate(?:d)?|no\s+problem|no\s+worries|"
    r"not\s+a\s+problem|kind\s+regards|much\s+obliged|lovely|perfect|great)\b", re.I)
_NEGATORS = frozenset({"not", "never", "isn't", "isnt", "wasn't", "wasnt", "aren't", "arent", "hardly",
                       "nothing", "no", "don't", "dont", "didn't", "didnt", "won't", "wont", "without"})
_ACRONYMS = frozenset({"ATM", "PIN", "IBAN", "BIC", "SWIFT", "EUR", "USD", "GBP", "CHF", "OK", "ID", "UK", "US",
                       "EU", "SMS", "CVV", "CVC", "SEPA", "ISA", "VAT", "FAQ", "PDF", "IT", "TV", "AM", "PM",
                       "BACS", "CHAPS", "OTP", "NFC", "POS", "APR", "KYC", "DD", "SO", "UPI", "QR", "IVR"})
_CAPS_WORD = re.compile(r"\b[A-Za-z]{2,}\b")
_BANG_RUN = re.compile(r"![!1]*")
_INTERROBANG = re.compile(r"\?!|!\?|\?{3,}")
_ELONGATED = re.compile(r"([a-z])\1{3,}", re.I)


def _negated(text: str, start: int) -> bool:
    """A negator among the two words before ``start``, within the same clause ("not bad", "isn't that awful")."""
    clause = re.split(r"[.,;:!?]", text[:start].replace("\u2019", "'"))[-1]
    return any(w in _NEGATORS for w in clause.lower().split()[-2:])


def _shouting(text: str) -> float:
    words = _CAPS_WORD.findall(text)
    if not words:
        return 0.0
    caps = [w for w in words if w.isupper() and w not in _ACRONYMS]
    ratio = len(caps) / len(words)
    if len(caps) >= 3 and ratio >= 0.8:
        return 0.6
    if len(caps) >= 2 and ratio >= 0.3:
        return 0.35
    if any(len(w) >= 4 for w in caps):
        return 0.15
    return 0.0


def _punctuation(text: str) -> float:
    longest = max((m.group().count("!") for m in _BANG_RUN.finditer(text)), default=0)
    weight = 0.35 if longest >= 3 else 0.2 if longest == 2 else 0.0
    if _INTERROBANG.search(text):
        weight = max(weight, 0.2)
    return weight


def frustration(text: str) -> float:
    """How frustrated the user sounds, 0..1; escalate at ``FRUSTRATION_THRESHOLD``."""
    if not text or not text.strip():
        return 0.0
    weights: list[float] = []
    seen: set[str] = set()

    def cue(m: re.Match[str], weight: float, negatable: bool) -> None:
        key = m.group().lower()
        if key in seen or (negatable and _negated(text, m.start())):
            return
        seen.add(key)
        weights.append(weight)

    strong_spans: list[tuple[int, int]] = []
    for m in _STRONG_RE.finditer(text):
        # only single words are negated ("not bad"); phrases carry their own ("not helping")
        cue(m, _STRONG, negatable=not re.search(r"\s", m.group()))
        strong_spans.append(m.span())
    for m in _PROFANITY_RE.finditer(text):
        cue(m, _PROFANE, negatable=False)
    for m in _SWEARING_RE.finditer(text):
        cue(m, _SWEARING, negatable=False)
    for pattern, weight in _MILD_RES:
        for m in pattern.finditer(text):
            if not any(a <= m.start() < b for a, b in strong_spans):
                cue(m, weight, negatable=not re.search(r"\s", m.group()))
    for weight in (_shouting(text), _punctuation(text), 0.1 if _ELONGATED.search(text) else 0.0):
        if weight:
            weights.append(weight)

    calm = 1.0
    for w in weights:
        calm *= 1.0 - w
    score = 1.0 - calm
    polite = min(2, len(_POLITE_RE.findall(text)))
    score *= 0.8 ** polite
    if _HEDGE_RE.search(text):      # "a bit disappointed" is milder than "disappointed"
        score *= 0.85
    return round(min(1.0, max(0.0, score)), 4)
