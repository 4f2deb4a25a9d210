"""Non-INVITE client transactions (BYE/REFER we send) on a fake clock: Timer E schedule, T2 after a provisional,
final response handling, Timer K / Timer F, table matching per §17.1.3 and the on_final hook."""

from __future__ import annotations

import pytest

from gateway.sip.client_transaction import ClientTransactionTable, NonInviteClientTransaction, client_key
from gateway.sip.dialog import Dialog
from gateway.sip.message import SipMessage, new_branch, parse, response_to
from gateway.sip.transaction import TransactionError

PBX = ("203.0.113.10", 5060)
T0 = 1000.0


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


INVITE = parse(
    crlf(
        """INVITE sip:enclave@192.168.1.20:5060 SIP/2.0
Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKsbc0a1;rport
Record-Route: <sip:203.0.113.10;lr>
From: "Reception" <sip:201@pbx.example>;tag=0e5c9d43
To: <sip:enclave@192.168.1.20>
Contact: <sip:201@10.0.0.5:5060>
Call-ID: 6f1d2a3b-4c5d
CSeq: 17 INVITE
Content-Length: 0

"""
    )
)


def new_dialog() -> Dialog:
    return Dialog.from_invite(INVITE, "a1b2c3d4", "<sip:enclave@192.168.1.20:5060>", PBX, first_cseq=1)


def bye(d: Dialog | None = None) -> SipMessage:
    return (d or new_dialog()).request("BYE", via_host="192.168.1.20", via_port=5060)


def answer(req: SipMessage, status: int) -> SipMessage:
    """The response as it comes off the wire (parsed), To tag already present in-dialog."""
    return parse(response_to(req, status).to_bytes())


def times_sent(txn: NonInviteClientTransaction, until: float) -> list[float]:
    """Step the fake clock timer by timer; returns the times (relative to T0) of retransmissions."""
    sent: list[float] = []
    while (due := txn.next_timer()) is not None and due <= T0 + until:
        out = txn.on_timer(due)
        assert all(data == txn.request.to_bytes() for data in out)
        sent.extend([round(due - T0, 6)] * len(out))
    return sent


def test_retransmit_schedule_until_timer_f():
    finals: list[SipMessage | None] = []
    req = bye()
    txn = NonInviteClientTransaction(req, PBX, now=T0, on_final=finals.append)
    first = txn.start()
    assert first == req.to_bytes() and parse(first).cseq == (1, "BYE")
    assert txn.state == "trying" and txn.next_timer() == T0 + 0.5
    sent = times_sent(txn, 100)
    assert sent == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]  # gaps 0.5, 1, 2, 4, 4, ...
    assert txn.terminated and txn.timed_out and txn.final is None
    assert finals == [None]
    assert txn.next_timer() is None and txn.on_timer(T0 + 200) == []
    assert finals == [None]  # reported once


def test_timer_f_at_64_t1_with_custom_timers():
    txn = NonInviteClientTransaction(bye(), PBX, now=T0, t1=0.1, t2=0.3)
    assert times_sent(txn, 10) == [0.1, 0.3, 0.6, 0.9, 1.2, 1.5, 1.8, 2.1, 2.4, 2.7, 3.0, 3.3, 3.6, 3.9, 4.2, 4.5,
                                   4.8, 5.1, 5.4, 5.7, 6.0, 6.3]
    assert txn.timed_out and txn.terminated  # 64 * 0.1 = 6.4


def test_provisional_switches_to_t2_interval():
    req = bye()
    txn = NonInviteClientTransaction(req, PBX, now=T0)
    assert times_sent(txn, 1.0) == [0.5]
    assert txn.on_response(answer(req, 100), T0 + 1.0) is False and txn.state == "proceeding"
    assert txn.next_timer() == T0 + 1.5  # the running Timer E is not reset by the provisional
    assert times_sent(txn, 100) == [1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]
    assert txn.timed_out and txn.final is None


def test_final_stops_retransmits_and_timer_k_cleans_up():
    finals: list[SipMessage | None] = []
    req = bye()
    txn = NonInviteClientTransaction(req, PBX, now=T0, on_final=finals.append)
    assert times_sent(txn, 2.0) == [0.5, 1.5]
    ok = answer(req, 200)
    assert txn.on_response(ok, T0 + 2.0) is True
    assert txn.state == "completed" and txn.final is ok and finals == [ok]
    assert txn.next_timer() == T0 + 2.0 + 5.0  # Timer K = T4
    assert txn.on_response(answer(req, 200), T0 + 3.0) is False  # retransmitted final absorbed
    assert txn.on_response(answer(req, 180), T0 + 3.0) is False and txn.state == "completed"
    assert finals == [ok]
    assert txn.on_timer(T0 + 6.9) == [] and not txn.terminated
    assert txn.on_timer(T0 + 7.0) == [] and txn.terminated and not txn.timed_out
    assert txn.next_timer() is None and finals == [ok]


def test_error_final_response_is_final_too():
    req = bye()
    txn = NonInviteClientTransaction(req, PBX, now=T0)
    resp = answer(req, 481)
    assert txn.on_response(resp, T0 + 0.2) is True and txn.final is resp and txn.state == "completed"


def test_late_timer_call_coalesces_resends():
    txn = NonInviteClientTransaction(bye(), PBX, now=T0)
    assert len(txn.on_timer(T0 + 10.0)) == 1  # 0.5, 1.5, 3.5 and 7.5 were missed: one send, not four
    assert txn.next_timer() == T0 + 11.5


def test_rejects_invite_ack_and_branchless():
    d = new_dialog()
    with pytest.raises(ValueError):
        NonInviteClientTransaction(INVITE, PBX, now=T0)
    req = d.request("BYE", via_host="h", via_port=5060)
    req.set_header("Via", "SIP/2.0/UDP h:5060")
    with pytest.raises(ValueError):
        NonInviteClientTransaction(req, PBX, now=T0)


def test_on_final_exception_does_not_break_the_timer_loop():
    def boom(_: SipMessage | None) -> None:
        raise RuntimeError("TU bug")

    table = ClientTransactionTable()
    table.send(bye(), PBX, T0, on_final=boom)
    table.send(bye(), PBX, T0, on_final=boom)
    table.on_timer(T0 + 40)
    assert len(table) == 0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def test_table_matches_by_branch_and_method():
    d = new_dialog()
    finals: dict[str, list[SipMessage | None]] = {"refer": [], "bye": []}
    table = ClientTransactionTable(clock=Clock())
    refer = d.refer("sip:queue@pbx.example", via_host="192.168.1.20", via_port=5060, uri_headers={"X-Enclave-Handoff": "abc"})
    by = bye(d)
    assert table.send(refer, PBX, T0, on_final=finals["refer"].append) == refer.to_bytes()
    assert table.send(by, PBX, on_final=finals["bye"].append) == by.to_bytes()  # now from the clock
    assert len(table) == 2
    with pytest.raises(TransactionError):
        table.send(refer, PBX, T0)

    accepted = answer(refer, 202)
    txn = table.on_response(accepted, T0 + 0.1)
    assert txn is not None and txn.request is refer and txn.final is accepted
    assert finals == {"refer": [accepted], "bye": []}
    assert table.get(refer) is txn and client_key(refer) == (refer.via_branch, "REFER")

    # Same branch, other CSeq method (e.g. a CANCEL would share it): not this transaction.
    wrong_method = answer(refer, 200)
    wrong_method.set_header("CSeq", "2 BYE")
    assert table.on_response(wrong_method, T0 + 0.1) is None
    # Unknown branch, a request, and a response with two Vias are all ignored.
    stray = answer(by, 200)
    stray.set_header("Via", f"SIP/2.0/UDP 192.168.1.20:5060;branch={new_branch()}")
    assert table.on_response(stray, T0 + 0.1) is None
    assert table.on_response(refer, T0 + 0.1) is None
    two_vias = answer(by, 200)
    two_vias.add_header("Via", "SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKother")
    assert table.on_response(two_vias, T0 + 0.1) is None
    assert finals["bye"] == []

    # Only the BYE is still retransmitted; responses came from nowhere else.
    assert table.next_timer() == T0 + 0.5
    assert table.on_timer(T0 + 0.5) == [(PBX, by.to_bytes())]
    ok = answer(by, 200)
    assert table.on_response(ok, T0 + 0.6) is not None and finals["bye"] == [ok]
    assert table.on_timer(T0 + 5.2) == [] and len(table) == 1  # REFER's Timer K (0.1 + 5) fired
    assert table.on_timer(T0 + 5.6) == [] and len(table) == 0 and table.next_timer() is None


def test_table_timeout_reports_none_and_removes():
    terminated: list[NonInviteClientTransaction] = []
    outcome: list[SipMessage | None] = []
    table = ClientTransactionTable(on_terminated=terminated.append)
    req = bye()
    table.send(req, PBX, T0, on_final=outcome.append)
    resends: list[tuple[object, bytes]] = []
    now = T0
    while (due := table.next_timer()) is not None:
        now = due
        resends.extend(table.on_timer(now))
    assert now == T0 + 32.0
    assert len(resends) == 10 and all(r == (PBX, req.to_bytes()) for r in resends)
    assert outcome == [None] and len(terminated) == 1 and terminated[0].timed_out and len(table) == 0
    assert table.on_response(answer(req, 200), now + 1) is None  # too late: no transaction any more


def test_future_bridge_pattern():
    """How the asyncio server is meant to await the outcome: resolve a Future from on_final."""
    import asyncio

    async def main() -> SipMessage | None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[SipMessage | None] = loop.create_future()
        table = ClientTransactionTable()
        req = bye()
        table.send(req, PBX, T0, on_final=lambda r: fut.done() or fut.set_result(r))
        loop.call_soon(table.on_response, answer(req, 200), T0 + 0.1)
        return await asyncio.wait_for(fut, 1)

    resp = asyncio.run(main())
    assert resp is not None and resp.status == 200
