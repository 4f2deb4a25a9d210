"""Redaction into typed placeholders and their restoration in replies.

``<CARD_1>``, ``<EMAIL_2>``…: the same value gets the same placeholder for the whole session (recognised
by its keyed fingerprint, scoped to the session, without decrypting anything), so the model can still say
"I sent it to <EMAIL_1>" and the conversation stays coherent. What the user sees back follows the echo policy per type:
an echoable placeholder becomes the user's own value again, the others a mask (``•••• 4242``). Only the
session's owner gets values back: a colleague who writes into someone else's session (an agent, an admin
whose role lists the whole tenant's sessions) sees ``[email withheld]``; revealing is the auditor's audited
``/v1/vault/reveal``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.safety.pii import PiiDetector, PiiSpan
from gateway.safety.vault import SESSION_FINGERPRINT, Sealed, VaultCipher

PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*?)_(\d{1,4})>")
_PARTIAL = re.compile(r"<[A-Z0-9_]{0,40}$")
NEVER_ECHO_DEFAULT = frozenset({"CARD", "SSN"})


@dataclass
class VaultEntry:
    placeholder: str
    pii_type: str
    fingerprint: str | None            # None once the retention purge took it with the value
    nonce: bytes | None = None
    ciphertext: bytes | None = None
    value: str | None = None            # in memory only: known for this turn's new values, or once decrypted
    sealed: Sealed | None = None        # set for entries this turn created: to be stored with the turn


@dataclass
class SessionVault:
    """The placeholders of one session as this turn knows them: stored rows plus the ones it adds."""

    tenant_id: str
    session_id: str
    entries: dict[str, VaultEntry] = field(default_factory=dict)      # by placeholder
    by_fingerprint: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)              # detections this turn, by type
    tenant_fingerprints: bool = False   # holds rows stored before fingerprints were scoped to the session

    @classmethod
    def from_rows(cls, tenant_id: str, session_id: str, rows: Iterable[tuple]) -> SessionVault:
        vault = cls(tenant_id, session_id)
        for placeholder, pii_type, fingerprint, nonce, ciphertext in rows:
            vault._add(VaultEntry(placeholder, pii_type, fingerprint, nonce, ciphertext))
        return vault

    def _add(self, entry: VaultEntry) -> None:
        self.entries[entry.placeholder] = entry
        if entry.fingerprint:      # a purged entry has none: the value, seen again, gets a new number
            self.by_fingerprint[entry.fingerprint] = entry.placeholder
            if not entry.fingerprint.startswith(SESSION_FINGERPRINT):
                self.tenant_fingerprints = True

    def next_placeholder(self, pii_type: str) -> str:
        used = [int(m.group(2)) for p in self.entries if (m := PLACEHOLDER.fullmatch(p)) and m.group(1) == pii_type]
        return f"<{pii_type}_{max(used, default=0) + 1}>"

    @property
    def new_entries(self) -> list[VaultEntry]:
        return [e for e in self.entries.values() if e.sealed is not None]


def mask(pii_type: str, value: str) -> str:
    """What a never-echoed value looks like to its owner: enough to recognise it, not to use it."""
    digits = re.sub(r"\D", "", value)
    if pii_type == "CARD" and len(digits) >= 4:
        return f"•••• {digits[-4:]}"
    if pii_type == "SSN" and len(digits) >= 4:
        return f"***-**-{digits[-4:]}"
    if len(digits) >= 6:
        return f"…{digits[-2:]}"
    return f"[{pii_type.lower()} withheld]"


class Redactor:
    def __init__(self, detector: PiiDetector, cipher: VaultCipher, never_echo: Iterable[str] = NEVER_ECHO_DEFAULT) -> None:
        self.detector, self.cipher = detector, cipher
        self.never_echo = frozenset(never_echo)

    def redact(self, text: str, vault: SessionVault) -> str:
        """``text`` with every detected value replaced by its session placeholder (new ones are sealed)."""
        if not text:
            return text
        text = self._known_values(text, vault)
        spans = self.detector.detect(text)
        if not spans:
            return text
        out, last = [], 0
        for span in spans:
            out.append(text[last:span.start])
            out.append(self._placeholder(span, vault))
            last = span.end
        out.append(text[last:])
        return "".join(out)

    @staticmethod
    def _known_values(text: str, vault: SessionVault) -> str:
        """Values this turn holds in the clear (sealed from the user's words, or restored into the reply) back
        to their placeholders, before detection. Why: some values are found only from their context ("my name
        is …", "born on …"); the model's "Hello <PERSON_1>", restored for the owner, reads "Hello Ada Blorf",
        where detection alone finds nothing, and the stored reply would keep the name in the clear."""
        known = sorted(((e.value, e) for e in vault.entries.values() if e.value), key=lambda k: -len(k[0]))
        for value, entry in known:
            if value not in text:
                continue
            text, n = re.subn(rf"(?<!\w){re.escape(value)}(?!\w)", entry.placeholder, text)
            if n:
                vault.counts[entry.pii_type] = vault.counts.get(entry.pii_type, 0) + n
        return text

    def _placeholder(self, span: PiiSpan, vault: SessionVault) -> str:
        vault.counts[span.type] = vault.counts.get(span.type, 0) + 1
        tenant_fp = self.cipher.tenant_fingerprint(vault.tenant_id, span.type, span.canonical)
        fp = self.cipher.session_fingerprint(vault.session_id, tenant_fp)
        known = vault.by_fingerprint.get(fp)
        if known is None and vault.tenant_fingerprints:   # a row stored before session scoping
            known = vault.by_fingerprint.get(tenant_fp)
        if known is not None:
            return known
        placeholder = vault.next_placeholder(span.type)
        sealed = self.cipher.seal(span.value, vault.tenant_id, vault.session_id, placeholder)
        vault._add(VaultEntry(placeholder, span.type, fp, sealed.nonce, sealed.ciphertext, span.value, sealed))
        return placeholder

    def reconcile(self, vault: SessionVault, committed: SessionVault) -> dict[str, str]:
        """Renames for this turn's new placeholders that a concurrent turn of the same session made stale.

        Two turns that load the vault at once both number their first new e-mail ``<EMAIL_1>``; whichever
        stores second would find its placeholder naming the other's value. ``committed`` is the vault as
        committed now (``vault_repo.locked_session_vault``, read under the session's row lock): a value stored
        already keeps its placeholder, a number taken by another value is replaced by the next free one (and
        re-sealed, since the seal is bound to the placeholder). Returns ``{old: new}`` for the caller to apply
        to the turn's texts; the stored entries join the vault so later numbering avoids them too."""
        remap: dict[str, str] = {}
        for entry in vault.new_entries:
            stored_as = committed.by_fingerprint.get(entry.fingerprint)
            if stored_as == entry.placeholder:
                continue                                     # the same value under the same number: nothing to do
            if stored_as is not None:
                remap[entry.placeholder] = stored_as         # stored already, under another number
            elif entry.placeholder in committed.entries:
                remap[entry.placeholder] = ""                # the number is another value's: renumbered below
        if not remap:
            for entry in committed.entries.values():         # later numbering must avoid the stored ones too
                if entry.placeholder not in vault.entries:
                    vault._add(entry)
            return {}
        held = vault.entries                                 # keep the turn's own copies: they hold values
        vault.entries, vault.by_fingerprint, vault.tenant_fingerprints = {}, {}, False
        for placeholder, entry in committed.entries.items():
            own = held.get(placeholder)
            vault._add(own if own is not None and own.fingerprint == entry.fingerprint else entry)
        for placeholder, entry in held.items():
            if placeholder not in remap and placeholder not in vault.entries:
                vault._add(entry)
        mine = {e.placeholder: e for e in held.values() if e.sealed is not None}
        for old, new in list(remap.items()):
            entry = mine[old]
            if not new:
                new = remap[old] = vault.next_placeholder(entry.pii_type)
                sealed = self.cipher.seal(entry.value or "", vault.tenant_id, vault.session_id, new)
                vault._add(VaultEntry(new, entry.pii_type, entry.fingerprint, sealed.nonce, sealed.ciphertext,
                                      entry.value, sealed))
        return remap

    def value_of(self, entry: VaultEntry, vault: SessionVault) -> str | None:
        if entry.value is None and entry.ciphertext is not None and entry.nonce is not None:
            entry.value = self.cipher.open(entry.nonce, entry.ciphertext, vault.tenant_id, vault.session_id,
                                           entry.placeholder)
        return entry.value

    def render(self, placeholder: str, vault: SessionVault, reveal: bool = True) -> str:
        """What the reader sees for one placeholder in a reply: the owner (``reveal``) their value or its mask,
        anyone else only its type."""
        entry = vault.entries.get(placeholder)
        if entry is None:
            return placeholder       # not one of ours (the model invented it): leave it
        if not reveal:
            return f"[{entry.pii_type.lower()} withheld]"
        value = self.value_of(entry, vault)
        if value is None:
            return f"[{entry.pii_type.lower()} purged]"
        return mask(entry.pii_type, value) if entry.pii_type in self.never_echo else value

    def originals(self, text: str, vault: SessionVault) -> str:
        """Every placeholder back to its value, masks or not: only for work done in memory on the owner's
        behalf (entity extraction, a tool's arguments), never for anything shown, stored or logged."""
        if "<" not in text or not vault.entries:
            return text

        def value(m: re.Match) -> str:
            entry = vault.entries.get(m.group(0))
            return (self.value_of(entry, vault) or m.group(0)) if entry is not None else m.group(0)

        return PLACEHOLDER.sub(value, text)

    def restore(self, text: str, vault: SessionVault, reveal: bool = True) -> str:
        if "<" not in text or not vault.entries:
            return text
        return PLACEHOLDER.sub(lambda m: self.render(m.group(0), vault, reveal), text)


def split_partial_placeholder(text: str) -> tuple[str, str]:
    """``text`` cut before a tail that could still become a placeholder (``<CA`` of ``<CARD_1>``): the part
    that can be shown now, and the part to hold until the next piece of a stream."""
    cut = text.rfind("<")
    if cut != -1 and _PARTIAL.match(text, cut):
        return text[:cut], text[cut:]
    return text, ""


def rename_placeholders(text: str, remap: dict[str, str]) -> str:
    """Every placeholder in ``remap`` replaced at once (a swap of two numbers stays a swap)."""
    if not remap or "<" not in text:
        return text
    return PLACEHOLDER.sub(lambda m: remap.get(m.group(0), m.group(0)), text)


class StreamingRestorer:
    """Restores placeholders in a streamed reply. A placeholder may arrive split over chunks (``<CA`` +
    ``RD_1>``): a tail that could still become one is held back until it completes or cannot."""

    def __init__(self, redactor: Redactor, vault: SessionVault, reveal: bool = True) -> None:
        self.redactor, self.vault, self.reveal, self._held = redactor, vault, reveal, ""

    @property
    def active(self) -> bool:
        return bool(self.vault.entries)

    def feed(self, text: str) -> str:
        text, self._held = split_partial_placeholder(self._held + text)
        return self.redactor.restore(text, self.vault, self.reveal)

    def flush(self) -> str:
        text, self._held = self._held, ""
        return self.redactor.restore(text, self.vault, self.reveal)
