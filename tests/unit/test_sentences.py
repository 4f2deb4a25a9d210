"""Streaming sentence splitting for TTS: sentences come out as early as they are certain, never split inside
abbreviations, numbers, URLs or ellipses, and the result does not depend on how the stream was chunked."""

from __future__ import annotations

import random

import pytest

from gateway.voice.sentences import SentenceSplitter


def whole(text: str, **kw: int) -> list[str]:
    s = SentenceSplitter(**kw)
    return s.feed(text) + s.flush()


def by_char(text: str, **kw: int) -> list[str]:
    s = SentenceSplitter(**kw)
    out: list[str] = []
    for ch in text:
        out += s.feed(ch)
    return out + s.flush()


def by_chunks(text: str, rng: random.Random, **kw: int) -> list[str]:
    s = SentenceSplitter(**kw)
    out: list[str] = []
    i = 0
    while i < len(text):
        n = rng.randint(1, 9)
        out += s.feed(text[i:i + n])
        i += n
    return out + s.flush()


CASES: list[tuple[str, str, dict[str, int], list[str]]] = [
    ("plain", "The weather is nice today. Let us go outside.", {},
     ["The weather is nice today.", "Let us go outside."]),
    ("question and exclamation", "Can you hear me now? That is great! Let us begin then.", {},
     ["Can you hear me now?", "That is great!", "Let us begin then."]),
    ("terminator run", "Really?! That is amazing news.", {"min_chars": 0}, ["Really?!", "That is amazing news."]),
    ("titles", "Mr. Smith and Dr. Jones met Prof. Brown at St. Mary's. They talked for hours.", {},
     ["Mr. Smith and Dr. Jones met Prof. Brown at St. Mary's.", "They talked for hours."]),
    ("e.g. i.e. etc.", "Bring fruit, e.g. apples, i.e. something sweet, etc. We leave at noon.", {},
     ["Bring fruit, e.g. apples, i.e. something sweet, etc. We leave at noon."]),
    ("vs. approx. incl.", "It is Team A vs. Team B at approx. 9 PM. Tickets incl. drinks cost more.", {},
     ["It is Team A vs. Team B at approx. 9 PM.", "Tickets incl. drinks cost more."]),
    ("No. before a number only", "No. That is not right. Ask for No. 5 at the desk. Thanks a lot.", {"min_chars": 0},
     ["No.", "That is not right.", "Ask for No. 5 at the desk.", "Thanks a lot."]),
    ("company suffixes", "Acme Inc. Berlin opened a store. Foo Ltd. Paris did too.", {},
     ["Acme Inc. Berlin opened a store.", "Foo Ltd. Paris did too."]),
    ("a.m. p.m.", "We open at 9 a.m. Monday to Friday. We close at 5 p.m. Sharp, every day.", {},
     ["We open at 9 a.m. Monday to Friday.", "We close at 5 p.m. Sharp, every day."]),
    ("U.S. U.K.", "He served in the U.S. Army and the U.K. Navy for years. Now he rests.", {},
     ["He served in the U.S. Army and the U.K. Navy for years.", "Now he rests."]),
    ("months and weekdays", "The meeting is on Mon. Jan. 5 at noon. Please come early.", {},
     ["The meeting is on Mon. Jan. 5 at noon.", "Please come early."]),
    ("initials", "J. R. R. Tolkien wrote long books. They are still read.", {},
     ["J. R. R. Tolkien wrote long books.", "They are still read."]),
    ("decimals and percent", "Prices rose 3.5% this year. Rent is 1,250.50 euros a month. That is a lot.", {},
     ["Prices rose 3.5% this year.", "Rent is 1,250.50 euros a month.", "That is a lot."]),
    ("version numbers", "Update to version 2.10.3 right now. It fixes several bugs.", {},
     ["Update to version 2.10.3 right now.", "It fixes several bugs."]),
    ("times", "The train leaves at 9.30 today. Please be on time.", {},
     ["The train leaves at 9.30 today.", "Please be on time."]),
    ("amounts", "It costs €1.250,50 in total. You can pay by card.", {},
     ["It costs €1.250,50 in total.", "You can pay by card."]),
    ("a number ends a sentence", "The answer is 42. Next question, please.", {},
     ["The answer is 42.", "Next question, please."]),
    ("urls and e-mails", "Visit https://example.com/a.b?x=1 for details. Or mail info@example.co.uk today. "
     "See www.example.org. Thanks a lot!", {},
     ["Visit https://example.com/a.b?x=1 for details.", "Or mail info@example.co.uk today.",
      "See www.example.org.", "Thanks a lot!"]),
    ("ellipsis before lowercase continues", "Well... maybe we can try that. Let me check.", {},
     ["Well... maybe we can try that.", "Let me check."]),
    ("ellipsis before a capital ends", "I am not quite sure... Let me check the system.", {},
     ["I am not quite sure...", "Let me check the system."]),
    ("unicode ellipsis", "Hmm… let me think about it. Okay, here is the answer.", {},
     ["Hmm… let me think about it.", "Okay, here is the answer."]),
    ("lowercase after a period continues", "See fig. 3 and cf. the appendix for more. Done here now.", {},
     ["See fig. 3 and cf. the appendix for more.", "Done here now."]),
    ("closing quotes and brackets", 'She said "we are open today." Then she left. (This is a note.) Next one here.',
     {}, ['She said "we are open today."', "Then she left.", "(This is a note.)", "Next one here."]),
    ("German quotes close", "Er sagte: „Wir haben offen.“ Dann ging er. Gut so, danke.", {},
     ["Er sagte: „Wir haben offen.“", "Dann ging er.", "Gut so, danke."]),
    ("markdown emphasis closes", "**Important.** Please read this carefully.", {"min_chars": 0},
     ["**Important.**", "Please read this carefully."]),
    ("no whitespace, no end", "Hello.World is one token here. End of it.", {},
     ["Hello.World is one token here.", "End of it."]),
    ("short piece merged", "Yes. I can help you with that.", {}, ["Yes. I can help you with that."]),
    ("short piece at flush", "Thank you for calling us. Bye.", {}, ["Thank you for calling us.", "Bye."]),
    ("paragraph break", "First paragraph without a stop\n\nSecond paragraph here", {},
     ["First paragraph without a stop", "Second paragraph here"]),
    ("markdown bullets", "Options:\n- Apples\n- Pears\n* Plums", {}, ["Options:", "- Apples", "- Pears", "* Plums"]),
    ("numbered list", "Steps:\n1. Open the app.\n2. Tap Settings.\n", {},
     ["Steps:", "1. Open the app.", "2. Tap Settings."]),
    ("German ordinal date", "Wir haben am 1. Januar geschlossen. Danach ist wieder offen.", {},
     ["Wir haben am 1. Januar geschlossen.", "Danach ist wieder offen."]),
    ("German abbreviations", "Rufen Sie z. B. Hr. Meier an. Er hilft gern.", {"min_chars": 0},
     ["Rufen Sie z. B. Hr. Meier an.", "Er hilft gern."]),
    ("short colon does not split", "Note: the office is closed today. Call later on.", {},
     ["Note: the office is closed today.", "Call later on."]),
    ("long piece splits at colon and semicolon",
     "These are the opening hours for all of our branches: weekdays nine to five; weekends ten to two.",
     {"max_chars": 80},
     ["These are the opening hours for all of our branches:", "weekdays nine to five; weekends ten to two."]),
    ("clock time colon never splits",
     "The first bus of the whole long day leaves the station at 9:30 sharp.", {"max_chars": 80},
     ["The first bus of the whole long day leaves the station at 9:30 sharp."]),
    ("too long: cut at a comma",
     "When you arrive at the main entrance, please go to the second floor and wait near the lift.",
     {"max_chars": 60},
     ["When you arrive at the main entrance,", "please go to the second floor and wait near the lift."]),
    ("too long: cut at a space", "one two three four five six seven eight nine ten eleven", {"max_chars": 20},
     ["one two three four", "five six seven eight", "nine ten eleven"]),
    ("too long: hard cut inside a token", "abcdefghijklmnopqrstuvwxyz", {"min_chars": 0, "max_chars": 10},
     ["abcdefghij", "klmnopqrst", "uvwxyz"]),
    ("too long: cut at a short sentence", "Yes. Word " + "word " * 19, {"max_chars": 40}, [
     "Yes.", "Word word word word word word word word", "word word word word word word word word",
     "word word word word"]),
]


@pytest.mark.parametrize(("text", "kw", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_splits(text: str, kw: dict[str, int], expected: list[str]) -> None:
    assert whole(text, **kw) == expected
    assert by_char(text, **kw) == expected


def test_nothing_before_the_decision() -> None:
    s = SentenceSplitter()
    assert s.feed("It is fine here.") == []  # the next character decides
    assert s.feed(" ") == []  # a "." also waits for the next word (abbreviation? lowercase?)
    assert s.feed("Then") == ["It is fine here."]
    assert s.flush() == ["Then"]
    assert s.flush() == []


@pytest.mark.parametrize(("text", "terminator"), [
    ("It is fine here. I am", "."),
    ("Can you hear me? Yes", "?"),
    ('He said "we are open." Then', "."),
    ("I am not quite sure... Let", "..."),
    ("Line without a stop\nNext", "\n"),
])
def test_latency_first_sentence(text: str, terminator: str) -> None:
    """The first sentence comes out no later than the first non-space character after its end."""
    decisive = next(k for k in range(text.index(terminator) + len(terminator), len(text))
                    if not text[k].isspace() and text[k] not in "\"'")
    s = SentenceSplitter()
    for k, ch in enumerate(text):
        got = s.feed(ch)
        if got:
            assert k <= decisive
            assert k > text.index(terminator) + len(terminator) - 1 or terminator == "\n"
            assert got[0] == text[:text.index(terminator) + len(terminator)].strip() or got[0].startswith("He said")
            return
    raise AssertionError("first sentence not emitted before the decisive character")


_WORDS = ["the", "Hello", "Mr.", "Dr.", "e.g.", "U.S.", "3.5%", "1,250.50", "9.30", "v2.0.1", "J.", "no.", "No.",
          "example.com", "a@b.de", "well...", "Wait...", "so…", "ok.", "Yes.", "Really?!", "end!", "why?", '"quoted."',
          "(aside.)", "1.", "Januar", "x:", "y;", "and,", "- item", "**bold.**", "word", "Then", "etc.", "42."]


@pytest.mark.parametrize("seed", range(40))
def test_chunking_does_not_matter(seed: int) -> None:
    rng = random.Random(seed)
    parts: list[str] = []
    for _ in range(rng.randint(5, 120)):
        parts.append(rng.choice(_WORDS))
        parts.append(rng.choice([" ", " ", " ", "  ", "\n", "\n\n", " \n"]))
    text = "".join(parts)
    kw = {"min_chars": rng.choice([0, 5, 12]), "max_chars": rng.choice([30, 60, 240])}
    expected = whole(text, **kw)
    assert by_char(text, **kw) == expected
    assert by_chunks(text, rng, **kw) == expected
    for s in expected:
        assert s and s == s.strip() and len(s) <= kw["max_chars"] and "\n" not in s
    assert "".join(expected).replace(" ", "") == "".join(text.split())  # nothing lost, nothing repeated


def test_reuse_after_flush() -> None:
    s = SentenceSplitter()
    assert s.feed("First stream ends here.") == []
    assert s.flush() == ["First stream ends here."]
    assert s.feed("1. A list item starts the next one. ") == []
    assert s.flush() == ["1. A list item starts the next one."]


def test_bad_limits() -> None:
    with pytest.raises(ValueError):
        SentenceSplitter(min_chars=50, max_chars=20)
