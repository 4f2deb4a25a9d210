"""Generate the tiny LLM: a Qwen2-shaped model with random (seeded) weights and a locally trained
byte-level BPE tokenizer with a ChatML chat template. Text is random; shapes, streaming, tokenizer,
chat template, tools and structured output all run through the real vLLM code."""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# ChatML, with tools rendered into the system turn the way Qwen2.5 does (so tool requests reach vLLM's
# real tool path) and tool results as their own turns.
CHAT_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\n"
    "{%- if messages[0].role == 'system' %}{{ messages[0].content }}\n\n{%- endif %}"
    "# Tools\n\nYou may call one or more functions. Function signatures:\n<tools>\n"
    "{%- for tool in tools %}\n{{ tool | tojson }}{%- endfor %}\n</tools>\n"
    "Reply with <tool_call>{\"name\": <function-name>, \"arguments\": <args-json-object>}</tool_call><|im_end|>\n"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (tools and loop.first and message.role == 'system') %}"
    "{{ '<|im_start|>' + message.role + '\n' }}"
    "{%- if message.content is string %}{{ message.content }}"
    "{%- elif message.content %}{%- for part in message.content %}{%- if part.type == 'text' %}{{ part.text }}{%- endif %}{%- endfor %}"
    "{%- endif %}"
    "{%- if message.tool_calls %}{%- for tc in message.tool_calls %}"
    "\n<tool_call>{\"name\": \"{{ tc.function.name }}\", \"arguments\": {{ tc.function.arguments if tc.function.arguments is string else tc.function.arguments | tojson }}}</tool_call>"
    "{%- endfor %}{%- endif %}"
    "{{ '<|im_end|>\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{%- endif %}"
)

# A small, fixed corpus: the merges only need to be plausible and identical on every machine.
_CORPUS = [
    "Hello, how can I help you today?",
    "I would like to check my account balance.",
    "Your balance is one thousand two hundred and fifty pounds.",
    "Please transfer one hundred pounds to my savings account.",
    "I lost my card yesterday and I need to block it.",
    "What are the opening hours of the branch on Main Street?",
    "I want to dispute a transaction on my statement.",
    "Can I speak to a human agent, please?",
    "Thank you for calling. Is there anything else I can help you with?",
    '{"name": "get_balance", "arguments": {"account": "current"}}',
    "The quick brown fox jumps over the lazy dog. 0123456789 !?.,;:'\"()[]{}<>-_/\\@#$%^&*+=~`|",
]


def build_tokenizer(vocab_size: int = 600):
    """Train a byte-level BPE deterministically (same corpus, same order -> same merges)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 2048
    return fast


def build_tiny_llm(out_dir: Path, seed: int = 0) -> None:
    """Write a loadable Qwen2ForCausalLM (hidden 128, 2 layers, 4 heads / 2 KV heads) to ``out_dir``."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(out_dir)
    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen2Config(
        vocab_size=len(tokenizer),  # must match the tokenizer exactly
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=pad_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(torch.float32).eval()
    model.generation_config = GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id, bos_token_id=pad_id)
    model.save_pretrained(out_dir, safe_serialization=True)
