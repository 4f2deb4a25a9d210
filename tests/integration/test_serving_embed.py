"""The embedding role: real all-MiniLM-L6-v2 through sentence-transformers, OpenAI shape."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.integration


def embed(serving: httpx.Client, texts: list[str]) -> np.ndarray:
    r = serving.post("/v1/embeddings", json={"input": texts, "model": "minilm-l6"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["usage"]["prompt_tokens"] > 0
    assert [d["index"] for d in body["data"]] == list(range(len(texts)))
    return np.array([d["embedding"] for d in body["data"]])


def test_dimension_and_similarity(serving: httpx.Client) -> None:
    v = embed(serving, [
        "How do I block my lost credit card?",
        "My bank card was stolen, please freeze it.",
        "The recipe needs two cups of flour and an egg.",
    ])
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-3)
    similar, unrelated = float(v[0] @ v[1]), float(v[0] @ v[2])
    assert similar > unrelated + 0.2, (similar, unrelated)


def test_base64_matches_float(serving: httpx.Client) -> None:
    text = "branch opening hours"
    f = embed(serving, [text])[0]
    r = serving.post("/v1/embeddings", json={"input": text, "encoding_format": "base64"})
    b = np.frombuffer(base64.b64decode(r.json()["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(f, b, atol=1e-6)


@pytest.mark.parametrize("body, status, code", [
    ({"input": []}, 400, "empty_input"),
    ({"input": ["ok", ""]}, 400, "empty_input"),
    ({"input": "word " * 2000}, 413, "input_too_long"),
    ({"input": "x", "dimensions": 1024}, 400, "unsupported_dimensions"),
    ({"input": "x", "model": "text-embedding-3-large"}, 404, "model_not_found"),
    ({"input": [1, 2, 3]}, 400, "invalid_request"),
])
def test_bad_embedding_requests(serving: httpx.Client, body: dict, status: int, code: str) -> None:
    r = serving.post("/v1/embeddings", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_truncation_keeps_the_end_of_an_input(serving: httpx.Client) -> None:
    """vLLM's ``truncate_prompt_tokens``: -1 cuts an input over the limit to its last tokens (how the gateway
    embeds a long question, whose end says what is asked); without it the same input is refused (413 above)."""
    question = "what is the overdraft fee on my current account"
    filler = "the quick brown fox jumps over the lazy dog " * 80
    r = serving.post("/v1/embeddings", json={"input": [filler + question, question + " " + filler, question],
                                             "truncate_prompt_tokens": -1})
    assert r.status_code == 200, r.text
    ends, starts, alone = (np.asarray(d["embedding"], dtype=np.float32) for d in r.json()["data"])
    assert float(ends @ alone) > float(starts @ alone) + 0.1, (float(ends @ alone), float(starts @ alone))
    limit = serving.post("/v1/embeddings", json={"input": filler + question}).json()["error"]["message"].rsplit(" ", 1)[1]
    question_tokens = serving.post("/v1/embeddings", json={"input": question}).json()["usage"]["prompt_tokens"]
    assert r.json()["usage"]["prompt_tokens"] == 2 * int(limit) + question_tokens   # the cut inputs count at the limit
    bad = serving.post("/v1/embeddings", json={"input": "x", "truncate_prompt_tokens": 100_000})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_parameter"


def test_malformed_json_is_a_400(serving: httpx.Client) -> None:
    r = serving.post("/v1/embeddings", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_request"
