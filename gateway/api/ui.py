"""The staff chat UI and supervisor console: static files shipped in the package (``gateway/ui``), served
by the gateway itself — nothing from a CDN, so it works air-gapped. Plain ES modules, no build step.

The page holds no secret: the API key (or OIDC token) stays in the tab's sessionStorage and every call goes
to the same ``/v1`` API a program would use, so the roles the API enforces are the UI's roles too.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Scope

from gateway.api.routing import StrictJsonRoute
from gateway.errors import InvalidRequest, UpstreamUnavailable
from gateway.oidc import OidcConfigError, check_internal_url

log = logging.getLogger("enclave.gateway.ui")

UI_DIR = Path(__file__).resolve().parents[1] / "ui"
# Only this origin: scripts, styles, fetches and the voice WebSocket (CSP 3: 'self' covers ws: and wss: to
# this host; a bare ws: would allow any host); blob: for recorded audio.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; "
       "base-uri 'none'; form-action 'self'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-cache"}

router = APIRouter(route_class=StrictJsonRoute, tags=["ui"])


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(UI_DIR / "index.html", headers=HEADERS)


class UiFiles(StaticFiles):
    """The UI's assets with the same security headers as the page."""

    async def get_response(self, path: str, scope: Scope):
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


def ui_files() -> UiFiles:
    return UiFiles(directory=UI_DIR, html=False)


# -- sign-in with the organisation's identity provider (OIDC authorization code + PKCE) ----------------------

api_router = APIRouter(route_class=StrictJsonRoute, prefix="/v1/ui", tags=["ui"])


class CodeExchange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=4096)
    code_verifier: str = Field(min_length=43, max_length=128)
    redirect_uri: str = Field(min_length=1, max_length=2048)


@api_router.get("/config")
async def ui_config(request: Request) -> dict:
    """What the sign-in page needs to offer single sign-on (nothing secret: PKCE needs no client secret)."""
    s = request.app.state.settings
    oidc = None
    if s.oidc_authorize_url and s.oidc_token_url and s.oidc_client_id:
        oidc = {"authorize_url": s.oidc_authorize_url, "client_id": s.oidc_client_id, "scope": s.oidc_scope}
    return {"object": "ui.config", "oidc": oidc}


@api_router.post("/oidc/token")
async def oidc_token(body: CodeExchange, request: Request) -> dict:
    """Exchange the authorization code at the IdP's token endpoint (the browser may not reach it, and the
    page's CSP allows no other origin). The token it returns is verified like any bearer on every call."""
    s = request.app.state.settings
    if not (s.oidc_token_url and s.oidc_client_id):
        raise InvalidRequest("oidc_not_configured", "single sign-on is not configured on this gateway")
    try:   # name resolution blocks: off the event loop, which paces every stream and call
        await asyncio.to_thread(check_internal_url, s.oidc_token_url, "ENCLAVE_OIDC_TOKEN_URL")
    except OidcConfigError as e:
        # The detail (host names, addresses of the site's network) is for the operator's log, not for an
        # unauthenticated caller.
        log.error("OIDC token endpoint refused", extra={"detail": str(e)})
        raise UpstreamUnavailable("oidc_token_failed", "single sign-on is misconfigured on this gateway; "
                                  "the operator's log says why") from None
    try:
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            r = await client.post(s.oidc_token_url, data={
                "grant_type": "authorization_code", "code": body.code, "redirect_uri": body.redirect_uri,
                "client_id": s.oidc_client_id, "code_verifier": body.code_verifier})
    except httpx.HTTPError as e:
        raise UpstreamUnavailable("oidc_token_failed", f"the identity provider cannot be reached ({type(e).__name__})") from None
    try:
        tokens = r.json()
    except ValueError:
        tokens = {}
    if r.status_code != 200 or not isinstance(tokens, dict):
        detail = tokens.get("error_description") or tokens.get("error") if isinstance(tokens, dict) else None
        raise InvalidRequest("oidc_code_rejected", f"the identity provider refused the sign-in ({detail or r.status_code})")
    access, id_token = tokens.get("access_token"), tokens.get("id_token")
    token = access if isinstance(access, str) and access.count(".") == 2 else id_token
    if not isinstance(token, str) or token.count(".") != 2:
        raise InvalidRequest("oidc_code_rejected", "the identity provider returned no JWT to sign in with")
    return {"object": "ui.token", "token": token, "expires_in": tokens.get("expires_in")}
