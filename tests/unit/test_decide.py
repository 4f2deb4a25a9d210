"""The dialogue's decisions on the example pack, with fakes for the tools and the LLM (the whole path, the
classifier and the real bank included, is in tests/integration/test_dialogue.py). What a review found: a
hedged reply at a confirmation moved money, a question swallowed as a free-text slot, the first of two
amounts taken."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest

from gateway.dialogue import decide as decide_module
from gateway.dialogue.decide import Decide, DialogueState, Understood
from gateway.dialogue.packs import load_pack
from gateway.dialogue.turn import Turn

PACK = load_pack(Path(__file__).resolve().parents[2] / "packs" / "retail-bank")


class Actions:
    """Records tool calls instead of making them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    async def request(self, **kw):
        self.calls.append((kw["tool_name"], kw["args"]))
        return SimpleNamespace(state="executed", output={"reference": "R1", "case_id": "C1"}, action_id="a",
                               duplicate=False, error_code=None)


@pytest.fixture()
def dialogue(monkeypatch: pytest.MonkeyPatch):
    async def no_llm(*_a, **_k):
        return None

    monkeypatch.setattr(decide_module, "complete_json", no_llm)
    actions = Actions()
    redactor = SimpleNamespace(originals=lambda text, _vault: text, redact=lambda text, _vault: text)
    decide = Decide(actions, SimpleNamespace(), redactor, None, today=lambda: date(2024, 11, 30))
    state = DialogueState()

    def say(text: str, intent: str | None = None) -> Turn:
        turn = Turn(request_id="r", tenant_id="t", session={"turn_count": 0, "id": "s1"}, session_is_new=True,
                    channel="api")
        turn.text, turn.pack, turn.dialogue_state = text, SimpleNamespace(pack=PACK), state
        turn.understood = Understood(intent, 0.9 if intent else 0.1, 0.8, "classifier" if intent else "none", [], 0)
        asyncio.run(decide(turn))
        return turn

    return say, state, actions


@pytest.mark.parametrize(("reply", "intent"), [
    ("Before I confirm, is there a fee?", "fees_inquiry"),
    ("okay wait", None),
    ("yes but make it 300 instead", None),
])
def test_a_reply_in_doubt_at_a_confirmation_moves_no_money(dialogue, reply: str, intent: str | None) -> None:
    say, state, actions = dialogue
    say("move 200 euros from checking to savings", "transfer_money")
    assert state.awaiting == "confirm"
    say(reply, intent)
    assert actions.calls == [] and state.awaiting == "confirm"
    say("yes")
    assert [name for name, _ in actions.calls] == ["transfer"]


def test_a_question_asked_for_a_free_text_slot_is_a_digression(dialogue) -> None:
    say, state, _ = dialogue
    say("I want to dispute a payment of 45 euros from yesterday", "dispute_transaction")
    assert state.awaiting == "slot:merchant"
    turn = say("Sorry, is there a fee for opening a dispute?", "fees_inquiry")
    assert turn.dialogue["decision"].startswith("digression") and "merchant" not in state.slots
    say("Coffee Corner Ltd")
    assert state.slots["merchant"] == "Coffee Corner Ltd" and state.awaiting == "confirm"


def test_two_amounts_said_in_passing_are_asked_about(dialogue) -> None:
    say, state, _ = dialogue
    turn = say("My balance is 500 euros, please move 200 from checking to savings", "transfer_money")
    assert "amount" not in state.slots and state.awaiting == "slot:amount", turn.canned_reply
    say("200")
    assert state.slots["amount"]["value"] == "200.00"
