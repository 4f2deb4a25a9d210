"""OIDC bearer tokens, verified against a JWKS kept on the premises.

The JWKS comes from a file (``ENCLAVE_OIDC_JWKS_FILE``) or an internal URL (``ENCLAVE_OIDC_JWKS_URL``):
the URL's host must resolve to a loopback or private address, so a misconfiguration can never make the
gateway fetch keys from the internet. Tokens must carry the configured issuer and audience, a tenant
claim (a tenant's slug) and a roles claim (a string or a list of Enclave roles).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

log = logging.getLogger("enclave.gateway.oidc")
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"]
REFRESH_MIN_INTERVAL_S = 60.0
MAX_AGE_S = 3600.0     # keys are reloaded at least this often, so a key the IdP withdrew stops working


class OidcConfigError(RuntimeError):
    pass


class TokenRejected(Exception):
    """Why a token is not accepted; the message is safe to show the caller."""


def check_internal_url(url: str, setting: str = "ENCLAVE_OIDC_JWKS_URL") -> None:
    """Refuse a URL the gateway would call whose host is not loopback or private (nothing goes outside)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OidcConfigError(f"{setting}={url!r} is not an http(s) URL")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as e:
        raise OidcConfigError(f"{setting}: cannot resolve {parts.hostname} ({e})") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not (address.is_private or address.is_loopback):
            raise OidcConfigError(f"{setting}: {parts.hostname} resolves to {address}, which is not an "
                                  "internal address; Enclave only talks to services on the premises")


class OidcVerifier:
    def __init__(self, *, jwks_file: Path | None, jwks_url: str | None, issuer: str | None, audience: str | None,
                 tenant_claim: str = "tenant", roles_claim: str = "roles", leeway_s: float = 30.0) -> None:
        if jwks_url:
            check_internal_url(jwks_url)
        self.jwks_file, self.jwks_url = jwks_file, jwks_url
        self.issuer, self.audience = issuer, audience
        self.tenant_claim, self.roles_claim, self.leeway_s = tenant_claim, roles_claim, leeway_s
        self._keys: jwt.PyJWKSet | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def configured(self) -> bool:
        return bool(self.jwks_file or self.jwks_url)

    async def load(self) -> None:
        if self.jwks_file:
            data: dict[str, Any] = json.loads(self.jwks_file.read_text())
        else:
            async with httpx.AsyncClient(trust_env=False, timeout=5.0) as c:
                resp = await c.get(self.jwks_url)
                resp.raise_for_status()
                data = resp.json()
        self._keys = jwt.PyJWKSet.from_dict(data)
        self._loaded_at = time.monotonic()
        log.info("OIDC keys loaded", extra={"keys": len(self._keys.keys), "source": str(self.jwks_file or self.jwks_url)})

    async def _key_for(self, kid: str | None) -> jwt.PyJWK:
        if self._keys is None:
            async with self._lock:
                if self._keys is None:
                    await self.load()
        assert self._keys is not None
        if time.monotonic() - self._loaded_at > MAX_AGE_S:
            await self._reload()     # a key the IdP withdrew (compromised, rotated out) stops being trusted
        keys = list(self._keys)
        if kid is None and len(keys) == 1:   # an IdP with one key may name none (after the age check, not before)
            return keys[0]
        try:
            return self._keys[kid or ""]
        except KeyError:
            # A rotated key: reload, at most once a minute (a flood of bad kids must not hammer the IdP).
            await self._reload()
            try:
                return self._keys[kid or ""]
            except KeyError:
                pass
            raise TokenRejected(f"the token's signing key (kid {kid!r}) is not in the configured JWKS") from None

    async def _reload(self) -> None:
        """Reload the keys, at most once per REFRESH_MIN_INTERVAL_S whatever the outcome (the check is repeated
        under the lock, so a burst waits for one fetch; a failed fetch also waits, and the keys in hand stay)."""
        if time.monotonic() - self._loaded_at <= REFRESH_MIN_INTERVAL_S:
            return
        async with self._lock:
            if time.monotonic() - self._loaded_at <= REFRESH_MIN_INTERVAL_S:
                return
            try:
                await self.load()
            except Exception as e:
                self._loaded_at = time.monotonic()
                log.warning("OIDC keys could not be reloaded; keeping the ones in hand", extra={"error": repr(e)[:300]})

    async def verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise TokenRejected(f"not a JWT ({e})") from None
        kid, alg = header.get("kid"), header.get("alg")
        key = await self._key_for(kid)
        try:
            try:
                return self._decode(token, key, alg)
            except jwt.InvalidSignatureError:
                if kid is not None:
                    raise
                # A token that names no key cannot say the IdP rotated it: reload (at most once a minute) and
                # try the new key once, or every login would be refused until a restart.
                before = self._keys
                await self._reload()
                if self._keys is before:
                    raise
                return self._decode(token, await self._key_for(None), alg)
        except jwt.PyJWTError as e:
            raise TokenRejected(f"the token was refused: {e}") from None
        except (TypeError, ValueError) as e:    # PyJWT's word for an alg that does not suit the key (ES256 on RSA)
            raise TokenRejected(f"the token's algorithm {alg!r} does not suit its signing key") from e

    def _decode(self, token: str, key: jwt.PyJWK, alg: str | None) -> dict[str, Any]:
        return jwt.decode(token, key.key, algorithms=[a for a in ALGORITHMS if a == alg],
                          audience=self.audience, issuer=self.issuer, leeway=self.leeway_s,
                          options={"require": ["exp", "sub"] + (["aud"] if self.audience else [])
                                   + (["iss"] if self.issuer else [])})

    def roles_of(self, claims: dict[str, Any]) -> list[str]:
        value = claims.get(self.roles_claim)
        if isinstance(value, str):
            return value.replace(",", " ").split()
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []

