"""The trust layer through the real appliance: roles on every route, tenant isolation, rate limits, API keys
(API and CLI), OIDC tokens, PII kept out of the LLM / database / logs / metrics, the audited vault reveal,
the hash-chained audit log (tamper → `enclave audit verify` names the row) and retention tombstones."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.routing import APIRoute

from gateway.auth import PUBLIC_ROUTES, ROLES, RequireRoles
from gateway.safety.pii import PiiDetector
from gateway.safety.vault import VaultCipher, load_key_provider
from gateway.store import api_keys
from gateway.store import sessions as sessions_repo
from gateway.store.audit import AuditEvent, append_sync
from tests.integration.conftest import Appliance, GatewayProcess, start_gateway
from tests.integration.upstream_proxy import RecordingProxy

pytestmark = pytest.mark.timeout(600)
CHAT = {"user", "agent", "supervisor", "admin"}
AGENTS = {"agent", "supervisor", "admin"}

# Who may call what: the contract. The app's own declarations must equal it (test below), and the gateway
# must enforce it over HTTP. A new route without a line here fails the suite.
EXPECTED_ROLES: dict[tuple[str, str], set[str]] = {
    ("GET", "/v1/models"): set(ROLES),
    ("GET", "/v1/models/{model:path}"): set(ROLES),
    ("POST", "/v1/chat/completions"): CHAT,
    ("POST", "/v1/sessions"): CHAT,
    ("GET", "/v1/sessions"): CHAT,
    ("GET", "/v1/sessions/{session_id}"): CHAT,
    ("DELETE", "/v1/sessions/{session_id}"): CHAT,
    ("POST", "/v1/admin/keys"): {"admin"},
    ("GET", "/v1/admin/keys"): {"admin"},
    ("DELETE", "/v1/admin/keys/{prefix}"): {"admin"},
    ("GET", "/v1/admin/retention"): {"admin"},
    ("PUT", "/v1/admin/retention"): {"admin"},
    ("GET", "/v1/audit"): {"auditor"},
    ("POST", "/v1/audit/verify"): {"auditor"},
    ("POST", "/v1/vault/reveal"): {"auditor"},
    ("POST", "/v1/knowledge/documents"): {"supervisor", "admin"},
    ("GET", "/v1/knowledge/documents"): CHAT,
    ("GET", "/v1/knowledge/documents/{document_id}"): CHAT,
    ("DELETE", "/v1/knowledge/documents/{document_id}"): {"supervisor", "admin"},
    ("GET", "/v1/knowledge/collections"): CHAT,
    ("GET", "/v1/knowledge/search"): CHAT,
    ("GET", "/v1/review"): {"supervisor", "auditor", "admin"},
    ("POST", "/v1/review/{item_id}/approve"): {"supervisor", "admin"},
    ("POST", "/v1/review/{item_id}/reject"): {"supervisor", "admin"},
    ("POST", "/v1/review/{item_id}/dismiss"): {"supervisor", "admin"},
    ("GET", "/v1/handoffs"): AGENTS,
    ("GET", "/v1/handoffs/{handoff_id}"): AGENTS,
    ("POST", "/v1/handoffs/{handoff_id}/accept"): AGENTS,
    ("POST", "/v1/handoffs/{handoff_id}/messages"): AGENTS,
    ("POST", "/v1/handoffs/{handoff_id}/close"): AGENTS,
    ("GET", "/v1/sessions/{session_id}/actions"): CHAT,
    ("POST", "/v1/sessions/{session_id}/turns/{turn_id}/feedback"): CHAT,
    ("GET", "/v1/kpis"): {"supervisor", "auditor", "admin"},
    ("GET", "/v1/me"): set(ROLES),
}
# A harmless request per route (what an allowed caller gets is in the comment; none of them changes state
# beyond an empty session).
SAMPLE: dict[tuple[str, str], dict] = {
    ("POST", "/v1/chat/completions"): {"json": {}},                       # 400
    ("POST", "/v1/sessions"): {"json": {"title": "matrix"}},              # 201
    ("POST", "/v1/admin/keys"): {"json": {}},                             # 400
    ("PUT", "/v1/admin/retention"): {"json": {"turns_days": "never"}},    # 400
    ("POST", "/v1/vault/reveal"): {"json": {}},                           # 400
    ("POST", "/v1/knowledge/documents"): {"data": {"collection": "x"}},   # 400: no file
    ("GET", "/v1/knowledge/search"): {},                                  # 400: no q
    ("POST", "/v1/handoffs/{handoff_id}/messages"): {"json": {}},         # 400: no content
    ("POST", "/v1/sessions/{session_id}/turns/{turn_id}/feedback"): {"json": {}},   # 400 (404 for the session)
}

PII = {  # what a customer types; none of it may be found anywhere but the vault (encrypted)
    "card": "4111 1111 1111 1111",
    "iban": "GB82 WEST 1234 5698 7654 32",
    "ssn": "078-05-1120",
    "email": "ada.lovelace@example.com",
    "phone": "+44 20 7946 0958",
    "name": "Ada Lovelace",
}
FORMS = {  # other spellings of the same values a careless sink might keep
    "card digits": "4111111111111111", "iban compact": "GB82WEST12345698765432", "ssn digits": "078051120",
    "phone digits": "442079460958",
}


# -- fixtures ----------------------------------------------------------------------------------------------

def owner(appliance: Appliance) -> psycopg.Connection:
    return psycopg.connect(appliance.database_url, autocommit=True)


@pytest.fixture(scope="module")
def keys(appliance: Appliance) -> dict[tuple[str, str], str]:
    """Two tenants with a key for every role, plus a second staff user in tenant a."""
    out = {}
    with owner(appliance) as conn:
        for slug in ("trust-a", "trust-b"):
            tenant = api_keys.ensure_tenant(conn, slug, slug)
            for role in ROLES:
                out[slug, role] = api_keys.create_key(conn, tenant, role, label=f"trust test {role}")
        out["trust-a", "user2"] = api_keys.create_key(conn, api_keys.ensure_tenant(conn, "trust-a", "trust-a"), "user")
    return out


def client(url: str, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=120, trust_env=False)


def enclave_cli(appliance: Appliance, *args: str) -> subprocess.CompletedProcess:
    env = {**appliance.env, "ENCLAVE_DATABASE_URL": appliance.database_url}
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def chat(c: httpx.Client, text: str, session: str | None = None, stream: bool = False) -> httpx.Response:
    headers = {"X-Session-Id": session} if session else {}
    r = c.post("/v1/chat/completions", headers=headers, json={
        "model": "enclave", "messages": [{"role": "user", "content": text}], "max_tokens": 6, "stream": stream})
    assert r.status_code == 200, r.text
    return r


def audit_rows(appliance: Appliance, sql: str = "TRUE", params: tuple = ()) -> list[dict]:
    with owner(appliance) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(f"SELECT seq, action, tenant_id, session_id, entry, content FROM audit_log WHERE {sql} ORDER BY seq",
                    params)
        return cur.fetchall()


# -- roles on every route ----------------------------------------------------------------------------------

def declared_roles(route: APIRoute) -> set[str] | None:
    """The roles a route's RequireRoles dependency allows (None: it has none)."""
    found: list[RequireRoles] = []

    def walk(dependant) -> None:
        for dep in dependant.dependencies:
            if isinstance(dep.call, RequireRoles):
                found.append(dep.call)
            walk(dep)

    walk(route.dependant)
    return set(found[0].roles) if found else None


def app_routes() -> list[tuple[str, str, set[str] | None]]:
    from gateway.app import build_app
    from gateway.config import Settings

    app = build_app(Settings(vault_key=base64.b64encode(secrets.token_bytes(32)).decode()))
    return [(m, r.path, declared_roles(r)) for r in app.routes if isinstance(r, APIRoute) for m in sorted(r.methods)]


def test_every_route_declares_exactly_the_expected_roles() -> None:
    routes = app_routes()
    declared = {(m, p): roles for m, p, roles in routes if p not in PUBLIC_ROUTES}
    assert all(roles is None for _m, p, roles in routes if p in PUBLIC_ROUTES), "a public route asks for a role"
    undeclared = [k for k, v in declared.items() if v is None]
    assert not undeclared, f"routes without a role dependency: {undeclared}"
    assert declared == EXPECTED_ROLES


def test_every_route_reads_its_body_as_strict_json() -> None:
    """A router made without the strict route class would read bodies with the standard library's JSON, whose
    lone surrogates and NaN fail later as 500s (tests/integration/test_gateway_errors.py)."""
    from gateway.api.routing import StrictJsonRoute
    from gateway.app import build_app
    from gateway.config import Settings

    app = build_app(Settings(vault_key=base64.b64encode(secrets.token_bytes(32)).decode()))
    loose = [r.path for r in app.routes if isinstance(r, APIRoute) and not isinstance(r, StrictJsonRoute)]
    assert not loose, f"routes that parse JSON leniently: {loose}"


def test_the_gateway_enforces_the_role_matrix(appliance: Appliance, keys: dict) -> None:
    refused, allowed = 0, 0
    for (method, path), roles in EXPECTED_ROLES.items():
        url = (path.replace("{session_id}", str(uuid.uuid4())).replace("{document_id}", str(uuid.uuid4()))
               .replace("{item_id}", str(uuid.uuid4())).replace("{handoff_id}", str(uuid.uuid4()))
               .replace("{prefix}", "enc_00000000").replace("{turn_id}", str(uuid.uuid4()))
               .replace("{model:path}", "enclave"))
        sample = SAMPLE.get((method, path), {})
        with client(appliance.gateway_url, None) as anonymous:
            r = anonymous.request(method, url, **sample)
            assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key", (method, path, r.text)
        for role in ROLES:
            with client(appliance.gateway_url, keys["trust-a", role]) as c:
                r = c.request(method, url, **sample)
            if role in roles:
                assert r.status_code not in (401, 403), (method, path, role, r.text)
                allowed += 1
            else:
                assert r.status_code == 403 and r.json()["error"]["code"] == "role_not_allowed", (method, path, role, r.text)
                refused += 1
    with client(appliance.gateway_url, "enc_deadbeef_not-a-real-key") as c:
        assert c.get("/v1/models").json()["error"]["code"] == "invalid_api_key"
    for path in PUBLIC_ROUTES - {"/v1/actions/webhook", "/v1/ui/oidc/token"}:
        assert httpx.get(appliance.gateway_url + path, trust_env=False).status_code in (200, 503)
    # The actions webhook takes no key: its HMAC signature is the credential.
    unsigned = httpx.post(appliance.gateway_url + "/v1/actions/webhook", json={}, trust_env=False)
    assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "signature_missing"
    assert refused > 30 and allowed > 20


def test_a_key_over_its_rate_limit_gets_429_and_others_do_not(appliance: Appliance, keys: dict) -> None:
    with owner(appliance) as conn:
        tenant = api_keys.ensure_tenant(conn, "trust-a", "trust-a")
        slow, _prefix = api_keys.create_key_row(conn, tenant, "user", "rate limited", rate_limit_per_min=3)
    with client(appliance.gateway_url, slow) as c, client(appliance.gateway_url, keys["trust-a", "user"]) as other:
        assert [c.get("/v1/models").status_code for _ in range(3)] == [200, 200, 200]
        r = c.get("/v1/models")
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(r.headers["retry-after"]) <= 20
        assert other.get("/v1/models").status_code == 200
        assert "enclave_rate_limited_total" in other.get("/metrics").text


# -- tenant isolation --------------------------------------------------------------------------------------

def test_tenants_and_staff_never_see_each_others_sessions(appliance: Appliance, keys: dict) -> None:
    gw = appliance.gateway_url
    with client(gw, keys["trust-a", "user"]) as a_user:
        sid = chat(a_user, "Where is my nearest branch?").headers["x-session-id"]
        assert a_user.get(f"/v1/sessions/{sid}").status_code == 200
    for role in CHAT:
        with client(gw, keys["trust-b", role]) as b:
            assert b.get(f"/v1/sessions/{sid}").json()["error"]["code"] == "session_not_found"
            assert sid not in {s["id"] for s in b.get("/v1/sessions", params={"limit": 200}).json()["data"]}
            r = b.post("/v1/chat/completions", headers={"X-Session-Id": sid},
                       json={"model": "enclave", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
            assert r.status_code == 404
            assert b.delete(f"/v1/sessions/{sid}").status_code == 404
    with client(gw, keys["trust-b", "auditor"]) as b_auditor:
        r = b_auditor.post("/v1/vault/reveal", json={"session_id": sid, "placeholder": "<CARD_1>",
                                                     "reason": "cross-tenant attempt in a test"})
        assert r.status_code == 404
        assert b_auditor.get("/v1/audit", params={"session_id": sid}).json()["data"] == []
        assert all(e["tenant_id"] != _tenant_id(appliance, "trust-a") for e in b_auditor.get("/v1/audit").json()["data"])
    with client(gw, keys["trust-b", "admin"]) as b_admin:
        a_prefix = "_".join(keys["trust-a", "user"].split("_")[:2])
        assert b_admin.delete(f"/v1/admin/keys/{a_prefix}").status_code == 404
        assert a_prefix not in {k["prefix"] for k in b_admin.get("/v1/admin/keys").json()["data"]}
    # Within a tenant: another staff user cannot read it; a supervisor can.
    with client(gw, keys["trust-a", "user2"]) as colleague, client(gw, keys["trust-a", "supervisor"]) as supervisor:
        assert colleague.get(f"/v1/sessions/{sid}").status_code == 404
        assert supervisor.get(f"/v1/sessions/{sid}").status_code == 200
    with client(gw, keys["trust-a", "user"]) as a_user:  # and the owner still has it, untouched
        assert len(a_user.get(f"/v1/sessions/{sid}").json()["turns"]) == 2


def _tenant_id(appliance: Appliance, slug: str) -> str:
    with owner(appliance) as conn:
        return str(conn.execute("SELECT id FROM tenants WHERE slug = %s", (slug,)).fetchone()[0])


# -- API keys: admin API and CLI ---------------------------------------------------------------------------

def test_admin_api_creates_lists_and_revokes_keys_and_audits_it(appliance: Appliance, keys: dict) -> None:
    with client(appliance.gateway_url, keys["trust-a", "admin"]) as admin:
        r = admin.post("/v1/admin/keys", json={"role": "agent", "label": "night shift"})
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["key"].startswith(created["prefix"] + "_") and created["role"] == "agent"
        listed = admin.get("/v1/admin/keys").json()["data"]
        assert created["prefix"] in {k["prefix"] for k in listed}
        assert created["key"] not in json.dumps(listed)                 # the secret is shown once, never listed
        with client(appliance.gateway_url, created["key"]) as new:
            assert new.get("/v1/sessions").status_code == 200
            assert admin.delete(f"/v1/admin/keys/{created['prefix']}").status_code == 200
            assert new.get("/v1/sessions").json()["error"]["code"] == "invalid_api_key"   # at once on this gateway
        assert admin.post("/v1/admin/keys", json={"role": "root"}).json()["error"]["code"] == "invalid_parameter"
        # An admin cannot mint the role that reveals vault values and reads the audit log (separation of duties).
        r = admin.post("/v1/admin/keys", json={"role": "auditor"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "role_not_grantable"
        # ...nor switch the tenant's oversight off by revoking its auditor keys
        auditor_prefix = keys["trust-a", "auditor"][:len("enc_") + 8]   # enc_ and 8 hex digits
        r = admin.delete(f"/v1/admin/keys/{auditor_prefix}")
        assert r.status_code == 403 and r.json()["error"]["code"] == "role_not_grantable", r.text
    with client(appliance.gateway_url, keys["trust-a", "auditor"]) as auditor:
        assert auditor.get("/v1/audit", params={"limit": 1}).status_code == 200    # still active
    with owner(appliance) as conn:
        stored = conn.execute("SELECT key_sha256 FROM api_keys WHERE prefix = %s", (created["prefix"],)).fetchone()[0]
    assert stored != created["key"] and len(stored) == 64
    actions = [(r["action"], json.loads(r["content"]).get("prefix")) for r in audit_rows(appliance, "action LIKE 'key.%%'")]
    assert ("key.create", created["prefix"]) in actions and ("key.revoke", created["prefix"]) in actions


def test_a_taken_key_prefix_draws_another_key(appliance: Appliance, monkeypatch: pytest.MonkeyPatch) -> None:
    """The public prefix is 32 random bits: a collision was a unique violation, a 500 on the admin API."""
    with owner(appliance) as conn:
        tenant = api_keys.ensure_tenant(conn, "trust-p", "prefix test")
        taken = api_keys.create_key(conn, tenant, "agent")
        fresh = api_keys.new_key()
        draws = iter([(taken, taken[:len("enc_") + 8]), fresh])
        monkeypatch.setattr(api_keys, "new_key", lambda: next(draws))
        assert api_keys.create_key_row(conn, tenant, "agent") == fresh
        assert conn.execute("SELECT count(*) FROM api_keys WHERE prefix IN (%s, %s)",
                            (taken[:len("enc_") + 8], fresh[1])).fetchone()[0] == 2


def test_cli_creates_lists_and_revokes_keys(appliance: Appliance) -> None:
    made = enclave_cli(appliance, "keys", "create", "--tenant", "trust-a", "--role", "supervisor", "--label", "cli test")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    prefix = "_".join(key.split("_")[:2])
    listed = enclave_cli(appliance, "keys", "list", "--tenant", "trust-a")
    assert prefix in listed.stdout and key not in listed.stdout
    with client(appliance.gateway_url, key) as c:
        assert c.get("/v1/sessions").status_code == 200
        assert enclave_cli(appliance, "keys", "revoke", prefix).returncode == 0
        deadline = time.monotonic() + 15   # other gateways drop a revoked key within the 10 s cache
        while c.get("/v1/sessions").status_code != 401:
            assert time.monotonic() < deadline, "the revoked key still works after 15 s"
            time.sleep(0.5)
    bad = enclave_cli(appliance, "keys", "create", "--tenant", "no-such-tenant", "--role", "user")
    assert bad.returncode != 0 and "no tenant" in bad.stderr


# -- OIDC ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def idp(appliance: Appliance) -> Iterator[tuple[GatewayProcess, rsa.RSAPrivateKey]]:
    """A gateway that trusts a JWKS file written on the premises (what an internal IdP publishes)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    path = appliance.var_dir / "jwks.json"
    path.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}))
    gw = start_gateway(appliance, "oidc", oidc_jwks_file=str(path), oidc_issuer="https://idp.bank.internal",
                       oidc_audience="enclave")
    yield gw, key
    gw.stop()


def token(key, **claims) -> str:
    now = int(time.time())
    body = {"iss": "https://idp.bank.internal", "aud": "enclave", "sub": "alice", "tenant": "trust-a",
            "roles": ["auditor"], "iat": now, "exp": now + 300, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm="RS256", headers={"kid": "k1"})


def test_oidc_tokens_give_their_roles_in_their_tenant(idp, appliance: Appliance) -> None:
    gw, key = idp
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = [
        (token(key), "/v1/audit", 200, None),
        (token(key, roles="user"), "/v1/audit", 403, "role_not_allowed"),
        (token(key, roles=["user"]), "/v1/sessions", 200, None),
        (token(key, exp=int(time.time()) - 3600), "/v1/models", 401, "invalid_token"),
        (token(key, aud="another-app"), "/v1/models", 401, "invalid_token"),
        (token(key, iss="https://evil.example"), "/v1/models", 401, "invalid_token"),
        (token(key, tenant="no-such-bank"), "/v1/models", 403, "unknown_tenant"),
        (token(key, tenant=None), "/v1/models", 401, "invalid_token"),
        (token(key, roles=["root"]), "/v1/models", 403, "role_not_allowed"),
        (token(other_key), "/v1/models", 401, "invalid_token"),
    ]
    for tok, path, status, code in cases:
        with client(gw.url, tok) as c:
            r = c.get(path)
        assert r.status_code == status, (path, status, r.text)
        if code:
            assert r.json()["error"]["code"] == code
    with client(gw.url, token(key)) as auditor:   # what it sees is its tenant's, under its subject
        entries = auditor.get("/v1/audit").json()["data"]
        assert {e["tenant_id"] for e in entries} <= {_tenant_id(appliance, "trust-a")}
    assert any(json.loads(r["entry"])["actor"] == "oidc:alice" for r in audit_rows(appliance, "action = 'audit.read'"))


def test_audit_times_without_a_zone_are_utc_whatever_the_servers_time_zone(appliance: Appliance, keys: dict) -> None:
    """`enclave audit export` reads a zoneless --from/--to as UTC; the API let Postgres read it in the server's
    TimeZone (initdb copies the host's), so on a server east of UTC the same window ended hours earlier."""
    with owner(appliance) as conn:
        database = conn.execute("SELECT current_database()").fetchone()[0]
        conn.execute(f'ALTER DATABASE "{database}" SET timezone = \'Asia/Kolkata\'')   # UTC+05:30
    try:
        gw = start_gateway(appliance, "audit-tz")    # its pool's connections take the zone
        try:
            with client(gw.url, keys["trust-a", "auditor"]) as auditor:
                auditor.get("/v1/audit", params={"limit": 1})                  # audits itself: an entry now
                just_now = max(r["seq"] for r in audit_rows(appliance, "action = 'audit.read'"))
                soon = (datetime.now(UTC) + timedelta(minutes=1)).replace(tzinfo=None).isoformat()
                r = auditor.get("/v1/audit", params={"to": soon, "after_seq": just_now - 1, "limit": 1})
                assert r.status_code == 200 and [e["seq"] for e in r.json()["data"]] == [just_now], r.text
        finally:
            gw.stop()
    finally:
        with owner(appliance) as conn:
            conn.execute(f'ALTER DATABASE "{database}" RESET timezone')


# -- PII: never in the LLM, the database, the logs or the metrics ------------------------------------------

@pytest.fixture(scope="module")
def pii_session(appliance: Appliance, keys: dict, proxy: RecordingProxy) -> Iterator[dict]:
    """A conversation full of personal data through a gateway whose LLM traffic is recorded."""
    gw = start_gateway(appliance, "pii", llm_chain=[{"name": "primary", "url": proxy.url}])
    before = len(proxy.chat_requests())
    p = PII
    try:
        with client(gw.url, keys["trust-a", "user"]) as c:
            sid = c.post("/v1/sessions", json={
                "title": f"call from {p['phone']}",
                "system_prompt": f"The customer on this line is {p['name']}, e-mail {p['email']}.",
                "metadata": {"crm": {"note": f"caller {p['name']}", "refund_to": [p["iban"]]},
                             p["email"]: "vip", "by_card": {p["card"]: "lost"}}}).json()["id"]   # in keys too
            chat(c, f"Hello, my name is {p['name']}. My card {p['card']} was stolen, please block it.", sid, stream=True)
            chat(c, f"Refund to my IBAN {p['iban']}; my SSN is {p['ssn']} and you can call me on {p['phone']}.", sid)
            chat(c, f"Again, the card is {p['card'].replace(' ', '-')}. Mail me at {p['email']}.", sid, stream=True)
            session = c.get(f"/v1/sessions/{sid}").json()
        yield {"sid": sid, "session": session, "sent": proxy.chat_requests()[before:], "gateway": gw}
    finally:
        gw.stop()


def raw_values() -> dict[str, str]:
    return {**PII, **FORMS}


def test_the_llm_sees_placeholders_consistent_within_the_session(pii_session: dict) -> None:
    sent = pii_session["sent"]
    assert len(sent) == 3
    text = json.dumps(sent)
    for what, value in raw_values().items():
        assert value not in text, f"the LLM received the {what}"
    last = sent[-1]["messages"]
    assert last[0] == {"role": "system", "content": "The customer on this line is <PERSON_1>, e-mail <EMAIL_1>."}
    assert last[1]["content"] == "Hello, my name is <PERSON_1>. My card <CARD_1> was stolen, please block it."
    assert last[-1]["content"] == "Again, the card is <CARD_1>. Mail me at <EMAIL_1>."   # same value, same placeholder
    assert "<IBAN_1>" in last[3]["content"] and "<SSN_1>" in last[3]["content"] and "<PHONE_1>" in last[3]["content"]


def test_no_table_holds_a_raw_value(appliance: Appliance, pii_session: dict) -> None:
    with owner(appliance) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename").fetchall()]
        assert {"turns", "sessions", "audit_log", "pii_vault", "api_keys"} <= set(tables)
        for table in tables:
            dump = "\n".join(r[0] for r in conn.execute(f'SELECT t::text FROM "{table}" t').fetchall())
            for what, value in raw_values().items():
                assert value not in dump and value.replace(" ", "") not in dump, f"{table} holds the {what}"
        n = conn.execute("SELECT count(*) FROM pii_vault WHERE session_id = %s AND ciphertext IS NOT NULL",
                         (pii_session["sid"],)).fetchone()[0]
    assert n == 6   # one sealed row per distinct value: name, e-mail, phone, card, IBAN, SSN
    session = pii_session["session"]
    assert session["title"] == "call from <PHONE_1>"
    assert session["turns"][0]["content"].startswith("Hello, my name is <PERSON_1>. My card <CARD_1>")


def test_the_same_card_in_two_sessions_leaves_nothing_that_links_them(appliance: Appliance, keys: dict,
                                                                      pii_session: dict) -> None:
    """Vault fingerprints are scoped to their session: a backup shows no equal values across sessions."""
    with client(pii_session["gateway"].url, keys["trust-a", "user"]) as c:
        other = c.post("/v1/sessions", json={}).json()["id"]
        assert chat(c, f"My card {PII['card']} was stolen.", other).status_code == 200
    with owner(appliance) as conn:
        rows = dict(conn.execute("SELECT session_id::text, fingerprint FROM pii_vault WHERE pii_type = 'CARD' "
                                 "AND session_id = ANY(%s::uuid[])", ([pii_session["sid"], other],)).fetchall())
    assert set(rows) == {pii_session["sid"], other}
    assert all(fp.startswith("s1:") for fp in rows.values()) and len(set(rows.values())) == 2


def test_rescoping_turns_older_tenant_wide_fingerprints_into_session_ones(appliance: Appliance, keys: dict,
                                                                          pii_session: dict) -> None:
    """A row stored in the tenant-wide form (before session scoping) still recognises its value; `enclave vault
    rescope-fingerprints` scopes it to its session without decrypting, and the value keeps its placeholder."""
    cipher = VaultCipher(load_key_provider(None, appliance.var_dir / "vault.key", None))
    card = PiiDetector().detect(f"my card {PII['card']}")[0]
    with client(pii_session["gateway"].url, keys["trust-a", "user"]) as c:
        sid = c.post("/v1/sessions", json={}).json()["id"]
        chat(c, f"My card {PII['card']} was stolen.", sid)
        with owner(appliance) as conn:
            tenant = str(conn.execute("SELECT tenant_id FROM sessions WHERE id = %s", (sid,)).fetchone()[0])
            scoped = cipher.fingerprint(tenant, sid, "CARD", card.canonical)
            legacy = cipher.tenant_fingerprint(tenant, "CARD", card.canonical)
            assert conn.execute("UPDATE pii_vault SET fingerprint = %s WHERE session_id = %s AND fingerprint = %s",
                                (legacy, sid, scoped)).rowcount == 1   # as an older gateway stored it
        chat(c, f"Again: {PII['card']}.", sid)
        cli = enclave_cli(appliance, "vault", "rescope-fingerprints")
        assert cli.returncode == 0 and "scoped to their session" in cli.stdout, cli.stderr
        chat(c, f"And once more {PII['card'].replace(' ', '')}.", sid)
        turns = c.get(f"/v1/sessions/{sid}").json()["turns"]
    user_said = [t["content"] for t in turns if t["role"] == "user"]
    assert user_said == ["My card <CARD_1> was stolen.", "Again: <CARD_1>.", "And once more <CARD_1>."]
    with owner(appliance) as conn:
        assert conn.execute("SELECT fingerprint FROM pii_vault WHERE session_id = %s AND pii_type = 'CARD'",
                            (sid,)).fetchall() == [(scoped,)]
        assert conn.execute("SELECT count(*) FROM pii_vault WHERE left(fingerprint, 3) <> 's1:'").fetchone()[0] == 0
    again = enclave_cli(appliance, "vault", "rescope-fingerprints")
    assert again.returncode == 0 and "already scoped" in again.stdout


def test_no_log_or_metric_holds_a_raw_value(appliance: Appliance, pii_session: dict) -> None:
    logs = [p for p in sorted((appliance.var_dir / "log").glob("*.log")) + [appliance.log_path] if p.is_file()]
    ray_logs = Path("/tmp/ray/session_latest/logs")
    if ray_logs.is_dir():
        logs += [p for p in ray_logs.rglob("*") if p.is_file() and p.stat().st_size < 50_000_000]
    assert any(p.name == "gateway-pii.log" for p in logs)
    for path in logs:
        text = path.read_text(errors="replace")
        for what, value in raw_values().items():
            assert value not in text, f"{path} holds the {what}"
    for url in (appliance.gateway_url, pii_session["gateway"].url):
        metrics = httpx.get(f"{url}/metrics", trust_env=False).text
        assert not any(v in metrics for v in raw_values().values())


def test_only_the_sessions_owner_gets_values_back_in_replies(appliance: Appliance, keys: dict) -> None:
    """An admin's role lists the whole tenant's sessions, and it may write into one; the model's placeholders
    come back as the owner's values only to the owner (the canned link plays a model that echoes one)."""
    gw = start_gateway(appliance, "owner-only", llm_chain=[
        {"name": "echo", "kind": "canned", "text": "We will write to <EMAIL_1> today."}])
    try:
        with client(gw.url, keys["trust-a", "user"]) as owner_c, client(gw.url, keys["trust-a", "admin"]) as admin_c:
            sid = owner_c.post("/v1/sessions", json={"system_prompt": f"Customer e-mail: {PII['email']}"}).json()["id"]
            for stream in (False, True):
                mine = chat(owner_c, "when will you write?", sid, stream=stream)
                theirs = chat(admin_c, "when will you write?", sid, stream=stream)
                assert mine.status_code == theirs.status_code == 200, theirs.text
                assert f"write to {PII['email']} today" in mine.text
                assert "write to [email withheld] today" in theirs.text and PII["email"] not in theirs.text
    finally:
        gw.stop()


def test_a_vault_reveal_needs_an_auditor_and_a_reason_and_is_audited(appliance: Appliance, keys: dict,
                                                                     pii_session: dict) -> None:
    sid = pii_session["sid"]
    body = {"session_id": sid, "placeholder": "<CARD_1>", "reason": "chargeback dispute #4471, customer consent on file"}
    with client(appliance.gateway_url, keys["trust-a", "supervisor"]) as supervisor:
        assert supervisor.post("/v1/vault/reveal", json=body).status_code == 403
    with client(appliance.gateway_url, keys["trust-a", "auditor"]) as auditor:
        assert auditor.post("/v1/vault/reveal", json={**body, "reason": "why"}).json()["error"]["code"] == "reason_required"
        assert auditor.post("/v1/vault/reveal", json={**body, "placeholder": "<CARD_7>"}).status_code == 404
        before = len(audit_rows(appliance, "action = 'vault.reveal'"))
        r = auditor.post("/v1/vault/reveal", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["value"] == PII["card"] and r.json()["type"] == "CARD"
    reveals = audit_rows(appliance, "action = 'vault.reveal'")
    assert len(reveals) == before + 1
    entry, content = json.loads(reveals[-1]["entry"]), json.loads(reveals[-1]["content"])
    assert entry["actor"] == "_".join(keys["trust-a", "auditor"].split("_")[:2]) and entry["session_id"] == sid
    assert content == {"placeholder": "<CARD_1>", "type": "CARD", "reason": body["reason"]}
    # A value that does not open with the gateway's key (a backup restored without its key) is a 503 that says
    # so, and no reveal is audited (it was a 500, after the reveal had been logged).
    where = "session_id = %s AND placeholder = '<PHONE_1>'"
    with owner(appliance) as conn:
        sealed = conn.execute(f"SELECT ciphertext FROM pii_vault WHERE {where}", (sid,)).fetchone()[0]
        conn.execute(f"UPDATE pii_vault SET ciphertext = %s WHERE {where}", (bytes([sealed[0] ^ 1]) + sealed[1:], sid))
    try:
        with client(appliance.gateway_url, keys["trust-a", "auditor"]) as auditor:
            r = auditor.post("/v1/vault/reveal", json={**body, "placeholder": "<PHONE_1>"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "vault_key_mismatch", r.text
        assert len(audit_rows(appliance, "action = 'vault.reveal'")) == before + 1
    finally:
        with owner(appliance) as conn:
            conn.execute(f"UPDATE pii_vault SET ciphertext = %s WHERE {where}", (sealed, sid))


def test_concurrent_turns_of_a_session_never_share_a_placeholder(appliance: Appliance, keys: dict) -> None:
    """Turns sent at once into one session each load the vault before any is stored, so each numbers its new
    e-mail <EMAIL_1>. Stored as it was, every turn's placeholder then named the first value stored; now each
    is renumbered under the session's lock, and each stored text still names its own value."""
    emails = [f"ada.{i}.{secrets.token_hex(3)}@example.org" for i in range(4)]
    with client(appliance.gateway_url, keys["trust-a", "user"]) as c:
        sid = c.post("/v1/sessions", json={}).json()["id"]
        with ThreadPoolExecutor(len(emails)) as pool:
            list(pool.map(lambda e: chat(c, f"Please write to {e} today.", sid), emails))
        texts = [t["content"] for t in c.get(f"/v1/sessions/{sid}").json()["turns"] if t["role"] == "user"]
    placeholders = [re.search(r"<EMAIL_\d+>", t).group(0) for t in texts]
    assert len(texts) == len(emails) and len(set(placeholders)) == len(emails), texts
    with client(appliance.gateway_url, keys["trust-a", "auditor"]) as auditor:
        revealed = {text.replace(p, auditor.post("/v1/vault/reveal", json={
            "session_id": sid, "placeholder": p, "reason": "placeholder numbering check"}).json()["value"])
            for text, p in zip(texts, placeholders, strict=True)}
    assert revealed == {f"Please write to {e} today." for e in emails}


def test_feedback_and_reveal_reasons_use_the_sessions_own_placeholders(appliance: Appliance, keys: dict) -> None:
    """A comment or a reason naming another address got <EMAIL_1>, the customer's own placeholder (redacted
    against an empty vault), and the new address was never stored: a reveal then showed the wrong person."""
    other = f"bob.{secrets.token_hex(3)}@example.org"
    with client(appliance.gateway_url, keys["trust-a", "user"]) as c:
        sid = chat(c, f"Write to me at {PII['email']} please.").headers["x-session-id"]
        turn_id = next(t["turn_id"] for t in c.get(f"/v1/sessions/{sid}").json()["turns"] if t["role"] == "assistant")
        r = c.post(f"/v1/sessions/{sid}/turns/{turn_id}/feedback", json={"rating": "down",
                                                                         "comment": f"it should have used {other}"})
        assert r.status_code == 200, r.text
        assert r.json()["comment"] == "it should have used <EMAIL_2>"
    with client(appliance.gateway_url, keys["trust-a", "auditor"]) as auditor:
        def reveal(placeholder: str, reason: str) -> dict:
            return auditor.post("/v1/vault/reveal", json={"session_id": sid, "placeholder": placeholder,
                                                          "reason": reason}).json()
        assert reveal("<EMAIL_2>", "checking the feedback comment")["value"] == other
        assert reveal("<EMAIL_1>", f"the customer {PII['email']} asked")["value"] == PII["email"]
    last = audit_rows(appliance, "session_id = %s AND action = 'vault.reveal'", (sid,))[-1]
    assert json.loads(last["content"])["reason"] == "the customer <EMAIL_1> asked"


def test_turn_audit_entries_record_the_decision_redacted(appliance: Appliance, pii_session: dict) -> None:
    turns = audit_rows(appliance, "action = 'chat.turn' AND session_id = %s", (pii_session["sid"],))
    assert len(turns) == 3
    content = json.loads(turns[0]["content"])
    assert content["input"][0]["content"].startswith("Hello, my name is <PERSON_1>")
    assert content["model"] == "tiny-qwen2" and content["model_revision"]
    assert content["prompt_template_sha256"] and content["decisions"]["pii_redacted"]["CARD"] == 1
    assert set(content["latency_ms"]) == {"ttft", "total"} and content["retrieved_documents"] == []


# -- the audit chain -------------------------------------------------------------------------------------

def test_concurrent_turns_each_land_whole_with_one_audit_entry(appliance: Appliance, keys: dict) -> None:
    """A plain turn is stored by one statement that also appends its audit entry (no transaction block).
    Twelve at once, half of them on one shared session, must each land whole with exactly one entry, take
    their own seq in the shared session, and leave a chain that verifies."""
    with client(appliance.gateway_url, keys["trust-b", "user"]) as c:
        shared = chat(c, "The first turn of a shared session.").headers["x-session-id"]

    async def burst() -> list[str]:
        async with httpx.AsyncClient(base_url=appliance.gateway_url, timeout=120, trust_env=False,
                                     headers={"Authorization": f"Bearer {keys['trust-b', 'user']}"}) as ac:
            async def one(i: int) -> str:
                r = await ac.post("/v1/chat/completions", headers={"X-Session-Id": shared} if i % 2 else {},
                                  json={"model": "enclave", "messages": [{"role": "user", "content": f"Turn {i}."}],
                                        "max_tokens": 4, "stream": bool(i % 3)})
                assert r.status_code == 200, r.text
                return r.headers["x-turn-id"]
            return await asyncio.gather(*(one(i) for i in range(12)))

    turn_ids = asyncio.run(burst())
    entries = audit_rows(appliance, "action = 'chat.turn' AND (entry::jsonb)->>'turn_id' = ANY(%s)", (turn_ids,))
    assert sorted(json.loads(e["entry"])["turn_id"] for e in entries) == sorted(turn_ids)
    with owner(appliance) as conn:
        seqs = [r[0] for r in conn.execute("SELECT seq FROM turns WHERE session_id = %s AND role = 'assistant' "
                                           "ORDER BY seq", (shared,)).fetchall()]
        rows_per_turn = conn.execute("SELECT count(*) FROM turns WHERE turn_id = ANY(%s) GROUP BY turn_id",
                                     (turn_ids,)).fetchall()
    assert seqs == list(range(1, 8))                      # the first turn, then six concurrent ones
    assert len(rows_per_turn) == 12 and all(n == 2 for (n,) in rows_per_turn)   # each: its user and assistant rows
    assert enclave_cli(appliance, "audit", "verify").returncode == 0


def test_a_turn_for_a_deleted_session_stores_nothing_and_appends_nothing(appliance: Appliance) -> None:
    """The single statement is all or nothing: a turn whose session is gone leaves no rows and no entry."""
    with owner(appliance) as conn:
        tenant = str(api_keys.ensure_tenant(conn, "trust-a", "trust-a"))
    gone, turn_id = uuid.uuid4(), str(uuid.uuid4())

    async def record() -> None:
        async with await psycopg.AsyncConnection.connect(appliance.database_url, autocommit=True) as conn:
            await sessions_repo.record_turn(
                conn, tenant, gone, turn_id, "api", "req-gone", [sessions_repo.TurnRow("user", "hello", 1, "complete")],
                audit_event=AuditEvent("chat.turn", "trust test", tenant, str(gone), turn_id, "api", {"input": "hello"}))

    with pytest.raises(LookupError, match="is gone"):
        asyncio.run(record())
    assert audit_rows(appliance, "(entry::jsonb)->>'turn_id' = %s", (turn_id,)) == []
    with owner(appliance) as conn:
        assert conn.execute("SELECT count(*) FROM turns WHERE turn_id = %s", (turn_id,)).fetchone()[0] == 0


def test_the_gateway_role_cannot_change_the_audit_log(appliance: Appliance) -> None:
    with owner(appliance) as conn:
        users = {r[0] for r in conn.execute("SELECT usename FROM pg_stat_activity WHERE usename IS NOT NULL").fetchall()}
    assert "enclave_gateway" in users, "the appliance's gateway should connect as its restricted role"
    with owner(appliance) as conn:   # an entry of its own: the test must not lean on what others wrote
        tenant = str(api_keys.ensure_tenant(conn, "trust-a", "tenant a"))
        seq = append_sync(conn, AuditEvent("chat.turn", "append-only test", tenant))
        row = conn.execute("SELECT action, hash FROM audit_log WHERE seq = %s", (seq,)).fetchone()
    with owner(appliance) as conn:
        conn.execute("SET ROLE enclave_gateway")
        assert conn.execute("SELECT count(*) FROM audit_log WHERE seq = %s", (seq,)).fetchone()[0] == 1  # it may read …
        for statement in (f"UPDATE audit_log SET action = 'x' WHERE seq = {seq}", f"DELETE FROM audit_log WHERE seq = {seq}",
                          "TRUNCATE audit_log"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with owner(appliance) as conn:   # … and even the owner meets the append-only trigger
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("UPDATE audit_log SET action = 'x' WHERE seq = %s", (seq,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("DELETE FROM audit_log WHERE seq = %s", (seq,))
        assert conn.execute("SELECT action, hash FROM audit_log WHERE seq = %s", (seq,)).fetchone() == row


@pytest.mark.parametrize("column,change", [
    ("content", "replace(content, '\"status\":\"complete\"', '\"status\":\"failed\"')"),
    ("entry", "replace(entry, '\"action\":\"chat.turn\"', '\"action\":\"chat.tune\"')"),
    ("hash", "md5(hash) || md5(hash)"),
])
def test_changing_an_audit_row_makes_verify_fail_at_that_row(appliance: Appliance, keys: dict, pii_session: dict,
                                                             column: str, change: str) -> None:
    seq = audit_rows(appliance, "action = 'chat.turn' AND session_id = %s", (pii_session["sid"],))[1]["seq"]
    assert enclave_cli(appliance, "audit", "verify").returncode == 0
    with owner(appliance) as conn:
        original = conn.execute(f"SELECT {column} FROM audit_log WHERE seq = %s", (seq,)).fetchone()[0]
        conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")   # what an attacker with the owner's rights does
        try:
            conn.execute(f"UPDATE audit_log SET {column} = {change} WHERE seq = %s", (seq,))
            assert conn.execute(f"SELECT {column} FROM audit_log WHERE seq = %s", (seq,)).fetchone()[0] != original
            result = enclave_cli(appliance, "audit", "verify")
            assert result.returncode == 1 and f"broken at seq {seq}" in result.stderr, result.stderr + result.stdout
            with client(appliance.gateway_url, keys["trust-a", "auditor"]) as auditor:
                api = auditor.post("/v1/audit/verify").json()
            assert api["ok"] is False and api["broken_seq"] == seq
            with client(appliance.gateway_url, keys["trust-b", "auditor"]) as other:   # not trust-b's entry
                api = other.post("/v1/audit/verify").json()
            assert api["ok"] is False and api["broken_seq"] is None and api["reason"] is None
            assert "outside this tenant" in api["message"]
        finally:
            conn.execute(f"UPDATE audit_log SET {column} = %s WHERE seq = %s", (original, seq))
            conn.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")
    result = enclave_cli(appliance, "audit", "verify")
    assert result.returncode == 0 and "intact" in result.stdout


def test_export_writes_the_tenants_entries_as_jsonl(appliance: Appliance, tmp_path: Path) -> None:
    out = tmp_path / "audit.jsonl"
    today = datetime.now(UTC).date()
    r = enclave_cli(appliance, "audit", "export", "--from", str(today), "--to", str(today + timedelta(days=1)),
                    "--tenant", "trust-a", "-o", str(out))
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    expected = len(audit_rows(appliance, "tenant_id = %s", (_tenant_id(appliance, "trust-a"),)))
    assert len(lines) == expected > 0
    assert all({"seq", "hash", "prev_hash", "action", "actor", "content"} <= set(e) for e in lines)
    assert [e["seq"] for e in lines] == sorted(e["seq"] for e in lines)
    assert enclave_cli(appliance, "audit", "export", "--from", "yesterday").returncode == 2


def test_verify_is_not_fooled_by_entries_appended_while_it_walks(appliance: Appliance) -> None:
    """Each page of the walk is its own snapshot (autocommit). An entry appended after the last page and
    before the head was read made a busy appliance report "entries removed from the end": a false alarm."""
    from psycopg.rows import dict_row

    from gateway.store.audit import verify_sync

    with owner(appliance) as conn, owner(appliance) as other:
        tenant = str(api_keys.ensure_tenant(conn, "trust-v", "verify race"))
        conn.row_factory = dict_row
        appended = []

        class Busy:
            """The connection the walk reads through; a chat turn's entry lands whenever it reads a page."""

            def execute(self, query: str, params: object = None):
                result = conn.execute(query, params)
                if "FROM audit_log" in query:
                    appended.append(append_sync(other, AuditEvent("chat.turn", "verify race", tenant)))
                return result

        result = verify_sync(Busy())
        assert appended and result.ok, result.describe()
        assert verify_sync(conn).checked > result.checked    # the entries it skipped are checked next time


# -- retention -------------------------------------------------------------------------------------------

def test_a_purge_leaves_tombstones_and_the_chain_still_verifies(appliance: Appliance) -> None:
    with owner(appliance) as conn:
        tenant = api_keys.ensure_tenant(conn, "trust-r", "retention test")
        admin_key = api_keys.create_key(conn, tenant, "admin")
        auditor_key = api_keys.create_key(conn, tenant, "auditor")
    with client(appliance.gateway_url, admin_key) as admin:
        sid = chat(admin, f"My card {PII['card']} is lost.").headers["x-session-id"]
        answer = [t for t in admin.get(f"/v1/sessions/{sid}").json()["turns"] if t["role"] == "assistant"][0]
        r = admin.post(f"/v1/sessions/{sid}/turns/{answer['turn_id']}/feedback", json={"rating": "down",
                                                                                "comment": "wrong branch hours"})
        assert r.status_code == 200, r.text
        r = admin.put("/v1/admin/retention", json={"turns_days": 30, "vault_days": 30})
        assert r.status_code == 200 and admin.get("/v1/admin/retention").json()["turns_days"] == 30
    with owner(appliance) as conn:   # what a pack's dialogue derives from such a turn (this tenant runs none)
        conn.execute("INSERT INTO actions (tenant_id, session_id, idempotency_key, tool, side_effect, args, state, "
                     "result) VALUES (%s, %s, %s, 'block_card', 'write', '{\"card\": \"<CARD_1>\"}', 'executed', "
                     "'{\"output\": {\"ref\": \"BLK-1\"}}')", (tenant, sid, f"k-{sid}"))
        conn.execute("INSERT INTO handoffs (tenant_id, session_id, reason, summary, summary_by, entities, state) "
                     "VALUES (%s, %s, 'requested', 'Customer lost card <CARD_1>.', 'llm', '{\"card\": \"<CARD_1>\"}', "
                     "'closed')", (tenant, sid))
        conn.execute("INSERT INTO dialogue_states (session_id, tenant_id, state) VALUES (%s, %s, "
                     "'{\"slots\": {\"card\": \"<CARD_1>\"}}')", (sid, tenant))
        append_sync(conn, AuditEvent("action.executed", "system", str(tenant), sid, content={"card": "<CARD_1>"}))
        conn.execute("UPDATE feedback SET created_at = now() + interval '40 days' WHERE session_id = %s", (sid,))
    with client(appliance.gateway_url, admin_key) as admin:   # a session whose action still waits for approval
        waiting = chat(admin, f"Please send the refund to {PII['iban']}.").headers["x-session-id"]
    with owner(appliance) as conn:
        conn.execute("INSERT INTO actions (tenant_id, session_id, idempotency_key, tool, side_effect, args, state) "
                     "VALUES (%s, %s, %s, 'refund', 'money', '{\"iban\": \"<IBAN_1>\"}', 'awaiting_approval')",
                     (tenant, waiting, f"k-{waiting}"))
    later = (datetime.now(UTC) + timedelta(days=31)).isoformat()
    dry = enclave_cli(appliance, "retention", "purge", "--as-of", later, "--dry-run")
    assert dry.returncode == 0 and "dry run" in dry.stdout
    with owner(appliance) as conn:
        assert conn.execute("SELECT count(*) FROM turns WHERE session_id = %s AND purged_at IS NULL",
                            (sid,)).fetchone()[0] == 2
    done = enclave_cli(appliance, "retention", "purge", "--as-of", later)
    assert done.returncode == 0 and "trust-r" in done.stdout, done.stdout + done.stderr
    with owner(appliance) as conn:
        turns = conn.execute("SELECT content, content_sha256, purged_at FROM turns WHERE session_id = %s",
                             (sid,)).fetchall()
        assert len(turns) == 2 and all(c == "" and h and p for c, h, p in turns)
        # the comment goes with its turn, though the rating was given (again) after the cutoff; the rating stays
        assert conn.execute("SELECT rating, comment FROM feedback WHERE session_id = %s", (sid,)).fetchall() == [(-1, "")]
        conn.execute("UPDATE feedback SET created_at = now() WHERE session_id = %s", (sid,))   # no rating from the future
        assert conn.execute("SELECT count(*) FROM pii_vault WHERE session_id = %s AND (ciphertext IS NOT NULL "
                            "OR fingerprint IS NOT NULL)", (sid,)).fetchone()[0] == 0   # the fingerprint goes too
        # ... but a waiting action's session keeps its values: the runner needs them after approval
        assert conn.execute("SELECT count(*) FROM pii_vault WHERE session_id = %s AND ciphertext IS NOT NULL",
                            (waiting,)).fetchone()[0] >= 1
        assert conn.execute("SELECT args, result FROM actions WHERE session_id = %s", (sid,)).fetchone() == ({}, None)
        assert conn.execute("SELECT summary, entities FROM handoffs WHERE session_id = %s", (sid,)).fetchone() == ("", {})
        assert conn.execute("SELECT count(*) FROM dialogue_states WHERE session_id = %s", (sid,)).fetchone()[0] == 0
    audited = audit_rows(appliance, "session_id = %s AND action IN ('chat.turn', 'action.executed')", (sid,))
    assert {r["action"] for r in audited} == {"chat.turn", "action.executed"}
    assert all(r["content"] is None for r in audited)
    assert audit_rows(appliance, "action = 'retention.purge' AND tenant_id = %s", (tenant,))
    assert enclave_cli(appliance, "audit", "verify").returncode == 0
    with client(appliance.gateway_url, auditor_key) as auditor:
        r = auditor.post("/v1/vault/reveal", json={"session_id": sid, "placeholder": "<CARD_1>",
                                                   "reason": "checking the purge in a test"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "value_purged"
    with client(appliance.gateway_url, admin_key) as admin:
        assert all(t["purged_at"] for t in admin.get(f"/v1/sessions/{sid}").json()["turns"])
        chat(admin, "Is my card blocked now?", sid)   # the session goes on without the purged history



def test_containment_counts_hand_offs_in_the_window_only(appliance: Appliance) -> None:
    """A session handed off a month ago that had a turn yesterday counted as escalated in the 7-day KPI."""
    with owner(appliance) as conn:
        tenant = api_keys.ensure_tenant(conn, "kpi-window", "KPI window test")
        key = api_keys.create_key(conn, tenant, "supervisor")
    with client(appliance.gateway_url, key) as c:
        old = chat(c, "What are your opening hours?").headers["x-session-id"]
        recent = chat(c, "What are your opening hours today?").headers["x-session-id"]
    with owner(appliance) as conn:
        for sid, age in ((old, "30 days"), (recent, "1 hour")):
            conn.execute("INSERT INTO handoffs (tenant_id, session_id, reason, summary, summary_by, entities, state, "
                         "created_at) VALUES (%s, %s, 'requested', '', 'llm', '{}', 'closed', now() - %s::interval)",
                         (tenant, sid, age))
    with client(appliance.gateway_url, key) as c:
        (kpi,) = c.get("/v1/kpis", params={"days": 7}).json()["channels"]   # this tenant's one channel
    assert kpi["sessions"] == 2 and kpi["escalation_rate"] == 0.5 and kpi["containment_rate"] == 0.5, kpi
