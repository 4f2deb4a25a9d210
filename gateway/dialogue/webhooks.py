"""HMAC signing of webhook callbacks, shared by the appliance (which verifies) and the services that call it back.

A backend that answers a tool call with "accepted" later POSTs the outcome to the appliance. The signature
proves the callback comes from a holder of the shared secret and that the body was not altered; the signed
timestamp bounds how long a captured callback can be replayed. Format (Stripe-like, so operators recognise it):

    X-Enclave-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, b"<t>." + body)>

Several ``v1=`` entries may be present (a sender mid-way through a secret rotation); one match is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Enclave-Signature"
SCHEME = "v1"


class WebhookSignatureError(Exception):
    """A callback that must be rejected. ``code`` is stable (signature_missing, signature_malformed,
    signature_expired, signature_invalid) so the receiver can count and answer by it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _mac(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    """The header value for ``body``: 't=<unix>,v1=<hex hmac-sha256(secret, f"{t}.".encode() + body)>'.

    Sign the exact bytes that are sent: the receiver verifies the raw body, never a re-serialisation."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},{SCHEME}={_mac(secret, t, body)}"


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not value:
            raise WebhookSignatureError("signature_malformed", f"bad {SIGNATURE_HEADER} element {part.strip()!r}")
        if key == "t":
            # '²'.isdigit() too; and more than 12 digits is no Unix time (5,000 of them made int() raise: a 500)
            if timestamp is not None or not (value.isascii() and value.isdigit()) or len(value) > 12:
                raise WebhookSignatureError("signature_malformed", f"bad timestamp in {SIGNATURE_HEADER}")
            timestamp = int(value)
        elif key == SCHEME:
            signatures.append(value)
        # Unknown schemes are ignored, so a sender may add a stronger one before receivers understand it.
    if timestamp is None or not signatures:
        raise WebhookSignatureError("signature_malformed", f"{SIGNATURE_HEADER} needs t= and {SCHEME}=")
    return timestamp, signatures


def verify(secret: bytes, header: str | None, body: bytes, *, now: float | None = None, tolerance_s: int = 300) -> None:
    """Accept ``body`` or raise ``WebhookSignatureError``.

    The HMAC is checked before the age, so ``signature_expired`` means "genuine but stale" (usually clock skew
    or a replay) and a forgery is always ``signature_invalid``. Comparison is constant-time. A timestamp too far
    in the future counts as expired too: it would otherwise stay replayable for longer than the tolerance."""
    if not header or not header.strip():
        raise WebhookSignatureError("signature_missing", f"no {SIGNATURE_HEADER} header")
    timestamp, signatures = _parse(header)
    expected = _mac(secret, timestamp, body)
    # Check every candidate (no early exit) so timing does not tell which one was close.
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected.encode(), candidate.strip().lower().encode())
    if not matched:
        raise WebhookSignatureError("signature_invalid", "signature does not match the body")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise WebhookSignatureError("signature_expired", f"signature timestamp is {int(current - timestamp)} s off (tolerance {tolerance_s} s)")
