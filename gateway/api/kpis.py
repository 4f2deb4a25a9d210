"""``/v1/kpis``: the supervisor's dashboard figures per channel (containment, escalation, CSAT, handle time,
p95 latency per stage) and the automation rate of actions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.api.deps import DbConn
from gateway.api.routing import StrictJsonRoute
from gateway.auth import ReviewReader
from gateway.store import kpis as repo

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1", tags=["kpis"])


@router.get("/kpis")
async def get_kpis(identity: ReviewReader, conn: DbConn, days: Annotated[int, Query(ge=1, le=366)] = 7) -> dict:
    return await repo.kpis(conn, identity.tenant_id, days)
