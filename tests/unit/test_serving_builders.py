"""serving.builders:role_app — what a RayService's serveConfigV2 imports — builds the same role apps as
`enclave up`, pinned to their worker group's custom resource, and says clearly what is wrong with its args."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from models.catalog import load_catalog
from serving.app import PIN_AMOUNT
from serving.builders import BuilderArgsError, role_app
from serving.llm import engine_bundle

MODELS = Path(os.environ.get("ENCLAVE_MODELS_DIR", Path(__file__).resolve().parents[2] / "var" / "test-models"))


def test_the_engine_bundle_carries_the_pinning_resource() -> None:
    dep = load_catalog().profile("tiny").roles["llm"]
    assert engine_bundle(dep) == {"CPU": dep.num_cpus}
    assert engine_bundle(dep, "role_llm") == {"CPU": dep.num_cpus, "role_llm": PIN_AMOUNT}


@pytest.mark.skipif(not (MODELS / "minilm-l6").exists(), reason="the tiny models are built by `make test`")
def test_role_app_builds_one_pinned_role(monkeypatch) -> None:
    pytest.importorskip("ray.serve")
    app = role_app({"role": "embed", "profile": "tiny", "models_dir": str(MODELS), "pin_resource": "role_embed"})
    options = app._bound_deployment.ray_actor_options
    assert options["resources"] == {"role_embed": PIN_AMOUNT}
    assert options["runtime_env"]["env_vars"]["HF_HUB_OFFLINE"] == "1"
    unpinned = role_app({"role": "embed", "profile": "tiny", "models_dir": str(MODELS)})
    assert "resources" not in unpinned._bound_deployment.ray_actor_options


def test_role_app_names_what_is_wrong_with_its_args(monkeypatch) -> None:
    monkeypatch.delenv("ENCLAVE_MODEL_PROFILE", raising=False)
    monkeypatch.delenv("ENCLAVE_MODELS_DIR", raising=False)
    with pytest.raises(BuilderArgsError, match="needs args role, profile and models_dir"):
        role_app({"role": "llm"})
    with pytest.raises(BuilderArgsError, match="has no role 'vision'"):
        role_app({"role": "vision", "profile": "tiny", "models_dir": str(MODELS)})
