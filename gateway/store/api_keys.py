"""API keys: generated once, shown once, stored as a sha256 only."""

from __future__ import annotations

import hashlib
import re
import secrets

import psycopg

KEY_PREFIX = "enc_"
ROLES = ("user", "agent", "supervisor", "auditor", "admin")   # least to most privileged; the column's CHECK


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """(full secret key, public prefix). The prefix identifies a key in listings without revealing it."""
    public = secrets.token_hex(4)
    return f"{KEY_PREFIX}{public}_{secrets.token_urlsafe(24)}", f"{KEY_PREFIX}{public}"


KEY_FORMAT = re.compile(rf"^{KEY_PREFIX}[0-9a-f]{{8}}_[A-Za-z0-9_-]{{32,}}$")


class KeyImportError(ValueError):
    """The key cannot be imported; the message says why."""


def import_key_row(conn: psycopg.Connection, tenant_id: str, role: str, key: str, label: str = "",
                   created_by: str = "import") -> tuple[str, bool]:
    """Store a key generated elsewhere (a Kubernetes Secret, a vault) — its hash only. Idempotent:
    (prefix, True) when stored now, (prefix, False) when this very key is already there with this role.
    A revoked key stays revoked, and a key held under another role or tenant is refused."""
    if not KEY_FORMAT.match(key):
        raise KeyImportError(f"not an Enclave key: expected {KEY_PREFIX}<8 hex>_<32+ URL-safe characters> "
                             "(make one with `enclave keys generate`)")
    prefix = key[:len(KEY_PREFIX) + 8]
    row = conn.execute("SELECT tenant_id, role, key_sha256, revoked_at FROM api_keys WHERE prefix = %s OR key_sha256 = %s",
                       (prefix, hash_key(key))).fetchone()
    if row is None:
        conn.execute("INSERT INTO api_keys (tenant_id, prefix, key_sha256, role, label, created_by) "
                     "VALUES (%s, %s, %s, %s, %s, %s)", (tenant_id, prefix, hash_key(key), role, label, created_by))
        return prefix, True
    held_tenant, held_role, held_hash, revoked_at = row
    if held_hash != hash_key(key):
        raise KeyImportError(f"another key already has the prefix {prefix}: generate a new one")
    if revoked_at is not None:
        raise KeyImportError(f"key {prefix} was revoked; a revoked key is never brought back — generate a new one")
    if str(held_tenant) != str(tenant_id) or held_role != role:
        raise KeyImportError(f"key {prefix} is already held with another tenant or role ({held_role})")
    return prefix, False


def ensure_tenant(conn: psycopg.Connection, slug: str, name: str) -> str:
    row = conn.execute(
        "INSERT INTO tenants (slug, name) VALUES (%s, %s) ON CONFLICT (slug) DO UPDATE SET name = tenants.name "
        "RETURNING id",
        (slug, name),
    ).fetchone()
    return str(row[0])


def create_key(conn: psycopg.Connection, tenant_id: str, role: str, label: str = "") -> str:
    """A new key's secret (for `enclave up`'s dev key and tests; the CLI uses ``create_key_row``)."""
    return create_key_row(conn, tenant_id, role, label)[0]


def key_is_active(conn: psycopg.Connection, key: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM api_keys WHERE key_sha256 = %s AND revoked_at IS NULL", (hash_key(key),)
    ).fetchone()
    return row is not None


KEY_COLUMNS = "k.id, k.prefix, k.role, k.label, k.rate_limit_per_min, k.created_by, k.created_at, k.revoked_at, t.slug"


# The public prefix is 32 random bits and unique: a rare collision draws another key rather than failing the
# request with a unique violation (ON CONFLICT: the caller's transaction stays usable).
PREFIX_TRIES = 5
_INSERT_KEY = ("INSERT INTO api_keys (tenant_id, prefix, key_sha256, role, label, rate_limit_per_min, created_by) "
               "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (prefix) DO NOTHING RETURNING id, created_at")


def create_key_row(conn: psycopg.Connection, tenant_id: str, role: str, label: str = "",
                   rate_limit_per_min: int | None = None, created_by: str = "") -> tuple[str, str]:
    """(secret key, prefix), on a synchronous connection (the CLI and `enclave up`)."""
    for _ in range(PREFIX_TRIES):
        key, prefix = new_key()
        if conn.execute(_INSERT_KEY, (tenant_id, prefix, hash_key(key), role, label, rate_limit_per_min,
                                      created_by)).fetchone():
            return key, prefix
    raise RuntimeError(f"no free key prefix in {PREFIX_TRIES} tries")


async def acreate_key(conn: psycopg.AsyncConnection, tenant_id: str, role: str, label: str,
                      rate_limit_per_min: int | None, created_by: str) -> tuple[str, dict]:
    for _ in range(PREFIX_TRIES):
        key, prefix = new_key()
        cur = await conn.execute(_INSERT_KEY, (tenant_id, prefix, hash_key(key), role, label, rate_limit_per_min,
                                               created_by))
        if row := await cur.fetchone():
            break
    else:
        raise RuntimeError(f"no free key prefix in {PREFIX_TRIES} tries")
    key_id, created_at = row
    return key, {"id": str(key_id), "prefix": prefix, "role": role, "label": label,
                 "rate_limit_per_min": rate_limit_per_min, "created_by": created_by,
                 "created_at": created_at.isoformat(), "revoked_at": None}


async def alist_keys(conn: psycopg.AsyncConnection, tenant_id: str) -> list[dict]:
    cur = await conn.execute(f"SELECT {KEY_COLUMNS} FROM api_keys k JOIN tenants t ON t.id = k.tenant_id "
                             "WHERE k.tenant_id = %s ORDER BY k.created_at", (tenant_id,))
    return [key_out(r) for r in await cur.fetchall()]


async def aactive_key_role(conn: psycopg.AsyncConnection, tenant_id: str, prefix: str) -> str | None:
    """The role of the tenant's active key with this prefix (locked until the transaction ends), or None."""
    cur = await conn.execute("SELECT role FROM api_keys WHERE tenant_id = %s AND prefix = %s AND revoked_at IS NULL "
                             "FOR UPDATE", (tenant_id, prefix))
    row = await cur.fetchone()
    return row[0] if row else None


async def arevoke_key(conn: psycopg.AsyncConnection, tenant_id: str, prefix: str) -> bool:
    cur = await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE tenant_id = %s AND prefix = %s "
                             "AND revoked_at IS NULL", (tenant_id, prefix))
    return cur.rowcount == 1


def key_out(row: tuple) -> dict:
    key_id, prefix, role, label, rate, created_by, created_at, revoked_at, slug = row
    return {"id": str(key_id), "prefix": prefix, "role": role, "label": label, "rate_limit_per_min": rate,
            "created_by": created_by, "tenant": slug, "created_at": created_at.isoformat(),
            "revoked_at": revoked_at.isoformat() if revoked_at else None}
