"""Non-INVITE client transactions (RFC 3261 §17.1.2) as pure timer logic, for the requests the UA sends
itself inside a dialog (BYE, REFER). Over UDP requests are retransmitted (Timer E); a ``reliable`` transaction
(the dialog runs over TLS) sends once, keeps Timer F as its deadline, and has a zero Timer K (§17.1.2.2).

Like the server side in transaction.py: no sockets and no event loop; callers feed responses and the current time
and get back the bytes to (re)send. The TU learns the outcome through ``on_final`` (the final response, or None on
Timer F), which the asyncio server can resolve a Future from.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable

from .message import SipMessage, split_header_values
from .transaction import T1, T2, T4, TransactionError

__all__ = ["ClientTransactionTable", "NonInviteClientTransaction", "client_key"]

log = logging.getLogger("enclave.gateway.sip")

ClientKey = tuple[str, str]
OnFinal = Callable[[SipMessage | None], None]


def client_key(msg: SipMessage) -> ClientKey:
    """(top Via branch, CSeq method): what a response must share with our request to match it (§17.1.3)."""
    return msg.via_branch or "", msg.cseq[1]


class NonInviteClientTransaction:
    """trying → proceeding → completed → terminated (Timer K), or → terminated with ``timed_out`` (Timer F).

    Timer E retransmits after T1, doubling up to T2; once a provisional arrived it retransmits every T2.
    """

    def __init__(
        self,
        request: SipMessage,
        addr: Hashable,
        *,
        now: float,
        t1: float = T1,
        t2: float = T2,
        t4: float = T4,
        on_final: OnFinal | None = None,
        reliable: bool = False,
    ) -> None:
        if not request.is_request or request.method in ("INVITE", "ACK"):
            raise ValueError("a non-INVITE client transaction needs a non-INVITE request")
        self.request = request
        self.addr = addr
        self.key = client_key(request)
        if not self.key[0]:
            raise ValueError("request has no Via branch")
        self.t1, self.t2, self.t4 = t1, t2, t4
        self.on_final = on_final
        self.reliable = reliable
        self.created_at = now
        self.state = "trying"
        self.final: SipMessage | None = None
        self.timed_out = False
        self._bytes = request.to_bytes()
        self._interval = t1
        self._retransmit_at: float | None = None if reliable else now + t1  # Timer E: only when unreliable
        self._end_at: float | None = now + 64 * t1  # Timer F, later Timer K

    @property
    def terminated(self) -> bool:
        return self.state == "terminated"

    def start(self) -> bytes:
        """The first transmission; the timers already run from the ``now`` given at construction."""
        return self._bytes

    def next_timer(self) -> float | None:
        times = [t for t in (self._retransmit_at, self._end_at) if t is not None]
        return min(times) if times else None

    def on_timer(self, now: float) -> list[bytes]:
        """Fire whatever is due; a late call coalesces missed retransmissions into one send."""
        if self._end_at is not None and now >= self._end_at:
            waiting = self.state in ("trying", "proceeding")
            self.state = "terminated"
            self._retransmit_at = self._end_at = None
            if waiting:  # Timer F: the TU treats this as a 408 (§8.1.3.1)
                self.timed_out = True
                self._notify(None)
            return []
        if self._retransmit_at is None or now < self._retransmit_at:
            return []
        while self._retransmit_at <= now:
            self._interval = self.t2 if self.state == "proceeding" else min(self._interval * 2, self.t2)
            self._retransmit_at += self._interval
        return [self._bytes]

    def on_response(self, resp: SipMessage, now: float) -> bool:
        """True only for the first final response, which ends retransmission and starts Timer K; provisionals
        switch Timer E to T2, and final retransmissions are absorbed."""
        if resp.is_request or resp.status is None or self.state not in ("trying", "proceeding"):
            return False
        if resp.status < 200:
            self.state = "proceeding"
            return False
        self.state = "completed"
        self.final = resp
        self._retransmit_at = None
        self._end_at = now + (0 if self.reliable else self.t4)  # Timer K: absorb retransmitted finals
        self._notify(resp)
        return True

    def _notify(self, resp: SipMessage | None) -> None:
        if self.on_final is None:
            return
        try:
            self.on_final(resp)
        except Exception:  # noqa: BLE001 - a TU bug must not stop the timer loop for every other transaction
            log.exception("on_final callback failed for %s", self.key)


class ClientTransactionTable:
    """Live client transactions keyed by (branch, CSeq method); responses that match none are returned as None
    so the caller can drop them (§17.1.3, §18.1.2)."""

    def __init__(
        self,
        *,
        t1: float = T1,
        t2: float = T2,
        t4: float = T4,
        clock: Callable[[], float] = time.monotonic,
        on_terminated: Callable[[NonInviteClientTransaction], None] | None = None,
    ) -> None:
        self.t1, self.t2, self.t4 = t1, t2, t4
        self.clock = clock
        self.on_terminated = on_terminated
        self._by_key: dict[ClientKey, NonInviteClientTransaction] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, msg: SipMessage) -> NonInviteClientTransaction | None:
        return self._by_key.get(client_key(msg))

    def send(
        self,
        request: SipMessage,
        addr: Hashable,
        now: float | None = None,
        *,
        on_final: OnFinal | None = None,
        reliable: bool = False,
    ) -> bytes:
        """Open a transaction for ``request`` and return its first datagram for ``addr``; ``reliable``: it goes
        over a stream transport (TLS), so it is never retransmitted."""
        now = self.clock() if now is None else now
        txn = NonInviteClientTransaction(
            request, addr, now=now, t1=self.t1, t2=self.t2, t4=self.t4, on_final=on_final, reliable=reliable
        )
        if txn.key in self._by_key:
            raise TransactionError(f"transaction {txn.key} already exists")
        self._by_key[txn.key] = txn
        return txn.start()

    def on_response(self, resp: SipMessage, now: float | None = None) -> NonInviteClientTransaction | None:
        """The transaction the response belongs to (after feeding it), or None when it matches none."""
        if resp.is_request:
            return None
        vias = [v for value in resp.headers_all("Via") for v in split_header_values(value)]
        if len(vias) != 1:
            return None  # §18.1.2: a response with more than one Via was not meant for us
        txn = self._by_key.get(client_key(resp))
        if txn is None:
            return None
        txn.on_response(resp, self.clock() if now is None else now)
        return txn

    def next_timer(self) -> float | None:
        times = [t for txn in self._by_key.values() if (t := txn.next_timer()) is not None]
        return min(times) if times else None

    def on_timer(self, now: float | None = None) -> list[tuple[Hashable, bytes]]:
        """Run due timers; returns (addr, datagram) retransmissions and drops terminated transactions."""
        now = self.clock() if now is None else now
        out: list[tuple[Hashable, bytes]] = []
        for key, txn in list(self._by_key.items()):
            due = txn.next_timer()
            if due is not None and due <= now:
                out.extend((txn.addr, data) for data in txn.on_timer(now))
            if txn.terminated:
                del self._by_key[key]
                if self.on_terminated is not None:
                    self.on_terminated(txn)
        return out
