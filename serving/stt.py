"""Speech-to-text role: faster-whisper behind ``POST /v1/audio/transcriptions``.

Takes an OpenAI-style multipart upload (``file`` + optional ``model``, ``language``, ``sample_rate``
for raw PCM16) or a raw body (``Content-Type: audio/wav`` or ``audio/pcm`` with ``?sample_rate=``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from ray import serve
from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException, MultiPartParser

from serving.audio import decode_audio
from serving.http import ServingError, check_model_name, make_role_app

MAX_AUDIO_BYTES = 25 * 1024 * 1024  # OpenAI's upload limit
MAX_AUDIO_SECONDS = 600.0
MULTIPART_ROOM = 64 * 1024  # a form's boundaries and small fields around its file
RAW_PCM_TYPES = ("audio/pcm", "audio/l16", "audio/x-raw", "application/octet-stream")

stt_app = make_role_app("Enclave speech-to-text")


async def _capped_body(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The request body, refused with 413 as soon as it passes ``limit``: a chunked upload declares no
    length, and reading it whole first (Request.body(), Request.form()) would hold all of it."""
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ServingError(413, "audio_too_large", f"the upload is over the {MAX_AUDIO_BYTES}-byte audio limit")
        yield chunk


async def _read_form(request: Request) -> FormData:
    try:
        return await MultiPartParser(request.headers, _capped_body(request, MAX_AUDIO_BYTES + MULTIPART_ROOM)).parse()
    except MultiPartException as e:
        raise ServingError(400, "invalid_request", f"unreadable multipart body: {e}") from None


def _int_or_none(value: Any, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ServingError(400, "invalid_request", f"{name} must be an integer, got {value!r}") from None


@serve.deployment(name="stt")
@serve.ingress(stt_app)
class SpeechToText:
    def __init__(self, model_id: str, model_dir: str, engine: dict, num_gpus: float = 0, cpu_threads: int = 1):
        from faster_whisper import WhisperModel

        self.model_id = model_id
        self.beam_size = int(engine.get("beam_size", 1))
        device = "cuda" if num_gpus > 0 else "cpu"
        self.model = WhisperModel(
            model_dir, device=device, compute_type=engine.get("compute_type", "default"),
            cpu_threads=cpu_threads, local_files_only=True,
        )
        self._lock = asyncio.Lock()  # one decode at a time per replica; replicas scale out

    @stt_app.get("/health")
    def health(self) -> dict:
        return {"status": "ok", "role": "stt", "model": self.model_id}

    @stt_app.post("/")
    async def transcribe(self, request: Request) -> dict:
        declared = _int_or_none(request.headers.get("content-length"), "Content-Length") or 0
        if declared > MAX_AUDIO_BYTES:
            raise ServingError(413, "audio_too_large", f"audio is {declared} bytes; the limit is {MAX_AUDIO_BYTES}")
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        params: dict[str, Any] = dict(request.query_params)
        if ctype == "multipart/form-data":
            form = await _read_form(request)
            try:
                upload = form.get("file")
                if upload is None or isinstance(upload, str):
                    raise ServingError(400, "missing_file", "multipart request needs a 'file' field with the audio")
                data = await upload.read()
                params.update({k: v for k, v in form.items() if k != "file" and isinstance(v, str)})
                file_type = (upload.content_type or "").lower()
                is_raw = file_type in RAW_PCM_TYPES[:3] or (upload.filename or "").lower().endswith((".pcm", ".raw"))
            finally:
                await form.close()
        else:
            data = b"".join([chunk async for chunk in _capped_body(request, MAX_AUDIO_BYTES)])
            is_raw = ctype in RAW_PCM_TYPES
        if len(data) > MAX_AUDIO_BYTES:
            raise ServingError(413, "audio_too_large", f"audio is {len(data)} bytes; the limit is {MAX_AUDIO_BYTES}")
        check_model_name(params.get("model"), self.model_id, "stt")
        rate = _int_or_none(params.get("sample_rate"), "sample_rate")
        if is_raw and rate is None:
            raise ServingError(400, "missing_sample_rate", "raw PCM16 audio needs sample_rate (e.g. ?sample_rate=16000)")
        # Decoding and resampling are CPU work on the whole file: off the replica's event loop.
        audio, duration = await asyncio.to_thread(decode_audio, data, raw_pcm16_rate=rate if is_raw else None,
                                                  max_seconds=MAX_AUDIO_SECONDS)
        if duration > MAX_AUDIO_SECONDS:
            raise ServingError(413, "audio_too_long", f"audio lasts {duration:.1f} s; the limit is {MAX_AUDIO_SECONDS:.0f} s")
        language = params.get("language") or None
        async with self._lock:
            return await asyncio.to_thread(self._transcribe, audio, duration, language)

    def _transcribe(self, audio, duration: float, language: str | None) -> dict:
        try:
            segments, info = self.model.transcribe(
                audio, language=language, beam_size=self.beam_size, vad_filter=False,
                condition_on_previous_text=False,
            )
            segs = [
                {"id": i, "start": round(s.start, 3), "end": round(s.end, 3), "text": s.text.strip()}
                for i, s in enumerate(segments)
            ]
        except ValueError as e:  # e.g. an unknown language code
            raise ServingError(400, "invalid_request", str(e)) from None
        return {
            "text": " ".join(s["text"] for s in segs if s["text"]),
            "language": info.language,
            "duration": round(duration, 3),
            "segments": segs,
        }
