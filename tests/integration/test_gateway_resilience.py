"""What reached the LLM, the rolling summary, fallback + circuit breaker, and cancellation on disconnect.

A second gateway runs with a recording TCP forwarder as its primary upstream (see upstream_proxy.py):
requests still reach the real Serve LLM, but the test can read them and switch the upstream off and on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Appliance, GatewayProcess, free_port, start_gateway
from tests.integration.upstream_proxy import RecordingProxy

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def proxied(appliance: Appliance, proxy: RecordingProxy) -> Iterator[GatewayProcess]:
    """primary = the forwarder, secondary = Serve directly (same model), then the canned apology."""
    gw = start_gateway(appliance, "proxied", llm_chain=[
        {"name": "primary", "url": proxy.url}, {"name": "secondary"}, {"name": "apology", "kind": "canned"}],
        upstream_retries=0, breaker_failure_threshold=2, breaker_reset_s=2, summary_threshold_tokens=100_000)
    yield gw
    gw.stop()


def client(appliance: Appliance, gw: GatewayProcess) -> httpx.Client:
    return httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {appliance.api_key}"}, timeout=120,
                        trust_env=False)


def chat(c: httpx.Client, text: str, session: str | None = None, **extra) -> httpx.Response:
    headers = {"X-Session-Id": session} if session else {}
    r = c.post("/v1/chat/completions", headers=headers,
               json={"model": "enclave", "messages": [{"role": "user", "content": text}], "max_tokens": 8, **extra})
    assert r.status_code == 200, r.text
    return r


def metric(c: httpx.Client, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in c.get("/metrics").text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_session_history_reaches_the_llm(appliance: Appliance, proxied: GatewayProcess, proxy: RecordingProxy) -> None:
    with client(appliance, proxied) as c:
        sid = c.post("/v1/sessions", json={"system_prompt": "You are Enclave, a bank assistant."}).json()["id"]
        replies = []
        for i, text in enumerate(["My name is Ada.", "I want to move money.", "How much can I send?"]):
            before = len(proxy.chat_requests())
            r = chat(c, text, sid)
            replies.append(r.json()["choices"][0]["message"]["content"])
            sent = proxy.chat_requests()[before:]
            assert len(sent) == 1
            # Exactly: the system prompt, every earlier turn as stored, then the new message.
            # (The name is redacted before anything is sent or stored: the LLM only ever sees its placeholder.)
            as_sent = ["My name is <PERSON_1>.", "I want to move money.", "How much can I send?"]
            expected = [{"role": "system", "content": "You are Enclave, a bank assistant."}]
            for j in range(i):
                expected += [{"role": "user", "content": as_sent[j]}, {"role": "assistant", "content": replies[j]}]
            expected.append({"role": "user", "content": as_sent[i]})
            assert sent[0]["messages"] == expected
            assert sent[0]["model"] == "tiny-qwen2" and sent[0]["max_tokens"] == 8 and sent[0]["stream"] is True
            assert sent[0]["_request_id"] == r.headers["x-request-id"]  # one id from gateway to upstream


def test_rolling_summary_appears_past_the_threshold(appliance: Appliance, proxy: RecordingProxy) -> None:
    gw = start_gateway(appliance, "summary", llm_chain=[{"name": "primary", "url": proxy.url}],
                       summary_threshold_tokens=60, summary_keep_turns=1, summary_max_tokens=24)
    questions = ["We already bank with you; my current account is in the London branch.",
                 "She would save a little every month from her pocket money.",
                 "Can I manage the account from the app until she turns eighteen?",
                 "Is there a minimum deposit to open it?", "What interest rate does it pay?"]
    try:
        with client(appliance, gw) as c:
            sid = c.post("/v1/sessions", json={}).json()["id"]
            chat(c, "I would like to open a savings account for my daughter, she is twelve.", sid, max_tokens=16)
            time.sleep(1)
            assert c.get(f"/v1/sessions/{sid}").json()["summary"] is None  # under the threshold: nothing to condense
            # Past it, every turn triggers a summary until one is written. (A random tiny model sometimes
            # writes only whitespace, which is refused as unusable; the next turn tries again.)
            for seq, text in enumerate(questions, start=2):  # noqa: B007 (seq is used after the loop)
                attempts = lambda: sum(metric(c, "enclave_summaries_total", status=s) for s in ("written", "skipped"))  # noqa: E731
                before = attempts()
                chat(c, text, sid, max_tokens=16)
                deadline = time.monotonic() + 60
                while attempts() == before:
                    assert time.monotonic() < deadline, "the summariser did not run within 60 s"
                    time.sleep(0.2)
                session = c.get(f"/v1/sessions/{sid}").json()
                if session["summary"] is not None:
                    break
            assert session["summary"], [r for r in proxy.chat_requests() if r["messages"][0]["content"].startswith("Summarise")][-1]
            assert session["summary_upto_seq"] == seq - 1 and session["summary_tokens"] > 0  # the newest turn stays verbatim
            summary_calls = [r for r in proxy.chat_requests() if r["messages"][0]["content"].startswith("Summarise")]
            assert "savings account for my daughter" in summary_calls[-1]["messages"][1]["content"]
            before = len(proxy.chat_requests())
            chat(c, "What documents do I need?", sid)
            sent = proxy.chat_requests()[before]["messages"]
            # The summary stands in for the condensed turns; the newest turn is still verbatim.
            assert sent[0]["role"] == "system" and session["summary"] in sent[0]["content"]
            assert [m["content"] for m in sent if m["role"] == "user"] == [text, "What documents do I need?"]
    finally:
        gw.stop()


def test_dead_primary_falls_back_and_the_breaker_opens_then_recovers(
        appliance: Appliance, proxied: GatewayProcess, proxy: RecordingProxy) -> None:
    with client(appliance, proxied) as c:
        assert chat(c, "hello").headers["x-enclave-upstream"] == "primary"
        proxy.stop()  # the primary is now dead: connection refused
        for _ in range(2):
            r = chat(c, "hello")
            assert r.headers["x-enclave-upstream"] == "secondary"
            assert r.json()["choices"][0]["message"]["content"]  # a real model answered
        assert metric(c, "enclave_breaker_state", role="llm", upstream="primary") == 2  # open
        assert metric(c, "enclave_upstream_errors_total", role="llm", upstream="primary", kind="connect") == 2
        # While open, the primary is not even tried.
        with c.stream("POST", "/v1/chat/completions", json={"model": "enclave", "stream": True, "max_tokens": 4,
                                                             "messages": [{"role": "user", "content": "hi"}]}) as s:
            assert s.headers["x-enclave-upstream"] == "secondary" and s.read().endswith(b"data: [DONE]\n\n")
        assert metric(c, "enclave_upstream_errors_total", role="llm", upstream="primary", kind="breaker_open") >= 1
        assert metric(c, "enclave_fallbacks_total", role="llm", upstream="secondary") >= 3
        proxy.start()  # back on the same port
        time.sleep(2.2)  # reset_after: the next turn is a half-open probe
        assert chat(c, "hello again").headers["x-enclave-upstream"] == "primary"
        assert metric(c, "enclave_breaker_state", role="llm", upstream="primary") == 0  # closed


def test_no_upstream_left_gives_a_well_formed_apology(appliance: Appliance) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    gw = start_gateway(appliance, "dead", llm_chain=[{"name": "primary", "url": dead},
                                                     {"name": "apology", "kind": "canned"}], upstream_retries=1,
                       retry_backoff_s=0.05)
    try:
        with client(appliance, gw) as c:
            r = chat(c, "Is anyone there?")
            body = r.json()
            assert r.headers["x-enclave-upstream"] == "apology" and body["model"] == "enclave-fallback"
            assert body["choices"][0]["message"]["content"].startswith("I'm sorry")
            assert body["choices"][0]["finish_reason"] == "stop"
            with c.stream("POST", "/v1/chat/completions", json={
                    "model": "enclave", "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as s:
                assert s.status_code == 200
                raw = s.read().decode()
            assert "I'm sorry" in raw and raw.endswith("data: [DONE]\n\n")
            turns = c.get(f"/v1/sessions/{r.headers['x-session-id']}").json()["turns"]
            assert turns[1]["status"] == "failed" and turns[1]["model"] == "enclave-fallback"
            # retries: 2 attempts per turn, both counted; the failure is visible in metrics.
            assert metric(c, "enclave_upstream_errors_total", role="llm", upstream="primary", kind="connect") >= 2
            assert metric(c, "enclave_turns_total", channel="api", model="enclave-fallback", status="failed") == 2
    finally:
        gw.stop()


def test_a_non_streamed_client_that_gives_up_cancels_the_upstream(
        appliance: Appliance, proxied: GatewayProcess, proxy: RecordingProxy) -> None:
    """An SDK timeout on a non-streamed request: the model stops instead of running to the end for nobody,
    and the turn is kept as interrupted with nothing sent (left out of the history the retry will see)."""
    with client(appliance, proxied) as c:
        assert chat(c, "warm").headers["x-enclave-upstream"] == "primary"
        sid = c.post("/v1/sessions", json={}).json()["id"]
        before = len(proxy.chat_requests())
        # The tiny model writes 1000 tokens (the tenant's cap is 1024) in about 2 s on a fast idle box: give up
        # after 0.5 s, so the client always leaves while the model is still writing.
        with pytest.raises(httpx.ReadTimeout):
            c.post("/v1/chat/completions", headers={"X-Session-Id": sid}, timeout=0.5, json={
                "model": "enclave", "max_tokens": 1000, "ignore_eos": True,
                "messages": [{"role": "user", "content": "Tell me a very long story."}]})
        deadline = time.monotonic() + 15
        while len(proxy.chat_requests()) <= before:     # a busy gateway may send it after the client left
            assert time.monotonic() < deadline, "the request never reached the upstream"
            time.sleep(0.1)
        rid = proxy.chat_requests()[before]["_request_id"]
        deadline = time.monotonic() + 30
        while not any(rid in k.request_ids and k.cut_off for k in proxy.connections):
            assert time.monotonic() < deadline, "the upstream request ran on after the client left"
            time.sleep(0.2)
        deadline = time.monotonic() + 15
        while not (turns := c.get(f"/v1/sessions/{sid}").json()["turns"]):
            assert time.monotonic() < deadline, "the interrupted turn was not recorded"
            time.sleep(0.2)
        assert [(t["role"], t["status"], t["content"]) for t in turns] == [
            ("user", "complete", "Tell me a very long story."), ("assistant", "interrupted", "")]


def test_client_disconnect_cancels_the_upstream_and_keeps_what_was_sent(
        appliance: Appliance, proxied: GatewayProcess, proxy: RecordingProxy) -> None:
    """The forwarder paces the reply (10 ms an event, so 1000 tokens take 10 s or more): the tiny model
    writes 1000 tokens in under 3 s, and on a loaded CI box this test's client once read its first words
    only after the gateway had relayed nearly all of them, so nothing was left to cut off."""
    with client(appliance, proxied) as c:
        assert chat(c, "warm").headers["x-enclave-upstream"] == "primary"  # breaker closed, primary in use
        body = {"model": "enclave", "stream": True, "max_tokens": 1000, "ignore_eos": True,
                "messages": [{"role": "user", "content": "Tell me a very long story."}]}
        received = ""
        proxy.delay_down_s = 0.01
        try:
            with c.stream("POST", "/v1/chat/completions", json=body) as s:
                sid, rid = s.headers["x-session-id"], s.headers["x-request-id"]
                for line in s.iter_lines():
                    if line.startswith("data: {"):
                        received += json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                    if len(received) > 20:
                        break
            # The client hung up after a few chunks. The gateway must close its upstream request early.
            deadline = time.monotonic() + 30
            while True:
                turns = c.get(f"/v1/sessions/{sid}").json().get("turns", [])
                if turns:
                    break
                assert time.monotonic() < deadline, "the interrupted turn was not recorded"
                time.sleep(0.2)
        finally:
            proxy.delay_down_s = 0.0
        user, assistant = turns
        assert assistant["status"] == "interrupted"
        assert assistant["content"].startswith(received) and 0 < assistant["tokens"] < 1000
        # The connection that carried this request (pooled: maybe opened earlier) was hung up mid-stream.
        deadline = time.monotonic() + 15
        while not any(rid in k.request_ids and k.cut_off for k in proxy.connections):
            carried = [(k.closed_by, k.dones, len(k.request_ids)) for k in proxy.connections if rid in k.request_ids]
            assert time.monotonic() < deadline, carried
            time.sleep(0.2)
        assert metric(c, "enclave_turns_total", channel="api", model="tiny-qwen2", status="interrupted") >= 1
        assert metric(c, "enclave_active_streams", channel="api") == 0
        # Ray Serve saw its client (the gateway) go and cancelled the generation; it logs our request id.
        serve_logs = list(Path("/tmp/ray/session_latest/logs/serve").glob("proxy_*.log"))
        assert serve_logs, "no Ray Serve proxy log: is Ray using another temp dir?"
        wanted = f"Client for request {rid} disconnected, cancelling request"
        deadline = time.monotonic() + 15
        while not any(wanted in p.read_text(errors="replace") for p in serve_logs):
            assert time.monotonic() < deadline, wanted
            time.sleep(0.5)


@pytest.mark.parametrize("pace_s", [0.0, 0.2], ids=["together", "finish-alone"])
def test_a_client_that_closes_on_finish_reason_keeps_the_whole_turn(appliance: Appliance, proxied: GatewayProcess,
                                                                    proxy: RecordingProxy, pace_s: float) -> None:
    """Many SDKs stop reading at the chunk carrying finish_reason, before [DONE]. The turn's save ran as part
    of the response and was cancelled with it, and the disconnect handler skipped it as already finished:
    the reply the user read was never stored (unit-tested with a fake pipeline; this is the real gateway).
    Paced, the finish chunk reaches the client alone, while the gateway still waits for the usage chunk and
    [DONE]: the hang-up then came before the save, and the whole answer was stored as interrupted."""
    with client(appliance, proxied) as c:
        body = {"model": "enclave", "stream": True, "max_tokens": 12,
                "messages": [{"role": "user", "content": "Say something short."}]}
        received = ""
        proxy.delay_down_s = pace_s
        try:
            with c.stream("POST", "/v1/chat/completions", json=body) as s:
                sid = s.headers["x-session-id"]
                for line in s.iter_lines():
                    if line.startswith("data: {"):
                        choice = json.loads(line[6:])["choices"]
                        received += (choice[0]["delta"].get("content") or "") if choice else ""
                        if choice and choice[0].get("finish_reason"):
                            break                                   # hang up before [DONE]
        finally:
            proxy.delay_down_s = 0.0
        deadline = time.monotonic() + 15
        while len(turns := c.get(f"/v1/sessions/{sid}").json().get("turns", [])) < 2:
            assert time.monotonic() < deadline, "the turn was not stored"
            time.sleep(0.2)
        assert turns[1]["role"] == "assistant" and turns[1]["status"] == "complete", turns[1]
        assert turns[1]["content"] == received.replace("\x00", "\ufffd")


def test_a_tool_loop_is_kept_in_the_session(appliance: Appliance, proxied: GatewayProcess, proxy: RecordingProxy) -> None:
    """The SDK's tool loop against a session: the client sends back only the tool result (after the
    assistant message that asked); the gateway stores both and replays them on later turns."""
    tools = [{"type": "function", "function": {"name": "get_balance", "description": "Account balance",
                                                "parameters": {"type": "object", "properties": {}}}}]
    asking = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_balance", "arguments": "{}"}}]}
    result = {"role": "tool", "tool_call_id": "call_1", "content": "1,234.56 EUR"}
    with client(appliance, proxied) as c:
        sid = c.post("/v1/sessions", json={}).json()["id"]
        chat(c, "What is my balance?", sid, tools=tools, tool_choice="auto")
        before = len(proxy.chat_requests())
        r = c.post("/v1/chat/completions", headers={"X-Session-Id": sid},
                   json={"model": "enclave", "messages": [asking, result], "tools": tools, "max_tokens": 8})
        assert r.status_code == 200, r.text
        sent = proxy.chat_requests()[before]
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "assistant", "tool"]
        assert sent["messages"][-2:] == [{"role": "assistant", "tool_calls": asking["tool_calls"]}, result]
        assert sent["tools"] == tools
        turns = c.get(f"/v1/sessions/{sid}").json()["turns"]
        second = [t for t in turns if t["seq"] == 2]
        assert [(t["position"], t["role"]) for t in second] == [(0, "assistant"), (1, "tool"), (2, "assistant")]
        assert second[0]["tool_calls"] == asking["tool_calls"] and second[1]["tool_call_id"] == "call_1"
        before = len(proxy.chat_requests())
        chat(c, "Thanks. And my savings?", sid)
        replayed = proxy.chat_requests()[before]["messages"]
        assert [m["role"] for m in replayed] == ["user", "assistant", "assistant", "tool", "assistant", "user"]
        assert replayed[2]["tool_calls"] == asking["tool_calls"] and replayed[3]["tool_call_id"] == "call_1"


def test_silences_in_a_stream_get_keepalive_comments(appliance: Appliance, proxy: RecordingProxy) -> None:
    """A slow upstream (the forwarder pauses 0.6 s before each event): the gateway fills the silences."""
    gw = start_gateway(appliance, "keepalive", llm_chain=[{"name": "primary", "url": proxy.url}], sse_keepalive_s=0.2)
    proxy.delay_down_s = 0.6
    try:
        with client(appliance, gw) as c, c.stream("POST", "/v1/chat/completions", json={
                "model": "enclave", "stream": True, "max_tokens": 4, "ignore_eos": True,
                "messages": [{"role": "user", "content": "hi"}]}) as s:
            assert s.status_code == 200
            raw = s.read().decode()
    finally:
        proxy.delay_down_s = 0.0
        gw.stop()
    events = raw.split("\n\n")[:-1]
    assert ": keep-alive" in events and raw.endswith("data: [DONE]\n\n")
    assert all(e.startswith("data: ") or e == ": keep-alive" for e in events)
    chunks = [json.loads(e[6:]) for e in events if e.startswith("data: {")]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"  # the whole reply came


def test_an_idle_client_connection_outlives_the_clients_own_pool(appliance: Appliance) -> None:
    """A client pool keeps an idle connection for its own time (aiohttp 15 s, load balancers 60 s) and reuses
    it without asking: a server that closes sooner races that reuse, and the request fails unsent (the
    gateway benchmark's load generator lost one this way under uvicorn's 5 s default). The gateway keeps
    idle connections 75 s, so after 6 s of silence the same connection still answers."""
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(appliance.gateway_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == b'{"status":"ok"}'
        sock = conn.sock
        time.sleep(6.0)   # past uvicorn's own default of 5 s
        try:
            conn.request("GET", "/healthz")
            answer = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionError) as e:
            pytest.fail(f"the gateway closed an idle connection within 6 s: {e!r}")
        assert answer.status == 200 and conn.sock is sock   # the same connection answered
    finally:
        conn.close()
