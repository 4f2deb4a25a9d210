"""The one-box systemd units and their env file: systemd itself verifies the units, every ExecStart is a real
`enclave` command, and the env file is exactly what the Settings class generates (so it documents every
setting and cannot drift), in a form both systemd and the Settings class read back."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.cli import build_parser
from deploy.envfile import ENV_FILE, PRODUCTION_VALUES, render_env_file
from gateway.config import Settings

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"


def test_the_env_file_is_generated_from_settings_and_lists_every_setting() -> None:
    assert ENV_FILE.read_text() == render_env_file(), "regenerate it: enclave config env-file -o deploy/systemd/enclave.env"
    text = ENV_FILE.read_text()
    for name in Settings.model_fields:
        assert f"ENCLAVE_{name.upper()}=" in text, name


def parse_env_file(text: str) -> dict[str, str]:
    """What systemd's EnvironmentFile= yields for the lines that are set (single quotes stripped)."""
    env = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value[1:-1] if value[:1] == value[-1:] == "'" else value
    return env


def test_the_env_file_sets_the_production_choices_and_settings_accept_every_default(monkeypatch, tmp_path) -> None:
    env = parse_env_file(ENV_FILE.read_text())
    assert {k: env[k] for k in PRODUCTION_VALUES} == PRODUCTION_VALUES
    assert env["HF_HUB_OFFLINE"] == "1" and env["RAY_USAGE_STATS_ENABLED"] == "0"
    # Uncommenting every line as it stands must give valid settings equal to the defaults (as loaded: a
    # default such as gateway_workers=0 is resolved for this box when Settings load).
    for key in [k for k in os.environ if k.startswith("ENCLAVE_")]:
        monkeypatch.delenv(key)
    defaults = Settings()
    for line in ENV_FILE.read_text().splitlines():
        if line.startswith("#ENCLAVE_"):
            key, _, value = line[1:].partition("=")
            if value:
                monkeypatch.setenv(key, value[1:-1] if value.startswith("'") else value)
    loaded = Settings()
    for name in Settings.model_fields:
        if f"ENCLAVE_{name.upper()}" not in PRODUCTION_VALUES:
            assert getattr(loaded, name) == getattr(defaults, name), name


def unit_exec_commands(unit_dir: Path) -> dict[str, str]:
    """unit file name → its ExecStart line."""
    return {unit.name: line.removeprefix("ExecStart=") for unit in sorted(unit_dir.glob("*.service"))
            for line in unit.read_text().splitlines() if line.startswith("ExecStart=")}


def test_every_exec_start_is_an_enclave_command_the_cli_knows() -> None:
    commands = unit_exec_commands(UNITS)
    assert set(commands) == {"enclave-postgres.service", "enclave-serving.service", "enclave-gateway.service"}
    parser = build_parser()
    for unit, line in commands.items():
        argv = shlex.split(line)
        assert argv[0] == "/opt/enclave/venv/bin/enclave", unit     # where `enclave install` puts it
        args = parser.parse_args(argv[1:])
        assert args.func.__name__ == "cmd_service", unit
    assert "--production" in commands["enclave-gateway.service"]


def test_units_order_the_gateway_after_its_dependencies() -> None:
    gateway = (UNITS / "enclave-gateway.service").read_text()
    assert "After=enclave-postgres.service enclave-serving.service" in gateway
    for unit in ("enclave-postgres.service", "enclave-serving.service"):
        text = (UNITS / unit).read_text()
        assert "Type=notify" in text, unit             # ready means ready, not merely started
    for unit in UNITS.glob("*.service"):
        text = unit.read_text()
        assert "EnvironmentFile=/etc/enclave/enclave.env" in text and "User=enclave" in text
        assert "NoNewPrivileges=yes" in text and "ProtectSystem=strict" in text


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is needed")
def test_systemd_verifies_the_units(tmp_path: Path) -> None:
    """`systemd-analyze verify` on copies whose binary and env file point at this checkout."""
    enclave = Path(sys.executable).parent / "enclave"
    for unit in [*UNITS.glob("*.service"), *UNITS.glob("*.target")]:
        text = unit.read_text().replace("/opt/enclave/venv/bin/enclave", str(enclave))
        (tmp_path / unit.name).write_text(text.replace("/etc/enclave/enclave.env", str(ENV_FILE)))
    units = sorted(str(p) for p in tmp_path.iterdir())
    run = subprocess.run(["systemd-analyze", "verify", "--man=no", *units], capture_output=True, text=True, timeout=60)
    problems = [line for line in (run.stdout + run.stderr).splitlines() if "enclave" in line]
    assert run.returncode == 0 and not problems, run.stdout + run.stderr
