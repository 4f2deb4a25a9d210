"""``GET /v1/models`` and ``GET /v1/models/{model}``: what a client may put in ``model``. ``enclave`` is the
default chain (primary model with its fallbacks); each served model of the chain is listed under its own id
too. The second route is what the OpenAI SDK's ``models.retrieve`` calls."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gateway.api.routing import StrictJsonRoute
from gateway.auth import AnyCaller
from gateway.clients.llm import LLMChain
from gateway.errors import NotFound

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1", tags=["models"])
DEFAULT_MODEL = "enclave"
CREATED = 1_767_225_600  # fixed: these ids do not come and go


def offered_models(chain: LLMChain) -> list[str]:
    names = [DEFAULT_MODEL]
    for up in chain.upstreams:
        if up.config.kind == "openai" and up.model not in names:
            names.append(up.model)
    return names


def model_card(model: str) -> dict:
    return {"id": model, "object": "model", "created": CREATED, "owned_by": "enclave"}


@router.get("/models")
async def list_models(request: Request, _identity: AnyCaller) -> dict:
    chain: LLMChain = request.app.state.chain
    return {"object": "list", "data": [model_card(m) for m in offered_models(chain)]}


@router.get("/models/{model:path}")  # served ids may hold a slash (Qwen/Qwen2.5-7B-Instruct)
async def get_model(model: str, request: Request, _identity: AnyCaller) -> dict:
    if model not in offered_models(request.app.state.chain):
        raise NotFound("model_not_found", f"model '{model}' is not offered here; GET /v1/models lists them", "model")
    return model_card(model)
