"""The benchmarks' streaming chat client: one OpenAI-style streamed request, timed and counted.

The load generator shares the box with what it measures, so it has to be cheap: reading a 64-token
stream cost 12 ms of CPU with httpx's ``aiter_lines`` and ``json`` against 2.5 ms with aiohttp's raw
pieces and orjson (c=64, paced upstream), and about 2 ms on uvloop. With httpx the client spent more CPU
per request than the gateway it was measuring.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson


async def _data_payloads(pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The ``data:`` payloads of an SSE body read in raw network pieces (any split, LF or CRLF), less [DONE]."""
    rest = b""
    async for piece in pieces:
        *lines, rest = (rest + piece).split(b"\n")
        for line in lines:
            if line.startswith(b"data:") and (data := line[5:].strip()) and data != b"[DONE]":
                yield data


async def stream_chat(session: aiohttp.ClientSession, body: dict[str, Any]) -> dict[str, Any]:
    """One streamed request. TTFT is the first SSE chunk carrying content (role-only chunks don't count).
    Tokens are the final usage chunk's ``completion_tokens`` (the body asks for it), not the content chunks:
    under load vLLM folds several decode steps into one chunk when its API side falls behind, so the same
    64 tokens arrived as 22 to 64 chunks here, fewer on whichever path was busier. Never raises: failures
    come back as ok=False with a reason."""
    start = time.perf_counter()
    ttft = None
    chunks = 0
    status = None
    finish = None
    usage_tokens = None
    try:
        async with session.post("/v1/chat/completions", json=body) as r:
            status = r.status
            if status != 200:
                text = (await r.read()).decode(errors="replace")
                return {"ok": False, "status": status, "error": f"HTTP {status}: {text[:200]}"}
            async for data in _data_payloads(r.content.iter_any()):
                chunk = orjson.loads(data)
                if chunk.get("usage"):
                    usage_tokens = chunk["usage"].get("completion_tokens")
                choices = chunk.get("choices") or []
                if choices and (choices[0].get("delta") or {}).get("content"):
                    chunks += 1
                    if ttft is None:
                        ttft = (time.perf_counter() - start) * 1000
                if choices and choices[0].get("finish_reason"):
                    finish = choices[0]["finish_reason"]
    except Exception as e:  # a benchmark counts errors, it does not stop on them
        return {"ok": False, "status": status, "error": f"{type(e).__name__}: {e}"[:200]}
    total = (time.perf_counter() - start) * 1000
    if chunks == 0:
        return {"ok": False, "status": status, "error": "stream carried no content"}
    return {"ok": True, "status": status, "started": start, "ttft_ms": ttft, "total_ms": total, "chunks": chunks, "finish": finish,
            "tokens": usage_tokens if usage_tokens is not None else chunks, "usage": usage_tokens is not None}


def make_session(url: str, headers: dict[str, str] | None = None, max_conc: int = 64) -> aiohttp.ClientSession:
    """A client for one target: its own connection pool, big enough that no request waits for a connection.
    Idle connections are dropped after 4 s, before any target's server drops them (uvicorn's default, so
    vLLM's and LiteLLM's, is 5 s): a request sent on a connection the server is closing fails unsent, and
    one run lost a request that way to a pause between batches. Call inside the running loop."""
    return aiohttp.ClientSession(base_url=url, headers=headers, timeout=aiohttp.ClientTimeout(total=300),
                                 connector=aiohttp.TCPConnector(limit=max_conc + 8, keepalive_timeout=4),
                                 trust_env=False)


def run_async(coro: Any) -> Any:
    """uvloop when installed (it comes with uvicorn[standard]): a cheaper loop is a quieter load generator."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
