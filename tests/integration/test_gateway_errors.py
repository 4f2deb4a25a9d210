"""Bad input gets a 4xx JSON error with a stable code, and nothing is written for it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from gateway.store import api_keys
from tests.integration.conftest import Appliance

pytestmark = pytest.mark.timeout(300)
USER = {"role": "user", "content": "hello"}


def chat_body(**overrides) -> dict:
    return {"model": "enclave", "messages": [USER], "max_tokens": 4, **overrides}


@pytest.fixture(scope="module")
def capped_key(appliance: Appliance) -> str:
    """A second tenant whose caps are low: 20 input tokens per message, 16 output tokens."""
    with psycopg.connect(appliance.database_url, autocommit=True) as conn:
        tenant = api_keys.ensure_tenant(conn, "capped", "Capped tenant")
        conn.execute("UPDATE tenants SET max_input_tokens = 20, max_output_tokens = 16 WHERE id = %s", (tenant,))
        return api_keys.create_key(conn, tenant, "user", label="errors test")


@pytest.fixture()
def row_counts(appliance: Appliance) -> Iterator[None]:
    """Fails the test if any session or turn row appeared during it."""
    def counts() -> tuple[int, int]:
        with psycopg.connect(appliance.database_url) as conn:
            return (conn.execute("SELECT count(*) FROM sessions").fetchone()[0],
                    conn.execute("SELECT count(*) FROM turns").fetchone()[0])
    before = counts()
    yield
    assert counts() == before, "a rejected request wrote something"


CASES = [
    # (name, request kwargs for httpx, expected status, expected code, expected param)
    ("malformed JSON", dict(content=b'{"model": "enclave", "messages": [', headers={"content-type": "application/json"}),
     400, "invalid_json", None),
    ("body is not an object", dict(json=["enclave"]), 400, "invalid_parameter", None),
    ("no messages", dict(json={"model": "enclave"}), 400, "missing_parameter", "messages"),
    ("empty messages", dict(json=chat_body(messages=[])), 400, "invalid_parameter", "messages"),
    ("unknown role", dict(json=chat_body(messages=[{"role": "wizard", "content": "hi"}])), 400, "invalid_parameter", None),
    ("unsupported parameter", dict(json=chat_body(logprobs=True)), 400, "unsupported_parameter", "logprobs"),
    ("n > 1", dict(json=chat_body(n=2)), 400, "unsupported_parameter", "n"),
    ("temperature out of range", dict(json=chat_body(temperature=7)), 400, "invalid_parameter", "temperature"),
    ("image content", dict(json=chat_body(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:,"}}]}])), 400, "invalid_parameter", "messages.0.content"),
    ("content neither text nor parts", dict(json=chat_body(messages=[{"role": "user", "content": 5}])), 400,
     "invalid_parameter", "messages.0.content"),
    ("a text part with a field OpenAI does not define", dict(json=chat_body(messages=[{"role": "user", "content": [
        {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}])), 400, "unsupported_parameter",
     "messages.0.content.0.cache_control"),
    ("empty body", dict(content=b"", headers={"content-type": "application/json"}), 400, "missing_parameter", None),
    ("form-encoded body", dict(data={"model": "enclave"}), 400, "invalid_parameter", None),
    ("modalities other than text", dict(json=chat_body(modalities=["text", "audio"])), 400, "unsupported_parameter",
     "modalities"),
    ("last message not from the user", dict(json=chat_body(messages=[USER, {"role": "assistant", "content": "x"}])),
     400, "last_message_not_user", "messages"),
    ("empty after normalisation", dict(json=chat_body(messages=[{"role": "user", "content": "<br> <p></p>"}])),
     400, "empty_message", "messages"),
    ("unknown model", dict(json=chat_body(model="gpt-4o")), 404, "model_not_found", "model"),
    ("max_tokens over the cap", dict(json=chat_body(max_tokens=100_000)), 400, "max_tokens_too_large", "max_tokens"),
    ("unknown session", dict(json=chat_body(), headers={"X-Session-Id": str(uuid.uuid4())}), 404, "session_not_found",
     "session_id"),
    ("malformed session id", dict(json=chat_body(), headers={"X-Session-Id": "../etc/passwd"}), 400,
     "invalid_session_id", "session_id"),
    ("message over the window", dict(json=chat_body(messages=[{"role": "user", "content": "word " * 600}])), 400,
     "context_length_exceeded", "messages"),
    ("oversized body", dict(content=b'{"model": "enclave", "messages": [{"role": "user", "content": "'
                            + b"x" * (1 << 20) + b'"}]}', headers={"content-type": "application/json"}),
     413, "request_too_large", None),
    # Sent chunked (no Content-Length): cut off at the cap, before FastAPI has read it all.
    ("oversized body without a length", dict(content=[b'{"model": "enclave", "messages": [{"role": "user", "content": "',
                                                      b"x" * (1 << 20), b'"}]}'],
                                              headers={"content-type": "application/json"}),
     413, "request_too_large", None),
    # Postgres holds no NUL: refused before the model runs (it was a 503 after it, the reply thrown away).
    ("NUL in a system message", dict(json=chat_body(messages=[{"role": "system", "content": "be\u0000 brief"}, USER])),
     400, "invalid_parameter", "messages.0.content"),
    ("NUL in a tool call", dict(json=chat_body(messages=[USER, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f\u0000", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"}])), 400, "invalid_parameter",
     "messages.1.tool_calls.0.function.name"),
    # What the standard library's JSON reader takes and nothing after it can: a lone surrogate escape (a 500
    # where it was first encoded: a 404's message, the tokenizer, Postgres) and NaN (Postgres's jsonb, after
    # the model had run). Both are invalid JSON.
    ("lone surrogate in a message", dict(content=b'{"model": "enclave", "messages": [{"role": "user", "content": '
                                                 b'"a\\ud800"}]}', headers={"content-type": "application/json"}),
     400, "invalid_json", None),
    ("lone surrogate in the model name", dict(content=b'{"model": "\\udc00", "messages": [{"role": "user", '
                                                      b'"content": "hi"}]}', headers={"content-type": "application/json"}),
     400, "invalid_json", None),
    ("NaN in a tool call", dict(content=b'{"model": "enclave", "messages": [{"role": "user", "content": "hi"}, '
                                        b'{"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": '
                                        b'{"name": "f", "arguments": "{}"}, "x": NaN}]}, {"role": "tool", "tool_call_id": '
                                        b'"c1", "content": "ok"}]}', headers={"content-type": "application/json"}),
     400, "invalid_json", None),
    ("a tool call whose function is not an object", dict(json=chat_body(messages=[USER, {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": "f"}]}, {"role": "tool", "tool_call_id": "c1", "content": "ok"}])),
     400, "invalid_parameter", "messages.1.tool_calls"),
    ("knowledge top_k true", dict(json=chat_body(knowledge={"top_k": True})), 400, "invalid_parameter", "knowledge"),
    ("a response format nested 300 deep", dict(json=chat_body(response_format={"type": "json_schema", "json_schema": {
        "name": "x", "schema": json.loads("[" * 300 + "]" * 300)}})), 400, "invalid_json", None),
    ("model rejects the request", dict(json=chat_body(tools=[{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {}}}}], tool_choice="required")),
     400, "upstream_rejected", None),
]


@pytest.mark.parametrize("name,kwargs,status,code,param", CASES, ids=[c[0] for c in CASES])
def test_chat_rejects_bad_input(gateway: httpx.Client, row_counts: None, name: str, kwargs: dict, status: int,
                                code: str, param: str | None) -> None:
    r = gateway.post("/v1/chat/completions", **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert error["code"] == code and error["message"], error
    if param is not None:
        assert error["param"] == param


def test_errors_say_what_is_wrong(gateway: httpx.Client, row_counts: None) -> None:
    """The message names the problem in the client's terms: no pydantic union member names, no 'None'."""
    def message(**kwargs) -> str:
        return gateway.post("/v1/chat/completions", **kwargs).json()["error"]["message"]

    assert message(content=b"", headers={"content-type": "application/json"}) == \
        "the request body is empty: send a JSON object"
    assert message(data={"model": "enclave"}) == ("the request body must be a JSON object (it was sent as "
                                                  "application/x-www-form-urlencoded; send it as application/json)")
    assert message(json=["enclave"]) == "the request body must be a JSON object"
    assert message(json=chat_body(messages=[{"role": "user", "content": [{"type": "text", "text": "look:"}, {
        "type": "image_url", "image_url": {"url": "data:,"}}]}])) == \
        "messages.0.content: part 1 is of type 'image_url': only text parts are supported"
    assert message(json=chat_body(messages=[{"role": "user", "content": 5}])) == \
        "messages.0.content: Input should be a valid string or a valid list"
    assert message(json=chat_body(stop=7)) == "stop: Input should be a valid string or a valid list"
    assert message(json=chat_body(store=True)).startswith("parameter 'store' is not supported by this endpoint: every "
                                                          "turn is kept in the appliance's own database")


def test_settings_that_change_nothing_are_accepted(gateway: httpx.Client) -> None:
    """Clients that spell out every default (n=1, logprobs=false, modalities=["text"]) are served; the same
    fields set to anything that would need support are refused by name (CASES above)."""
    r = gateway.post("/v1/chat/completions", json=chat_body(n=1, logprobs=False, modalities=["text"]))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["role"] == "assistant"


def test_caps_are_per_tenant(appliance: Appliance, capped_key: str, row_counts: None) -> None:
    with httpx.Client(base_url=appliance.gateway_url, headers={"Authorization": f"Bearer {capped_key}"},
                      trust_env=False, timeout=60) as c:
        long = c.post("/v1/chat/completions", json=chat_body(messages=[{"role": "user", "content": "tell me " * 30}]))
        assert long.status_code == 400 and long.json()["error"]["code"] == "input_too_long"
        assert "allows 20" in long.json()["error"]["message"]
        over = c.post("/v1/chat/completions", json=chat_body(max_tokens=17))
        assert over.status_code == 400 and "cap of 16" in over.json()["error"]["message"]
        # The other tenant cannot see the dev tenant's sessions, and vice versa.
        assert c.get("/v1/sessions").json()["data"] == []


def test_authentication_is_required(appliance: Appliance, row_counts: None) -> None:
    with httpx.Client(base_url=appliance.gateway_url, trust_env=False, timeout=30) as c:
        for headers, code in (({}, "missing_api_key"), ({"Authorization": "Bearer enc_nope"}, "invalid_api_key"),
                              ({"Authorization": "Basic abc"}, "missing_api_key")):
            r = c.post("/v1/chat/completions", json=chat_body(), headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == code
        assert c.get("/v1/sessions").status_code == 401
        assert c.get("/v1/models").status_code == 401


def test_sessions_api_rejects_bad_input(gateway: httpx.Client, row_counts: None) -> None:
    r = gateway.post("/v1/sessions", json={"title": "x", "colour": "blue"})
    assert r.status_code == 400 and r.json()["error"] == {
        "message": "parameter 'colour' is not supported by this endpoint", "type": "invalid_request_error",
        "code": "unsupported_parameter", "param": "colour"}
    assert gateway.post("/v1/sessions", json={"channel": "fax"}).json()["error"]["code"] == "invalid_parameter"
    # Postgres cannot hold a NUL character: the client's input, so a 400 (it was a 500), and nothing written.
    for r in (gateway.post("/v1/sessions", json={"title": "a\u0000b"}),
              gateway.get("/v1/knowledge/documents", params={"collection": "\u0000"})):
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_parameter", r.text
    # A grounding default that no turn could use is refused when the session is made, not on each turn after.
    for top_k in (0, True):   # True is an int to Python: it reached the SQL LIMIT, a 500 on every later turn
        bad = gateway.post("/v1/sessions", json={"metadata": {"knowledge": {"top_k": top_k}}}).json()["error"]
        assert (bad["code"], bad["param"]) == ("invalid_parameter", "metadata.knowledge")
    r = gateway.post("/v1/sessions", content=b'{"title": "\\ud800"}', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json", r.text
    # Nested past what the gateway walks (session metadata is redacted recursively): a 400, not a 500.
    deep = b'{"metadata": {"a": ' + b'[' * 600 + b']' * 600 + b'}}'
    r = gateway.post("/v1/sessions", content=deep, headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json", r.text
    assert "nested deeper" in r.json()["error"]["message"]
    assert gateway.get(f"/v1/sessions/{uuid.uuid4()}").json()["error"]["code"] == "session_not_found"
    assert gateway.get("/v1/sessions/not-a-uuid").json()["error"]["code"] == "invalid_session_id"
    assert gateway.get("/v1/sessions", params={"limit": 0}).status_code == 400
    assert gateway.get("/v1/nowhere").json()["error"]["code"] == "not_found"
    assert gateway.delete("/v1/models").json()["error"]["code"] == "method_not_allowed"


def test_an_operator_sets_tenant_caps_with_the_cli(appliance: Appliance) -> None:
    import subprocess
    import sys

    from tests.integration.conftest import REPO

    env = {**appliance.env, "ENCLAVE_DATABASE_URL": appliance.database_url, "COLUMNS": "200"}

    def enclave(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "deploy.cli", *args], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=120)

    r = enclave("tenants", "set", "branch-7", "--name", "Branch 7", "--max-input-tokens", "5", "--max-output-tokens", "8")
    assert r.returncode == 0 and "max input tokens 5, max output tokens 8" in r.stdout + r.stderr, r.stderr
    listed = enclave("tenants", "list")
    assert "branch-7" in listed.stdout and "Branch 7" in listed.stdout
    bad = enclave("tenants", "set", "Branch 7!")
    assert bad.returncode == 2 and "lower-case letters" in bad.stderr and "Traceback" not in bad.stderr
    with psycopg.connect(appliance.database_url, autocommit=True) as conn:
        tenant = conn.execute("SELECT id FROM tenants WHERE slug = 'branch-7'").fetchone()[0]
        key = api_keys.create_key(conn, str(tenant), "user", label="cli test")
    with httpx.Client(base_url=appliance.gateway_url, headers={"Authorization": f"Bearer {key}"},
                      trust_env=False, timeout=60) as c:
        r = c.post("/v1/chat/completions", json=chat_body(max_tokens=9))
        assert r.status_code == 400 and "cap of 8" in r.json()["error"]["message"]
        r = c.post("/v1/chat/completions", json=chat_body(messages=[{"role": "user", "content": "one two three four five six"}]))
        assert r.json()["error"]["code"] == "input_too_long"
    assert enclave("tenants", "set", "branch-7", "--max-output-tokens", "0").returncode == 0  # back to the default
