"""`enclave up --production` refuses the laptop defaults, each with what to do instead."""

from __future__ import annotations

from pathlib import Path

from deploy.cli import main
from deploy.production import configuration_problems, dev_key_problem
from gateway.config import Settings


def safe(tmp_path: Path, **overrides) -> Settings:
    key = tmp_path / "vault.key"
    key.write_bytes(b"k" * 32)
    return Settings(var_dir=tmp_path, vault_key_file=key, gateway_host="127.0.0.1", example_bank=False,
                    **overrides)


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
