"""The ``Turn``: one user message and its reply, as it flows through the stages of the pipeline."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

TurnStatus = Literal["complete", "interrupted", "failed"]


def message_text(message: dict[str, Any]) -> str:
    """The text of an OpenAI-shaped message; content parts are joined (the API admits only text parts)."""
    content = message.get("content") or ""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content


@dataclass
class Turn:
    # Who and where
    request_id: str
    tenant_id: str
    session: dict[str, Any]            # the session row (id, system_prompt, summary, …)
    session_is_new: bool = False        # created on first use: stored together with this turn
    channel: str = "api"
    # What the user sent
    raw_text: str = ""                  # the new user message as received ("" when the turn carries tool results)
    input_messages: list[dict] = field(default_factory=list)  # the turn's new messages (user, or assistant + tool)
    extra_messages: list[dict] = field(default_factory=list)  # what a stateless client sent before them
    params: dict[str, Any] = field(default_factory=dict)      # generation parameters forwarded upstream
    max_output_tokens: int = 256
    max_input_tokens: int = 4096
    # Filled by stages
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    text: str = ""                      # after preprocess
    language: str | None = None
    input_tokens: int = 0               # the new message alone
    messages: list[dict] = field(default_factory=list)         # the context window sent to the LLM
    prompt_tokens: int = 0
    history_turns: int = 0              # how many earlier turns made it into the window
    history_trimmed: bool = False       # some un-summarised turns did not fit (or were past the last N)
    # Generation
    reply: list[str] = field(default_factory=list)             # text the client has been sent
    tool_calls: list[dict] = field(default_factory=list)
    model: str | None = None
    upstream: str | None = None
    fallback: bool = False
    finish_reason: str | None = None
    completion_id: str | None = None
    completion_tokens: int | None = None
    upstream_prompt_tokens: int | None = None
    status: TurnStatus = "complete"
    started: float = field(default_factory=time.perf_counter)
    prepared_at: float | None = None    # time.monotonic() when the stages before generation were done
    ttft_s: float | None = None
    total_s: float | None = None
    seq: int | None = None              # set by record
    # Trust layer
    actor: str = ""                     # who asked: key prefix or OIDC subject
    vault: Any = None                   # the session's placeholders (gateway.safety.redact.SessionVault), from guard
    pii_found: dict[str, int] = field(default_factory=dict)     # values redacted from the input, by type
    pii_in_reply: dict[str, int] = field(default_factory=dict)  # … from the reply
    stored_reply: str | None = None     # the reply as stored and audited (placeholders), from redact_output
    retrieved_documents: list[str] = field(default_factory=list)  # document ids the ground stage used
    # Knowledge
    knowledge: Any = None               # what this turn may draw on (gateway.knowledge.ground.KnowledgeSpec), or None
    reference: str | None = None        # the fenced reference block the context builder adds to the system message
    citations: list[dict] = field(default_factory=list)
    grounding: dict[str, Any] = field(default_factory=dict)      # retrieval figures and the decision, for the audit log
    canned_reply: str | None = None     # set by a stage that answers without the LLM (e.g. "I don't know")
    # Dialogue (a tenant with a domain pack)
    pack: Any = None                    # gateway.dialogue.registry.LoadedPack, or None: plain chat
    mode: str = "bot"                   # bot | human (a colleague took the session over)
    dialogue_state: Any = None          # gateway.dialogue.decide.DialogueState, stored with the turn
    understood: Any = None              # gateway.dialogue.decide.Understood
    text_vector: Any = None             # the redacted text's embedding (guard → understand), never stored
    dialogue: dict[str, Any] = field(default_factory=dict)       # the decision, for the reply and the audit log
    handoff: dict[str, Any] | None = None                        # opened with the turn
    voice_latency: dict[str, float] | None = None   # spoken turns: ms per stage (gateway/voice/session.py)
    recorded: bool = False              # stored before generation (a relayed message)
    relay: bool = False                 # human mode: the message goes to the agent, the reply comes from them
    reply_prefix: str | None = None     # the flow's words before an LLM answer
    reply_suffix: str | None = None     # … and after it (back to the flow after a digression)
    # Guard
    injection: dict[str, Any] | None = None   # the injection verdict when not a clean pass
    fence_input: bool = False           # the LLM sees the user's text fenced as untrusted data
    review: list[dict[str, Any]] = field(default_factory=list)   # review items stored with the turn

    @property
    def caller_is_owner(self) -> bool:
        """Whose session it is: only the owner gets PII values back in replies. A session made for this turn is
        the caller's; one without an owner on record (built in memory) belongs to whoever speaks in it."""
        return self.session_is_new or self.session.get("created_by", self.actor) == self.actor

    @property
    def session_id(self):
        return self.session["id"]

    @property
    def is_tool_result(self) -> bool:
        return bool(self.input_messages) and self.input_messages[-1].get("role") == "tool"

    @property
    def reply_text(self) -> str:
        return "".join(self.reply)
