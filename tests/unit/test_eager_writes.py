"""The gateway's upstream requests leave when they are made, not after the work queued on the loop.

The first test is the behaviour itself, with real aiohttp against a loopback server; the others pin what the
eager start must keep of a task's semantics (result, exception, cancellation, context)."""

from __future__ import annotations

import asyncio
import contextvars
import socket
import sys
import threading
import time

import aiohttp
import pytest
import uvloop

from gateway.clients import eager_writes


class RecordingServer:
    """A loopback HTTP/1.1 server on a thread, one keep-alive connection: notes when each whole request has
    arrived and answers it 200."""

    BODY = b'{"x": 1}'

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.arrived_at: list[float] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        data = b""
        while True:
            while not data.endswith(self.BODY):
                piece = conn.recv(65536)
                if not piece:
                    return
                data += piece
            self.arrived_at.append(time.monotonic())
            data = b""
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def close(self) -> None:
        self.sock.close()


async def post_while_the_loop_is_busy(port: int) -> float:
    """Over a kept-alive connection (as the gateway's upstream calls are), task A posts while task B, queued
    behind it, holds the loop for 0.3 s. Returns when B let go of the loop."""
    busy: dict[str, float] = {}
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
        async def post() -> None:
            async with session.post("/", data=RecordingServer.BODY) as r:
                assert await r.text() == "ok"

        async def hold_the_loop() -> None:
            time.sleep(0.3)  # the rest of a burst's pre-model work, done without yielding
            busy["end"] = time.monotonic()

        await post()   # opens the connection
        await asyncio.gather(post(), hold_the_loop())
    return busy["end"]


LOOPS = [pytest.param(asyncio.new_event_loop, id="asyncio"), pytest.param(uvloop.new_event_loop, id="uvloop")]


@pytest.mark.parametrize("new_loop", LOOPS)
def test_the_request_reaches_the_upstream_before_work_queued_behind_it(new_loop) -> None:
    """uvicorn runs the gateway on uvloop when it is installed (it is, with uvicorn[standard])."""
    server = RecordingServer()

    async def main() -> float:
        assert eager_writes.install(asyncio.get_running_loop()) == (sys.version_info < (3, 12))
        return await post_while_the_loop_is_busy(server.port)

    try:
        with asyncio.Runner(loop_factory=new_loop) as runner:
            busy_end = runner.run(main())
    finally:
        server.close()
    assert len(server.arrived_at) == 2 and server.arrived_at[1] < busy_end


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="aiohttp starts its writer eagerly itself from 3.12")
def test_without_it_python_3_11_sends_the_body_only_once_the_loop_is_free() -> None:
    """Why the module exists: the same scene with the default task factory."""
    server = RecordingServer()
    try:
        busy_end = asyncio.run(post_while_the_loop_is_busy(server.port))
    finally:
        server.close()
    assert len(server.arrived_at) == 2 and server.arrived_at[1] >= busy_end


def test_it_changes_nothing_where_it_is_not_needed() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        mine = lambda loop, coro, context=None: asyncio.Task(coro, loop=loop, context=context)  # noqa: E731
        loop.set_task_factory(mine)
        assert not eager_writes.install(loop) and loop.get_task_factory() is mine

    asyncio.run(main())


def test_other_coroutines_get_ordinary_tasks_in_their_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def read() -> str:
        return var.get()

    async def main() -> None:
        eager_writes.install(asyncio.get_running_loop())
        var.set("caller")
        task = asyncio.create_task(read(), name="reader")
        assert isinstance(task, asyncio.Task) and task.get_name() == "reader" and not task.done()
        assert await task == "caller"

    asyncio.run(main())


def test_a_coroutine_that_finishes_at_once_comes_back_done() -> None:
    ran: list[str] = []

    async def write() -> int:
        ran.append("now")
        return 7

    async def main() -> None:
        future = eager_writes.start_eagerly(asyncio.get_running_loop(), write())
        assert ran == ["now"] and future.done() and future.result() == 7

    asyncio.run(main())


def test_a_failure_in_the_first_step_is_kept_like_a_task_keeps_it() -> None:
    async def write() -> None:
        raise ConnectionResetError("gone")

    async def main() -> None:
        future = eager_writes.start_eagerly(asyncio.get_running_loop(), write())
        assert future.done() and isinstance(future.exception(), ConnectionResetError)

    asyncio.run(main())


def test_a_coroutine_that_waits_carries_on_in_a_task_with_its_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    steps: list[str] = []

    async def write(gate: asyncio.Future) -> str:
        steps.append("first")
        var.set("set in the first step")
        value = await gate
        steps.append("after")
        return f"{value}, {var.get()}"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        gate = loop.create_future()
        task = eager_writes.start_eagerly(loop, write(gate))
        assert steps == ["first"] and not task.done()
        loop.call_later(0.01, gate.set_result, "opened")
        assert await task == "opened, set in the first step" and steps == ["first", "after"]

    asyncio.run(main())


def test_cancelling_the_task_cancels_the_coroutine() -> None:
    seen: list[str] = []

    async def write() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def main() -> None:
        task = eager_writes.start_eagerly(asyncio.get_running_loop(), write())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert seen == ["cancelled"] and task.cancelled()

    asyncio.run(main())


def test_a_cancellation_before_the_tasks_first_step_reaches_the_coroutine() -> None:
    """aiohttp may cancel its writer in the same loop turn as ``send``: the coroutine must still see it
    (it closes the connection it was writing on)."""
    seen: list[str] = []

    async def write(gate: asyncio.Future) -> None:
        try:
            await gate
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def main() -> None:
        loop = asyncio.get_running_loop()
        coro = write(loop.create_future())
        task = eager_writes.start_eagerly(loop, coro)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert seen == ["cancelled"] and coro.cr_frame is None

    asyncio.run(main())


def test_a_cancellation_in_the_first_step_comes_back_cancelled() -> None:
    async def write() -> None:
        raise asyncio.CancelledError("stop")

    async def main() -> None:
        future = eager_writes.start_eagerly(asyncio.get_running_loop(), write())
        assert future.cancelled()

    asyncio.run(main())


def test_an_exception_through_the_awaited_future_reaches_the_coroutine_and_the_task() -> None:
    seen: list[str] = []

    async def write(gate: asyncio.Future) -> None:
        try:
            await gate
        except ConnectionResetError:
            seen.append("reset")
            raise

    async def main() -> None:
        loop = asyncio.get_running_loop()
        gate = loop.create_future()
        task = eager_writes.start_eagerly(loop, write(gate))
        gate.set_exception(ConnectionResetError("peer gone"))   # done before the task's first step
        with pytest.raises(ConnectionResetError):
            await task
        assert seen == ["reset"]

    asyncio.run(main())


def test_keyboard_interrupt_in_the_first_step_is_raised_like_a_task_raises_it() -> None:
    async def write() -> None:
        raise KeyboardInterrupt

    async def main() -> None:
        with pytest.raises(KeyboardInterrupt):
            eager_writes.start_eagerly(asyncio.get_running_loop(), write())

    asyncio.run(main())


def test_the_start_up_log_says_whether_writes_are_eager() -> None:
    assert eager_writes.describe(True) == "eager"
    assert eager_writes.describe(False) == ("eager" if sys.version_info >= (3, 12) else
                                            "deferred (the event loop already had a task factory)")
