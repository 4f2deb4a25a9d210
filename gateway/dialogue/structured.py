"""Structured output from the LLM chain: JSON that a schema guarantees (vLLM's ``response_format``
json_schema, or a named tool call through its OpenAI tools API), parsed and validated again here.

Dialogue decisions never depend on free text: when the LLM classifies, extracts or fills tool
arguments, the engine is constrained to the schema, and what comes back is checked with jsonschema. A
chain that answers with its canned apology, times out or returns something invalid yields ``None``, and
the caller takes its deterministic path.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from gateway.clients.llm import LLMChain, merge_tool_calls
from gateway.dialogue.schemas import validator as schema_validator
from gateway.errors import EnclaveError, InvalidRequest

log = logging.getLogger("enclave.gateway.structured")


class Rejected(Exception):
    """The engine refused the request itself (e.g. a forced tool choice its grammar backend cannot do)."""


async def _collect(chain: LLMChain, payload: dict[str, Any], timeout_s: float) -> tuple[str, list[dict]] | None:
    try:
        async with asyncio.timeout(timeout_s):
            opened = await chain.open(payload)
            if opened.canned:
                await opened.aclose()
                return None
            text, calls = [], []
            try:
                async for ev in opened:
                    text.append(ev.content)
                    if ev.tool_calls:
                        merge_tool_calls(calls, ev.tool_calls)
            finally:
                await opened.aclose()
            if opened.failed_midway:
                return None
            return "".join(text), calls
    except InvalidRequest as e:
        raise Rejected(str(e)) from e
    except (TimeoutError, EnclaveError) as e:
        log.warning("structured call failed", extra={"error": str(e)[:200]})
        return None


def _valid(value: Any, schema: dict[str, Any]) -> bool:
    return not any(True for _ in schema_validator(schema).iter_errors(value))


async def complete_json(chain: LLMChain, messages: list[dict], schema: dict[str, Any], *, name: str = "answer",
                        max_tokens: int = 128, timeout_s: float = 20.0) -> dict[str, Any] | None:
    """One JSON object matching ``schema``, or None."""
    payload = {"messages": messages, "max_tokens": max_tokens, "temperature": 0,
               "response_format": {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}}
    try:
        got = await _collect(chain, payload, timeout_s)
    except Rejected as e:
        log.warning("structured output refused by the engine", extra={"error": str(e)[:200]})
        return None
    if got is None:
        return None
    try:
        value = json.loads(got[0])
    except ValueError:
        log.warning("structured output did not parse", extra={"schema": name, "chars": len(got[0])})
        return None
    return value if isinstance(value, dict) and _valid(value, schema) else None


_TOOLS_API_REFUSED: set[str] = set()   # models whose engine refused a forced tool choice: ask by JSON schema


async def call_tool(chain: LLMChain, messages: list[dict], name: str, description: str, parameters: dict[str, Any], *,
                    max_tokens: int = 160, timeout_s: float = 20.0) -> tuple[dict[str, Any] | None, str]:
    """Ask the LLM for the arguments of one named tool: ``tool_choice`` forces the call and the engine
    constrains the arguments to the tool's JSON schema. Some grammar backends cannot compile a forced tool
    choice (vLLM's ``guidance``, used on CPU, answers 400); then the same schema goes through
    ``response_format`` instead — same guarantee, no tool-call envelope. Returns (validated arguments or
    None, "tools_api" | "json_schema")."""
    model = chain.primary_model
    if model in _TOOLS_API_REFUSED:
        return await complete_json(chain, messages, parameters, name=name, max_tokens=max_tokens,
                                   timeout_s=timeout_s), "json_schema"
    tool = {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}
    payload = {"messages": messages, "max_tokens": max_tokens, "temperature": 0, "tools": [tool],
               "tool_choice": {"type": "function", "function": {"name": name}}}
    try:
        got = await _collect(chain, payload, timeout_s)
    except Rejected as e:
        log.warning("forced tool choice refused; using JSON-schema output", extra={"model": model, "error": str(e)[:200]})
        _TOOLS_API_REFUSED.add(model)
        return await complete_json(chain, messages, parameters, name=name, max_tokens=max_tokens,
                                   timeout_s=timeout_s), "json_schema"
    if got is None:
        return None, "tools_api"
    text, calls = got
    raw = next((c["function"]["arguments"] for c in calls if c["function"]["name"] == name), None)
    if raw is None:
        raw = text   # some servers put a forced call's arguments in the content
    try:
        args = json.loads(raw)
    except ValueError:
        return None, "tools_api"
    return (args if isinstance(args, dict) and _valid(args, parameters) else None), "tools_api"
