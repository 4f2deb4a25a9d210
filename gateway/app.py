"""The gateway's app factory. The lifespan owns the DB pool, the serving clients (httpx for probes and
the other roles, pooled aiohttp sessions for the LLM chain's streams) and the pipeline; each feature has
its router; domain errors map to JSON errors with a stable ``code``."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import httpx
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from gateway.api import admin, audit, chat, dialogue, feedback, health, knowledge, kpis, me, models, sessions, ui, vault, voice
from gateway.api.body_limit import BodyLimitMiddleware
from gateway.auth import FailedAuthLimiter, KeyCache, RateLimiter, SharedRateLimiter
from gateway.clients import eager_writes
from gateway.clients.breaker import CircuitBreaker
from gateway.clients.embed import Embedder
from gateway.clients.http import shared_client
from gateway.clients.llm import Timeouts, build_chain
from gateway.clients.speech import EspeakSpeech, SpeechToText, TextToSpeech
from gateway.config import Settings, get_settings
from gateway.dialogue.actions import Actions, ToolExecutor
from gateway.dialogue.context import BuildContext, ContextPolicy
from gateway.dialogue.decide import Decide, LoadDialogue, Understand
from gateway.dialogue.handoff import Relay
from gateway.dialogue.pipeline import CheckInput, Postprocess, Record, TurnPipeline
from gateway.dialogue.preprocess import Preprocess
from gateway.dialogue.registry import PackRegistry
from gateway.dialogue.summary import RollingSummarizer
from gateway.dialogue.tokens import TokenCounter, tokenizer_for
from gateway.errors import install_error_handlers
from gateway.knowledge.ground import Ground
from gateway.knowledge.ingest import Ingestor
from gateway.knowledge.retrieve import Retriever, warn_of_other_model_documents
from gateway.observability import Metrics, RequestContextMiddleware, configure_logging
from gateway.oidc import OidcVerifier
from gateway.safety.guard import Guard, RedactOutput
from gateway.safety.pii import DEFAULT_PATTERNS, CustomPattern, PiiDetector
from gateway.safety.redact import Redactor
from gateway.safety.vault import VaultCipher, load_key_provider
from gateway.workers import forget_worker, lead_when_possible, leader_lock

TURN_SAVE_GRACE_S = 10.0   # how long a shutdown waits for turns still being stored

log = logging.getLogger("enclave.gateway")


def _profile_model(settings: Settings, role: str):
    """The catalog entry serving ``role`` in the configured profile."""
    from models.catalog import load_catalog

    catalog = load_catalog()
    return catalog.model(catalog.profile(settings.model_profile).roles[role].model)


def _profile_llm(settings: Settings) -> tuple[str, int | None, dict[str, str]]:
    """(served model id, its context length, {model id: revision}) for the configured profile. The revision
    the audit log records is the store manifest's hash (the exact files served) or the catalog source."""
    import hashlib

    model = _profile_model(settings, "llm")
    manifest = settings.model_store_dir / model.id / ".enclave-manifest.json"
    revision = (f"manifest-sha256:{hashlib.sha256(manifest.read_bytes()).hexdigest()[:16]}" if manifest.is_file()
                else model.describe_source())
    return model.id, model.engine.get("max_model_len"), {model.id: revision}


def _profile_embed(settings: Settings) -> tuple[str, int, float]:
    """(embedding model id, its dimensions, the relevance threshold) for the configured profile."""
    model = _profile_model(settings, "embed")
    threshold = settings.knowledge_min_similarity
    if threshold is None:
        threshold = float(model.engine.get("relevance_threshold", 0.4))
    return model.id, int(model.engine.get("dimensions", 384)), threshold


@dataclass(frozen=True)
class Knowledge:
    retriever: Retriever
    ingestor: Ingestor
    relevance_threshold: float
    embedder: Embedder


@dataclass(frozen=True)
class Speech:
    stt: SpeechToText
    tts: TextToSpeech
    fallback: EspeakSpeech | None
    clients: tuple[httpx.AsyncClient, ...]


def build_speech(settings: Settings) -> Speech:
    """The voice channel's speech roles (the serving plane unless overridden) and the local fallback voice."""
    def client(url: str | None) -> httpx.AsyncClient:
        return shared_client(base_url=(url or settings.serving_base_url).rstrip("/"),
                             timeout=httpx.Timeout(30.0, connect=2.0),
                             limits=httpx.Limits(max_connections=128, max_keepalive_connections=32))

    stt_client, tts_client = client(settings.stt_url), client(settings.tts_url)
    espeak = EspeakSpeech()
    return Speech(SpeechToText(stt_client), TextToSpeech(tts_client), espeak if espeak.available else None,
                  (stt_client, tts_client))


async def watch_loop_lag(metrics: Metrics, every_s: float = 0.05) -> None:
    """Sample how late the event loop wakes up (a blocking call or a starved process shows here first)."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(every_s)
        metrics.loop_lag.observe(max(0.0, loop.time() - start - every_s))


def sip_config(settings: Settings, secret: bytes):
    """The SIP user agent's configuration from Settings (digest auth and the rate limiter included)."""
    from gateway.sip.auth import DigestAuth
    from gateway.sip.ratelimit import RateLimiter
    from gateway.sip.server import SipConfig

    low, _, high = settings.sip_rtp_ports.partition("-")
    auth = DigestAuth(realm=settings.sip_auth_realm, credentials=settings.sip_auth_users, secret=secret) \
        if settings.sip_auth_users else None
    limiter = RateLimiter(settings.sip_rate_per_s, int(settings.sip_rate_per_s * 4)) if settings.sip_rate_per_s else None
    tls_context = None
    if settings.sip_tls_port is not None:
        from gateway.sip.tls import server_tls_context

        cert, key = (settings.sip_tls_cert_file, settings.sip_tls_key_file) if settings.sip_tls_cert_file \
            else (settings.tls_cert_file, settings.tls_key_file)
        if cert is None or key is None:
            raise ValueError("ENCLAVE_SIP_TLS_PORT needs a certificate: ENCLAVE_SIP_TLS_CERT_FILE and "
                             "ENCLAVE_SIP_TLS_KEY_FILE (or the gateway's ENCLAVE_TLS_CERT_FILE / ENCLAVE_TLS_KEY_FILE)")
        tls_context = server_tls_context(cert, key)
    return SipConfig(host=settings.sip_host, port=settings.sip_port or 5060, rtp_host=settings.sip_rtp_host,
                     rtp_ports=(int(low), int(high)) if low else (0, 0), allowed=tuple(settings.sip_trunk_peers),
                     routes=dict(settings.sip_routes), default_tenant=settings.sip_tenant,
                     transfer_uri=settings.sip_transfer_uri, agent_digit=settings.sip_agent_digit,
                     jitter_ms=settings.sip_jitter_ms, ring_ms=settings.sip_ring_ms, auth=auth, limiter=limiter,
                     tls_port=settings.sip_tls_port, tls_context=tls_context)


async def start_sip_channel(settings: Settings, state):
    """The SIP user agent: each answered call runs a voice CallSession on a `sip` session of the tenant its
    called number routes to (that tenant's domain pack answers); a hand-off transfers the call."""
    from gateway.api.voice import VoiceDriver, new_voice_session, voice_config
    from gateway.auth import Identity
    from gateway.sip.server import call_subject, start_sip
    from gateway.voice.session import CallSession

    server = None

    async def new_session(call, send_audio):
        row = await state.key_cache.tenant(state.db, call.tenant)
        if row is None:
            raise RuntimeError(f"SIP calls to {call.did or 'this number'} route to tenant {call.tenant!r}, which does not exist")
        identity = Identity(str(row[0]), frozenset({"user"}), call_subject(call), "api_key", None, row[1], row[2])
        session = new_voice_session(settings, identity, "sip")
        config = voice_config(settings, in_rate=8000, out_rate=8000, encoding="mulaw" if call.codec == "PCMU" else "alaw")
        loaded = await state.dialogue.registry.resolve(identity.tenant_id) if state.dialogue is not None else None
        if loaded is not None:    # '0' means what the pack's own "speak to a person" examples mean
            pack = loaded.pack
            examples = pack.intents.get(pack.escalation.request_intent)
            call.agent_phrase = examples.examples[0] if examples is not None and examples.examples else None

        async def events(event: dict) -> None:   # a phone line has no event channel: the log has them
            if event["type"] in ("transcript", "turn_end", "barge_in", "error", "hangup"):
                log.info("sip call event", extra={"call_id": call.call_id, "event": event["type"]})
            if event["type"] == "turn_end" and event.get("handoff") and server is not None:
                server.spawn(server.hand_off(call, event["handoff"]["id"]))

        return CallSession(config, stt=state.speech.stt, tts=state.speech.tts, fallback=state.speech.fallback,
                           driver=VoiceDriver(state, identity, session, True, None), send_json=events,
                           send_audio=send_audio, restore=lambda turn, text: state.redactor.restore(text, turn.vault)
                           if turn.vault is not None else text, metrics=state.metrics)

    # Nonces are signed with a per-process secret: a restart only makes peers answer one fresh challenge.
    server = await start_sip(sip_config(settings, os.urandom(32)), new_session, state.metrics)
    log.info("SIP user agent listening", extra={"host": settings.sip_host, "port": settings.sip_port,
                                                "tls_port": server.tls_port})
    return server


@dataclass(frozen=True)
class Dialogue:
    registry: PackRegistry
    actions: Actions
    tools_client: httpx.AsyncClient
    webhook_secret: bytes | None


def build_knowledge(settings: Settings, pool: AsyncConnectionPool, serving: httpx.AsyncClient,
                    detector: PiiDetector) -> Knowledge:
    """Retrieval and ingest share one embedder; chunks are sized with the embedding model's own tokenizer."""
    model_id, dims, threshold = _profile_embed(settings)
    embedder = Embedder(serving, model_id, dims)
    count = TokenCounter(tokenizer_for(settings.model_store_dir, model_id)).count
    retriever = Retriever(pool, embedder, candidates=settings.knowledge_candidates, ef_search=settings.knowledge_ef_search,
                          text_terms=settings.knowledge_text_terms, text_max_matches=settings.knowledge_text_max_matches)
    ingestor = Ingestor(pool, embedder, count, max_tokens=settings.knowledge_chunk_tokens,
                        overlap_tokens=settings.knowledge_chunk_overlap_tokens,
                        max_bytes=settings.knowledge_max_upload_bytes, detector=detector)
    return Knowledge(retriever, ingestor, threshold, embedder)


def build_dialogue(settings: Settings, pool: AsyncConnectionPool, knowledge: Knowledge, redactor: Redactor) -> Dialogue:
    """Domain packs (validated now: a broken pack stops the start with its file and line) and the actions
    service whose tool calls go to endpoints on the premises."""
    registry = PackRegistry(list(settings.packs), pool, knowledge.embedder, settings.var_dir / "cache" / "intents")
    tools_client = shared_client(timeout=httpx.Timeout(15.0, connect=2.0))
    actions = Actions(pool, ToolExecutor(tools_client), redactor, registry, lease_s=settings.actions_lease_s,
                      recheck_s=settings.actions_recheck_s)
    secret_path = settings.webhook_secret_path
    secret = secret_path.read_bytes().strip() if secret_path.is_file() else None
    return Dialogue(registry, actions, tools_client, secret or None)


def build_redactor(settings: Settings) -> Redactor:
    patterns = ([CustomPattern(p["type"], p["pattern"], tuple(p.get("context", ()))) for p in settings.pii_patterns]
                if settings.pii_patterns is not None else DEFAULT_PATTERNS)
    cipher = VaultCipher(load_key_provider(settings.vault_key, settings.vault_key_path, settings.vault_key_provider))
    return Redactor(PiiDetector(patterns), cipher, settings.pii_never_echo)


def build_pipeline(settings: Settings, pool: AsyncConnectionPool, metrics: Metrics, background: set[asyncio.Task],
                   redactor: Redactor, knowledge: Knowledge,
                   dialogue: Dialogue) -> tuple[TurnPipeline, list[aiohttp.ClientSession], TokenCounter]:
    model_id, max_len, revisions = _profile_llm(settings)
    timeouts = Timeouts(settings.connect_timeout_s, settings.first_token_timeout_s, settings.total_timeout_s,
                        settings.upstream_retries, settings.retry_backoff_s)
    chain, clients = build_chain(
        settings.llm_chain, settings.serving_base_url, model_id, timeouts,
        lambda: CircuitBreaker(settings.breaker_failure_threshold, settings.breaker_reset_s), metrics)
    counter = TokenCounter(tokenizer_for(settings.model_store_dir, chain.primary_model))
    policy = ContextPolicy(settings.context_window_tokens or max_len or 4096, settings.context_recent_turns,
                           settings.summary_threshold_tokens, settings.summary_keep_turns, settings.summary_max_tokens)
    summarizer = RollingSummarizer(pool, chain, counter, policy, metrics, redactor)
    record = Record(pool, counter, metrics, summarizer, background, revisions, redactor)
    llm_timeout = settings.dialogue_llm_timeout_s
    pipeline = TurnPipeline(
        before=[Preprocess(), CheckInput(counter, policy.window_tokens),
                LoadDialogue(dialogue.registry, pool),
                Guard(pool, redactor, settings.injection_block_at, settings.injection_fence_at),
                Understand(chain, redactor, llm_timeout),
                Decide(dialogue.actions, chain, redactor, pool, llm_timeout_s=llm_timeout),
                Ground(knowledge.retriever, counter, top_k=settings.knowledge_top_k,
                       voice_top_k=settings.knowledge_voice_top_k, min_similarity=knowledge.relevance_threshold,
                       max_reference_tokens=settings.knowledge_max_reference_tokens),
                BuildContext(pool, counter, policy)],
        chain=chain,
        after=[Postprocess(counter), RedactOutput(redactor), record],
        relay=Relay(pool, record, redactor, settings.handoff_wait_s),
    )
    return pipeline, clients, counter


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    metrics = Metrics()
    redactor = build_redactor(settings)   # fails here, before serving, when the vault key is missing

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # open=False + open(wait=False): the gateway starts even while Postgres is still coming up;
        # /readyz tells the load balancer when it is really usable.
        pool = AsyncConnectionPool(
            settings.gateway_database_url or settings.database_url or "", min_size=settings.db_pool_min,
            max_size=settings.db_pool_max, open=False, kwargs={"autocommit": True}, configure=_db_role(settings),
        )
        await pool.open(wait=False)
        # Health probes of every role share one client; the LLM chain has its own per upstream URL.
        serving = shared_client(base_url=settings.serving_base_url, timeout=httpx.Timeout(30.0, connect=2.0),
                                limits=httpx.Limits(max_connections=64, max_keepalive_connections=16))
        background: set[asyncio.Task] = set()
        oidc = None
        if settings.oidc_jwks_file or settings.oidc_jwks_url:
            oidc = OidcVerifier(jwks_file=settings.oidc_jwks_file, jwks_url=settings.oidc_jwks_url,
                                issuer=settings.oidc_issuer, audience=settings.oidc_audience,
                                tenant_claim=settings.oidc_tenant_claim, roles_claim=settings.oidc_roles_claim)
            await oidc.load()
        knowledge_parts = build_knowledge(settings, pool, serving, redactor.detector)
        dialogue_parts = build_dialogue(settings, pool, knowledge_parts, redactor)
        pipeline, llm_clients, counter = build_pipeline(settings, pool, metrics, background, redactor, knowledge_parts,
                                                        dialogue_parts)
        state = app.state
        state.settings, state.db, state.serving, state.metrics = settings, pool, serving, metrics
        state.pipeline, state.chain, state.counter = pipeline, pipeline.chain, counter
        # Turns being stored after their stream ended (a client that left, or closed on finish_reason): they
        # outlive the request, so uvicorn's drain does not wait for them; the shutdown below does.
        state.key_cache, state.background, state.saving = KeyCache(), background, set()
        state.redactor, state.oidc = redactor, oidc
        state.rate_limiter = (SharedRateLimiter(pool, settings.rate_limit_per_min) if settings.shared_rate_limits
                              else RateLimiter(settings.rate_limit_per_min))
        state.failed_auth = FailedAuthLimiter()
        state.knowledge, state.dialogue = knowledge_parts, dialogue_parts
        state.speech = speech = build_speech(settings)
        state.sip = None

        def keep(task: asyncio.Task) -> None:
            background.add(task)
            task.add_done_callback(background.discard)

        async def start_duties() -> None:
            """What runs once per box: the SIP user agent (it owns a UDP port) and the action runner."""
            if settings.sip_port:
                state.sip = await start_sip_channel(settings, state)
            if settings.actions_runner and dialogue_parts.registry.loaded:
                keep(asyncio.create_task(dialogue_parts.actions.runner()))
            keep(asyncio.create_task(warn_of_other_model_documents(pool, knowledge_parts.embedder.model)))

        leader = leader_lock(settings.var_dir) if settings.gateway_workers > 1 else None
        if leader is None:
            await start_duties()
        else:
            keep(asyncio.create_task(lead_when_possible(leader, start_duties)))
        keep(asyncio.create_task(watch_loop_lag(metrics)))
        loop = asyncio.get_running_loop()
        eager = eager_writes.install(loop)   # Python 3.11: upstream requests leave at once, not after a burst
        log.info("gateway started", extra={"profile": settings.model_profile, "chain": chain_desc(pipeline),
                                           "tokenizer": counter.source, "stages": pipeline.stage_names,
                                           "upstream_writes": eager_writes.describe(eager)})
        try:
            yield
        finally:
            if state.saving:   # let the turns being stored land (bounded): cancelled, they were lost without a word
                _, pending = await asyncio.wait(set(state.saving), timeout=TURN_SAVE_GRACE_S)
                if pending:
                    log.warning("turns still being stored at shutdown were abandoned", extra={"turns": len(pending)})
            for task in list(background):
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await serving.aclose()
            await dialogue_parts.tools_client.aclose()
            if state.sip is not None:
                await state.sip.close()
            for c in speech.clients:
                await c.aclose()
            for session in llm_clients:
                await session.close()
            await pool.close()
            if leader is not None:
                leader.release()
            if eager:
                loop.set_task_factory(None)
            forget_worker(os.getpid())   # several workers: this one's open streams end with it

    app = FastAPI(title="Enclave gateway", version="0.1.0", lifespan=lifespan)
    # Inside the request context (added first = inner), so a refused body still gets its request id and count.
    # An upload's cap is the document's own plus room for the multipart framing and the form's other fields.
    app.add_middleware(BodyLimitMiddleware, default=settings.max_request_bytes,
                       per_path={"/v1/knowledge/documents": settings.knowledge_max_upload_bytes + (1 << 20)})
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    install_error_handlers(app)
    for module in (health, models, chat, sessions, feedback, kpis, me, admin, audit, vault, knowledge, dialogue,
                   voice, ui):
        app.include_router(module.router)
    app.include_router(ui.api_router)
    app.mount("/ui", ui.ui_files(), name="ui")
    return app


def _db_role(settings: Settings):
    """Without a URL of its own, the gateway's sessions take on its restricted role (SET ROLE)."""
    if settings.gateway_database_url or not settings.db_role:
        return None

    async def configure(conn) -> None:
        await conn.execute(f'SET ROLE "{settings.db_role}"')

    return configure


def chain_desc(pipeline: TurnPipeline) -> list[str]:
    return [f"{u.config.name}:{u.model}" for u in pipeline.chain.upstreams]
