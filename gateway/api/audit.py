"""``/v1/audit``: auditors read their tenant's audit entries and verify the chain. Reading is audited too."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from psycopg.rows import dict_row

from gateway.api.deps import DbConn
from gateway.api.routing import StrictJsonRoute
from gateway.api.sessions import require_session_id
from gateway.auth import AuditorCaller
from gateway.store import audit

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1/audit", tags=["audit"])


@router.get("")
async def list_entries(identity: AuditorCaller, conn: DbConn,
                       from_: Annotated[datetime | None, Query(alias="from")] = None,
                       to: Annotated[datetime | None, Query()] = None,
                       session_id: Annotated[str | None, Query()] = None,
                       after_seq: Annotated[int, Query(ge=0)] = 0,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
    sid = require_session_id(session_id) if session_id else None
    # A time without a zone is UTC, as `enclave audit export` reads it (Postgres would read it in the server's
    # TimeZone, which initdb copies from the host: the same window an hour or more apart).
    from_, to = (t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t for t in (from_, to))
    async with conn.transaction():
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT {audit.ROW_COLUMNS} FROM audit_log WHERE tenant_id = %(tid)s AND seq > %(after)s "
                "AND (%(from)s::timestamptz IS NULL OR ts >= %(from)s) AND (%(to)s::timestamptz IS NULL OR ts < %(to)s) "
                "AND (%(sid)s::uuid IS NULL OR session_id = %(sid)s) ORDER BY seq LIMIT %(limit)s",
                {"tid": identity.tenant_id, "after": after_seq, "from": from_, "to": to, "sid": sid, "limit": limit})
            rows = await cur.fetchall()
        await audit.append(conn, audit.AuditEvent(
            "audit.read", identity.subject, identity.tenant_id, str(sid) if sid else None,
            content={"from": from_.isoformat() if from_ else None, "to": to.isoformat() if to else None,
                     "after_seq": after_seq, "returned": len(rows)}))
    data = [audit.entry_out(r) for r in rows]
    return {"object": "list", "data": data, "next_after_seq": data[-1]["seq"] if len(data) == limit else None}


@router.post("/verify")
async def verify(identity: AuditorCaller, conn: DbConn) -> dict:
    """Walk the whole chain (every tenant's entries link into one chain) and say whether it holds; the first
    broken link is named when it is one of this tenant's entries."""
    result = await audit.verify_async(conn)
    # The walk covers every tenant; what it says is this tenant's: its own entries' counts, and where the
    # chain broke only when the entry is its own (another tenant's seq and reason are theirs).
    cur = await conn.execute("SELECT count(*), count(*) FILTER (WHERE purged_at IS NOT NULL) FROM audit_log "
                             "WHERE tenant_id = %s", (identity.tenant_id,))
    checked, tombstones = await cur.fetchone()
    own_break = False
    if result.broken_seq is not None:
        cur = await conn.execute("SELECT tenant_id FROM audit_log WHERE seq = %s", (result.broken_seq,))
        row = await cur.fetchone()
        own_break = row is not None and str(row[0]) == identity.tenant_id
    if result.ok:
        message = f"audit chain intact: {checked} entries of this tenant ({tombstones} purged to tombstones)"
    elif own_break:
        message = f"audit chain broken at seq {result.broken_seq}, an entry of this tenant: {result.reason}"
    else:
        message = "audit chain broken at an entry outside this tenant: the operator's `enclave audit verify` names it"
    await audit.append(conn, audit.AuditEvent(
        "audit.verify", identity.subject, identity.tenant_id,
        content={"ok": result.ok, "checked": checked, "broken_seq": result.broken_seq if own_break else None}))
    return {"object": "audit.verification", "ok": result.ok, "checked": checked, "tombstones": tombstones,
            "broken_seq": result.broken_seq if own_break else None,
            "reason": (result.reason or None) if own_break else None, "message": message}
