"""Sessions and their turns. Every query takes the tenant id: a session of another tenant is "not found"."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from gateway.store import audit


class SessionGone(LookupError):
    """The session was deleted (or never was): there is nowhere to record a turn."""


SESSION_COLUMNS = ("id, channel, title, system_prompt, summary, summary_upto_seq, summary_tokens, turn_count, "
                   "metadata, created_by, created_at, updated_at, mode")


def storable(text: str) -> str:
    """Postgres text cannot hold NUL; a model can emit one. Keep the position visible, not the byte."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def parse_session_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None


async def create_session(conn: AsyncConnection, tenant_id: str, *, session_id: uuid.UUID | None = None,
                         channel: str = "chat", title: str = "", system_prompt: str | None = None,
                         metadata: dict | None = None, created_by: str = "") -> dict[str, Any]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"INSERT INTO sessions (id, tenant_id, channel, title, system_prompt, metadata, created_by) "
            f"VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {SESSION_COLUMNS}",
            (session_id or uuid.uuid4(), tenant_id, channel, title, system_prompt, Jsonb(metadata or {}), created_by),
        )
        return await cur.fetchone()


# ``created_by``: when given, only that caller's sessions (the role rule for staff); tenant_id always.
_OWNER = "AND (%(owner)s::text IS NULL OR created_by = %(owner)s)"


async def get_session(conn: AsyncConnection, tenant_id: str, session_id: uuid.UUID,
                      created_by: str | None = None) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = %(sid)s AND tenant_id = %(tid)s {_OWNER}",
                          {"sid": session_id, "tid": tenant_id, "owner": created_by})
        return await cur.fetchone()


async def list_sessions(conn: AsyncConnection, tenant_id: str, limit: int = 50, offset: int = 0,
                        created_by: str | None = None, channels: list[str] | None = None,
                        before: tuple[datetime, uuid.UUID] | None = None) -> list[dict[str, Any]]:
    """Most recently active first. ``before`` (the last row's updated_at and id) pages by key: a session that
    moves to the top while a client pages is not repeated further down, as it is with ``offset``."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE tenant_id = %(tid)s {_OWNER} "
            "AND (%(channels)s::text[] IS NULL OR channel = ANY(%(channels)s)) "
            "AND (%(before_ts)s::timestamptz IS NULL OR (updated_at, id) < (%(before_ts)s, %(before_id)s::uuid)) "
            "ORDER BY updated_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s",
            {"tid": tenant_id, "owner": created_by, "limit": limit, "offset": offset, "channels": channels,
             "before_ts": before[0] if before else None, "before_id": before[1] if before else None},
        )
        return await cur.fetchall()


async def delete_session(conn: AsyncConnection, tenant_id: str, session_id: uuid.UUID,
                         created_by: str | None = None) -> bool:
    cur = await conn.execute(f"DELETE FROM sessions WHERE id = %(sid)s AND tenant_id = %(tid)s {_OWNER}",
                             {"sid": session_id, "tid": tenant_id, "owner": created_by})
    if cur.rowcount == 1:   # the assistant's working memory goes with it (actions and hand-offs are records)
        await conn.execute("DELETE FROM dialogue_states WHERE session_id = %s AND tenant_id = %s", (session_id, tenant_id))
    return cur.rowcount == 1


async def list_turns(conn: AsyncConnection, tenant_id: str, session_id: uuid.UUID, *, after_seq: int = 0) -> list[dict[str, Any]]:
    """Message rows of the turns after ``after_seq``, in order."""
    cols = ("turn_id, seq, position, role, content, tool_calls, tool_call_id, channel, model, tokens, status, ttft_ms, "
            "total_ms, language, finish_reason, request_id, created_at, purged_at")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {cols} FROM turns WHERE session_id = %s AND tenant_id = %s AND seq > %s "
                          "ORDER BY seq, position", (session_id, tenant_id, after_seq))
        return await cur.fetchall()


@dataclass
class TurnRow:
    role: str
    content: str
    tokens: int
    status: str
    model: str | None = None
    ttft_ms: float | None = None
    total_ms: float | None = None
    language: str | None = None
    finish_reason: str | None = None
    tool_calls: list[dict] | None = None
    tool_call_id: str | None = None
    latency: dict[str, float] | None = None    # voice turns: ms per stage


# One statement, one round trip, atomic by itself: insert the session if it is new (its first turn makes
# it exist), else bump its turn counter (the row lock serialises concurrent turns of one session), then
# insert the turn's rows with that seq. The CTEs share one snapshot, which is why a new session starts
# at turn_count 1 instead of being inserted and then updated.
_RECORD_CTES = """
created AS (
    INSERT INTO sessions (id, tenant_id, channel, system_prompt, created_by, turn_count, title)
    SELECT %(sid)s, %(tid)s, %(channel)s, %(system)s, %(created_by)s, 1, %(title)s WHERE %(new)s
    ON CONFLICT (id) DO NOTHING
    RETURNING turn_count AS seq
), bumped AS (
    UPDATE sessions SET turn_count = turn_count + 1, updated_at = now(),
                        title = CASE WHEN title = '' THEN %(title)s ELSE title END
    WHERE id = %(sid)s AND tenant_id = %(tid)s AND NOT EXISTS (SELECT 1 FROM created)
    RETURNING turn_count AS seq
), turn AS (
    SELECT seq FROM created UNION ALL SELECT seq FROM bumped
), inserted AS (
    INSERT INTO turns (session_id, tenant_id, turn_id, seq, position, role, content, tool_calls, tool_call_id,
                       channel, model, tokens, status, ttft_ms, total_ms, language, finish_reason, request_id,
                       content_sha256, latency)
    SELECT %(sid)s, %(tid)s, %(turn_id)s, turn.seq, r.position, r.role, r.content, r.tool_calls, r.tool_call_id,
           %(channel)s, r.model, r.tokens, r.status, r.ttft_ms, r.total_ms, r.language, r.finish_reason, %(request_id)s,
           encode(sha256(convert_to(r.content, 'UTF8')), 'hex'), r.latency
    FROM turn, jsonb_to_recordset(%(rows)s) AS r(position smallint, role text, content text, tool_calls jsonb,
                                                tool_call_id text, model text, tokens int, status text,
                                                ttft_ms real, total_ms real, language text, finish_reason text,
                                                latency jsonb)
    RETURNING seq
)"""
_RECORD_TURN = "WITH " + _RECORD_CTES + "\nSELECT min(seq) FROM inserted"
# The same with the turn's audit entry appended by the statement itself, only if the turn was stored: the
# statement commits alone, so the audit chain's head stays locked only while the server runs it.
_RECORD_TURN_AUDITED = ("WITH " + _RECORD_CTES + "," + audit.APPEND_CTES.format(when="EXISTS (SELECT 1 FROM inserted)")
                        + "\nSELECT (SELECT min(seq) FROM inserted), (SELECT seq FROM moved)")


async def record_turn(conn: AsyncConnection, tenant_id: str, session_id: uuid.UUID, turn_id: str, channel: str,
                      request_id: str, rows: list[TurnRow], title_hint: str = "",
                      new_session: dict[str, Any] | None = None, audit_event: audit.AuditEvent | None = None) -> int:
    """Store one turn whole (all its rows) or not at all; returns its seq. A session created on first use
    (``new_session``) is inserted by the same statement: it exists only if its first turn does. With
    ``audit_event`` the statement appends that entry too (on an autocommit connection it is then a whole
    transaction of its own: the turn and its entry land together or not at all)."""
    params = {
        "sid": session_id, "tid": tenant_id, "channel": channel, "turn_id": turn_id, "request_id": request_id,
        "title": title_hint[:80], "new": new_session is not None,
        "system": (new_session or {}).get("system_prompt"), "created_by": (new_session or {}).get("created_by", ""),
        "rows": Jsonb([{**r.__dict__, "content": storable(r.content), "position": i} for i, r in enumerate(rows)]),
    }
    if audit_event is None:
        cur = await conn.execute(_RECORD_TURN, params)
    else:
        cur = await conn.execute(_RECORD_TURN_AUDITED, {**params, **audit.append_params(audit_event)})
    row = await cur.fetchone()
    if row is None or row[0] is None:
        raise SessionGone(f"session {session_id} is gone")
    return row[0]


async def save_summary(conn: AsyncConnection, tenant_id: str, session_id: uuid.UUID, summary: str, upto_seq: int,
                       tokens: int) -> None:
    """Only moves forward: a slower summariser never overwrites a newer summary."""
    await conn.execute(
        "UPDATE sessions SET summary = %s, summary_upto_seq = %s, summary_tokens = %s "
        "WHERE id = %s AND tenant_id = %s AND summary_upto_seq < %s",
        (storable(summary), upto_seq, tokens, session_id, tenant_id, upto_seq),
    )
