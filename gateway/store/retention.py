"""Retention: each tenant's policy (days) for chat turns, voice/SIP transcripts and the PII vault.

A purge deletes content, never rows: a turn keeps its metadata and ``content_sha256``; an audit entry
keeps its hashed header (which holds the content's sha256), so ``enclave audit verify`` still walks the
whole chain; a vault entry keeps its placeholder, not the ciphertext nor the fingerprint. It runs as the
database owner (``enclave retention purge``, and hourly in the gateway service) because the gateway's role
may not touch the audit log; the purge itself is audited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from gateway.store.audit import AuditEvent, append_sync

CHAT_CHANNELS = ("chat", "api")
TRANSCRIPT_CHANNELS = ("voice", "sip")


@dataclass
class TenantPurge:
    tenant: str
    turns: int = 0
    transcripts: int = 0
    audit_entries: int = 0
    sessions: int = 0
    vault_entries: int = 0
    records: int = 0          # what the dialogue derived from those turns: actions, hand-offs, review items, state

    @property
    def total(self) -> int:
        return self.turns + self.transcripts + self.audit_entries + self.sessions + self.vault_entries + self.records


@dataclass
class PurgeReport:
    as_of: datetime
    tenants: list[TenantPurge] = field(default_factory=list)


def _purge_channels(conn: psycopg.Connection, tenant_id, channels: tuple[str, ...], cutoff: datetime,
                    now: datetime) -> tuple[int, int, int]:
    turns = conn.execute(
        "UPDATE turns SET content = '', tool_calls = NULL, purged_at = %s "
        "WHERE tenant_id = %s AND channel = ANY(%s) AND created_at < %s AND purged_at IS NULL",
        (now, tenant_id, list(channels), cutoff)).rowcount
    audited = conn.execute(
        "UPDATE audit_log SET content = NULL, purged_at = %s WHERE tenant_id = %s AND ts < %s AND content IS NOT NULL "
        "AND action = 'chat.turn' AND (entry::jsonb ->> 'channel') = ANY(%s)",
        (now, tenant_id, cutoff, list(channels))).rowcount
    # Feedback comments are text about those turns: they go with them, by the turn's age (a rating given again
    # later is newer than its turn), and the rating stays for CSAT.
    conn.execute(
        "UPDATE feedback f SET comment = '' WHERE f.tenant_id = %s AND f.comment <> '' AND EXISTS (SELECT 1 FROM "
        "turns t WHERE t.session_id = f.session_id AND t.turn_id = f.turn_id AND t.channel = ANY(%s) "
        "AND t.created_at < %s)",
        (tenant_id, list(channels), cutoff))
    # A session left with no live turn loses what was derived from them (summary, title).
    sessions = conn.execute(
        "UPDATE sessions s SET summary = NULL, summary_tokens = 0, title = '' WHERE s.tenant_id = %s "
        "AND s.channel = ANY(%s) AND s.updated_at < %s AND (s.summary IS NOT NULL OR s.title <> '') "
        "AND NOT EXISTS (SELECT 1 FROM turns t WHERE t.session_id = s.id AND t.purged_at IS NULL)",
        (tenant_id, list(channels), cutoff)).rowcount
    return turns, audited, sessions


# Rows of the channel's sessions, and (for the chat policy) of sessions since deleted, whose channel is gone.
_OF_CHANNEL = ("(EXISTS (SELECT 1 FROM sessions s WHERE s.id = {col} AND s.channel = ANY(%(ch)s)) OR "
               "(%(orphans)s AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = {col})))")


def _purge_records(conn: psycopg.Connection, tenant_id, channels: tuple[str, ...], cutoff: datetime,
                   now: datetime) -> tuple[int, int]:
    """Text the dialogue derived from purged turns goes with them: an action's arguments and result, a
    hand-off's summary and entities, a review item's detail and note, the session's working memory, and the
    audit entries that quote them. Only what is settled: an open hand-off or a waiting action keeps its text."""
    p = {"t": tenant_id, "ch": list(channels), "cutoff": cutoff, "now": now, "orphans": channels == CHAT_CHANNELS}
    n = conn.execute(
        "UPDATE actions a SET args = '{}'::jsonb, result = NULL WHERE a.tenant_id = %(t)s AND a.updated_at < %(cutoff)s "
        "AND a.state IN ('executed', 'failed', 'rejected') AND (a.args <> '{}'::jsonb OR a.result IS NOT NULL) AND "
        + _OF_CHANNEL.format(col="a.session_id"), p).rowcount
    n += conn.execute(
        "UPDATE handoffs h SET summary = '', entities = '{}'::jsonb WHERE h.tenant_id = %(t)s AND h.state = 'closed' "
        "AND h.created_at < %(cutoff)s AND (h.summary <> '' OR h.entities <> '{}'::jsonb) AND "
        + _OF_CHANNEL.format(col="h.session_id"), p).rowcount
    n += conn.execute(
        "UPDATE review_items r SET detail = '{}'::jsonb, note = NULL WHERE r.tenant_id = %(t)s AND r.state <> 'open' "
        "AND r.created_at < %(cutoff)s AND (r.detail <> '{}'::jsonb OR r.note IS NOT NULL) AND "
        + _OF_CHANNEL.format(col="r.session_id"), p).rowcount
    n += conn.execute(
        "DELETE FROM dialogue_states d WHERE d.tenant_id = %(t)s AND d.updated_at < %(cutoff)s AND "
        + _OF_CHANNEL.format(col="d.session_id"), p).rowcount
    audited = conn.execute(
        "UPDATE audit_log l SET content = NULL, purged_at = %(now)s WHERE l.tenant_id = %(t)s AND l.ts < %(cutoff)s "
        "AND l.content IS NOT NULL AND l.session_id IS NOT NULL "
        "AND (l.action LIKE 'action.%%' OR l.action LIKE 'handoff.%%' OR l.action LIKE 'review.%%') AND "
        + _OF_CHANNEL.format(col="l.session_id"), p).rowcount
    return n, audited


def purge(conn: psycopg.Connection, as_of: datetime | None = None, dry_run: bool = False) -> PurgeReport:
    """Apply every tenant's policy as of ``as_of`` (default now). ``dry_run`` counts and rolls back."""
    now = as_of or datetime.now(UTC)
    report = PurgeReport(now)
    policies = conn.execute(
        "SELECT id, slug, retention_turns_days, retention_transcripts_days, retention_vault_days FROM tenants "
        "WHERE coalesce(retention_turns_days, retention_transcripts_days, retention_vault_days) IS NOT NULL "
        "ORDER BY slug").fetchall()
    for tenant_id, slug, turns_days, transcripts_days, vault_days in policies:
        done = TenantPurge(slug)
        with conn.transaction():
            for days, channels in ((turns_days, CHAT_CHANNELS), (transcripts_days, TRANSCRIPT_CHANNELS)):
                if not days:
                    continue
                cutoff = now - timedelta(days=days)
                n, a, s = _purge_channels(conn, tenant_id, channels, cutoff, now)
                if channels == CHAT_CHANNELS:
                    done.turns = n
                else:
                    done.transcripts = n
                records, audited = _purge_records(conn, tenant_id, channels, cutoff, now)
                done.audit_entries += a + audited
                done.sessions += s
                done.records += records
            if vault_days:
                # A session with an action still to run keeps its values: the runner restores the tool's
                # arguments from them after approval (days later, maybe), and placeholders are no IBAN.
                done.vault_entries = conn.execute(
                    "UPDATE pii_vault SET nonce = NULL, ciphertext = NULL, fingerprint = NULL, purged_at = %s "
                    "WHERE tenant_id = %s AND created_at < %s AND ciphertext IS NOT NULL AND session_id NOT IN ("
                    "  SELECT session_id FROM actions WHERE tenant_id = %s AND state IN "
                    "  ('pending', 'awaiting_approval', 'approved', 'executing', 'running'))",
                    (now, tenant_id, now - timedelta(days=vault_days), tenant_id)).rowcount
            if done.total and not dry_run:
                append_sync(conn, AuditEvent("retention.purge", "system", str(tenant_id), content={
                    "as_of": now.isoformat(), "turns": done.turns, "transcripts": done.transcripts,
                    "audit_entries": done.audit_entries, "sessions": done.sessions,
                    "vault_entries": done.vault_entries, "records": done.records,
                    "policy_days": {"turns": turns_days, "transcripts": transcripts_days, "vault": vault_days}}))
            if dry_run:
                raise psycopg.Rollback()   # leaves the block without committing; the counts stay
        report.tenants.append(done)
    return report
