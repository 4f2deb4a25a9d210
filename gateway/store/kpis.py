"""Feedback on answers, and the KPIs a supervisor watches, computed from what the turns and hand-offs already
record (no second bookkeeping that could drift from the conversations themselves)."""

from __future__ import annotations

import uuid
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row


async def save_feedback(conn: AsyncConnection, tenant_id: str, session_id: uuid.UUID, turn_id: uuid.UUID,
                        rating: int, comment: str, created_by: str) -> dict[str, Any] | None:
    """One rating per person and answer (a second one replaces the first); None if the turn is not an
    assistant answer of that session."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT 1 FROM turns WHERE tenant_id = %s AND session_id = %s AND turn_id = %s AND role = 'assistant' "
            "LIMIT 1", (tenant_id, session_id, turn_id))
        if await cur.fetchone() is None:
            return None
        await cur.execute(
            "INSERT INTO feedback (tenant_id, session_id, turn_id, rating, comment, created_by) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (turn_id, created_by) DO UPDATE SET rating = excluded.rating, "
            "comment = excluded.comment, created_at = now() RETURNING id, turn_id, rating, comment, created_at",
            (tenant_id, session_id, turn_id, rating, comment, created_by))
        return await cur.fetchone()


async def kpis(conn: AsyncConnection, tenant_id: str, days: int) -> dict[str, Any]:
    """Per channel over the last ``days``: sessions, containment (no hand-off in the window) and escalation rates, CSAT,
    average handle time, and p95 latencies (chat: first token and whole answer; voice: each stage)."""
    since = f"{int(days)} days"
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """
            WITH s AS (
                SELECT s.id, s.channel, min(t.created_at) AS first_at, max(t.created_at) AS last_at,
                       EXISTS (SELECT 1 FROM handoffs h WHERE h.session_id = s.id
                               AND h.created_at >= now() - %(since)s::interval) AS escalated
                FROM sessions s JOIN turns t ON t.session_id = s.id
                WHERE s.tenant_id = %(t)s AND t.created_at >= now() - %(since)s::interval
                GROUP BY s.id, s.channel)
            SELECT channel, count(*) AS sessions, count(*) FILTER (WHERE escalated) AS escalated,
                   avg(extract(epoch FROM last_at - first_at)) AS handle_s
            FROM s GROUP BY channel ORDER BY channel
            """, {"t": tenant_id, "since": since})
        by_channel = {r["channel"]: r for r in await cur.fetchall()}
        await cur.execute(
            """
            SELECT t.channel,
                   count(*) AS answers,
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY t.ttft_ms) AS ttft_p95_ms,
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY t.total_ms) AS total_p95_ms,
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY (t.latency->>'voice_to_voice_ms')::float)
                       AS voice_to_voice_p95_ms,
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY (t.latency->>'stt_ms')::float) AS stt_p95_ms,
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY (t.latency->>'first_token_ms')::float)
                       AS first_token_p95_ms,
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY (t.latency->>'tts_first_byte_ms')::float)
                       AS tts_first_byte_p95_ms
            FROM turns t
            WHERE t.tenant_id = %(t)s AND t.role = 'assistant' AND t.created_at >= now() - %(since)s::interval
            GROUP BY t.channel ORDER BY t.channel
            """, {"t": tenant_id, "since": since})
        latency = {r["channel"]: r for r in await cur.fetchall()}
        await cur.execute(
            """
            SELECT s.channel, count(*) AS ratings, count(*) FILTER (WHERE f.rating > 0) AS positive
            FROM feedback f JOIN sessions s ON s.id = f.session_id
            WHERE f.tenant_id = %(t)s AND f.created_at >= now() - %(since)s::interval GROUP BY s.channel
            """, {"t": tenant_id, "since": since})
        ratings = {r["channel"]: r for r in await cur.fetchall()}
        await cur.execute(
            """
            SELECT count(*) FILTER (WHERE state = 'executed') AS executed,
                   count(*) FILTER (WHERE state = 'executed' AND decided_by IS NULL) AS automated
            FROM actions WHERE tenant_id = %(t)s AND created_at >= now() - %(since)s::interval
            """, {"t": tenant_id, "since": since})
        actions = await cur.fetchone() or {"executed": 0, "automated": 0}
    channels = sorted(set(by_channel) | set(latency) | set(ratings))
    out = []
    for ch in channels:
        s, lat, rat = by_channel.get(ch, {}), latency.get(ch, {}), ratings.get(ch, {})
        sessions, escalated = s.get("sessions", 0), s.get("escalated", 0)
        out.append({
            "channel": ch, "sessions": sessions, "answers": lat.get("answers", 0),
            "containment_rate": _ratio(sessions - escalated, sessions), "escalation_rate": _ratio(escalated, sessions),
            "csat": _ratio(rat.get("positive", 0), rat.get("ratings", 0)), "ratings": rat.get("ratings", 0),
            "avg_handle_s": _round(s.get("handle_s")),
            "p95_ms": {k.removesuffix("_p95_ms"): _round(lat.get(k)) for k in (
                "ttft_p95_ms", "total_p95_ms", "voice_to_voice_p95_ms", "stt_p95_ms", "first_token_p95_ms",
                "tts_first_byte_p95_ms") if lat.get(k) is not None},
        })
    return {"object": "kpis", "days": days, "channels": out,
            "automation_rate": _ratio(actions["automated"], actions["executed"]),
            "actions_executed": actions["executed"]}


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


def _round(v: Any) -> float | None:
    return None if v is None else round(float(v), 1)
