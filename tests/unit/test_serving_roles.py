"""The speech and embedding roles' own logic, with a fake engine (the real Serve app and models are in
tests/integration/test_serving_*.py): what a review found a hang-up, a tag or a lone surrogate did."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import types

import numpy as np
import pytest

from serving.audio import decode_audio
from serving.embed import EmbeddingRequest
from serving.http import ServingError
from serving.tts import SpeechRequest, TextToSpeech

TTS = getattr(TextToSpeech, "func_or_class", TextToSpeech)


def fake_voice(seen: list[tuple[str, float]], active: list[int]):
    """A TextToSpeech with an engine that takes 0.3 s a sentence and records its pace and its concurrency."""
    model = types.SimpleNamespace(length_scale=1.0)
    lock = threading.Lock()

    def synthesise(sentence: str) -> list[float]:
        with lock:
            active[0] += 1
            active[1] = max(active[1], active[0])
        for _ in range(3):
            seen.append((sentence, model.length_scale))
            time.sleep(0.1)
        with lock:
            active[0] -= 1
        return [0.1] * 100

    # The role's own methods on a plain object (an instance of Serve's wrapper class warns when collected).
    role = types.SimpleNamespace()
    role._synth_locked = lambda sentence, speed: TTS._synth_locked(role, sentence, speed)
    role.tts = types.SimpleNamespace(tts=synthesise, synthesizer=types.SimpleNamespace(
        # like coqui's segmenter: a lone tag is no sentence at all
        tts_model=model, split_into_sentences=lambda text: [] if re.fullmatch(r"\s*</?\w+>\s*", text) else [text]))
    role._lock = threading.Lock()
    return role, model


def test_a_hang_up_does_not_let_two_sentences_synthesise_at_once() -> None:
    """Serve cancels a request whose client went (a barge-in closes the TTS stream): the lock used to be
    released while the worker thread went on, so the next sentence ran beside it with its pace."""
    seen: list[tuple[str, float]] = []
    active = [0, 0]
    role, model = fake_voice(seen, active)

    async def scenario() -> None:
        first = asyncio.create_task(TTS._synth(role, "first, then the caller hangs up", 2.0))
        await asyncio.sleep(0.15)
        first.cancel()
        await TTS._synth(role, "second", 0.5)
        await asyncio.sleep(0.4)

    asyncio.run(scenario())
    assert active[1] == 1
    assert {pace for text, pace in seen if text.startswith("first")} == {0.5}        # 1.0 / 2.0, throughout
    assert {pace for text, pace in seen if text == "second"} == {2.0} and model.length_scale == 1.0


def test_a_sentence_with_nothing_to_say_is_silence_not_a_crash() -> None:
    role, _ = fake_voice([], [0, 0])
    assert asyncio.run(TTS._synth(role, "</p>", 1.0)) == b""


@pytest.mark.parametrize("model", [SpeechRequest, EmbeddingRequest])
def test_a_lone_surrogate_is_refused_as_a_bad_request(model) -> None:
    with pytest.raises(ValueError, match="surrogate"):
        model(input="hello \ud800 there")


def test_audio_that_is_not_numbers_is_refused() -> None:
    import io

    import soundfile as sf

    out = io.BytesIO()
    sf.write(out, np.full(1600, np.nan, dtype=np.float32), 16000, format="WAV", subtype="FLOAT")
    with pytest.raises(ServingError) as refused:
        decode_audio(out.getvalue())
    assert refused.value.code == "invalid_audio"
