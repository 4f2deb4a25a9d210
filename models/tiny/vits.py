"""Generate the tiny TTS voice: a coqui VITS with random (seeded) weights, a few hundred thousand parameters.

It speaks noise, but through the real coqui path (espeak-ng phonemes, tokenizer, text encoder, duration
predictor, flow, HiFi-GAN decoder), so serving, streaming and sample-rate handling are exercised exactly as
with a trained voice. The duration predictor is pinned so the audio length follows the text deterministically.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from TTS.api import TTS
    from TTS.tts.configs.vits_config import VitsConfig
    from TTS.tts.models.vits import Vits

SAMPLE_RATE = 22050  # same as coqui's released English VITS voices, so serving handles both alike
HOP_LENGTH = 256  # product of the decoder's upsample rates, as VITS requires
# Every token (phoneme, punctuation, and the blank coqui inserts after each) lasts this many frames:
# 3 * 256 / 22050 = ~35 ms, i.e. ~70 ms per phoneme with its blank.
FRAMES_PER_TOKEN = 3
TARGET_RMS = 0.1  # about -20 dBFS, a normal speech level


def _config() -> VitsConfig:
    """A VITS config small enough to build and synthesise in a fraction of a second on CPU."""
    from TTS.config.shared_configs import BaseAudioConfig
    from TTS.tts.configs.vits_config import VitsArgs, VitsConfig

    args = VitsArgs(
        hidden_channels=32,
        hidden_channels_ffn_text_encoder=64,
        num_heads_text_encoder=2,
        num_layers_text_encoder=2,
        num_layers_posterior_encoder=2,
        num_layers_flow=2,
        upsample_rates_decoder=[8, 8, 2, 2],
        upsample_initial_channel_decoder=64,
        resblock_kernel_sizes_decoder=[3],
        resblock_dilation_sizes_decoder=[[1, 3, 5]],
        use_sdp=False,  # the deterministic predictor, so its output can be pinned below
        init_discriminator=False,  # inference only; keeps the checkpoint small
    )
    audio = BaseAudioConfig(sample_rate=SAMPLE_RATE, hop_length=HOP_LENGTH, do_trim_silence=False)
    return VitsConfig(
        model_args=args,
        audio=audio,
        use_phonemes=True,
        phonemizer="espeak",
        phoneme_language="en-us",
        text_cleaner="phoneme_cleaners",
        add_blank=True,
    )


def build_tiny_vits(out_dir: Path, seed: int = 0) -> None:
    """Write ``model.pth`` ({"model": state_dict}) and ``config.json`` loadable by ``TTS(model_path=...)``."""
    import torch
    from TTS.tts.models.vits import Vits

    out_dir.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng():  # seeded without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = Vits(_config()).eval()
        _pin_durations(model)
        _level_output(model)
    torch.save({"model": model.state_dict()}, out_dir / "model.pth")
    # The model's config has the resolved character set, so the vocabulary is pinned in the file.
    model.config.save_json(str(out_dir / "config.json"))


def _pin_durations(model: Vits) -> None:
    """Give every token exactly FRAMES_PER_TOKEN frames, so audio length follows the text.

    Random durations are erratic (often a single frame per token); a zero projection with a fixed bias
    makes the predictor output ``bias`` everywhere, and inference uses ``ceil(exp(bias))`` frames.
    """
    import torch

    proj = model.duration_predictor.proj
    with torch.no_grad():
        proj.weight.zero_()
        proj.bias.fill_(math.log(FRAMES_PER_TOKEN - 0.5))


def _level_output(model: Vits) -> None:
    """Make the random decoder's output zero-mean at TARGET_RMS instead of a small DC offset.

    The decoder's last conv has no bias; zero-sum taps remove the offset its positive (leaky-ReLU)
    inputs would give, and one calibration pass on fixed tokens sets the gain (tanh is ~linear there).
    """
    import torch

    post = model.waveform_decoder.conv_post
    with torch.no_grad():
        post.weight.sub_(post.weight.mean(dim=-1, keepdim=True))
        tokens = (torch.arange(32) % (model.args.num_chars - 1) + 1).unsqueeze(0)
        rms = model.inference(tokens)["model_outputs"].pow(2).mean().sqrt().item()
        post.weight.mul_(TARGET_RMS / rms)


def load_vits(model_dir: Path) -> TTS:
    """Load a coqui voice from ``model_dir`` (``model.pth`` + ``config.json``) on CPU, without the model hub.

    ``tts.tts(text)`` returns float samples in [-1, 1] followed by coqui's 10000-sample pause per sentence;
    ``tts.synthesizer.output_sample_rate`` reports the config's rate, 22050 Hz for the tiny voice.
    """
    from TTS.api import TTS

    return TTS(
        model_path=str(model_dir / "model.pth"),
        config_path=str(model_dir / "config.json"),
        progress_bar=False,
    ).to("cpu")
