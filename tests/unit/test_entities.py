"""Slot values from typed and spoken utterances: amounts, dates, card endings, account types, integers, enums,
yes/no. ``TODAY`` is fixed (Thursday 3 December 2026) so relative dates are exact."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.dialogue.entities import ENTITY_TYPES, Entity, extract, extract_all, parse_yes_no

TODAY = date(2026, 12, 3)   # a Thursday


def values(text: str, kind: str, **kw: object) -> list[object]:
    return [e.value for e in extract(text, kind, today=TODAY, **kw)]


def amounts(text: str, **kw: object) -> list[tuple[str, str]]:
    return [(v["value"], v["currency"]) for v in values(text, "amount", **kw)]  # type: ignore[index]


# --------------------------------------------------------------------------------------------------------
# amount
# --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("€250", ("250.00", "EUR")),
    ("250€", ("250.00", "EUR")),
    ("EUR 250", ("250.00", "EUR")),
    ("250 euros", ("250.00", "EUR")),
    ("250 eur", ("250.00", "EUR")),
    ("one euro", ("1.00", "EUR")),
    ("£1,200.50", ("1200.50", "GBP")),
    ("$30", ("30.00", "USD")),
    ("30 dollars", ("30.00", "USD")),
    ("USD 30", ("30.00", "USD")),
    ("CHF 20.5", ("20.50", "CHF")),
    ("100 SEK", ("100.00", "SEK")),
    ("1.200,50 €", ("1200.50", "EUR")),
    ("€1.200", ("1200.00", "EUR")),
    ("12,5 €", ("12.50", "EUR")),
    ("two hundred and fifty euros", ("250.00", "EUR")),
    ("three hundred and twenty five dollars", ("325.00", "USD")),
    ("fifty quid", ("50.00", "GBP")),
    ("a hundred pounds", ("100.00", "GBP")),
    ("twelve euros fifty", ("12.50", "EUR")),
    ("20 euros and 50 cents", ("20.50", "EUR")),
    ("50p", ("0.50", "GBP")),
    ("€1.5k", ("1500.00", "EUR")),
    ("1.5k", ("1500.00", "EUR")),
    ("one point five thousand euros", ("1500.00", "EUR")),
    # Thousands grouped by a plain space (French, German): read as 6.00, 500.00 and 5.00 before.
    ("transfer 6 500 euros to savings", ("6500.00", "EUR")),
    ("6 500 €", ("6500.00", "EUR")),
    ("5 000,50 €", ("5000.50", "EUR")),
    ("CHF 12 000", ("12000.00", "CHF")),
])
def test_amount_forms(text: str, expected: tuple[str, str]) -> None:
    assert amounts(text) == [expected]


def test_amount_without_mark_takes_default_currency() -> None:
    assert amounts("250", default_currency="GBP") == [("250.00", "GBP")]
    assert amounts("um, about 250") == [("250.00", "EUR")]
    assert amounts("I paid 250 to John") == [("250.00", "EUR")]
    assert amounts("a transfer of 40 yesterday") == [("40.00", "EUR")]
    assert amounts("transfer 2 thousand to savings") == [("2000.00", "EUR")]
    assert amounts("it cost me 30 dollars", default_currency="CAD") == [("30.00", "CAD")]


@pytest.mark.parametrize("text", [
    "I lost my card",
    "call me at 9",
    "my card ending 1234",
    "it ends in 1234",
    "the last four are 1234",
    "I paid 3 times",
    "it happened 3 days ago",
    "I have 2 cards",
    "paid at 9:30",
    "spent 5% more",
    "on 28/11/2026",
    "I paid on the 28th",
])
def test_no_amount(text: str) -> None:
    assert amounts(text) == []


def test_amount_next_to_other_values() -> None:
    text = "I was charged £45.99 twice on the 3rd with my card ending 1234"
    assert amounts(text) == [("45.99", "GBP")]
    found = extract("it was 30 dollars, card ending 1234 on 28/11", "amount", today=TODAY)
    assert [(e.text, e.start, e.end) for e in found] == [("30 dollars", 7, 17)]


def test_amount_span_points_into_the_original() -> None:
    text = "I sent two hundred and fifty euros to my landlord"
    (e,) = extract(text, "amount", today=TODAY)
    assert e.text == "two hundred and fifty euros" == text[e.start:e.end]
    assert e.value == {"value": "250.00", "currency": "EUR"}


# --------------------------------------------------------------------------------------------------------
# date
# --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("today", "2026-12-03"),
    ("yesterday", "2026-12-02"),
    ("yesturday", "2026-12-02"),
    ("the day before yesterday", "2026-12-01"),
    ("last night", "2026-12-02"),
    ("last friday", "2026-11-27"),
    ("on monday", "2026-11-30"),
    ("on thursday", "2026-11-26"),          # today is Thursday: the one before
    ("on wensday", "2026-12-02"),
    ("3 days ago", "2026-11-30"),
    ("a week ago", "2026-11-26"),
    ("28/11/2026", "2026-11-28"),
    ("28.11.2026", "2026-11-28"),
    ("2026-11-28", "2026-11-28"),
    ("28/11/26", "2026-11-28"),
    ("28/11", "2026-11-28"),
    ("12/25", "2025-12-25"),                # month first only when the day-first reading is impossible
    ("28 Nov", "2026-11-28"),
    ("November 28th", "2026-11-28"),
    ("novmber 28", "2026-11-28"),
    ("28 November 2026", "2026-11-28"),
    ("the 28th", "2026-11-28"),             # not yet this month: last month
    ("the 2nd", "2026-12-02"),
    ("the 31st", "2026-10-31"),             # November has no 31st
    ("on the 28th of last month", "2026-11-28"),
    ("twenty eighth of november", "2026-11-28"),
    ("November twenty eighth", "2026-11-28"),
    ("the twenty-fifth of december", "2025-12-25"),  # in the future this year: last year's
    ("on the first of march", "2026-03-01"),
    ("the twenty eighth of november twenty twenty five", "2025-11-28"),
])
def test_date_forms(text: str, expected: str) -> None:
    assert values(text, "date") == [expected]


@pytest.mark.parametrize("text", [
    "the first time I called",
    "the service is available 24/7",
    "next friday",
    "I paid 250 euros",
])
def test_no_date(text: str) -> None:
    assert values(text, "date") == []


def test_dates_in_order_of_appearance() -> None:
    found = extract("not on monday but yesterday", "date", today=TODAY)
    assert [(e.value, e.text) for e in found] == [("2026-11-30", "on monday"), ("2026-12-02", "yesterday")]


# --------------------------------------------------------------------------------------------------------
# card_last4
# --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("ending 1234", "1234"),
    ("my card ends in 1234", "1234"),
    ("last four 1234", "1234"),
    ("the last 4 digits are 1234", "1234"),
    ("the last four are one two three four", "1234"),
    ("card 1234", "1234"),
    ("ending in 1 2 3 4", "1234"),
    ("one two three four", "1234"),
    ("double four one two", "4412"),
    ("my card ending in four oh one two", "4012"),
    ("twelve thirty four", "1234"),
    ("4111 1111 1111 1111", "1111"),
    ("my card 4539-1488-0343-6467 was charged", "6467"),
    ("1234", "1234"),
    ("it's 1234", "1234"),
    ("um, 1234.", "1234"),
])
def test_card_last4_forms(text: str, expected: str) -> None:
    assert values(text, "card_last4") == [expected]


@pytest.mark.parametrize("text", [
    "I paid 1234 euros",
    "ending 12345",
    "I want 1234 things",
    "I lost my card",
    "one two three",
])
def test_no_card_last4(text: str) -> None:
    assert values(text, "card_last4") == []


def test_card_span_is_the_digits() -> None:
    (e,) = extract("my card ending in one two three four got blocked", "card_last4", today=TODAY)
    assert (e.text, e.value) == ("one two three four", "1234")


# --------------------------------------------------------------------------------------------------------
# account_type
# --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("my current account", ["checking"]),
    ("checking", ["checking"]),
    ("the cheque account", ["checking"]),
    ("from my main account", ["checking"]),
    ("savings", ["savings"]),
    ("my saver", ["savings"]),
    ("the rainy day account", ["savings"]),
    ("my ISA", ["savings"]),
    ("credit card", ["credit_card"]),
    ("the business account", ["business"]),
    ("business", ["business"]),
    ("savngs", ["savings"]),
    ("cheking account", ["checking"]),
    ("savngs acount", ["savings"]),
    ("my buisness account", ["business"]),
    ("move 50 from checking to savings", ["checking", "savings"]),
])
def test_account_type(text: str, expected: list[str]) -> None:
    assert values(text, "account_type") == expected


@pytest.mark.parametrize("text", ["I was checking my balance", "is it safer to wait", "none of your business, really"])
def test_no_account_type(text: str) -> None:
    assert values(text, "account_type") == []


# --------------------------------------------------------------------------------------------------------
# integer, enum, yes_no, text
# --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("3", [3]),
    ("three", [3]),
    ("twenty one", [21]),
    ("twenty-one", [21]),
    ("a hundred and five", [105]),
    ("1,000 items", [1000]),
    ("I have 2 cards and twenty one euros", [2, 21]),
    ("the 28th", []),
    ("1.5", []),
    ("none", []),
])
def test_integer(text: str, expected: list[int]) -> None:
    assert values(text, "integer") == expected


def test_enum() -> None:
    options = ["block_card", "freeze", "replace"]
    assert values("please block card", "enum", options=options) == ["block_card"]
    assert values("BLOCK_CARD", "enum", options=options) == ["block_card"]
    assert values("just freez it", "enum", options=options) == ["freeze"]
    assert values("replace it, or freeze it", "enum", options=options) == ["replace", "freeze"]
    assert values("I don't know", "enum", options=options) == []
    assert values("anything", "enum") == []


@pytest.mark.parametrize("text", ["yes", "yeah go ahead", "yep, do it", "correct", "that's right", "please do",
                                  "Yesss", "sure thing", "ok", "no problem", "absolutely", "please",
                                  "yes, block it before anyone uses it", "yes, first thing please", "yes, only that card",
                                  "yes please go ahead", "correct, that's the one"])
def test_yes(text: str) -> None:
    assert parse_yes_no(text) is True


@pytest.mark.parametrize("text", ["no", "nope", "don't", "cancel", "wait no", "not now", "yes... actually no",
                                  "no thanks", "please don't", "that's not right", "I didn't"])
def test_no(text: str) -> None:
    assert parse_yes_no(text) is False


@pytest.mark.parametrize("text", ["what's the fee?", "is that right?", "I'm not sure", "I don't know", "hmm",
                                  "my card ending 1234", "",
                                  # a yes-word in doubt (a review found each executed a transfer or a card block)
                                  "Before I confirm, is there a fee?", "okay wait", "yes but make it 300 instead",
                                  "ok so what happens to my old card?", "ok so what happens to my old card",
                                  "yes 250", "maybe yes", "fine, hold on", "sure, actually let me check"])
def test_neither_yes_nor_no(text: str) -> None:
    assert parse_yes_no(text) is None


def test_yes_no_and_text_entities_span_the_text() -> None:
    assert extract("  yes please ", "yes_no", today=TODAY) == [Entity("yes_no", True, "yes please", 2, 12)]
    assert extract("nope", "yes_no", today=TODAY)[0].value is False
    assert extract("what's the fee?", "yes_no", today=TODAY) == []
    assert extract("  my dog ate it \n", "text", today=TODAY) == [Entity("text", "my dog ate it", "my dog ate it", 2, 15)]
    assert extract("   ", "text", today=TODAY) == []


# --------------------------------------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------------------------------------

def test_entity_types() -> None:
    assert ENTITY_TYPES == {"amount", "date", "card_last4", "account_type", "integer", "enum", "yes_no", "text"}
    with pytest.raises(ValueError):
        extract("x", "colour", today=TODAY)


def test_extract_all() -> None:
    text = "I paid fifty euros yesterday with my card ending 1234 from my savings"
    got = extract_all(text, ["amount", "date", "card_last4", "account_type"], today=TODAY)
    assert [e.value for e in got["amount"]] == [{"value": "50.00", "currency": "EUR"}]
    assert [e.value for e in got["date"]] == ["2026-12-02"]
    assert [e.value for e in got["card_last4"]] == ["1234"]
    assert [e.value for e in got["account_type"]] == ["savings"]
    for entities in got.values():
        for e in entities:
            assert text[e.start:e.end] == e.text


def test_entities_are_frozen_and_json_friendly() -> None:
    import json

    (e,) = extract("€5", "amount", today=TODAY)
    with pytest.raises(AttributeError):
        e.value = None  # type: ignore[misc]
    assert json.loads(json.dumps(e.value)) == {"value": "5.00", "currency": "EUR"}


@pytest.mark.parametrize("text", ["two fifty euros", "it was twelve fifty euros", "nineteen ninety-nine euros",
                                  "three twenty five euros", "I paid two fifty"])
def test_a_price_said_in_pairs_gives_no_amount_rather_than_half_of_one(text: str) -> None:
    """Read a word at a time, "two fifty euros" was 50.00: a flow asks again instead."""
    assert amounts(text) == []


def test_numbers_said_whole_are_still_read() -> None:
    assert amounts("twelve euros fifty") == [("12.50", "EUR")]
    assert amounts("I was charged forty euros two days ago") == [("40.00", "EUR")]   # a number after the currency
    assert amounts("send twenty euros five times") == [("20.00", "EUR")]
    assert amounts("two hundred and fifty euros") == [("250.00", "EUR")]
