"""API keys: generated once, shown once, stored as a sha256 only."""

from __future__ import annotations

import hashlib
import secrets

import psycopg

KEY_PREFIX = "enc_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """(full secret key, public prefix). The prefix identifies a key in listings without revealing it."""
    public = secrets.token_hex(4)
    return f"{KEY_PREFIX}{public}_{secrets.token_urlsafe(24)}", f"{KEY_PREFIX}{public}"


def ensure_tenant(conn: psycopg.Connection, slug: str, name: str) -> str:
    row = conn.execute(
        "INSERT INTO tenants (slug, name) VALUES (%s, %s) ON CONFLICT (slug) DO UPDATE SET name = tenants.name "
        "RETURNING id",
        (slug, name),
    ).fetchone()
    return str(row[0])


def create_key(conn: psycopg.Connection, tenant_id: str, role: str, label: str = "") -> str:
    key, prefix = new_key()
    conn.execute(
        "INSERT INTO api_keys (tenant_id, prefix, key_sha256, role, label) VALUES (%s, %s, %s, %s, %s)",
        (tenant_id, prefix, hash_key(key), role, label),
    )
    return key


def key_is_active(conn: psycopg.Connection, key: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM api_keys WHERE key_sha256 = %s AND revoked_at IS NULL", (hash_key(key),)
    ).fetchone()
    return row is not None
