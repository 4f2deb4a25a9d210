"""Domain errors and their HTTP mapping.

Every error the gateway returns has the OpenAI error shape, so SDKs surface it unchanged, plus a stable
``code`` that clients may branch on: ``{"error": {"message", "type", "code", "param"}}``.
"""

from __future__ import annotations

import json
import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("enclave.gateway")


class EnclaveError(Exception):
    """Base of every error a client may see. Subclasses fix the HTTP status and the error type."""

    status = 400
    type = "invalid_request_error"

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


class InvalidRequest(EnclaveError):
    pass


class Unauthenticated(EnclaveError):
    status, type = 401, "authentication_error"


class Forbidden(EnclaveError):
    status, type = 403, "permission_error"


class NotFound(EnclaveError):
    status, type = 404, "not_found_error"


class PayloadTooLarge(EnclaveError):
    status = 413


class RateLimited(EnclaveError):
    """Over the key's requests per minute; ``Retry-After`` says when the next one is accepted."""

    status, type = 429, "rate_limit_error"

    def __init__(self, code: str, message: str, retry_after_s: float) -> None:
        super().__init__(code, message)
        self.retry_after_s = retry_after_s


class StorageUnavailable(EnclaveError):
    """The reply could not be stored; it is not returned either, so history and client never disagree."""

    status, type = 503, "storage_error"


class VaultKeyMismatch(EnclaveError):
    """A sealed value does not open with the gateway's vault key: the key or the data is not the one it was
    sealed with. An operator's problem, not the caller's."""

    status, type = 503, "vault_error"


class UpstreamUnavailable(EnclaveError):
    """Every link of a fallback chain failed before producing anything (the canned reply is the last link,
    so a client normally never sees this)."""

    status, type = 503, "upstream_error"


def error_body(code: str, message: str, type_: str = "invalid_request_error", param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}


def error_response(exc: EnclaveError) -> JSONResponse:
    headers = {"Retry-After": str(max(1, round(exc.retry_after_s)))} if isinstance(exc, RateLimited) else None
    return JSONResponse(error_body(exc.code, exc.message, exc.type, exc.param), status_code=exc.status, headers=headers)


# Parts of an error's location the client never wrote: where FastAPI read the value from, and the member of a
# union pydantic tried ("messages", 0, "content", "list[TextPart]", 0, "text").
_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})
_UNION_TAGS = frozenset({"str", "int", "float", "bool", "none"})


def _client_loc(loc: tuple) -> list[str]:
    """The location as the client wrote it: without where FastAPI read it from ("body", "query") or the union
    member pydantic tried."""
    if loc and loc[0] in _SOURCES:
        loc = loc[1:]
    return [str(p) for p in loc if not (isinstance(p, str) and ("[" in p or p in _UNION_TAGS))]


# OpenAI chat fields Enclave refuses, and what to do instead: a developer porting an application learns
# what to change from the error itself.
CHAT_FIELDS_NOT_HONOURED = {
    "top_logprobs": "token log-probabilities are not returned",
    "logit_bias": "token biases are not applied",
    "audio": "replies are text; spoken conversations use the voice channel (/v1/voice, SIP)",
    "store": "every turn is kept in the appliance's own database (sessions, audit log) whatever this says",
    "metadata": "attach metadata to the session instead (POST /v1/sessions, metadata)",
    "prediction": "predicted outputs are not supported",
    "web_search_options": "nothing leaves the appliance: ground answers in the knowledge base with \"knowledge\": true",
    "functions": "use tools (functions is OpenAI's deprecated form)",
    "function_call": "use tool_choice (function_call is OpenAI's deprecated form)",
    "service_tier": "there is one tier",
    "reasoning_effort": "the served model's reasoning is not configurable per request",
}
CHAT_PATH = "/v1/chat/completions"


def _validation_message(exc: RequestValidationError, content_type: str | None = None,
                        path: str | None = None) -> tuple[str, str, str | None]:
    errors = exc.errors()
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return "invalid_json", f"the request body is not valid JSON: {first.get('ctx', {}).get('error', '')}".rstrip(": "), None
    loc = _client_loc(first.get("loc", ()))
    if tuple(first.get("loc", ())) == ("body",):     # the body as a whole
        if first.get("type") == "missing":
            return "missing_parameter", "the request body is empty: send a JSON object", None
        hint = ""
        if content_type and "json" not in content_type.lower():
            hint = f" (it was sent as {content_type.split(';')[0].strip()}; send it as application/json)"
        return "invalid_parameter", f"the request body must be a JSON object{hint}", None
    # A union's members each report their own error for the same field: the member that got furthest into
    # the value is the one the client meant; if none did, say what each would have taken.
    rivals = [(e, where) for e in errors if (where := _client_loc(e.get("loc", ())))[:len(loc)] == loc]
    deepest, deepest_loc = max(rivals, key=lambda r: len(r[1]), default=(first, loc))
    message = first.get("msg", "invalid value")
    if len(deepest_loc) > len(loc):
        first, loc, message = deepest, deepest_loc, deepest.get("msg", "invalid value")
    elif len(rivals) > 1:
        wants = dict.fromkeys(e.get("msg", "").removeprefix("Input should be ") for e, _ in rivals)
        message = "Input should be " + " or ".join(w for w in wants if w)
    param = ".".join(loc) or None
    if first.get("type") == "extra_forbidden":
        why = CHAT_FIELDS_NOT_HONOURED.get(param or "") if path == CHAT_PATH else None
        return "unsupported_parameter", f"parameter '{param}' is not supported by this endpoint{f': {why}' if why else ''}", param
    if first.get("type") == "missing":
        return "missing_parameter", f"'{param}' is required", param
    return "invalid_parameter", f"{param or 'body'}: {message}", param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EnclaveError)
    async def _domain(_req: Request, exc: EnclaveError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(req: Request, exc: RequestValidationError) -> JSONResponse:
        code, message, param = _validation_message(exc, req.headers.get("content-type"), req.url.path)
        return JSONResponse(error_body(code, message, param=param), status_code=400)

    @app.exception_handler(json.JSONDecodeError)
    async def _json(_req: Request, exc: json.JSONDecodeError) -> JSONResponse:
        return JSONResponse(error_body("invalid_json", f"the request body is not valid JSON: {exc.msg}"), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthenticated", 403: "forbidden",
                 413: "request_too_large"}
        return JSONResponse(error_body(codes.get(exc.status_code, f"http_{exc.status_code}"), str(exc.detail)),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(psycopg.DataError)
    async def _data(_req: Request, exc: psycopg.DataError) -> JSONResponse:
        # A value Postgres cannot hold (a NUL character in a title, a search query or a tool call's arguments):
        # the client's input, not the server's fault. Nothing was written: the statement failed.
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return JSONResponse(error_body("invalid_parameter", f"a value in the request cannot be stored: {reason}"),
                            status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(error_body("internal_error", "internal error; the request id is in the logs", "server_error"),
                            status_code=500)
