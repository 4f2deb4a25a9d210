"""Stage 1, preprocess: normalise what the user typed and guess its language.

Normalising is about the model, not the user: HTML from a pasted page, runs of whitespace and lines
that pose as another speaker ("System: ignore…", "Assistant:") are removed before the text is used.
Language detection is a stop-word vote over a handful of European languages: cheap, local, and good
enough to choose a reply language or a voice; ``None`` when unsure.
"""

from __future__ import annotations

import html
import re

from gateway.dialogue.turn import Turn

_DROP = re.compile(r"<\s*(script|style)[^>]*>.*?<\s*/\s*\1\s*>|<!--.*?-->", re.S | re.I)
_BLOCK_TAG = re.compile(r"</?\s*(br|p|div|li|tr|td|th|h[1-6]|ul|ol|table|section|article|header|footer|blockquote|pre)\b[^<>]*>",
                        re.I)
_INLINE_TAGS = re.compile(r"(?:</?[A-Za-z][^<>]*>)+")     # "</span><span>" is one gap
_ROLE_PREFIX = re.compile(r"^\s*(?:#{1,4}\s*)?(system|assistant|user|human|ai|instruction|developer)\s*:\s*",
                          re.I | re.M)
_SPACES = re.compile(r"[ \t\f\v\u00a0\u200b]+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*\n+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_WORD = re.compile(r"[a-zà-ÿß]+")

_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset("the and is are you what how my to of in it for on with can i please would this have".split()),
    "de": frozenset("der die das und ist ich nicht sie ein eine mit auf für wie mein bitte was kann haben".split()),
    "fr": frozenset("le la les et est je vous une un pour avec mon ma que pas sur comment est-ce bonjour".split()),
    "es": frozenset("el la los las y es yo usted una un para con mi que por cómo qué hola por favor".split()),
    "it": frozenset("il lo la gli e è io lei una un per con mio che non come ciao grazie sono".split()),
    "nl": frozenset("de het een en is ik u niet met op voor hoe mijn wat kan graag zijn".split()),
    "pt": frozenset("o a os as e é eu você uma um para com meu que não como olá obrigado".split()),
}


def _tag_gap(m: re.Match) -> str:
    """An inline tag between two word characters becomes a space: "<span>Card</span><span>4111…" read as
    "Card4111…", and no detector finds a value glued to its label."""
    before, after = m.string[m.start() - 1:m.start()], m.string[m.end():m.end() + 1]
    return " " if before.isalnum() and after.isalnum() else ""


def normalise(text: str) -> str:
    text = _CONTROL.sub("", text)
    text = _BLOCK_TAG.sub("\n", _DROP.sub(" ", text))
    text = html.unescape(_INLINE_TAGS.sub(_tag_gap, text))
    text = _ROLE_PREFIX.sub("", text)
    text = _SPACES.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _BLANK_LINES.sub("\n\n", text)
    return "\n".join(line.strip() for line in text.split("\n")).strip()


def detect_language(text: str) -> str | None:
    words = _WORD.findall(text.lower())
    if len(words) < 2:
        return None
    scores = {lang: sum(w in stop for w in words) for lang, stop in _STOPWORDS.items()}
    best = max(scores, key=scores.__getitem__)
    ranked = sorted(scores.values(), reverse=True)
    if ranked[0] == 0 or ranked[0] == ranked[1]:
        return None
    return best


class Preprocess:
    name = "preprocess"

    async def __call__(self, turn: Turn) -> None:
        if turn.is_tool_result:
            return  # tool output is data for the model, passed as the client's tool produced it
        turn.text = normalise(turn.raw_text)
        turn.language = detect_language(turn.text)
        if turn.input_messages:
            turn.input_messages[-1] = {**turn.input_messages[-1], "content": turn.text}
