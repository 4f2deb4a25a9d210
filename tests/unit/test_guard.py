"""The guard's redaction of a turn's own text: the message the model gets and ``turn.text`` (what the
later stages read and the turns table stores) carry the same placeholders, and each value counts once."""

from __future__ import annotations

import asyncio
import uuid

from gateway.dialogue.turn import Turn
from gateway.safety.guard import Guard
from gateway.safety.pii import DEFAULT_PATTERNS, PiiDetector
from gateway.safety.redact import Redactor
from gateway.safety.vault import StaticKey, VaultCipher


def _turn(text: str, turn_text: str | None = None) -> Turn:
    session = {"id": uuid.uuid4(), "channel": "api", "system_prompt": None, "summary": None}
    turn = Turn(request_id="r", tenant_id="t", session=session, session_is_new=True, raw_text=text,
                input_messages=[{"role": "user", "content": text}])
    turn.text = text if turn_text is None else turn_text
    return turn


def _guard() -> Guard:
    return Guard(pool=None, redactor=Redactor(PiiDetector(DEFAULT_PATTERNS), VaultCipher(StaticKey(b"k" * 32))))   # new sessions: no reads


def test_the_text_is_the_redacted_message_and_each_value_counts_once() -> None:
    turn = _turn("Write to jane.doe@example.com or john@example.org please")
    asyncio.run(_guard()(turn))
    content = turn.input_messages[-1]["content"]
    assert "example" not in content and turn.text == content
    assert turn.pii_found == {"EMAIL": 2} and turn.vault.counts == {"EMAIL": 2}


def test_a_text_that_differs_from_the_message_is_redacted_with_the_same_placeholders() -> None:
    turn = _turn("Write to jane.doe@example.com please", turn_text="write to jane.doe@example.com")
    asyncio.run(_guard()(turn))
    placeholder = turn.input_messages[-1]["content"].split()[2]
    assert "@" not in placeholder and turn.text == f"write to {placeholder}"
    assert turn.pii_found == {"EMAIL": 1} and turn.vault.counts == {"EMAIL": 1}


def test_a_message_in_parts_is_redacted_part_by_part_and_the_text_alike() -> None:
    turn = _turn("")
    turn.input_messages = [{"role": "user", "content": [{"type": "text", "text": "mail jane.doe@example.com"}]}]
    turn.text = "mail jane.doe@example.com"
    asyncio.run(_guard()(turn))
    part = turn.input_messages[-1]["content"][0]["text"]
    assert "@" not in part and turn.text == part
    assert turn.pii_found == {"EMAIL": 1}


def test_a_tool_result_keeps_an_empty_text_and_counts_its_values() -> None:
    turn = _turn("")
    turn.input_messages = [{"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
                           {"role": "tool", "tool_call_id": "1", "content": "owner: jane.doe@example.com"}]
    asyncio.run(_guard()(turn))
    assert turn.text == "" and "@" not in turn.input_messages[-1]["content"]
    assert turn.pii_found == {"EMAIL": 1}


def test_the_arguments_of_tool_calls_a_client_sends_are_redacted() -> None:
    """A client's assistant message with tool calls (the SDK's tool loop sends them back) went to the model
    and the turns table as written: '{"email": "jane@example.com"}'."""
    call = {"id": "c1", "type": "function", "function": {"name": "send_mail",
                                                         "arguments": '{"email": "jane@example.com"}'}}
    t = _turn("")
    t.input_messages = [{"role": "assistant", "content": None, "tool_calls": [call]},
                        {"role": "tool", "tool_call_id": "c1", "content": "sent"}]
    asyncio.run(_guard()(t))
    (redacted,) = t.input_messages[0]["tool_calls"]
    assert redacted["function"]["arguments"] == '{"email": "<EMAIL_1>"}' and redacted["id"] == "c1"
