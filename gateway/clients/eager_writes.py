"""Send an upstream request the moment it is made, on Python 3.11 too.

aiohttp writes a request's body, and the headers it buffers to go out with it, from a task that ``send``
creates. From Python 3.12 it starts that task eagerly, so the bytes leave at once. On 3.11 the task waits its
turn in the event loop's ready queue, behind every other request's work already queued there. When a burst
of chat requests arrives together (16 callers pressing enter in the same moment), each request's turn
pipeline runs to its upstream call without yielding, so the first request's bytes left only after the
gateway had done the pre-model work of the whole burst: measured on the build machine, the model started
all sixteen ~15 ms after the burst began, instead of one by one as each request was ready.

:func:`install` sets a task factory on the gateway's loop that starts just that one coroutine
(``ClientRequest.write_bytes``) eagerly, as 3.12 does; every other task is created as usual. The first step
of the coroutine runs in the new task's context; if it finishes there (a small body always does), a
finished future stands in for the task, which is what aiohttp expects from an eager task. Unlike 3.12,
``asyncio.current_task()`` still names the caller during that first step: fine for ``write_bytes``, which
never asks (no timeout scope, no task lookups), and the reason the factory starts nothing else eagerly.
The loopback test in ``tests/unit/test_eager_writes.py`` fails on 3.11 if an aiohttp upgrade moves the
write elsewhere.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import types
from collections.abc import Coroutine, Generator
from typing import Any

from aiohttp import ClientRequest

_WRITE_BYTES = ClientRequest.write_bytes.__code__


def install(loop: asyncio.AbstractEventLoop) -> bool:
    """Start aiohttp's request writes eagerly on ``loop``. Nothing to do from Python 3.12 (aiohttp does it
    itself) or when the loop already has a task factory (someone else's choice). Returns whether it did."""
    if sys.version_info >= (3, 12) or loop.get_task_factory() is not None:
        return False
    loop.set_task_factory(task_factory)
    return True


def describe(installed: bool) -> str:
    """For the start-up log: whether this process's upstream requests leave at once."""
    if installed or sys.version_info >= (3, 12):
        return "eager"
    return "deferred (the event loop already had a task factory)"


def task_factory(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any],
                 context: contextvars.Context | None = None) -> asyncio.Future:
    if getattr(coro, "cr_code", None) is _WRITE_BYTES:
        return start_eagerly(loop, coro, context)
    return asyncio.Task(coro, loop=loop, context=context)


def start_eagerly(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any],
                  context: contextvars.Context | None = None) -> asyncio.Future:
    """Run ``coro`` now, up to its first suspension; a Task carries on from there."""
    context = context if context is not None else contextvars.copy_context()
    try:
        pending = context.run(coro.send, None)
    except StopIteration as done:
        future = loop.create_future()
        future.set_result(done.value)
        return future
    except (KeyboardInterrupt, SystemExit):
        raise  # a task re-raises these too
    except BaseException as e:  # noqa: BLE001  # the task's outcome, as a task would keep it
        future = loop.create_future()
        if isinstance(e, asyncio.CancelledError):
            future.cancel(msg=e.args[0] if e.args else None)
        else:
            future.set_exception(e)
        return future
    carry_on = _resume(coro, pending)
    carry_on.send(None)  # parked at its first yield: a cancellation before the Task's first step reaches coro
    return asyncio.Task(carry_on, loop=loop, context=context)


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], pending: Any) -> Generator[Any, Any, Any]:
    """Hand the Task what ``coro`` is waiting on, then drive ``coro`` as the Task drives us: values and
    exceptions (a cancellation) are passed through. ``start_eagerly`` steps past the first exchange before
    the Task exists, so that whatever the Task's first step brings, a cancellation thrown in before anything
    ran included, lands in ``coro`` (a generator not yet started would raise it without running)."""
    try:
        thrown, value = yield from _exchange(None)
        if not thrown:                      # the Task's first step: coro is still waiting on ``pending``
            thrown, value = yield from _exchange(pending)
        while True:
            try:
                pending = coro.throw(value) if thrown else coro.send(value)
            except StopIteration as done:
                return done.value
            thrown, value = yield from _exchange(pending)
    except GeneratorExit:
        coro.close()
        raise


def _exchange(value: Any) -> Generator[Any, Any, tuple[bool, Any]]:
    """Yield ``value`` to the Task: what it sends back as ``(False, value)``, what it throws in as
    ``(True, exception)``."""
    try:
        return False, (yield value)
    except GeneratorExit:
        raise
    except BaseException as e:  # noqa: BLE001
        return True, e
