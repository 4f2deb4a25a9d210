"""Tool execution without a database: how outcomes map to action states (HTTP and Python tools), the
idempotency key, approval rules and argument validation. The database side (claims, duplicates,
restarts, webhooks) runs against Postgres in tests/integration/test_dialogue.py."""

from __future__ import annotations

import asyncio
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
