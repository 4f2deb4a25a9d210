"""The retrieval benchmark's synthetic chunks: distinct three-sentence chunks, queries never among them."""

from __future__ import annotations

import numpy as np
import pytest

from scripts.bench.retrieval import sentence_triples, triple_vectors


def _keys(triples: np.ndarray) -> set[tuple[int, ...]]:
    return {tuple(int(x) for x in t) for t in triples}


def test_triples_are_distinct_sorted_sentences() -> None:
    triples = sentence_triples(50, 5000, seed=3)
    assert triples.shape == (5000, 3)
    assert (np.diff(triples, axis=1) > 0).all()          # three different sentences, in id order
    assert len(_keys(triples)) == 5000                   # no chunk twice
    assert triples.min() >= 0 and triples.max() < 50


def test_excluded_triples_never_drawn() -> None:
    queries = sentence_triples(20, 300, seed=1)
    chunks = sentence_triples(20, 800, seed=2, exclude=queries)   # 1140 triples exist: most of the rest
    assert not _keys(chunks) & _keys(queries)
    assert len(_keys(chunks)) == 800


def test_triple_vectors_are_unit_means() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(10, 384)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    triples = np.array([[0, 1, 2], [3, 4, 9]], dtype=np.int16)
    vecs = triple_vectors(base, triples)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    want = base[[0, 1, 2]].sum(axis=0)
    assert np.allclose(vecs[0], want / np.linalg.norm(want), atol=1e-5)


def test_asking_for_more_triples_than_exist_fails() -> None:
    with pytest.raises(ValueError, match="do not exist"):
        sentence_triples(10, 121, seed=0)                # C(10, 3) = 120
