"""The staff UI in a real browser: Playwright drives Debian's Chromium (never `playwright install`) against the
test appliance's gateway, which serves the page and its ES modules itself. Sign in, ask, watch the answer
stream with its sources, leave feedback; a supervisor approves a pending transfer and the customer's chat
continues; voice with Chromium's fake microphone fed an espeak-ng WAV; keyboard-only use; what people see when
a key stops working or the server cannot be reached. Every main screen is saved as a screenshot under
var/test-artifacts/ui/."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import threading
import time
import wave
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.store import api_keys
from tests.conftest import espeak_wav
from tests.integration.conftest import REPO, Appliance, GatewayProcess, start_gateway

pytestmark = pytest.mark.timeout(600)
playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = REPO / "var" / "test-artifacts" / "ui"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FEES = """# Northbank fees and charges

## Cards abroad
Card payments in another currency cost 2.75% of the amount. Cash withdrawals abroad cost EUR 2.50 each.
"""
CANNED = "Hello, I would like to check my account balance."   # what the tiny Whisper always hears


@pytest.fixture(scope="module")
def keys(appliance: Appliance) -> dict[str, str]:
    """Keys of the example bank's tenant (its pack answers), one per role the UI serves."""
    with psycopg.connect(appliance.database_url, autocommit=True) as conn:
        tenant = api_keys.ensure_tenant(conn, "demo-bank", "Northbank (example pack)")
        return {role: api_keys.create_key(conn, tenant, role, label="ui test")
                for role in ("user", "supervisor", "auditor", "agent")}


@pytest.fixture(scope="module")
def ui_gw(appliance: Appliance) -> Iterator[GatewayProcess]:
    """A gateway serving the example bank's pack (and the UI), with short answers so the browser waits less."""
    gw = start_gateway(appliance, "ui", packs=[str(REPO / "packs" / "retail-bank")], bank_url=appliance.bank_url,
                       max_output_tokens=48, voice_max_output_tokens=16, voice_silence_reprompt_s=120)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def fees_doc(ui_gw: GatewayProcess, keys: dict) -> str:
    with httpx.Client(base_url=ui_gw.url, headers={"Authorization": f"Bearer {keys['supervisor']}"},
                      timeout=120, trust_env=False) as c:
        r = c.post("/v1/knowledge/documents", data={"collection": "retail-bank"},
                   files={"file": ("fees.md", FEES.encode(), "text/markdown")})
        assert r.status_code in (200, 201), r.text
        return r.json()["document"]["id"]


@pytest.fixture(scope="module")
def microphone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The caller's voice for Chromium's fake microphone: the canned sentence, then silence (it loops)."""
    path = espeak_wav(CANNED, tmp_path_factory.mktemp("mic") / "mic.wav", rate=48_000, pad_s=0.5)
    with wave.open(str(path)) as w:
        params, pcm = w.getparams(), w.readframes(w.getnframes())
    with wave.open(str(path), "wb") as w:
        w.setparams(params)
        w.writeframes(pcm + b"\0\0" * 48_000 * 6)
    return path


@pytest.fixture(scope="module")
def browser(microphone: Path) -> Iterator:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is needed (scripts/install.sh installs it)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            *FLAGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone}", "--autoplay-policy=no-user-gesture-required"])
        yield b
        b.close()


def new_page(browser, gw: GatewayProcess):
    context = browser.new_context(base_url=gw.url, viewport={"width": 1280, "height": 800},
                                  permissions=["microphone"])
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    return page


def sign_in(page, key: str) -> None:
    page.goto("/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Main").wait_for()


def seen(locator, page, timeout_ms: float = 60_000) -> None:
    """Wait for ``locator``; on timeout, fail with what the page shows (and its errors) instead of a bare timeout."""
    try:
        locator.wait_for(timeout=timeout_ms)
    except playwright_api.TimeoutError:
        pytest.fail(f"not shown: {locator}\n--- page ---\n{page.inner_text('body')[-3000:]}\n--- errors ---\n{page.errors}")


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_sign_in_ask_see_the_streamed_answer_and_its_source_and_leave_feedback(
        appliance: Appliance, ui_gw: GatewayProcess, browser, keys: dict, fees_doc: str) -> None:
    page = new_page(browser, ui_gw)
    page.goto("/")
    assert "default-src 'self'" in httpx.get(ui_gw.url + "/", trust_env=False).headers["content-security-policy"]
    shot(page, "01-sign-in")
    page.get_by_label("API key").fill("enc_deadbeef_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("That key was not accepted").wait_for()
    sign_in(page, keys["user"])
    page.get_by_label("Message").fill("How much is the fee for card payments abroad?")
    page.get_by_role("button", name="Send").click()
    answer = page.get_by_test_id("msg-assistant").last
    seen(answer.get_by_test_id("source").first, page)          # the sources arrive before the first word
    page.wait_for_function("() => !document.querySelector('[aria-busy=true]')")
    assert answer.inner_text().strip() not in ("", "…")
    shot(page, "02-chat-answer")
    answer.get_by_test_id("source").first.click()
    passage = page.get_by_test_id("passage")
    passage.wait_for()
    assert "2.75%" in passage.inner_text()
    shot(page, "03-source-passage")
    page.get_by_role("button", name="Close").click()
    answer.get_by_test_id("feedback-comment").fill("Clear answer, thanks. Call me on +44 20 7946 0958.")
    answer.get_by_role("button", name="Good answer").click()
    page.get_by_text("Thank you for the feedback.").wait_for()
    with psycopg.connect(appliance.database_url, autocommit=True) as conn:
        rating, comment = conn.execute("SELECT rating, comment FROM feedback WHERE created_by = %s "   # this key's
                                       "ORDER BY created_at DESC LIMIT 1", (keys["user"][:len("enc_") + 8],)).fetchone()
    assert rating == 1 and "7946" not in comment and "Clear answer" in comment      # redacted like any text
    with httpx.Client(base_url=ui_gw.url, headers={"Authorization": f"Bearer {keys['supervisor']}"},
                      trust_env=False, timeout=60) as sup:
        chat = next(c for c in sup.get("/v1/kpis", params={"days": 1}).json()["channels"] if c["channel"] == "chat")
    assert chat["ratings"] >= 1 and chat["csat"] is not None and chat["sessions"] >= 1   # feeds the CSAT KPI
    # The conversation is in the list, and reopening it shows the stored exchange.
    page.get_by_role("button", name="New conversation").click()
    page.get_by_test_id("conversation").first.click()
    page.get_by_test_id("msg-assistant").first.wait_for()
    assert page.errors == []


def test_a_supervisor_approves_a_pending_transfer_and_the_chat_continues(
        appliance: Appliance, ui_gw: GatewayProcess, browser, keys: dict) -> None:
    assert httpx.post(f"{appliance.bank_url}/_reset", trust_env=False).status_code == 200   # the seed balances
    customer = new_page(browser, ui_gw)
    sign_in(customer, keys["user"])
    say = customer.get_by_label("Message")
    say.fill("transfer 6000 euros from savings to checking")
    say.press("Enter")
    customer.wait_for_function("() => document.querySelectorAll('[data-testid=msg-assistant]').length >= 1 && "
                               "!document.querySelector('[aria-busy=true]')")
    say.fill("yes")
    say.press("Enter")
    customer.wait_for_function("() => document.querySelectorAll('[data-testid=msg-assistant]').length >= 2 && "
                               "!document.querySelector('[aria-busy=true]')")
    supervisor = new_page(browser, ui_gw)
    sign_in(supervisor, keys["supervisor"])
    supervisor.get_by_role("link", name="Review queue").click()
    row = supervisor.get_by_test_id("review-row").filter(has_text="6000").first
    seen(row, supervisor)
    shot(supervisor, "04-review-queue")
    row.get_by_test_id("approve").click()
    dialog = supervisor.locator("dialog[open]")
    if dialog.count():
        dialog.locator("textarea").fill("customer verified by phone")
        dialog.get_by_role("button", name="Approve").click()
    supervisor.get_by_text("Approved").first.wait_for()
    # The customer's open chat shows the outcome once the bank has executed it (the page polls its session).
    seen(customer.get_by_text("6000.00 EUR moved", exact=False), customer, 90_000)
    shot(customer, "05-chat-after-approval")
    assert customer.errors == [] and supervisor.errors == []


def test_the_console_screens(ui_gw: GatewayProcess, browser, keys: dict, fees_doc: str) -> None:
    supervisor = new_page(browser, ui_gw)
    sign_in(supervisor, keys["supervisor"])
    supervisor.get_by_role("link", name="KPIs").click()
    supervisor.get_by_test_id("kpi-card").first.wait_for()
    shot(supervisor, "06-kpis")
    supervisor.get_by_role("link", name="Hand-offs").click()
    supervisor.get_by_role("heading", level=1).wait_for()
    shot(supervisor, "07-handoffs")
    supervisor.get_by_role("link", name="Knowledge").click()
    supervisor.get_by_test_id("doc-row").first.wait_for()
    form = supervisor.get_by_test_id("upload-form")
    form.locator("input[type=file]").set_input_files(files=[{
        "name": "hours.md", "mimeType": "text/markdown",
        "buffer": b"# Branch hours\n\nBranches open 9:00 to 17:00 on weekdays and 9:00 to 13:00 on Saturdays.\n"}])
    form.locator("button[type=submit], input[type=submit]").first.click()
    supervisor.get_by_test_id("upload-result").wait_for()
    hours = supervisor.get_by_test_id("doc-row").filter(has_text="hours").first
    seen(hours, supervisor)
    shot(supervisor, "08-knowledge")
    hours.get_by_test_id("doc-delete").click()
    supervisor.locator("dialog[open]").get_by_role("button", name="Delete").click()
    supervisor.get_by_test_id("doc-row").filter(has_text="hours").first.wait_for(state="detached")
    auditor = new_page(browser, ui_gw)
    sign_in(auditor, keys["auditor"])
    auditor.get_by_role("link", name="Audit").click()
    seen(auditor.get_by_test_id("audit-verify"), auditor)
    auditor.get_by_test_id("audit-verify").click()
    seen(auditor.locator("[data-testid=audit-result][data-ok=true]"), auditor)     # the hash chain verifies
    shot(auditor, "09-audit")
    assert supervisor.errors == [] and auditor.errors == []


def test_voice_hands_free_with_the_fake_microphone(ui_gw: GatewayProcess, browser, keys: dict) -> None:
    page = new_page(browser, ui_gw)
    sign_in(page, keys["user"])
    page.get_by_label("Voice mode").select_option("handsfree")
    page.get_by_role("button", name="Start voice").click()
    page.get_by_test_id("msg-user").filter(has_text="account balance").first.wait_for(timeout=90_000)
    page.wait_for_function("() => window.__enclaveVoice && window.__enclaveVoice.playedSamples > 8000",
                           timeout=90_000)
    stats = page.evaluate("() => window.__enclaveVoice")
    assert stats["framesSent"] > 50 and stats["framesReceived"] > 0, stats
    shot(page, "10-voice")
    page.get_by_role("button", name="Stop voice").click()
    assert page.errors == []


def test_voice_push_to_talk(ui_gw: GatewayProcess, browser, keys: dict) -> None:
    page = new_page(browser, ui_gw)
    sign_in(page, keys["user"])
    page.get_by_role("button", name="Start voice").click()          # push-to-talk is the default mode
    talk = page.get_by_test_id("push-to-talk")
    page.wait_for_function("() => window.__enclaveVoice && window.__enclaveVoice.framesSent > 25")
    assert page.evaluate("() => window.__enclaveVoice.micFramesSent") == 0     # nothing of the mic until pressed
    talk.focus()
    page.keyboard.down("Space")                                    # hold to talk: the fake mic's sentence
    page.wait_for_timeout(8000)                                    # longer than the silence in the looped WAV
    page.keyboard.up("Space")
    page.get_by_test_id("msg-user").filter(has_text="account balance").first.wait_for(timeout=90_000)
    assert page.evaluate("() => window.__enclaveVoice.micFramesSent") > 100
    page.get_by_role("button", name="Stop voice").click()
    assert page.errors == []


def test_keyboard_only_main_path(ui_gw: GatewayProcess, browser, keys: dict) -> None:
    page = new_page(browser, ui_gw)
    page.goto("/")
    page.get_by_label("API key").wait_for()
    page.keyboard.type(keys["user"])              # the key field has focus on arrival
    page.keyboard.press("Enter")
    page.get_by_role("navigation", name="Main").wait_for()
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'composer-input'")
    page.keyboard.type("What are your branch opening hours?")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=msg-assistant]').length >= 1 && "
                           "!document.querySelector('[aria-busy=true]')")
    for _ in range(40):                            # Tab reaches the feedback buttons of the answer
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.dataset.testid") == "thumb-up":
            break
    else:
        pytest.fail("Tab never reached the feedback buttons")
    page.keyboard.press("Enter")
    page.get_by_text("Thank you for the feedback.").wait_for()
    assert page.errors == []


def test_older_conversations_are_a_click_away(appliance: Appliance, ui_gw: GatewayProcess, browser) -> None:
    """The list showed the 50 most recent sessions of any channel, then kept chat and voice: API and phone
    sessions took places, and anything older could not be reached from the UI at all."""
    with psycopg.connect(appliance.database_url, autocommit=True) as conn:
        key = api_keys.create_key(conn, api_keys.ensure_tenant(conn, "demo-bank", "Northbank (example pack)"),
                                  "user", label="ui paging")
    with httpx.Client(base_url=ui_gw.url, headers={"Authorization": f"Bearer {key}"}, trust_env=False,
                      timeout=60) as c:
        for i in range(53):
            assert c.post("/v1/sessions", json={"title": f"old conversation {i}"}).status_code in (200, 201)
        for _ in range(3):
            assert c.post("/v1/sessions", json={"title": "an api session", "channel": "api"}).status_code in (200, 201)
    page = new_page(browser, ui_gw)
    sign_in(page, key)
    seen(page.get_by_test_id("conversation").first, page)
    assert page.get_by_test_id("conversation").count() == 50
    # Two clicks while the next page loads fetch it once (they listed every older conversation twice).
    held: list = []
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "after=" in request.url else None)
    page.route("**/v1/sessions?*after=*", lambda route: route.continue_() if held else held.append(route))
    page.evaluate("() => { const b = document.querySelector('[data-testid=more-conversations]'); b.click(); b.click(); }")
    page.wait_for_timeout(500)
    assert len(asked) == 1, asked
    held[0].continue_()
    page.wait_for_function("() => document.querySelectorAll('[data-testid=conversation]').length === 53")
    assert page.get_by_text("old conversation 0", exact=True).is_visible()
    assert page.get_by_text("an api session").count() == 0
    assert page.get_by_role("button", name="Older conversations").is_hidden()
    assert page.errors == []


def test_an_expired_key_returns_to_sign_in_and_a_down_server_keeps_the_message(
        appliance: Appliance, ui_gw: GatewayProcess, browser, keys: dict) -> None:
    with psycopg.connect(appliance.database_url, autocommit=True) as conn:
        tenant = api_keys.ensure_tenant(conn, "demo-bank", "Northbank (example pack)")
        short_lived = api_keys.create_key(conn, tenant, "user", label="ui test, revoked")
    page = new_page(browser, ui_gw)
    sign_in(page, short_lived)
    # The server cannot be reached: the typed message stays, a Retry appears.
    page.route("**/v1/chat/completions", lambda route: route.abort("connectionrefused"))
    page.get_by_label("Message").fill("Please keep this message")
    page.get_by_role("button", name="Send").click()
    page.get_by_test_id("retry").wait_for()
    assert page.get_by_label("Message").input_value() == "Please keep this message"
    assert "cannot be reached" in page.get_by_test_id("chat-status").inner_text()
    shot(page, "11-server-down")
    page.unroute("**/v1/chat/completions")
    # The key is revoked: the next call goes back to sign-in, saying why.
    with psycopg.connect(appliance.database_url, autocommit=True) as conn:
        conn.execute("UPDATE api_keys SET revoked_at = now() WHERE key_sha256 = %s", (api_keys.hash_key(short_lived),))
    time.sleep(11)                                # the gateway caches a key for up to 10 s
    page.get_by_test_id("retry").click()
    page.get_by_text("no longer valid").wait_for()
    assert page.get_by_label("API key").is_visible()
    shot(page, "12-key-expired")


def test_an_answer_shown_but_not_stored_stays_on_the_screen(ui_gw: GatewayProcess, browser, keys: dict) -> None:
    """The gateway ends a stream with a storage_unavailable event when the turn could not be kept, after the
    whole answer: the UI used to remove it and put the question back, inviting a second transfer."""
    page = new_page(browser, ui_gw)
    sign_in(page, keys["user"])
    body = ('data: {"choices": [{"index": 0, "delta": {"content": "Your transfer of 500 EUR was executed."}}]}\n\n'
            'data: {"error": {"code": "storage_unavailable", "message": "this reply could not be stored"}}\n\n'
            "data: [DONE]\n\n")
    page.route("**/v1/chat/completions", lambda route: route.fulfill(
        status=200, body=body, headers={"content-type": "text/event-stream", "x-session-id": "00000000-0000-0000-0000-"
                                                                                         "000000000000"}))
    page.get_by_label("Message").fill("Please pay 500 EUR to J. Smith")
    page.get_by_role("button", name="Send", exact=True).click()
    seen(page.get_by_text("shown but not saved"), page)
    assert "Your transfer of 500 EUR was executed." in page.get_by_test_id("msg-assistant").last.inner_text()
    assert page.get_by_test_id("msg-user").last.inner_text() == "Please pay 500 EUR to J. Smith"
    assert page.get_by_label("Message").input_value() == ""
    assert page.errors == []


def test_an_answer_can_be_stopped(ui_gw: GatewayProcess, browser, keys: dict) -> None:
    page = new_page(browser, ui_gw)
    sign_in(page, keys["user"])
    held: list = []
    page.route("**/v1/chat/completions", lambda route: held.append(route))   # an answer that takes its time
    page.get_by_label("Message").fill("Tell me everything about card fees")
    page.get_by_role("button", name="Send", exact=True).click()
    page.get_by_role("button", name="Stop").click()
    seen(page.get_by_text("Stopped."), page)
    assert page.get_by_role("button", name="Stop").is_hidden()
    assert page.get_by_label("Message").input_value() == ""
    assert page.errors == []


def test_a_conversation_opened_while_another_loads_shows_its_own_turns(ui_gw: GatewayProcess, browser,
                                                                       keys: dict) -> None:
    with httpx.Client(base_url=ui_gw.url, headers={"Authorization": f"Bearer {keys['user']}"}, trust_env=False,
                      timeout=120) as c:
        ids = {}
        for name in ("first", "second"):
            ids[name] = c.post("/v1/sessions", json={"title": f"the {name} conversation"}).json()["id"]
            r = c.post("/v1/chat/completions", headers={"X-Session-Id": ids[name]}, json={
                "model": "enclave", "messages": [{"role": "user", "content": f"hello from the {name} conversation"}]})
            assert r.status_code == 200, r.text
    page = new_page(browser, ui_gw)
    sign_in(page, keys["user"])
    # The first conversation's turns come back after the second was opened, but before the second's own.
    held: dict[str, object] = {}
    def hold_first(name: str):
        return lambda route: route.continue_() if name in held else held.__setitem__(name, route)

    for name in ids:
        page.route(f"**/v1/sessions/{ids[name]}", hold_first(name))
    page.get_by_text("the first conversation", exact=True).click()
    page.get_by_text("the second conversation", exact=True).click()
    for _ in range(100):
        if len(held) == 2:
            break
        page.wait_for_timeout(50)
    assert len(held) == 2, held
    held["first"].continue_()
    page.wait_for_timeout(500)
    held["second"].continue_()
    seen(page.get_by_text("hello from the second conversation"), page)
    page.wait_for_timeout(500)
    assert page.get_by_text("hello from the first conversation").count() == 0
    assert page.get_by_text("hello from the second conversation").count() == 1
    assert page.errors == []


def test_an_agent_takes_over_a_handed_off_chat(ui_gw: GatewayProcess, browser, keys: dict) -> None:
    customer = new_page(browser, ui_gw)
    sign_in(customer, keys["user"])
    customer.get_by_label("Message").fill("I want to speak to a human about my card please")
    customer.get_by_label("Message").press("Enter")
    customer.wait_for_function("() => document.querySelectorAll('[data-testid=msg-assistant]').length >= 1 && "
                               "!document.querySelector('[aria-busy=true]')")
    agent = new_page(browser, ui_gw)
    sign_in(agent, keys["agent"])
    agent.get_by_role("link", name="Hand-offs").click()
    row = agent.get_by_test_id("handoff-row").filter(has_text="about my card please").last   # the newest
    seen(row, agent)
    row.get_by_test_id("take-over").click()
    composer = agent.get_by_test_id("handoff-composer")
    seen(composer, agent)
    composer.get_by_label("Message to the customer").fill("Hello, I am from the card team. How can I help?")
    composer.get_by_test_id("send").click()
    shot(agent, "13-handoff-taken-over")
    seen(customer.get_by_text("I am from the card team", exact=False), customer, 30_000)   # via the poll
    assert customer.errors == [] and agent.errors == []


class FakeIdp:
    """The organisation's identity provider, on loopback: /authorize sends the browser straight back with a
    code (the person is "already signed in"), /token checks the PKCE verifier and returns a signed JWT."""

    def __init__(self, claims: dict) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = {"keys": [{**jwk, "kid": "ui1", "use": "sig", "alg": "RS256"}]}
        self.codes: dict[str, str] = {}        # code → the PKCE challenge it was issued for
        self.exchanged: list[dict] = []
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                q = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                code = secrets.token_urlsafe(16)
                idp.codes[code] = q["code_challenge"]
                self.send_response(302)
                self.send_header("Location", f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}")
                self.end_headers()

            def do_POST(self) -> None:
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()}
                idp.exchanged.append(form)
                challenge = base64.urlsafe_b64encode(hashlib.sha256(form["code_verifier"].encode()).digest()).rstrip(b"=")
                if idp.codes.pop(form.get("code", ""), None) != challenge.decode():
                    body, status = {"error": "invalid_grant"}, 400
                else:
                    now = int(time.time())
                    token = jwt.encode({"iss": "https://idp.bank.internal", "aud": "enclave", "iat": now,
                                        "exp": now + 300, **claims}, idp.key, algorithm="RS256", headers={"kid": "ui1"})
                    body, status = {"access_token": token, "token_type": "Bearer", "expires_in": 300}, 200
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_single_sign_on_by_redirect(appliance: Appliance, browser, keys: dict, tmp_path: Path) -> None:
    idp = FakeIdp({"sub": "alice", "tenant": "demo-bank", "roles": ["supervisor"]})
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(idp.jwks))
    gw = start_gateway(appliance, "ui-sso", oidc_jwks_file=str(jwks), oidc_issuer="https://idp.bank.internal",
                       oidc_audience="enclave", oidc_authorize_url=f"{idp.url}/authorize",
                       oidc_token_url=f"{idp.url}/token", oidc_client_id="enclave-ui")
    try:
        page = new_page(browser, gw)
        page.goto("/")
        page.get_by_role("button", name="Sign in with single sign-on").click()
        seen(page.get_by_role("navigation", name="Main"), page)
        assert "oidc:alice" in page.get_by_text("oidc:alice").inner_text()
        assert page.get_by_role("link", name="Review queue").is_visible()       # the token's roles
        assert "code=" not in page.url                                          # the code left the address bar
        assert idp.exchanged and idp.exchanged[0]["client_id"] == "enclave-ui"   # exchanged by the gateway, PKCE
        shot(page, "14-signed-in-by-sso")
        assert page.errors == []
    finally:
        idp.server.shutdown()
        gw.stop()
