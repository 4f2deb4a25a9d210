"""The route class every router uses: request bodies parsed as strict JSON.

FastAPI parses a body with the standard library's ``json``, which accepts what JSON does not allow and the
rest of the gateway cannot take: a lone UTF-16 surrogate escape (``"\\ud800"``: a string no UTF-8 encoder,
tokenizer or Postgres driver accepts; it came back as a 500 from wherever it was first encoded) and
``NaN`` / ``Infinity`` (which Postgres's jsonb refuses, after the model had run). orjson refuses both as
invalid JSON, so such a body gets the same ``400 invalid_json`` as any other malformed one, before
anything runs. Its error is a ``json.JSONDecodeError``, which FastAPI already turns into that answer.

A body nested deeper than ``MAX_DEPTH`` levels is refused the same way. orjson reads up to 1,024, but the
gateway walks client JSON recursively (redacting session metadata, say) and Python's recursion limit, or
orjson's own when it writes the value back out (255 levels), came back as a 500.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute

MAX_DEPTH = 64    # objects and arrays inside each other; real requests (tool schemas included) stay far below


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            value = orjson.loads(body)
            # Counting brackets is a C-speed upper bound of the depth: only a body that could be too deep is walked.
            if body.count(b"{") + body.count(b"[") > MAX_DEPTH and json_depth(value) > MAX_DEPTH:
                raise json.JSONDecodeError(f"it is nested deeper than {MAX_DEPTH} levels", "", 0)
            self._json = value
        return self._json


def json_depth(value: Any) -> int:
    """How many objects and arrays deep ``value`` goes (iteratively: the point is not to recurse)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


class StrictJsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))
        return strict
