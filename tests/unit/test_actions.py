"""Tool execution without a database: how outcomes map to action states (HTTP and Python tools), the
idempotency key, approval rules and argument validation. The database side (claims, duplicates,
restarts, webhooks) runs against Postgres in tests/integration/test_dialogue.py."""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal

import httpx
import pytest

from gateway.dialogue.actions import ToolExecutor, ToolUnavailable, idempotency_key, schema_errors
from gateway.dialogue.packs import ApprovalRule, Tool

SCHEMA = {"type": "object", "properties": {"amount": {"type": "string", "pattern": r"^\d+\.\d{2}$"}},
          "required": ["amount"], "additionalProperties": False}


class ToolError(Exception):
    code = "limit_reached"


def echo(args: dict) -> dict:
    return {"echo": args}


async def async_echo(args: dict) -> dict:
    return {"async": args}


def broken(args: dict) -> dict:
    raise ToolError("over the limit")


def which_thread(args: dict) -> dict:
    return {"thread": threading.get_ident()}


def http_tool(**kw) -> Tool:
    return Tool(description="t", parameters=SCHEMA, http={"url": "http://bank.internal/tools/t"}, **kw)


def executor(handler) -> ToolExecutor:
    return ToolExecutor(httpx.AsyncClient(transport=httpx.MockTransport(handler)))


def test_http_outcomes_map_to_states_and_send_the_idempotency_key() -> None:
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["key"] = request.headers.get("idempotency-key")
        amount = request.read().decode()
        if "1.00" in amount:
            return httpx.Response(200, json={"reference": "R1"})
        if "2.00" in amount:
            return httpx.Response(202, json={"status": "accepted"})
        if "3.00" in amount:
            return httpx.Response(409, json={"error": {"code": "insufficient_funds", "message": "no"}})
        return httpx.Response(503, text="down")

    ex = executor(handler)
    tool = http_tool(side_effect="money")
    assert asyncio.run(ex.execute(tool, {"amount": "1.00"}, "k1")) == ("executed", {"reference": "R1"}, None)
    assert seen["key"] == "k1"
    assert asyncio.run(ex.execute(tool, {"amount": "2.00"}, "k2"))[0] == "running"
    assert asyncio.run(ex.execute(tool, {"amount": "3.00"}, "k3")) == ("failed", None, "insufficient_funds")
    with pytest.raises(ToolUnavailable):   # retryable: same key next time
        asyncio.run(ex.execute(tool, {"amount": "4.00"}, "k4"))


def test_python_tools_sync_async_and_failing() -> None:
    ex = executor(lambda r: httpx.Response(500))
    for target, field in (("tests.unit.test_actions:echo", "echo"), ("tests.unit.test_actions:async_echo", "async")):
        tool = Tool(description="t", parameters=SCHEMA, python=target)
        assert asyncio.run(ex.execute(tool, {"amount": "1.00"}, None)) == ("executed", {field: {"amount": "1.00"}}, None)
    tool = Tool(description="t", parameters=SCHEMA, python="tests.unit.test_actions:broken")
    assert asyncio.run(ex.execute(tool, {"amount": "1.00"}, None)) == ("failed", None, "limit_reached")
    # A plain function runs off the event loop (it may block; the loop paces live calls' audio).
    tool = Tool(description="t", parameters=SCHEMA, python="tests.unit.test_actions:which_thread")
    state, result, _ = asyncio.run(ex.execute(tool, {"amount": "1.00"}, None))
    assert state == "executed" and result["thread"] != threading.get_ident()


def test_a_webhook_signature_with_unicode_digits_is_malformed_not_a_crash() -> None:
    from gateway.dialogue.webhooks import WebhookSignatureError, verify

    with pytest.raises(WebhookSignatureError) as e:
        verify(b"secret", "t=\u00b2,v1=ab", b"{}")       # '²'.isdigit() is True, int('²') raises
    assert e.value.code == "signature_malformed"
    with pytest.raises(WebhookSignatureError) as e:
        verify(b"secret", "t=" + "9" * 5000 + ",v1=ab", b"{}")   # past int()'s 4,300-digit limit: was a 500
    assert e.value.code == "signature_malformed"


def test_a_transcription_that_is_not_the_expected_object_is_the_role_failing() -> None:
    from gateway.clients.speech import SpeechToText, SpeechUnavailable

    for body in (b"not json", b"[1, 2]"):
        client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r, body=body: httpx.Response(200, content=body)),
                                   base_url="http://stt")
        with pytest.raises(SpeechUnavailable):
            asyncio.run(SpeechToText(client).transcribe(b"\0\0" * 160, 16000))


def test_a_tool_is_http_or_python_with_a_valid_schema() -> None:
    with pytest.raises(ValueError, match="exactly one of http or python"):
        Tool(description="t", parameters=SCHEMA)
    with pytest.raises(ValueError, match="module:function"):
        Tool(description="t", parameters=SCHEMA, python="not a target")
    with pytest.raises(ValueError, match="not a valid JSON schema"):
        Tool(description="t", parameters={"type": "objekt"}, python="a:b")


def test_approval_rules_and_argument_validation() -> None:
    rule = ApprovalRule(amount_arg="amount", amount_over=Decimal("5000"))
    assert rule.reason({"amount": "5000.00"}) is None and "over 5000" in rule.reason({"amount": "5000.01"})
    assert rule.reason({"amount": "lots"}) == "amount is not a number"      # never silently below the limit
    assert ApprovalRule(always=True).reason({}) == "approval always required" and ApprovalRule().reason({}) is None
    tool = http_tool()
    assert schema_errors(tool, {"amount": "10.00"}) == []
    assert schema_errors(tool, {"amount": "ten", "to": "x"})   # pattern and an unexpected argument


def test_the_idempotency_key_is_stable_per_step_and_distinct_across_steps() -> None:
    k = idempotency_key("t", "s", "flow-run-1", 3, "transfer")
    assert k == idempotency_key("t", "s", "flow-run-1", 3, "transfer") and len(k) == 40
    assert len({k, idempotency_key("t", "s", "flow-run-1", 4, "transfer"), idempotency_key("t", "s", "flow-run-2", 3, "transfer"),
                idempotency_key("u", "s", "flow-run-1", 3, "transfer")}) == 4
