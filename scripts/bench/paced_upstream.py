"""A paced OpenAI-compatible chat endpoint for the gateway benchmark: it streams ``max_tokens`` tokens at a
fixed rate and spends almost no CPU doing so.

Why: on the 2-core build machine the CPU engine and the gateway share the same cores, so a gateway-vs-direct
ratio there mostly measures contention. On the GPU appliance the engine runs on the GPU and produces tokens
at a steady rate whatever the host CPUs do; this stand-in reproduces that shape (first token after
``--ttft-ms``, then one SSE event every ``--token-ms``, vLLM's chunk layout, a usage chunk when asked), so
the benchmark can measure what the relay itself costs: the gateway, LiteLLM and the direct path all read the
same clock-driven stream. It is a benchmark tool, never part of the appliance.

By default each request keeps its own clock. ``--steps`` puts every stream on one shared clock instead, as
an engine's decode steps do: vLLM emits a token for every running sequence at the end of each step, so
streams that started a millisecond apart still send their tokens in the same moment, and a relay reading
many of them wakes once per step rather than once per stream.

    .venv/bin/python scripts/bench/paced_upstream.py --port 8799 [--ttft-ms 25] [--token-ms 15] [--steps]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

TOKEN_TEXT = " word"  # every token is the same short piece: the relay's cost, not the text, is measured


@dataclass(frozen=True)
class Pace:
    ttft_s: float
    token_s: float
    model: str
    steps: bool = False     # tokens on one clock for every stream, as an engine's decode steps
    epoch: float = 0.0      # that clock's origin (perf_counter)

    def first_token_at(self, start: float) -> float:
        """When a request that arrived at ``start`` sends its first token. Per request by default: exactly
        ``ttft_s`` later. With ``steps``, at the first step of the shared clock from then on, the way vLLM
        emits every running sequence's token at the end of the same engine step (so streams that started
        a millisecond apart still send their tokens together)."""
        due = start + self.ttft_s
        if not self.steps or self.token_s <= 0:
            return due
        return self.epoch + math.ceil((due - self.epoch) / self.token_s - 1e-9) * self.token_s


PACE = web.AppKey("pace", Pace)


def sse(obj: dict[str, Any]) -> bytes:
    """One SSE event carrying ``obj`` as compact JSON."""
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def chunk_bytes(cid: str, created: int, model: str, delta: dict[str, Any], finish: str | None) -> bytes:
    return sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})


def usage_chunk_bytes(cid: str, created: int, model: str, prompt_tokens: int, completion_tokens: int) -> bytes:
    return sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [],
                "usage": usage(prompt_tokens, completion_tokens)})


def completion_body(cid: str, created: int, model: str, text: str, prompt_tokens: int, n: int) -> dict[str, Any]:
    """A non-streamed reply of ``n`` tokens, cut at max_tokens (both engines always produce all of them)."""
    return {"id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}],
            "usage": usage(prompt_tokens, n)}


def reply_ids(request: web.Request) -> tuple[str, int]:
    """The completion id (from the caller's X-Request-Id when given) and its creation time."""
    return f"chatcmpl-{request.headers.get('X-Request-Id') or uuid.uuid4().hex}", int(time.time())


SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


def error_body(status: int, message: str) -> dict[str, Any]:
    """OpenAI's error shape, as vLLM sends it (also as an event inside a 200 stream)."""
    return {"error": {"message": message, "type": "BadRequestError" if status < 500 else "InternalServerError",
                      "code": status}}


def error_response(status: int, message: str) -> web.Response:
    return web.json_response(error_body(status, message), status=status)


async def read_chat_request(request: web.Request) -> tuple[dict[str, Any], int]:
    """The request body and its token count; ValueError (for a 400) if either is malformed."""
    body = await request.json()
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise ValueError("body must be a JSON object with a messages list")
    return body, requested_tokens(body)


def requested_tokens(body: dict[str, Any]) -> int:
    """``max_completion_tokens`` or ``max_tokens`` (16 if neither, like vLLM's completions default)."""
    n = next((body[k] for k in ("max_completion_tokens", "max_tokens") if body.get(k) is not None), 16)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"max_tokens must be a positive integer, got {n!r}")
    return n


def prompt_tokens(body: dict[str, Any]) -> int:
    """A rough count (words), enough for the usage block."""
    return sum(len(str(m.get("content") or "").split()) + 4 for m in body.get("messages") or [])


async def _sleep_until(t: float) -> None:
    delay = t - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


async def chat(request: web.Request) -> web.StreamResponse:
    pace = request.app[PACE]
    try:
        body, n = await read_chat_request(request)
    except ValueError as e:
        return error_response(400, str(e))
    first = pace.first_token_at(time.perf_counter())
    model = body.get("model") or pace.model
    cid, created = reply_ids(request)
    p_tokens = prompt_tokens(body)
    if not body.get("stream"):
        await _sleep_until(first + (n - 1) * pace.token_s)
        return web.json_response(completion_body(cid, created, model, TOKEN_TEXT * n, p_tokens, n))
    resp = web.StreamResponse(headers=SSE_HEADERS)
    await resp.prepare(request)
    token = chunk_bytes(cid, created, model, {"content": TOKEN_TEXT}, None)  # built once: every token is the same
    await resp.write(chunk_bytes(cid, created, model, {"role": "assistant", "content": ""}, None))
    for i in range(n):
        await _sleep_until(first + i * pace.token_s)  # on a schedule: no drift across tokens
        last = i == n - 1
        await resp.write(chunk_bytes(cid, created, model, {"content": TOKEN_TEXT}, "length") if last else token)
    if (body.get("stream_options") or {}).get("include_usage"):
        await resp.write(usage_chunk_bytes(cid, created, model, p_tokens, n))
    await resp.write(DONE)
    await resp.write_eof()
    return resp


async def models(request: web.Request) -> web.Response:
    pace = request.app[PACE]
    return web.json_response({"object": "list", "data": [{"id": pace.model, "object": "model", "owned_by": "bench"}]})


async def health(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def build_app(pace: Pace) -> web.Application:
    app = web.Application()
    app[PACE] = pace
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--model", default="paced", help="the id /v1/models lists (replies echo the requested model)")
    ap.add_argument("--ttft-ms", type=float, default=25.0, help="time to the first token (default: 25)")
    ap.add_argument("--token-ms", type=float, default=15.0, help="time between tokens (default: 15, ~67 tok/s a stream)")
    ap.add_argument("--steps", action="store_true",
                    help="send every stream's tokens on one shared clock, as an engine's decode steps do (the first "
                         "token then comes 0 to --token-ms after --ttft-ms)")
    args = ap.parse_args()
    pace = Pace(args.ttft_ms / 1000, args.token_ms / 1000, args.model, steps=args.steps, epoch=time.perf_counter())
    web.run_app(build_app(pace), host=args.host, port=args.port,
                access_log=None, print=None)


if __name__ == "__main__":
    main()
