"""The staff chat UI and supervisor console: static files shipped in the package (``gateway/ui``), served
by the gateway itself — nothing from a CDN, so it works air-gapped. Plain ES modules, no build step.

The page holds no secret: the API key (or OIDC token) stays in the tab's sessionStorage and every call goes
to the same ``/v1`` API a program would use, so the roles the API enforces are the UI's roles too.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

UI_DIR = Path(__file__).resolve().parents[1] / "ui"
# Only this origin: scripts, styles, fetches and the voice WebSocket; blob: for recorded audio.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob:; connect-src 'self' ws: wss:; worker-src 'self' blob:; frame-ancestors 'none'; "
       "base-uri 'none'; form-action 'self'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-cache"}

router = APIRouter(tags=["ui"])


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
