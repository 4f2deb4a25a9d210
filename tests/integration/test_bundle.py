"""The air-gapped path, end to end: `enclave bundle` (wheels from the wheelhouse `make install` filled, the
tiny profile, the packaged chart) → the bundle's own stdlib installer, run with no network at all (a nested
network namespace without even loopback when the system allows it) → an installed, verified Enclave.
A damaged bundle and a wheelhouse missing a dependency are refused with the culprit named."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.integration.conftest import REPO

pytestmark = pytest.mark.timeout(600)
WHEELHOUSE = REPO / "var" / "wheelhouse"


def models_dir() -> Path:
    return Path(os.environ.get("ENCLAVE_MODELS_DIR", REPO / "var" / "test-models")).resolve()


def no_network_prefix() -> list[str]:
    """`unshare -n`: a namespace with no interface up at all (not even loopback), if this system allows it."""
    unshare = shutil.which("unshare")
    for cmd in ([unshare, "-n"], [unshare, "-rn"]) if unshare else ():
        if subprocess.run([*cmd, "true"], capture_output=True).returncode == 0:
            return cmd
    return []


def bundle(out: Path, wheelhouse: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploy.cli", "bundle", "-o", str(out), "--profile", "tiny",
                           "--extra", "none", "--wheelhouse", str(wheelhouse), "--models-dir", str(models_dir())],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not any(WHEELHOUSE.glob("fastapi-*.whl")):
        pytest.fail(f"{WHEELHOUSE} has no wheels: run `make install` (it fills the wheelhouse this test bundles)")
    out = tmp_path_factory.mktemp("bundle") / "enclave-bundle.tar"
    made = bundle(out, WHEELHOUSE)
    assert made.returncode == 0, made.stdout + made.stderr
    return out


def test_bundle_installs_offline_and_verifies(built: Path, tmp_path: Path) -> None:
    with tarfile.open(built) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("BUNDLE.json"))
        tar.extract("install.py", tmp_path, filter="data")
    assert names[0] == "BUNDLE.json" and "install.py" in names
    assert set(manifest["files"]) == set(names) - {"BUNDLE.json"}
    assert manifest["profile"] == "tiny" and manifest["chart"].startswith("enclave-")
    assert any(w["name"] == "enclave" for w in manifest["wheels"]) and any(w["name"] == "fastapi" for w in manifest["wheels"])
    assert {"systemd/enclave-gateway.service", "systemd/enclave.env", f"helm/{manifest['chart']}"} <= set(names)

    prefix = tmp_path / "opt-enclave"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENCLAVE_", "PIP_"))}
    # The bare interpreter this suite runs on, not the project's venv: the site has no Enclave yet.
    base_python = getattr(sys, "_base_executable", sys.executable)
    done = subprocess.run([*no_network_prefix(), base_python, str(tmp_path / "install.py"), "--from", str(built),
                           "--prefix", str(prefix)], capture_output=True, text=True, timeout=400, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "installed and verified" in done.stdout
    report = json.loads((prefix / "install-report.json").read_text())
    assert report["packages"] == len(manifest["wheels"]) and report["profile"] == "tiny"
    assert "No broken requirements" in report["checks"]["pip check"]
    assert "UI, migrations and catalog present" in report["checks"]["imports"]

    # What was installed works on its own: its CLI verifies the models and knows the settings.
    enclave = prefix / "venv" / "bin" / "enclave"
    verify = subprocess.run([*no_network_prefix(), str(enclave), "models", "verify", "tiny", "--models-dir",
                             str(prefix / "models")], capture_output=True, text=True, timeout=120, env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    env_file = subprocess.run([str(enclave), "config", "env-file"], capture_output=True, text=True, timeout=60, env=env)
    assert "ENCLAVE_GATEWAY_PORT" in env_file.stdout
    chart = prefix / "share" / "enclave" / "helm" / manifest["chart"]
    assert chart.is_file() and (prefix / "share" / "enclave" / "systemd" / "enclave-gateway.service").is_file()

    # An upgrade installs the new bundle over the old prefix. Same version number, other code: pip called the
    # requirement "already satisfied" and kept the old code. Here the installed code is made "old" by hand.
    installed = next((prefix / "venv").glob("lib/python*/site-packages/gateway/__init__.py"))
    installed.write_text(installed.read_text() + "STALE = True  # an older build\n")
    again = subprocess.run([*no_network_prefix(), base_python, str(tmp_path / "install.py"), "--from", str(built),
                            "--prefix", str(prefix)], capture_output=True, text=True, timeout=400, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "STALE" not in installed.read_text()


def test_a_damaged_bundle_is_refused_before_anything_is_installed(built: Path, tmp_path: Path, capsys) -> None:
    damaged = tmp_path / "damaged.tar"
    with tarfile.open(built) as src, tarfile.open(damaged, "w") as dst:
        victim = next(m.name for m in src.getmembers() if m.name.startswith("wheels/numpy-"))
        for member in src.getmembers():
            data = src.extractfile(member) if member.isfile() else None
            if member.name == victim:
                raw = bytearray(data.read())
                raw[len(raw) // 2] ^= 0xFF
                member.size = len(raw)
                data = io.BytesIO(bytes(raw))
            dst.addfile(member, data)
    prefix = tmp_path / "site"
    from deploy.site_install import main as install_main

    assert install_main(["--from", str(damaged), "--prefix", str(prefix)]) == 2
    assert f"sha256 differs for: {victim}" in capsys.readouterr().err
    assert not (prefix / "venv").exists()         # refused before installing anything


def test_a_wheelhouse_missing_a_dependency_fails_the_build_naming_it(tmp_path: Path) -> None:
    partial = tmp_path / "wheelhouse"
    partial.mkdir()
    for wheel in WHEELHOUSE.glob("*.whl"):
        if not wheel.name.lower().startswith("pyjwt-"):
            os.symlink(wheel, partial / wheel.name)
    made = bundle(tmp_path / "b.tar", partial)
    assert made.returncode == 2
    assert "pyjwt" in (made.stdout + made.stderr).lower() and not (tmp_path / "b.tar").exists()
