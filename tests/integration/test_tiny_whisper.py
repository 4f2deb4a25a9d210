"""The generated tiny Whisper transcribes any audio as its canned sentence through the real
faster-whisper / CTranslate2 path, offline and repeatably."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faster_whisper", reason="faster-whisper is only installed with the serving extras")

from faster_whisper import WhisperModel, decode_audio  # noqa: E402

from models.tiny.whisper import build_tiny_whisper  # noqa: E402

pytestmark = pytest.mark.integration

CANNED = "Hello, I would like to check my account balance."
OTHER = "Please transfer one hundred pounds to my savings account."
SR = 16000


@pytest.fixture(scope="module", autouse=True)
def _offline(no_outbound_network: None) -> None:
    """Any reach for the hub (e.g. a missing tokenizer.json) fails instead of passing when connected."""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny-whisper")
    build_tiny_whisper(out, CANNED, seed=0)
    return out


def _load(model_dir: Path) -> WhisperModel:
    return WhisperModel(
        str(model_dir), device="cpu", compute_type="float32", local_files_only=True, cpu_threads=2
    )


@pytest.fixture(scope="module")
def model(model_dir: Path) -> WhisperModel:
    return _load(model_dir)


def _transcribe(model: WhisperModel, audio: np.ndarray, **options: object) -> tuple[str, str]:
    options = {"beam_size": 1, "vad_filter": False, "condition_on_previous_text": False, **options}
    segments, info = model.transcribe(audio, **options)
    return " ".join(s.text.strip() for s in segments), info.language


def _silence() -> np.ndarray:
    return np.zeros(2 * SR, dtype=np.float32)


def _noise() -> np.ndarray:
    return np.random.default_rng(0).normal(0.0, 0.3, 3 * SR).astype(np.float32)


def _speech(tmp_path: Path) -> np.ndarray:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    wav = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), CANNED], check=True, capture_output=True, timeout=30)
    audio = decode_audio(str(wav), sampling_rate=SR)  # espeak-ng writes 22.05 kHz; this resamples
    assert audio.dtype == np.float32 and len(audio) > SR
    return audio


@pytest.mark.parametrize("source", ["silence", "noise", "speech"])
def test_any_audio_gives_the_canned_text(model: WhisperModel, source: str, tmp_path: Path) -> None:
    audio = {"silence": _silence, "noise": _noise, "speech": lambda: _speech(tmp_path)}[source]()
    text, language = _transcribe(model, audio, language="en", without_timestamps=False)
    assert text == CANNED
    assert language == "en"


def test_without_timestamps_and_language_detection(model: WhisperModel) -> None:
    assert model.model.is_multilingual
    assert _transcribe(model, _noise(), language="en", without_timestamps=True) == (CANNED, "en")
    assert _transcribe(model, _silence()) == (CANNED, "en")  # no language=: detection runs and picks en
    assert _transcribe(model, _silence(), beam_size=5) == (CANNED, "en")  # faster-whisper's default beam


def test_other_sentence_and_same_seed_same_files(model_dir: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    build_tiny_whisper(again, CANNED, seed=0)
    for name in ("model.bin", "vocabulary.json", "tokenizer.json", "config.json", "preprocessor_config.json"):
        assert (again / name).read_bytes() == (model_dir / name).read_bytes(), name

    other = tmp_path / "other"
    build_tiny_whisper(other, OTHER, seed=1)
    m = _load(other)
    assert _transcribe(m, np.zeros(SR, dtype=np.float32), language="en") == (OTHER, "en")
    assert _transcribe(m, _noise(), language="en", without_timestamps=True) == (OTHER, "en")


def test_repeated_words_still_chain(tmp_path: Path) -> None:
    """The chain is keyed on the current token, so repeats are cut into distinct pieces."""
    text = "My account, my account, my account balance."
    build_tiny_whisper(tmp_path, text)
    m = _load(tmp_path)
    assert _transcribe(m, _silence(), language="en") == (text, "en")


def test_rejects_text_it_cannot_reproduce(tmp_path: Path) -> None:
    for text in ("", " padded ", "("):
        with pytest.raises(ValueError):
            build_tiny_whisper(tmp_path / "bad", text)
