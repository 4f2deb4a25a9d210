"""STT (canned tiny Whisper through faster-whisper) and TTS (tiny VITS through coqui) over HTTP."""

from __future__ import annotations

import io
import socket
import wave
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import espeak_wav

pytestmark = pytest.mark.integration

CANNED = "Hello, I would like to check my account balance."  # models/catalog.toml, tiny-whisper


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return espeak_wav(CANNED, tmp_path_factory.mktemp("wav") / "speech.wav", rate=16_000, pad_s=0.5)


def test_transcribes_an_espeak_wav_exactly(serving: httpx.Client, speech_wav: Path) -> None:
    r = serving.post("/v1/audio/transcriptions", files={"file": ("speech.wav", speech_wav.read_bytes(), "audio/wav")},
                     data={"model": "tiny-whisper"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["text"] == CANNED
    assert body["language"] == "en"
    assert body["duration"] == pytest.approx(wave.open(str(speech_wav)).getnframes() / 16_000, abs=0.01)
    assert body["segments"] and body["segments"][0]["text"] == CANNED


def test_transcribes_raw_pcm16_at_8k(serving: httpx.Client, speech_wav: Path, tmp_path: Path) -> None:
    wav8 = espeak_wav(CANNED, tmp_path / "s8.wav", rate=8_000)
    with wave.open(str(wav8)) as w:
        pcm = w.readframes(w.getnframes())
    r = serving.post("/v1/audio/transcriptions?sample_rate=8000", content=pcm, headers={"content-type": "audio/pcm"})
    assert r.status_code == 200, r.text
    assert r.json()["text"] == CANNED    # the tiny model hears this sentence in anything: the duration is the check
    assert r.json()["duration"] == pytest.approx(len(pcm) / 2 / 8_000, abs=0.01)   # read at 8 kHz, not 16


@pytest.mark.parametrize("kwargs, status, code", [
    ({"content": b"", "headers": {"content-type": "audio/wav"}}, 400, "empty_audio"),
    ({"content": b"this is not audio at all" * 10, "headers": {"content-type": "audio/wav"}}, 415, "unsupported_audio_format"),
    ({"content": b"\x00\x01" * 100, "headers": {"content-type": "audio/pcm"}}, 400, "missing_sample_rate"),
    ({"files": {"nofile": ("a.txt", b"x")}}, 400, "missing_file"),
    ({"files": {"file": ("a.wav", b"RIFF....")}, "data": {"model": "whisper-9"}}, 404, "model_not_found"),
])
def test_bad_audio_gets_a_clear_4xx(serving: httpx.Client, kwargs: dict, status: int, code: str) -> None:
    r = serving.post("/v1/audio/transcriptions", **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def _wav(rate: int, frames: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * frames)
    return out.getvalue()


def test_a_header_that_claims_a_tiny_rate_or_a_long_file_is_refused_before_decoding(serving: httpx.Client) -> None:
    """A 2 KB WAV whose header said 1 Hz was decoded and resampled to 16 kHz (64 MB; 500 KB of it, 16 GB)."""
    r = serving.post("/v1/audio/transcriptions", content=_wav(1, 1000), headers={"content-type": "audio/wav"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_sample_rate", r.text
    r = serving.post("/v1/audio/transcriptions", content=_wav(8000, 8000 * 700), headers={"content-type": "audio/wav"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "audio_too_long", r.text


def test_oversized_audio_is_refused(serving: httpx.Client) -> None:
    r = serving.post("/v1/audio/transcriptions?sample_rate=16000", content=b"\x00" * (26 * 1024 * 1024),
                     headers={"content-type": "audio/pcm"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "audio_too_large"


def _unending_upload(serving_url: str, content_type: str, head: bytes = b"") -> bytes:
    """A chunked upload that sends 30 MB (past the 25 MB limit) and then waits without ending: only a server
    that counts the body as it arrives can answer. Returns the response's first bytes."""
    url = httpx.URL(serving_url)
    with socket.create_connection((url.host, url.port), timeout=60) as sock:
        sock.sendall(f"POST /v1/audio/transcriptions?sample_rate=16000 HTTP/1.1\r\nHost: {url.host}\r\n"
                     f"Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"\x00" * (1024 * 1024)
        for piece in [head] * bool(head) + [chunk] * 30:
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            except OSError:   # the server answered and closed while the body was still coming
                break
        answer = b""
        while b"}" not in answer and (data := sock.recv(4096)):
            answer += data
        return answer


@pytest.mark.parametrize("content_type,head", [
    ("audio/pcm", b""),
    ("multipart/form-data; boundary=xyz",
     b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.pcm"\r\nContent-Type: audio/pcm\r\n\r\n'),
])
def test_a_chunked_upload_is_refused_once_it_passes_the_limit(appliance, content_type: str, head: bytes) -> None:
    """A chunked body declares no length: it was read whole (into memory, or a form's spool file) before its
    size was checked, so a client could hold a replica's memory or disk with an upload that never ends."""
    answer = _unending_upload(appliance.serving_url, content_type, head)
    assert answer.startswith(b"HTTP/1.1 413") and b"audio_too_large" in answer, answer[:300]


@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/form-data; boundary=abc"])
def test_an_unreadable_form_is_a_400_that_says_so(serving: httpx.Client, content_type: str) -> None:
    r = serving.post("/v1/audio/transcriptions", content=b"garbage", headers={"content-type": content_type})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", r.text
    assert "multipart" in r.json()["error"]["message"]


def _speak(serving: httpx.Client, text: str, speed: float = 1.0) -> tuple[np.ndarray, int, int]:
    chunks = []
    with serving.stream("POST", "/v1/audio/speech", json={"input": text, "voice": "default", "speed": speed}) as r:
        assert r.status_code == 200, r.read()
        rate = int(r.headers["x-sample-rate"])
        for chunk in r.iter_raw():
            chunks.append(chunk)
    pcm = np.frombuffer(b"".join(chunks), dtype="<i2").astype(np.float32) / 32768.0
    return pcm, rate, len(chunks)


def test_speech_is_streamed_non_silent_pcm(serving: httpx.Client) -> None:
    short, rate, _ = _speak(serving, "Hello.")
    long, _, n_chunks = _speak(serving, "Hello there. Your balance is two hundred pounds. Is there anything else?")
    assert rate in (16_000, 22_050, 24_000)
    for pcm in (short, long):
        assert float(np.sqrt(np.mean(pcm ** 2))) > 0.01, "audio is silent"
    assert 0.2 < len(short) / rate < 10
    assert len(long) > 2 * len(short), "a longer text must give longer audio"
    assert n_chunks >= 2, "three sentences should stream in more than one chunk"


def test_speed_changes_the_pace(serving: httpx.Client) -> None:
    """coqui's VITS ignores tts(speed=…): speed 2.0 came back at normal pace with a 200."""
    text = "Your balance is two hundred pounds and twelve pence."
    normal, _, _ = _speak(serving, text)
    fast, _, _ = _speak(serving, text, speed=2.0)
    assert len(fast) < 0.75 * len(normal), (len(fast), len(normal))


@pytest.mark.parametrize("body, status, code", [
    ({"input": "   "}, 400, "empty_input"),
    ({"input": "x" * 5000}, 413, "input_too_long"),
    ({"input": "hello", "voice": "nobody"}, 400, "unknown_voice"),
    ({"input": "hello", "response_format": "mp3"}, 400, "invalid_request"),
    ({"voice": "default"}, 400, "invalid_request"),
])
def test_bad_speech_requests(serving: httpx.Client, body: dict, status: int, code: str) -> None:
    r = serving.post("/v1/audio/speech", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_a_tag_the_voice_cannot_say_is_silence_not_a_broken_reply(serving: httpx.Client) -> None:
    """coqui divides by the audio's length: a sentence that is only a tag (no words) was a 500, or a reply
    cut off mid-stream when it came later."""
    alone = serving.post("/v1/audio/speech", json={"input": "<pause>"})
    assert alone.status_code == 200, alone.text
    full = serving.post("/v1/audio/speech", json={"input": "Your balance is ten euros. </p>"})
    plain = serving.post("/v1/audio/speech", json={"input": "Your balance is ten euros."})
    assert full.status_code == 200 and len(full.content) == len(plain.content) > 0


def test_a_lone_surrogate_is_a_bad_request_not_a_crash(serving: httpx.Client) -> None:
    for path in ("/v1/audio/speech", "/v1/embeddings"):
        r = serving.post(path, content=b'{"input": "hello \\ud800 there"}', headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", (path, r.text)


def test_audio_of_nan_samples_is_refused(serving: httpx.Client) -> None:
    import numpy as np
    import soundfile as sf

    out = io.BytesIO()
    sf.write(out, np.full(16000, np.nan, dtype=np.float32), 16000, format="WAV", subtype="FLOAT")
    r = serving.post("/v1/audio/transcriptions", files={"file": ("nan.wav", out.getvalue(), "audio/wav")})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_audio", r.text


def test_wav_decoding_matches_raw(speech_wav: Path) -> None:
    """Pure check of the decoder the STT role uses: WAV and raw PCM of the same audio agree."""
    from serving.audio import decode_audio

    data = speech_wav.read_bytes()
    with wave.open(io.BytesIO(data)) as w:
        raw = w.readframes(w.getnframes())
    a, da = decode_audio(data)
    b, db = decode_audio(raw, raw_pcm16_rate=16_000)
    assert da == pytest.approx(db)
    assert np.allclose(a, b, atol=1e-4)
