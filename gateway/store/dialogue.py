"""Postgres for the dialogue layer: per-session state, idempotent actions, the review queue, hand-offs.

Every query takes the tenant. An action's state only moves forward through conditional UPDATEs
(``WHERE state = …``), so two gateways, a retry or a restart can race and still execute a call once.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

ACTION_COLUMNS = ("id, tenant_id, session_id, idempotency_key, tool, side_effect, args, state, risk_reason, result, "
                  "error_code, attempts, flow, step, reported, decided_by, created_at, updated_at")


# -- dialogue state -------------------------------------------------------------------------------------------

async def load_state(conn: AsyncConnection, tenant_id: str, session_id) -> dict[str, Any] | None:
    cur = await conn.execute("SELECT state FROM dialogue_states WHERE tenant_id = %s AND session_id = %s",
                             (tenant_id, session_id))
    row = await cur.fetchone()
    return row[0] if row else None


async def save_state(conn: AsyncConnection, tenant_id: str, session_id, state: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO dialogue_states (session_id, tenant_id, state) VALUES (%s, %s, %s) "
        "ON CONFLICT (session_id) DO UPDATE SET state = EXCLUDED.state, updated_at = now() "
        "WHERE dialogue_states.tenant_id = EXCLUDED.tenant_id", (session_id, tenant_id, Jsonb(state)))


async def set_mode(conn: AsyncConnection, tenant_id: str, session_id, mode: str) -> bool:
    cur = await conn.execute("UPDATE sessions SET mode = %s, updated_at = now() WHERE tenant_id = %s AND id = %s",
                             (mode, tenant_id, session_id))
    return cur.rowcount == 1


# -- actions --------------------------------------------------------------------------------------------------

async def insert_action(conn: AsyncConnection, tenant_id: str, session_id, key: str, tool: str, side_effect: str,
                        args: dict, state: str, *, risk_reason: str | None, flow: str | None, step: int | None,
                        report: dict | None = None) -> tuple[dict[str, Any], bool]:
    """(the action, created now?). A second request with the same key gets the first one's row."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"INSERT INTO actions (tenant_id, session_id, idempotency_key, tool, side_effect, args, state, risk_reason, "
            f"flow, step, result) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            f"ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING {ACTION_COLUMNS}",
            (tenant_id, session_id, key, tool, side_effect, Jsonb(args), state, risk_reason, flow, step,
             Jsonb({"report": report}) if report else None))
        row = await cur.fetchone()
        if row is not None:
            return row, True
        await cur.execute(f"SELECT {ACTION_COLUMNS} FROM actions WHERE tenant_id = %s AND idempotency_key = %s",
                          (tenant_id, key))
        return await cur.fetchone(), False


async def get_action(conn: AsyncConnection, tenant_id: str | None, action_id) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        if tenant_id is None:
            await cur.execute(f"SELECT {ACTION_COLUMNS} FROM actions WHERE id = %s", (action_id,))
        else:
            await cur.execute(f"SELECT {ACTION_COLUMNS} FROM actions WHERE tenant_id = %s AND id = %s",
                              (tenant_id, action_id))
        return await cur.fetchone()


async def find_action_by_key(conn: AsyncConnection, key: str) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {ACTION_COLUMNS} FROM actions WHERE idempotency_key = %s", (key,))
        return await cur.fetchone()


async def list_actions(conn: AsyncConnection, tenant_id: str, session_id) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {ACTION_COLUMNS} FROM actions WHERE tenant_id = %s AND session_id = %s "
                          "ORDER BY created_at", (tenant_id, session_id))
        return await cur.fetchall()


async def claim(conn: AsyncConnection, action_id, lease_s: float) -> dict[str, Any] | None:
    """approved → executing (or an executing row whose lease ran out: its executor died; or a running one
    due for a recheck: asked again with its key). Only one caller gets the row back; everyone else gets None."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"UPDATE actions SET state = 'executing', attempts = attempts + 1, updated_at = now(), "
            f"lease_until = now() + make_interval(secs => %s) WHERE id = %s AND (state = 'approved' OR "
            f"(state IN ('executing', 'running') AND lease_until < now())) RETURNING {ACTION_COLUMNS}", (lease_s, action_id))
        return await cur.fetchone()


async def extend_lease(conn: AsyncConnection, action_id, attempt: int, lease_s: float) -> bool:
    """Keep claim number ``attempt`` of an executing action for ``lease_s`` more. False when the claim is no
    longer ours (the lease ran out and another runner took the action over): then we must not call the tool."""
    cur = await conn.execute(
        "UPDATE actions SET lease_until = now() + make_interval(secs => %s) WHERE id = %s AND state = 'executing' "
        "AND attempts = %s RETURNING id", (lease_s, action_id, attempt))
    return await cur.fetchone() is not None


async def runnable(conn: AsyncConnection, tenant_ids: list[str], limit: int = 20) -> list[uuid.UUID]:
    """Approved actions nobody executes, executing ones whose executor's lease ran out, and running ones due
    for a recheck — of the tenants whose packs (and so tools) this gateway has."""
    cur = await conn.execute(
        "SELECT id FROM actions WHERE tenant_id = ANY(%s::uuid[]) AND (state = 'approved' OR "
        "(state IN ('executing', 'running') AND lease_until < now())) ORDER BY updated_at LIMIT %s", (tenant_ids, limit))
    return [r[0] for r in await cur.fetchall()]


async def finish(conn: AsyncConnection, action_id, state: str, result: dict | None, error_code: str | None,
                 *, from_states: tuple[str, ...] = ("executing",), attempt: int | None = None,
                 recheck_s: float | None = None) -> dict[str, Any] | None:
    """``attempt``: settle only if that claim is still the current one (an executor whose lease ran out and
    was taken over must not overwrite the new executor's outcome). ``recheck_s``: when a ``running`` action
    is asked about again (see ``claim``); without it a running action waits for its webhook alone."""
    recheck = recheck_s if state == "running" else None
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"UPDATE actions SET state = %s, result = COALESCE(result, '{{}}'::jsonb) || %s, error_code = %s, "
            f"updated_at = now(), lease_until = now() + make_interval(secs => %s) WHERE id = %s AND state = ANY(%s) "
            f"AND (%s::int IS NULL OR attempts = %s::int) RETURNING {ACTION_COLUMNS}",
            (state, Jsonb(result or {}), error_code, recheck, action_id, list(from_states), attempt, attempt))
        return await cur.fetchone()


async def decide(conn: AsyncConnection, tenant_id: str, action_id, approve: bool, who: str) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"UPDATE actions SET state = %s, decided_by = %s, updated_at = now() WHERE tenant_id = %s AND id = %s "
            f"AND state = 'awaiting_approval' RETURNING {ACTION_COLUMNS}",
            ("approved" if approve else "rejected", who, tenant_id, action_id))
        return await cur.fetchone()


async def mark_reported(conn: AsyncConnection, action_id) -> bool:
    cur = await conn.execute("UPDATE actions SET reported = true WHERE id = %s AND NOT reported", (action_id,))
    return cur.rowcount == 1


async def withdraw_session_work(conn: AsyncConnection, tenant_id: str, session_id, who: str) -> dict[str, int]:
    """What a deleted session leaves waiting on staff, ended with it (call in the deleting transaction).

    An action still awaiting approval is rejected as withdrawn (approved later, it would have moved the
    money of a conversation its customer deleted, with nowhere left to tell them) and its review item is
    dismissed; an open hand-off is closed. Actions already approved or running go on: they were decided.
    The rows stay, as records."""
    cur = await conn.execute(
        "UPDATE actions SET state = 'rejected', error_code = 'session_deleted', decided_by = %s, reported = true, "
        "updated_at = now() WHERE tenant_id = %s AND session_id = %s AND state = 'awaiting_approval' RETURNING id",
        (who, tenant_id, session_id))
    withdrawn = [row[0] for row in await cur.fetchall()]
    items = await conn.execute(
        "UPDATE review_items SET state = 'dismissed', decided_by = %s, decided_at = now(), "
        "note = 'withdrawn: the session was deleted' WHERE tenant_id = %s AND action_id = ANY(%s) AND state = 'open'",
        (who, tenant_id, withdrawn))
    handoffs = await conn.execute(
        "UPDATE handoffs SET state = 'closed', closed_at = now() WHERE tenant_id = %s AND session_id = %s "
        "AND state <> 'closed'", (tenant_id, session_id))
    return {"withdrawn_actions": len(withdrawn), "dismissed_review_items": items.rowcount,
            "closed_handoffs": handoffs.rowcount}


# -- review queue ---------------------------------------------------------------------------------------------

async def add_review_item(conn: AsyncConnection, tenant_id: str, kind: str, reason: str, *, session_id=None,
                          action_id=None, detail: dict | None = None) -> uuid.UUID:
    cur = await conn.execute(
        "INSERT INTO review_items (tenant_id, kind, session_id, action_id, reason, detail) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (tenant_id, kind, session_id, action_id, reason, Jsonb(detail or {})))
    return (await cur.fetchone())[0]


async def list_review_items(conn: AsyncConnection, tenant_id: str, state: str | None, kind: str | None,
                            limit: int, offset: int) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT r.id, r.kind, r.session_id, r.action_id, r.reason, r.detail, r.state, r.decided_by, r.decided_at, "
            "r.note, r.created_at, a.tool, a.args, a.state AS action_state FROM review_items r "
            "LEFT JOIN actions a ON a.id = r.action_id WHERE r.tenant_id = %s AND (%s::text IS NULL OR r.state = %s) "
            "AND (%s::text IS NULL OR r.kind = %s) ORDER BY r.created_at LIMIT %s OFFSET %s",
            (tenant_id, state, state, kind, kind, limit, offset))
        return await cur.fetchall()


async def get_review_item(conn: AsyncConnection, tenant_id: str, item_id) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM review_items WHERE tenant_id = %s AND id = %s", (tenant_id, item_id))
        return await cur.fetchone()


async def close_review_item(conn: AsyncConnection, tenant_id: str, item_id, state: str, who: str,
                            note: str | None) -> bool:
    cur = await conn.execute(
        "UPDATE review_items SET state = %s, decided_by = %s, decided_at = now(), note = %s "
        "WHERE tenant_id = %s AND id = %s AND state = 'open'", (state, who, note, tenant_id, item_id))
    return cur.rowcount == 1


# -- hand-offs ------------------------------------------------------------------------------------------------

HANDOFF_COLUMNS = ("id, session_id, reason, intent, entities, summary, summary_by, state, agent, created_at, "
                   "accepted_at, closed_at")


async def open_handoff(conn: AsyncConnection, tenant_id: str, session_id, reason: str, intent: str | None,
                       entities: dict, summary: str, summary_by: str) -> uuid.UUID | None:
    """None when the session already has an open hand-off (one at a time)."""
    cur = await conn.execute(
        "INSERT INTO handoffs (tenant_id, session_id, reason, intent, entities, summary, summary_by) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
        (tenant_id, session_id, reason, intent, Jsonb(entities), summary, summary_by))
    row = await cur.fetchone()
    return row[0] if row else None


async def list_handoffs(conn: AsyncConnection, tenant_id: str, state: str | None, limit: int, offset: int) -> list[dict]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {HANDOFF_COLUMNS} FROM handoffs WHERE tenant_id = %s AND "
                          "(%s::text IS NULL OR state = %s) ORDER BY created_at LIMIT %s OFFSET %s",
                          (tenant_id, state, state, limit, offset))
        return await cur.fetchall()


async def get_handoff(conn: AsyncConnection, tenant_id: str, handoff_id) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {HANDOFF_COLUMNS} FROM handoffs WHERE tenant_id = %s AND id = %s",
                          (tenant_id, handoff_id))
        return await cur.fetchone()


async def accept_handoff(conn: AsyncConnection, tenant_id: str, handoff_id, agent: str) -> dict | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"UPDATE handoffs SET state = 'active', agent = %s, accepted_at = now() WHERE tenant_id = %s "
                          f"AND id = %s AND state = 'queued' RETURNING {HANDOFF_COLUMNS}", (agent, tenant_id, handoff_id))
        return await cur.fetchone()


async def close_handoff(conn: AsyncConnection, tenant_id: str, handoff_id, agent: str | None = None) -> dict | None:
    """Close it (None if it was closed already, or, with ``agent``, if another colleague holds it active: the
    check is in the UPDATE, so an accept in between cannot slip past it)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"UPDATE handoffs SET state = 'closed', closed_at = now() WHERE tenant_id = %s AND id = %s "
                          f"AND state <> 'closed' AND (%s::text IS NULL OR state <> 'active' OR agent = %s) "
                          f"RETURNING {HANDOFF_COLUMNS}", (tenant_id, handoff_id, agent, agent))
        return await cur.fetchone()
