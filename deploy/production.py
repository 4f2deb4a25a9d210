"""``enclave up --production``: refuse the defaults that are fine on a laptop and unsafe in a datacenter.

Development conveniences — an admin key written to a file, a vault key generated on the fly, the example
bank and its pack, a gateway reachable from the network without TLS (or with certificate files missing), a SIP trunk open to anyone without
digest auth — each become a named problem with what to do instead. Nothing starts until the list is empty.
"""

from __future__ import annotations

import ipaddress

from gateway.config import Settings


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def configuration_problems(settings: Settings) -> list[str]:
    """What is wrong before anything starts (no database needed)."""
    problems = []
    if settings.vault_key_path.is_file() and not (settings.vault_key or settings.vault_key_provider):
        from gateway.safety.vault import VaultKeyError, load_key_provider

        try:
            load_key_provider(None, settings.vault_key_path, None)
        except VaultKeyError as e:
            problems.append(f"the PII vault key is unusable: {e} (a key is base64 of 32 random bytes)")
    if not (settings.vault_key or settings.vault_key_provider or settings.vault_key_path.is_file()):
        problems.append("no PII vault key: set ENCLAVE_VAULT_KEY_FILE to a key you back up apart from the database "
                        "(or ENCLAVE_VAULT_KEY_PROVIDER); production never generates one on its own")
    if not _loopback(settings.gateway_host) and not settings.gateway_tls and not settings.tls_terminated_upstream:
        problems.append(f"the gateway would listen on {settings.gateway_host} without TLS: set ENCLAVE_TLS_CERT_FILE "
                        "and ENCLAVE_TLS_KEY_FILE, or keep ENCLAVE_GATEWAY_HOST on 127.0.0.1 behind the site's TLS "
                        "terminator (or, when a terminator in front really does TLS, ENCLAVE_TLS_TERMINATED_UPSTREAM=true)")
    for what, path in (("ENCLAVE_TLS_CERT_FILE", settings.tls_cert_file), ("ENCLAVE_TLS_KEY_FILE", settings.tls_key_file),
                       ("ENCLAVE_SIP_TLS_CERT_FILE", settings.sip_tls_cert_file),
                       ("ENCLAVE_SIP_TLS_KEY_FILE", settings.sip_tls_key_file)):
        if path is not None and not path.is_file():
            problems.append(f"{what} names {path}, which is not a readable file")
    if settings.sip_tls_port is not None and not (settings.sip_tls_cert_file or settings.tls_cert_file):
        problems.append("ENCLAVE_SIP_TLS_PORT is set without a certificate: set ENCLAVE_SIP_TLS_CERT_FILE and "
                        "ENCLAVE_SIP_TLS_KEY_FILE (or the gateway's ENCLAVE_TLS_CERT_FILE / ENCLAVE_TLS_KEY_FILE)")
    if settings.example_bank:
        problems.append("the example bank and its demo pack would start: set ENCLAVE_EXAMPLE_BANK=false")
    if settings.sip_port and not settings.sip_auth_users and any(
            ipaddress.ip_network(p, strict=False).prefixlen == 0 for p in settings.sip_trunk_peers):
        problems.append("SIP accepts calls from any address without digest auth: list the PBX/SBC addresses in "
                        "ENCLAVE_SIP_TRUNK_PEERS or set ENCLAVE_SIP_AUTH_USERS")
    return problems


def dev_key_problem(dev_key_active: bool) -> list[str]:
    """The development admin key (var/dev-api-key) must be gone: it is a file anyone on the box can read."""
    if not dev_key_active:
        return []
    return ["the development admin key (var/dev-api-key) is still active: revoke it (enclave keys revoke PREFIX), "
            "delete the file, and create named keys with enclave keys create"]
