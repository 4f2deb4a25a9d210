"""Optional SIP digest authentication for the server side (RFC 3261 §22, RFC 2617, RFC 7616; qop=auth).

Nonces are stateless (timestamp, salt and an HMAC over both), so the listener keeps no table that a flood could
grow, and a restart does not invalidate challenges already sent. The price is that a captured Authorization can be
replayed for the same method until its nonce expires (no nonce-count tracking); keep ``nonce_ttl_s`` short.
Everything here is pure: no sockets, no event loop, the clock is injected.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.sip.message import SipMessage, response_to

__all__ = ["ALGORITHMS", "AuthResult", "DigestAuth", "client_authorization", "parse_digest_params"]

ALGORITHMS: dict[str, str] = {"MD5": "md5", "SHA-256": "sha256"}  # RFC 7616 name -> hashlib name
MAX_HEADER_LEN = 4096  # real credentials are a few hundred bytes; anything longer is an attack or a bug
MAX_PARAMS = 32

_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_NC = re.compile(r"[0-9A-Fa-f]{8}")
_MAC_HEX = 32  # truncated HMAC-SHA256: 128 bits is plenty against forgery within a TTL


@dataclass(frozen=True)
class AuthResult:
    """Outcome of :meth:`DigestAuth.check`; ``reason`` is for logs only, never sent to the peer."""

    ok: bool
    user: str | None
    stale: bool
    reason: str


def _hash(algorithm: str, text: str) -> str:
    # surrogatepass: a hand-built message may carry lone surrogates; hashing must not raise on them.
    return hashlib.new(ALGORITHMS[algorithm], text.encode("utf-8", "surrogatepass")).hexdigest()


def _canonical_algorithm(name: str) -> str | None:
    upper = name.strip().upper()
    return upper if upper in ALGORITHMS else None


def _quote(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("CR/LF not allowed in a digest parameter")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_digest_params(value: str) -> dict[str, str]:
    """Parameters of a ``Digest k=v, k="v"`` credentials or challenge value, names lower-cased.

    Quote-aware (commas and escaped quotes inside quoted strings are kept). Raises ValueError on anything
    malformed: wrong scheme, a bad name, an unterminated quote, a duplicate parameter, too many or too long.
    """
    if len(value) > MAX_HEADER_LEN:
        raise ValueError("header too long")
    text = value.strip()
    scheme, _, rest = text.partition(" ")
    if scheme.lower() != "digest":
        raise ValueError("not a Digest header")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while True:
        while i < n and rest[i] in " \t,":
            i += 1
        if i >= n:
            return params
        match = _TOKEN.match(rest, i)
        if not match:
            raise ValueError("bad parameter name")
        name = match.group().lower()
        i = match.end()
        while i < n and rest[i] in " \t":
            i += 1
        if i >= n or rest[i] != "=":
            raise ValueError("parameter without '='")
        i += 1
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(rest[i])
                i += 1
            if i >= n:
                raise ValueError("unterminated quoted string")
            i += 1
            param = "".join(chars)
        else:
            match = _TOKEN.match(rest, i)
            if not match:
                raise ValueError("bad parameter value")
            param = match.group()
            i = match.end()
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] != ",":
            raise ValueError("junk after parameter")
        if name in params:
            raise ValueError(f"duplicate parameter {name}")
        params[name] = param
        if len(params) > MAX_PARAMS:
            raise ValueError("too many parameters")


def _digest_response(algorithm: str, ha1: str, nonce: str, method: str, uri: str, qop: str | None, nc: str, cnonce: str) -> str:
    ha2 = _hash(algorithm, f"{method}:{uri}")
    if qop is None:
        return _hash(algorithm, f"{ha1}:{nonce}:{ha2}")
    return _hash(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def client_authorization(
    username: str,
    password: str,
    realm: str,
    nonce: str,
    method: str,
    uri: str,
    *,
    algorithm: str = "MD5",
    qop: str | None = "auth",
    nc: int = 1,
    cnonce: str | None = None,
) -> str:
    """Authorization header value a UAC would send for a challenge; used by tests and the test SIP peer."""
    alg = _canonical_algorithm(algorithm)
    if alg is None:
        raise ValueError(f"unsupported algorithm {algorithm!r}")
    nc_text = f"{nc:08x}"
    cnonce = cnonce if cnonce is not None else secrets.token_hex(8)
    ha1 = _hash(alg, f"{username}:{realm}:{password}")
    response = _digest_response(alg, ha1, nonce, method, uri, qop, nc_text, cnonce)
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(realm)}",
        f"nonce={_quote(nonce)}",
        f"uri={_quote(uri)}",
        f"response={_quote(response)}",
        f"algorithm={alg}",
    ]
    if qop is not None:
        parts += [f"qop={qop}", f"nc={nc_text}", f"cnonce={_quote(cnonce)}"]
    return "Digest " + ", ".join(parts)


class DigestAuth:
    """Server-side digest verifier for one realm; answer a failed :meth:`check` with :meth:`challenge`."""

    def __init__(
        self,
        realm: str,
        credentials: dict[str, str],
        secret: bytes,
        nonce_ttl_s: float = 300,
        algorithm: str = "MD5",
        clock: Callable[[], float] = time.time,
    ) -> None:
        alg = _canonical_algorithm(algorithm)
        if alg is None:
            raise ValueError(f"unsupported digest algorithm {algorithm!r}; use one of {sorted(ALGORITHMS)}")
        if len(secret) < 16:
            raise ValueError("nonce secret must be at least 16 bytes (forged nonces otherwise become guessable)")
        if nonce_ttl_s <= 0:
            raise ValueError("nonce_ttl_s must be positive")
        _quote(realm)  # rejects CR/LF early rather than at the first challenge
        self.realm = realm
        self.credentials = dict(credentials)
        self.algorithm = alg
        self.nonce_ttl_s = float(nonce_ttl_s)
        self._secret = bytes(secret)
        self._clock = clock

    # -- nonces --------------------------------------------------------------------------------------------

    def _mac(self, stamp: str, salt: str) -> str:
        msg = f"{stamp}.{salt}.{self.realm}".encode("utf-8", "surrogatepass")
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:_MAC_HEX]

    def new_nonce(self) -> str:
        """``<unix seconds>.<salt>.<mac>``: unique per challenge, verifiable and datable without state."""
        stamp, salt = str(int(self._clock())), secrets.token_hex(4)
        return f"{stamp}.{salt}.{self._mac(stamp, salt)}"

    def _nonce_age(self, nonce: str) -> float | None:
        """Seconds since the nonce was issued, or None if it is not one of ours (forged, mangled, other realm)."""
        parts = nonce.split(".")
        if len(parts) != 3:
            return None
        stamp, salt, mac = parts
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12 and salt.isascii() and len(salt) <= 32):
            return None
        expected = self._mac(stamp, salt).encode()
        if not hmac.compare_digest(expected, mac.encode("utf-8", "surrogatepass")):
            return None
        return self._clock() - int(stamp)

    # -- server API ----------------------------------------------------------------------------------------

    def challenge(self, request: SipMessage, *, stale: bool = False, to_tag: str | None = None) -> SipMessage:
        """401 with a fresh nonce; ``stale=True`` tells the UAC to retry with the same password, not re-prompt."""
        value = f'Digest realm={_quote(self.realm)}, nonce={_quote(self.new_nonce())}, algorithm={self.algorithm}, qop="auth"'
        if stale:
            value += ", stale=true"
        return response_to(request, 401, to_tag=to_tag, extra_headers=[("WWW-Authenticate", value)])

    def check(self, request: SipMessage) -> AuthResult:
        """Verify the request's Authorization; never raises, whatever the peer sent."""
        try:
            return self._check(request)
        except Exception:  # noqa: BLE001 - network-facing: a bug here must deny, not crash the listener
            return AuthResult(False, None, False, "malformed")

    def _check(self, request: SipMessage) -> AuthResult:
        """The verifier proper; the fuzz test calls this directly so the safety net in check() hides no bug."""
        if request.method is None:
            return _fail("not a request")
        values = request.headers_all("Authorization")
        if not values:
            return _fail("missing")
        params: dict[str, str] | None = None
        other_realm = False
        for value in values:
            try:
                candidate = parse_digest_params(value)
            except ValueError:
                continue
            if candidate.get("realm") == self.realm:
                params = candidate
                break
            other_realm = True
        if params is None:
            return _fail("realm mismatch" if other_realm else "malformed")

        username, nonce, uri, response = (params.get(k) for k in ("username", "nonce", "uri", "response"))
        if username is None or nonce is None or uri is None or response is None:
            return _fail("malformed")
        algorithm = _canonical_algorithm(params.get("algorithm", "MD5"))
        if algorithm != self.algorithm:  # only what we offered: no downgrade from SHA-256 to MD5
            return _fail("bad algorithm")
        qop = params.get("qop")
        nc = params.get("nc", "")
        cnonce = params.get("cnonce", "")
        if qop is not None and (qop.lower() != "auth" or not _NC.fullmatch(nc) or not cnonce):
            return _fail("malformed")

        age = self._nonce_age(nonce)
        if age is None or age < -self.nonce_ttl_s:
            return _fail("bad nonce")

        password = self.credentials.get(username)
        # Hash even for an unknown user so response timing does not reveal which usernames exist.
        ha1 = _hash(algorithm, f"{username}:{self.realm}:{password if password is not None else ''}")
        expected = _digest_response(algorithm, ha1, nonce, request.method, uri, qop, nc, cnonce)
        matches = hmac.compare_digest(expected.encode(), response.lower().encode("utf-8", "surrogatepass"))
        if password is None:
            return _fail("unknown user")
        if not matches:
            return _fail("wrong response")
        if request.uri is not None and uri != request.uri:
            # RFC 2617 §3.2.2.5: the digest covers its uri, not the request's; a captured one must not open a
            # call to another number (another tenant's) within the nonce's lifetime.
            return _fail("uri mismatch")
        if age > self.nonce_ttl_s:
            # RFC 2617 §3.2.1: stale only when the digest itself was right, so the UAC may retry without re-prompting.
            return AuthResult(False, None, True, "stale nonce")
        return AuthResult(True, username, False, "ok")


def _fail(reason: str) -> AuthResult:
    return AuthResult(False, None, False, reason)
