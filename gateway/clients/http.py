"""How the gateway makes the httpx clients it shares between callers (the LLM chain's aiohttp sessions,
built in ``llm.build_chain``, follow the same two rules)."""

from __future__ import annotations

from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx


def no_cookies() -> CookieJar:
    """A jar that neither keeps nor sends a cookie."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def shared_client(**kwargs: Any) -> httpx.AsyncClient:
    """Never through an environment proxy (nothing leaves the premises by accident), and no cookies: one
    client serves every caller, so a cookie a service sets in answer to one caller (a tool endpoint's
    session, a load balancer's stickiness) must never ride on another caller's request."""
    return httpx.AsyncClient(trust_env=False, cookies=no_cookies(), **kwargs)
