"""The intent classifier's training and cache, and the pack registry's reload, with a stand-in embedding
(bag of hashed words) so the logic runs without a model; the real MiniLM is exercised in
tests/integration/test_dialogue.py."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from pathlib import Path

import numpy as np

from gateway.dialogue.intents import normalise_utterance, train
from gateway.dialogue.registry import PackRegistry

EXAMPLE = Path(__file__).resolve().parents[2] / "packs" / "retail-bank"


class BagOfWords:
    """Counts its calls: a cache hit must not embed anything."""

    def __init__(self) -> None:
        self.calls = 0
        self.model = "bag-of-words"

    async def embed(self, texts):
        self.calls += 1
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % 64] += 1.0
        return out + 1e-3


EXAMPLES = {"balance": ["what is my balance", "how much money do i have", "show my balance"],
            "lost_card": ["i lost my card", "my card is lost", "cannot find my card"],
            "hours": ["when are you open", "opening hours", "what time do you close"]}


def test_normalising_makes_typed_and_spoken_styles_alike() -> None:
    assert normalise_utterance("Um, uh... what's my BALANCE??") == normalise_utterance("what's my balance")
    assert normalise_utterance("um") == "um"          # nothing but filler: kept rather than emptied


def test_training_is_cached_by_examples_and_model(tmp_path: Path) -> None:
    emb = BagOfWords()
    model = asyncio.run(train(EXAMPLES, emb.embed, emb.model, tmp_path))
    assert emb.calls == 1 and len(list(tmp_path.glob("intents-*.npz"))) == 1
    vectors = asyncio.run(emb.embed(["how much money is in my balance", "i lost my card yesterday"]))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = model.scores(vectors)
    assert [s.intent for s in scores] == ["balance", "lost_card"] and scores[0].confidence > 0.5
    emb.calls = 1   # not counting the test's own embedding above
    again = asyncio.run(train(EXAMPLES, emb.embed, emb.model, tmp_path))
    assert emb.calls == 1 and np.array_equal(again.weights, model.weights)      # from the cache
    changed = {**EXAMPLES, "hours": [*EXAMPLES["hours"], "are you open on sunday"]}
    asyncio.run(train(changed, emb.embed, emb.model, tmp_path))
    assert emb.calls == 2 and len(list(tmp_path.glob("intents-*.npz"))) == 2   # a new pack version retrains
    asyncio.run(train(EXAMPLES, emb.embed, "another-model", tmp_path))
    assert emb.calls == 3                                                      # … and so does another model


def test_the_registry_reloads_a_changed_pack_and_keeps_the_last_good_one(tmp_path: Path) -> None:
    folder = tmp_path / "pack"
    shutil.copytree(EXAMPLE, folder)
    emb = BagOfWords()
    registry = PackRegistry([folder], pool=None, embedder=emb, cache_dir=tmp_path / "cache", check_every_s=0)
    registry._by_tenant_id["t1"] = "demo-bank"     # what the tenants table would say
    lp = asyncio.run(registry.resolve("t1"))
    assert lp.classifier is not None and "check_balance" in lp.classifier.model.labels
    assert lp.guard_model is not None and lp.guard_model.labels == ["attack", "benign"]
    first = emb.calls          # the intents and the guard's attack/benign model
    intents = folder / "intents.yaml"
    intents.write_text(intents.read_text() + "\n  mortgage_holiday:\n    description: pause mortgage payments\n"
                       "    examples: [pause my mortgage, mortgage payment holiday, skip a mortgage payment]\n")
    lp = asyncio.run(registry.resolve("t1"))
    assert "mortgage_holiday" in lp.classifier.model.labels and emb.calls == 2 * first   # retrained
    good = lp.pack.sha256
    intents.write_text(intents.read_text().replace("flow: balance", "flow: no_such_flow"))
    lp = asyncio.run(registry.resolve("t1"))
    assert lp.pack.sha256 == good and emb.calls == 2 * first                         # the broken edit is refused
    assert registry.for_tenant_id("t1").id == "retail-bank" and registry.for_tenant_id("t2") is None
