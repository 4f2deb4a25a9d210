"""Prometheus metrics, request/turn ids and structured JSON logs.

One id follows a request everywhere: it is taken from an incoming ``X-Request-Id`` (when sane) or made
here, put in a context variable that the log formatter reads, sent upstream as ``X-Request-Id`` (Ray
Serve and vLLM log it) and returned to the client. Metric labels are low-cardinality by construction:
channel, model, role, upstream name, never anything a user typed.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from contextvars import ContextVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from pythonjsonlogger.json import JsonFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.workers import shared_metrics_dir

log = logging.getLogger("enclave.gateway.http")

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
turn_id_var: ContextVar[str] = ContextVar("turn_id", default="")
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

# Latency buckets from 5 ms (a cached reply) to 2 min (a long generation on CPU).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    """All gateway metrics in one registry (a fresh one per app, so tests can build several apps)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("enclave_requests", "HTTP requests by route and status", ["route", "method", "status"], registry=r)
        self.turns = Counter("enclave_turns", "Chat turns by channel, model and final status", ["channel", "model", "status"], registry=r)
        self.ttft = Histogram("enclave_time_to_first_token_seconds", "Time to first token of a turn", ["channel", "model"],
                              buckets=_LATENCY_BUCKETS, registry=r)
        self.turn_latency = Histogram("enclave_turn_duration_seconds", "Total time of a turn", ["channel", "model"],
                                      buckets=_LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("enclave_tokens", "Tokens in (prompt) and out (completion)", ["direction", "channel", "model"],
                              registry=r)
        self.upstream_errors = Counter("enclave_upstream_errors", "Failed upstream attempts", ["role", "upstream", "kind"],
                                       registry=r)
        self.fallbacks = Counter("enclave_fallbacks", "Turns answered by a later link of the chain", ["role", "upstream"],
                                 registry=r)
        self.breaker_state = Gauge("enclave_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open",
                                   ["role", "upstream"], multiprocess_mode="livemax", registry=r)
        # How late the event loop wakes up: every live call's audio is paced by this loop, so a stall here is a
        # gap a caller hears. Sampled every 50 ms.
        self.loop_lag = Histogram("enclave_event_loop_lag_seconds", "How late the gateway's event loop wakes up",
                                  buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0), registry=r)
        self.active_streams = Gauge("enclave_active_streams", "SSE streams open right now", ["channel"],
                                    multiprocess_mode="livesum", registry=r)
        self.summaries = Counter("enclave_summaries", "Rolling summaries written", ["status"], registry=r)
        # Labels are the PII type only: a metric label never carries a value.
        self.pii_redactions = Counter("enclave_pii_redactions", "Values redacted into placeholders, by type", ["type"],
                                      registry=r)
        self.rate_limited = Counter("enclave_rate_limited", "Requests refused by a per-key rate limit", registry=r)
        # Dialogue KPIs: what the assistant decided, how intents were recognised, escalations, guard verdicts.
        self.decisions = Counter("enclave_dialogue_decisions", "Dialogue decisions (flow, answer, reply, hand-off…)",
                                 ["decision"], registry=r)
        self.intents = Counter("enclave_intents", "Recognised intents by source (classifier, llm, none)",
                               ["intent", "source"], registry=r)
        self.handoffs = Counter("enclave_handoffs", "Sessions handed to a colleague, by reason", ["reason"], registry=r)
        # Voice: each stage of a spoken turn, from the end of the caller's speech to the first audio sent back.
        self.voice_stage = Histogram("enclave_voice_stage_seconds", "Voice turn latency by stage (voice_to_voice: "
                                     "end of speech to first audio byte sent)", ["stage"],
                                     buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10),
                                     registry=r)
        self.voice_sessions = Gauge("enclave_voice_sessions", "Voice sessions open right now",
                                     multiprocess_mode="livesum", registry=r)
        self.voice_barge_ins = Counter("enclave_voice_barge_ins", "Assistant speech cut off by the caller", registry=r)
        self.voice_fallbacks = Counter("enclave_voice_fallbacks", "Speech role failures answered by a fallback",
                                       ["kind"], registry=r)
        # SIP: calls by how they ended, and RTP health (late = a gap the caller hears in our audio; lost = a
        # caller packet that never came and was concealed by the jitter buffer).
        self.sip_calls = Gauge("enclave_sip_calls", "SIP calls connected right now", multiprocess_mode="livesum",
                               registry=r)
        self.sip_call_ends = Counter("enclave_sip_calls_ended", "SIP calls ended, by reason", ["reason"], registry=r)
        self.sip_rtp = Counter("enclave_sip_rtp_packets", "RTP packets by direction and fate (sent, received, "
                               "late_out, underrun_out, lost_in, late_in)", ["kind"], registry=r)
        self.sip_refused = Counter("enclave_sip_refused", "SIP messages refused (forbidden, rate_limited, auth)",
                                   ["reason"], registry=r)
        self.injections = Counter("enclave_injection_verdicts", "Guard verdicts other than pass", ["action"], registry=r)

    def render(self) -> tuple[bytes, str]:
        """This process's metrics, or, when the gateway runs as several processes, all of theirs added up
        (gauges of open streams and calls summed over the live ones, breaker states by their worst)."""
        if (path := shared_metrics_dir()) is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        everyone = CollectorRegistry()
        multiprocess.MultiProcessCollector(everyone, path)
        return generate_latest(everyone), CONTENT_TYPE_LATEST


def new_id() -> str:
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware: it buffers and costs per streamed chunk). Sets the request id,
    echoes it in ``X-Request-Id`` and counts the request by its route template once it is answered."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        rid = incoming if _SANE_ID.match(incoming) else new_id()
        token = request_id_var.set(rid)
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Answered here, not by Starlette's outermost handler: there the request id is already reset,
            # so the 500 would carry no X-Request-Id and its log line no id to find it by.
            if started:
                raise
            log.exception("unhandled error")
            from gateway.errors import error_body
            body = json.dumps(error_body("internal_error", f"internal error; request id {rid} is in the logs",
                                         "server_error")).encode()
            await send_with_id({"type": "http.response.start", "status": 500,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(path, scope["method"], str(status)).inc()
            request_id_var.reset(token)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.turn_id = turn_id_var.get()
        return True


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for the gateway's own loggers (one object per line, request/turn ids included)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(turn_id)s",
                                       rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"}))
    handler.addFilter(_ContextFilter())
    logger = logging.getLogger("enclave")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
