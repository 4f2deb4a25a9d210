"""Typed clients for the speech roles: STT (``/v1/audio/transcriptions``) and TTS (``/v1/audio/speech``,
streamed PCM16), plus a local fallback voice (espeak-ng) so a caller never hears dead air when the TTS
role is down."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import shutil
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from gateway.errors import EnclaveError

log = logging.getLogger("enclave.gateway.speech")


class SpeechUnavailable(EnclaveError):
    status, type = 503, "service_unavailable"


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str | None
    duration_s: float


class SpeechToText:
    def __init__(self, client: httpx.AsyncClient, timeout_s: float = 30.0) -> None:
        self.client, self.timeout_s = client, timeout_s

    async def transcribe(self, pcm16: bytes, sample_rate: int, language: str | None = None) -> Transcript:
        params = {"sample_rate": str(sample_rate), **({"language": language} if language else {})}
        try:
            r = await self.client.post("/v1/audio/transcriptions", params=params, content=pcm16,
                                       headers={"content-type": "audio/pcm"}, timeout=self.timeout_s)
        except httpx.HTTPError as e:
            raise SpeechUnavailable("stt_unavailable", f"speech-to-text is unreachable ({type(e).__name__})") from e
        if r.status_code != 200:
            raise SpeechUnavailable("stt_unavailable", f"speech-to-text answered HTTP {r.status_code}")
        try:   # a 200 that is not the transcript object is the role failing too: the call says "say that again"
            body = r.json()
            return Transcript((body.get("text") or "").strip(), body.get("language"), float(body.get("duration") or 0.0))
        except (ValueError, AttributeError, TypeError) as e:
            raise SpeechUnavailable("stt_unavailable", f"speech-to-text answered something else ({type(e).__name__})") from e


class TextToSpeech:
    """Streams PCM16 chunks of one text; ``sample_rate`` is known once the response headers arrive."""

    name = "tts"

    def __init__(self, client: httpx.AsyncClient, voice: str = "default", timeout_s: float = 30.0) -> None:
        self.client, self.voice, self.timeout_s = client, voice, timeout_s

    async def stream(self, text: str) -> AsyncIterator[tuple[int, bytes]]:
        """(sample rate, PCM16 chunk) pairs. Raises SpeechUnavailable before the first chunk on failure."""
        try:
            async with self.client.stream("POST", "/v1/audio/speech", json={"input": text, "voice": self.voice},
                                          timeout=self.timeout_s) as r:
                if r.status_code != 200:
                    raise SpeechUnavailable("tts_unavailable", f"text-to-speech answered HTTP {r.status_code}")
                rate = int(r.headers.get("x-sample-rate", "22050"))
                carry = b""
                async for chunk in r.aiter_bytes():
                    chunk = carry + chunk
                    cut = len(chunk) - len(chunk) % 2
                    carry = chunk[cut:]
                    if cut:
                        yield rate, chunk[:cut]
        except httpx.HTTPError as e:
            raise SpeechUnavailable("tts_unavailable", f"text-to-speech is unreachable ({type(e).__name__})") from e


class EspeakSpeech:
    """The local fallback voice: espeak-ng in a subprocess (no model, no network). Robotic, but never silent."""

    name = "espeak-ng"

    def __init__(self, binary: str | None = None, words_per_minute: int = 165) -> None:
        self.binary = binary or shutil.which("espeak-ng")
        self.wpm = words_per_minute

    @property
    def available(self) -> bool:
        return self.binary is not None

    async def stream(self, text: str) -> AsyncIterator[tuple[int, bytes]]:
        if self.binary is None:
            raise SpeechUnavailable("tts_unavailable", "no fallback voice (espeak-ng is not installed)")
        proc = await asyncio.create_subprocess_exec(self.binary, "--stdout", "-s", str(self.wpm), "--", text,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        try:
            data, _ = await proc.communicate()
        except BaseException:   # interrupted (a barge-in, a hang-up): nobody reads the pipe any more, and a full
            with contextlib.suppress(ProcessLookupError):   # pipe would block espeak-ng until the gateway stops
                proc.kill()
            await asyncio.shield(proc.wait())
            raise
        if proc.returncode != 0 or not data:
            raise SpeechUnavailable("tts_unavailable", "the fallback voice failed")
        with wave.open(io.BytesIO(data)) as w:
            rate, pcm = w.getframerate(), w.readframes(w.getnframes())
        step = rate // 5 * 2   # 200 ms pieces, like a streamed voice
        for i in range(0, len(pcm), step):
            yield rate, pcm[i:i + step]
