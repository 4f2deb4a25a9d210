"""``/v1/sessions``: create, list, read (with turns) and delete the conversations the gateway keeps."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.deps import DbConn
from gateway.api.routing import StrictJsonRoute
from gateway.auth import ChatCaller, Identity
from gateway.dialogue.actions import redact_json
from gateway.errors import InvalidRequest, NotFound
from gateway.knowledge.ground import KnowledgeSpec
from gateway.safety.redact import SessionVault
from gateway.store import audit
from gateway.store import dialogue as dialogue_repo
from gateway.store import sessions as repo
from gateway.store import vault as vault_repo

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1/sessions", tags=["sessions"])


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(default="", max_length=200)
    system_prompt: str | None = Field(default=None, max_length=20_000)
    channel: Literal["chat", "api"] = "chat"
    metadata: dict[str, Any] = Field(default_factory=dict)


def session_out(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
    out["id"] = str(row["id"])
    out["object"] = "session"
    return out


def turn_out(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
    out["turn_id"] = str(row["turn_id"])
    return out


def require_id(value: str, param: str, noun: str) -> uuid.UUID:
    """A UUID path/body parameter, or 400 ``invalid_<param>`` naming what was expected."""
    parsed = repo.parse_session_id(value)
    if parsed is None:
        raise InvalidRequest(f"invalid_{param}", f"'{value[:80]}' is not a {noun} (a UUID)", param)
    return parsed


def require_session_id(value: str) -> uuid.UUID:
    return require_id(value, "session_id", "session id")


def _owner_filter(identity: Identity) -> str | None:
    """Staff see their own sessions; agents, supervisors and admins all of their tenant's."""
    return None if identity.sees_all_sessions else identity.subject


async def load_session(conn, identity: Identity, value: str) -> dict[str, Any]:
    """The caller's session, or 404 (another tenant's, or another user's, is indistinguishable from none)."""
    sid = require_session_id(value)
    row = await repo.get_session(conn, identity.tenant_id, sid, created_by=_owner_filter(identity))
    if row is None:
        raise NotFound("session_not_found", f"no session {sid}", "session_id")
    return row


@router.post("", status_code=201)
async def create_session(body: SessionCreate, request: Request, identity: ChatCaller, conn: DbConn) -> dict:
    # The title and system prompt are redacted like any text; their originals go to the new session's vault.
    sid = uuid.uuid4()
    redactor = request.app.state.redactor
    vault = SessionVault(identity.tenant_id, str(sid))
    title, system = redactor.redact(body.title, vault), redactor.redact(body.system_prompt or "", vault) or None
    KnowledgeSpec.parse(body.metadata.get("knowledge"), "metadata.knowledge")   # refused now, not on every turn after
    # Metadata is the client's own (a CRM note, a case number): every string in it is redacted too, except the
    # knowledge filter, whose collection names and tags must match as written.
    metadata = redact_json({k: v for k, v in body.metadata.items() if k != "knowledge"}, redactor, vault)
    if "knowledge" in body.metadata:
        metadata["knowledge"] = body.metadata["knowledge"]
    async with conn.transaction():
        row = await repo.create_session(conn, identity.tenant_id, session_id=sid, channel=body.channel, title=title,
                                        system_prompt=system, metadata=metadata, created_by=identity.subject)
        await vault_repo.store_entries(conn, identity.tenant_id, sid, vault.new_entries)
    return session_out(row)


@router.get("")
async def list_sessions(identity: ChatCaller, conn: DbConn,
                        limit: Annotated[int, Query(ge=1, le=200)] = 50,
                        offset: Annotated[int, Query(ge=0)] = 0,
                        channel: Annotated[list[Literal["chat", "api", "voice", "sip"]] | None, Query()] = None,
                        after: Annotated[str | None, Query(max_length=100)] = None) -> dict:
    """Most recently active first. Page with ``after=<next_cursor>``: every turn moves its session to the top,
    so while the tenant is busy ``offset`` pages repeat sessions already shown and can skip others; a cursor
    page continues below the last session shown (one that moved meanwhile is at the top of the list)."""
    before = _cursor(after) if after else None
    # One row more than asked says whether there is a next page, without a count over the tenant's sessions.
    rows = await repo.list_sessions(conn, identity.tenant_id, limit + 1, offset, created_by=_owner_filter(identity),
                                    channels=channel, before=before)
    page = rows[:limit]
    more = len(rows) > limit
    return {"object": "list", "data": [session_out(r) for r in page], "limit": limit, "offset": offset,
            "has_more": more,
            "next_cursor": f"{page[-1]['updated_at'].isoformat()}~{page[-1]['id']}" if more else None}


def _cursor(text: str) -> tuple[datetime, uuid.UUID]:
    """``next_cursor`` of the previous page: the last session's updated_at and id."""
    try:
        ts, sid = text.split("~")
        when = datetime.fromisoformat(ts)
        if when.tzinfo is None:
            raise ValueError("no time zone")
        return when, uuid.UUID(sid)
    except ValueError:
        raise InvalidRequest("invalid_parameter", "after must be a next_cursor from a previous page", "after") from None


@router.get("/{session_id}")
async def get_session(session_id: str, identity: ChatCaller, conn: DbConn) -> dict:
    row = await load_session(conn, identity, session_id)
    turns = await repo.list_turns(conn, identity.tenant_id, row["id"])
    return {**session_out(row), "turns": [turn_out(t) for t in turns]}


@router.delete("/{session_id}")
async def delete_session(session_id: str, identity: ChatCaller, conn: DbConn) -> dict:
    sid = require_session_id(session_id)
    async with conn.transaction():
        if not await repo.delete_session(conn, identity.tenant_id, sid, created_by=_owner_filter(identity)):
            raise NotFound("session_not_found", f"no session {sid}", "session_id")
        ended = await dialogue_repo.withdraw_session_work(conn, identity.tenant_id, sid, identity.subject)
        await audit.append(conn, audit.AuditEvent("session.delete", identity.subject, identity.tenant_id, str(sid),
                                                  content={k: n for k, n in ended.items() if n}))
    return {"id": str(sid), "object": "session.deleted", "deleted": True}
