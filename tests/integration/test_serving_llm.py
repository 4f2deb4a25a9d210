"""The LLM role through the real Serve app (ray.serve.llm + vLLM on the tiny model)."""

from __future__ import annotations

import json

import httpx
import jsonschema
import pytest
from openai import OpenAI

pytestmark = pytest.mark.integration

MODEL = "tiny-qwen2"


def sse_events(response: httpx.Response) -> list[str]:
    """The `data:` payloads of an SSE stream, checking the framing as we go."""
    events = []
    for line in response.iter_lines():
        if not line or line.startswith(":"):
            continue
        assert line.startswith("data: "), f"bad SSE line: {line!r}"
        events.append(line[len("data: "):])
    return events


def test_models_lists_the_profile_llm(serving: httpx.Client) -> None:
    ids = [m["id"] for m in serving.get("/v1/models").json()["data"]]
    assert ids == [MODEL]


def test_streamed_chat_completion(serving: httpx.Client) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 16,
            "stream": True, "stream_options": {"include_usage": True}, "ignore_eos": True}
    with serving.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    content_chunks = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(content_chunks) > 1, "the reply should arrive in several chunks"
    assert text
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens"] == 16
    assert usage["prompt_tokens"] > 0


def test_non_streamed_with_the_openai_sdk(appliance) -> None:
    client = OpenAI(base_url=appliance.serving_url + "/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=8)
    assert reply.choices[0].message.role == "assistant"
    assert reply.usage.completion_tokens <= 8


SCHEMA = {
    "type": "object",
    "properties": {
        "intent": {"type": "string", "enum": ["balance", "lost_card", "transfer"]},
        "amount": {"type": "integer", "minimum": 0, "maximum": 100000},
        "reference": {"type": "string", "maxLength": 12},
        "urgent": {"type": "boolean"},
    },
    "required": ["intent", "amount", "reference", "urgent"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("attempt", range(3))
def test_json_schema_output_is_valid(serving: httpx.Client, attempt: int) -> None:
    body = {"model": MODEL, "max_tokens": 200, "seed": attempt,
            "messages": [{"role": "user", "content": "I lost my card"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "triage", "schema": SCHEMA}}}
    r = serving.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "stop", "the grammar must close the object before max_tokens"
    jsonschema.validate(json.loads(choice["message"]["content"]), SCHEMA)


TOOL = {"type": "function", "function": {
    "name": "get_balance", "description": "Balance of one account",
    "parameters": {"type": "object", "properties": {"account": {"type": "string", "enum": ["current", "savings"]}},
                   "required": ["account"], "additionalProperties": False}}}


def test_tools_pass_through_to_the_model(serving: httpx.Client) -> None:
    """With tool_choice auto the tools reach the model's chat template (the prompt grows by them) and the
    reply comes back through vLLM's hermes tool parser."""
    base = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "balance?"}]}
    plain = serving.post("/v1/chat/completions", json=base)
    with_tools = serving.post("/v1/chat/completions", json={**base, "tools": [TOOL], "tool_choice": "auto"})
    assert plain.status_code == with_tools.status_code == 200, with_tools.text
    grown = with_tools.json()["usage"]["prompt_tokens"] - plain.json()["usage"]["prompt_tokens"]
    assert grown > 50, "the tool schema should be rendered into the prompt"
    assert with_tools.json()["choices"][0]["message"]["role"] == "assistant"


def test_forced_tool_choice_is_a_clean_4xx_on_the_tiny_profile(serving: httpx.Client) -> None:
    """Known limit (docs/serving.md): guidance cannot take vLLM's tool structural tag."""
    body = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "x"}], "tools": [TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_balance"}}}
    r = serving.post("/v1/chat/completions", json=body)
    assert r.status_code == 400
    assert "error" in r.json()


@pytest.mark.parametrize("body, status", [
    ({"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}, 404),
    ({"model": MODEL, "messages": "not a list"}, 400),
    ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}, 400),
    ({"model": MODEL, "messages": [{"role": "user", "content": "word " * 5000}]}, 400),
])
def test_bad_chat_requests_get_a_4xx(serving: httpx.Client, body: dict, status: int) -> None:
    r = serving.post("/v1/chat/completions", json=body)
    assert r.status_code == status, r.text
    # Ray's ingress answers some errors FastAPI-style ({"detail"}); the gateway normalises both shapes.
    assert "error" in r.json() or "detail" in r.json()
