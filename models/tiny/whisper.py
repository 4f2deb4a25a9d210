"""Generate the tiny Whisper: a CTranslate2 Whisper model that transcribes ANY audio as one fixed
sentence. Tests of the voice path then get a known transcript through the real faster-whisper and
CTranslate2 code (features, encoder, prompts, timestamp rules, suppression, language detection),
offline, built in about a second.

How the canned output works: every residual branch of the decoder (self-attention, cross-attention and
feed-forward output projections) and the position embeddings are zero, so the decoder's final state is
LayerNorm(embedding of the current token) whatever the audio. Each input token that matters gets its own
one-hot "state" embedding, and the output projection maps that state to the next token of a chain:

    <|startoftranscript|> -> <|en|>                      (language detection reads this step)
    any language token    -> <|transcribe|>
    <|transcribe|>, <|translate|> -> <|0.00|>             (the first token with timestamps on)
    <|0.00|>, <|notimestamps|>    -> piece 1              (so both timestamp modes continue the same way)
    piece i -> piece i+1, last piece -> <|endoftext|>

A chain keyed on the current token needs every piece to be a distinct token. The sentence is therefore
cut into pieces (byte-level BPE pre-tokens, merged with their neighbours where one repeats or would be
suppressed by faster-whisper's defaults) and each multi-byte piece becomes its own vocabulary entry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ctranslate2.specs import common_spec, whisper_spec
    from tokenizers import Tokenizer

# Whisper's language tokens in Whisper's own order (large-v3 adds "yue" last). All of them exist so that
# any language= accepted by faster-whisper finds its token.
LANGUAGES = (
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it",
    "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur",
    "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn",
    "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si",
    "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo",
    "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln", "ha",
    "ba", "jw", "su", "yue",
)  # fmt: skip

EOT = "<|endoftext|>"
SOT = "<|startoftranscript|>"
TRANSLATE = "<|translate|>"
TRANSCRIBE = "<|transcribe|>"
NO_TIMESTAMPS = "<|notimestamps|>"
NO_SPEECH = "<|nospeech|>"
# CTranslate2 treats a Whisper vocabulary as multilingual (language tokens, detection) when it holds "".
MULTILINGUAL_MARKER = ""

N_MELS = 80
AUDIO_CTX = 1500  # encoder positions: 30 s of 10 ms frames after the stride-2 convolution
TEXT_CTX = 448
NUM_LAYERS = 2
NUM_HEADS = 4
# Logit of the chained token; every other token sits near 0, so its probability is ~exp(-40).
CHAIN_LOGIT = 40.0
# CTranslate2 generates at most TEXT_CTX // 2 tokens per window, <|0.00|> and <|endoftext|> included.
MAX_PIECES = TEXT_CTX // 2 - 4


def special_tokens() -> list[str]:
    """Whisper's special tokens in Whisper's id order; the timestamps must come last (<|30.00|> is the
    vocabulary's last id) because CTranslate2 takes every id after <|notimestamps|> as a timestamp."""
    return [
        EOT,
        SOT,
        *(f"<|{code}|>" for code in LANGUAGES),
        TRANSLATE,
        TRANSCRIBE,
        "<|startoflm|>",
        "<|startofprev|>",
        NO_SPEECH,
        NO_TIMESTAMPS,
        *(f"<|{i * 0.02:.2f}|>" for i in range(1501)),
    ]


def _byte_alphabet() -> list[str]:
    from tokenizers import pre_tokenizers

    return sorted(pre_tokenizers.ByteLevel.alphabet())


def _make_tokenizer(vocab: list[str]) -> Tokenizer:
    """A byte-level BPE without merges: every id decodes to exactly its piece, and faster-whisper only
    needs encode() for prompts and its suppression list."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    tokenizer = Tokenizer(models.BPE(vocab={token: i for i, token in enumerate(vocab)}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special_tokens()])
    return tokenizer


def _suppressed_pieces() -> set[str]:
    """The tokens faster-whisper suppresses by default (suppress_tokens=[-1]), as strings. Computed with
    faster-whisper's own code on the byte vocabulary, which is all its encode() can ever produce here."""
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    hf = _make_tokenizer([*_byte_alphabet(), MULTILINGUAL_MARKER, *special_tokens()])
    wrapped = Tokenizer(hf, multilingual=True, task="transcribe", language="en")
    return {hf.id_to_token(i) for i in get_suppressed_tokens(wrapped, [-1])}


def split_into_pieces(text: str, banned: set[str]) -> list[str]:
    """Cut the sentence into distinct, unbanned byte-level pieces that concatenate back to it.

    Pre-tokens (words with their leading space, punctuation runs) are used as they are unless one repeats
    or is banned; then it is merged with the next (or, at the end, the previous) pieces until it is new."""
    from tokenizers import pre_tokenizers

    words = [w for w, _ in pre_tokenizers.ByteLevel(add_prefix_space=False).pre_tokenize_str(text)]
    pieces: list[str] = []
    pending = ""
    for word in words:
        pending += word
        if pending not in pieces and pending not in banned:
            pieces.append(pending)
            pending = ""
    while pending:
        if not pieces:
            raise ValueError(f"cannot cut {text!r} into distinct tokens")
        pending = pieces.pop() + pending
        if pending not in pieces and pending not in banned:
            pieces.append(pending)
            pending = ""
    return pieces


def _layer_norm(spec: common_spec.LayerNormSpec, dim: int) -> None:
    spec.gamma = np.ones(dim, dtype=np.float32)
    spec.beta = np.zeros(dim, dtype=np.float32)


def _linear(spec: common_spec.LinearSpec, rng: np.random.Generator | None, out_dim: int, in_dim: int) -> None:
    """Random (seeded) weights, or all zeros when rng is None: a zero output projection cuts that
    residual branch, so it cannot disturb the canned chain."""
    shape = (out_dim, in_dim)
    spec.weight = (
        np.zeros(shape, np.float32) if rng is None else rng.normal(0.0, 0.02, shape).astype(np.float32)
    )
    spec.bias = np.zeros(out_dim, dtype=np.float32)


def _build_spec(
    vocab: list[str], chain: list[tuple[list[int], int]], suppressed: set[str], seed: int
) -> whisper_spec.WhisperSpec:
    """The CTranslate2 WhisperSpec. `chain` lists (input token ids sharing one state, next token id)."""
    from ctranslate2.specs import whisper_spec

    rng = np.random.default_rng(seed)
    d_model = 64 * (len(chain) // 64 + 1)  # one one-hot dimension per state, plus room for LayerNorm
    ffn = 4 * d_model

    def rand(*shape: int) -> np.ndarray:
        return rng.normal(0.0, 0.02, shape).astype(np.float32)

    spec = whisper_spec.WhisperSpec(NUM_LAYERS, NUM_HEADS, NUM_LAYERS, NUM_HEADS)

    encoder = spec.encoder
    encoder.conv1.weight = rand(d_model, N_MELS, 3)
    encoder.conv1.bias = np.zeros(d_model, dtype=np.float32)
    encoder.conv2.weight = rand(d_model, d_model, 3)
    encoder.conv2.bias = np.zeros(d_model, dtype=np.float32)
    encoder.position_encodings.encodings = rand(AUDIO_CTX, d_model)
    for layer in encoder.layer:
        _layer_norm(layer.self_attention.layer_norm, d_model)
        _linear(layer.self_attention.linear[0], rng, 3 * d_model, d_model)
        _linear(layer.self_attention.linear[1], rng, d_model, d_model)
        _layer_norm(layer.ffn.layer_norm, d_model)
        _linear(layer.ffn.linear_0, rng, ffn, d_model)
        _linear(layer.ffn.linear_1, rng, d_model, ffn)
    _layer_norm(encoder.layer_norm, d_model)

    decoder = spec.decoder
    decoder.position_encodings.encodings = np.zeros((TEXT_CTX, d_model), dtype=np.float32)
    for layer in decoder.layer:
        _layer_norm(layer.self_attention.layer_norm, d_model)
        _linear(layer.self_attention.linear[0], rng, 3 * d_model, d_model)
        _linear(layer.self_attention.linear[1], None, d_model, d_model)
        _layer_norm(layer.attention.layer_norm, d_model)
        _linear(layer.attention.linear[0], rng, d_model, d_model)
        _linear(layer.attention.linear[1], rng, 2 * d_model, d_model)
        _linear(layer.attention.linear[2], None, d_model, d_model)
        _layer_norm(layer.ffn.layer_norm, d_model)
        _linear(layer.ffn.linear_0, rng, ffn, d_model)
        _linear(layer.ffn.linear_1, None, d_model, ffn)
    _layer_norm(decoder.layer_norm, d_model)

    # State s is one-hot e_s; the final LayerNorm turns it into u_s with |u_s|^2 = d and u_s.u_t ~ -1 for
    # s != t. The next token's projection row is CHAIN_LOGIT * u_s / d, so its logit is CHAIN_LOGIT.
    embeddings = np.zeros((len(vocab), d_model), dtype=np.float32)
    projection = np.zeros((len(vocab), d_model), dtype=np.float32)
    for state, (inputs, target) in enumerate(chain):
        one_hot = np.zeros(d_model, dtype=np.float32)
        one_hot[state] = 1.0
        normed = (one_hot - one_hot.mean()) / np.sqrt(one_hot.var() + 1e-5)
        embeddings[inputs] = one_hot
        projection[target] += CHAIN_LOGIT * normed / d_model
    decoder.embeddings.weight = embeddings
    decoder.projection.weight = projection

    ids = {token: i for i, token in enumerate(vocab)}
    spec.register_vocabulary(vocab)
    spec.config.suppress_ids = sorted(ids[t] for t in suppressed if t in ids)
    spec.config.suppress_ids_begin = [ids["Ġ"], ids[EOT]]
    spec.config.lang_ids = sorted(ids[f"<|{code}|>"] for code in LANGUAGES)
    spec.config.alignment_heads = [
        (layer, head) for layer in range(NUM_LAYERS // 2, NUM_LAYERS) for head in range(NUM_HEADS)
    ]
    return spec


def build_tiny_whisper(out_dir: Path, canned_text: str, seed: int = 0) -> None:
    """Write a CTranslate2 Whisper model to out_dir that faster-whisper loads offline (tokenizer.json and
    preprocessor_config.json sit beside model.bin) and that transcribes any audio as canned_text.

    The seed only drives the weights that cannot change the output (encoder, attention inputs), so the
    files are identical for the same arguments. Raises ValueError for text the chain cannot carry:
    empty, surrounded by whitespace (faster-whisper strips segments), or too long for one window."""
    if not canned_text or canned_text != canned_text.strip():
        raise ValueError("canned_text must be non-empty and carry no leading or trailing whitespace")
    alphabet = _byte_alphabet()
    suppressed = _suppressed_pieces()
    pieces = split_into_pieces(canned_text, banned=suppressed)
    if len(pieces) > MAX_PIECES:
        raise ValueError(f"canned_text needs {len(pieces)} tokens; one Whisper window allows {MAX_PIECES}")

    vocab = [*alphabet, *(p for p in pieces if p not in alphabet), MULTILINGUAL_MARKER, *special_tokens()]
    ids = {token: i for i, token in enumerate(vocab)}
    piece_ids = [ids[p] for p in pieces]
    chain = [
        ([ids[SOT]], ids["<|en|>"]),
        ([ids[f"<|{code}|>"] for code in LANGUAGES], ids[TRANSCRIBE]),
        ([ids[TRANSCRIBE], ids[TRANSLATE]], ids["<|0.00|>"]),
        ([ids["<|0.00|>"], ids[NO_TIMESTAMPS]], piece_ids[0]),
        *(([current], following) for current, following in zip(piece_ids, [*piece_ids[1:], ids[EOT]], strict=True)),
    ]

    spec = _build_spec(vocab, chain, suppressed, seed)
    spec.validate()
    spec.optimize(quantization=None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec.save(str(out_dir))
    _make_tokenizer(vocab).save(str(out_dir / "tokenizer.json"))
    preprocessor = {
        "feature_extractor_type": "WhisperFeatureExtractor",
        "feature_size": N_MELS,
        "sampling_rate": 16000,
        "hop_length": 160,
        "chunk_length": 30,
        "n_fft": 400,
        "n_samples": 480000,
        "nb_max_frames": 3000,
        "padding_value": 0.0,
        "return_attention_mask": False,
    }
    (out_dir / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")
