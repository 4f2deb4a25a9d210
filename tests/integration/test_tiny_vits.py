"""The generated tiny VITS voice loads and speaks through the real coqui path, offline and repeatably."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("TTS.api", reason="coqui-tts is only installed with the serving extras")
if shutil.which("espeak-ng") is None:
    pytest.skip("the tiny voice phonemises with espeak-ng", allow_module_level=True)

from models.tiny.vits import build_tiny_vits, load_vits  # noqa: E402

pytestmark = pytest.mark.integration

SHORT = "Hello, how can I help you today?"
LONG = "Your balance is one thousand two hundred and fifty pounds, and your next statement is due on Friday."


@pytest.fixture(scope="module", autouse=True)
def _offline(no_outbound_network: None) -> None:
    """Any reach for the hub (e.g. a missing tokenizer.json) fails instead of passing when connected."""


@pytest.fixture(scope="module")
def voice_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny-vits")
    build_tiny_vits(out, seed=0)
    return out


def _synth(tts, text: str) -> np.ndarray:
    return np.asarray(tts.tts(text), dtype=np.float32)


def test_speaks_plausibly(voice_dir: Path) -> None:
    assert {p.name for p in voice_dir.iterdir()} >= {"model.pth", "config.json"}
    tts = load_vits(voice_dir)
    sr = tts.synthesizer.output_sample_rate
    assert sr in (16000, 22050)

    durations = []
    for text in (SHORT, LONG):
        wav = _synth(tts, text)
        assert np.isfinite(wav).all()
        assert float(np.sqrt(np.mean(wav**2))) > 0.03  # measured ~0.09 (0.1 while speaking, then a pause)
        assert abs(float(wav.mean())) < 0.01  # sound, not a DC offset
        durations.append(len(wav) / sr)

    assert all(0.3 < d < 20.0 for d in durations), durations
    assert durations[1] > durations[0] * 1.5, durations


def test_same_seed_same_voice(voice_dir: Path, tmp_path: Path) -> None:
    import torch

    build_tiny_vits(tmp_path, seed=0)
    first = torch.load(voice_dir / "model.pth")["model"]
    second = torch.load(tmp_path / "model.pth")["model"]
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)

    lengths = {len(load_vits(d).tts(SHORT)) for d in (voice_dir, tmp_path)}
    assert len(lengths) == 1
