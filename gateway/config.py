"""One Settings class for the gateway: every knob is an ``ENCLAVE_*`` environment variable."""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.clients.llm import UpstreamConfig

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The cores this process may run on: its CPU affinity, cut to a cgroup v2 CPU quota where one is set
    (a container's limit; os.cpu_count() reports the host's cores either way)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def auto_gateway_workers(cores: int | None = None) -> int:
    """ENCLAVE_GATEWAY_WORKERS=0: a process per 4 cores, 1 to 4. The model's serving processes need the rest;
    beyond 4 a burst of 16 or 64 turns is already split finely enough (docs/gateway.md, "Several gateway processes")."""
    return min(4, max(1, (cores or usable_cores()) // 4))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ENCLAVE_", env_file=None, extra="ignore")

    # Where the appliance keeps its state (embedded Postgres, models, dev API key).
    var_dir: Path = Field(default=Path("var"), description="Where the appliance keeps its state: embedded Postgres, logs, keys, the default model store.")
    models_dir: Path | None = Field(default=None, description="The model store; default VAR_DIR/models.")
    database_url: str | None = Field(
        default=None, description="Postgres DSN; unset means the embedded server that `enclave up` starts."
    )
    gateway_host: str = Field(default="127.0.0.1", description="Address the gateway listens on; off loopback, production wants TLS.")
    gateway_port: int = Field(default=8080, description="HTTP(S) port of the gateway.")
    # HTTPS in the gateway itself (PEM files); unset: plain HTTP, fine on loopback behind the site's terminator.
    tls_cert_file: Path | None = Field(default=None, description="Certificate chain (PEM) for HTTPS.")
    tls_key_file: Path | None = Field(default=None, description="Private key (PEM) of tls_cert_file.")
    tls_terminated_upstream: bool = Field(default=False, description=(
        "The site terminates TLS in front of the gateway (ingress, load balancer, service mesh): production then "
        "accepts plain HTTP on a non-loopback address. Say so only when it is true."))
    serve_host: str = Field(default="127.0.0.1", description="Address of Ray Serve's HTTP proxy (the serving plane); keep it on loopback.")
    serve_port: int = Field(default=8700, description="Port of Ray Serve's HTTP proxy.")
    model_profile: str = Field(default="cpu-small", description="Model profile from models/catalog.toml: tiny, cpu-small or gpu.")
    # Upstream (serving) base URL; defaults to the local Serve HTTP port.
    serving_url: str | None = Field(default=None, description="Base URL of the serving plane; default http://SERVE_HOST:SERVE_PORT.")
    gateway_keepalive_s: float = Field(default=75.0, gt=0, description=(
        "How long the gateway keeps an idle client connection open. Longer than the clients' own idle pools "
        "(the openai SDK and httpx 5 s, aiohttp 15 s, nginx and most load balancers 60 s) so the client always "
        "closes first: a server that closes first races a request sent on the closing connection, and that "
        "request fails before it reaches the gateway (uvicorn's own default is 5 s)."))
    gateway_workers: int = Field(default=0, ge=0, le=64, description=(
        "Gateway processes sharing the port; 0 (the default): one per 4 cores the gateway may use, at most 4 "
        "(so 1 on a 2-core box, 4 on a 16-core GPU host). One event loop relays every stream; under bursts of "
        "many turns starting or ending together (a batch of callers, vLLM finishing a batch) their fixed work "
        "queues on it. Several processes share that work; the SIP user agent and the action runner run in one of "
        "them, rate limits are kept in Postgres and /metrics adds up all processes. Measured: on a 16-core GPU "
        "host 4 processes kept the first-token delay added at 16 streams to 5.6 ms (p95), 1 process to 12.1 ms; "
        "on a 2-core machine shared with the model two measured no better than one (docs/gateway.md)."))
    db_pool_min: int = Field(default=1, description="Smallest number of pooled database connections per gateway process.")
    db_pool_max: int = Field(default=10, description="Largest number of pooled database connections per gateway process.")
    readiness_timeout_s: float = Field(default=2.0, description="Time each /readyz check (database, serving roles) may take.")
    log_level: str = Field(default="INFO", description="Gateway log level: DEBUG, INFO, WARNING or ERROR (JSON lines).")

    # The LLM fallback chain, tried in order (JSON in ENCLAVE_LLM_CHAIN). A link without url/model uses
    # the local serving plane and the profile's LLM; a "canned" link answers with a fixed apology.
    llm_chain: list[UpstreamConfig] = Field(default_factory=lambda: [
        UpstreamConfig(name="primary"), UpstreamConfig(name="apology", kind="canned")], description="LLM fallback chain (JSON list of {name, kind, url, model}), tried in order.")
    connect_timeout_s: float = Field(default=2.0, description="Connecting to an upstream model server.")
    first_token_timeout_s: float = Field(default=30.0, description="Waiting for a streamed reply's first token before the next link of the chain.")
    total_timeout_s: float = Field(default=300.0, description="A whole upstream reply.")
    upstream_retries: int = Field(default=1, ge=0, le=5, description="Extra attempts per link, before the first token only.")
    retry_backoff_s: float = Field(default=0.2, description="Pause before retrying a link of the chain.")
    breaker_failure_threshold: int = Field(default=3, ge=1, description="Failures in a row that open a link's circuit breaker.")
    breaker_reset_s: float = Field(default=10.0, description="How long an open breaker waits before trying its link again.")

    # Context window and rolling summary. The window defaults to the catalog's max_model_len of the model.
    context_window_tokens: int | None = Field(default=None, description="Prompt budget in tokens; default: the catalog's max_model_len of the LLM.")
    context_recent_turns: int = Field(default=12, ge=0, description="Most recent turns always kept verbatim in the prompt.")
    summary_threshold_tokens: int = Field(default=1500, ge=1, description="Older history beyond this many tokens is folded into a rolling summary.")
    summary_keep_turns: int = Field(default=4, ge=0, description="Turns left out of the summary when it is rebuilt.")
    summary_max_tokens: int = Field(default=200, ge=16, description="Length cap of the rolling summary.")

    # Caps per tenant (the tenants table overrides them per tenant) and request limits.
    max_input_tokens: int = Field(default=4096, ge=1, description="Per user message.")
    max_output_tokens: int = Field(default=1024, ge=1, description="Largest max_tokens a request may ask for.")
    default_output_tokens: int = Field(default=512, ge=1, description="max_tokens when a request gives none.")
    max_request_bytes: int = Field(default=1 << 20, description="Largest request body the gateway accepts (uploads have their own cap).")
    sse_keepalive_s: float = Field(default=15.0, description="Interval of SSE keep-alive comments on a quiet stream.")

    # Trust layer. The gateway connects as its own database role (INSERT + SELECT on the audit log, no more):
    # `enclave up` passes GATEWAY_DATABASE_URL; without one it switches DATABASE_URL's session to DB_ROLE.
    gateway_database_url: str | None = Field(default=None, description="The gateway's own database login (restricted role); default: DATABASE_URL with SET ROLE.")
    db_role: str = Field(default="enclave_gateway", pattern=r"^([a-z_][a-z0-9_]{0,62})?$", description="Restricted database role of the gateway (INSERT + SELECT on the audit log); empty: none.")
    rate_limit_per_min: int = Field(default=600, ge=1, description="Per key, unless the key sets its own.")
    rate_limit_store: Literal["auto", "memory", "postgres"] = Field(default="auto", description=(
        "Where the per-key buckets live: memory (one process; the cheapest), postgres (shared by every gateway "
        "process and replica: a key gets its limit once; one small statement per request), auto: postgres when "
        "gateway_workers > 1."))
    # OIDC bearer tokens: a JWKS from a file or an internal URL (never from outside the premises).
    oidc_jwks_file: Path | None = Field(default=None, description="OIDC: the identity provider's JWKS as a file.")
    oidc_jwks_url: str | None = Field(default=None, description="OIDC: the JWKS URL (an internal address only).")
    oidc_issuer: str | None = Field(default=None, description="OIDC: the expected iss claim.")
    oidc_audience: str | None = Field(default=None, description="OIDC: the expected aud claim.")
    oidc_tenant_claim: str = Field(default="tenant", description="OIDC: the claim naming the user's tenant slug.")
    oidc_roles_claim: str = Field(default="roles", description="OIDC: the claim listing the user's roles.")
    # OIDC sign-in in the staff UI (authorization code + PKCE): the browser goes to the authorize URL; the
    # gateway exchanges the code at the token URL (internal addresses only, like the JWKS URL).
    oidc_authorize_url: str | None = Field(default=None, description="OIDC sign-in in the UI: the authorize endpoint the browser goes to.")
    oidc_token_url: str | None = Field(default=None, description="OIDC sign-in in the UI: the token endpoint the gateway exchanges the code at (internal).")
    oidc_client_id: str | None = Field(default=None, description="OIDC sign-in in the UI: the public client id.")
    oidc_scope: str = Field(default="openid", description="OIDC sign-in in the UI: scopes requested.")
    # The PII vault key: base64 of 32 bytes, or a file (default VAR_DIR/vault.key), or a KMS hook.
    vault_key: str | None = Field(default=None, repr=False, description="PII vault key, base64 of 32 bytes (prefer VAULT_KEY_FILE: environments leak).")
    vault_key_file: Path | None = Field(default=None, description="PII vault key file; default VAR_DIR/vault.key. Back it up apart from the database.")
    vault_key_provider: str | None = Field(default=None, description="module:function returning the vault key (a KMS/HSM hook) instead of a file.")
    # PII: which types the reply may show back to their owner (the others are masked), extra patterns.
    pii_never_echo: list[str] = Field(default_factory=lambda: ["CARD", "SSN"], description="PII types never shown back, even to their owner (JSON list).")
    pii_patterns: list[dict] | None = Field(default=None, description="JSON list of {type, pattern, context}; "
                                            "replaces the default PASSPORT and ACCOUNT patterns.")
    reveal_reason_min_chars: int = Field(default=10, description="Shortest reason an auditor must give to reveal a vault original.")
    # Knowledge base: chunking (tokens of the embedding model), retrieval and grounding.
    knowledge_chunk_tokens: int = Field(default=200, ge=32, le=2000, description="Chunk size, in tokens of the embedding model.")
    knowledge_chunk_overlap_tokens: int = Field(default=40, ge=0, le=500, description="Overlap between consecutive chunks.")
    knowledge_max_upload_bytes: int = Field(default=20 << 20, ge=1024, description="Largest document upload.")
    knowledge_top_k: int = Field(default=4, ge=1, le=20, description="Passages given to a chat answer.")
    knowledge_voice_top_k: int = Field(default=2, ge=1, le=20, description="Passages given to a spoken answer (shorter prompts, faster replies).")
    knowledge_min_similarity: float | None = Field(default=None, ge=-1, le=1, description=(
        "Below this cosine similarity nothing counts as relevant; default: the embedding model's "
        "relevance_threshold in the catalog."))
    knowledge_max_reference_tokens: int = Field(default=1200, ge=64, description="Token budget of the passages in one prompt.")
    knowledge_candidates: int = Field(default=40, ge=1, le=1000, description="Candidates each side (vector, text) of the hybrid search before fusion.")
    knowledge_ef_search: int = Field(default=60, ge=1, le=1000, description="HNSW ef_search of the vector side (recall vs latency; at 1M chunks on 2 cores, recall@10 / hybrid p95: 40 gave 0.95-0.96 / 14-15 ms, 60 gave 0.98 / 16 ms, 100 gave 0.99 / 32 ms).")
    knowledge_text_terms: int = Field(default=6, ge=1, le=32, description="Rarest question words the text side uses.")
    knowledge_text_max_matches: int = Field(default=1000, ge=1, description="Most chunks the text side ranks.")
    retention_interval_s: float = Field(default=3600.0, gt=0, description="How often the gateway service applies retention.")
    # Dialogue: domain packs, actions, hand-offs, the injection guard
    packs: list[Path] = Field(default_factory=list, description=(
        "Domain pack folders (JSON list); each names the tenant it serves. `enclave up` adds the example pack."))
    injection_block_at: float = Field(default=0.75, gt=0, le=1, description="Guard: block a message scoring this.")
    injection_fence_at: float = Field(default=0.4, gt=0, le=1, description="Guard: fence one scoring this.")
    actions_runner: bool = Field(default=True, description="Execute approved actions in this gateway.")
    actions_lease_s: float = Field(default=30.0, gt=0, description="An executing action is retried after this.")
    actions_recheck_s: float = Field(default=300.0, gt=0, description=(
        "A running action (accepted by the service, or its outcome unknown after a timeout) is asked about again, "
        "with its idempotency key, this often; after 12 times without an answer it fails as outcome_unknown."))
    action_webhook_secret_file: Path | None = Field(default=None, description=(
        "HMAC secret that signs long-running actions' callbacks; default var/webhook.key."))
    handoff_wait_s: float = Field(default=25.0, ge=0, le=300, description=(
        "In a hand-off, how long a user's request waits for the agent's reply before it ends."))
    example_bank: bool = Field(default=True, description=(
        "`enclave up` starts the example bank service and serves its pack (tenant demo-bank)."))
    bank_port: int = Field(default=8090, description="Port of the example bank service (loopback).")
    # Voice (WS /v1/voice): endpointing, barge-in, silence policy, the speech roles
    voice_frame_ms: int = Field(default=20, description="Audio frame for VAD and playback: 10, 20 or 30 ms.")
    voice_silence_ms: int = Field(default=600, ge=100, le=5000, description="Trailing silence that ends an utterance.")
    voice_min_speech_ms: int = Field(default=200, ge=20, description="Shorter sounds are ignored as noise.")
    voice_max_utterance_ms: int = Field(default=15000, ge=1000, description="An utterance is cut after this long.")
    voice_barge_in_ms: int = Field(default=200, ge=20, description="Caller speech this long stops the assistant.")
    voice_silence_reprompt_s: float = Field(default=8.0, gt=0, description="Silence before 'are you still there?'.")
    voice_max_reprompts: int = Field(default=2, ge=0, description="Reprompts before the call is ended.")
    voice_max_output_tokens: int = Field(default=160, ge=1, description="Cap on a spoken reply's tokens.")
    voice_start_timeout_s: float = Field(default=10.0, gt=0, description="Time for the client's start message.")
    voice_system_prompt: str = Field(default=(
        "You are a helpful assistant speaking on the phone. Answer in short spoken sentences, one idea each. "
        "No markdown, no lists, no symbols; say numbers and dates in words."), description=(
        "The voice persona of tenants without a domain pack (a pack's prompts.voice wins)."))
    stt_url: str | None = Field(default=None, description="Speech-to-text base URL; default: the serving plane.")
    tts_url: str | None = Field(default=None, description="Text-to-speech base URL; default: the serving plane.")
    # SIP trunk (see docs/voice.md)
    sip_port: int | None = Field(default=None, description="UDP port of the SIP user agent; unset: no SIP.")
    sip_host: str = Field(default="127.0.0.1", description="Address the SIP user agent listens on.")
    sip_rtp_host: str = Field(default="127.0.0.1", description="Address RTP is sent from and offered in SDP.")
    sip_rtp_ports: str = Field(default="", pattern=r"^(\d{1,5}-\d{1,5})?$", description=(
        "RTP port range, e.g. 20000-29999 (for the firewall between the PBX and Enclave); empty: any free port."))
    sip_trunk_peers: list[str] = Field(default_factory=lambda: ["127.0.0.1/32"], description=(
        "Addresses (CIDR) allowed to send SIP; anyone else gets 403."))
    sip_tenant: str | None = Field(default="dev", description=(
        "Tenant slug whose assistant answers calls to numbers not in sip_routes; null: those calls get 404."))
    sip_routes: dict[str, str] = Field(default_factory=dict, description=(
        "Called number (DID, the user part of the Request-URI) → tenant slug; the tenant's domain pack answers."))
    sip_transfer_uri: str | None = Field(default=None, description=(
        "SIP URI of the human queue: a hand-off becomes a blind REFER there, carrying the hand-off id in "
        "X-Enclave-Handoff. Unset: the caller hears a goodbye and the agents call back from the queue."))
    sip_agent_digit: str | None = Field(default="0", description="A lone key press that asks for a person.")
    sip_auth_realm: str = Field(default="enclave", description="Digest realm (when sip_auth_users is set).")
    sip_auth_users: dict[str, str] = Field(default_factory=dict, description=(
        "Digest credentials trunk peers must present on INVITE (user → password); empty: no digest auth."))
    sip_rate_per_s: float = Field(default=50.0, ge=0, description=(
        "SIP messages a second allowed from one address (bursts of 4×); beyond it they are dropped. 0: no limit."))
    sip_ring_ms: int = Field(default=0, ge=0, le=30_000, description="How long a call rings before it is answered.")
    sip_jitter_ms: int = Field(default=60, ge=0, le=500, description="Jitter buffer depth for incoming RTP.")
    sip_tls_port: int | None = Field(default=None, description=(
        "TCP port for SIP over TLS next to the UDP one (signalling only; media stays RTP); unset: no SIP-TLS."))
    sip_tls_cert_file: Path | None = Field(default=None, description="SIP-TLS certificate (PEM); default: tls_cert_file.")
    sip_tls_key_file: Path | None = Field(default=None, description="SIP-TLS private key (PEM); default: tls_key_file.")
    dialogue_llm_timeout_s: float = Field(default=15.0, gt=0, description="Structured LLM calls of the dialogue.")

    @model_validator(mode="after")
    def _tls_pairs(self) -> Settings:
        if self.voice_frame_ms not in (10, 20, 30):   # webrtcvad takes nothing else: refused at start, not per call
            raise ValueError(f"ENCLAVE_VOICE_FRAME_MS must be 10, 20 or 30, not {self.voice_frame_ms}")
        for cert, key, what in ((self.tls_cert_file, self.tls_key_file, "TLS"),
                                (self.sip_tls_cert_file, self.sip_tls_key_file, "SIP_TLS")):
            if (cert is None) != (key is None):
                raise ValueError(f"set both ENCLAVE_{what}_CERT_FILE and ENCLAVE_{what}_KEY_FILE, or neither")
        if self.sip_tls_port is not None and not self.sip_port:
            raise ValueError("ENCLAVE_SIP_TLS_PORT needs ENCLAVE_SIP_PORT too (the SIP user agent listens on both)")
        if (self.oidc_jwks_file or self.oidc_jwks_url) and not (self.oidc_issuer and self.oidc_audience):
            # Without them any token signed by the IdP's keys passes: one issued to another client or realm.
            raise ValueError("OIDC needs ENCLAVE_OIDC_ISSUER and ENCLAVE_OIDC_AUDIENCE (the iss and aud this "
                             "appliance's tokens carry) next to its JWKS")
        if self.gateway_workers == 0:
            self.gateway_workers = auto_gateway_workers()
        return self

    @property
    def shared_rate_limits(self) -> bool:
        return self.rate_limit_store == "postgres" or (self.rate_limit_store == "auto" and self.gateway_workers > 1)

    @property
    def model_store_dir(self) -> Path:
        return self.models_dir or self.var_dir / "models"

    @property
    def vault_key_path(self) -> Path:
        return self.vault_key_file or self.var_dir / "vault.key"

    @property
    def webhook_secret_path(self) -> Path:
        return self.action_webhook_secret_file or self.var_dir / "webhook.key"

    @property
    def gateway_tls(self) -> bool:
        return bool(self.tls_cert_file and self.tls_key_file)

    @property
    def gateway_url(self) -> str:
        return f"{'https' if self.gateway_tls else 'http'}://{self.gateway_host}:{self.gateway_port}"

    @property
    def serving_base_url(self) -> str:
        return (self.serving_url or f"http://{self.serve_host}:{self.serve_port}").rstrip("/")


@lru_cache
def get_settings() -> Settings:
    return Settings()
