"""Gateway chat against the real stack: the OpenAI SDK, SSE framing, sessions, the models list, metrics
and request ids. The appliance's own gateway is used, with the dev admin key."""

from __future__ import annotations

import json
import uuid
from typing import Literal

import httpx
import psycopg
import pytest
from openai import NotFoundError, OpenAI
from pydantic import BaseModel

from gateway.store import api_keys
from tests.integration.conftest import Appliance

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def sdk(appliance: Appliance) -> OpenAI:
    return OpenAI(base_url=f"{appliance.gateway_url}/v1", api_key=appliance.api_key,
                  http_client=httpx.Client(trust_env=False, timeout=120), max_retries=0)


def test_models_lists_the_chain(sdk: OpenAI) -> None:
    ids = [m.id for m in sdk.models.list().data]
    assert ids[0] == "enclave" and "tiny-qwen2" in ids
    # models.retrieve, for each listed id; an id that is not offered is a 404 with the chat route's code.
    assert [sdk.models.retrieve(i).id for i in ids] == ids
    with pytest.raises(NotFoundError) as missing:
        sdk.models.retrieve("Qwen/Qwen2.5-72B-Instruct")
    assert missing.value.body["code"] == "model_not_found"


def test_sdk_non_stream_creates_a_session_with_the_turn(sdk: OpenAI, gateway: httpx.Client) -> None:
    raw = sdk.chat.completions.with_raw_response.create(
        model="enclave", messages=[{"role": "user", "content": "Hello <b>there</b>, what is my balance?"}],
        max_tokens=12, temperature=0, extra_body={"ignore_eos": True})  # a random model may stop at once
    completion = raw.parse()
    session_id = raw.headers["x-session-id"]
    reply = completion.choices[0].message.content
    assert completion.object == "chat.completion" and completion.model == "tiny-qwen2"
    assert isinstance(reply, str) and reply
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage.completion_tokens == 12 and completion.usage.prompt_tokens > 0
    session = gateway.get(f"/v1/sessions/{session_id}").json()
    assert session["turn_count"] == 1 and session["channel"] == "api"
    user, assistant = session["turns"]
    # Preprocess stripped the markup; the reply is stored exactly as the client received it.
    assert (user["role"], user["content"], user["status"]) == ("user", "Hello there, what is my balance?", "complete")
    assert (assistant["role"], assistant["content"], assistant["status"]) == ("assistant", reply, "complete")
    assert assistant["model"] == "tiny-qwen2" and assistant["ttft_ms"] > 0 and assistant["total_ms"] >= assistant["ttft_ms"]
    assert assistant["tokens"] == completion.usage.completion_tokens
    assert user["language"] == "en"


def test_sdk_stream_matches_what_is_stored(sdk: OpenAI, gateway: httpx.Client) -> None:
    raw = sdk.chat.completions.with_raw_response.create(
        model="enclave", messages=[{"role": "user", "content": "Tell me a story."}], max_tokens=24, stream=True,
        stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
    session_id = raw.headers["x-session-id"]
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 24  # asked for usage: got it
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)
    turns = gateway.get(f"/v1/sessions/{session_id}").json()["turns"]
    assert turns[1]["content"] == text and turns[1]["status"] == "complete"


class Triage(BaseModel):
    """A structured answer, as an SDK user declares it for ``chat.completions.parse``."""
    intent: Literal["balance", "lost_card", "transfer"]
    urgent: bool


def test_sdk_parse_gets_a_structured_answer_through_the_gateway(sdk: OpenAI, gateway: httpx.Client) -> None:
    """The SDK's structured outputs: it sends a strict json_schema ``response_format``, the gateway forwards it,
    the engine's grammar holds the random model to it, and the SDK parses the reply into the class."""
    raw = sdk.chat.completions.with_raw_response.parse(
        model="enclave", messages=[{"role": "user", "content": "I lost my card"}], response_format=Triage,
        max_tokens=64, temperature=0)
    completion = raw.parse()
    answer = completion.choices[0].message.parsed
    assert isinstance(answer, Triage), completion.choices[0].message.content
    stored = gateway.get(f"/v1/sessions/{raw.headers['x-session-id']}").json()["turns"][-1]
    assert Triage.model_validate_json(stored["content"]) == answer


def test_sse_framing_and_headers(gateway: httpx.Client) -> None:
    body = {"model": "enclave", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "stream": True}
    with gateway.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        uuid.UUID(r.headers["x-session-id"])
        uuid.UUID(r.headers["x-turn-id"])
        raw = r.read().decode()
    assert raw.endswith("data: [DONE]\n\n")
    events = raw.split("\n\n")[:-1]
    assert all(e.startswith("data: ") or e.startswith(":") for e in events)
    payloads = [json.loads(e[6:]) for e in events if e.startswith("data: {")]
    assert all(p["object"] == "chat.completion.chunk" for p in payloads)
    assert not any(p.get("usage") for p in payloads)  # no usage chunk unless asked for
    assert len({p["id"] for p in payloads}) == 1


def test_named_session_keeps_history_on_the_server(gateway: httpx.Client) -> None:
    created = gateway.post("/v1/sessions", json={"title": "balance", "system_prompt": "You are a bank assistant."})
    assert created.status_code == 201
    sid = created.json()["id"]
    for i in range(3):
        r = gateway.post("/v1/chat/completions", headers={"X-Session-Id": sid},
                         json={"model": "enclave", "messages": [{"role": "user", "content": f"question {i}"}],
                               "max_tokens": 6})
        assert r.status_code == 200, r.text
        assert r.headers["x-session-id"] == sid and r.json()["session_id"] == sid
    session = gateway.get(f"/v1/sessions/{sid}").json()
    assert session["turn_count"] == 3 and session["title"] == "balance"
    assert [(t["seq"], t["role"]) for t in session["turns"]] == [
        (1, "user"), (1, "assistant"), (2, "user"), (2, "assistant"), (3, "user"), (3, "assistant")]
    assert [t["content"] for t in session["turns"] if t["role"] == "user"] == ["question 0", "question 1", "question 2"]
    listed = gateway.get("/v1/sessions", params={"limit": 200}).json()["data"]
    assert sid in [s["id"] for s in listed]
    assert gateway.delete(f"/v1/sessions/{sid}").json() == {"id": sid, "object": "session.deleted", "deleted": True}
    assert gateway.get(f"/v1/sessions/{sid}").status_code == 404
    assert gateway.delete(f"/v1/sessions/{sid}").json()["error"]["code"] == "session_not_found"


def test_the_session_list_pages(appliance: Appliance) -> None:
    """Newest first, limit/offset, and has_more says whether another page follows (a tenant of its own, so
    the count is known)."""
    with psycopg.connect(appliance.database_url, autocommit=True) as conn:
        # a tenant of this run's own: the counts below hold on a reused database too
        slug = f"pages-{uuid.uuid4().hex[:8]}"
        key = api_keys.create_key(conn, api_keys.ensure_tenant(conn, slug, "Paging tenant"), "user", label="pages")
    with httpx.Client(base_url=appliance.gateway_url, headers={"Authorization": f"Bearer {key}"}, trust_env=False,
                      timeout=60) as c:
        ids = [c.post("/v1/sessions", json={"title": f"s{i}"}).json()["id"] for i in range(3)]
        first = c.get("/v1/sessions", params={"limit": 2}).json()
        rest = c.get("/v1/sessions", params={"limit": 2, "offset": 2}).json()
        assert [s["id"] for s in first["data"]] + [s["id"] for s in rest["data"]] == ids[::-1]
        assert (first["has_more"], rest["has_more"]) == (True, False)
        assert c.get("/v1/sessions", params={"limit": 3}).json()["has_more"] is False
        bad = c.get("/v1/sessions", params={"limit": 0}).json()["error"]
        assert (bad["code"], bad["param"]) == ("invalid_parameter", "limit")
        # Keyset pages: a session that moves to the top between two pages (a turn) is not shown again further
        # down (with offset, the second page starts with the session the first one ended on).
        page = c.get("/v1/sessions", params={"limit": 2}).json()
        assert [s["id"] for s in page["data"]] == ids[:0:-1] and page["next_cursor"]
        with psycopg.connect(appliance.database_url, autocommit=True) as conn:
            conn.execute("UPDATE sessions SET updated_at = now() WHERE id = %s", (ids[0],))   # what a turn does
        assert [s["id"] for s in c.get("/v1/sessions", params={"limit": 2, "offset": 2}).json()["data"]] == [ids[1]]
        after = c.get("/v1/sessions", params={"limit": 2, "after": page["next_cursor"]}).json()
        assert after["data"] == [] and after["next_cursor"] is None   # ids[0] is now at the top of the first page
        # ...filtered by channel, and a cursor that is not one is a 400 that names it
        c.post("/v1/sessions", json={"title": "by api", "channel": "api"})
        chats = c.get("/v1/sessions", params=[("channel", "chat"), ("channel", "voice"), ("limit", 10)]).json()["data"]
        assert {s["channel"] for s in chats} == {"chat"} and len(chats) == 3
        for cursor in ("yesterday", "2026-01-01T00:00:00~not-a-uuid", f"2026-01-01T00:00:00~{ids[0]}"):
            bad = c.get("/v1/sessions", params={"after": cursor}).json()["error"]
            assert (bad["code"], bad["param"]) == ("invalid_parameter", "after"), cursor
        bad = c.get("/v1/sessions", params={"channel": "fax"}).json()["error"]
        assert bad["code"] == "invalid_parameter"


def _metric(text: str, series: str) -> float:
    return next((float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(series + " ")), 0.0)


def test_request_id_is_echoed_and_metrics_are_exposed(gateway: httpx.Client) -> None:
    counted = ('enclave_turns_total{channel="api",model="tiny-qwen2",status="complete"}',
               'enclave_time_to_first_token_seconds_count{channel="api",model="tiny-qwen2"}',
               'enclave_requests_total{method="POST",route="/v1/chat/completions",status="200"}')
    tokens_out = 'enclave_tokens_total{channel="api",direction="out",model="tiny-qwen2"}'
    before = gateway.get("/metrics").text
    r = gateway.post("/v1/chat/completions", headers={"X-Request-Id": "req-test-0001"},
                     json={"model": "enclave", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
    assert r.status_code == 200 and r.headers["x-request-id"] == "req-test-0001"
    after = gateway.get("/metrics").text
    for series in counted:   # this request counted, not only the series present from earlier ones
        assert _metric(after, series) == _metric(before, series) + 1, series
    assert _metric(after, tokens_out) == _metric(before, tokens_out) + r.json()["usage"]["completion_tokens"]
    assert len(gateway.get("/healthz").headers["x-request-id"]) == 32  # made up when none is sent
    metrics = gateway.get("/metrics").text
    for line in ('enclave_time_to_first_token_seconds_count{channel="api",model="tiny-qwen2"}',
                 'enclave_turn_duration_seconds_count{channel="api",model="tiny-qwen2"}',
                 'enclave_tokens_total{channel="api",direction="out",model="tiny-qwen2"}',
                 'enclave_turns_total{channel="api",model="tiny-qwen2",status="complete"}',
                 'enclave_breaker_state{role="llm",upstream="primary"} 0.0',
                 'enclave_requests_total{method="POST",route="/v1/chat/completions",status="200"}',
                 "enclave_active_streams"):
        assert line in metrics, line
