"""``POST /v1/vault/reveal``: an auditor sees one original value, with a reason, and the reveal is audited
in the same transaction (no audit entry, no value)."""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.deps import DbConn
from gateway.api.routing import StrictJsonRoute
from gateway.api.sessions import require_session_id
from gateway.auth import AuditorCaller
from gateway.errors import InvalidRequest, NotFound, VaultKeyMismatch
from gateway.safety.redact import PLACEHOLDER
from gateway.store import audit
from gateway.store import vault as vault_repo

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1/vault", tags=["vault"])


class RevealRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: str
    placeholder: str = Field(max_length=64)
    reason: str = Field(max_length=1000)


@router.post("/reveal")
async def reveal(body: RevealRequest, request: Request, identity: AuditorCaller, conn: DbConn) -> dict:
    state = request.app.state
    sid = require_session_id(body.session_id)
    if not PLACEHOLDER.fullmatch(body.placeholder):
        raise InvalidRequest("invalid_placeholder", "a placeholder looks like <CARD_1>", "placeholder")
    reason = " ".join(body.reason.split())
    if len(reason) < state.settings.reveal_reason_min_chars:
        raise InvalidRequest("reason_required", f"say why (at least {state.settings.reveal_reason_min_chars} "
                             "characters); the reason is kept in the audit log", "reason")
    async with conn.transaction():
        row = await vault_repo.find_entry(conn, identity.tenant_id, sid, body.placeholder)
        if row is None:
            raise NotFound("placeholder_not_found", f"no {body.placeholder} in session {sid}", "placeholder")
        pii_type, nonce, ciphertext, purged_at = row
        if ciphertext is None:
            raise NotFound("value_purged", f"{body.placeholder} was purged by the retention policy on "
                           f"{purged_at:%Y-%m-%d}", "placeholder")
        # Opened before the reveal is audited: a value that cannot be opened was not revealed.
        try:
            value = state.redactor.cipher.open(nonce, ciphertext, identity.tenant_id, str(sid), body.placeholder)
        except InvalidTag:
            raise VaultKeyMismatch("vault_key_mismatch", "this value was sealed with another vault key than the "
                                   "gateway's (a backup restored without its key?); nothing was revealed") from None
        # The reason is free text from a person: it is redacted like any other text before it is audited,
        # against the session's vault (a value it holds keeps its number; a new one is sealed with it).
        vault = await vault_repo.locked_session_vault(conn, identity.tenant_id, sid)
        reason = state.redactor.redact(reason, vault)
        await vault_repo.store_entries(conn, identity.tenant_id, sid, vault.new_entries)
        await audit.append(conn, audit.AuditEvent(
            "vault.reveal", identity.subject, identity.tenant_id, str(sid),
            content={"placeholder": body.placeholder, "type": pii_type, "reason": reason}))
    return {"object": "vault.reveal", "session_id": str(sid), "placeholder": body.placeholder, "type": pii_type,
            "value": value}
