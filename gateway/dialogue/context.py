"""The context window: what the LLM sees for a turn, under a token budget.

system prompt (+ the rolling summary of older turns) → the last N turns not yet summarised → whatever
a stateless client sent before its new message → the new message. When that does not fit the model's
window minus the reply's budget, the oldest turns are dropped first; the new message is never cut.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from gateway.dialogue.tokens import PER_MESSAGE_OVERHEAD, TokenCounter
from gateway.dialogue.turn import Turn
from gateway.errors import InvalidRequest
from gateway.store import sessions as repo

SUMMARY_PREFIX = "Summary of the earlier conversation:"


@dataclass(frozen=True)
class ContextPolicy:
    window_tokens: int = 4096          # the model's context length
    recent_turns: int = 12             # at most this many earlier turns verbatim
    summary_threshold_tokens: int = 1500  # summarise once un-summarised history passes this
    summary_keep_turns: int = 4        # … keeping the newest turns verbatim
    summary_max_tokens: int = 200


def system_message(session: dict) -> str | None:
    parts = [p for p in (session.get("system_prompt"),) if p]
    if session.get("summary"):
        parts.append(f"{SUMMARY_PREFIX}\n{session['summary']}")
    return "\n\n".join(parts) or None


def whole_tool_calls(calls: list[dict] | None) -> list[dict]:
    """The tool calls whose arguments are complete JSON. A reply cut off (the client left, or max_tokens)
    can end mid-arguments; the engine parses every earlier call it is sent, so one such call in history
    would fail every later turn of the session."""
    whole = []
    for call in calls or []:
        fn = call.get("function") if isinstance(call, dict) else None
        try:
            json.loads(fn.get("arguments") or "{}")   # type: ignore[union-attr]  # not a dict: AttributeError
        except (ValueError, TypeError, AttributeError):
            continue
        whole.append(call)
    return whole


def fixed_tokens(counter: TokenCounter, turn: Turn, new: list[dict], input_tokens: int, head: Sequence[dict] = ()) -> int:
    """What the prompt needs whatever history is dropped: ``head`` (the system message), the messages a stateless
    client sent along, the new messages (``input_tokens`` of text, plus their framing) and the offered tools."""
    return (counter.count_messages([*head, *turn.extra_messages]) + input_tokens + PER_MESSAGE_OVERHEAD * len(new)
            + counter.count_tools(turn.params.get("tools")))


def window_exceeded(needed: int, window_tokens: int, max_output_tokens: int) -> InvalidRequest:
    return InvalidRequest(
        "context_length_exceeded",
        f"the messages need {needed} tokens but only {window_tokens - max_output_tokens} fit this model's window "
        f"({window_tokens}) after reserving {max_output_tokens} for the reply; send less or lower max_tokens", "messages")


def history_messages(rows: list[dict]) -> list[list[dict]]:
    """Rows → one list of messages per turn (tool calls and results included); failed turns (an apology),
    turns without their reply, interrupted turns that sent nothing and turns purged by retention are left
    out, and so are tool calls whose arguments were cut off."""
    by_seq: dict[int, list[dict]] = {}
    failed: set[int] = set()
    for r in rows:
        if r["status"] == "failed" or r.get("purged_at") is not None:
            failed.add(r["seq"])
        message = {"role": r["role"], "content": r["content"]}
        calls = whole_tool_calls(r.get("tool_calls"))
        if calls:
            message["tool_calls"] = calls
        if r["role"] == "assistant" and r["status"] == "interrupted" and not r["content"] and not calls:
            failed.add(r["seq"])      # the client left before anything was sent: no exchange to remember
        if r.get("tool_call_id"):
            message["tool_call_id"] = r["tool_call_id"]
        by_seq.setdefault(r["seq"], []).append(message)
    return [msgs for seq, msgs in sorted(by_seq.items())
            if seq not in failed and len(msgs) >= 2 and msgs[-1]["role"] == "assistant"]


def _call_ids(message: dict) -> list[str]:
    return [c.get("id") for c in message.get("tool_calls") or []]


def drop_resent_tool_request(turn: Turn, history: list[list[dict]], counter: TokenCounter) -> None:
    """The SDK's tool loop sends the assistant message that asked for the tools back with their results.
    In a session that message is the last stored reply already: kept twice, the model would see the
    request twice (and the session would hold it twice)."""
    new = turn.input_messages
    if not history or not new or new[0].get("role") != "assistant" or not new[0].get("tool_calls"):
        return
    last = history[-1][-1]
    if last.get("role") == "assistant" and _call_ids(last) == _call_ids(new[0]):
        turn.input_messages = new[1:]
        turn.input_tokens = max(0, turn.input_tokens - counter.count_message(new[0]))


class BuildContext:
    name = "context"

    def __init__(self, pool: AsyncConnectionPool, counter: TokenCounter, policy: ContextPolicy) -> None:
        self.pool, self.counter, self.policy = pool, counter, policy

    async def __call__(self, turn: Turn) -> None:
        session = turn.session
        history: list[list[dict]] = []
        if session.get("turn_count", 0) > 0:
            # Not yet summarised, and among the last N: the seq numbers say which, the session row says how many.
            after = max(session["summary_upto_seq"], session["turn_count"] - self.policy.recent_turns)
            async with self.pool.connection() as conn:
                rows = await repo.list_turns(conn, turn.tenant_id, session["id"], after_seq=after)
            history = history_messages(rows)
            drop_resent_tool_request(turn, history, self.counter)
        head: list[dict] = []
        system = system_message(session)
        if turn.reference:  # retrieved knowledge: one system message (some chat templates allow only one, first)
            system = f"{system}\n\n{turn.reference}" if system else turn.reference
        if system:
            head.append({"role": "system", "content": system})
        new = turn.input_messages
        if turn.fence_input and new and new[-1].get("role") == "user":   # the guard found it suspicious
            from gateway.safety.injection import fence
            new = [*new[:-1], {**new[-1], "content": fence(str(new[-1].get("content") or ""))}]
        # check_input counted the new messages as the user wrote them; counted again if the guard changed them
        # since (a placeholder may take more tokens than the value it stands for; a fence adds some 50).
        input_tokens = self.counter.count_contents(new) if turn.fence_input or turn.pii_found else turn.input_tokens
        fixed = fixed_tokens(self.counter, turn, new, input_tokens, head)
        budget = self.policy.window_tokens - turn.max_output_tokens
        if fixed > budget and turn.canned_reply is None:   # a stage's own reply needs no room in the window
            raise window_exceeded(fixed, self.policy.window_tokens, turn.max_output_tokens)
        sizes = [self.counter.count_messages(t) for t in history]
        while history and fixed + sum(sizes) > budget:
            history.pop(0)
            sizes.pop(0)
        turn.history_turns = len(history)
        turn.history_trimmed = session.get("turn_count", 0) - session.get("summary_upto_seq", 0) > len(history)
        turn.messages = head + [m for t in history for m in t] + turn.extra_messages + new
        turn.prompt_tokens = fixed + sum(sizes)
