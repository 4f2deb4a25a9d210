"""The route class every router uses: request bodies parsed as strict JSON.

FastAPI parses a body with the standard library's ``json``, which accepts what JSON does not allow and the
rest of the gateway cannot take: a lone UTF-16 surrogate escape (``"\\ud800"``: a string no UTF-8 encoder,
tokenizer or Postgres driver accepts; it came back as a 500 from wherever it was first encoded) and
``NaN`` / ``Infinity`` (which Postgres's jsonb refuses, after the model had run). orjson refuses both as
invalid JSON, so such a body gets the same ``400 invalid_json`` as any other malformed one, before
anything runs. Its error is a ``json.JSONDecodeError``, which FastAPI already turns into that answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))
        return strict
