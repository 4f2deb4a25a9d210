"""The gateway's app factory. The lifespan owns the DB pool, the serving clients (httpx for probes and
the other roles, pooled aiohttp sessions for the LLM chain's streams) and the pipeline; each feature has
its router; domain errors map to JSON errors with a stable ``code``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import httpx
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from gateway.api import chat, health, models, sessions
from gateway.auth import KeyCache
from gateway.clients.breaker import CircuitBreaker
from gateway.clients.llm import Timeouts, build_chain
from gateway.config import Settings, get_settings
from gateway.dialogue.context import BuildContext, ContextPolicy
from gateway.dialogue.pipeline import CheckInput, PassThrough, Postprocess, Record, TurnPipeline
from gateway.dialogue.preprocess import Preprocess
from gateway.dialogue.summary import RollingSummarizer
from gateway.dialogue.tokens import TokenCounter, tokenizer_for
from gateway.errors import install_error_handlers
from gateway.observability import Metrics, RequestContextMiddleware, configure_logging

log = logging.getLogger("enclave.gateway")


def _profile_llm(settings: Settings) -> tuple[str, int | None]:
    """(served model id, its context length) for the configured profile, from the catalog."""
    from models.catalog import load_catalog

    catalog = load_catalog()
    model = catalog.model(catalog.profile(settings.model_profile).roles["llm"].model)
    return model.id, model.engine.get("max_model_len")


def build_pipeline(settings: Settings, pool: AsyncConnectionPool, metrics: Metrics,
                   background: set[asyncio.Task]) -> tuple[TurnPipeline, list[aiohttp.ClientSession], TokenCounter]:
    model_id, max_len = _profile_llm(settings)
    timeouts = Timeouts(settings.connect_timeout_s, settings.first_token_timeout_s, settings.total_timeout_s,
                        settings.upstream_retries, settings.retry_backoff_s)
    chain, clients = build_chain(
        settings.llm_chain, settings.serving_base_url, model_id, timeouts,
        lambda: CircuitBreaker(settings.breaker_failure_threshold, settings.breaker_reset_s), metrics)
    counter = TokenCounter(tokenizer_for(settings.model_store_dir, chain.primary_model))
    policy = ContextPolicy(settings.context_window_tokens or max_len or 4096, settings.context_recent_turns,
                           settings.summary_threshold_tokens, settings.summary_keep_turns, settings.summary_max_tokens)
    summarizer = RollingSummarizer(pool, chain, counter, policy, metrics)
    pipeline = TurnPipeline(
        before=[Preprocess(), CheckInput(counter),
                PassThrough("guard", "trust layer: prompt-injection check, PII redaction"),
                PassThrough("understand", "dialogue: intent and entities"),
                PassThrough("decide", "dialogue: flows, tools, handoff"),
                PassThrough("ground", "knowledge: retrieval and citations"),
                BuildContext(pool, counter, policy)],
        chain=chain,
        after=[Postprocess(counter), Record(pool, counter, metrics, summarizer, background)],
    )
    return pipeline, clients, counter


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # open=False + open(wait=False): the gateway starts even while Postgres is still coming up;
        # /readyz tells the load balancer when it is really usable.
        pool = AsyncConnectionPool(
            settings.database_url or "", min_size=settings.db_pool_min, max_size=settings.db_pool_max,
            open=False, kwargs={"autocommit": True},
        )
        await pool.open(wait=False)
        # Health probes of every role share one client; the LLM chain has its own per upstream URL.
        serving = httpx.AsyncClient(
            base_url=settings.serving_base_url,
            timeout=httpx.Timeout(30.0, connect=2.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            trust_env=False,  # never route through an environment proxy
        )
        background: set[asyncio.Task] = set()
        pipeline, llm_clients, counter = build_pipeline(settings, pool, metrics, background)
        state = app.state
        state.settings, state.db, state.serving, state.metrics = settings, pool, serving, metrics
        state.pipeline, state.chain, state.counter = pipeline, pipeline.chain, counter
        state.key_cache, state.background = KeyCache(), background
        log.info("gateway started", extra={"profile": settings.model_profile, "chain": chain_desc(pipeline),
                                           "tokenizer": counter.source, "stages": pipeline.stage_names})
        try:
            yield
        finally:
            for task in list(background):
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await serving.aclose()
            for session in llm_clients:
                await session.close()
            await pool.close()

    app = FastAPI(title="Enclave gateway", version="0.1.0", lifespan=lifespan)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    install_error_handlers(app)
    for module in (health, models, chat, sessions):
        app.include_router(module.router)
    return app


def chain_desc(pipeline: TurnPipeline) -> list[str]:
    return [f"{u.config.name}:{u.model}" for u in pipeline.chain.upstreams]
