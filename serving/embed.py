"""Embedding role: sentence-transformers behind ``POST /v1/embeddings`` (OpenAI shape).

Requests are micro-batched across callers (``serve.batch``) so many small calls share one forward pass.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator
from ray import serve

from serving.http import ServingError, check_model_name, encodable, make_role_app

MAX_INPUTS = 2048
MAX_REQUEST_CHARS = 4_000_000      # ~ 2048 inputs of 2,000 characters: a bound on one request's tokenising
ENCODE_BATCH = 64

embed_app = make_role_app("Enclave embeddings")


class EmbeddingRequest(BaseModel):
    input: str | list[str]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    # vLLM's name and meaning: -1 cuts an input over the model's limit to its last tokens; k > 0 keeps at most
    # the last k. Without it an input over the limit is refused (ingest sizes its chunks to fit; a question
    # that is too long is cut, since its end usually says what is asked).
    truncate_prompt_tokens: int | None = Field(default=None, ge=-1)

    @field_validator("input")
    @classmethod
    def _encodable(cls, value):
        return encodable(value)


@serve.deployment(name="embed")
@serve.ingress(embed_app)
class Embedder:
    def __init__(self, model_id: str, model_dir: str, engine: dict, num_gpus: float = 0, cpu_threads: int = 1,
                 max_batch_size: int = 32, batch_wait_timeout_s: float = 0.005):
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(max(1, cpu_threads))
        self.model_id = model_id
        self.model = SentenceTransformer(model_dir, device="cuda" if num_gpus > 0 else "cpu", local_files_only=True)
        self.dimensions = int(engine.get("dimensions", self.model.get_sentence_embedding_dimension()))
        self.max_tokens = int(engine.get("max_input_tokens", self.model.max_seq_length))
        self.normalize = bool(engine.get("normalize", True))
        self._encode_batch.set_max_batch_size(max_batch_size)
        self._encode_batch.set_batch_wait_timeout_s(batch_wait_timeout_s)

    @embed_app.get("/health")
    def health(self) -> dict:
        return {"status": "ok", "role": "embed", "model": self.model_id, "dimensions": self.dimensions}

    @embed_app.post("/")
    async def embeddings(self, req: EmbeddingRequest) -> dict:
        check_model_name(req.model, self.model_id, "embed")
        texts = [req.input] if isinstance(req.input, str) else list(req.input)
        if not texts:
            raise ServingError(400, "empty_input", "input is an empty list")
        if len(texts) > MAX_INPUTS:
            raise ServingError(413, "too_many_inputs", f"{len(texts)} inputs; the limit is {MAX_INPUTS} per request")
        if req.dimensions is not None and req.dimensions != self.dimensions:
            raise ServingError(400, "unsupported_dimensions", f"this model returns {self.dimensions} dimensions, not {req.dimensions}")
        limit = self.max_tokens
        if req.truncate_prompt_tokens not in (None, -1):
            if req.truncate_prompt_tokens == 0 or req.truncate_prompt_tokens > self.max_tokens:
                raise ServingError(400, "invalid_parameter", f"truncate_prompt_tokens must be -1 or 1..{self.max_tokens}")
            limit = req.truncate_prompt_tokens
        if sum(map(len, texts)) > MAX_REQUEST_CHARS:
            raise ServingError(413, "input_too_long", f"the inputs hold {sum(map(len, texts))} characters; the limit is "
                               f"{MAX_REQUEST_CHARS} per request")
        for i, text in enumerate(texts):
            if not text.strip():
                raise ServingError(400, "empty_input", f"input[{i}] is empty")
        # Tokenising (and cutting what is too long) is CPU work: off the replica's event loop, all of it.
        texts, token_counts, over = await asyncio.to_thread(self._fit, texts, limit, req.truncate_prompt_tokens is not None)
        if over is not None:
            raise ServingError(413, "input_too_long", f"input[{over[0]}] has {over[1]} tokens; the limit is {limit}")
        vectors = await self._encode_batch(texts)
        data = []
        for i, vec in enumerate(vectors):
            emb = base64.b64encode(vec.astype("<f4").tobytes()).decode() if req.encoding_format == "base64" else vec.tolist()
            data.append({"object": "embedding", "index": i, "embedding": emb})
        total = sum(token_counts)
        return {"object": "list", "data": data, "model": self.model_id,
                "usage": {"prompt_tokens": total, "total_tokens": total}}

    def _fit(self, texts: list[str], limit: int, cut: bool) -> tuple[list[str], list[int], tuple[int, int] | None]:
        """(texts, token counts, None), each over ``limit`` cut to its last tokens when ``cut``; else the first
        input over it as (index, tokens)."""
        encoded = self.model.tokenizer(texts, add_special_tokens=True)
        counts = [len(ids) for ids in encoded["input_ids"]]
        for i, n in enumerate(counts):
            if n > limit:
                if not cut:
                    return texts, counts, (i, n)
                texts[i], counts[i] = self._last_tokens(texts[i], limit), limit
        return texts, counts, None

    def _last_tokens(self, text: str, limit: int) -> str:
        """The end of ``text`` that fits in ``limit`` tokens with the special ones, cut at a token boundary of
        the original text (offsets, not decode: a decoded WordPiece tail would be lower-cased and re-spaced)."""
        tok = self.model.tokenizer
        keep = max(1, limit - tok.num_special_tokens_to_add())
        offsets = tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        return text[offsets[-keep][0]:] if len(offsets) > keep else text

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def _encode_batch(self, requests: list[list[str]]) -> list[np.ndarray]:
        flat = [t for texts in requests for t in texts]
        # Forward passes of at most ENCODE_BATCH texts: a Serve batch of many large requests in one pass could
        # take gigabytes of activations on a GPU the other roles share.
        vecs = await asyncio.to_thread(
            self.model.encode, flat, batch_size=min(len(flat), ENCODE_BATCH), normalize_embeddings=self.normalize,
            convert_to_numpy=True
        )
        out, i = [], 0
        for texts in requests:
            out.append(vecs[i:i + len(texts)])
            i += len(texts)
        return out
