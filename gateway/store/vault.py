"""The PII vault table: sealed originals of the placeholders, per tenant and session."""

from __future__ import annotations

from collections.abc import Callable

from psycopg import AsyncConnection, Connection

from gateway.safety.redact import SessionVault, VaultEntry
from gateway.safety.vault import SESSION_FINGERPRINT, VaultCipher


async def load_session_entries(conn: AsyncConnection, tenant_id: str, session_id) -> list[tuple]:
    cur = await conn.execute(
        "SELECT placeholder, pii_type, fingerprint, nonce, ciphertext FROM pii_vault "
        "WHERE tenant_id = %s AND session_id = %s", (tenant_id, session_id))
    return await cur.fetchall()


async def session_vault(conn: AsyncConnection, tenant_id: str, session_id) -> SessionVault:
    """The session's placeholders as stored: redact against it so a known value keeps its placeholder."""
    return SessionVault.from_rows(tenant_id, str(session_id), await load_session_entries(conn, tenant_id, session_id))


async def locked_session_vault(conn: AsyncConnection, tenant_id: str, session_id) -> SessionVault:
    """The vault as committed, read under the session's row lock (call inside a transaction). A writer that
    may seal new values (a notice, an action's outcome, the summary, a comment) takes turns with the session's
    turns, which reconcile under the same lock: no two writers number two values alike."""
    await conn.execute("SELECT 1 FROM sessions WHERE id = %s AND tenant_id = %s FOR UPDATE", (session_id, tenant_id))
    return await session_vault(conn, tenant_id, session_id)


async def store_entries(conn: AsyncConnection, tenant_id: str, session_id, entries: list[VaultEntry]) -> int:
    """Insert new entries; an existing (session, placeholder) or (session, fingerprint) is left as stored.
    A turn reconciles its entries with the committed vault first (``Redactor.reconcile``, under the session's
    row lock), and the other writers read the vault under that lock (``locked_session_vault``), so a conflict
    is only the same value under the same number."""
    if not entries:
        return 0
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO pii_vault (tenant_id, session_id, placeholder, pii_type, fingerprint, key_id, nonce, ciphertext) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(tenant_id, session_id, e.placeholder, e.pii_type, e.fingerprint, e.sealed.key_id, e.sealed.nonce,
              e.sealed.ciphertext) for e in entries if e.sealed is not None])
    return len(entries)


async def find_entry(conn: AsyncConnection, tenant_id: str, session_id, placeholder: str) -> tuple | None:
    cur = await conn.execute(
        "SELECT pii_type, nonce, ciphertext, purged_at FROM pii_vault "
        "WHERE tenant_id = %s AND session_id = %s AND placeholder = %s", (tenant_id, session_id, placeholder))
    return await cur.fetchone()


def rescope_fingerprints(conn: Connection, cipher: VaultCipher, batch: int = 2000,
                         on_batch: Callable[[int], None] | None = None) -> int:
    """Scope to its session every fingerprint still in the tenant-wide form (rows stored before session
    scoping), so equal values no longer link a tenant's sessions. Runs as the database owner (the gateway's
    role may not change vault rows); nothing is decrypted. Each batch commits by itself, so a stop halfway
    loses nothing and a re-run carries on. Returns how many rows were changed."""
    done = 0
    while True:
        with conn.transaction():
            rows = conn.execute(
                "SELECT id, session_id, fingerprint FROM pii_vault WHERE fingerprint IS NOT NULL "
                "AND left(fingerprint, %s) <> %s ORDER BY id LIMIT %s FOR UPDATE",
                (len(SESSION_FINGERPRINT), SESSION_FINGERPRINT, batch)).fetchall()
            if not rows:
                return done
            with conn.cursor() as cur:
                cur.executemany("UPDATE pii_vault SET fingerprint = %s WHERE id = %s",
                                [(cipher.session_fingerprint(str(session_id), fp), row_id) for row_id, session_id, fp in rows])
        done += len(rows)
        if on_batch is not None:
            on_batch(done)
