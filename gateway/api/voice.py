"""``WS /v1/voice``: the browser's (and any client's) voice channel. The protocol is in docs/voice.md.

The first message is a JSON ``start`` (auth token unless an ``Authorization`` header was sent, audio
format, optional session to continue); then binary frames carry caller audio and JSON messages control
the call. The server answers with JSON events and binary audio frames in the same format. Each
transcript runs the same turn pipeline as chat, on a session with channel ``voice``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from typing import Any, Literal

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.api.chat import absorb_event
from gateway.api.routing import StrictJsonRoute
from gateway.api.sessions import load_session
from gateway.auth import CHAT_ROLES, Identity, identify
from gateway.dialogue.turn import Turn
from gateway.errors import EnclaveError, Forbidden, InvalidRequest, Unauthenticated
from gateway.knowledge.ground import KnowledgeSpec
from gateway.observability import request_id_var, turn_id_var
from gateway.store import sessions as repo
from gateway.voice.session import CallSession, VoiceConfig, VoiceTexts
from gateway.voice.vad import EndpointConfig

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1", tags=["voice"])
log = logging.getLogger("enclave.gateway.voice")
RATES = (8000, 16000, 24000, 48000)


# The languages Whisper transcribes (faster_whisper.tokenizer._LANGUAGE_CODES; a unit test keeps them equal).
WHISPER_LANGUAGES = frozenset("""
af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu ha haw he hi hr ht hu hy id is
it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml mn mr ms mt my ne nl nn no oc pa pl ps pt ro ru sa sd si sk sl
sn so sq sr su sv sw ta te tg th tk tl tr tt uk ur uz vi yi yo zh yue
""".split())


class StartMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["start"]
    token: str | None = Field(default=None, max_length=4096)
    session_id: str | None = None
    sample_rate: int = 16000
    output_sample_rate: int | None = None
    encoding: Literal["pcm16", "mulaw", "alaw"] = "pcm16"
    language: str | None = Field(default=None, max_length=16)
    knowledge: bool | dict[str, Any] | None = None

    @field_validator("language")
    @classmethod
    def _whisper_code(cls, value: str | None) -> str | None:
        """A browser's ``navigator.language`` ("en-US") becomes Whisper's "en"; a code Whisper does not know is
        refused here, not taken and then failed on every utterance as if speech-to-text were down."""
        if value is None:
            return None
        code = value.strip().replace("_", "-").split("-")[0].lower()
        if code not in WHISPER_LANGUAGES:
            raise ValueError(f"language {value!r} is not one speech-to-text knows: give an ISO 639-1 code such as 'en'")
        return code


class VoiceDriver:
    """Runs the turn pipeline for each transcript of one call, on one session."""

    def __init__(self, state, identity: Identity, session: dict, is_new: bool, knowledge) -> None:
        self.state, self.identity, self.session, self.is_new, self.knowledge = state, identity, session, is_new, knowledge

    async def begin(self, text: str, language: str | None):
        settings = self.state.settings
        request_id_var.set(f"voice-{uuid.uuid4().hex[:16]}")
        turn = Turn(request_id=request_id_var.get(), tenant_id=self.identity.tenant_id, session=self.session,
                    session_is_new=self.is_new, channel=self.session.get("channel", "voice"), raw_text=text,
                    input_messages=[{"role": "user", "content": text}], params={},
                    max_output_tokens=min(settings.voice_max_output_tokens,
                                          self.identity.max_output_tokens or settings.max_output_tokens),
                    max_input_tokens=self.identity.max_input_tokens or settings.max_input_tokens,
                    actor=self.identity.subject, knowledge=self.knowledge)
        turn.started = time.perf_counter()
        turn_id_var.set(turn.id)
        await self.state.pipeline.prepare(turn)
        return turn, await self.state.pipeline.open(turn)

    def absorb(self, turn: Turn, event) -> None:
        absorb_event(turn, event)   # the one place stream events are folded into a turn (gateway/api/chat.py)

    async def end(self, turn: Turn) -> None:
        await self.state.pipeline.finish(turn)
        async with self.state.db.connection() as conn:
            fresh = await repo.get_session(conn, self.identity.tenant_id, self.session["id"])
        if fresh is not None:
            self.session, self.is_new = fresh, False


def voice_config(settings, *, in_rate: int, out_rate: int, encoding: str, language: str | None = None) -> VoiceConfig:
    """A call's audio format plus the appliance's endpointing, barge-in and silence settings (WebSocket and SIP)."""
    return VoiceConfig(
        in_rate=in_rate, out_rate=out_rate, encoding=encoding, frame_ms=settings.voice_frame_ms,
        endpoint=EndpointConfig(sample_rate=16000, frame_ms=settings.voice_frame_ms, silence_ms=settings.voice_silence_ms,
                                min_speech_ms=settings.voice_min_speech_ms, max_utterance_ms=settings.voice_max_utterance_ms),
        barge_in_ms=settings.voice_barge_in_ms, silence_reprompt_s=settings.voice_silence_reprompt_s,
        max_reprompts=settings.voice_max_reprompts, language=language, texts=VoiceTexts())


def new_voice_session(settings, identity: Identity, channel: str) -> dict:
    """A session that exists once its first turn is stored (as for chat)."""
    return {"id": uuid.uuid4(), "channel": channel, "system_prompt": settings.voice_system_prompt, "summary": None,
            "summary_upto_seq": 0, "turn_count": 0, "created_by": identity.subject, "mode": "bot"}


async def _open_session(state, identity: Identity, start: StartMessage) -> tuple[dict, bool]:
    if start.session_id:
        async with state.db.connection() as conn:
            return await load_session(conn, identity, start.session_id), False
    return new_voice_session(state.settings, identity, "voice"), True


@router.websocket("/voice")
async def voice(ws: WebSocket) -> None:
    await ws.accept()
    state = ws.app.state
    lock = asyncio.Lock()
    open_ = True

    async def send_json(event: dict) -> None:
        if open_:
            async with lock:
                with contextlib.suppress(Exception):
                    await ws.send_text(json.dumps(event, ensure_ascii=False))

    async def send_audio(frame: bytes) -> None:
        if open_:
            async with lock:
                with contextlib.suppress(Exception):
                    await ws.send_bytes(frame)

    async def refuse(e: EnclaveError, close_code: int = 1008) -> None:
        await send_json({"type": "error", "code": e.code, "message": e.message})
        await ws.close(close_code)

    try:
        # orjson, as for HTTP bodies (gateway/api/routing.py): a lone surrogate or NaN is invalid JSON here too
        first = orjson.loads(await asyncio.wait_for(ws.receive_text(), timeout=state.settings.voice_start_timeout_s))
        start = StartMessage.model_validate(first)
    except (TimeoutError, ValueError, ValidationError, KeyError) as e:
        detail = e.errors()[0]["msg"] if isinstance(e, ValidationError) else "send a JSON start message first"
        await refuse(InvalidRequest("invalid_start", f"the first message must be a start message: {detail}"))
        return
    except WebSocketDisconnect:
        return
    try:
        header = ws.headers.get("authorization", "")
        token = header.partition(" ")[2].strip() if header.lower().startswith("bearer ") else start.token
        if not token:
            raise Unauthenticated("missing_api_key", "send the API key as 'token' in the start message (or an "
                                  "Authorization header)")
        identity = await identify(ws, token)
        if not identity.roles & set(CHAT_ROLES):
            raise Forbidden("role_not_allowed", f"voice needs one of the roles {', '.join(CHAT_ROLES)}")
        if start.sample_rate not in RATES or (start.output_sample_rate or start.sample_rate) not in RATES:
            raise InvalidRequest("unsupported_sample_rate", f"sample rates must be one of {RATES}")
        if start.encoding != "pcm16" and (start.sample_rate != 8000 or (start.output_sample_rate or 8000) != 8000):
            raise InvalidRequest("unsupported_sample_rate", "G.711 (mulaw, alaw) is 8000 Hz, both ways")
        session, is_new = await _open_session(state, identity, start)
        knowledge = KnowledgeSpec.parse(start.knowledge if start.knowledge is not None
                                        else (session.get("metadata") or {}).get("knowledge"))
    except EnclaveError as e:
        await refuse(e)
        return
    config = voice_config(state.settings, in_rate=start.sample_rate, out_rate=start.output_sample_rate or start.sample_rate,
                          encoding=start.encoding, language=start.language)
    driver = VoiceDriver(state, identity, session, is_new, knowledge)
    call = CallSession(config, stt=state.speech.stt, tts=state.speech.tts, fallback=state.speech.fallback, driver=driver,
                       send_json=send_json, send_audio=send_audio,
                       restore=lambda turn, text: (state.redactor.restore(text, turn.vault, reveal=turn.caller_is_owner)
                                                   if turn.vault is not None else text),
                       metrics=state.metrics)
    async def hang_up() -> None:   # the silence policy ended the call: close the socket, which ends the loop
        with contextlib.suppress(Exception):
            await ws.close(1000)

    call.on_hangup = hang_up
    state.metrics.voice_sessions.inc()
    await send_json({"type": "ready", "session_id": str(session["id"]), "sample_rate": config.in_rate,
                     "output_sample_rate": config.out_rate, "encoding": config.encoding, "frame_ms": config.frame_ms})
    try:
        while not call.closed:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            if message.get("bytes") is not None:
                await call.feed(message["bytes"])
            elif message.get("text") is not None:
                try:
                    control = orjson.loads(message["text"])
                except ValueError:
                    await send_json({"type": "error", "code": "invalid_json", "message": "a control message must be JSON"})
                    continue
                if not isinstance(control, dict):
                    await send_json({"type": "error", "code": "invalid_message", "message": "a control message is a JSON object"})
                    continue
                if control.get("type") == "stop":
                    break
                await send_json({"type": "error", "code": "unknown_message",
                                 "message": f"unknown control message {str(control.get('type'))[:40]!r}"})
    except (WebSocketDisconnect, RuntimeError):   # RuntimeError: the socket was closed by the hang-up
        pass
    finally:
        await call.close()
        state.metrics.voice_sessions.dec()
        open_ = False
        with contextlib.suppress(Exception):
            await ws.close()
