"""Replies rewritten for a voice channel: markdown gone, numbers, amounts, times, dates and references in
words a text-to-speech engine reads correctly."""

from __future__ import annotations

import pytest

from gateway.dialogue.spoken import spoken


@pytest.mark.parametrize(("text", "expected"), [
    # amounts
    ("€1,250.50", "one thousand, two hundred and fifty euros and fifty cents"),
    ("1250.50 EUR", "one thousand, two hundred and fifty euros and fifty cents"),
    ("1.250,50 €", "one thousand, two hundred and fifty euros and fifty cents"),
    ("£3.01", "three pounds and one penny"),
    ("£20.50", "twenty pounds and fifty pence"),
    ("$1", "one dollar"),
    ("USD 2.10", "two dollars and ten cents"),
    ("€0.50", "fifty cents"),
    # times
    ("09:30", "nine thirty"),
    ("9:00", "nine o'clock"),
    ("17:00", "five p m"),
    ("17:45", "five forty-five p m"),
    ("9:05", "nine oh five"),
    ("0:00", "midnight"),
    ("12:00", "noon"),
    ("9am", "nine a m"),
    ("at 5 p.m. today", "at five p m today"),
    # dates
    ("2026-11-28", "the twenty-eighth of November twenty twenty-six"),
    ("28 November 2026", "the twenty-eighth of November twenty twenty-six"),
    ("November 28, 2026", "November twenty-eighth, twenty twenty-six"),
    ("on the 3rd", "on the third"),
    ("since 1999", "since nineteen ninety-nine"),
    # references, card endings, digit strings
    ("Ref BLK-7F3A2.", "Ref B L K 7 F 3 A 2."),
    ("card ending 1234", "card ending one two three four"),
    ("it ends in 5678", "it ends in five six seven eight"),
    ("account 12345678", "account one two three four five six seven eight"),
    ("code 0042", "code zero zero four two"),
    ("Call +44 20 7946 0958", "Call plus four four two zero seven nine four six zero nine five eight"),
    # plain numbers and percentages
    ("3.5%", "three point five percent"),
    ("10% off", "ten percent off"),
    ("There are 3 cards", "There are three cards"),
    ("1,000,000 customers", "one million customers"),
    ("a rate of 2.75", "a rate of two point seven five"),
    ("a 3-day window", "a three-day window"),
    ("It costs 5.", "It costs five."),
    # a balance owed keeps its sign (espeak-ng drops a hyphen: the caller heard a credit); a range does not get one
    ("Your balance is -312.40 EUR.", "Your balance is minus three hundred and twelve euros and forty cents."),
    ("Balance: EUR -0.40", "Balance: minus forty cents"),
    ("Fees are 100-200 EUR.", "Fees are one hundred-two hundred euros."),
    ("range: €5 - €10", "range: five euros - ten euros"),
    ("Fees: - €5 per card", "Fees: - five euros per card"),
    ("You owe -€5.", "You owe minus five euros."),
])
def test_numbers(text: str, expected: str) -> None:
    assert spoken(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("# Your card\nSome **bold**, *italic*, _under_ and `code`.", "Your card\nSome bold, italic, under and code."),
    ("- one\n- two\n* three\n1. four", "one\ntwo\nthree\nfour"),
    ("See [our fees page](https://bank.example/fees) [1].", "See our fees page."),
    ("The fee [2, 3] is low[4].", "The fee is low."),
    ("| Card | Status |\n|---|:---:|\n| Visa | blocked |", "Card, Status\nVisa, blocked"),
    ("> quoted\n\n---\n\n~~old~~ new", "quoted\nnew"),
    ("```\nblock_card\n```", "block_card"),
    ("snake_case_name stays", "snake_case_name stays"),
    ("![logo](x.png) Welcome", "logo Welcome"),
    ("Answer.\n\n[^1]: Source document, page 4", "Answer."),
])
def test_markdown(text: str, expected: str) -> None:
    assert spoken(text) == expected


def test_full_reply() -> None:
    reply = ("**Done.** Your card ending 4242 was blocked on 2026-11-28 at 09:30 after a payment of €1,250.50 [1]. "
             "Your reference is BLK-7F3A2.")
    assert spoken(reply) == (
        "Done. Your card ending four two four two was blocked on the twenty-eighth of November twenty twenty-six "
        "at nine thirty after a payment of one thousand, two hundred and fifty euros and fifty cents. "
        "Your reference is B L K 7 F 3 A 2.")


def test_other_language_gets_clean_up_and_plain_numbers() -> None:
    assert spoken("Die Gebühr beträgt **25** Euro, Referenz BLK-7F3A2 [1].", "de") == (
        "Die Gebühr beträgt fünfundzwanzig Euro, Referenz B L K 7 F 3 A 2.")
    assert spoken("Tarif 2 [1]", "xx") == "Tarif 2"


def test_plain_text_untouched() -> None:
    assert spoken("Your card is blocked. Anything else?") == "Your card is blocked. Anything else?"
    assert spoken("") == ""
