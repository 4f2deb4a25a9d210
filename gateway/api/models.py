"""``GET /v1/models``: what a client may put in ``model``. ``enclave`` is the default chain (primary
model with its fallbacks); each served model of the chain is listed under its own id too."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gateway.auth import AnyCaller
from gateway.clients.llm import LLMChain

router = APIRouter(prefix="/v1", tags=["models"])
DEFAULT_MODEL = "enclave"
CREATED = 1_767_225_600  # fixed: these ids do not come and go


def offered_models(chain: LLMChain) -> list[str]:
    names = [DEFAULT_MODEL]
    for up in chain.upstreams:
        if up.config.kind == "openai" and up.model not in names:
            names.append(up.model)
    return names


@router.get("/models")
async def list_models(request: Request, _identity: AnyCaller) -> dict:
    chain: LLMChain = request.app.state.chain
    return {"object": "list", "data": [{"id": m, "object": "model", "created": CREATED, "owned_by": "enclave"}
                                       for m in offered_models(chain)]}
