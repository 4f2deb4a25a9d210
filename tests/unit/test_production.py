"""`enclave up --production` refuses the laptop defaults, each with what to do instead."""

from __future__ import annotations

import base64
from pathlib import Path

from deploy.cli import main
from deploy.production import configuration_problems, dev_key_problem
from gateway.config import Settings


def safe(tmp_path: Path, **overrides) -> Settings:
    key = tmp_path / "vault.key"
    key.write_text(base64.b64encode(b"k" * 32).decode())
    return Settings(**{"var_dir": tmp_path, "vault_key_file": key, "gateway_host": "127.0.0.1", "example_bank": False,
                       **overrides})


def test_a_safe_configuration_has_no_problems(tmp_path: Path) -> None:
    assert configuration_problems(safe(tmp_path)) == []
    assert configuration_problems(safe(tmp_path, sip_port=5070, sip_trunk_peers=["10.0.0.10/32"])) == []
    assert dev_key_problem(False) == []


def test_each_unsafe_default_is_named_with_the_fix(tmp_path: Path) -> None:
    problems = configuration_problems(Settings(var_dir=tmp_path / "empty", gateway_host="0.0.0.0", example_bank=True,
                                               sip_port=5070, sip_trunk_peers=["0.0.0.0/0"]))
    text = "\n".join(problems)
    assert len(problems) == 4
    assert "ENCLAVE_VAULT_KEY_FILE" in text and "TLS" in text and "ENCLAVE_EXAMPLE_BANK=false" in text
    assert "ENCLAVE_SIP_TRUNK_PEERS" in text
    assert configuration_problems(safe(tmp_path, sip_port=5070, sip_trunk_peers=["0.0.0.0/0"],
                                       sip_auth_users={"pbx": "s3cret"})) == []   # open, but authenticated
    assert "enclave keys revoke" in dev_key_problem(True)[0]


def test_up_production_refuses_before_starting_anything(tmp_path: Path, monkeypatch, capfd) -> None:
    monkeypatch.setenv("ENCLAVE_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("ENCLAVE_GATEWAY_HOST", "0.0.0.0")
    assert main(["up", "--production"]) == 1
    captured = capfd.readouterr()
    out = captured.out + captured.err
    assert "refusing to start in production mode" in out and "vault key" in out
    assert not (tmp_path / "pg").exists() and not (tmp_path / "dev-api-key").exists()   # nothing was started


def test_tls_makes_a_network_address_acceptable_and_missing_files_are_named(tmp_path: Path) -> None:
    cert, key = tmp_path / "gw.crt", tmp_path / "gw.key"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    assert configuration_problems(safe(tmp_path, gateway_host="0.0.0.0", tls_cert_file=cert, tls_key_file=key)) == []
    assert configuration_problems(safe(tmp_path, gateway_host="0.0.0.0", tls_terminated_upstream=True)) == []
    problems = configuration_problems(safe(tmp_path, gateway_host="0.0.0.0", tls_cert_file=tmp_path / "gone.crt",
                                           tls_key_file=key))
    assert len(problems) == 1 and "gone.crt" in problems[0]
    problems = configuration_problems(safe(tmp_path, sip_port=5070, sip_tls_port=5071))
    assert len(problems) == 1 and "ENCLAVE_SIP_TLS_CERT_FILE" in problems[0]


def test_a_certificate_without_its_key_is_a_settings_error(tmp_path: Path) -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="ENCLAVE_TLS_KEY_FILE"):
        Settings(var_dir=tmp_path, tls_cert_file=tmp_path / "gw.crt")


def test_an_unreadable_vault_key_is_named(tmp_path: Path) -> None:
    settings = safe(tmp_path)
    settings.vault_key_path.write_bytes(bytes(range(200, 232)))     # raw bytes, not base64
    problems = configuration_problems(settings)
    assert len(problems) == 1 and "vault key is unusable" in problems[0] and "not base64" in problems[0]
