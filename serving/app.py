"""Build the Ray Serve applications for one profile from the catalog, and deploy them.

One Serve application per role, each at its OpenAI path, all behind one Serve HTTP port:

    llm    /                          (/v1/chat/completions, /v1/completions, /v1/models)
    stt    /v1/audio/transcriptions   (+ /health)
    tts    /v1/audio/speech           (+ /health)
    embed  /v1/embeddings             (+ /health)

Serve routes by longest prefix, so the LLM app at ``/`` never shadows the others.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from models.catalog import ROLE_ROUTES, Catalog, RoleDeployment
from models.store import ModelStore


def replica_env() -> dict[str, str]:
    """Environment for every replica: offline, loopback-only, private caches."""
    env = {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "DO_NOT_TRACK": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_HOST_IP": "127.0.0.1",
        "COQUI_TOS_AGREED": "1",
    }
    for key in ("VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR", "TMPDIR", "HF_HOME", "XDG_CACHE_HOME"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    return env


@dataclass(frozen=True)
class RoleApp:
    role: str
    model_id: str
    route_prefix: str
    app: Any  # ray.serve Application


# A sliver of a node's custom resource: enough to pin a replica to nodes that advertise it, never a limit.
PIN_AMOUNT = 0.001


def _options(dep: RoleDeployment, env: dict[str, str], pin_resource: str | None = None) -> dict[str, Any]:
    actor: dict[str, Any] = {"num_cpus": dep.num_cpus, "num_gpus": dep.num_gpus, "runtime_env": {"env_vars": env}}
    if pin_resource:
        actor["resources"] = {pin_resource: PIN_AMOUNT}
    return {"num_replicas": dep.replicas, "max_ongoing_requests": dep.max_ongoing_requests, "ray_actor_options": actor}


def build_role_apps(catalog: Catalog, profile: str, store: ModelStore, roles: list[str] | None = None,
                    pin_resource: str | None = None) -> list[RoleApp]:
    """Resolve every model of ``profile`` (or only of ``roles``) in the store (raises if missing) and build
    its Serve app. ``pin_resource``: a Ray custom resource the replicas ask a sliver of, so that on a cluster
    they land only on the nodes (worker group) that advertise it."""
    from serving.embed import Embedder
    from serving.llm import build_llm_app
    from serving.stt import SpeechToText
    from serving.tts import TextToSpeech

    prof = catalog.profile(profile)
    env = replica_env()
    apps: list[RoleApp] = []
    for role, dep in prof.roles.items():
        if roles is not None and role not in roles:
            continue
        entry = catalog.model(dep.model)
        model_dir = str(store.resolve(entry.id))
        threads = max(1, math.floor(dep.num_cpus) or 1)
        common = {"model_id": entry.id, "model_dir": model_dir, "engine": entry.engine,
                  "num_gpus": dep.num_gpus, "cpu_threads": threads}
        if role == "llm":
            app = build_llm_app(entry, dep, model_dir, env, pin_resource=pin_resource)
        elif role == "stt":
            app = SpeechToText.options(**_options(dep, env, pin_resource)).bind(**common)
        elif role == "tts":
            app = TextToSpeech.options(**_options(dep, env, pin_resource)).bind(**common)
        else:
            app = Embedder.options(**_options(dep, env, pin_resource)).bind(
                **common, max_batch_size=dep.max_batch_size, batch_wait_timeout_s=dep.batch_wait_timeout_s)
        apps.append(RoleApp(role, entry.id, ROLE_ROUTES[role], app))
    return apps


def deploy(catalog: Catalog, profile: str, store: ModelStore) -> list[RoleApp]:
    """Submit every role app to Serve (already started) without waiting; poll ``app_status`` for progress."""
    from ray.serve import RunTarget, run_many

    apps = build_role_apps(catalog, profile, store)
    run_many(
        [RunTarget(target=ra.app, name=ra.role, route_prefix=ra.route_prefix) for ra in apps],
        wait_for_ingress_deployment_creation=False,
        wait_for_applications_running=False,
    )
    return apps


def app_status() -> dict[str, tuple[str, str]]:
    """role -> (Serve status, message) for the deployed role apps."""
    from ray import serve

    return {name: (str(a.status), a.message or "") for name, a in serve.status().applications.items()}
