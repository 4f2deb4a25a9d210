"""Text-to-speech role: coqui-tts behind ``POST /v1/audio/speech``.

The reply streams raw PCM16 (little-endian, mono) sentence by sentence as it is synthesised, so a
voice pipeline can start playing before the whole text is spoken; ``X-Sample-Rate`` says the rate.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import AsyncIterator
from typing import Literal

import numpy as np
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, field_validator
from ray import serve

from serving.http import ServingError, check_model_name, encodable, make_role_app

MAX_INPUT_CHARS = 4096  # OpenAI's limit for /v1/audio/speech
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")

tts_app = make_role_app("Enclave text-to-speech")
log = logging.getLogger("enclave.serving.tts")


class SpeechRequest(BaseModel):
    input: str
    model: str | None = None
    voice: str = "default"
    response_format: Literal["pcm"] = "pcm"
    speed: float = Field(1.0, ge=0.25, le=4.0)

    @field_validator("input")
    @classmethod
    def _encodable(cls, value):
        return encodable(value)


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def to_pcm16(wav) -> bytes:
    samples = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)
    return (samples * 32767.0).astype("<i2").tobytes()


@serve.deployment(name="tts")
@serve.ingress(tts_app)
class TextToSpeech:
    def __init__(self, model_id: str, model_dir: str, engine: dict, num_gpus: float = 0, cpu_threads: int = 1):
        import torch
        from TTS.api import TTS

        torch.set_num_threads(max(1, cpu_threads))
        self.model_id = model_id
        self.voices = list(engine.get("voices", ["default"]))
        model_file = engine.get("model_file", "model.pth")
        self.tts = TTS(model_path=f"{model_dir}/{model_file}", config_path=f"{model_dir}/config.json", progress_bar=False)
        self.tts.to("cuda" if num_gpus > 0 else "cpu")
        self.sample_rate = int(self.tts.synthesizer.output_sample_rate)
        # coqui's synthesizer is not thread-safe. A thread lock, held by the worker thread itself: an asyncio lock
        # was released when a client hung up (a barge-in), while its thread went on synthesising.
        self._lock = threading.Lock()

    @tts_app.get("/health")
    def health(self) -> dict:
        return {"status": "ok", "role": "tts", "model": self.model_id, "sample_rate": self.sample_rate, "voices": self.voices}

    @tts_app.post("/")
    async def speech(self, req: SpeechRequest) -> StreamingResponse:
        check_model_name(req.model, self.model_id, "tts")
        text = req.input.strip()
        if not text:
            raise ServingError(400, "empty_input", "input is empty: nothing to say")
        if len(text) > MAX_INPUT_CHARS:
            raise ServingError(413, "input_too_long", f"input has {len(text)} characters; the limit is {MAX_INPUT_CHARS}")
        if req.voice not in self.voices:
            raise ServingError(400, "unknown_voice", f"voice '{req.voice}' is not available (voices: {', '.join(self.voices)})")
        if req.speed != 1.0 and not hasattr(getattr(self.tts.synthesizer, "tts_model", None), "length_scale"):
            raise ServingError(400, "unsupported_parameter", "this voice speaks at one pace: speed must be 1.0")
        sentences = split_sentences(text)
        # Synthesise the first sentence before answering, so a failing engine is a clean 5xx, not a cut stream.
        first = await self._synth(sentences[0], req.speed)
        return StreamingResponse(
            self._stream(first, sentences[1:], req.speed),
            media_type=f"audio/pcm;rate={self.sample_rate};encoding=signed-int;bits=16;channels=1",
            headers={"X-Sample-Rate": str(self.sample_rate), "X-Audio-Format": "pcm_s16le"},
        )

    async def _stream(self, first: bytes, rest: list[str], speed: float) -> AsyncIterator[bytes]:
        yield first
        for sentence in rest:
            try:
                pcm = await self._synth(sentence, speed)
            except Exception:   # the reply is under way: end it well-formed with what was said, not cut it
                log.exception("a sentence could not be synthesised; ending the reply there")
                return
            yield pcm

    async def _synth(self, sentence: str, speed: float) -> bytes:
        return await asyncio.to_thread(self._synth_locked, sentence, speed)

    def _synth_locked(self, sentence: str, speed: float) -> bytes:
        """In a worker thread, under the lock: the pace and the synthesis of one sentence."""
        synthesizer = self.tts.synthesizer
        if not synthesizer.split_into_sentences(sentence):
            return b""   # nothing coqui can voice ("<pause>", "</p>"): it divided by zero audio on it
        # coqui's VITS ignores tts(speed=…); its pace is the model's length_scale (longer = slower), set for
        # this sentence and put back, by the thread that synthesises it.
        model = getattr(synthesizer, "tts_model", None)
        paced = speed != 1.0 and hasattr(model, "length_scale")
        with self._lock:
            base = model.length_scale if paced else None
            if paced:
                model.length_scale = base / speed
            try:
                wav = self.tts.tts(sentence)
            finally:
                if paced:
                    model.length_scale = base
        return to_pcm16(wav)
