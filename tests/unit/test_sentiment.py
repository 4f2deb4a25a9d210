"""The frustration signal against its escalation threshold: frustrated users cross it, worried or polite
banking customers do not."""

from __future__ import annotations

import pytest

from gateway.dialogue.sentiment import FRUSTRATION_THRESHOLD, frustration

FRUSTRATED = [
    "This is useless.",
    "This is ridiculous, I've been waiting for an hour",
    "What a stupid bot",
    "Terrible service",
    "Worst bank ever",
    "I'm fed up with this",
    "I'm sick of repeating myself",
    "This is a complete waste of time",
    "I already told you my card number",
    "For the third time, I want to block my card",
    "This is not helping",
    "You're not listening to me",
    "WHY IS MY CARD STILL BLOCKED",
    "Are you kidding me? I've been charged twice!!",
    "This is absolutely ridiculous!!!",
    "damn this stupid app",
    "How many times do I have to say it",
    "You don't understand anything",
    "I hate this bank",
    "What the hell, this is the worst",
    "I'm so frustrated right now",
    "Unacceptable. Fix it now.",
    "This is pathetic",
    "NO. I SAID BLOCK THE CARD!!!",
    "thanks for nothing",
    "ugh, still not working!!!",
    "what the fuck is wrong with you",
    "I'm sick and tired of this",
    "wtf, why is it so slow!!!",
    "Are you even listening?",
]

CALM = [
    "I'm worried my card was stolen",
    "this card is not working",
    "is there a fee",
    "Can you help me block my card please?",
    "Thanks, that's all",
    "Not bad, thank you",
    "No problem, take your time",
    "I lost my wallet yesterday",
    "What's my balance?",
    "I'd like to dispute a transaction",
    "The payment didn't go through",
    "Could you check again?",
    "I'm still waiting for my refund",
    "My ATM PIN is locked",
    "I need a new IBAN for my EUR account",
    "It's not terrible, just slow",
    "Great, thanks for your help!",
    "OK",
    "I was charged twice for the same thing",
    "Can I speak to an advisor?",
    "My card got declined at the shop, what should I do?",
    "That's not a problem at all",
    "The app is a bit slow today",
    "Hello!",
    "Wow, that was quick!!",
    "I think someone used my card without permission",
    "I'm not angry, just confused",
    "I'm a bit disappointed the transfer is slow",
    "Hello, I'd like to close my ISA account",
    "",
]


def test_threshold() -> None:
    assert FRUSTRATION_THRESHOLD == 0.6


@pytest.mark.parametrize("text", FRUSTRATED)
def test_frustrated_crosses_threshold(text: str) -> None:
    assert frustration(text) >= FRUSTRATION_THRESHOLD


@pytest.mark.parametrize("text", CALM)
def test_calm_stays_below_threshold(text: str) -> None:
    assert frustration(text) < FRUSTRATION_THRESHOLD


@pytest.mark.parametrize("text", FRUSTRATED + CALM)
def test_score_in_unit_interval(text: str) -> None:
    assert 0.0 <= frustration(text) <= 1.0


def test_negation_and_politeness_damp() -> None:
    assert frustration("not bad") < frustration("bad")
    assert frustration("this isn't terrible") < FRUSTRATION_THRESHOLD <= frustration("this is terrible")
    assert frustration("this is useless, thanks") < frustration("this is useless")


def test_cues_add_up() -> None:
    assert frustration("damn") < FRUSTRATION_THRESHOLD
    assert frustration("damn, this is useless!!!") > frustration("this is useless") > frustration("damn")
    assert frustration("why is my card blocked") < frustration("WHY IS MY CARD BLOCKED")
    assert frustration("I want to talk to a real person") < FRUSTRATION_THRESHOLD
