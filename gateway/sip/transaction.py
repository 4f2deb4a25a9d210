"""Server transactions (RFC 3261 §17.2, with the RFC 6026 "accepted" state) as pure timer logic.

No sockets and no event loop here: callers feed requests, responses and the current time, and get back the
bytes to (re)send, so every retransmission schedule is testable with a fake clock.

Over UDP (the default) responses are retransmitted on the T1-doubling schedule. A transaction created with
``reliable=True`` (a request that came over TLS) never retransmits on its own (§17.2.1: Timer G only for
unreliable transports). The 2xx retransmission (§13.3.1.4, folded in here) is left out as well: RFC 3261 keeps
it end to end for UDP hops further along, but a TLS trunk peer is our next hop and ACKs over the same stream.
Timers I and J are zero (§17.2.1, §17.2.2). It still answers a retransmitted request with the last response,
and Timer H / L still wait 64*T1 for the ACK, so an answer never acknowledged still times out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from .message import SipMessage, SipParseError, response_to

__all__ = [
    "T1",
    "T2",
    "T4",
    "Dispatch",
    "InviteServerTransaction",
    "NonInviteServerTransaction",
    "TransactionError",
    "TransactionTable",
    "transaction_key",
]

T1 = 0.5  # RTT estimate
T2 = 4.0  # cap on retransmit interval
T4 = 5.0  # time a message may linger in the network (Timer I)

TxKey = tuple[str, tuple[str, int], str]


PROCEEDING_LIMIT_S = 300.0   # an INVITE the core never answered finally is dropped after this

class TransactionError(RuntimeError):
    """The TU asked for something the transaction state machine forbids (e.g. a second final response)."""


def transaction_key(msg: SipMessage) -> TxKey:
    """(branch, sent-by, method) per §17.2.3; an ACK matches the INVITE that it acknowledges."""
    via = msg.top_via
    if via is None:
        raise SipParseError(400, "Missing Via")
    method = msg.method or msg.cseq[1]
    if method == "ACK":
        method = "INVITE"
    return via.params.get("branch", ""), via.sent_by, method


class _ServerTransaction:
    kind = "non-invite"

    def __init__(
        self,
        request: SipMessage,
        *,
        t1: float = T1,
        t2: float = T2,
        t4: float = T4,
        clock: Callable[[], float] = time.monotonic,
        now: float | None = None,
        reliable: bool = False,
    ) -> None:
        self.request = request
        self.reliable = reliable  # a stream transport (TLS): no retransmissions, Timer I / J zero
        self.created_at = clock() if now is None else now
        self.t1, self.t2, self.t4 = t1, t2, t4
        self.clock = clock
        self.last_response: SipMessage | None = None
        self._last_bytes: bytes | None = None
        self.state = ""
        self.timed_out = False  # no ACK before Timer H / L, or no final response in 64*T1: tell the TU

    def _now(self, now: float | None) -> float:
        return self.clock() if now is None else now

    def _record(self, resp: SipMessage) -> list[bytes]:
        if resp.is_request or resp.status is None:
            raise TransactionError("send_response() needs a response")
        self.last_response = resp
        self._last_bytes = resp.to_bytes()
        return [self._last_bytes]

    def _resend(self) -> list[bytes]:
        return [self._last_bytes] if self._last_bytes is not None else []

    @property
    def terminated(self) -> bool:
        return self.state == "terminated"

    def next_timer(self) -> float | None:  # pragma: no cover - overridden
        raise NotImplementedError


class InviteServerTransaction(_ServerTransaction):
    """INVITE server transaction: proceeding → completed → confirmed → terminated for 3xx-6xx, and
    proceeding → accepted → terminated for 2xx, where (folding in the core's §13.3.1.4 duty) the 2xx is
    retransmitted on the same T1-doubling schedule until the ACK arrives or 64*T1 passes.
    """

    kind = "invite"

    def __init__(self, request: SipMessage, **kwargs: Any) -> None:
        super().__init__(request, **kwargs)
        self.state = "proceeding"
        self.acked = False
        self._retransmit_at: float | None = None  # Timer G (non-2xx) or the 2xx retransmit timer
        self._interval = self.t1
        self._end_at: float | None = None  # Timer H (completed), I (confirmed) or L (accepted)
        # No RFC timer runs while proceeding (the core owes the final answer). A core that never gives one
        # (a failure between 180 and 200) must not leak the transaction: after this long it is dropped.
        self._give_up_at = self._now(None) + PROCEEDING_LIMIT_S

    def on_request(self, msg: SipMessage, now: float | None = None) -> list[bytes]:
        """A retransmitted INVITE is answered with the last response; an ACK stops retransmissions."""
        if msg.method == "ACK":
            self.on_ack(now)
            return []
        if self.state in ("proceeding", "completed", "accepted"):
            # Accepted: resending the 2xx is what the peer needs if ours was lost; RFC 6026 lets the core do it.
            return self._resend()
        return []

    def on_ack(self, now: float | None = None) -> bool:
        """Returns True for the first ACK (the one the TU should see), False for duplicates or a stray ACK."""
        now = self._now(now)
        if self.state == "completed":
            self.state = "confirmed"
            self._retransmit_at = None
            self._end_at = now + (0 if self.reliable else self.t4)  # Timer I: absorb further ACK retransmissions
            return True
        if self.state == "accepted" and not self.acked:
            self.acked = True
            self._retransmit_at = None  # keep Timer L running to absorb INVITE retransmissions
            return True
        return False

    def send_response(self, resp: SipMessage, now: float | None = None) -> list[bytes]:
        now = self._now(now)
        status = resp.status or 0
        if self.state == "proceeding":
            out = self._record(resp)
            if status < 200:
                return out
            self._interval = self.t1
            self._retransmit_at = None if self.reliable else now + self.t1  # Timer G / 2xx only when unreliable
            self._end_at = now + 64 * self.t1  # Timer H, or Timer L for 2xx
            self.state = "accepted" if status < 300 else "completed"
            return out
        if self.state == "accepted" and 200 <= status < 300:
            return self._record(resp)  # TU-driven 2xx retransmission is allowed in "accepted"
        raise TransactionError(f"cannot send {status} in state {self.state}")

    def next_timer(self) -> float | None:
        times = [t for t in (self._retransmit_at, self._end_at) if t is not None]
        if self.state == "proceeding":
            times.append(self._give_up_at)
        return min(times) if times else None

    def on_timer(self, now: float | None = None) -> list[bytes]:
        """Fire whatever is due; a late call coalesces missed retransmissions into one send."""
        now = self._now(now)
        if self.state == "proceeding" and now >= self._give_up_at:
            self.state = "terminated"
            return []
        if self._end_at is not None and now >= self._end_at:
            if self.state == "completed" or (self.state == "accepted" and not self.acked):
                self.timed_out = True
            self.state = "terminated"
            self._retransmit_at = self._end_at = None
            return []
        if self._retransmit_at is None or now < self._retransmit_at:
            return []
        while self._retransmit_at <= now:
            self._interval = min(self._interval * 2, self.t2)
            self._retransmit_at += self._interval
        return self._resend()


class NonInviteServerTransaction(_ServerTransaction):
    """Non-INVITE server transaction: trying → proceeding → completed, then Timer J (64*T1) → terminated.

    The server never retransmits on its own; it only answers request retransmissions with the last response.
    """

    def __init__(self, request: SipMessage, **kwargs: Any) -> None:
        super().__init__(request, **kwargs)
        self.state = "trying"
        # Timer J once completed; before that, the client gives up at 64*T1 (Timer F), so a TU that never answers
        # must not leave the transaction in the table forever.
        self._end_at: float | None = self.created_at + 64 * self.t1

    def on_request(self, msg: SipMessage, now: float | None = None) -> list[bytes]:
        return [] if self.state == "trying" else self._resend()

    def send_response(self, resp: SipMessage, now: float | None = None) -> list[bytes]:
        now = self._now(now)
        if self.state not in ("trying", "proceeding"):
            raise TransactionError(f"cannot send {resp.status} in state {self.state}")
        out = self._record(resp)
        if (resp.status or 0) < 200:
            self.state = "proceeding"
        else:
            self.state = "completed"
            self._end_at = now + (0 if self.reliable else 64 * self.t1)  # Timer J
        return out

    def next_timer(self) -> float | None:
        return self._end_at

    def on_timer(self, now: float | None = None) -> list[bytes]:
        now = self._now(now)
        if self._end_at is not None and now >= self._end_at:
            self.timed_out = self.state != "completed"
            self.state = "terminated"
            self._end_at = None
        return []


ServerTransaction = InviteServerTransaction | NonInviteServerTransaction


@dataclass
class Dispatch:
    """What to do with an incoming request: send ``to_send`` back, and hand it to the TU only if ``deliver``."""

    transaction: ServerTransaction | None
    to_send: list[bytes] = field(default_factory=list)
    deliver: bool = False


class TransactionTable:
    """Live server transactions, matched per §17.2.3, so retransmitted requests are absorbed and answered with
    the last response instead of reaching the TU twice.

    The ACK to a 2xx carries a fresh branch (it is its own transaction), so it is matched to the accepted INVITE
    by dialog instead: Call-ID, CSeq number and From tag. ``addr`` is whatever the caller uses to reply
    (the source address); timer resends come back paired with it.
    """

    def __init__(
        self,
        *,
        t1: float = T1,
        t2: float = T2,
        t4: float = T4,
        clock: Callable[[], float] = time.monotonic,
        max_transactions: int = 10_000,
        on_terminated: Callable[[ServerTransaction], None] | None = None,
    ) -> None:
        self.t1, self.t2, self.t4 = t1, t2, t4
        self.clock = clock
        self.max_transactions = max_transactions
        self.on_terminated = on_terminated
        self._by_key: dict[TxKey, ServerTransaction] = {}
        self._by_dialog: dict[tuple[str, int, str], InviteServerTransaction] = {}
        self._addr: dict[TxKey, Hashable] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, msg: SipMessage) -> ServerTransaction | None:
        return self._by_key.get(transaction_key(msg))

    def find_invite(self, cancel: SipMessage) -> InviteServerTransaction | None:
        """The INVITE transaction a CANCEL targets (same branch and sent-by, §9.2)."""
        branch, sent_by, _ = transaction_key(cancel)
        txn = self._by_key.get((branch, sent_by, "INVITE"))
        return txn if isinstance(txn, InviteServerTransaction) else None

    def on_request(self, msg: SipMessage, addr: Hashable = None, now: float | None = None, *,
                   reliable: bool = False) -> Dispatch:
        """Match ``msg`` to its transaction or open one; ``reliable``: it came over a stream transport (TLS)."""
        now = self.clock() if now is None else now
        key = transaction_key(msg)
        txn = self._by_key.get(key)
        if msg.method == "ACK":
            if isinstance(txn, InviteServerTransaction) and txn.state in ("completed", "confirmed"):
                txn.on_ack(now)  # ACK for a non-2xx belongs to the transaction, never to the TU
                return Dispatch(txn)
            invite = self._by_dialog.get(self._dialog_key(msg))
            if invite is not None:
                return Dispatch(invite, deliver=invite.on_ack(now))
            return Dispatch(None, deliver=True)  # stray ACK: the core decides (usually drops it)
        if txn is not None:
            return Dispatch(txn, txn.on_request(msg, now))
        if len(self._by_key) >= self.max_transactions:
            # Flood guard: refuse without state rather than grow without bound.
            busy = response_to(msg, 503, extra_headers=[("Retry-After", "5")])
            return Dispatch(None, [busy.to_bytes()])
        cls = InviteServerTransaction if msg.method == "INVITE" else NonInviteServerTransaction
        new = cls(msg, t1=self.t1, t2=self.t2, t4=self.t4, clock=self.clock, now=now, reliable=reliable)
        self._by_key[key] = new
        self._addr[key] = addr
        if isinstance(new, InviteServerTransaction):
            self._by_dialog[self._dialog_key(msg)] = new
        return Dispatch(new, deliver=True)

    @staticmethod
    def _dialog_key(msg: SipMessage) -> tuple[str, int, str]:
        return msg.call_id or "", msg.cseq[0], msg.from_tag or ""

    def next_timer(self) -> float | None:
        times = [t for txn in self._by_key.values() if (t := txn.next_timer()) is not None]
        return min(times) if times else None

    def on_timer(self, now: float | None = None) -> list[tuple[Hashable, bytes]]:
        """Run due timers; returns (addr, datagram) resends and drops terminated transactions."""
        now = self.clock() if now is None else now
        out: list[tuple[Hashable, bytes]] = []
        for key, txn in list(self._by_key.items()):
            due = txn.next_timer()
            if due is not None and due <= now:
                out.extend((self._addr[key], data) for data in txn.on_timer(now))
            if txn.terminated:
                self._remove(key, txn)
        return out

    def _remove(self, key: TxKey, txn: ServerTransaction) -> None:
        del self._by_key[key]
        self._addr.pop(key, None)
        if isinstance(txn, InviteServerTransaction):
            dkey = self._dialog_key(txn.request)
            if self._by_dialog.get(dkey) is txn:
                del self._by_dialog[dkey]
        if self.on_terminated is not None:
            self.on_terminated(txn)
