"""The audit log: an append-only, hash-chained record of who did what, provable later.

Each entry is the canonical JSON (sorted keys, no spaces, UTF-8) of its header — seq, time, tenant, actor,
action, session, turn, channel — plus the sha256 of its content (redacted input and output, model ids,
decisions, latencies…); ``hash = sha256(prev_hash || entry)``. Content is kept beside the entry so a
retention purge can drop it and leave a tombstone whose hash still chains. ``verify_rows`` names the first
row that does not check out: an edited entry, edited content, a broken link, a gap or a cut tail.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection

GENESIS_HASH = "0" * 64
ROW_COLUMNS = "seq, ts, tenant_id, action, session_id, entry, content, prev_hash, hash, purged_at"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def chain_hash(prev_hash: str, entry: str) -> str:
    return sha256_hex(prev_hash + entry)


@dataclass
class AuditEvent:
    """What a caller audits. ``content`` must already be redacted (the trust layer's rule for every sink)."""

    action: str                         # turn, key.create, key.revoke, vault.reveal, session.delete, retention.purge…
    actor: str                          # key prefix or OIDC subject; "system" for the appliance itself
    tenant_id: str | None = None
    session_id: str | None = None
    turn_id: str | None = None
    channel: str | None = None
    content: dict[str, Any] = field(default_factory=dict)


def build_entry(seq: int, ts: datetime, event: AuditEvent, content_text: str) -> str:
    return canonical_json({
        "seq": seq, "ts": ts.isoformat(), "tenant_id": event.tenant_id, "actor": event.actor,
        "action": event.action, "session_id": event.session_id, "turn_id": event.turn_id,
        "channel": event.channel, "content_sha256": sha256_hex(content_text),
    })


def next_row(prev_seq: int, prev_hash: str, event: AuditEvent, ts: datetime | None = None) -> dict[str, Any]:
    """The row that follows (prev_seq, prev_hash), computed here; the database computes the same in ``_APPEND``."""
    seq, ts = prev_seq + 1, ts or datetime.now(UTC)
    content = canonical_json(event.content)
    entry = build_entry(seq, ts, event, content)
    return {"seq": seq, "ts": ts, "tenant_id": event.tenant_id, "action": event.action, "session_id": event.session_id,
            "entry": entry, "content": content, "prev_hash": prev_hash, "hash": chain_hash(prev_hash, entry),
            "purged_at": None}


# The append as CTEs: lock the head, build the entry around the next seq, insert it with its hash, move the
# head. The head's row lock is then held only until the surrounding transaction commits. ``{when}`` gates
# it, so another statement can carry it: ``sessions.record_turn`` stores a turn and its entry in one
# statement, which commits by itself (no round trip to the gateway while the head is locked).
APPEND_CTES = """
head AS (SELECT seq + 1 AS seq, hash AS prev FROM audit_head WHERE {when} FOR UPDATE),
next AS (SELECT seq, prev, %(before)s || seq::text || %(after)s AS entry FROM head),
appended AS (
   INSERT INTO audit_log (seq, ts, tenant_id, action, session_id, entry, content, prev_hash, hash)
   SELECT seq, %(ts)s, %(tenant_id)s, %(action)s, %(session_id)s, entry, %(content)s, prev,
          encode(sha256(convert_to(prev || entry, 'UTF8')), 'hex') FROM next
   RETURNING seq, hash),
moved AS (UPDATE audit_head SET seq = appended.seq, hash = appended.hash FROM appended RETURNING appended.seq)"""
# One statement (one round trip fewer than select-then-insert, which is what bounds appends/s: they are
# serialised by design).
_APPEND = "WITH " + APPEND_CTES.format(when="TRUE") + "\nSELECT seq FROM moved"
_SEQ_MARK = '"seq":0,'


def append_params(event: AuditEvent) -> dict[str, Any]:
    """The entry is canonical JSON with seq in the middle (keys are sorted): it is cut around seq's value so
    the database can put the seq it assigns under the lock there. A value can never contain the bare mark:
    quotes inside JSON strings are escaped."""
    ts = datetime.now(UTC)
    content = canonical_json(event.content)
    before, mark, after = build_entry(0, ts, event, content).partition(_SEQ_MARK)
    assert mark, "the entry has no seq key"
    return {"before": before + '"seq":', "after": "," + after, "ts": ts, "tenant_id": event.tenant_id,
            "action": event.action, "session_id": event.session_id, "content": content}


async def append(conn: AsyncConnection, event: AuditEvent) -> int:
    """Append one entry; call inside the transaction that does what it records (so both or neither land).
    The head row's lock serialises appends until that transaction commits — keep it the last statement."""
    cur = await conn.execute(_APPEND, append_params(event))
    return (await cur.fetchone())[0]


def append_sync(conn, event: AuditEvent) -> int:
    """The same, for the CLI and the retention job (a psycopg Connection, inside a transaction)."""
    row = conn.execute(_APPEND, append_params(event)).fetchone()
    return row["seq"] if isinstance(row, dict) else row[0]


async def append_alone(pool, event: AuditEvent) -> int:
    """Append in a transaction of its own (for actions that write nothing else)."""
    async with pool.connection() as conn, conn.transaction():
        return await append(conn, event)


@dataclass
class Verification:
    ok: bool
    checked: int = 0
    tombstones: int = 0
    broken_seq: int | None = None
    reason: str = ""

    def describe(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.checked} entries ({self.tombstones} purged to tombstones)"
        return f"audit chain broken at seq {self.broken_seq}: {self.reason} ({self.checked} entries before it are intact)"


def _check_row(row: dict[str, Any], expected_seq: int, prev_hash: str) -> str | None:
    """Why this row does not check out, or None."""
    if row["seq"] != expected_seq:
        return f"expected seq {expected_seq} next, found {row['seq']} (entries missing)"
    if row["prev_hash"] != prev_hash:
        return "prev_hash does not match the previous entry's hash"
    if chain_hash(prev_hash, row["entry"]) != row["hash"]:
        return "hash does not match the entry (the entry was changed)"
    try:
        entry = json.loads(row["entry"])
    except ValueError:
        return "the entry is not JSON"
    ts = row["ts"].astimezone(UTC).isoformat() if isinstance(row["ts"], datetime) else row["ts"]
    columns = {"seq": row["seq"], "ts": ts, "tenant_id": _str(row["tenant_id"]), "action": row["action"],
               "session_id": _str(row["session_id"])}
    for name, value in columns.items():
        if entry.get(name) != value:
            return f"column {name} does not match the hashed entry"
    if row["content"] is None:
        if row["purged_at"] is None:
            return "content missing without a retention purge"
    elif sha256_hex(row["content"]) != entry.get("content_sha256"):
        return "content does not match its hash in the entry (the content was changed)"
    return None


class ChainVerifier:
    """Walks the chain from seq 1 in order, a row at a time (the log may be larger than memory)."""

    def __init__(self) -> None:
        self.result = Verification(ok=True)
        self._prev_hash, self._expected = GENESIS_HASH, 1

    def check(self, row: dict[str, Any]) -> bool:
        """False at the first row that does not check out (then ``result`` names it)."""
        if not self.result.ok:
            return False
        reason = _check_row(row, self._expected, self._prev_hash)
        if reason:
            self.result = Verification(False, self.result.checked, self.result.tombstones, row["seq"], reason)
            return False
        self.result.checked += 1
        self.result.tombstones += row["content"] is None
        self._prev_hash, self._expected = row["hash"], self._expected + 1
        return True

    def finish(self, head: tuple[int, str] | None) -> Verification:
        if self.result.ok and head is not None and (head[0] != self._expected - 1 or head[1] != self._prev_hash):
            self.result = Verification(False, self.result.checked, self.result.tombstones, self._expected,
                                       f"the chain head says seq {head[0]}, the log ends at {self._expected - 1} "
                                       "(entries removed from the end)")
        return self.result


def verify_rows(rows: Iterable[dict[str, Any]], head: tuple[int, str] | None = None) -> Verification:
    walker = ChainVerifier()
    for row in rows:
        if not walker.check(row):
            break
    return walker.finish(head)


BATCH = 5000
_HEAD = "SELECT seq, hash FROM audit_head"
# Up to the head read first: the head commits with its entry, so every row up to it is visible, and an entry
# appended while the walk runs (the pool and the CLI are autocommit: each page is its own snapshot) is not
# taken for the end of the log moving past its head.
_PAGE = f"SELECT {ROW_COLUMNS} FROM audit_log WHERE seq > %s AND seq <= %s ORDER BY seq LIMIT {BATCH}"
_NO_HEAD = 2**62  # no head row (an empty log): walk whatever is there


def verify_sync(conn) -> Verification:
    """``enclave audit verify``: the whole chain, page by page (a psycopg Connection with dict rows)."""
    head = conn.execute(_HEAD).fetchone()
    upto = head["seq"] if head else _NO_HEAD
    walker, last = ChainVerifier(), 0
    while True:
        rows = conn.execute(_PAGE, (last, upto)).fetchall()
        if not rows or not all(walker.check(r) for r in rows):
            break
        last = rows[-1]["seq"]
    return walker.finish((head["seq"], head["hash"]) if head else None)


async def verify_async(conn: AsyncConnection) -> Verification:
    from psycopg.rows import dict_row

    walker, last = ChainVerifier(), 0
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_HEAD)
        head = await cur.fetchone()
        upto = head["seq"] if head else _NO_HEAD
        while True:
            await cur.execute(_PAGE, (last, upto))
            rows = await cur.fetchall()
            if not rows or not all(walker.check(r) for r in rows):
                break
            last = rows[-1]["seq"]
    return walker.finish((head["seq"], head["hash"]) if head else None)


def entry_out(row: dict[str, Any]) -> dict[str, Any]:
    """An entry as the API and the JSONL export show it."""
    entry = json.loads(row["entry"])
    return {**entry, "content": json.loads(row["content"]) if row["content"] is not None else None,
            "purged": row["content"] is None, "prev_hash": row["prev_hash"], "hash": row["hash"]}


def _str(value: Any) -> str | None:
    return None if value is None else str(value) if isinstance(value, uuid.UUID) else value
