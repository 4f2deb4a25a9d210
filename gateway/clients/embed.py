"""The serving plane's embedding role, as the knowledge base uses it: batches in, float vectors out.

OpenAI shape (``POST /v1/embeddings``), so any on-prem embedding server can stand in. Vectors travel as
base64 float32 (a quarter of the JSON size of a float list).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import httpx
import numpy as np

from gateway.errors import EnclaveError

BATCH = 32


class EmbeddingUnavailable(EnclaveError):
    """The embed role did not answer: ingest and grounded answers cannot proceed (503, retry later)."""

    status, type = 503, "service_unavailable"


class Embedder:
    def __init__(self, client: httpx.AsyncClient, model: str, dimensions: int, timeout_s: float = 60.0) -> None:
        self.client, self.model, self.dimensions, self.timeout_s = client, model, dimensions, timeout_s

    async def embed(self, texts: Sequence[str], on_batch=None, *, truncate: bool = False) -> np.ndarray:
        """(len(texts), dimensions) float32, L2-normalised by the role. ``on_batch(n)`` reports progress.
        ``truncate``: a text over the model's limit is cut to its last tokens rather than refused (a long
        question, whose end is what is asked; a chunk whose title-and-section prefix pushed it over)."""
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(texts), BATCH):
            batch = list(texts[start:start + BATCH])
            try:
                r = await self.client.post("/v1/embeddings", json={"input": batch, "encoding_format": "base64",
                                                                        **({"truncate_prompt_tokens": -1} if truncate else {})},
                                           timeout=self.timeout_s)
            except httpx.HTTPError as e:
                raise EmbeddingUnavailable("embedding_unavailable", f"the embedding role is unreachable ({type(e).__name__})") from None
            if r.status_code != 200:
                raise EmbeddingUnavailable("embedding_unavailable", f"the embedding role answered HTTP {r.status_code}: "
                                           f"{r.text[:200]}")
            for item in r.json()["data"]:
                out[start + item["index"]] = np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")
            if on_batch is not None:
                on_batch(len(batch))
        return out
