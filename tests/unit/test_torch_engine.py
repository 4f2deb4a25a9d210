"""The benchmark's PyTorch engine (scripts/bench/torch_engine.py) on CPU with its toy shape: the KV cache and
the packed prefill give the same tokens as running each sequence from scratch, and its HTTP side streams
what the gateway benchmark counts, under concurrency, with a slot freed when a client leaves."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import torch

from scripts.bench.gateway import request_body
from scripts.bench.llm_stream import make_session, stream_chat
from scripts.bench.torch_engine import SHAPES, RandomModel, build_app, build_engine
from tests.loopback import serving


@pytest.fixture
def tokenizer_file(tmp_path: Path) -> Path:
    """A word-level tokenizer (the engine only needs ``encode``, ``decode`` and a vocabulary size)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["[UNK]", "user", "assistant", "system", ":", "hi", "tell", "me", "a", "story", "."]
    vocab = {w: i for i, w in enumerate(words + [f"w{i}" for i in range(100)])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    return path


def _model(slots: int = 4) -> RandomModel:
    return RandomModel(SHAPES["tiny"], "cpu", torch.float32, slots=slots, max_len=64, seed=1)


def test_decode_from_the_cache_matches_a_fresh_prefill() -> None:
    model = _model()
    prompt = [5, 17, 300, 42, 9]
    tokens = model.prefill([(2, prompt)])
    for _ in range(6):
        tokens += model.decode([2], [len(prompt) + len(tokens) - 1], [tokens[-1]])
    # the same continuation, each token from a from-scratch prefill of everything before it, in another slot
    for i in range(1, len(tokens)):
        assert model.prefill([(0, prompt + tokens[:i])]) == [tokens[i]]


def test_packed_prefill_keeps_prompts_apart_and_batched_decode_matches_single() -> None:
    model = _model()
    a, b = [1, 2, 3, 4, 5, 6, 7], [900, 800, 700]
    alone = [model.prefill([(0, a)])[0], model.prefill([(1, b)])[0]]
    packed = model.prefill([(2, a), (3, b)])
    assert packed == alone
    one = [model.decode([0], [len(a)], [alone[0]])[0], model.decode([1], [len(b)], [alone[1]])[0]]
    assert model.decode([2, 3], [len(a), len(b)], packed) == one


async def _with_engine(tokenizer: Path, slots: int, body) -> object:
    engine = build_engine("tiny", "cpu", tokenizer, slots=slots, max_len=256, warmup=False)
    async with serving(build_app(engine, "torch-engine")) as port, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=60) as client:
        return await body(client, engine)


def test_streams_every_token_as_a_chunk_to_concurrent_clients(tokenizer_file: Path) -> None:
    async def calls(client: httpx.AsyncClient, engine) -> list[dict]:
        async with make_session(str(client.base_url).rstrip("/")) as session:  # the benchmark's own client
            return await asyncio.gather(*(stream_chat(session, request_body("torch-engine", 12)) for _ in range(6)))

    results = asyncio.run(_with_engine(tokenizer_file, 4, calls))  # six clients on four slots: two wait for a free one
    for r in results:
        assert r["ok"] and r["usage"] and r["finish"] == "length"
        assert r["tokens"] == r["chunks"] == 12


def test_malformed_requests_and_a_client_leaving(tokenizer_file: Path) -> None:
    async def calls(client: httpx.AsyncClient, engine) -> tuple:
        bad_json = await client.post("/v1/chat/completions", content=b"{nope")
        too_long = await client.post("/v1/chat/completions", json={"messages": [], "max_tokens": 256})
        plain = await client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}],
                                                                "max_tokens": 3})
        async with client.stream("POST", "/v1/chat/completions", json=request_body("x", 200)) as resp:
            async for _line in resp.aiter_lines():
                break  # leave after the first line: the engine must free the slot
        for _ in range(200):
            if len(engine.free) == 1 and not engine.running:
                break
            await asyncio.sleep(0.02)
        return bad_json, too_long, plain, len(engine.free), (await client.get("/stats")).json()

    bad_json, too_long, plain, free, stats = asyncio.run(_with_engine(tokenizer_file, 1, calls))
    assert bad_json.status_code == 400 and bad_json.json()["error"]["message"]
    assert too_long.status_code == 400 and "max_tokens" in too_long.json()["error"]["message"]
    assert plain.status_code == 200 and plain.json()["usage"]["completion_tokens"] == 3
    assert free == 1
    assert stats["steps"] > 0 and stats["running"] == 0


def test_an_engine_failure_ends_its_requests_with_an_error_and_the_engine_keeps_serving(tokenizer_file: Path) -> None:
    async def calls(client: httpx.AsyncClient, engine) -> tuple:
        real_decode = engine.decode
        failures = []

        def decode_once_broken(*args):
            if not failures:
                failures.append(1)
                raise RuntimeError("CUDA out of memory (simulated)")
            return real_decode(*args)

        engine.decode = decode_once_broken
        broken = await client.post("/v1/chat/completions", json=request_body("x", 5))   # streamed: an error event
        plain = await client.post("/v1/chat/completions", json={"messages": [], "max_tokens": 4})
        return broken, plain, list(engine.free)

    broken, plain, free = asyncio.run(_with_engine(tokenizer_file, 2, calls))
    assert broken.status_code == 200
    events = [line.removeprefix("data: ") for line in broken.text.splitlines() if line.startswith("data: ")]
    assert "CUDA out of memory" in events[-2] and '"error"' in events[-2] and events[-1] == "[DONE]"
    assert plain.status_code == 200 and plain.json()["usage"]["completion_tokens"] == 4
    assert sorted(free) == [0, 1]  # the failed request's slot came back


def test_bucketed_decode_pads_batch_and_span_without_changing_a_token() -> None:
    """What the CUDA graphs replay, run eagerly: the batch padded to its bucket on the scratch slot, the
    attention span padded to its bucket. Every token must be the exact step's."""
    from scripts.bench.torch_engine import BucketedDecode, bucket

    assert bucket(1, (1, 2, 4)) == 1 and bucket(3, (1, 2, 4)) == 4 and bucket(4, (1, 2, 4)) == 4
    exact, padded = _model(slots=6), _model(slots=6)
    buckets = BucketedDecode(padded, (1, 2, 4, 8), (8, 16, 32), graphs=False)
    assert buckets.batch_sizes == (1, 2, 4, 6) and buckets.span_sizes == (8, 16, 32, 64)  # capped by slots, max_len
    prompts = [(0, [1, 2, 3]), (1, [7, 8, 9, 10, 11, 12, 13, 14, 15]), (2, [40]), (4, [5] * 20), (5, [6, 6])]
    tokens = exact.prefill(prompts)
    assert padded.prefill(prompts) == tokens
    slots, positions = [slot for slot, _ in prompts], [len(p) for _, p in prompts]
    for _ in range(4):
        step = exact.decode(slots, positions, tokens)
        assert buckets.decode(slots, positions, tokens) == step          # 5 rows padded to 6, spans 21.. to 32
        assert buckets.decode(slots[:3], positions[:3], tokens[:3]) == exact.decode(slots[:3], positions[:3], tokens[:3])
        tokens, positions = step, [p + 1 for p in positions]
    assert not padded.k_cache[:, 3].any()                                # the free slot was never written
