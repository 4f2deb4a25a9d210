"""Pure logic of the trust layer: the audit chain and its verifier, the vault cipher and key loading,
placeholder restoration (streamed too), the echo policy, the rate limiter and the OIDC URL guard."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from gateway.auth import FailedAuthLimiter, KeyCache, RateLimiter, _TtlCache
from gateway.dialogue.actions import redact_json
from gateway.errors import RateLimited
from gateway.oidc import OidcConfigError, check_internal_url
from gateway.safety.pii import DEFAULT_PATTERNS, PiiDetector
from gateway.safety.redact import Redactor, SessionVault, StreamingRestorer, mask, rename_placeholders
from gateway.safety.vault import StaticKey, VaultCipher, VaultKeyError, load_key_provider, write_new_key
from gateway.store.api_keys import hash_key
from gateway.store.audit import GENESIS_HASH, AuditEvent, append_params, chain_hash, next_row, verify_rows

TENANT, SESSION = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
CARD = "4111 1111 1111 1111"


# -- audit chain ------------------------------------------------------------------------------------------

def chain(n: int) -> list[dict]:
    """n rows as the database would hold them, built by the same code the gateway appends with."""
    rows, seq, prev = [], 0, GENESIS_HASH
    for i in range(n):
        rows.append(next_row(seq, prev, AuditEvent("chat.turn", "enc_test", TENANT, SESSION, f"turn-{i}", "chat",
                                                   {"input": f"<CARD_1> #{i}"})))
        seq, prev = rows[-1]["seq"], rows[-1]["hash"]
    return rows


def test_the_entry_split_around_seq_is_the_canonical_entry() -> None:
    """What the database assembles (before || seq || after) equals the entry computed here, even when a
    value holds text that looks like the seq key."""
    event = AuditEvent("vault.reveal", 'actor "seq":0,', TENANT, SESSION, content={"reason": '"seq":0, tricky'})
    params = append_params(event)
    assembled = params["before"] + "41" + params["after"]
    assert json.loads(assembled)["seq"] == 41 and json.loads(assembled)["actor"] == 'actor "seq":0,'
    row = next_row(40, "a" * 64, event, ts=params["ts"])
    assert row["entry"] == assembled and row["hash"] == chain_hash("a" * 64, assembled)


def test_an_intact_chain_verifies() -> None:
    rows = chain(5)
    result = verify_rows(rows, head=(5, rows[-1]["hash"]))
    assert result.ok and result.checked == 5, result.describe()


@pytest.mark.parametrize("column,value", [
    ("content", json.dumps({"input": "changed"})),
    ("entry", None),  # filled in below: the hashed header edited
    ("hash", "f" * 64),
    ("prev_hash", "e" * 64),
    ("action", "key.create"),
    ("tenant_id", "33333333-3333-3333-3333-333333333333"),
    ("session_id", None),
    ("ts", datetime(2020, 1, 1, tzinfo=UTC)),
])
def test_changing_any_column_of_a_row_breaks_the_chain_at_that_row(column: str, value: object) -> None:
    rows = chain(6)
    if column == "entry":
        value = rows[3]["entry"].replace('"actor":"enc_test"', '"actor":"someone"')
    rows[3][column] = value
    result = verify_rows(rows, head=(6, rows[-1]["hash"]))
    assert not result.ok and result.broken_seq == 4 and result.checked == 3, result.describe()
    assert "seq 4" in result.describe()


def test_a_removed_row_and_a_cut_tail_are_named() -> None:
    rows = chain(6)
    gap = verify_rows(rows[:2] + rows[3:], head=(6, rows[-1]["hash"]))
    assert not gap.ok and gap.broken_seq == 4 and "missing" in gap.reason
    cut = verify_rows(rows[:4], head=(6, rows[-1]["hash"]))
    assert not cut.ok and cut.broken_seq == 5 and "removed from the end" in cut.reason


def test_a_purged_tombstone_still_verifies_but_content_dropped_without_a_purge_does_not() -> None:
    rows = chain(4)
    rows[1].update(content=None, purged_at=datetime.now(UTC))
    result = verify_rows(rows, head=(4, rows[-1]["hash"]))
    assert result.ok and result.tombstones == 1
    rows[2]["content"] = None
    assert verify_rows(rows).broken_seq == 3


# -- vault cipher and keys ---------------------------------------------------------------------------------

def cipher(byte: int = 7) -> VaultCipher:
    return VaultCipher(StaticKey(bytes([byte]) * 32))


def test_sealed_values_open_only_with_their_key_and_their_row() -> None:
    c = cipher()
    sealed = c.seal(CARD, TENANT, SESSION, "<CARD_1>")
    assert CARD.encode() not in sealed.ciphertext
    assert c.open(sealed.nonce, sealed.ciphertext, TENANT, SESSION, "<CARD_1>") == CARD
    with pytest.raises(InvalidTag):  # copied onto another placeholder, session or tenant: refused
        c.open(sealed.nonce, sealed.ciphertext, TENANT, SESSION, "<CARD_2>")
    with pytest.raises(InvalidTag):
        cipher(8).open(sealed.nonce, sealed.ciphertext, TENANT, SESSION, "<CARD_1>")


def test_fingerprints_are_keyed_and_session_scoped() -> None:
    other_session = "33333333-3333-3333-3333-333333333333"
    assert cipher().fingerprint(TENANT, SESSION, "CARD", "4111") == cipher().fingerprint(TENANT, SESSION, "CARD", "4111")
    assert cipher().fingerprint(TENANT, SESSION, "CARD", "4111") != cipher(8).fingerprint(TENANT, SESSION, "CARD", "4111")
    assert cipher().fingerprint(TENANT, SESSION, "CARD", "4111") != cipher().fingerprint(SESSION, SESSION, "CARD", "4111")
    # The same card in two sessions of one tenant: nothing in the table links them.
    assert cipher().fingerprint(TENANT, SESSION, "CARD", "4111") != cipher().fingerprint(TENANT, other_session, "CARD", "4111")


def test_rows_stored_with_a_tenant_wide_fingerprint_still_recognise_their_value(redactor: Redactor) -> None:
    """Rows written before fingerprints were scoped to the session carry the tenant-wide form: the value, seen
    again in that session, keeps its placeholder rather than getting a second one."""
    sealed = redactor.cipher.seal("ada@example.com", TENANT, SESSION, "<EMAIL_1>")
    legacy = redactor.cipher.tenant_fingerprint(TENANT, "EMAIL", "ada@example.com")
    vault = SessionVault.from_rows(TENANT, SESSION, [("<EMAIL_1>", "EMAIL", legacy, sealed.nonce, sealed.ciphertext)])
    assert vault.tenant_fingerprints
    assert redactor.redact("write to ada@example.com and bob@example.com", vault) == "write to <EMAIL_1> and <EMAIL_2>"
    assert [e.placeholder for e in vault.new_entries] == ["<EMAIL_2>"]
    assert vault.new_entries[0].fingerprint == redactor.cipher.fingerprint(TENANT, SESSION, "EMAIL", "bob@example.com")


def test_key_loading_refuses_missing_and_malformed_keys(tmp_path) -> None:
    with pytest.raises(VaultKeyError, match="no vault key"):
        load_key_provider(None, tmp_path / "absent.key", None)
    with pytest.raises(VaultKeyError, match="32 bytes"):
        load_key_provider(base64.b64encode(b"short").decode(), None, None)
    with pytest.raises(VaultKeyError, match="not base64"):
        load_key_provider("not base64 !!", None, None)
    with pytest.raises(VaultKeyError, match="cannot load"):
        load_key_provider(None, None, "no_such_module:factory")
    path = write_new_key(tmp_path / "vault.key")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert len(load_key_provider(None, path, None).data_key()) == 32
    with pytest.raises(FileExistsError):  # never overwritten: losing the key loses the vault
        write_new_key(path)


# -- redaction, restoration and the echo policy ------------------------------------------------------------

@pytest.fixture()
def redactor() -> Redactor:
    return Redactor(PiiDetector(DEFAULT_PATTERNS), cipher(), never_echo={"CARD", "SSN"})


def test_the_same_value_keeps_its_placeholder_within_a_session(redactor: Redactor) -> None:
    vault = SessionVault(TENANT, SESSION)
    first = redactor.redact(f"my card is {CARD} and my mail is ada@example.com", vault)
    second = redactor.redact("card 4111-1111-1111-1111 again, mail ada@example.com", vault)
    assert first == "my card is <CARD_1> and my mail is <EMAIL_1>"
    assert second == "card <CARD_1> again, mail <EMAIL_1>"
    assert len(vault.new_entries) == 2
    other = SessionVault(TENANT, "33333333-3333-3333-3333-333333333333")
    assert redactor.redact("bob@example.com then ada@example.com", other) == "<EMAIL_1> then <EMAIL_2>"


def as_stored(vault: SessionVault) -> SessionVault:
    """The vault's new entries as they read back from the pii_vault table."""
    return SessionVault.from_rows(vault.tenant_id, vault.session_id, [
        (e.placeholder, e.pii_type, e.fingerprint, e.nonce, e.ciphertext) for e in vault.new_entries])


def test_a_concurrent_turns_placeholders_are_reconciled_with_what_was_stored(redactor: Redactor) -> None:
    first = SessionVault(TENANT, SESSION)       # two turns that loaded the (empty) vault at the same time
    second = SessionVault(TENANT, SESSION)
    assert redactor.redact("write to ada@example.com", first) == "write to <EMAIL_1>"
    text = redactor.redact("bob@example.com, cc ada@example.com and eve@example.com", second)
    assert text == "<EMAIL_1>, cc <EMAIL_2> and <EMAIL_3>"
    remap = redactor.reconcile(second, as_stored(first))   # the first turn was stored first
    # ada takes the stored number; bob's number was ada's, so he gets the next free one. Renamed in one pass:
    # one after the other, bob's <EMAIL_1> → <EMAIL_4> and ada's <EMAIL_2> → <EMAIL_1> would depend on order.
    assert remap == {"<EMAIL_1>": "<EMAIL_4>", "<EMAIL_2>": "<EMAIL_1>"}
    assert rename_placeholders(text, remap) == "<EMAIL_4>, cc <EMAIL_1> and <EMAIL_3>"
    assert {e.placeholder for e in second.new_entries} == {"<EMAIL_3>", "<EMAIL_4>"}   # ada's is not stored twice
    assert redactor.restore("<EMAIL_4> <EMAIL_3>", second) == "bob@example.com eve@example.com"
    bob = second.entries["<EMAIL_4>"]   # re-sealed: the seal is bound to the placeholder
    assert redactor.cipher.open(bob.nonce, bob.ciphertext, TENANT, SESSION, "<EMAIL_4>") == "bob@example.com"
    assert redactor.redact("ada@example.com", second) == "<EMAIL_1>"   # later numbering knows the stored ones
    assert redactor.redact("zoe@example.com", second) == "<EMAIL_5>"
    alone = SessionVault(TENANT, SESSION)
    redactor.redact("mail ada@example.com", alone)
    assert redactor.reconcile(alone, as_stored(first)) == {}    # the same value under the same number


def test_restoration_follows_the_echo_policy(redactor: Redactor) -> None:
    vault = SessionVault(TENANT, SESSION)
    redactor.redact(f"card {CARD}, mail ada@example.com", vault)
    reply = "I have blocked <CARD_1> and will write to <EMAIL_1>; <CARD_9> is not ours."
    assert redactor.restore(reply, vault) == "I have blocked •••• 1111 and will write to ada@example.com; <CARD_9> is not ours."
    # Entries loaded from the database are decrypted on demand.
    stored = SessionVault.from_rows(TENANT, SESSION, [(e.placeholder, e.pii_type, e.fingerprint, e.nonce, e.ciphertext)
                                                       for e in vault.entries.values()])
    assert redactor.restore("to <EMAIL_1>", stored) == "to ada@example.com"
    assert mask("SSN", "123-45-6789") == "***-**-6789"


def test_streamed_restoration_holds_a_placeholder_split_over_chunks(redactor: Redactor) -> None:
    vault = SessionVault(TENANT, SESSION)
    redactor.redact("mail ada@example.com", vault)
    restorer = StreamingRestorer(redactor, vault)
    chunks = ["Writing to <EM", "AIL", "_1>", " now. a < b", " and <", "not a tag"]
    out = "".join(restorer.feed(c) for c in chunks) + restorer.flush()
    assert out == "Writing to ada@example.com now. a < b and <not a tag"


def test_a_value_found_only_from_its_context_is_redacted_again_after_restoration(redactor: Redactor) -> None:
    """"my name is …" finds the name; the model's "Hello <PERSON_1>", restored for the owner, has no such cue.
    Redacting that reply for storage must still give the placeholder, not the name in the clear."""
    vault = SessionVault(TENANT, SESSION)
    said = redactor.redact("My name is Zyxqo Blorf, born on 12/03/1980, account 12345678", vault)
    assert said == "My name is <PERSON_1>, born on <DOB_1>, account <ACCOUNT_1>"
    stored = SessionVault.from_rows(TENANT, SESSION, [(e.placeholder, e.pii_type, e.fingerprint, e.nonce, e.ciphertext)
                                                       for e in vault.entries.values()])
    shown = redactor.restore("Hello <PERSON_1>, noted <DOB_1> for account <ACCOUNT_1>.", stored)
    assert shown == "Hello Zyxqo Blorf, noted 12/03/1980 for account 12345678."
    assert redactor.redact(shown, stored) == "Hello <PERSON_1>, noted <DOB_1> for account <ACCOUNT_1>."
    assert redact_json({"name": "Zyxqo Blorf", "account": "12345678"}, redactor, stored) == \
        {"name": "<PERSON_1>", "account": "<ACCOUNT_1>"}     # dialogue slots and action arguments too
    assert redactor.redact("account 123456789", stored) != "account <ACCOUNT_1>9"   # whole values only
    # object keys too, at any depth: a client's session metadata keyed by an address kept it in clear
    assert redact_json({"jane.doe@example.com": "vip", "x": {"12345678": [1]}}, redactor, stored) == \
        {"<EMAIL_1>": "vip", "x": {"<ACCOUNT_1>": [1]}}


def test_only_the_owner_gets_values_back(redactor: Redactor) -> None:
    vault = SessionVault(TENANT, SESSION)
    redactor.redact(f"card {CARD}, mail ada@example.com", vault)
    reply = "I have blocked <CARD_1> and will write to <EMAIL_1>; <CARD_9> is not ours."
    assert redactor.restore(reply, vault, reveal=False) == \
        "I have blocked [card withheld] and will write to [email withheld]; <CARD_9> is not ours."
    restorer = StreamingRestorer(redactor, vault, reveal=False)
    assert "".join(restorer.feed(c) for c in ["to <EM", "AIL_1>", "."]) + restorer.flush() == "to [email withheld]."


# -- rate limit and OIDC URL guard ------------------------------------------------------------------------

def test_rate_limit_is_a_token_bucket_per_key() -> None:
    now = [0.0]
    limiter = RateLimiter(default_per_min=600, clock=lambda: now[0])
    for _ in range(3):
        limiter.check("enc_a", 3)
    with pytest.raises(RateLimited) as refused:
        limiter.check("enc_a", 3)
    assert refused.value.status == 429 and 0 < refused.value.retry_after_s <= 20
    limiter.check("enc_b", 3)      # another key is not affected
    now[0] = 20.0                  # 3 a minute: one more after 20 s
    limiter.check("enc_a", 3)
    with pytest.raises(RateLimited):
        limiter.check("enc_a", 3)


def test_unknown_keys_from_one_address_are_refused_before_any_lookup() -> None:
    now = [0.0]
    limiter = FailedAuthLimiter(per_min=3, clock=lambda: now[0])
    limiter.refuse_if_over("10.0.0.9")           # nothing counted yet
    for _ in range(3):
        limiter.count("10.0.0.9")
    with pytest.raises(RateLimited) as refused:
        limiter.refuse_if_over("10.0.0.9")
    assert refused.value.code == "too_many_failed_attempts" and 0 < refused.value.retry_after_s <= 20
    limiter.refuse_if_over("10.0.0.10")          # another address is not affected
    now[0] = 20.0
    limiter.refuse_if_over("10.0.0.9")


def test_a_flood_of_made_up_keys_does_not_push_a_key_in_use_out_of_the_cache() -> None:
    cache = _TtlCache(60)
    cache.put("real", "identity")
    for i in range(20_000):
        cache.put(f"made-up-{i}", None)
        if i % 1000 == 0:
            assert cache.get("real") == (True, "identity")   # in use: kept
    assert cache.get("real") == (True, "identity") and len(cache._entries) <= 10_001


def test_a_lookup_that_raced_a_revocation_is_not_cached() -> None:
    """A lookup that read the key before the revocation committed must not cache it after forget() ran:
    the key would work on for the cache's lifetime, though the revocation said 'at once'."""
    read, release = asyncio.Event(), asyncio.Event()

    class Conn:
        async def execute(self, *_a):
            read.set()
            await release.wait()
            return self

        async def fetchone(self):
            return ("t1", "admin", "enc_revoked", None, None, None)

    class Pool:
        @contextlib.asynccontextmanager
        async def connection(self):
            yield Conn()

    async def scenario() -> tuple:
        cache = KeyCache()
        lookup = asyncio.create_task(cache.resolve(Pool(), "enc_revoked_" + "x" * 32))
        await read.wait()
        cache.forget("enc_revoked")           # the admin's revocation lands while the lookup runs
        release.set()
        first = await lookup
        return first, cache._keys.get(hash_key("enc_revoked_" + "x" * 32))

    first, cached = asyncio.run(scenario())
    assert first is not None and cached == (False, None)


def test_oidc_needs_its_issuer_and_audience(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from gateway.config import Settings
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    with pytest.raises(ValidationError, match="ENCLAVE_OIDC_ISSUER and ENCLAVE_OIDC_AUDIENCE"):
        Settings(oidc_jwks_file=jwks, oidc_audience="enclave")
    assert Settings(oidc_jwks_file=jwks, oidc_issuer="https://idp.bank.internal", oidc_audience="enclave")


@pytest.mark.parametrize("url,ok", [
    ("http://127.0.0.1:8080/jwks.json", True), ("https://10.1.2.3/keys", True), ("http://[::1]/jwks", True),
    ("https://8.8.8.8/jwks", False), ("ftp://10.0.0.1/jwks", False), ("jwks.json", False),
])
def test_jwks_urls_must_stay_on_the_premises(url: str, ok: bool) -> None:
    if ok:
        check_internal_url(url)
    else:
        with pytest.raises(OidcConfigError):
            check_internal_url(url)
