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
        self.slots = slots
        self.scratch = slots  # one more cache row: the padded rows of a bucketed decode write there
        cache = (s.layers, slots + 1, max_len, s.kv_heads, s.head_dim)
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
        slot_t = torch.tensor(slots, device=self.device)
        pos = torch.tensor(positions, device=self.device)
        tok = torch.tensor(tokens, device=self.device)
        return self.decode_tensors(slot_t, pos, tok, max(positions) + 1).tolist()  # the step's one host sync

    def decode_tensors(self, slot_t: torch.Tensor, pos: torch.Tensor, tok: torch.Tensor, span: int) -> torch.Tensor:
        """The decode step on device tensors, attending over the first ``span`` cache positions of each slot
        (masked at each one's own position): no host sync inside, so a CUDA graph can capture it."""
        s = self.shape
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

        x = self.embed[tok % s.vocab]
        rope = self._rope(pos)
        for layer in range(s.layers):
            x = self._layer(layer, x, rope, attend)
        return self._next_tokens(x)


def bucket(n: int, sizes: tuple[int, ...]) -> int:
    """The smallest size that holds ``n`` (sizes ascending; the last one must)."""
    return next(size for size in sizes if size >= n)


class BucketedDecode:
    """The decode step at a fixed set of shapes: the batch padded up to a batch bucket (its extra rows on the
    model's scratch slot, position 0) and the attention span up to a span bucket. Fixed shapes are what a
    CUDA graph needs; on a GPU the (batch, span) pairs captured before serving are replayed (others run
    eagerly, padded alike), so a step costs the
    GPU's time rather than Python launching some 700 kernels one by one (eager, a Qwen2-7B-shaped step took
    32 ms on an H200 whatever the batch; vLLM replays graphs the same way). Without CUDA it runs the same
    padded shapes eagerly, which is how the unit tests check that padding changes no token."""

    def __init__(self, model: RandomModel, batch_sizes: tuple[int, ...], span_sizes: tuple[int, ...],
                 graphs: bool) -> None:
        self.model = model
        self.batch_sizes = tuple(sorted({min(b, model.slots) for b in batch_sizes} | {model.slots}))
        self.span_sizes = tuple(sorted({min(sp, model.max_len) for sp in span_sizes} | {model.max_len}))
        dev = model.device
        # Per batch bucket: one (3, batch) buffer of slots, positions and tokens, which the graphs read.
        self.inputs = {b: torch.zeros(3, b, dtype=torch.long, device=dev) for b in self.batch_sizes}
        self.outputs: dict[tuple[int, int], torch.Tensor] = {}
        self.graphs: dict[tuple[int, int], Any] = {}
        self.pool = torch.cuda.graph_pool_handle() if graphs else None

    def _fill(self, batch: int, slots: list[int], positions: list[int], tokens: list[int]) -> torch.Tensor:
        pad = batch - len(slots)
        host = torch.tensor([slots + [self.model.scratch] * pad, positions + [0] * pad, tokens + [0] * pad],
                            dtype=torch.long)
        buf = self.inputs[batch]
        buf.copy_(host)
        return buf

    def _eager(self, buf: torch.Tensor, span: int) -> torch.Tensor:
        return self.model.decode_tensors(buf[0], buf[1], buf[2], span)

    def capture(self, batch: int, span: int) -> None:
        """Record the step at (batch, span) once, on scratch inputs (the warm-up runs and the capture write only
        the scratch row), after two warm-up runs on a side stream as CUDA graphs want. Before serving only: it
        overwrites the batch's input buffer."""
        buf = self._fill(batch, [], [], [])
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(2):
                self._eager(buf, span)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph, pool=self.pool):
            self.outputs[(batch, span)] = self._eager(buf, span)
        self.graphs[(batch, span)] = graph

    @torch.inference_mode()
    def decode(self, slots: list[int], positions: list[int], tokens: list[int]) -> list[int]:
        """One step; a (batch, span) not captured before serving runs eagerly (padded alike): capturing it here
        would stall every running request for its warm-up runs."""
        batch, span = bucket(len(slots), self.batch_sizes), bucket(max(positions) + 1, self.span_sizes)
        buf = self._fill(batch, slots, positions, tokens)
        if (batch, span) not in self.graphs:
            return self._eager(buf, span)[:len(slots)].tolist()
        return self._replay(batch, span)[:len(slots)].tolist()

    def _replay(self, batch: int, span: int) -> torch.Tensor:
        """Replay a captured step on the inputs already in its batch's buffer. The graphs share one memory pool,
        so an output is only good until another graph replays: read it at once."""
        self.graphs[(batch, span)].replay()
        return self.outputs[(batch, span)]

    @torch.inference_mode()
    def matches_eager(self, shapes: list[tuple[int, int]], seed: int = 0) -> float:
        """Replay each captured (batch, span) on random inputs and compare with the same padded step run
        eagerly; returns the share of tokens that agree. cuBLAS may pick other kernels under capture, so a
        near-tie in bf16 can flip a token now and then; a wrong graph (stale buffers, a bad capture) agrees
        on almost none. Run before serving, on free slots."""
        gen = torch.Generator().manual_seed(seed)
        same = total = 0
        for batch, span in shapes:
            n = max(1, batch - 1)          # leave a padded row in (batch 1: none)
            slots = list(range(n))
            positions = torch.randint(0, span, (n,), generator=gen).tolist()
            positions[0] = span - 1        # the span's last position is used
            tokens = torch.randint(0, self.model.shape.vocab, (n,), generator=gen).tolist()
            buf = self._fill(batch, slots, positions, tokens)
            eager = self._eager(buf, span)[:n].tolist()
            replayed = self._replay(batch, span)[:n].tolist()   # this very graph, whatever bucket n would pick
            same += sum(a == b for a, b in zip(eager, replayed, strict=True))
            total += n
        return same / total if total else 1.0


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

    def __init__(self, model: RandomModel, tokenizer: Tokenizer, slots: int, prefill_tokens: int = 8192,
                 decode: Callable[[list[int], list[int], list[int]], list[int]] | None = None) -> None:
        self.model, self.tokenizer, self.prefill_tokens = model, tokenizer, prefill_tokens
        self.decode = decode or model.decode  # the model's own (eager), or BucketedDecode's (CUDA graphs)
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
                tokens = self.decode([j.slot for j in stepping], [len(j.prompt) + j.made - 1 for j in stepping],
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
    return web.json_response({"decode": "eager" if e.decode == e.model.decode else "cuda-graphs", "steps": e.steps,
                              "mean_step_ms": 1000 * e.step_seconds / e.steps if e.steps else None,
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


BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128)
SPAN_BUCKETS = (128, 256, 512, 1024, 2048, 4096)


def build_engine(shape: str, device: str, tokenizer_path: Path, slots: int, max_len: int, warmup: bool = True,
                 cuda_graphs: bool = True) -> Engine:
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = RandomModel(SHAPES[shape], device, dtype, slots, max_len)
    if warmup:  # first calls pay for kernel selection and allocator growth; do it before the port opens
        for width in (1, 16, 64):
            width = min(width, slots)
            first = model.prefill([(slot, list(range(100))) for slot in range(width)])
            model.decode(list(range(width)), [100] * width, first)
    decode = None
    if cuda_graphs and device.startswith("cuda"):
        graphs = BucketedDecode(model, BATCH_BUCKETS, SPAN_BUCKETS, graphs=True)
        try:
            # the spans a chat benchmark reaches (short prompt + 64 tokens), every batch size; others on first use
            shapes = [(b, sp) for b in graphs.batch_sizes for sp in graphs.span_sizes[:2]]
            for b, sp in shapes:
                graphs.capture(b, sp)
            agree = graphs.matches_eager(shapes[:: max(1, len(shapes) // 6)])
            if agree >= 0.9:
                decode = graphs.decode
            else:
                print(f"torch engine: CUDA-graph decode agrees with eager on {agree:.0%} of tokens; decoding eagerly",
                      flush=True)
        except Exception as e:  # an old driver, a kernel that will not capture: the eager step still works
            print(f"torch engine: no CUDA graphs ({type(e).__name__}: {e}); decoding eagerly", flush=True)
    return Engine(model, Tokenizer.from_file(str(tokenizer_path)), slots, decode=decode)


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
    ap.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=True,
                    help="on CUDA, replay the decode step as CUDA graphs per (batch, span) bucket (default: on)")
    args = ap.parse_args()
    started = time.perf_counter()
    engine = build_engine(args.shape, args.device, args.tokenizer, args.slots, args.max_len, cuda_graphs=args.cuda_graphs)
    params = engine.model.parameters()
    print(f"torch engine: {args.shape} ({params / 1e9:.2f} B parameters, {math.ceil(params * 2 / 2**30)} GiB in bf16) on "
          f"{args.device}, {args.slots} slots × {args.max_len} tokens, "
          f"{'CUDA-graph' if engine.decode != engine.model.decode else 'eager'} decode; ready in {time.perf_counter() - started:.1f} s",
          flush=True)
    web.run_app(build_app(engine, args.model), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
