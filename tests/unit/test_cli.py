"""The `enclave` CLI: user mistakes are one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def enclave(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], cwd=REPO, capture_output=True,
                          text=True, env=full_env, timeout=120)


def test_unknown_profile(tmp_path: Path) -> None:
    r = enclave("models", "verify", "gold", "--models-dir", str(tmp_path))
    assert r.returncode == 2
    assert "unknown model profile 'gold' (known: cpu-small, gpu, tiny)" in r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_model(tmp_path: Path) -> None:
    r = enclave("models", "verify", "--model", "gpt-5", "--models-dir", str(tmp_path))
    assert r.returncode == 2 and "unknown model 'gpt-5'" in r.stderr


def test_verify_missing_files_names_them(tmp_path: Path) -> None:
    r = enclave("models", "verify", "cpu-small", "--models-dir", str(tmp_path))
    assert r.returncode == 1
    assert "qwen2.5-0.5b-instruct/model.safetensors: missing" in r.stderr


def test_fetch_refuses_offline(tmp_path: Path) -> None:
    r = enclave("models", "fetch", "cpu-small", "--models-dir", str(tmp_path), env={"ENCLAVE_OFFLINE": "1"})
    assert r.returncode == 2
    assert "refusing to fetch: ENCLAVE_OFFLINE=1" in r.stderr
    assert not any(tmp_path.iterdir())


def test_bundle_of_incomplete_profile_fails(tmp_path: Path) -> None:
    r = enclave("models", "bundle", "cpu-small", "--models-dir", str(tmp_path), "-o", str(tmp_path / "x.tar"))
    assert r.returncode == 2 and "cannot bundle" in r.stderr
    assert not (tmp_path / "x.tar").exists()


def test_unbundle_garbage(tmp_path: Path) -> None:
    (tmp_path / "g.tar").write_text("garbage")
    r = enclave("models", "unbundle", str(tmp_path / "g.tar"), "--models-dir", str(tmp_path / "store"))
    assert r.returncode == 2 and "cannot read bundle" in r.stderr


def test_no_subcommand_is_a_usage_error() -> None:
    r = enclave()
    assert r.returncode == 2 and "usage: enclave" in r.stderr


@pytest.mark.integration
def test_build_tiny_then_verify_then_corrupt(tmp_path: Path) -> None:
    store = tmp_path / "models"
    r = enclave("models", "build-tiny", "--models-dir", str(store))
    assert r.returncode == 0, r.stderr
    r = enclave("models", "verify", "tiny", "--models-dir", str(store))
    assert r.returncode == 0 and "23 of 23 files verified" in r.stdout
    with (store / "tiny-qwen2" / "model.safetensors").open("r+b") as f:
        f.seek(100)
        f.write(b"\xff\xfe")
    r = enclave("models", "verify", "tiny", "--models-dir", str(store))
    assert r.returncode == 1
    assert "tiny-qwen2/model.safetensors: sha256 mismatch" in r.stderr
    # Rebuilding repairs it.
    assert enclave("models", "build-tiny", "--force", "--models-dir", str(store)).returncode == 0
    assert enclave("models", "verify", "tiny", "--models-dir", str(store)).returncode == 0


def test_backup_tools_get_the_password_from_the_environment_not_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    from deploy.backup import _client_args
    monkeypatch.delenv("PGPASSWORD", raising=False)
    dbname, env = _client_args("postgresql://enclave:s3cret@db.bank.internal:5432/enclave?sslmode=verify-full")
    assert "s3cret" not in dbname and env["PGPASSWORD"] == "s3cret"
    assert "host=db.bank.internal" in dbname and "sslmode=verify-full" in dbname and "dbname=enclave" in dbname
    dbname, env = _client_args("postgresql://postgres:@/postgres?host=/var/lib/enclave/pg")
    assert "PGPASSWORD" not in env and "host=/var/lib/enclave/pg" in dbname


def test_a_path_mistake_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    r = enclave("config", "env-file", "-o", str(tmp_path))          # a directory, not a file
    assert r.returncode == 2 and "Is a directory" in r.stderr and str(tmp_path) in r.stderr
    assert "Traceback" not in r.stderr


def test_the_installer_names_a_prefix_it_cannot_create(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import io
    import json
    import tarfile

    from deploy.site_install import FORMAT, MANIFEST, this_platform
    from deploy.site_install import main as install_main

    (tmp_path / "file").write_text("x")
    bundle = tmp_path / "bundle.tar"
    data = json.dumps({"format": FORMAT, "target": this_platform(), "version": "0.0.0", "profile": "tiny",
                       "extra": "none"}).encode()
    with tarfile.open(bundle, "w") as tar:     # as far as the installer reads before it makes the prefix
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert install_main(["--from", str(bundle), "--prefix", str(tmp_path / "file" / "opt")]) == 2
    err = capsys.readouterr().err
    assert "Not a directory" in err and "Traceback" not in err


def test_the_model_commands_find_the_store_where_the_appliance_does(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "ENCLAVE_MODELS_DIR"}
    r = subprocess.run([sys.executable, "-m", "deploy.cli", "models", "list"], cwd=REPO, capture_output=True, text=True,
                       env={**env, "ENCLAVE_VAR_DIR": str(tmp_path / "site"), "COLUMNS": "300"}, timeout=120)
    assert r.returncode == 0, r.stderr
    assert str(tmp_path / "site" / "models") in r.stdout.replace("\n", "")
