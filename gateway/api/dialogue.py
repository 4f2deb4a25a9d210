"""The human side of the dialogue: the review queue (approve or reject high-risk actions, clear flagged
exchanges), the hand-off queue (accept a session, talk in it, hand it back), a session's actions, and the
signed webhook through which long-running actions report their outcome."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.api.deps import DbConn
from gateway.api.routing import StrictJsonRoute
from gateway.api.sessions import load_session, require_id
from gateway.auth import AgentCaller, ChatCaller, ReviewerCaller, ReviewReader
from gateway.dialogue.actions import describe
from gateway.dialogue.handoff import post_agent_message
from gateway.dialogue.notices import record_message
from gateway.dialogue.webhooks import SIGNATURE_HEADER, WebhookSignatureError, verify
from gateway.errors import Forbidden, InvalidRequest, NotFound, Unauthenticated
from gateway.safety.redact import SessionVault
from gateway.store import audit
from gateway.store import dialogue as repo
from gateway.store import sessions as sessions_repo
from gateway.store import vault as vault_repo
from gateway.store.audit import AuditEvent

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1", tags=["dialogue"])


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=2000)

    @field_validator("note")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:     # Postgres text cannot hold it
            raise ValueError("a note cannot contain a NUL character")
        return value


class AgentMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str = Field(min_length=1, max_length=20_000)


def _uuid(value: str, what: str):
    return require_id(value, what.replace(" ", "_") + "_id", f"{what} id")


def _iso(row: dict) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else str(v) if k.endswith("id") and v is not None else v)
            for k, v in row.items()}


# -- review queue ---------------------------------------------------------------------------------------------

@router.get("/review")
async def list_review(identity: ReviewReader, conn: DbConn,
                      state: Annotated[Literal["open", "approved", "rejected", "dismissed"] | None, Query()] = "open",
                      kind: Annotated[Literal["approval", "injection", "tool_violation"] | None, Query()] = None,
                      limit: Annotated[int, Query(ge=1, le=200)] = 50, offset: Annotated[int, Query(ge=0)] = 0) -> dict:
    rows = await repo.list_review_items(conn, identity.tenant_id, state, kind, limit, offset)
    return {"object": "list", "data": [{**_iso(r), "object": "review_item"} for r in rows]}


async def _decide(request: Request, identity, conn, item_id: str, verdict: str, body: Decision) -> dict:
    state = request.app.state
    iid = _uuid(item_id, "review item")
    item = await repo.get_review_item(conn, identity.tenant_id, iid)
    if item is None:
        raise NotFound("review_item_not_found", f"no review item {item_id}")
    if item["state"] != "open":
        raise InvalidRequest("already_decided", f"this item was already {item['state']} by {item['decided_by']}")
    if item["kind"] == "approval" and verdict == "dismissed":
        raise InvalidRequest("decision_required", "an approval item must be approved or rejected")
    if item["kind"] != "approval" and verdict != "dismissed":
        raise InvalidRequest("nothing_to_approve", "only approval items are approved or rejected; dismiss this one")
    action = None
    async with conn.transaction():
        # The session's placeholders, so a value in a note gets the placeholder the session already uses; read
        # under the session's lock, as every writer that may seal new values does.
        vault = (await vault_repo.locked_session_vault(conn, identity.tenant_id, item["session_id"]) if item["session_id"]
                 else SessionVault(identity.tenant_id, ""))
        note = state.redactor.redact(body.note, vault) if body.note else None
        if item["session_id"] and vault.new_entries:   # values first seen in the note: sealed in the session's vault
            await vault_repo.store_entries(conn, identity.tenant_id, item["session_id"], vault.new_entries)
        if item["kind"] == "approval":
            action = await state.dialogue.actions.decide(conn, identity.tenant_id, item["action_id"],
                                                         verdict == "approved", identity.subject, note)
            if action is None:
                raise InvalidRequest("action_not_waiting", "the action is no longer waiting for approval")
        if not await repo.close_review_item(conn, identity.tenant_id, iid, verdict, identity.subject, note):
            raise InvalidRequest("already_decided", "this item was decided meanwhile")
        await audit.append(conn, AuditEvent(f"review.{verdict}", identity.subject, identity.tenant_id,
                                            str(item["session_id"]) if item["session_id"] else None,
                                            content={"review_item": str(iid), "kind": item["kind"], "note": note}))
    if action is not None and verdict == "rejected":
        await state.dialogue.actions.report(action)     # the customer hears it once the decision is stored
    # An approved action runs in the background runner (here or on another gateway), exactly once.
    return {"object": "review_item", "id": str(iid), "state": verdict,
            **({"action": describe(action)} if action else {})}


@router.post("/review/{item_id}/approve")
async def approve(item_id: str, request: Request, identity: ReviewerCaller, conn: DbConn, body: Decision | None = None) -> dict:
    return await _decide(request, identity, conn, item_id, "approved", body or Decision())


@router.post("/review/{item_id}/reject")
async def reject(item_id: str, request: Request, identity: ReviewerCaller, conn: DbConn, body: Decision | None = None) -> dict:
    return await _decide(request, identity, conn, item_id, "rejected", body or Decision())


@router.post("/review/{item_id}/dismiss")
async def dismiss(item_id: str, request: Request, identity: ReviewerCaller, conn: DbConn, body: Decision | None = None) -> dict:
    return await _decide(request, identity, conn, item_id, "dismissed", body or Decision())


# -- hand-offs ------------------------------------------------------------------------------------------------

@router.get("/handoffs")
async def list_handoffs(identity: AgentCaller, conn: DbConn,
                        state: Annotated[Literal["queued", "active", "closed"] | None, Query()] = "queued",
                        limit: Annotated[int, Query(ge=1, le=200)] = 50, offset: Annotated[int, Query(ge=0)] = 0) -> dict:
    rows = await repo.list_handoffs(conn, identity.tenant_id, state, limit, offset)
    return {"object": "list", "data": [{**_iso(r), "object": "handoff"} for r in rows]}


async def _handoff(conn, identity, handoff_id: str) -> dict:
    row = await repo.get_handoff(conn, identity.tenant_id, _uuid(handoff_id, "handoff"))
    if row is None:
        raise NotFound("handoff_not_found", f"no hand-off {handoff_id}")
    return row


@router.get("/handoffs/{handoff_id}")
async def get_handoff(handoff_id: str, identity: AgentCaller, conn: DbConn,
                      after_seq: Annotated[int, Query(ge=0)] = 0) -> dict:
    """The hand-off with the session's transcript (redacted, as stored) after ``after_seq``."""
    row = await _handoff(conn, identity, handoff_id)
    turns = await sessions_repo.list_turns(conn, identity.tenant_id, row["session_id"], after_seq=after_seq)
    transcript = [{"seq": t["seq"], "role": t["role"], "content": t["content"], "model": t.get("model"),
                   "created_at": t["created_at"].isoformat() if t.get("created_at") else None} for t in turns]
    return {**_iso(row), "object": "handoff", "transcript": transcript}


@router.post("/handoffs/{handoff_id}/accept")
async def accept_handoff(handoff_id: str, identity: AgentCaller, conn: DbConn) -> dict:
    row = await _handoff(conn, identity, handoff_id)
    async with conn.transaction():
        accepted = await repo.accept_handoff(conn, identity.tenant_id, row["id"], identity.subject)
        if accepted is None:
            raise InvalidRequest("handoff_not_queued", f"this hand-off is {row['state']}"
                                 + (f" with {row['agent']}" if row.get("agent") else ""))
        await audit.append(conn, AuditEvent("handoff.accepted", identity.subject, identity.tenant_id,
                                            str(row["session_id"]), content={"handoff": str(row["id"])}))
    return {**_iso(accepted), "object": "handoff"}


@router.post("/handoffs/{handoff_id}/messages")
async def agent_message(handoff_id: str, body: AgentMessage, request: Request, identity: AgentCaller, conn: DbConn) -> dict:
    row = await _handoff(conn, identity, handoff_id)
    if row["state"] != "active":
        raise InvalidRequest("handoff_not_active", "accept the hand-off before writing in the session")
    if row["agent"] != identity.subject and "supervisor" not in identity.roles and "admin" not in identity.roles:
        raise Forbidden("not_your_handoff", "another colleague has this session")
    session = await sessions_repo.get_session(conn, identity.tenant_id, row["session_id"])
    seq = await post_agent_message(request.app.state.db, request.app.state.redactor, identity.tenant_id,
                                   row["session_id"], identity.subject, body.content, (session or {}).get("channel", "chat"))
    return {"object": "handoff.message", "handoff_id": str(row["id"]), "seq": seq}


@router.post("/handoffs/{handoff_id}/close")
async def close_handoff(handoff_id: str, request: Request, identity: AgentCaller, conn: DbConn) -> dict:
    """Hand the session back to the assistant (it says so in the session)."""
    row = await _handoff(conn, identity, handoff_id)
    state = request.app.state
    oversees = "supervisor" in identity.roles or "admin" in identity.roles
    async with conn.transaction():
        closed = await repo.close_handoff(conn, identity.tenant_id, row["id"], None if oversees else identity.subject)
        if closed is None:
            current = await repo.get_handoff(conn, identity.tenant_id, row["id"])
            if current is not None and current["state"] == "active":
                raise Forbidden("not_your_handoff", "another colleague has this session")
            raise InvalidRequest("handoff_closed", "this hand-off is already closed")
        await repo.set_mode(conn, identity.tenant_id, row["session_id"], "bot")
        await audit.append(conn, AuditEvent("handoff.closed", identity.subject, identity.tenant_id,
                                            str(row["session_id"]), content={"handoff": str(row["id"])}))
    pack = state.dialogue.registry.for_tenant_id(identity.tenant_id)
    if pack is not None:
        session = await sessions_repo.get_session(conn, identity.tenant_id, row["session_id"])
        async with state.db.connection() as notice_conn, notice_conn.transaction():   # the assistant's own words
            await record_message(notice_conn, state.redactor, identity.tenant_id, row["session_id"],
                                 pack.canned.agent_left, channel=(session or {}).get("channel", "chat"), model="enclave",
                                 request_id=f"handoff-{row['id']}", audit_as=("handoff.notice", "system"))
    return {**_iso(closed), "object": "handoff"}


# -- actions --------------------------------------------------------------------------------------------------

@router.get("/sessions/{session_id}/actions")
async def session_actions(session_id: str, identity: ChatCaller, conn: DbConn) -> dict:
    session = await load_session(conn, identity, session_id)
    rows = await repo.list_actions(conn, identity.tenant_id, session["id"])
    return {"object": "list", "data": [{**describe(r), "object": "action"} for r in rows]}


@router.post("/actions/webhook")
async def action_webhook(request: Request,
                         x_enclave_signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None) -> dict:
    """A long-running action's outcome, signed with the shared secret (HMAC-SHA256 over timestamp + body)."""
    state = request.app.state
    secret = state.dialogue.webhook_secret
    if secret is None:
        raise Forbidden("webhook_disabled", "no webhook secret is configured on this gateway")
    body = await request.body()
    try:
        verify(secret, x_enclave_signature, body)
    except WebhookSignatureError as e:
        raise Unauthenticated(e.code, str(e)) from None
    try:
        payload = json.loads(body)
    except ValueError:
        raise InvalidRequest("invalid_json", "the body is not JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("idempotency_key"), str):
        raise InvalidRequest("invalid_parameter", "the body needs an idempotency_key", "idempotency_key")
    row = await state.dialogue.actions.webhook(payload)
    if row is None:
        raise NotFound("action_not_found", "no action has that idempotency key")
    return {"object": "action", "id": str(row["id"]), "state": row["state"]}
