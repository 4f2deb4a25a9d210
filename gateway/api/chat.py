"""``POST /v1/chat/completions``: OpenAI-compatible, streamed (SSE) or not, with server-side sessions.

Without ``X-Session-Id`` a session is created for the turn and returned in that header; with it, the
gateway owns the history and the client sends only its new message. Upstream SSE chunks are forwarded
byte for byte (the gateway adds no per-token re-serialisation); the turn records only what the client
was actually sent. A client that goes away cancels the upstream generation and leaves an
``interrupted`` turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from typing import Annotated, Any, ClassVar, Literal

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from gateway.api.models import offered_models
from gateway.api.routing import StrictJsonRoute
from gateway.api.sessions import load_session
from gateway.api.sse import DONE, SSEResponse, disconnected
from gateway.auth import ChatCaller, Identity
from gateway.clients.llm import INTERRUPTED_NOTE, ChunkEvent, OpenedStream, canned_chunks, chunk_event, merge_tool_calls
from gateway.dialogue.turn import Turn
from gateway.errors import InvalidRequest, NotFound, StorageUnavailable, error_body
from gateway.knowledge.ground import KnowledgeSpec
from gateway.observability import request_id_var, turn_id_var
from gateway.safety.redact import StreamingRestorer

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1", tags=["chat"])
log = logging.getLogger("enclave.gateway.chat")



class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = Field(default=None, max_length=64)
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    # Fields of an OpenAI response message that SDK users append back to ``messages``: accepted, not forwarded.
    refusal: str | None = None
    annotations: list[Any] | None = None
    audio: Any = None
    function_call: Any = None

    ECHOED: ClassVar[set[str]] = {"refusal", "annotations", "audio", "function_call"}

    @field_validator("content", mode="before")
    @classmethod
    def text_parts_only(cls, content: Any) -> Any:
        """Name the part a text-only gateway cannot take (an image, audio, a file) rather than let the union
        say only that the content is neither a string nor a list of text parts."""
        if isinstance(content, list):
            for i, part in enumerate(content):
                kind = part.get("type") if isinstance(part, dict) else None
                if isinstance(kind, str) and kind != "text":
                    raise PydanticCustomError("unsupported_content", "part {index} is of type '{kind}': only text parts "
                                              "are supported", {"index": i, "kind": kind[:40]})
        return content

    @field_validator("tool_calls")
    @classmethod
    def tool_calls_shape(cls, calls: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        """OpenAI's shape, checked here: a call is stored with the turn and replayed to the model on every later
        turn of the session, so a malformed one kept (the model never saw it: a canned reply, a human agent)
        would break them all."""
        for i, call in enumerate(calls or ()):
            fn = call.get("function")
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) \
                    or not isinstance(fn.get("arguments", ""), str) or not isinstance(call.get("id", ""), str) \
                    or call.get("type", "function") != "function":
                raise PydanticCustomError("invalid_tool_call", "tool call {index} needs type \"function\" and a function "
                                          "object with a string name and arguments (and a string id)", {"index": i})
        return calls

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""

    def upstream(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude=self.ECHOED)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The OpenAI request fields Enclave honours. Anything else is refused by name (``unsupported_parameter``)
    rather than silently ignored: a bank's developer must know when a setting has no effect."""

    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = 1
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=-1)
    min_tokens: int | None = Field(default=None, ge=0)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    repetition_penalty: float | None = Field(default=None, gt=0, le=2)
    ignore_eos: bool | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = Field(default=None, max_length=256)
    # Accepted only at the value that changes nothing (clients that spell out every default): logprobs false,
    # modalities ["text"]. Any other value is refused by name in new_turn.
    logprobs: bool | None = None
    modalities: list[str] | None = None
    # Enclave's own: ground the answer in the knowledge base (true, or {collections, tags, effective_from,
    # effective_to, top_k}); the session's metadata.knowledge is the default.
    knowledge: bool | dict[str, Any] | None = None

    FORWARDED: ClassVar[tuple[str, ...]] = ("temperature", "top_p", "top_k", "min_tokens", "stop", "seed", "presence_penalty",
                 "frequency_penalty", "repetition_penalty", "ignore_eos", "response_format", "tools", "tool_choice",
                 "parallel_tool_calls")

    def params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.FORWARDED if getattr(self, k) is not None}


def output_budget(body: ChatCompletionRequest, identity: Identity, settings) -> int:
    cap = identity.max_output_tokens or settings.max_output_tokens
    asked = body.max_completion_tokens or body.max_tokens
    if asked is not None and asked > cap:
        param = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
        raise InvalidRequest("max_tokens_too_large", f"{param}={asked} is over this tenant's cap of {cap}", param)
    return asked or min(settings.default_output_tokens, cap)


def _nul_at(value: Any, path: str) -> str | None:
    """Where in ``value`` a NUL character sits (a dotted path), or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _nul_at(key, path) or _nul_at(item, f"{path}.{key}")
        if found:
            return found
    return None


def refuse_nul(messages: list[ChatMessage]) -> None:
    """Postgres text and jsonb cannot hold NUL, and a turn is kept whole or not at all: a NUL the turn would
    store is refused before the model runs, not found at record after it. A user's text is the exception:
    preprocess removes control characters from it, NUL among them."""
    for i, message in enumerate(messages):
        content = None if message.role == "user" else message.content
        if isinstance(content, list):
            content = [part.text for part in content]
        fields = {"content": content, "name": message.name, "tool_call_id": message.tool_call_id,
                  "tool_calls": message.tool_calls}
        found = _nul_at(fields, f"messages.{i}")
        if found:
            raise InvalidRequest("invalid_parameter", f"{found} contains a NUL character (\\u0000), which cannot be "
                                 "stored", found)


def new_messages(messages: list[ChatMessage], in_session: bool) -> list[ChatMessage]:
    """The messages that make this turn: the user's new message, or the tool results the client sends
    back (with the assistant message that asked for them, when the client resends it)."""
    last = messages[-1]
    if last.role == "user":
        return [last]
    if last.role != "tool":
        raise InvalidRequest("last_message_not_user",
                             "the last message must be the user's new message or a tool result", "messages")
    start = len(messages) - 1
    while start > 0 and messages[start - 1].role == "tool":
        start -= 1
    for m in messages[start:]:
        if not m.tool_call_id:
            raise InvalidRequest("invalid_parameter", "a tool message needs the tool_call_id it answers", "messages")
    if start > 0 and messages[start - 1].role == "assistant" and messages[start - 1].tool_calls:
        return messages[start - 1:]
    if not in_session:  # only a session's stored history can hold the assistant message that asked
        raise InvalidRequest("invalid_parameter",
                             "tool results must follow the assistant message with the matching tool_calls", "messages")
    return messages[start:]


async def new_turn(body: ChatCompletionRequest, request: Request, identity: Identity, session_header: str | None) -> Turn:
    """Validate the request against the gateway's rules and build the Turn (nothing is written here)."""
    state = request.app.state
    settings = state.settings
    if body.model not in offered_models(state.chain):
        raise NotFound("model_not_found", f"model '{body.model}' is not offered here; GET /v1/models lists them", "model")
    if body.n != 1:
        raise InvalidRequest("unsupported_parameter", "only n=1 is supported", "n")
    if body.logprobs:
        raise InvalidRequest("unsupported_parameter", "logprobs are not returned by this endpoint", "logprobs")
    if body.modalities is not None and body.modalities != ["text"]:
        raise InvalidRequest("unsupported_parameter", "only text output is supported: modalities must be [\"text\"]",
                             "modalities")
    refuse_nul(body.messages)
    new = new_messages(body.messages, session_header is not None)
    last = new[-1]
    earlier = body.messages[:len(body.messages) - len(new)]
    if session_header is not None:
        async with state.db.connection() as conn:
            session = await load_session(conn, identity, session_header)
        is_new, extra = False, [m.upstream() for m in earlier]
    else:
        system = "\n\n".join(m.text() for m in earlier if m.role in ("system", "developer")) or None
        session = {"id": uuid.uuid4(), "channel": "api", "system_prompt": system, "summary": None,
                   "summary_upto_seq": 0, "turn_count": 0, "created_by": identity.subject}
        is_new, extra = True, [m.upstream() for m in earlier if m.role not in ("system", "developer")]
    if body.knowledge is not None:
        knowledge = KnowledgeSpec.parse(body.knowledge)
    else:
        knowledge = KnowledgeSpec.parse((session.get("metadata") or {}).get("knowledge"), "metadata.knowledge")
    return Turn(
        knowledge=knowledge,
        request_id=request_id_var.get(), tenant_id=identity.tenant_id, session=session, session_is_new=is_new,
        channel=session["channel"], raw_text=last.text() if last.role == "user" else "",
        input_messages=[m.upstream() for m in new], extra_messages=extra, params=body.params(),
        max_output_tokens=output_budget(body, identity, settings),
        max_input_tokens=identity.max_input_tokens or settings.max_input_tokens, actor=identity.subject,
    )


@router.post("/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request, identity: ChatCaller,
                           x_session_id: Annotated[str | None, Header()] = None):
    state = request.app.state
    turn = await new_turn(body, request, identity, x_session_id)
    turn_id_var.set(turn.id)
    await state.pipeline.prepare(turn)
    opened = await state.pipeline.open(turn)
    headers = {"X-Session-Id": str(turn.session_id), "X-Turn-Id": turn.id, "X-Enclave-Upstream": opened.upstream}
    if not body.stream:
        if not await collect_unless_gone(request, opened, turn):
            await _finish_interrupted(state, turn, opened)
            return JSONResponse(error_body("client_disconnected", "the client went away before the reply was "
                                           "complete", "invalid_request_error"), status_code=499, headers=headers)
        if turn.vault is not None:
            turn.reply = [state.redactor.restore(turn.reply_text, turn.vault, reveal=turn.caller_is_owner)]
        try:
            await state.pipeline.finish(turn)
        except Exception as e:
            log.exception("could not record the turn")
            raise StorageUnavailable("storage_unavailable", "the reply could not be stored; please retry") from e
        return JSONResponse(completion_body(turn), headers=headers)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return sse_response(state, turn, opened, include_usage, headers)


def absorb_event(turn: Turn, ev) -> None:
    """What the turn learns from one upstream event (besides the text, which counts only once sent)."""
    if turn.completion_id is None and ev.id:
        turn.completion_id = ev.id
    if ev.finish_reason:
        turn.finish_reason = ev.finish_reason
    if ev.usage:
        turn.completion_tokens = ev.usage.get("completion_tokens", turn.completion_tokens)
        turn.upstream_prompt_tokens = ev.usage.get("prompt_tokens", turn.upstream_prompt_tokens)
    if ev.tool_calls:
        merge_tool_calls(turn.tool_calls, ev.tool_calls)


async def collect(opened: OpenedStream, turn: Turn) -> None:
    try:
        async for ev in opened:
            absorb_event(turn, ev)
            if ev.content:
                turn.reply.append(ev.content)
    finally:
        await opened.aclose()
    if opened.failed_midway:
        turn.status = "failed"
        turn.reply.append(INTERRUPTED_NOTE)
        turn.finish_reason = "stop"
    turn.total_s = time.perf_counter() - turn.started


async def collect_unless_gone(request: Request, opened: OpenedStream, turn: Turn) -> bool:
    """``collect``, unless the client leaves first (an SDK timeout): then the generation is stopped and the
    turn is interrupted with nothing sent, so the model does not run to the end for nobody. False then."""
    collecting = asyncio.ensure_future(collect(opened, turn))
    watching = asyncio.ensure_future(disconnected(request.receive))
    try:
        await asyncio.wait({collecting, watching}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        collecting.cancel()
        raise
    finally:
        watching.cancel()
    if collecting.done():
        collecting.result()
        return True
    collecting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await collecting              # its finally closes the upstream request
    turn.reply, turn.tool_calls = [], []    # nothing reached the client: no text, no tool call to answer
    turn.status = "interrupted"
    turn.total_s = time.perf_counter() - turn.started
    return False


def completion_body(turn: Turn) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": turn.reply_text or (None if turn.tool_calls else "")}
    if turn.tool_calls:
        message["tool_calls"] = turn.tool_calls
    prompt = turn.upstream_prompt_tokens or turn.prompt_tokens
    completion = turn.completion_tokens or 0
    return {
        "id": turn.completion_id or f"chatcmpl-{turn.id}", "object": "chat.completion", "created": int(time.time()),
        "model": turn.model, "choices": [{"index": 0, "message": message, "finish_reason": turn.finish_reason or "stop",
                                          "logprobs": None}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        "session_id": str(turn.session_id),
        **({"citations": turn.citations} if turn.citations else {}),
        **({"dialogue": dialogue_public(turn)} if turn.pack is not None else {}),
    }


def dialogue_public(turn: Turn) -> dict[str, Any]:
    """What a client (the chat UI, a test) may know of the assistant's decision: no internal ids beyond the
    action's own, no redacted values."""
    u = turn.dialogue.get("understood") or {}
    out: dict[str, Any] = {"mode": "human" if turn.relay else "bot", "intent": u.get("intent"),
                           "confidence": u.get("confidence"), "source": u.get("source"),
                           "decision": turn.dialogue.get("decision"), "flow": turn.dialogue.get("flow"),
                           "awaiting": turn.dialogue.get("awaiting"),
                           "actions": [{"tool": a["tool"], "state": a["state"], "duplicate": a.get("duplicate", False)}
                                       for a in turn.dialogue.get("actions", [])]}
    if turn.injection:
        out["guard"] = turn.injection["action"]
    if turn.dialogue.get("llm_args"):
        out["llm_args"] = turn.dialogue["llm_args"]
    if turn.handoff:
        out["handoff"] = {"reason": turn.handoff["reason"], **({"id": str(turn.handoff["id"])} if turn.handoff.get("id") else {})}
    return out


def sse_response(state, turn: Turn, opened: OpenedStream, include_usage: bool, headers: dict[str, str]) -> SSEResponse:
    """Forward the upstream stream chunk by chunk. Whatever ends it, the turn is recorded: before
    ``[DONE]`` when it ran to the end, in the background when the client went away (then with only the
    text that was written to the client)."""
    streams = state.metrics.active_streams.labels(turn.channel)
    finished = False
    # Placeholders the model writes become the owner's values again (or masks), per the echo policy. A
    # session with nothing in its vault has nothing to restore: its chunks pass byte for byte.
    restorer = (StreamingRestorer(state.redactor, turn.vault, reveal=turn.caller_is_owner)
                if turn.vault is not None and turn.vault.entries else None)

    async def body(write) -> None:
        nonlocal finished
        usage_sent = False
        streams.inc()
        try:
            if turn.citations or turn.pack is not None:  # sources and the assistant's decision, before the first word
                await write(b"data: " + citations_chunk(turn) + b"\n\n")
            async for batch in opened.batches():
                out, texts = [], []
                for ev in batch:
                    if ev.usage is not None and not include_usage and ev.finish_reason is None and not ev.content \
                            and not ev.tool_calls and not ev.role_only:
                        continue  # the usage-only chunk the gateway asked for for itself
                    usage_sent = usage_sent or ev.usage is not None
                    if restorer is None:
                        out.append(b"data: " + ev.raw + b"\n\n")
                        texts.append(ev.content)
                        continue
                    text = restorer.feed(ev.content or "")
                    if ev.finish_reason is not None:
                        text += restorer.flush()
                    out.append(b"data: " + (ev.raw if text == (ev.content or "") else with_content(ev, text)) + b"\n\n")
                    texts.append(text)
                if out:  # chunks that arrived together leave together: one write, one syscall
                    await write(b"".join(out))
                    turn.reply.extend(texts)
                for ev in batch:   # after the write: the turn keeps only what the client was sent (a finish, a tool call)
                    absorb_event(turn, ev)
            if restorer is not None and (held := restorer.flush()):
                for ev in canned_chunks(held, turn.model or "enclave", turn.completion_id or turn.id)[:1]:
                    await write(b"data: " + ev.raw + b"\n\n")
                    turn.reply.append(ev.content)
            if opened.failed_midway:
                turn.status = "failed"
                for ev in canned_chunks(INTERRUPTED_NOTE, turn.model or "enclave", turn.completion_id or turn.id):
                    await write(b"data: " + ev.raw + b"\n\n")
                    turn.reply.append(ev.content)
            turn.total_s = time.perf_counter() - turn.started
            finished = True
            # The save runs as a task of its own: a client that closes the stream on finish_reason, before
            # [DONE], cancels this body, and must not cancel the save with it (the turn would be lost).
            save = asyncio.ensure_future(_record(state, turn))
            _keep_saving(state, save)
            if not await asyncio.shield(save):
                # The text is already on the client's screen; say it was not kept, in OpenAI's stream error shape.
                await write(b"data: " + json.dumps(error_body("storage_unavailable", "this reply could not be stored",
                                                               "storage_error")).encode() + b"\n\n")
            if include_usage and not usage_sent:   # a canned reply or a broken-off stream: the turn's own counts
                await write(b"data: " + usage_chunk(turn) + b"\n\n")
            await write(DONE)
        finally:
            streams.dec()

    async def on_disconnect() -> None:
        if finished:
            return
        # The client went away: stop the upstream, keep what was sent. A client that closes as soon as it has
        # the finish_reason (before the usage chunk and [DONE]) had the whole answer: that turn stays complete.
        if turn.status == "complete" and turn.finish_reason is None:
            turn.status = "interrupted"
        turn.total_s = time.perf_counter() - turn.started
        _keep_saving(state, asyncio.create_task(_finish_interrupted(state, turn, opened)))

    return SSEResponse(body, on_disconnect, headers, state.settings.sse_keepalive_s)


def usage_chunk(turn: Turn) -> bytes:
    """The final usage chunk OpenAI sends with ``stream_options.include_usage`` (empty ``choices``)."""
    prompt, completion = turn.upstream_prompt_tokens or turn.prompt_tokens, turn.completion_tokens or 0
    return json.dumps({"id": turn.completion_id or f"chatcmpl-{turn.id}", "object": "chat.completion.chunk",
                       "created": int(time.time()), "model": turn.model, "choices": [],
                       "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                 "total_tokens": prompt + completion}}, separators=(",", ":")).encode()


def citations_chunk(turn: Turn) -> bytes:
    extra: dict[str, Any] = {"citations": turn.citations} if turn.citations else {}
    if turn.pack is not None:
        extra["dialogue"] = dialogue_public(turn)
    return chunk_event(turn.completion_id or f"chatcmpl-{turn.request_id}", turn.model, {"role": "assistant"}, None,
                       **extra).raw


def with_content(ev: ChunkEvent, text: str) -> bytes:
    """The upstream chunk with its delta text replaced (only chunks that carried a placeholder)."""
    chunk = json.loads(ev.raw)
    chunk["choices"][0].setdefault("delta", {})["content"] = text
    return json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode()


async def _record(state, turn: Turn) -> bool:
    try:
        await state.pipeline.finish(turn)
        return True
    except Exception:
        log.exception("could not record the streamed turn")
        return False


def _keep_saving(state, task: asyncio.Task) -> None:
    """A turn's save that outlives its request: held (a task nobody holds may be collected) and waited for
    at shutdown, before the other background work is cancelled."""
    state.saving.add(task)
    task.add_done_callback(state.saving.discard)


async def _finish_interrupted(state, turn: Turn, opened: OpenedStream) -> None:
    try:
        await opened.aclose()
    finally:
        try:
            await state.pipeline.finish(turn)
        except Exception:
            log.exception("could not record an interrupted turn", extra={"turn": turn.id})
        log.info("stream interrupted by the client", extra={"turn": turn.id, "sent_chars": len(turn.reply_text)})
