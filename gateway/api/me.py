"""``/v1/me``: who the caller is (tenant, roles): the UI checks a key with it at sign-in and shows only the
screens those roles may use (the API enforces the roles either way)."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.api.routing import StrictJsonRoute
from gateway.auth import AnyCaller

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1", tags=["me"])


@router.get("/me")
async def me(identity: AnyCaller) -> dict:
    return {"object": "identity", "subject": identity.subject, "roles": sorted(identity.roles),
            "tenant_id": identity.tenant_id, "kind": identity.kind}
