"""An example bank backend: the service the "retail bank" domain pack calls as its tools.

It stands in for a bank's core systems in demos and tests, so it behaves the way the appliance must cope with:
amounts are decimal strings, errors have a stable ``{"error": {"code", "message"}}`` shape, every tool POST
honours an ``Idempotency-Key`` (a retried call never moves money twice), large transfers are only accepted and
their outcome arrives later as a signed webhook, and test hooks can make a tool fail or stall on demand.

    python -m deploy.example_bank --host 127.0.0.1 --port 8090 \
        --webhook-url http://127.0.0.1:8080/v1/actions/webhook --webhook-secret-file var/bank.secret

Everything lives in memory and starts from the same seed (customer "demo"); ``POST /_reset`` restores it.
Endpoints under ``/_`` are test hooks only: a real backend has no such doors.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from gateway.dialogue.webhooks import SIGNATURE_HEADER, sign

log = logging.getLogger("enclave.example_bank")

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
CENT = Decimal("0.01")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
CALLBACK_RETRIES = 5          # after the first attempt
REPLACEMENT_ETA_DAYS = 5


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT))


def _lower(value: Any) -> Any:
    """Tool arguments come from a language model: accept "Checking" or " savings " as the enum they mean."""
    return value.strip().lower().replace(" ", "_") if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


AccountType = Annotated[Literal["checking", "savings", "credit_card", "business"], BeforeValidator(_lower)]
Amount = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)]
Currency = Annotated[str, BeforeValidator(_upper), Field(pattern=r"^[A-Z]{3}$")]
Customer = Annotated[str, Field(min_length=1, max_length=64)]


# --------------------------------------------------------------------------------------------- arguments


class _Args(BaseModel):
    # Unknown arguments are an error, not ignored: a domain pack whose schema drifted from this API should fail
    # loudly in tests instead of silently dropping what the model said.
    model_config = ConfigDict(extra="forbid")


class GetBalanceArgs(_Args):
    account_type: AccountType
    customer: Customer = "demo"


class BlockCardArgs(_Args):
    card_last4: Annotated[str, Field(pattern=r"^\d{4}$")]
    reason: Annotated[Literal["lost", "stolen", "damaged"], BeforeValidator(_lower)]
    customer: Customer = "demo"


class DisputeArgs(_Args):
    amount: Amount
    currency: Currency = "EUR"
    date: dt.date
    merchant: Annotated[str, Field(max_length=200)] | None = None
    reason: Annotated[str, Field(max_length=500)] | None = None
    customer: Customer = "demo"


class TransferArgs(_Args):
    from_account: AccountType
    to_account: AccountType
    amount: Amount
    currency: Currency = "EUR"
    customer: Customer = "demo"


class BranchHoursArgs(_Args):
    branch: Annotated[str, Field(max_length=100)] | None = None
    day: str | None = None

    @field_validator("day", mode="before")
    @classmethod
    def _day(cls, value: Any) -> Any:
        """Weekday names, any case; "today"/"tomorrow" too, since that is how callers ask."""
        if not isinstance(value, str):
            return value
        day = value.strip().lower()
        if day in ("today", "tomorrow"):
            return DAYS[(dt.date.today() + dt.timedelta(days=day == "tomorrow")).weekday()]
        if day not in DAYS:
            raise ValueError(f"day must be one of {', '.join(DAYS)}, 'today' or 'tomorrow'")
        return day


class RecentTransactionsArgs(_Args):
    account_type: AccountType
    limit: Annotated[int, Field(ge=1, le=50)] = 5
    customer: Customer = "demo"


class FaultArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool: str
    status: Annotated[int, Field(ge=400, le=599)] | None = 500   # null: only slow, then executes normally
    times: Annotated[int, Field(ge=0, le=1000)] = 1              # 0 clears the tool's fault
    delay_s: Annotated[float, Field(ge=0, le=300)] = 0.0


# --------------------------------------------------------------------------------------------- state


class BankError(Exception):
    """A business outcome that is an error for the caller; it is a real execution, so it is stored under the key."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


@dataclass
class Account:
    type: str
    balance: Decimal
    currency: str
    limit: Decimal = Decimal("0")     # how far below zero it may go: the credit line of a card
    transactions: list[dict[str, Any]] = field(default_factory=list)   # newest first

    @property
    def available(self) -> Decimal:
        return self.balance + self.limit


@dataclass
class Card:
    last4: str
    kind: str
    status: str = "active"
    block_reference: str | None = None
    block_reason: str | None = None


@dataclass
class CustomerData:
    accounts: dict[str, Account]
    cards: dict[str, Card]


BRANCHES: dict[str, dict[str, Any]] = {
    "main street": {
        "address": "Main Street 1",
        "hours": {d: ("09:00", "17:00") for d in DAYS[:5]} | {"saturday": ("10:00", "14:00"), "sunday": None},
    },
    "harbour": {
        "address": "Harbour Quay 12",
        "hours": {d: ("08:30", "16:30") for d in DAYS[:5]} | {"saturday": None, "sunday": None},
    },
    "airport": {
        "address": "Terminal 2, arrivals level",
        "hours": {d: ("06:00", "22:00") for d in DAYS},
    },
}


def _tx(tx_id: str, date: str, amount: str, description: str) -> dict[str, Any]:
    return {"id": tx_id, "date": date, "amount": amount, "currency": "EUR", "description": description}


def seed_customers() -> dict[str, CustomerData]:
    """The demo customer's fixed starting point; balances agree with the transactions shown."""
    checking = Account("checking", Decimal("2450.17"), "EUR", transactions=[
        _tx("TX-1007", "2026-11-27", "-54.20", "Lidl Supermarket"),
        _tx("TX-1006", "2026-11-25", "-12.99", "Streamflix subscription"),
        _tx("TX-1005", "2026-11-20", "-25.00", "Cafe Central"),
        _tx("TX-1004", "2026-11-15", "2800.00", "Salary ACME GmbH"),
        _tx("TX-1003", "2026-11-03", "-950.00", "Rent November"),
    ])
    savings = Account("savings", Decimal("10200.00"), "EUR", transactions=[
        _tx("TX-2001", "2026-11-01", "18.40", "Interest"),
    ])
    card = Account("credit_card", Decimal("-312.40"), "EUR", limit=Decimal("3000.00"), transactions=[
        _tx("TX-3002", "2026-11-26", "-89.90", "Amazon Marketplace"),
        _tx("TX-3001", "2026-11-22", "-222.50", "Lufthansa"),
    ])
    return {
        "demo": CustomerData(
            accounts={a.type: a for a in (checking, savings, card)},
            cards={"4242": Card("4242", "debit"), "1881": Card("1881", "credit")},
        )
    }


@dataclass
class Fault:
    status: int | None
    remaining: int
    delay_s: float


@dataclass
class Stored:
    status: int
    body: dict[str, Any]
    fingerprint: str


def _reference(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3).upper()}"


class ExampleBank:
    """State and behaviour. Mutations happen under one lock and never across an ``await``, so the state is
    consistent whether the app runs on one event loop or is poked from other threads (tests, hooks)."""

    def __init__(self, *, webhook_url: str | None, webhook_secret: bytes | None, async_threshold: Decimal,
                 callback_delay_s: float, callback_transport: httpx.AsyncBaseTransport | None,
                 callback_backoff_s: float) -> None:
        self.webhook_url, self.webhook_secret = webhook_url, webhook_secret
        self.async_threshold, self.callback_delay_s = async_threshold, callback_delay_s
        self.callback_transport, self.callback_backoff_s = callback_transport, callback_backoff_s
        self.lock = threading.RLock()
        self.tasks: set[asyncio.Task[None]] = set()
        self.inflight: dict[str, asyncio.Event] = {}
        self.reset()

    def reset(self) -> None:
        for task in list(self.tasks):   # a pending transfer must not land in the fresh state
            task.cancel()
        with self.lock:
            self.customers = seed_customers()
            self.disputes: dict[str, dict[str, Any]] = {}
            self.transfers: dict[str, dict[str, Any]] = {}
            self.responses: dict[str, Stored] = {}
            self.faults: dict[str, Fault] = {}
            self.by_key: dict[str, int] = {}
            self.by_tool: dict[str, int] = {}
            self.last_args: dict[str, dict[str, Any]] = {}   # what each tool was last called with (test hook)

    # -- lookups

    def _customer(self, name: str) -> CustomerData:
        if name not in self.customers:
            raise BankError(404, "customer_not_found", f"no customer {name!r}")
        return self.customers[name]

    def _account(self, customer: str, account_type: str) -> Account:
        accounts = self._customer(customer).accounts
        if account_type not in accounts:
            raise BankError(404, "account_not_found",
                            f"customer {customer!r} has no {account_type} account (has: {', '.join(accounts)})")
        return accounts[account_type]

    # -- tools: each returns (HTTP status, body) or raises BankError

    def get_balance(self, a: GetBalanceArgs, key: str | None) -> tuple[int, dict[str, Any]]:
        acc = self._account(a.customer, a.account_type)
        return 200, {"account_type": acc.type, "balance": _money(acc.balance), "currency": acc.currency}

    def block_card(self, a: BlockCardArgs, key: str | None) -> tuple[int, dict[str, Any]]:
        cards = self._customer(a.customer).cards
        card = cards.get(a.card_last4)
        if card is None:
            raise BankError(404, "card_not_found", f"no card ending {a.card_last4} for customer {a.customer!r}")
        already = card.status == "blocked"
        if not already:
            card.status, card.block_reason, card.block_reference = "blocked", a.reason, _reference("BLK")
        return 200, {"blocked": True, "already_blocked": already, "card_last4": card.last4,
                     "reference": card.block_reference, "replacement_eta_days": REPLACEMENT_ETA_DAYS}

    def dispute_transaction(self, a: DisputeArgs, key: str | None) -> tuple[int, dict[str, Any]]:
        customer = self._customer(a.customer)
        if a.date > dt.date.today():
            raise BankError(400, "invalid_date", f"{a.date.isoformat()} is in the future")
        # Link the case to a booked card/account payment when one fits; an unmatched dispute is still opened.
        matched = None
        for acc in customer.accounts.values():
            for tx in acc.transactions:
                if (tx["date"] == a.date.isoformat() and Decimal(tx["amount"]) == -a.amount and tx["currency"] == a.currency
                        and (not a.merchant or a.merchant.lower() in tx["description"].lower())):
                    matched = matched or tx["id"]
        case_id = _reference("DSP")
        self.disputes[case_id] = {"customer": a.customer, "amount": _money(a.amount), "currency": a.currency,
                                  "date": a.date.isoformat(), "merchant": a.merchant, "reason": a.reason,
                                  "transaction_id": matched}
        return 200, {"case_id": case_id, "status": "opened", "transaction_id": matched}

    def transfer(self, a: TransferArgs, key: str | None) -> tuple[int, dict[str, Any]]:
        if a.from_account == a.to_account:
            raise BankError(400, "same_account", "from_account and to_account are the same account")
        src, dst = self._account(a.customer, a.from_account), self._account(a.customer, a.to_account)
        for acc in (src, dst):
            if acc.currency != a.currency:
                raise BankError(400, "currency_mismatch", f"the {acc.type} account is in {acc.currency}, not {a.currency}")
        self._check_funds(src, a.amount)
        reference = _reference("TRF")
        record = {"reference": reference, "idempotency_key": key, "customer": a.customer, "from_account": src.type,
                  "to_account": dst.type, "amount": _money(a.amount), "currency": a.currency}
        if a.amount < self.async_threshold:
            self.transfers[reference] = record | {"status": "executed"}
            return 200, {"status": "executed", **self._move(reference, a)}
        # Large amounts go through "review": accepted now, executed later, the outcome delivered by webhook.
        self.transfers[reference] = record | {"status": "accepted"}
        task = asyncio.get_running_loop().create_task(self._complete_later(reference, a, key))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return 202, {"status": "accepted", "reference": reference}

    def branch_hours(self, a: BranchHoursArgs, key: str | None) -> tuple[int, dict[str, Any]]:
        name = _find_branch(a.branch) if a.branch else "main street"
        branch = BRANCHES[name]
        if a.day is None:
            hours = {d: ({"open": h[0], "close": h[1]} if h else None) for d, h in branch["hours"].items()}
            return 200, {"branch": name, "address": branch["address"], "hours": hours, "summary": _week_summary(branch["hours"])}
        h = branch["hours"][a.day]
        summary = f"on {a.day.capitalize()} from {h[0]} to {h[1]}" if h else f"on {a.day.capitalize()}: closed"
        return 200, {"branch": name, "address": branch["address"], "day": a.day, "open": h[0] if h else None,
                     "close": h[1] if h else None, "closed": h is None, "summary": summary}

    def recent_transactions(self, a: RecentTransactionsArgs, key: str | None) -> tuple[int, dict[str, Any]]:
        acc = self._account(a.customer, a.account_type)
        return 200, {"account_type": acc.type, "currency": acc.currency, "transactions": [dict(t) for t in acc.transactions[:a.limit]]}

    # -- money movement

    @staticmethod
    def _check_funds(src: Account, amount: Decimal) -> None:
        if src.available < amount:
            raise BankError(409, "insufficient_funds",
                            f"the {src.type} account has {_money(src.available)} {src.currency} available, {_money(amount)} requested")

    def _move(self, reference: str, a: TransferArgs) -> dict[str, Any]:
        """Debit and credit together under the lock; the one place where money moves."""
        with self.lock:
            src, dst = self._account(a.customer, a.from_account), self._account(a.customer, a.to_account)
            self._check_funds(src, a.amount)
            src.balance -= a.amount
            dst.balance += a.amount
            today = dt.date.today().isoformat()
            src.transactions.insert(0, _tx(f"{reference}-D", today, _money(-a.amount), f"Transfer to {dst.type} ({reference})"))
            dst.transactions.insert(0, _tx(f"{reference}-C", today, _money(a.amount), f"Transfer from {src.type} ({reference})"))
            return {"reference": reference, "from_account": src.type, "to_account": dst.type, "amount": _money(a.amount),
                    "currency": a.currency, "new_balance": _money(src.balance)}

    async def _complete_later(self, reference: str, a: TransferArgs, key: str | None) -> None:
        await asyncio.sleep(self.callback_delay_s)
        try:
            status, result = "executed", self._move(reference, a)
            answer = (200, {"status": "executed", **result})
        except BankError as e:     # funds changed since acceptance: the transfer fails, and the caller is told
            status, result = "failed", e.body()
            answer = (e.status, result)
        with self.lock:
            if reference in self.transfers:
                self.transfers[reference]["status"] = status
            # The same key asked again (the gateway's recheck when the webhook never came) gets the outcome,
            # not the "accepted" of the first answer forever.
            if key is not None and (stored := self.responses.get(key)) is not None:
                self.responses[key] = Stored(*answer, stored.fingerprint)
        log.info("transfer %s %s", reference, status)
        # The gateway's webhook shape: a failure's {"code", "message"} under "error", as the tools' own errors.
        payload = {"idempotency_key": key, "reference": reference, "status": status,
                   **({"result": result} if status == "executed" else {"error": result.get("error", result)})}
        if self.webhook_url:
            await self.deliver(payload)
        else:
            log.warning("transfer %s: no --webhook-url, outcome not delivered", reference)

    async def deliver(self, payload: dict[str, Any]) -> bool:
        """POST the signed outcome; retried with exponential backoff on connection errors and non-2xx answers.
        Each attempt is signed afresh so a late retry is not rejected as expired."""
        assert self.webhook_url and self.webhook_secret is not None
        body = json.dumps(payload, separators=(",", ":")).encode()
        # trust_env=False: an HTTP_PROXY in the environment must not route the callback off the premises
        async with httpx.AsyncClient(transport=self.callback_transport, timeout=10.0, trust_env=False) as client:
            for attempt in range(CALLBACK_RETRIES + 1):
                headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self.webhook_secret, body)}
                try:
                    r = await client.post(self.webhook_url, content=body, headers=headers)
                    if 200 <= r.status_code < 300:
                        log.info("webhook %s delivered (attempt %d)", payload.get("reference"), attempt + 1)
                        return True
                    problem = f"HTTP {r.status_code}"
                except httpx.HTTPError as e:
                    problem = f"{type(e).__name__}: {e}"
                if attempt == CALLBACK_RETRIES:
                    break
                delay = self.callback_backoff_s * 2 ** attempt
                log.warning("webhook %s attempt %d failed (%s); retry in %.2f s", payload.get("reference"), attempt + 1, problem, delay)
                await asyncio.sleep(delay)
        log.error("webhook %s not delivered after %d attempts", payload.get("reference"), CALLBACK_RETRIES + 1)
        return False

    async def drain(self) -> None:
        """Wait for pending deferred transfers (tests, shutdown)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    # -- test hooks

    def take_fault(self, tool: str) -> Fault | None:
        with self.lock:
            fault = self.faults.get(tool)
            if fault is None or fault.remaining <= 0:
                return None
            fault.remaining -= 1
            if fault.remaining == 0:
                del self.faults[tool]
            return fault

    def count_execution(self, tool: str, key: str | None, args: dict[str, Any] | None = None) -> None:
        with self.lock:
            self.by_tool[tool] = self.by_tool.get(tool, 0) + 1
            if args is not None:
                self.last_args[tool] = args
            if key is not None:
                self.by_key[key] = self.by_key.get(key, 0) + 1


def _week_summary(hours: dict[str, tuple[str, str] | None]) -> str:
    """Opening hours as a phrase to be spoken: runs of days with equal hours merged, closed days left out
    ("Monday to Friday from 09:00 to 17:00, Saturday from 10:00 to 14:00"). The pack's flow says it as is."""
    runs: list[tuple[str, str, tuple[str, str]]] = []
    for day in DAYS:
        h = hours[day]
        if h is None:
            continue
        if runs and runs[-1][2] == h and DAYS.index(runs[-1][1]) == DAYS.index(day) - 1:
            runs[-1] = (runs[-1][0], day, h)
        else:
            runs.append((day, day, h))
    if len(runs) == 1 and runs[0][:2] == ("monday", "sunday"):
        return f"every day from {runs[0][2][0]} to {runs[0][2][1]}"
    parts = [(first.capitalize() if first == last else f"{first.capitalize()} to {last.capitalize()}") + f" from {h[0]} to {h[1]}"
             for first, last, h in runs]
    return ", ".join(parts) if parts else "on no day"


def _find_branch(query: str) -> str:
    """"Main St", "Main Street branch" and "the airport" all name a branch; anything else is an error."""
    q = query.strip().lower().removeprefix("the ").removesuffix(" branch").strip().replace("harbor", "harbour")
    for name in BRANCHES:
        if q == name or (q and q.split()[0] == name.split()[0]):
            return name
    raise BankError(404, "branch_not_found", f"no branch {query!r} (branches: {', '.join(BRANCHES)})")


ToolFn = Callable[[ExampleBank, Any, str | None], tuple[int, dict[str, Any]]]
TOOLS: dict[str, tuple[type[_Args], ToolFn]] = {
    "get_balance": (GetBalanceArgs, ExampleBank.get_balance),
    "block_card": (BlockCardArgs, ExampleBank.block_card),
    "dispute_transaction": (DisputeArgs, ExampleBank.dispute_transaction),
    "transfer": (TransferArgs, ExampleBank.transfer),
    "branch_hours": (BranchHoursArgs, ExampleBank.branch_hours),
    "recent_transactions": (RecentTransactionsArgs, ExampleBank.recent_transactions),
}


# --------------------------------------------------------------------------------------------- app


def _tool_endpoint(bank: ExampleBank, tool: str) -> Callable[[Request], Awaitable[Response]]:
    model, fn = TOOLS[tool]

    async def endpoint(request: Request) -> Response:
        """Idempotency, then faults, then validation, then the one real execution.

        Like Stripe's keys: only an execution is stored (its success or its business error); a failure before
        executing (an injected fault, bad arguments) leaves the key free, so the caller's retry with the same
        key runs for real. A duplicate that arrives while the first is in flight waits for its outcome."""
        key = request.headers.get(IDEMPOTENCY_HEADER) or None
        if key is not None and len(key) > 255:
            return _error(400, "invalid_idempotency_key", f"{IDEMPOTENCY_HEADER} is longer than 255 characters")
        raw = await request.body()
        try:
            arguments = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return _error(400, "invalid_json", "the body is not JSON")
        if not isinstance(arguments, dict):
            return _error(400, "invalid_arguments", "the body must be a JSON object of arguments")
        fingerprint = tool + ":" + json.dumps(arguments, sort_keys=True, separators=(",", ":"))

        if key is not None:
            while True:
                with bank.lock:
                    stored = bank.responses.get(key)
                    event = bank.inflight.get(key)
                    if stored is None and event is None:
                        bank.inflight[key] = asyncio.Event()
                        break
                if stored is not None:
                    if stored.fingerprint != fingerprint:
                        return _error(422, "idempotency_key_reused",
                                      f"{IDEMPOTENCY_HEADER} {key!r} was already used with other arguments or another tool")
                    return JSONResponse(stored.body, status_code=stored.status, headers={REPLAYED_HEADER: "true"})
                await event.wait()   # the first request's owner stores or releases, then we look again
        try:
            fault = bank.take_fault(tool)
            if fault is not None:
                if fault.delay_s:
                    await asyncio.sleep(fault.delay_s)
                if fault.status is not None:
                    return _error(fault.status, "injected_fault", f"fault injected for {tool} by POST /_faults (test hook)")
            try:
                args = model.model_validate(arguments)
            except ValidationError as e:
                details = [{"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]} for err in e.errors()]
                return _error(400, "invalid_arguments", "; ".join(f"{d['field']}: {d['message']}" for d in details),
                              details=details)
            bank.count_execution(tool, key, arguments if isinstance(arguments, dict) else None)
            try:
                with bank.lock:
                    status, body = fn(bank, args, key)
            except BankError as e:
                status, body = e.status, e.body()
            if key is not None:
                with bank.lock:
                    bank.responses[key] = Stored(status, body, fingerprint)
            return JSONResponse(body, status_code=status)
        finally:
            if key is not None:
                with bank.lock:
                    event = bank.inflight.pop(key, None)
                if event is not None:
                    event.set()

    endpoint.__name__ = tool
    return endpoint


def build_bank_app(*, webhook_url: str | None = None, webhook_secret: bytes | None = None, async_threshold: str = "1000.00",
                   callback_delay_s: float = 1.0, callback_transport: httpx.AsyncBaseTransport | None = None,
                   callback_backoff_s: float = 0.5) -> FastAPI:
    """The example bank as an ASGI app. ``callback_transport`` (tests) replaces the network under the webhook
    client; ``callback_backoff_s`` is the first retry delay, doubled per retry. ``app.state.bank`` is the state."""
    try:
        threshold = Decimal(str(async_threshold))
    except InvalidOperation:
        raise ValueError(f"async_threshold {async_threshold!r} is not a decimal amount") from None
    if not threshold.is_finite() or threshold <= 0:
        raise ValueError(f"async_threshold must be a positive amount, not {async_threshold!r}")
    if webhook_url and not webhook_secret:
        raise ValueError("a webhook_url needs a webhook_secret: callbacks are always signed")
    bank = ExampleBank(webhook_url=webhook_url, webhook_secret=webhook_secret, async_threshold=threshold,
                       callback_delay_s=callback_delay_s, callback_transport=callback_transport,
                       callback_backoff_s=callback_backoff_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Pending deferred transfers die with the process, as they would in any in-memory demo."""
        yield
        for task in list(bank.tasks):
            task.cancel()

    app = FastAPI(title="Example bank (Enclave demo backend)", lifespan=lifespan)
    app.state.bank = bank

    @app.middleware("http")
    async def log_request(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        log.info("%s %s %d %.1fms key=%s%s", request.method, request.url.path, response.status_code,
                 (time.perf_counter() - start) * 1000, request.headers.get(IDEMPOTENCY_HEADER) or "-",
                 " replayed" if response.headers.get(REPLAYED_HEADER) else "")
        return response

    for tool, (model, _fn) in TOOLS.items():
        schema = {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}
        app.add_api_route(f"/tools/{tool}", _tool_endpoint(bank, tool), methods=["POST"], openapi_extra=schema)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/_executions")
    async def executions() -> dict[str, Any]:
        """Test hook: how often each key and tool really executed (replays are not counted), and the
        arguments each tool last executed with."""
        with bank.lock:
            return {"by_key": dict(bank.by_key), "by_tool": dict(bank.by_tool), "last_args": dict(bank.last_args)}

    @app.post("/_faults")
    async def faults(request: Request) -> Response:
        """Test hook: the next ``times`` calls of ``tool`` wait ``delay_s`` and then answer ``status`` before
        executing (``status: null``: only slow, then executed normally). Replaces that tool's earlier fault."""
        try:
            args = FaultArgs.model_validate_json(await request.body())
        except ValidationError as e:
            return _error(400, "invalid_arguments", str(e))
        if args.tool not in TOOLS:
            return _error(404, "unknown_tool", f"no tool {args.tool!r} (tools: {', '.join(TOOLS)})")
        with bank.lock:
            if args.times:
                bank.faults[args.tool] = Fault(args.status, args.times, args.delay_s)
            else:
                bank.faults.pop(args.tool, None)
            armed = {t: {"status": f.status, "times": f.remaining, "delay_s": f.delay_s} for t, f in bank.faults.items()}
        return JSONResponse({"faults": armed})

    @app.post("/_reset")
    async def reset() -> dict[str, str]:
        """Test hook: seed data back, stored responses, counters and faults cleared, pending transfers dropped."""
        bank.reset()
        return {"status": "reset"}

    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deploy.example_bank",
                                description="Example bank backend for the 'retail bank' domain pack (demo and tests only)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--webhook-url", help="where outcomes of accepted (large) transfers are POSTed")
    p.add_argument("--webhook-secret-file", type=Path, help="file holding the HMAC secret callbacks are signed with")
    p.add_argument("--async-threshold", default="1000.00", help="transfers of this amount or more are accepted, then executed later")
    p.add_argument("--callback-delay", type=float, default=1.0, help="seconds between acceptance and execution of a large transfer")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = p.parse_args(argv)

    secret: bytes | None = None
    if args.webhook_secret_file is not None:
        try:
            secret = args.webhook_secret_file.read_bytes().strip()
        except OSError as e:
            p.error(f"cannot read --webhook-secret-file: {e}")
        if not secret:
            p.error(f"--webhook-secret-file {args.webhook_secret_file} is empty")
    if args.webhook_url and secret is None:
        p.error("--webhook-url needs --webhook-secret-file: callbacks are always signed")
    try:
        app = build_bank_app(webhook_url=args.webhook_url, webhook_secret=secret, async_threshold=args.async_threshold,
                             callback_delay_s=args.callback_delay)
    except ValueError as e:
        p.error(str(e))

    import uvicorn

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Our middleware logs one line per request (with the idempotency key); uvicorn's access log would double it.
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
