"""Act: tool calls with side effects that never run twice.

A side-effecting call is first written to the ``actions`` table under an idempotency key derived from
the session, the flow instance and the step; only the caller whose conditional UPDATE moves it from
``approved`` to ``executing`` calls the tool, and it sends the same key as ``Idempotency-Key`` so the
service on the other side deduplicates too. Hence a duplicate request finds the row, a retry reuses the
key, and a restart between approval and execution leaves an ``approved`` row that the runner picks up
once. High-risk calls wait as ``awaiting_approval`` with a review item; long-running ones (HTTP 202) stay
``running`` until a signed webhook reports their outcome. Outcomes that happen outside a turn are told
to the session as an assistant message.

Tool errors never reach a user raw: the flow maps a tool's error code to its own wording, and anything
else becomes the pack's plain ``tool_failed`` reply.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import inspect
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import httpx
from psycopg_pool import AsyncConnectionPool

from gateway.dialogue.notices import record_message
from gateway.dialogue.packs import Pack, Tool
from gateway.dialogue.render import render
from gateway.dialogue.schemas import validator as schema_validator
from gateway.safety.redact import PLACEHOLDER, Redactor, SessionVault
from gateway.store import audit
from gateway.store import dialogue as repo
from gateway.store import vault as vault_repo
from gateway.store.audit import AuditEvent
from gateway.store.sessions import SessionGone

log = logging.getLogger("enclave.gateway.actions")
_T = TypeVar("_T")

ActionState = Literal["executed", "failed", "running", "awaiting_approval", "rejected", "executing"]


class ToolUnavailable(Exception):
    """The tool could not be reached or broke (5xx, timeout): worth retrying with the same key. ``sent``: the
    request may have reached the service (a timeout, a 5xx, a reset), so whether it acted is unknown."""

    def __init__(self, message: str, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


@dataclass(frozen=True)
class ToolOutcome:
    state: ActionState
    output: dict[str, Any] | None = None
    error_code: str | None = None
    action_id: str | None = None
    duplicate: bool = False


# Errors raised before a request left the box (no connection, or a URL or request that could not be sent):
# nothing reached the service, so there is no outcome to recheck.
NEVER_SENT = (httpx.ConnectError, httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError)


def idempotency_key(tenant_id: str, session_id: Any, instance: str, step: int, tool: str) -> str:
    return hashlib.sha256(f"{tenant_id}|{session_id}|{instance}|{step}|{tool}".encode()).hexdigest()[:40]


def schema_errors(tool: Tool, args: dict[str, Any], *, with_values: bool = True) -> list[str]:
    """What in ``args`` breaks the tool's schema; ``with_values=False`` names only where and which rule (the
    messages quote the values, which are the owner's real ones: not for logs)."""
    return [f"{'.'.join(map(str, e.path)) or '(args)'}: {e.message if with_values else e.validator}"
            for e in schema_validator(tool.parameters).iter_errors(args)]


def schema_problem_paths(tool: Tool, args: dict[str, Any]) -> list[str]:
    return schema_errors(tool, args, with_values=False)


def map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    """``fn`` applied to every string in a JSON value, object keys too (a client's metadata can carry an
    address or a card number as a key)."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {fn(k) if isinstance(k, str) else k: map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [map_strings(v, fn) for v in value]
    return value


def redact_json(value: Any, redactor: Redactor, vault: SessionVault) -> Any:
    """Every string in a JSON value redacted: what the actions table, the review queue and the audit keep."""
    return map_strings(value, lambda text: redactor.redact(text, vault))


def originals_json(value: Any, redactor: Redactor, vault: SessionVault) -> Any:
    """Every placeholder in a JSON value back to the owner's value (in memory, for a tool's arguments)."""
    return map_strings(value, lambda text: redactor.originals(text, vault))


def unrestorable(value: Any, redactor: Redactor, vault: SessionVault) -> list[str]:
    """Placeholders in a JSON value whose values the vault no longer holds (purged, or the session's
    entries gone): a tool must not be called with ``<IBAN_1>`` for an IBAN."""
    missing: list[str] = []

    def check(text: str) -> str:
        for m in PLACEHOLDER.finditer(text):
            entry = vault.entries.get(m.group(0))
            if entry is None or redactor.value_of(entry, vault) is None:
                missing.append(m.group(0))
        return text

    map_strings(value, check)
    return missing


class ToolExecutor:
    """Calls one tool: an HTTP endpoint on the premises or a Python callable."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def execute(self, tool: Tool, args: dict[str, Any], key: str | None) -> tuple[ActionState, dict | None, str | None]:
        if tool.python is not None:
            module, _, name = tool.python.partition(":")
            fn = getattr(importlib.import_module(module), name)
            try:
                if inspect.iscoroutinefunction(fn):
                    result = await fn(dict(args))
                else:   # a blocking function would stall the loop that paces every live call's audio
                    result = await asyncio.to_thread(fn, dict(args))
                    if inspect.isawaitable(result):
                        result = await result
            except Exception as e:
                log.warning("python tool failed", extra={"tool": tool.python, "error": type(e).__name__})
                return "failed", None, getattr(e, "code", "tool_error")
            return "executed", result if isinstance(result, dict) else {"value": result}, None
        assert tool.http is not None
        headers = {"Idempotency-Key": key} if key else {}
        try:
            if tool.http.method == "GET":
                r = await self.client.get(tool.http.url, params=args, headers=headers, timeout=tool.http.timeout_s)
            else:
                r = await self.client.post(tool.http.url, json=args, headers=headers, timeout=tool.http.timeout_s)
        except (httpx.HTTPError, httpx.InvalidURL) as e:
            raise ToolUnavailable(f"{type(e).__name__} calling {urlsplit(tool.http.url).path}",
                                  sent=not isinstance(e, NEVER_SENT)) from e
        if r.status_code >= 500 or r.status_code in (408, 429):
            raise ToolUnavailable(f"HTTP {r.status_code}")
        try:
            body = r.json()
        except ValueError:
            body = {}
        if r.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            code = error.get("code") if isinstance(error, dict) else None
            return "failed", None, str(code or f"http_{r.status_code}")
        body = body if isinstance(body, dict) else {"value": body}
        return ("running" if r.status_code == 202 else "executed"), body, None


class Actions:
    def __init__(self, pool: AsyncConnectionPool, executor: ToolExecutor, redactor: Redactor, packs, *,
                 lease_s: float = 30.0, retries: int = 2, backoff_s: float = 0.3, recheck_s: float = 300.0,
                 max_rechecks: int = 12) -> None:
        self.pool, self.executor, self.redactor, self.packs = pool, executor, redactor, packs
        self.lease_s, self.retries, self.backoff_s = lease_s, retries, backoff_s
        # A running action (accepted by the service, or its outcome unknown) is asked about again, with its
        # key, every recheck_s; after max_rechecks claims without an answer it is failed as outcome_unknown.
        self.recheck_s, self.max_rechecks = recheck_s, max_rechecks

    # -- from a turn ------------------------------------------------------------------------------------------

    async def request(self, *, pack: Pack, tool_name: str, args: dict[str, Any], tenant_id: str, session_id: Any,
                      vault: SessionVault, instance: str, step: int, flow: str, actor: str,
                      report: dict[str, Any]) -> ToolOutcome:
        """Run a flow's tool call (``args`` hold the owner's real values, in memory only)."""
        tool = pack.tools[tool_name]
        if tool.side_effect == "read":   # nothing to protect from running twice
            return await self._execute_read(tool, args)
        key = idempotency_key(tenant_id, session_id, instance, step, tool_name)
        reason = tool.approval.reason(args)
        stored_args = redact_json(args, self.redactor, vault)
        report = redact_json(report, self.redactor, vault)
        async with self.pool.connection() as conn, conn.transaction():
            if vault.new_entries:   # values first seen in these args: seal them so the runner can restore them
                await vault_repo.store_entries(conn, tenant_id, session_id, vault.new_entries)
            row, created = await repo.insert_action(
                conn, tenant_id, session_id, key, tool_name, tool.side_effect, stored_args,
                "awaiting_approval" if reason else "approved", risk_reason=reason, flow=flow, step=step,
                report={**report, "pack": pack.tenant})
            if created:
                await audit.append(conn, AuditEvent("action.requested", actor, tenant_id, str(session_id), content={
                    "action_id": str(row["id"]), "tool": tool_name, "args": stored_args, "state": row["state"],
                    "risk_reason": reason, "idempotency_key": key}))
            if created and reason:
                await repo.add_review_item(conn, tenant_id, "approval", reason, session_id=session_id,
                                           action_id=row["id"], detail={"tool": tool_name, "args": stored_args})
        if not created:
            log.info("duplicate action request", extra={"action_id": str(row["id"]), "state": row["state"]})
            return await self._settled(row, duplicate=True)
        if reason:
            return ToolOutcome("awaiting_approval", action_id=str(row["id"]))
        return await self.run(row["id"], args)

    async def _execute_read(self, tool: Tool, args: dict[str, Any]) -> ToolOutcome:
        for attempt in range(self.retries + 1):
            try:
                state, output, code = await self.executor.execute(tool, args, None)
                return ToolOutcome(state, output, code)
            except ToolUnavailable as e:
                log.warning("read tool unavailable", extra={"attempt": attempt + 1, "error": str(e)})
                await asyncio.sleep(self.backoff_s * (attempt + 1))
        return ToolOutcome("failed", None, "tool_unavailable")

    async def _settled(self, row: dict[str, Any], duplicate: bool = False, wait_s: float = 10.0) -> ToolOutcome:
        """What a duplicate request answers: the first request's outcome (waiting briefly while it runs)."""
        deadline = time.monotonic() + wait_s
        while row["state"] == "executing" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            async with self.pool.connection() as conn:
                row = await repo.get_action(conn, None, row["id"]) or row
        if row["state"] == "approved":
            return await self.run(row["id"], None)
        output = (row.get("result") or {}).get("output")
        state = row["state"] if row["state"] != "pending" else "executing"
        return ToolOutcome(state, output, row.get("error_code"), str(row["id"]), duplicate)

    # -- execution (a turn, the runner after approval or restart) ---------------------------------------------

    async def run(self, action_id: Any, args: dict[str, Any] | None) -> ToolOutcome:
        """Claim and execute one approved action. Whoever loses the claim gets the winner's outcome."""
        async with self.pool.connection() as conn:
            row = await repo.claim(conn, action_id, self.lease_s)
            if row is None:
                current = await repo.get_action(conn, None, action_id)
        if row is None:
            return await self._settled(current, duplicate=True) if current else ToolOutcome("failed", None, "unknown_action")
        pack = self.packs.for_tenant_id(str(row["tenant_id"]))
        tool = pack.tools.get(row["tool"]) if pack else None
        if tool is None:
            return await self._finish(row, "failed", None, "tool_not_configured")
        if args is None:   # restore the owner's values from the vault
            async with self.pool.connection() as conn:
                vault = await vault_repo.session_vault(conn, str(row["tenant_id"]), row["session_id"])
            if missing := unrestorable(row["args"], self.redactor, vault):
                log.warning("action arguments no longer in the vault", extra={
                    "action_id": str(action_id), "placeholders": sorted(set(missing))})
                return await self._finish(row, "failed", None, "args_unavailable")
            args = originals_json(row["args"], self.redactor, vault)
        unknown = False       # did an attempt perhaps reach the service?
        # The lease must outlast each attempt: a runner that finds it run out takes the action over and would
        # call the tool a second time. An HTTP tool may take its timeout_s (120 s at most) per read; a Python
        # tool has no limit: the lease is renewed while the call is in flight (_holding_lease).
        lease_s = self.lease_s + (tool.http.timeout_s if tool.http is not None else 0.0)
        for attempt in range(self.retries + 1):
            async with self.pool.connection() as conn:
                ours = await repo.extend_lease(conn, row["id"], row["attempts"], lease_s)
            if not ours:
                log.warning("action taken over by another runner", extra={"action_id": str(action_id)})
                async with self.pool.connection() as conn:
                    current = await repo.get_action(conn, None, action_id)
                return await self._settled(current, duplicate=True) if current else ToolOutcome("failed", None, "unknown_action")
            try:
                state, output, code = await self._holding_lease(
                    row, lease_s, self.executor.execute(tool, args, row["idempotency_key"]))
                break
            except ToolUnavailable as e:
                unknown = unknown or e.sent
                log.warning("tool unavailable", extra={"action_id": str(action_id), "attempt": attempt + 1, "error": str(e)})
                await asyncio.sleep(self.backoff_s * (attempt + 1))
        else:
            # A timeout or a 5xx does not say whether the money moved: not "failed" (the customer would be
            # told nothing changed, and ask again under a new key). It waits as "running", for the service's
            # webhook or for the runner, which asks again with the same key (the service replays what it
            # did) every recheck_s. Only a service never reached is a plain failure.
            state, output, code = ("running", None, "outcome_unknown") if unknown else ("failed", None, "tool_unavailable")
        if state == "running" and row["attempts"] > self.max_rechecks:
            state, code = "failed", "outcome_unknown"     # asked often enough: a colleague must look
        return await self._finish(row, state, output, code)

    async def _holding_lease(self, row: dict, lease_s: float, call: Awaitable[_T]) -> _T:
        """Await ``call`` while renewing the action's lease every third of it: only an executor that died lets
        the lease run out, not a slow tool (a second runner would call it again)."""
        async def renew() -> None:
            while True:
                await asyncio.sleep(lease_s / 3)
                try:
                    async with self.pool.connection() as conn:
                        if not await repo.extend_lease(conn, row["id"], row["attempts"], lease_s):
                            return      # taken over after all: _finish will not settle it either
                except Exception:       # noqa: BLE001 - the database is away: try again next time
                    log.warning("could not renew an action's lease", extra={"action_id": str(row["id"])})

        keeper = asyncio.create_task(renew())
        try:
            return await call
        finally:
            keeper.cancel()

    async def _finish(self, row: dict, state: str, output: dict | None, code: str | None) -> ToolOutcome:
        done = await self._settle(row, state, output, code, "system", ("executing",), attempt=row["attempts"])
        log.info("action finished", extra={"action_id": str(row["id"]), "tool": row["tool"], "state": state, "code": code,
                                           "settled": done is not None})
        # Not settled by us (our claim was taken over): the new claimant reports the outcome, not this one.
        return ToolOutcome(state, output, code, str(row["id"]), duplicate=done is None)

    async def _settle(self, row: dict, state: str, output: dict | None, code: str | None, actor: str,
                      from_states: tuple[str, ...], attempt: int | None = None) -> dict | None:
        """Store an outcome (redacted) and audit it, in one transaction; None when the action had already left
        ``from_states`` (someone else settled it)."""
        tenant_id, session_id = str(row["tenant_id"]), row["session_id"]
        async with self.pool.connection() as conn, conn.transaction():
            vault = await vault_repo.locked_session_vault(conn, tenant_id, session_id)
            stored = redact_json(output, self.redactor, vault) if output is not None else None
            await vault_repo.store_entries(conn, tenant_id, session_id, vault.new_entries)
            done = await repo.finish(conn, row["id"], state, {"output": stored} if stored is not None else {}, code,
                                     from_states=from_states, attempt=attempt, recheck_s=self.recheck_s)
            if done is not None:
                await audit.append(conn, AuditEvent(f"action.{state}", actor, tenant_id, str(session_id), content={
                    "action_id": str(row["id"]), "tool": row["tool"], "output": stored, "error_code": code,
                    "attempt": row["attempts"], "idempotency_key": row["idempotency_key"]}))
        return done

    # -- outside a turn: approvals, the runner, webhooks ------------------------------------------------------

    async def decide(self, conn, tenant_id: str, action_id: Any, approve: bool, who: str, note: str | None) -> dict | None:
        """Approve or reject a waiting action, in the caller's transaction: the review item that asked for the
        decision is closed in the same one (decided apart, a failure in between left the item open for good).
        A rejection is reported to the session by the caller, once that transaction has committed."""
        row = await repo.decide(conn, tenant_id, action_id, approve, who)
        if row is None:
            return None
        await audit.append(conn, AuditEvent("action.approved" if approve else "action.rejected", who, tenant_id,
                                            str(row["session_id"]), content={"action_id": str(action_id), "note": note}))
        return row

    async def run_pending(self) -> int:
        """One pass of the runner: approved actions (and executing ones whose executor died)."""
        tenant_ids = await self.packs.tenant_ids()
        if not tenant_ids:
            return 0
        async with self.pool.connection() as conn:
            ids = await repo.runnable(conn, tenant_ids)
        for action_id in ids:
            outcome = await self.run(action_id, None)
            if outcome.state in ("executed", "failed") and not outcome.duplicate:
                async with self.pool.connection() as conn:
                    row = await repo.get_action(conn, None, action_id)
                if row is not None:
                    await self.report(row)
        return len(ids)

    async def runner(self, interval_s: float = 1.0) -> None:
        while True:
            try:
                await self.run_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("action runner pass failed")
            await asyncio.sleep(interval_s)

    async def webhook(self, payload: dict[str, Any]) -> dict | None:
        """A long-running action's outcome (the signature was checked by the API). Idempotent: a repeated
        callback finds the action already settled."""
        key = payload.get("idempotency_key")
        if not isinstance(key, str):
            return None
        async with self.pool.connection() as conn:
            row = await repo.find_action_by_key(conn, key)
        if row is None:
            return None
        state = "executed" if payload.get("status") == "executed" else "failed"
        output = payload.get("result") if isinstance(payload.get("result"), dict) else {}
        error = payload.get("error")
        if not isinstance(error, dict) and isinstance(output.get("error"), dict):
            error = output["error"]        # a service that nests it in the result: still its code, not a generic one
        code = None if state == "executed" else str(error.get("code", "tool_failed")) if isinstance(error, dict) \
            else "tool_failed"
        if state == "failed":
            output = {}                    # the service's message (balances, internals) is not the outcome to keep
        done = await self._settle(row, state, output, code, "webhook", ("running", "executing"))
        if done is not None:
            await self.report(done)
        return done or row

    async def report(self, row: dict[str, Any]) -> bool:
        """Tell the session how an action that finished outside a turn ended (once)."""
        pack = self.packs.for_tenant_id(str(row["tenant_id"]))
        if pack is None:
            return False
        report = (row.get("result") or {}).get("report") or {}
        output = (row.get("result") or {}).get("output") or {}
        slots = report.get("slots") or {}
        if row["state"] == "executed":
            text = render(report.get("say") or pack.canned.approved_done, slots, output)
        elif row["state"] == "rejected":
            text = pack.canned.rejected
        elif row.get("error_code") == "outcome_unknown":
            text = pack.canned.outcome_unknown       # never "nothing was changed": nobody knows that
        else:
            template = (report.get("errors") or {}).get(row.get("error_code") or "")
            text = render(template, slots, output) if template else pack.canned.tool_failed
        try:
            async with self.pool.connection() as conn, conn.transaction():
                if not await repo.mark_reported(conn, row["id"]):
                    return False
                await record_message(conn, self.redactor, str(row["tenant_id"]), row["session_id"], text,
                                     channel=report.get("channel", "chat"), model="enclave", request_id=f"action-{row['id']}",
                                     audit_as=("action.reported", "system"),
                                     turn_id=str(uuid.UUID(hex=hashlib.sha256(f"report|{row['id']}".encode()).hexdigest()[:32])))
        except SessionGone:    # deleted while the action ran (it goes on, as documented): nobody left to tell
            async with self.pool.connection() as conn:
                await repo.mark_reported(conn, row["id"])
            log.info("action outcome not reported: the session was deleted", extra={"action_id": str(row["id"])})
            return False
        log.info("action outcome reported", extra={"action_id": str(row["id"]), "state": row["state"]})
        return True


def describe(row: dict[str, Any]) -> dict[str, Any]:
    """An action as the API shows it (redacted args and output; the report template stays internal)."""
    result = row.get("result") or {}
    return {"id": str(row["id"]), "session_id": str(row["session_id"]), "tool": row["tool"],
            "side_effect": row["side_effect"], "state": row["state"], "args": row["args"],
            "output": result.get("output"), "error_code": row.get("error_code"), "risk_reason": row.get("risk_reason"),
            "attempts": row["attempts"], "decided_by": row.get("decided_by"),
            "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat()}


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
