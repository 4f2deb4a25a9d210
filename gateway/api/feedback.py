"""``/v1/sessions/{id}/turns/{turn_id}/feedback``: thumbs up or down on an answer, with an optional comment
(redacted like any text). It feeds the CSAT figure of ``/v1/kpis``."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.deps import DbConn
from gateway.api.routing import StrictJsonRoute
from gateway.api.sessions import load_session, require_id
from gateway.auth import ChatCaller
from gateway.errors import NotFound
from gateway.store import kpis as repo
from gateway.store import vault as vault_repo

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1/sessions", tags=["feedback"])


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: Literal["up", "down"]
    comment: str = Field(default="", max_length=2000)


@router.post("/{session_id}/turns/{turn_id}/feedback")
async def give_feedback(session_id: str, turn_id: str, body: Feedback, request: Request, identity: ChatCaller,
                        conn: DbConn) -> dict:
    session = await load_session(conn, identity, session_id)
    tid = require_id(turn_id, "turn_id", "turn id")
    async with conn.transaction():
        # The session's own placeholders: a value it holds keeps its number, a new one gets the next (from an
        # empty vault, "bob@x.com" became <EMAIL_1>, the customer's address, and Bob's was never stored).
        vault = await vault_repo.locked_session_vault(conn, identity.tenant_id, session["id"])
        comment = request.app.state.redactor.redact(body.comment, vault) if body.comment else ""
        row = await repo.save_feedback(conn, identity.tenant_id, session["id"], tid, 1 if body.rating == "up" else -1,
                                       comment, identity.subject)
        if row is None:
            raise NotFound("turn_not_found", f"no answer {tid} in this session", "turn_id")
        await vault_repo.store_entries(conn, identity.tenant_id, session["id"], vault.new_entries)
    return {"object": "feedback", "turn_id": str(row["turn_id"]), "rating": body.rating, "comment": row["comment"],
            "created_at": row["created_at"].isoformat()}
