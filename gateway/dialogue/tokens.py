"""Token counting with the served model's own tokenizer, read from the local model store (never the hub).

Only the ``tokenizers`` library is used (a small Rust extension): the gateway must not import torch or
transformers. When the store has no tokenizer for the model (e.g. an external OpenAI-compatible
upstream), a conservative estimate is used and said so in the log once.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from gateway.dialogue.turn import message_text

log = logging.getLogger("enclave.gateway.tokens")

# ChatML-style framing costs a few tokens per message (<|im_start|>role\n … <|im_end|>\n), and the
# template appends the assistant's opening.
PER_MESSAGE_OVERHEAD = 4
ASSISTANT_PREFIX = 2


class TokenCounter:
    def __init__(self, tokenizer_file: Path | None) -> None:
        self._tok = None
        self.source = "estimate"
        if tokenizer_file is not None and tokenizer_file.is_file():
            from tokenizers import Tokenizer

            self._tok = Tokenizer.from_file(str(tokenizer_file))
            # A model's tokenizer.json can carry its training-time padding and truncation (MiniLM's: pad and
            # cut to 128): left on, every text "counts" 128 tokens and no budget means anything.
            self._tok.no_padding()
            self._tok.no_truncation()
            self.source = str(tokenizer_file.parent.name)
        else:
            log.warning("no tokenizer.json in the model store; token counts are estimates (chars / 3)",
                        extra={"looked_for": str(tokenizer_file) if tokenizer_file else None})

    @property
    def exact(self) -> bool:
        return self._tok is not None

    def count(self, text: str) -> int:
        if not text:
            return 0
        if self._tok is None:
            return len(text) // 3 + 1  # over-estimates for English: a safe side for a budget
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def count_message(self, message: dict) -> int:
        """One message's text and the tool calls it carries (templates render them as JSON), unframed."""
        calls = message.get("tool_calls")
        return self.count(message_text(message)) + (self.count(json.dumps(calls)) if calls else 0)

    def count_contents(self, messages: list[dict]) -> int:
        """The messages' text alone, without the template's framing."""
        return sum(self.count_message(m) for m in messages)

    def count_messages(self, messages: list[dict]) -> int:
        return sum(self.count_message(m) + PER_MESSAGE_OVERHEAD for m in messages) + ASSISTANT_PREFIX

    def count_tools(self, tools: list[dict] | None) -> int:
        """The tool schemas a request offers: templates write them into the prompt, so they use the window."""
        return self.count(json.dumps(tools)) if tools else 0


def tokenizer_for(models_dir: Path, model_id: str) -> Path | None:
    path = models_dir / model_id / "tokenizer.json"
    return path if path.is_file() else None
