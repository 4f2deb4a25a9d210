"""The example bank (deploy/example_bank.py) and the webhook signing both sides share (gateway/dialogue/webhooks.py).

Each test drives a fresh app in-process over httpx's ASGI transport; the webhook tests receive the callback
either on a real uvicorn server on loopback or through an injected mock transport (retries, failures)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request

from deploy.example_bank import build_bank_app, main
from gateway.dialogue.webhooks import SIGNATURE_HEADER, WebhookSignatureError, sign, verify

SECRET = b"test-webhook-secret"


def bank_test(**app_kwargs: Any) -> Callable[[Callable[..., Awaitable[None]]], Callable[[], None]]:
    """Run an async test body as ``body(client, app)`` against a fresh bank on its own event loop."""

    def wrap(body: Callable[..., Awaitable[None]]) -> Callable[[], None]:
        def test() -> None:
            async def go() -> None:
                app = build_bank_app(**app_kwargs)
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://bank") as client:
                    await body(client, app)
                await app.state.bank.drain()

            asyncio.run(go())

        test.__name__ = body.__name__
        return test

    return wrap


async def tool(client: httpx.AsyncClient, name: str, args: dict[str, Any] | None = None, key: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return await client.post(f"/tools/{name}", json=args or {}, headers=headers)


async def balance(client: httpx.AsyncClient, account: str) -> str:
    r = await tool(client, "get_balance", {"account_type": account})
    assert r.status_code == 200, r.text
    return r.json()["balance"]


async def executions(client: httpx.AsyncClient) -> dict[str, Any]:
    return (await client.get("/_executions")).json()


def error_code(r: httpx.Response) -> str:
    return r.json()["error"]["code"]


# --------------------------------------------------------------------------------------------- tools


@bank_test()
async def test_health_and_balances(client: httpx.AsyncClient, app: FastAPI) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    r = await tool(client, "get_balance", {"account_type": "checking"})
    assert r.status_code == 200 and r.json() == {"account_type": "checking", "balance": "2450.17", "currency": "EUR"}
    assert await balance(client, "savings") == "10200.00"
    assert await balance(client, "credit_card") == "-312.40"
    r = await tool(client, "get_balance", {"account_type": "Credit Card", "customer": "demo"})  # as a model may write it
    assert r.json()["account_type"] == "credit_card"


@bank_test()
async def test_balance_errors(client: httpx.AsyncClient, app: FastAPI) -> None:
    r = await tool(client, "get_balance", {"account_type": "business"})
    assert r.status_code == 404 and error_code(r) == "account_not_found" and r.json()["error"]["message"]
    r = await tool(client, "get_balance", {"account_type": "checking", "customer": "mallory"})
    assert r.status_code == 404 and error_code(r) == "customer_not_found"
    r = await tool(client, "get_balance", {"account_type": "gold"})
    assert r.status_code == 400 and error_code(r) == "invalid_arguments"
    assert r.json()["error"]["details"][0]["field"] == "account_type"
    r = await tool(client, "get_balance", {"account_type": "checking", "pin": "1234"})  # schema drift fails loudly
    assert r.status_code == 400 and error_code(r) == "invalid_arguments"
    r = await client.post("/tools/get_balance", content=b"{not json")
    assert r.status_code == 400 and error_code(r) == "invalid_json"
    r = await client.post("/tools/get_balance", json=["checking"])
    assert r.status_code == 400 and error_code(r) == "invalid_arguments"
    assert (await executions(client))["by_tool"] == {"get_balance": 2}  # bad arguments never executed


@bank_test()
async def test_block_card(client: httpx.AsyncClient, app: FastAPI) -> None:
    r = await tool(client, "block_card", {"card_last4": "4242", "reason": "lost"})
    body = r.json()
    assert r.status_code == 200 and body["blocked"] is True and body["already_blocked"] is False
    assert body["card_last4"] == "4242" and body["replacement_eta_days"] == 5
    assert re.fullmatch(r"BLK-[0-9A-F]{6}", body["reference"])
    again = await tool(client, "block_card", {"card_last4": "4242", "reason": "stolen"})
    assert again.status_code == 200 and again.json()["already_blocked"] is True
    assert again.json()["reference"] == body["reference"]
    other = await tool(client, "block_card", {"card_last4": "1881", "reason": "damaged"})
    assert other.json()["already_blocked"] is False and other.json()["reference"] != body["reference"]

    r = await tool(client, "block_card", {"card_last4": "9999", "reason": "lost"})
    assert r.status_code == 404 and error_code(r) == "card_not_found"
    r = await tool(client, "block_card", {"card_last4": "42", "reason": "lost"})
    assert r.status_code == 400 and error_code(r) == "invalid_arguments"
    r = await tool(client, "block_card", {"card_last4": "4242", "reason": "bored"})
    assert r.status_code == 400 and error_code(r) == "invalid_arguments"


@bank_test()
async def test_dispute_transaction(client: httpx.AsyncClient, app: FastAPI) -> None:
    r = await tool(client, "dispute_transaction", {"amount": "25.00", "currency": "EUR", "date": "2026-11-20",
                                                   "merchant": "cafe", "reason": "charged twice"})
    assert r.status_code == 200, r.text
    assert re.fullmatch(r"DSP-[0-9A-F]{6}", r.json()["case_id"]) and r.json()["status"] == "opened"
    assert r.json()["transaction_id"] == "TX-1005"
    r = await tool(client, "dispute_transaction", {"amount": 7, "date": "2026-11-02"})  # nothing booked: opened anyway
    assert r.status_code == 200 and r.json()["status"] == "opened" and r.json()["transaction_id"] is None

    for bad in ({"amount": "-5.00", "date": "2026-11-20"}, {"amount": "5.001", "date": "2026-11-20"},
                {"amount": "5.00", "date": "20 November"}, {"date": "2026-11-20"}):
        r = await tool(client, "dispute_transaction", bad)
        assert r.status_code == 400 and error_code(r) == "invalid_arguments", bad
    r = await tool(client, "dispute_transaction", {"amount": "5.00", "date": "2999-01-01"})
    assert r.status_code == 400 and error_code(r) == "invalid_date"


@bank_test()
async def test_transfer_executes_below_threshold(client: httpx.AsyncClient, app: FastAPI) -> None:
    r = await tool(client, "transfer", {"from_account": "checking", "to_account": "savings", "amount": "100.00", "currency": "EUR"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert re.fullmatch(r"TRF-[0-9A-F]{6}", body["reference"])
    assert body == {"status": "executed", "reference": body["reference"], "from_account": "checking", "to_account": "savings",
                    "amount": "100.00", "currency": "EUR", "new_balance": "2350.17"}
    assert await balance(client, "checking") == "2350.17"
    assert await balance(client, "savings") == "10300.00"
    r = await tool(client, "recent_transactions", {"account_type": "savings", "limit": 1})
    assert r.json()["transactions"][0]["amount"] == "100.00" and body["reference"] in r.json()["transactions"][0]["description"]
    # Paying the card down from savings: the card balance rises towards zero.
    r = await tool(client, "transfer", {"from_account": "savings", "to_account": "credit_card", "amount": "312.40"})
    assert r.status_code == 200 and await balance(client, "credit_card") == "0.00"


@bank_test()
async def test_transfer_errors(client: httpx.AsyncClient, app: FastAPI) -> None:
    r = await tool(client, "transfer", {"from_account": "checking", "to_account": "checking", "amount": "10.00"})
    assert r.status_code == 400 and error_code(r) == "same_account"
    r = await tool(client, "transfer", {"from_account": "checking", "to_account": "business", "amount": "10.00"})
    assert r.status_code == 404 and error_code(r) == "account_not_found"
    r = await tool(client, "transfer", {"from_account": "checking", "to_account": "savings", "amount": "10.00", "currency": "USD"})
    assert r.status_code == 400 and error_code(r) == "currency_mismatch"
    r = await tool(client, "transfer", {"from_account": "checking", "to_account": "savings", "amount": "0"})
    assert r.status_code == 400 and error_code(r) == "invalid_arguments"
    # At or above the async threshold too, a transfer that cannot be covered is refused at once.
    r = await tool(client, "transfer", {"from_account": "checking", "to_account": "savings", "amount": "5000.00"})
    assert r.status_code == 409 and error_code(r) == "insufficient_funds"
    assert await balance(client, "checking") == "2450.17"


@bank_test(async_threshold="100000")
async def test_insufficient_funds_below_threshold(client: httpx.AsyncClient, app: FastAPI) -> None:
    r = await tool(client, "transfer", {"from_account": "checking", "to_account": "savings", "amount": "2450.18"})
    assert r.status_code == 409 and error_code(r) == "insufficient_funds"
    r = await tool(client, "transfer", {"from_account": "checking", "to_account": "savings", "amount": "2450.17"})
    assert r.status_code == 200 and r.json()["new_balance"] == "0.00"
    # The card may go down to its 3,000.00 credit line, no further.
    r = await tool(client, "transfer", {"from_account": "credit_card", "to_account": "checking", "amount": "2687.61"})
    assert r.status_code == 409 and error_code(r) == "insufficient_funds"
    r = await tool(client, "transfer", {"from_account": "credit_card", "to_account": "checking", "amount": "2687.60"})
    assert r.status_code == 200 and r.json()["new_balance"] == "-3000.00"


@bank_test()
async def test_branch_hours(client: httpx.AsyncClient, app: FastAPI) -> None:
    r = await tool(client, "branch_hours", {})
    assert r.status_code == 200 and r.json()["branch"] == "main street"
    hours = r.json()["hours"]
    assert hours["monday"] == {"open": "09:00", "close": "17:00"} and hours["sunday"] is None and len(hours) == 7
    # The pack's flow speaks "The {branch} branch is open {result.summary}."
    assert r.json()["summary"] == "Monday to Friday from 09:00 to 17:00, Saturday from 10:00 to 14:00"
    assert (await tool(client, "branch_hours", {"branch": "airport"})).json()["summary"] == "every day from 06:00 to 22:00"
    assert (await tool(client, "branch_hours", {"branch": "harbour"})).json()["summary"] == "Monday to Friday from 08:30 to 16:30"
    r = await tool(client, "branch_hours", {"branch": "Harbour branch", "day": "Saturday"})
    assert r.json() | {"address": None} == {"branch": "harbour", "address": None, "day": "saturday", "open": None, "close": None,
                                            "closed": True, "summary": "on Saturday: closed"}
    r = await tool(client, "branch_hours", {"branch": "the airport", "day": "sunday"})
    assert (r.json()["open"], r.json()["close"], r.json()["closed"]) == ("06:00", "22:00", False)
    r = await tool(client, "branch_hours", {"branch": "Main St", "day": "today"})
    assert r.status_code == 200 and r.json()["branch"] == "main street" and r.json()["day"] in (
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

    r = await tool(client, "branch_hours", {"branch": "moon base"})
    assert r.status_code == 404 and error_code(r) == "branch_not_found"
    r = await tool(client, "branch_hours", {"day": "funday"})
    assert r.status_code == 400 and error_code(r) == "invalid_arguments"


@bank_test()
async def test_recent_transactions(client: httpx.AsyncClient, app: FastAPI) -> None:
    r = await tool(client, "recent_transactions", {"account_type": "checking", "limit": 2})
    assert r.status_code == 200 and r.json()["account_type"] == "checking" and r.json()["currency"] == "EUR"
    txs = r.json()["transactions"]
    assert [t["id"] for t in txs] == ["TX-1007", "TX-1006"] and txs[0]["amount"] == "-54.20"
    r = await tool(client, "recent_transactions", {"account_type": "checking"})
    assert len(r.json()["transactions"]) == 5
    r = await tool(client, "recent_transactions", {"account_type": "business"})
    assert r.status_code == 404 and error_code(r) == "account_not_found"
    r = await tool(client, "recent_transactions", {"account_type": "checking", "limit": 0})
    assert r.status_code == 400 and error_code(r) == "invalid_arguments"


# --------------------------------------------------------------------------------------------- idempotency


@bank_test()
async def test_same_key_executes_once(client: httpx.AsyncClient, app: FastAPI) -> None:
    args = {"from_account": "checking", "to_account": "savings", "amount": "100.00", "currency": "EUR"}
    first = await tool(client, "transfer", args, key="k-1")
    second = await tool(client, "transfer", args, key="k-1")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() and first.content == second.content
    assert second.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert await balance(client, "checking") == "2350.17"   # money moved once
    ex = await executions(client)
    assert ex["by_key"] == {"k-1": 1} and ex["by_tool"]["transfer"] == 1

    # A business error is an execution too: stored and replayed as is.
    bad = {"from_account": "checking", "to_account": "checking", "amount": "1.00"}
    r1, r2 = await tool(client, "transfer", bad, key="k-2"), await tool(client, "transfer", bad, key="k-2")
    assert r1.status_code == r2.status_code == 400 and r1.json() == r2.json()
    # Without a key every call executes.
    await tool(client, "get_balance", {"account_type": "savings"})
    await tool(client, "get_balance", {"account_type": "savings"})
    ex = await executions(client)
    assert ex["by_key"] == {"k-1": 1, "k-2": 1} and ex["by_tool"] == {"transfer": 2, "get_balance": 3}


@bank_test()
async def test_key_reused_with_other_arguments(client: httpx.AsyncClient, app: FastAPI) -> None:
    await tool(client, "transfer", {"from_account": "checking", "to_account": "savings", "amount": "1.00"}, key="k")
    r = await tool(client, "transfer", {"from_account": "checking", "to_account": "savings", "amount": "2.00"}, key="k")
    assert r.status_code == 422 and error_code(r) == "idempotency_key_reused"
    r = await tool(client, "get_balance", {"account_type": "checking"}, key="k")
    assert r.status_code == 422
    # Key order in the JSON does not matter.
    r = await tool(client, "transfer", {"amount": "1.00", "to_account": "savings", "from_account": "checking"}, key="k")
    assert r.status_code == 200 and r.headers["Idempotent-Replayed"] == "true"
    assert await balance(client, "checking") == "2449.17"


@bank_test()
async def test_concurrent_duplicates_execute_once(client: httpx.AsyncClient, app: FastAPI) -> None:
    # The first call is held in flight (slow-only fault) while duplicates arrive; they wait and get its answer.
    await client.post("/_faults", json={"tool": "transfer", "status": None, "times": 1, "delay_s": 0.3})
    args = {"from_account": "checking", "to_account": "savings", "amount": "10.00"}
    responses = await asyncio.gather(*(tool(client, "transfer", args, key="dup") for _ in range(8)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert sum(1 for r in responses if "Idempotent-Replayed" not in r.headers) == 1
    assert await balance(client, "checking") == "2440.17"
    assert (await executions(client))["by_key"] == {"dup": 1}

    # Also without any delay: many keys at once, each executed exactly once.
    responses = await asyncio.gather(*(tool(client, "transfer", args, key=f"k{i % 4}") for i in range(20)))
    assert {r.status_code for r in responses} == {200}
    assert await balance(client, "checking") == "2400.17"
    assert (await executions(client))["by_key"] == {"dup": 1, "k0": 1, "k1": 1, "k2": 1, "k3": 1}


# --------------------------------------------------------------------------------------------- test hooks


@bank_test()
async def test_faults_fail_before_executing(client: httpx.AsyncClient, app: FastAPI) -> None:
    r = await client.post("/_faults", json={"tool": "transfer", "status": 503, "times": 2})
    assert r.status_code == 200 and r.json()["faults"] == {"transfer": {"status": 503, "times": 2, "delay_s": 0.0}}
    args = {"from_account": "checking", "to_account": "savings", "amount": "100.00"}
    for _ in range(2):   # the caller retries with the same key; nothing is stored for a failure before executing
        r = await tool(client, "transfer", args, key="retry-me")
        assert r.status_code == 503 and error_code(r) == "injected_fault"
    assert await balance(client, "checking") == "2450.17"
    assert (await executions(client))["by_key"] == {}
    r = await tool(client, "transfer", args, key="retry-me")
    assert r.status_code == 200 and r.json()["status"] == "executed"
    r = await tool(client, "transfer", args, key="retry-me")
    assert r.status_code == 200 and r.headers["Idempotent-Replayed"] == "true"
    assert await balance(client, "checking") == "2350.17"
    assert (await executions(client))["by_key"] == {"retry-me": 1}
    assert (await client.post("/_faults", json={"tool": "transfer", "times": 0})).json() == {"faults": {}}

    # Faults are per tool; a slow-and-failing one takes its time first.
    await client.post("/_faults", json={"tool": "get_balance", "status": 500, "times": 1, "delay_s": 0.2})
    t0 = time.perf_counter()
    r = await tool(client, "get_balance", {"account_type": "checking"})
    assert r.status_code == 500 and time.perf_counter() - t0 >= 0.2
    assert (await tool(client, "get_balance", {"account_type": "checking"})).status_code == 200
    assert (await tool(client, "branch_hours", {})).status_code == 200

    r = await client.post("/_faults", json={"tool": "nope"})
    assert r.status_code == 404 and error_code(r) == "unknown_tool"
    r = await client.post("/_faults", json={"tool": "transfer", "status": 200})
    assert r.status_code == 400


@bank_test()
async def test_reset_restores_seed(client: httpx.AsyncClient, app: FastAPI) -> None:
    await tool(client, "transfer", {"from_account": "checking", "to_account": "savings", "amount": "100.00"}, key="a")
    await tool(client, "block_card", {"card_last4": "4242", "reason": "lost"})
    await client.post("/_faults", json={"tool": "get_balance"})
    assert (await client.post("/_reset")).json() == {"status": "reset"}
    assert await balance(client, "checking") == "2450.17"
    assert (await tool(client, "block_card", {"card_last4": "4242", "reason": "lost"})).json()["already_blocked"] is False
    assert await executions(client) == {"by_key": {}, "by_tool": {"get_balance": 1, "block_card": 1}, "last_args": {
        "get_balance": {"account_type": "checking"}, "block_card": {"card_last4": "4242", "reason": "lost"}}}
    r = await tool(client, "transfer", {"from_account": "checking", "to_account": "savings", "amount": "100.00"}, key="a")
    assert "Idempotent-Replayed" not in r.headers   # stored responses went with the reset


# --------------------------------------------------------------------------------------------- webhook


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A tiny webhook receiver on a real loopback port, recording each raw callback."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> dict[str, bool]:
            self.received.append((dict(request.headers), await request.body()))
            return {"ok": True}

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


async def _wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_large_transfer_is_accepted_and_called_back(receiver: Receiver) -> None:
    @bank_test(webhook_url=receiver.url, webhook_secret=SECRET, callback_delay_s=0.05)
    async def body(client: httpx.AsyncClient, app: FastAPI) -> None:
        args = {"from_account": "savings", "to_account": "checking", "amount": "1000.00", "currency": "EUR"}
        r = await tool(client, "transfer", args, key="idem-42")
        assert r.status_code == 202, r.text
        reference = r.json()["reference"]
        assert r.json() == {"status": "accepted", "reference": reference}
        replay = await tool(client, "transfer", args, key="idem-42")
        assert replay.status_code == 202 and replay.json() == r.json()

        await _wait_for(lambda: bool(receiver.received))
        headers, raw = receiver.received[0]
        verify(SECRET, headers[SIGNATURE_HEADER.lower()], raw)   # raises if not genuine
        assert headers["content-type"] == "application/json"
        payload = json.loads(raw)
        assert payload == {"idempotency_key": "idem-42", "reference": reference, "status": "executed",
                           "result": {"reference": reference, "from_account": "savings", "to_account": "checking",
                                      "amount": "1000.00", "currency": "EUR", "new_balance": "9200.00"}}
        with pytest.raises(WebhookSignatureError):
            verify(b"another secret", headers[SIGNATURE_HEADER.lower()], raw)
        assert await balance(client, "savings") == "9200.00" and await balance(client, "checking") == "3450.17"
        assert (await executions(client))["by_key"] == {"idem-42": 1}
        later = await tool(client, "transfer", args, key="idem-42")   # the outcome now, not "accepted" forever
        assert later.status_code == 200 and later.json() == {"status": "executed", **payload["result"]}
        assert (await executions(client))["by_key"] == {"idem-42": 1}   # answered, not executed again
        await asyncio.sleep(0.1)
        assert len(receiver.received) == 1

    body()


@bank_test(webhook_url="http://appliance/hook", webhook_secret=SECRET, callback_delay_s=0.1)
async def test_deferred_transfer_can_fail(client: httpx.AsyncClient, app: FastAPI) -> None:
    # Accepted while covered, then the money leaves before execution: the outcome is "failed".
    sent: list[httpx.Request] = []
    bank = app.state.bank
    bank.callback_transport = httpx.MockTransport(lambda request: sent.append(request) or httpx.Response(204))
    r = await tool(client, "transfer", {"from_account": "checking", "to_account": "savings", "amount": "2000.00"}, key="big")
    assert r.status_code == 202
    r = await tool(client, "transfer", {"from_account": "checking", "to_account": "savings", "amount": "999.00"})
    assert r.status_code == 200
    await bank.drain()
    assert len(sent) == 1
    verify(SECRET, sent[0].headers[SIGNATURE_HEADER], sent[0].content)
    payload = json.loads(sent[0].content)
    assert payload["status"] == "failed" and payload["idempotency_key"] == "big"
    assert payload["error"]["code"] == "insufficient_funds" and "result" not in payload   # the gateway's shape
    assert await balance(client, "checking") == "1451.17"
    # the same key asked again (the gateway's recheck, when a webhook never arrives) gets the outcome
    again = await tool(client, "transfer", {"from_account": "checking", "to_account": "savings", "amount": "2000.00"},
                       key="big")
    assert again.status_code == 409 and again.json()["error"]["code"] == "insufficient_funds"


@bank_test(webhook_url="http://appliance/hook", webhook_secret=SECRET, callback_delay_s=0, callback_backoff_s=0.01)
async def test_callback_retried_until_accepted(client: httpx.AsyncClient, app: FastAPI) -> None:
    attempts: list[httpx.Request] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        if len(attempts) == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(503 if len(attempts) < 4 else 200)

    bank = app.state.bank
    bank.callback_transport = httpx.MockTransport(flaky)
    r = await tool(client, "transfer", {"from_account": "savings", "to_account": "checking", "amount": "5000.00"}, key="r")
    assert r.status_code == 202
    await bank.drain()
    assert len(attempts) == 4
    assert len({a.content for a in attempts}) == 1           # the same body each time, each attempt signed
    for a in attempts:
        verify(SECRET, a.headers[SIGNATURE_HEADER], a.content)

    # A receiver that never accepts: 1 attempt + 5 retries, then the bank gives up (the money has moved).
    attempts.clear()
    bank.callback_transport = httpx.MockTransport(lambda request: attempts.append(request) or httpx.Response(500))
    assert await bank.deliver({"reference": "TRF-X", "status": "executed"}) is False
    assert len(attempts) == 6


def test_webhook_url_requires_secret_and_cli_validates() -> None:
    with pytest.raises(ValueError):
        build_bank_app(webhook_url="http://x/hook")
    with pytest.raises(ValueError):
        build_bank_app(async_threshold="lots")
    with pytest.raises(SystemExit) as e:
        main(["--webhook-url", "http://x/hook"])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        main(["--async-threshold", "-1"])


def test_cli_rejects_empty_secret_file(tmp_path: Any) -> None:
    empty = tmp_path / "secret"
    empty.write_text("\n")
    with pytest.raises(SystemExit) as e:
        main(["--webhook-url", "http://x/hook", "--webhook-secret-file", str(empty)])
    assert e.value.code == 2


# --------------------------------------------------------------------------------------------- signing


def test_sign_format_and_verify() -> None:
    body = b'{"reference":"TRF-1"}'
    header = sign(SECRET, body, timestamp=1_700_000_000)
    assert re.fullmatch(r"t=1700000000,v1=[0-9a-f]{64}", header)
    verify(SECRET, header, body, now=1_700_000_100)
    verify(SECRET, sign(SECRET, body), body)                   # current time by default
    # Mid-rotation a sender may send several signatures; one valid one suffices.
    old = sign(b"old secret", body, timestamp=1_700_000_000).split(",")[1]
    verify(SECRET, f"{header},{old}", body, now=1_700_000_000)
    verify(SECRET, f"{old}, {header}, v0=ignored", body, now=1_700_000_000)


@pytest.mark.parametrize("case, code", [
    ("tampered", "signature_invalid"),
    ("wrong_secret", "signature_invalid"),
    ("expired", "signature_expired"),
    ("future", "signature_expired"),
    ("missing", "signature_missing"),
    ("empty", "signature_missing"),
    ("garbage", "signature_malformed"),
    ("no_timestamp", "signature_malformed"),
    ("no_signature", "signature_malformed"),
    ("bad_timestamp", "signature_malformed"),
    ("bad_hex", "signature_invalid"),
])
def test_verify_rejects(case: str, code: str) -> None:
    body, t = b'{"status":"executed"}', 1_700_000_000
    good = sign(SECRET, body, timestamp=t)
    mac = good.split("v1=")[1]
    secret, header, now = SECRET, good, float(t)
    if case == "tampered":
        body = body.replace(b"executed", b"failed")
    elif case == "wrong_secret":
        secret = b"not the secret"
    elif case == "expired":
        now = t + 301
    elif case == "future":
        now = t - 301
    elif case == "missing":
        header = None
    elif case == "empty":
        header = "  "
    elif case == "garbage":
        header = "garbage"
    elif case == "no_timestamp":
        header = f"v1={mac}"
    elif case == "no_signature":
        header = f"t={t}"
    elif case == "bad_timestamp":
        header = f"t=yesterday,v1={mac}"
    elif case == "bad_hex":
        header = f"t={t},v1=zz{mac[2:]}"
    with pytest.raises(WebhookSignatureError) as e:
        verify(secret, header, body, now=now)
    assert e.value.code == code and str(e.value)
    # Inside the tolerance, the untouched body and secret still pass.
    verify(SECRET, good, b'{"status":"executed"}', now=t + 300)
