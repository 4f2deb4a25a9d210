"""LLM role: vLLM through ``ray.serve.llm`` (``LLMConfig`` + ``build_openai_app``).

``/v1/chat/completions`` (stream and not), ``/v1/completions`` and ``/v1/models`` come from Ray's own
OpenAI ingress; tools and JSON-schema structured output pass straight through to vLLM.
"""

from __future__ import annotations

from typing import Any

from models.catalog import ModelEntry, RoleDeployment


def engine_kwargs(entry: ModelEntry, model_dir: str, gpu: bool) -> dict[str, Any]:
    """vLLM engine + frontend arguments from the catalog's engine block."""
    e = entry.engine
    kwargs: dict[str, Any] = {
        "tokenizer": model_dir,
        "max_model_len": int(e.get("max_model_len", 4096)),
        "enforce_eager": bool(e.get("enforce_eager", False)),
        "dtype": e.get("dtype", "auto"),
        "max_num_seqs": int(e.get("max_num_seqs", 64)),
        "structured_outputs_config": {
            "backend": e.get("structured_outputs_backend", "auto"),
            "disable_any_whitespace": bool(e.get("disable_any_whitespace", False)),
        },
    }
    if e.get("tool_call_parser"):
        # "auto" tool choice: calls in the model's own format come back as OpenAI tool_calls.
        kwargs["enable_auto_tool_choice"] = True
        kwargs["tool_call_parser"] = e["tool_call_parser"]
    if gpu and "gpu_memory_utilization" in e:
        kwargs["gpu_memory_utilization"] = float(e["gpu_memory_utilization"])
    return kwargs


def engine_bundle(dep: RoleDeployment, pin_resource: str | None = None) -> dict[str, float]:
    """The engine's placement-group bundle: its CPUs (and GPUs), plus a sliver of the pinning resource."""
    from serving.app import PIN_AMOUNT

    bundle: dict[str, float] = {"CPU": dep.num_cpus}
    if dep.num_gpus > 0:
        bundle["GPU"] = dep.num_gpus
    if pin_resource:
        bundle[pin_resource] = PIN_AMOUNT
    return bundle


def build_llm_app(entry: ModelEntry, dep: RoleDeployment, model_dir: str, env_vars: dict[str, str],
                  pin_resource: str | None = None):
    """One OpenAI-compatible Serve application for the profile's LLM (``pin_resource``: see build_role_apps)."""
    from ray.serve.llm import LLMConfig, build_openai_app

    gpu = dep.num_gpus > 0
    env = dict(env_vars)
    if not gpu:
        env["VLLM_TARGET_DEVICE"] = "cpu"
        env["VLLM_CPU_KVCACHE_SPACE"] = str(entry.engine.get("cpu_kvcache_gib", 1))
    config = LLMConfig(
        model_loading_config={"model_id": entry.id, "model_source": model_dir},
        engine_kwargs=engine_kwargs(entry, model_dir, gpu),
        accelerator_config={"kind": "gpu" if gpu else "cpu"},
        placement_group_config={"bundles": [engine_bundle(dep, pin_resource)]},
        deployment_config={
            "num_replicas": dep.replicas,
            "max_ongoing_requests": dep.max_ongoing_requests,
        },
        runtime_env={"env_vars": env},
        log_engine_metrics=False,
    )
    return build_openai_app({
        "llm_configs": [config],
        # The ingress only relays; it must never wait for a CPU the engine holds.
        "ingress_deployment_config": {"ray_actor_options": {"num_cpus": 0}},
    })
