"""The PII vault's cryptography: AES-256-GCM for the originals, a keyed HMAC to recognise a value again.

The key comes from ``ENCLAVE_VAULT_KEY`` (base64 of 32 bytes), from a file (``ENCLAVE_VAULT_KEY_FILE``,
default ``VAR_DIR/vault.key``, created by ``enclave up`` with mode 0600), or from a KMS through a hook:
``ENCLAVE_VAULT_KEY_PROVIDER=package.module:factory`` names a callable returning a ``KeyProvider``.
Each ciphertext is bound to its tenant, session and placeholder as associated data, so a row copied
onto another cannot be decrypted there. The HMAC key is derived from the vault key (HKDF), never stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32


class VaultKeyError(RuntimeError):
    """The vault key is missing or malformed: the gateway refuses to start rather than store PII in clear."""


class KeyProvider(Protocol):
    """Where the data key comes from. A KMS hook implements this (e.g. unwrap a data key at start)."""

    def data_key(self) -> bytes: ...


@dataclass(frozen=True)
class StaticKey:
    key: bytes

    def data_key(self) -> bytes:
        return self.key


def _decode(text: str, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError as e:
        raise VaultKeyError(f"{source}: not base64 ({e})") from None
    if len(key) != KEY_BYTES:
        raise VaultKeyError(f"{source}: the key must be {KEY_BYTES} bytes (base64 of them), got {len(key)}")
    return key


def write_new_key(path: Path) -> Path:
    """A fresh random key in ``path`` (mode 0600). Never overwrites: losing a key loses the vault."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode() + "\n")
    return path


def load_key_provider(key_b64: str | None, key_file: Path | None, provider: str | None) -> KeyProvider:
    if provider:
        module, _, attr = provider.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr or "key_provider")
        except (ImportError, AttributeError) as e:
            raise VaultKeyError(f"ENCLAVE_VAULT_KEY_PROVIDER={provider}: cannot load it ({e})") from None
        return factory()
    if key_b64:
        return StaticKey(_decode(key_b64, "ENCLAVE_VAULT_KEY"))
    if key_file is None or not key_file.is_file():
        raise VaultKeyError(f"no vault key: set ENCLAVE_VAULT_KEY, or create {key_file} "
                            "(`enclave up` makes one on first start)")
    return StaticKey(_decode(key_file.read_bytes().decode("ascii", errors="replace"), str(key_file)))


@dataclass(frozen=True)
class Sealed:
    key_id: str
    nonce: bytes
    ciphertext: bytes


SESSION_FINGERPRINT = "s1:"


class VaultCipher:
    def __init__(self, provider: KeyProvider) -> None:
        key = provider.data_key()
        if len(key) != KEY_BYTES:
            raise VaultKeyError(f"the key provider returned {len(key)} bytes, not {KEY_BYTES}")
        self._aead = AESGCM(key)
        self._mac_key = HKDF(hashes.SHA256(), 32, salt=None, info=b"enclave-vault-fingerprint").derive(key)
        self.key_id = hashlib.sha256(b"enclave-key-id" + key).hexdigest()[:12]

    @staticmethod
    def _aad(tenant_id: str, session_id: str, placeholder: str) -> bytes:
        return f"{tenant_id}|{session_id}|{placeholder}".encode()

    def fingerprint(self, tenant_id: str, session_id: str, pii_type: str, canonical: str) -> str:
        """How a session recognises a value it has seen, without decrypting. Scoped to the session: the same
        card in two sessions has unrelated fingerprints, so whoever reads the table (a backup, a DBA) cannot
        link a customer's sessions by it."""
        return self.session_fingerprint(session_id, self.tenant_fingerprint(tenant_id, pii_type, canonical))

    def tenant_fingerprint(self, tenant_id: str, pii_type: str, canonical: str) -> str:
        """The tenant-wide form, which rows stored before session scoping carry."""
        return hmac.new(self._mac_key, f"{tenant_id}|{pii_type}|{canonical}".encode(), hashlib.sha256).hexdigest()

    def session_fingerprint(self, session_id: str, tenant_fingerprint: str) -> str:
        """Keyed over the session and the tenant-wide form (not the value itself), so a stored row's tenant-wide
        fingerprint can be scoped to its session without decrypting anything (``enclave vault
        rescope-fingerprints``). Prefixed, so the two forms can be told apart."""
        mac = hmac.new(self._mac_key, f"{session_id}|{tenant_fingerprint}".encode(), hashlib.sha256)
        return SESSION_FINGERPRINT + mac.hexdigest()

    def seal(self, value: str, tenant_id: str, session_id: str, placeholder: str) -> Sealed:
        nonce = secrets.token_bytes(12)
        return Sealed(self.key_id, nonce, self._aead.encrypt(nonce, value.encode(), self._aad(tenant_id, session_id, placeholder)))

    def open(self, nonce: bytes, ciphertext: bytes, tenant_id: str, session_id: str, placeholder: str) -> str:
        return self._aead.decrypt(nonce, ciphertext, self._aad(tenant_id, session_id, placeholder)).decode()
