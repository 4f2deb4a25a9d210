"""Intent classification from a pack's examples: a multinomial logistic regression over sentence
embeddings, trained in numpy when the pack changes and cached by a hash of what it was trained on.

Why this shape: the embedding call is the expensive part and happens once per utterance anyway (the
knowledge base uses the same model); the classifier on top is two small matrix products, so it runs at
tens of thousands of utterances a second on one core. Confidence is the top class's probability; the
similarity to the nearest training example tells an off-topic utterance from an ambiguous one (the
first gets no intent, the second may go to the LLM).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger("enclave.gateway.intents")

CLASSIFIER_VERSION = "lr-v1"
_FILLERS = re.compile(r"\b(?:um+|uh+|erm+|er|ah+|hmm+|like|you know|i mean|so|well|okay|ok|yeah|please|pls|plz)\b")
_NON_WORD = re.compile(r"[^\w€£$%' ]+")
_SPACES = re.compile(r"\s+")

Embed = Callable[[Sequence[str]], Awaitable[np.ndarray]]


def normalise_utterance(text: str) -> str:
    """Chat and speech-to-text write the same request differently; this removes what differs (case,
    punctuation, fillers) so the classifier sees one style."""
    lowered = text.lower()
    words = _NON_WORD.sub(" ", lowered)
    stripped = _SPACES.sub(" ", _FILLERS.sub(" ", words)).strip()
    # Never empty (the embedding role refuses empty input): fillers alone stay, symbols alone stay as typed.
    return stripped or _SPACES.sub(" ", words).strip() or _SPACES.sub(" ", lowered).strip() or "(empty)"


@dataclass(frozen=True)
class IntentScore:
    intent: str
    confidence: float                       # the top class's probability
    similarity: float                       # cosine to the nearest training example
    ranked: tuple[tuple[str, float], ...]   # top candidates, best first


@dataclass
class IntentModel:
    labels: list[str]
    weights: np.ndarray          # (dims, classes)
    bias: np.ndarray             # (classes,)
    examples: np.ndarray         # (n, dims), unit rows: for the nearest-example similarity
    trained_on: str              # sha256 of the model id, labels and examples

    def scores(self, vectors: np.ndarray, top: int = 3) -> list[IntentScore]:
        """Scores for a batch of unit-normalised embeddings."""
        logits = vectors @ self.weights + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        nearest = (vectors @ self.examples.T).max(axis=1)
        order = np.argsort(-probs, axis=1)[:, :top]
        out = []
        for i in range(len(vectors)):
            ranked = tuple((self.labels[j], float(probs[i, j])) for j in order[i])
            out.append(IntentScore(ranked[0][0], ranked[0][1], float(nearest[i]), ranked))
        return out

    def probability(self, vectors: np.ndarray, label: str) -> np.ndarray:
        """P(label) for each row (e.g. "attack" for the guard's model)."""
        logits = vectors @ self.weights + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        return probs[:, self.labels.index(label)]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, weights=self.weights, bias=self.bias, examples=self.examples,
                 labels=np.array(self.labels), trained_on=np.array(self.trained_on))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> IntentModel:
        with np.load(path, allow_pickle=False) as z:
            return cls([str(x) for x in z["labels"]], z["weights"], z["bias"], z["examples"], str(z["trained_on"]))


def training_key(model_id: str, examples: dict[str, list[str]]) -> str:
    blob = json.dumps({"v": CLASSIFIER_VERSION, "model": model_id, "examples": examples}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)).astype(np.float32)


def fit(vectors: np.ndarray, y: np.ndarray, n_classes: int, *, l2: float = 1e-3, epochs: int = 400,
        lr: float = 2.0, scale: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
    """Softmax regression by full-batch gradient descent (a few hundred examples: milliseconds). The
    inputs are scaled so a unit vector's logits can separate classes without huge weights."""
    x = vectors * scale
    n, d = x.shape
    w = np.zeros((d, n_classes), dtype=np.float32)
    b = np.zeros(n_classes, dtype=np.float32)
    onehot = np.eye(n_classes, dtype=np.float32)[y]
    for _ in range(epochs):
        logits = x @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) / n
        w -= lr * (x.T @ g + l2 * w)
        b -= lr * g.sum(axis=0)
    return (w * scale).astype(np.float32), b.astype(np.float32)


async def train(examples: dict[str, list[str]], embed: Embed, model_id: str, cache_dir: Path | None = None) -> IntentModel:
    """The classifier for these examples: from the cache when the same examples and embedding model were
    trained before, else trained now (and cached)."""
    key = training_key(model_id, examples)
    path = cache_dir / f"intents-{key[:24]}.npz" if cache_dir else None
    if path is not None and path.is_file():
        try:
            model = IntentModel.load(path)
            if model.trained_on == key:
                return model
        except (OSError, ValueError, KeyError):
            log.warning("intent cache unreadable; retraining", extra={"path": str(path)})
    t0 = time.perf_counter()
    labels = sorted(examples)
    texts, y = [], []
    for i, label in enumerate(labels):
        for ex in examples[label]:
            texts.append(normalise_utterance(ex))
            y.append(i)
    vectors = _unit(np.asarray(await embed(texts), dtype=np.float32))
    weights, bias = fit(vectors, np.array(y), len(labels))
    model = IntentModel(labels, weights, bias, vectors, key)
    if path is not None:
        model.save(path)
    log.info("intent classifier trained", extra={"intents": len(labels), "examples": len(texts),
                                                 "ms": round((time.perf_counter() - t0) * 1000, 1)})
    return model


class IntentClassifier:
    """A trained model plus the embedding call: what the understand stage uses."""

    def __init__(self, model: IntentModel, embed: Embed) -> None:
        self.model, self.embed = model, embed

    async def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """Unit embeddings of the normalised texts: computed once per turn, shared by the guard's semantic
        check and the intent classifier."""
        return _unit(np.asarray(await self.embed([normalise_utterance(t) for t in texts]), dtype=np.float32))

    async def classify(self, texts: Sequence[str]) -> list[IntentScore]:
        return self.model.scores(await self.vectors(texts))
