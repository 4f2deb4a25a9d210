"""A small continuous-batching LLM engine in plain PyTorch behind an OpenAI-compatible streaming endpoint: the
gateway benchmark's GPU reference on a box that has PyTorch and a GPU but no vLLM wheel (an air-gapped GPU
host, for one). It is a benchmark tool, never part of the appliance.

Why not the paced stand-in: that one keeps a clock. This one does the work a real model does on the card:
its weights are random but shaped like a real model's (default Qwen2-7B: 28 layers, 28 query and 4 KV heads,
a 152k vocabulary, about 7.6 B parameters in bf16), so every decode step reads the whole model from memory
and the step time grows with the batch the way an engine's does. Requests join and leave the running batch
between steps (continuous batching): each new request is prefilled on its own, then decodes with the batch,
one token a step, greedy, always ``max_tokens`` tokens (like ``ignore_eos``). Its text comes from a store
tokenizer (ids above its vocabulary wrap round), so every token is one SSE chunk in vLLM's layout, with a
usage chunk when asked.

The engine runs on its own thread; the HTTP side is aiohttp on the main thread, as in vLLM's API server.

    python scripts/bench/torch_engine.py --port 8799 --tokenizer var/models/<llm>/tokenizer.json \\
        [--shape qwen2-7b] [--device cuda] [--slots 96] [--max-len 2048]

``--shape tiny`` and ``--device cpu`` make a toy that runs anywhere (the unit tests use it).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from aiohttp import web
from tokenizers import Tokenizer

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from scripts.bench.paced_upstream import (  # noqa: E402
    DONE,
    SSE_HEADERS,
    chunk_bytes,
    completion_body,
    error_body,
    error_response,
    health,
    read_chat_request,
    reply_ids,
    sse,
    usage_chunk_bytes,
)


@dataclass(frozen=True)
class Shape:
    """A decoder-only transformer's sizes (Llama/Qwen2 layout: RMSNorm, rotary, grouped-query attention, SwiGLU)."""
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    vocab: int


SHAPES = {
    "qwen2-7b": Shape(layers=28, hidden=3584, heads=28, kv_heads=4, head_dim=128, ffn=18944, vocab=152064),
    "qwen2-0.5b": Shape(layers=24, hidden=896, heads=14, kv_heads=2, head_dim=64, ffn=4864, vocab=151936),
    "tiny": Shape(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, ffn=128, vocab=1024),
}


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * weight


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding (rotate-half form); ``cos``/``sin`` broadcast over the heads axis."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


Attend = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (layer, q, k, v) -> out


class RandomModel:
    """Weights and a KV cache with one row per request slot. ``prefill`` runs new prompts into their slots
    and ``decode`` advances every given slot by one token; both return the greedy next token ids."""

    def __init__(self, shape: Shape, device: str, dtype: torch.dtype, slots: int, max_len: int, seed: int = 0) -> None:
        self.shape, self.device, self.dtype, self.max_len = shape, torch.device(device), dtype, max_len
        gen = torch.Generator(device=self.device).manual_seed(seed)
        s = shape

        def weight(*size: int) -> torch.Tensor:
            return (torch.randn(*size, generator=gen, device=self.device, dtype=dtype) * 0.02)

        qkv_out = (s.heads + 2 * s.kv_heads) * s.head_dim
        self.embed = weight(s.vocab, s.hidden)
        self.lm_head = weight(s.hidden, s.vocab)
        self.final_norm = torch.ones(s.hidden, device=self.device, dtype=dtype)
        self.layers = [{
            "norm1": torch.ones(s.hidden, device=self.device, dtype=dtype),
            "wqkv": weight(s.hidden, qkv_out),
            "bqkv": weight(qkv_out),
            "wo": weight(s.heads * s.head_dim, s.hidden),
            "norm2": torch.ones(s.hidden, device=self.device, dtype=dtype),
            "w_gate_up": weight(s.hidden, 2 * s.ffn),
            "w_down": weight(s.ffn, s.hidden),
        } for _ in range(s.layers)]
        cache = (s.layers, slots, max_len, s.kv_heads, s.head_dim)
        self.k_cache = torch.zeros(cache, device=self.device, dtype=dtype)
        self.v_cache = torch.zeros(cache, device=self.device, dtype=dtype)
        inv_freq = 1.0 / (10000.0 ** (torch.arange(0, s.head_dim, 2, device=self.device, dtype=torch.float32) / s.head_dim))
        angles = torch.outer(torch.arange(max_len, device=self.device, dtype=torch.float32), inv_freq)
        self.cos, self.sin = angles.cos().to(dtype), angles.sin().to(dtype)

    def parameters(self) -> int:
        tensors = [self.embed, self.lm_head] + [w for layer in self.layers for w in layer.values()]
        return sum(t.numel() for t in tensors)

    def _rope(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rotary cos and sin at each token's position, gathered once per step for every layer."""
        return self.cos[pos].unsqueeze(1), self.sin[pos].unsqueeze(1)

    def _layer(self, layer: int, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], attend: Attend) -> torch.Tensor:
        """One decoder layer over ``x`` (tokens, hidden); ``attend`` writes the cache and attends its way
        (causal within each packed prompt, or over each slot's cached prefix)."""
        s, w = self.shape, self.layers[layer]
        h = _rms_norm(x, w["norm1"])
        qkv = torch.addmm(w["bqkv"], h, w["wqkv"])
        q, k, v = qkv.split([s.heads * s.head_dim, s.kv_heads * s.head_dim, s.kv_heads * s.head_dim], dim=-1)
        n = x.shape[0]
        cos, sin = rope
        q = _rotate(q.view(n, s.heads, s.head_dim), cos, sin)
        k = _rotate(k.view(n, s.kv_heads, s.head_dim), cos, sin)
        out = attend(layer, q, k, v.view(n, s.kv_heads, s.head_dim))
        x = x + out.reshape(n, s.heads * s.head_dim) @ w["wo"]
        gate, up = (_rms_norm(x, w["norm2"]) @ w["w_gate_up"]).chunk(2, dim=-1)
        return x + (F.silu(gate) * up) @ w["w_down"]

    def _next_tokens(self, x: torch.Tensor) -> torch.Tensor:
        return (_rms_norm(x, self.final_norm) @ self.lm_head).argmax(dim=-1)

    @torch.inference_mode()
    def prefill(self, prompts: list[tuple[int, list[int]]]) -> list[int]:
        """Run several ``(slot, ids)`` prompts as one packed sequence (a block-diagonal causal mask keeps them
        apart), filling their slots' cache rows; returns each prompt's first generated token."""
        s = self.shape
        ids = [t for _, p in prompts for t in p]
        slot_t = torch.tensor([slot for slot, p in prompts for _ in p], device=self.device)
        pos = torch.tensor([i for _, p in prompts for i in range(len(p))], device=self.device)
        seq = torch.tensor([n for n, (_, p) in enumerate(prompts) for _ in p], device=self.device)
        mask = (seq.unsqueeze(1) == seq.unsqueeze(0)) & (pos.unsqueeze(0) <= pos.unsqueeze(1))  # (query, key)
        groups = s.heads // s.kv_heads

        def attend(layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            self.k_cache[layer, slot_t, pos] = k
            self.v_cache[layer, slot_t, pos] = v
            out = F.scaled_dot_product_attention(q.transpose(0, 1), k.transpose(0, 1).repeat_interleave(groups, 0),
                                                 v.transpose(0, 1).repeat_interleave(groups, 0), attn_mask=mask)
            return out.transpose(0, 1)

        x = self.embed[torch.tensor(ids, device=self.device) % s.vocab]
        rope = self._rope(pos)
        for layer in range(s.layers):
            x = self._layer(layer, x, rope, attend)
        ends = torch.tensor(list(itertools.accumulate(len(p) for _, p in prompts)), device=self.device) - 1
        return self._next_tokens(x[ends]).tolist()

    @torch.inference_mode()
    def decode(self, slots: list[int], positions: list[int], tokens: list[int]) -> list[int]:
        """One step for every given slot: feed its last token at its position, return the next tokens."""
        s = self.shape
        slot_t = torch.tensor(slots, device=self.device)
        pos = torch.tensor(positions, device=self.device)
        span = max(positions) + 1
        mask = (torch.arange(span, device=self.device).unsqueeze(0) <= pos.unsqueeze(1))[:, None, None, :]
        groups = s.heads // s.kv_heads

        def attend(layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            self.k_cache[layer, slot_t, pos] = k
            self.v_cache[layer, slot_t, pos] = v
            keys = self.k_cache[layer, slot_t, :span].transpose(1, 2)  # (batch, kv heads, span, d)
            values = self.v_cache[layer, slot_t, :span].transpose(1, 2)
            # a KV head's query group rides the "query length" axis: no copy of the cache per query head
            out = F.scaled_dot_product_attention(q.view(q.shape[0], s.kv_heads, groups, s.head_dim), keys, values,
                                                 attn_mask=mask)
            return out.reshape(q.shape[0], s.heads, s.head_dim)

        x = self.embed[torch.tensor(tokens, device=self.device)]
        rope = self._rope(pos)
        for layer in range(s.layers):
            x = self._layer(layer, x, rope, attend)
        return self._next_tokens(x).tolist()  # the step's one host sync


@dataclass(eq=False)
class Job:
    """One request inside the engine. The engine thread hands its token texts to ``out`` on the server's loop."""
    prompt: list[int]
    max_tokens: int
    out: asyncio.Queue
    slot: int = -1
    made: int = 0
    last: int = 0
    cancelled: bool = False


# What a job's queue receives each step: (token text, last one?, error message or None).
Piece = tuple[str, bool, str | None]


def _deliver(items: list[tuple[asyncio.Queue, Piece]]) -> None:
    for out, item in items:
        out.put_nowait(item)


class Engine:
    """The scheduler: a thread that admits waiting jobs into free slots (one packed prefill of up to
    ``prefill_tokens`` prompt tokens), then steps every running job once (decode), and repeats; a job leaves
    after ``max_tokens`` or when its client goes away."""

    def __init__(self, model: RandomModel, tokenizer: Tokenizer, slots: int, prefill_tokens: int = 8192) -> None:
        self.model, self.tokenizer, self.prefill_tokens = model, tokenizer, prefill_tokens
        self.vocab_text = tokenizer.get_vocab_size()
        self.free = list(range(slots))
        self.inbox: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.waiting: list[Job] = []
        self.running: list[Job] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.steps = 0
        self.step_seconds = 0.0
        self.stopped = False
        self._thread = threading.Thread(target=self._run, name="engine", daemon=True)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._thread.start()

    def submit(self, job: Job) -> None:
        self.inbox.put(job)

    def _text(self, token: int) -> str:
        return self.tokenizer.decode([token % self.vocab_text], skip_special_tokens=False) or "?"

    def _admit(self) -> list[Job]:
        admitted: list[Job] = []
        budget = self.prefill_tokens
        while self.waiting and self.free:
            job = self.waiting[0]
            if job.cancelled:
                self.waiting.pop(0)
                continue
            if admitted and len(job.prompt) > budget:
                break
            self.waiting.pop(0)
            job.slot = self.free.pop()
            budget -= len(job.prompt)
            admitted.append(job)
        return admitted

    def step(self) -> None:
        """Admit, prefill, decode, hand out this step's tokens (one wake-up of the server's loop a step)."""
        for job in [j for j in self.running if j.cancelled]:
            self.free.append(job.slot)
        stepping = [j for j in self.running if not j.cancelled]
        admitted = self._admit()
        made: list[tuple[Job, int]] = []
        out: list[tuple[asyncio.Queue, Piece]] = []
        self.running = []
        try:
            if admitted:
                made += zip(admitted, self.model.prefill([(j.slot, j.prompt) for j in admitted]), strict=True)
            if stepping:
                tokens = self.model.decode([j.slot for j in stepping], [len(j.prompt) + j.made - 1 for j in stepping],
                                           [j.last for j in stepping])
                made += zip(stepping, tokens, strict=True)
        except Exception as e:  # out of memory, a bad kernel: end this step's requests with an error, keep serving
            traceback.print_exc()
            for job in stepping + admitted:
                self.free.append(job.slot)
                out.append((job.out, ("", True, f"engine error: {type(e).__name__}: {e}")))
            made = []
        for job, token in made:
            job.made += 1
            job.last = token
            done = job.made >= job.max_tokens
            out.append((job.out, (self._text(token), done, None)))
            if done:
                self.free.append(job.slot)
            else:
                self.running.append(job)
        if out and self.loop is not None:
            try:
                self.loop.call_soon_threadsafe(_deliver, out)
            except RuntimeError:  # the server's loop is closed: nobody is left to serve
                self.stopped = True

    def stop(self) -> None:
        self.stopped = True
        self.inbox.put(None)  # wakes an idle engine

    def _run(self) -> None:
        while not self.stopped:
            if not self.running and not self.waiting:
                if (job := self.inbox.get()) is None:  # idle: block until work (or stop) arrives
                    break
                self.waiting.append(job)
            while True:
                try:
                    if (job := self.inbox.get_nowait()) is None:
                        return
                    self.waiting.append(job)
                except queue.Empty:
                    break
            started = time.perf_counter()
            self.step()
            self.steps += 1
            self.step_seconds += time.perf_counter() - started


ENGINE = web.AppKey("engine", Engine)
MODEL_ID = web.AppKey("model_id", str)


def prompt_ids(tokenizer: Tokenizer, messages: list[Any], room: int) -> list[int]:
    """The chat as ``role: content`` lines (the tokenizer's own template does not matter to a random model),
    keeping the last ``room`` tokens."""
    text = "".join(f"{m.get('role', 'user')}: {m.get('content') or ''}\n" for m in messages if isinstance(m, dict))
    ids = tokenizer.encode(text + "assistant:").ids or [0]
    return ids[-room:]


async def chat(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE]
    try:
        body, n = await read_chat_request(request)
        if n >= engine.model.max_len:
            raise ValueError(f"max_tokens must be below {engine.model.max_len}")
    except ValueError as e:
        return error_response(400, str(e))
    ids = prompt_ids(engine.tokenizer, body["messages"], engine.model.max_len - n)
    model = body.get("model") or request.app[MODEL_ID]
    cid, created = reply_ids(request)
    job = Job(ids, n, asyncio.Queue())
    engine.submit(job)
    try:
        if not body.get("stream"):
            parts = []
            while True:
                text, done, error = await job.out.get()
                if error:
                    return error_response(500, error)
                parts.append(text)
                if done:
                    break
            return web.json_response(completion_body(cid, created, model, "".join(parts), len(ids), n))
        resp = web.StreamResponse(headers=SSE_HEADERS)
        await resp.prepare(request)
        await resp.write(chunk_bytes(cid, created, model, {"role": "assistant", "content": ""}, None))
        while True:
            text, done, error = await job.out.get()
            if error:  # vLLM's way: an error event inside the 200 stream, then the end
                await resp.write(sse(error_body(500, error)))
                break
            await resp.write(chunk_bytes(cid, created, model, {"content": text}, "length" if done else None))
            if done:
                break
        if error is None and (body.get("stream_options") or {}).get("include_usage"):
            await resp.write(usage_chunk_bytes(cid, created, model, len(ids), n))
        await resp.write(DONE)
        await resp.write_eof()
        return resp
    finally:
        job.cancelled = True  # a client gone mid-stream frees its slot at the next step; a finished job is already out


async def models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": request.app[MODEL_ID], "object": "model",
                                                          "owned_by": "bench"}]})


async def stats(request: web.Request) -> web.Response:
    """Steps taken and mean step time: what the engine itself spent, for the benchmark's notes."""
    e = request.app[ENGINE]
    return web.json_response({"steps": e.steps, "mean_step_ms": 1000 * e.step_seconds / e.steps if e.steps else None,
                              "running": len(e.running), "waiting": len(e.waiting), "parameters": e.model.parameters()})


def build_app(engine: Engine, model_id: str) -> web.Application:
    app = web.Application()
    app[ENGINE] = engine
    app[MODEL_ID] = model_id
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_get("/stats", stats)

    async def start_engine(_app: web.Application) -> None:
        engine.start(asyncio.get_running_loop())

    async def stop_engine(_app: web.Application) -> None:
        engine.stop()

    app.on_startup.append(start_engine)
    app.on_cleanup.append(stop_engine)
    return app


def build_engine(shape: str, device: str, tokenizer_path: Path, slots: int, max_len: int, warmup: bool = True) -> Engine:
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = RandomModel(SHAPES[shape], device, dtype, slots, max_len)
    if warmup:  # first calls pay for kernel selection and allocator growth; do it before the port opens
        for width in (1, 16, 64):
            width = min(width, slots)
            first = model.prefill([(slot, list(range(100))) for slot in range(width)])
            model.decode(list(range(width)), [100] * width, first)
    return Engine(model, Tokenizer.from_file(str(tokenizer_path)), slots)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tokenizer", type=Path, required=True, help="a tokenizer.json from the model store")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="qwen2-7b")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--slots", type=int, default=96, help="requests that can run at once (default: 96)")
    ap.add_argument("--max-len", type=int, default=2048, help="prompt + reply tokens per request (default: 2048)")
    ap.add_argument("--model", default="torch-engine", help="the id /v1/models lists (replies echo the requested model)")
    args = ap.parse_args()
    started = time.perf_counter()
    engine = build_engine(args.shape, args.device, args.tokenizer, args.slots, args.max_len)
    params = engine.model.parameters()
    print(f"torch engine: {args.shape} ({params / 1e9:.2f} B parameters, {math.ceil(params * 2 / 2**30)} GiB in bf16) on "
          f"{args.device}, {args.slots} slots × {args.max_len} tokens; ready in {time.perf_counter() - started:.1f} s",
          flush=True)
    web.run_app(build_app(engine, args.model), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
