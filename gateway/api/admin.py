"""``/v1/admin``: an admin manages their own tenant's API keys and retention policy. Every change is audited."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.deps import DbConn
from gateway.api.routing import StrictJsonRoute
from gateway.auth import ROLES, AdminCaller
from gateway.errors import Forbidden, NotFound
from gateway.store import api_keys
from gateway.store.audit import AuditEvent, append

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1/admin", tags=["admin"])

Role = Literal["user", "agent", "supervisor", "auditor", "admin"]
assert set(Role.__args__) == set(ROLES)  # type: ignore[attr-defined]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    label: str = Field(default="", max_length=200)
    rate_limit_per_min: int | None = Field(default=None, ge=1, le=1_000_000)


class RetentionPolicy(BaseModel):
    """Days to keep content; null keeps it for ever. Purges leave tombstones (hashes), never gaps."""

    model_config = ConfigDict(extra="forbid")
    turns_days: int | None = Field(default=None, ge=1, le=36500)
    transcripts_days: int | None = Field(default=None, ge=1, le=36500)
    vault_days: int | None = Field(default=None, ge=1, le=36500)


@router.post("/keys", status_code=201)
async def create_key(body: KeyCreate, identity: AdminCaller, conn: DbConn) -> dict:
    if body.role == "auditor":
        # Separation of duties: the auditor reveals vault values and reads the audit log; an admin who could
        # mint an auditor key would hold both. Auditor keys come from the operator's CLI.
        raise Forbidden("role_not_grantable", "auditor keys are created by the operator (enclave keys create "
                        "--role auditor), not through the admin API", "role")
    async with conn.transaction():
        key, row = await api_keys.acreate_key(conn, identity.tenant_id, body.role, body.label,
                                              body.rate_limit_per_min, identity.subject)
        await append(conn, AuditEvent("key.create", identity.subject, identity.tenant_id,
                                      content={"prefix": row["prefix"], "role": body.role, "label": body.label,
                                               "rate_limit_per_min": body.rate_limit_per_min}))
    return {**row, "object": "api_key", "key": key}   # the secret, shown this once


@router.get("/keys")
async def list_keys(identity: AdminCaller, conn: DbConn) -> dict:
    return {"object": "list", "data": await api_keys.alist_keys(conn, identity.tenant_id)}


@router.delete("/keys/{prefix}")
async def revoke_key(prefix: str, request: Request, identity: AdminCaller, conn: DbConn) -> dict:
    async with conn.transaction():
        role = await api_keys.aactive_key_role(conn, identity.tenant_id, prefix)
        if role is None:
            raise NotFound("key_not_found", f"no active key {prefix[:40]} in this tenant", "prefix")
        if role == "auditor":
            # Separation of duties, as for creating them: an admin must not switch the tenant's oversight off.
            raise Forbidden("role_not_grantable", "auditor keys are revoked by the operator (enclave keys revoke), "
                            "not through the admin API", "prefix")
        await api_keys.arevoke_key(conn, identity.tenant_id, prefix)
        await append(conn, AuditEvent("key.revoke", identity.subject, identity.tenant_id, content={"prefix": prefix}))
    request.app.state.key_cache.forget(prefix)
    return {"prefix": prefix, "object": "api_key.revoked", "revoked": True}


@router.get("/retention")
async def get_retention(identity: AdminCaller, conn: DbConn) -> dict:
    cur = await conn.execute("SELECT retention_turns_days, retention_transcripts_days, retention_vault_days "
                             "FROM tenants WHERE id = %s", (identity.tenant_id,))
    turns, transcripts, vault = await cur.fetchone()
    return {"object": "retention_policy", "turns_days": turns, "transcripts_days": transcripts, "vault_days": vault}


@router.put("/retention")
async def set_retention(body: RetentionPolicy, identity: AdminCaller, conn: DbConn) -> dict:
    async with conn.transaction():
        await conn.execute("UPDATE tenants SET retention_turns_days = %s, retention_transcripts_days = %s, "
                           "retention_vault_days = %s WHERE id = %s",
                           (body.turns_days, body.transcripts_days, body.vault_days, identity.tenant_id))
        await append(conn, AuditEvent("retention.set", identity.subject, identity.tenant_id, content=body.model_dump()))
    return {"object": "retention_policy", **body.model_dump()}
