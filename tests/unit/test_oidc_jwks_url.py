"""OIDC keys fetched from an internal JWKS URL (a real loopback server): a rotated key is picked up by one
refetch, a flood of tokens naming unknown keys costs the IdP one fetch, and keys the IdP withdrew stop
working once the keys are older than an hour. (The gateway tests use a JWKS file.)"""

from __future__ import annotations

import asyncio
import json
import time

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway import oidc
from gateway.oidc import OidcVerifier, TokenRejected
from tests.loopback import serving

ISSUER, AUDIENCE = "https://idp.bank.internal", "enclave"


def new_key(kid: str) -> tuple[rsa.RSAPrivateKey, dict]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())), "kid": kid, "alg": "RS256"}


def token(key: rsa.RSAPrivateKey, kid: str) -> str:
    now = int(time.time())
    return jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300}, key,
                      algorithm="RS256", headers={"kid": kid})


class Idp:
    """A JWKS endpoint that counts its fetches; ``keys`` is what it publishes now."""

    def __init__(self, keys: list[dict]) -> None:
        self.keys, self.fetches = keys, 0

    def app(self) -> web.Application:
        async def jwks(_request: web.Request) -> web.Response:
            self.fetches += 1
            return web.json_response({"keys": self.keys})

        app = web.Application()
        app.router.add_get("/jwks", jwks)
        return app


def verifier_at(port: int) -> OidcVerifier:
    return OidcVerifier(jwks_file=None, jwks_url=f"http://127.0.0.1:{port}/jwks", issuer=ISSUER, audience=AUDIENCE)


def rotating_idp() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey, dict, Idp]:
    """(k1, k2, k2's JWK, an IdP publishing k1): set ``idp.keys = [jwk2]`` to rotate."""
    k1, jwk1 = new_key("k1")
    k2, jwk2 = new_key("k2")
    return k1, k2, jwk2, Idp([jwk1])


def test_keys_come_from_the_url_rotate_and_a_flood_of_unknown_kids_costs_one_fetch(monkeypatch) -> None:
    k1, k2, jwk2, idp = rotating_idp()

    async def scenario() -> None:
        async with serving(idp.app()) as port:
            verifier = verifier_at(port)
            assert (await verifier.verify(token(k1, "k1")))["sub"] == "alice" and idp.fetches == 1
            # Fifty tokens naming keys nobody published: refused, and the IdP asked at most once more.
            for i in range(50):
                with pytest.raises(TokenRejected, match="not in the configured JWKS"):
                    await verifier.verify(token(k2, f"bogus-{i}"))
            assert idp.fetches == 1            # loaded under a minute ago: no refetch at all
            # The IdP rotates to k2; a minute on, a token signed with it is accepted after one refetch.
            idp.keys = [jwk2]
            monkeypatch.setattr(oidc, "REFRESH_MIN_INTERVAL_S", 0.0)
            assert (await verifier.verify(token(k2, "k2")))["sub"] == "alice" and idp.fetches == 2
            # k1 is gone from the IdP: once the keys in hand are older than an hour, k1 is no longer trusted.
            monkeypatch.setattr(oidc, "MAX_AGE_S", 0.0)
            with pytest.raises(TokenRejected):
                await verifier.verify(token(k1, "k1"))

    asyncio.run(scenario())


def test_a_failed_refetch_keeps_the_keys_in_hand(monkeypatch) -> None:
    k1, jwk1 = new_key("k1")
    idp = Idp([jwk1])

    async def scenario() -> None:
        async with serving(idp.app()) as port:
            verifier = verifier_at(port)
            await verifier.verify(token(k1, "k1"))
        # the IdP is down now; the hourly reload fails, and the key in hand still verifies
        monkeypatch.setattr(oidc, "MAX_AGE_S", 0.0)
        monkeypatch.setattr(oidc, "REFRESH_MIN_INTERVAL_S", 0.0)
        assert (await verifier.verify(token(k1, "k1")))["sub"] == "alice"

    asyncio.run(scenario())


def unnamed_token(key, alg: str = "RS256") -> str:
    """What an IdP with a single key may issue: no kid in the header."""
    now = int(time.time())
    return jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300}, key, algorithm=alg)


def test_tokens_without_a_kid_follow_a_rotation_and_a_withdrawn_key(monkeypatch) -> None:
    """The single-key shortcut came before the hourly age check: a key the IdP withdrew kept working until a
    restart, and after a rotation every login was refused."""
    k1, k2, jwk2, idp = rotating_idp()

    async def scenario() -> None:
        async with serving(idp.app()) as port:
            verifier = verifier_at(port)
            assert (await verifier.verify(unnamed_token(k1)))["sub"] == "alice"
            idp.keys = [jwk2]                                   # the IdP rotates
            monkeypatch.setattr(oidc, "REFRESH_MIN_INTERVAL_S", 0.0)
            assert (await verifier.verify(unnamed_token(k2)))["sub"] == "alice"    # one refetch, then accepted
            monkeypatch.setattr(oidc, "MAX_AGE_S", 0.0)
            with pytest.raises(TokenRejected):
                await verifier.verify(unnamed_token(k1))         # the withdrawn key no longer works

    asyncio.run(scenario())


def test_an_algorithm_that_does_not_suit_the_key_is_refused_not_a_crash() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    _, jwk1 = new_key("k1")
    idp = Idp([jwk1])
    attacker = ec.generate_private_key(ec.SECP256R1())

    async def scenario() -> None:
        async with serving(idp.app()) as port:
            with pytest.raises(TokenRejected, match="does not suit"):
                await verifier_at(port).verify(unnamed_token(attacker, "ES256"))

    asyncio.run(scenario())
