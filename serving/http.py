"""What every non-LLM role app shares: one JSON error shape (OpenAI's, plus a stable ``code``)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


class ServingError(Exception):
    """A request the role cannot serve; becomes ``{"error": {"message", "type", "code"}}``."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_body(status: int, code: str, message: str) -> dict:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "code": code}}


class _RootPathSlash:
    """Serve mounts a role at its route prefix, so ``POST /v1/embeddings`` reaches the app with an empty
    sub-path, which Starlette would answer with a 307 to ``/v1/embeddings/``. Treat it as ``/``."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            root = scope.get("root_path", "")
            if root and scope["path"] == root:
                scope = dict(scope, path=root + "/", raw_path=(root + "/").encode())
        await self.app(scope, receive, send)


def make_role_app(title: str) -> FastAPI:
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_RootPathSlash)

    @app.exception_handler(ServingError)
    async def _serving_error(_req: Request, exc: ServingError) -> JSONResponse:
        return JSONResponse(error_body(exc.status, exc.code, exc.message), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_req: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return JSONResponse(error_body(400, "invalid_request", "; ".join(parts) or "invalid request"), status_code=400)

    return app


def check_model_name(requested: str | None, model_id: str, role: str) -> None:
    """Accept the catalog id, the role name, or nothing; anything else is a 404 like OpenAI's."""
    if requested and requested not in (model_id, role):
        raise ServingError(404, "model_not_found", f"model '{requested}' is not served here; this {role} role serves '{model_id}'")


def encodable(text):
    """A pydantic validator's body: text a tokenizer or espeak-ng can take. JSON allows a lone UTF-16 surrogate
    (\\ud800); every engine here fails on it deep inside, as a 500."""
    for piece in [text] if isinstance(text, str) else text:
        try:
            piece.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("the text holds a lone UTF-16 surrogate, which is not a character") from None
    return text
