"""The documented environment file of a one-box install (deploy/systemd/enclave.env), generated from Settings.

Every setting is listed with its description and default, commented out, so the file *is* the reference
and cannot drift from the code: a unit test regenerates it and compares. The few values a production box
must change are set at the top.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from gateway.config import Settings

ENV_FILE = Path(__file__).resolve().parent / "systemd" / "enclave.env"

# Set (not commented) in the file: where a systemd install keeps things, and the production choices.
PRODUCTION_VALUES: dict[str, str] = {
    "ENCLAVE_VAR_DIR": "/var/lib/enclave",
    "ENCLAVE_MODELS_DIR": "/var/lib/enclave/models",
    "ENCLAVE_MODEL_PROFILE": "gpu",
    "ENCLAVE_VAULT_KEY_FILE": "/etc/enclave/vault.key",
    "ENCLAVE_EXAMPLE_BANK": "false",
}
# Not Enclave settings, but the offline guarantees every process of the box inherits.
OFFLINE_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
    "VLLM_NO_USAGE_STATS": "1", "RAY_USAGE_STATS_ENABLED": "0", "DO_NOT_TRACK": "1",
}
HEADER = """\
# Enclave — environment of a one-box install (systemd units in deploy/systemd/ read it as /etc/enclave/enclave.env).
# Generated from gateway/config.py by `enclave config env-file`; every setting is listed with its default.
# Lists and maps are JSON in single quotes (systemd keeps what is inside as it is). Uncomment a line to change it; the lines already set are the production choices.
"""


def _default_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | dict):   # in single quotes: systemd would strip the JSON's double quotes
        return "'" + json.dumps([v.model_dump(exclude_defaults=True) if hasattr(v, "model_dump") else v for v in value]
                                if isinstance(value, list) else value) + "'"
    return str(value)


def render_env_file() -> str:
    lines = [HEADER, "# -- no network: no hub, no telemetry (inherited by every process of the box)",
             *(f"{k}={v}" for k, v in OFFLINE_ENV.items()), "", "# -- every Enclave setting"]
    for name, field in Settings.model_fields.items():
        var = f"ENCLAVE_{name.upper()}"
        default = _default_text(field.get_default(call_default_factory=True))
        lines += textwrap.wrap(field.description or "", width=110, initial_indent="# ", subsequent_indent="# ")
        if var in PRODUCTION_VALUES:
            lines += [f"#   (default: {default or 'unset'}; set here for production)", f"{var}={PRODUCTION_VALUES[var]}"]
        else:
            lines.append(f"#{var}={default}")
    return "\n".join(lines) + "\n"


def write_env_file(path: Path = ENV_FILE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_env_file())
    return path
