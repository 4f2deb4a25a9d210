"""Install Enclave from a site bundle on a machine with no network at all, and verify what was installed.

This module uses the standard library only: `enclave bundle` copies it into the archive as ``install.py``,
so a bare air-gapped server runs it with its system Python before any Enclave package exists there:

    tar -xf enclave-bundle.tar install.py && python3 install.py --from enclave-bundle.tar --prefix /opt/enclave

``enclave install --from BUNDLE`` (an upgrade, with Enclave already there) runs the same code. Steps:
every file of the archive is checked against the bundle's sha256 manifest before anything is installed;
the wheels go into a new virtual environment with pip's ``--no-index`` (nothing can be fetched); the models
are unpacked into the store and verified; the Helm chart, systemd units and env file are copied under
``PREFIX/share/enclave``; then ``pip check``, the models' verified unpacking and an import of the gateway prove
the result, written to ``PREFIX/install-report.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from pathlib import Path

MANIFEST = "BUNDLE.json"
FORMAT = 1


# Run by the installed interpreter: the code imports, and the data files the wheel must carry are there.
PACKAGE_CHECK = """
import pathlib, gateway.app, deploy.cli, models.store, gateway, models
g = pathlib.Path(gateway.__file__).parent
missing = [str(p) for p in (g / "ui" / "index.html", g / "ui" / "js" / "app.js",
                            pathlib.Path(models.__file__).parent / "catalog.toml") if not p.is_file()]
if not list((g / "store" / "migrations").glob("*.sql")):
    missing.append("gateway/store/migrations/*.sql")
assert not missing, f"files missing from the installed package: {missing}"
print("gateway imports; UI, migrations and catalog present")
"""


class InstallError(RuntimeError):
    """The bundle cannot be installed here; the message says why and what to do."""


def sha256_file(path: Path) -> str:
    """models.store.sha256_file, again: this module runs where no Enclave package is installed yet."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def this_platform() -> dict[str, str]:
    """What the wheels of a bundle must match: CPython minor version and the platform tag."""
    return {"python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "platform": sysconfig.get_platform(), "machine": platform.machine()}


def _say(message: str) -> None:
    print(message, flush=True)


def read_manifest(archive: Path) -> dict:
    try:
        with tarfile.open(archive) as tar:
            member = tar.extractfile(MANIFEST)
            if member is None:
                raise KeyError(MANIFEST)
            manifest = json.load(member)
    except (tarfile.TarError, KeyError, OSError, ValueError) as e:
        raise InstallError(f"{archive}: not an Enclave bundle ({e})") from e
    if manifest.get("format") != FORMAT:
        raise InstallError(f"{archive}: bundle format {manifest.get('format')!r}, this installer reads {FORMAT}")
    return manifest


def check_platform(manifest: dict) -> None:
    want, have = manifest["target"], this_platform()
    if (want["python"], want["platform"]) != (have["python"], have["platform"]):
        raise InstallError(f"the bundle was built for Python {want['python']} on {want['platform']}; this machine has "
                           f"Python {have['python']} on {have['platform']}: build the bundle on a matching machine")


def extract_verified(archive: Path, manifest: dict, staging: Path) -> None:
    """Unpack into ``staging`` and prove every file is the one the manifest names — nothing missing, nothing added."""
    files: dict[str, dict] = manifest["files"]
    with tarfile.open(archive) as tar:
        names = {m.name for m in tar.getmembers() if m.isfile()} - {MANIFEST}
        if extra := names - set(files):
            raise InstallError(f"{archive}: files not in the manifest: {', '.join(sorted(extra)[:5])}")
        if missing := set(files) - names:
            raise InstallError(f"{archive}: files missing from the archive: {', '.join(sorted(missing)[:5])}")
        total, done, last = sum(f["size"] for f in files.values()), 0, 0.0
        for member in tar.getmembers():
            if member.name == MANIFEST or not member.isfile():
                continue
            _extract(tar, member, staging)
            done += member.size
            if time.monotonic() - last > 2 or done == total:
                _say(f"  unpacked {done / 1e6:,.0f} / {total / 1e6:,.0f} MB")
                last = time.monotonic()
    bad = [name for name, meta in files.items() if sha256_file(staging / name) != meta["sha256"]]
    if bad:
        raise InstallError("the bundle is damaged or was altered; sha256 differs for: " + ", ".join(sorted(bad)))
    _say(f"  verified {len(files)} files against the manifest (sha256)")


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> None:
    """Extract one regular file safely. Python ≥ 3.11.4 has tarfile's "data" filter; older ones (Debian 12
    ships 3.11.2) get the same rule by hand: a relative path that stays inside ``dest``, a plain file."""
    if hasattr(tarfile, "data_filter"):
        tar.extract(member, dest, filter="data")
        return
    target = (dest / member.name).resolve()
    if member.name.startswith("/") or ".." in Path(member.name).parts or not target.is_relative_to(dest.resolve()) \
            or not member.isfile():
        raise InstallError(f"unsafe path in the bundle: {member.name}")
    tar.extract(member, dest)


def _run(cmd: list[str], what: str, env: dict[str, str] | None = None, stream: bool = False) -> str:
    """Run a step; ``stream``: show its output as it comes (pip on a few GB of wheels takes minutes)."""
    if not stream:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise InstallError(f"{what} failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
        return proc.stdout
    lines: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            _say("    " + line.rstrip())
    if proc.returncode != 0:
        raise InstallError(f"{what} failed (exit {proc.returncode}):\n{''.join(lines)[-3000:]}")
    return "".join(lines)


def install(archive: Path, prefix: Path, models_dir: Path | None = None) -> dict:
    """Install the bundle under ``prefix``; returns the report (also written to PREFIX/install-report.json)."""
    archive, prefix = archive.resolve(), prefix.resolve()
    manifest = read_manifest(archive)
    check_platform(manifest)
    models_dir = (models_dir or prefix / "models").resolve()
    _say(f"Installing Enclave {manifest['version']} (profile {manifest['profile']}, extra {manifest['extra']}) "
         f"into {prefix}")
    prefix.mkdir(parents=True, exist_ok=True)
    offline_env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "HF_HUB_OFFLINE": "1",
                   "PIP_CONFIG_FILE": os.devnull}
    with tempfile.TemporaryDirectory(prefix="enclave-install-", dir=prefix) as tmp:
        staging = Path(tmp)
        _say("1/5 checking the archive")
        extract_verified(archive, manifest, staging)

        _say("2/5 installing the Python packages (no index: only the bundle's wheels)")
        venv = prefix / "venv"
        if not (venv / "bin" / "python").exists():
            _run([sys.executable, "-m", "venv", str(venv)], "creating the virtual environment")
        py = str(venv / "bin" / "python")
        requirement = f"enclave[{manifest['extra']}]=={manifest['version']}" if manifest["extra"] != "none" \
            else f"enclave=={manifest['version']}"
        _run([py, "-m", "pip", "install", "--no-index", "--find-links", str(staging / "wheels"),
              "--progress-bar", "off", requirement], "pip install", env=offline_env, stream=True)
        # Over an earlier install of the same version pip says "already satisfied" and keeps the old code
        # (migrations, UI): the bundle's own Enclave wheel goes in whatever is there.
        own = next(w["file"] for w in manifest["wheels"] if w["name"].lower() == "enclave")
        _run([py, "-m", "pip", "install", "--no-index", "--no-deps", "--force-reinstall", "--progress-bar", "off",
              str(staging / "wheels" / own)], "installing the bundle's Enclave wheel", env=offline_env)
        _say(f"  installed {requirement} and {len(manifest['wheels']) - 1} dependencies")

        _say("3/5 unpacking the models")
        enclave = str(venv / "bin" / "enclave")
        # unbundle verifies every file it wrote (sha256 against the model manifests): that is the models' check.
        unbundled = _run([enclave, "models", "unbundle", str(staging / manifest["models_archive"]),
                          "--models-dir", str(models_dir)], "unpacking the models", env=offline_env)

        _say("4/5 copying the Helm chart, systemd units and env file")
        share = prefix / "share" / "enclave"
        if share.exists():
            shutil.rmtree(share)
        for sub in ("helm", "systemd"):
            shutil.copytree(staging / sub, share / sub)

    _say("5/5 verifying the installation")
    checks = {
        "pip check": _run([py, "-m", "pip", "check"], "pip check", env=offline_env).strip(),
        "models": unbundled.strip().splitlines()[-1:],
        "imports": _run([py, "-c", PACKAGE_CHECK], "importing the gateway", env=offline_env).strip(),
    }
    installed = json.loads(_run([py, "-m", "pip", "list", "--format", "json"], "pip list", env=offline_env))
    expected = {w["name"].lower().replace("_", "-"): w["version"] for w in manifest["wheels"]}
    have = {p["name"].lower().replace("_", "-"): p["version"] for p in installed}
    wrong = {n: (v, have.get(n)) for n, v in expected.items() if have.get(n) != v}
    if wrong:
        raise InstallError("installed versions differ from the bundle's: "
                           + ", ".join(f"{n} {want}≠{got}" for n, (want, got) in sorted(wrong.items())))
    report = {"version": manifest["version"], "profile": manifest["profile"], "extra": manifest["extra"],
              "prefix": str(prefix), "models_dir": str(models_dir), "venv": str(venv),
              "packages": len(expected), "chart": manifest["chart"], "checks": checks,
              "bundle_created": manifest["created"], "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (prefix / "install-report.json").write_text(json.dumps(report, indent=2) + "\n")
    _say(f"Enclave {manifest['version']} installed and verified: {len(expected)} packages, profile "
         f"{manifest['profile']} in {models_dir}.\n"
         f"  command     {enclave}\n"
         f"  chart       {share / 'helm' / manifest['chart']}\n"
         f"  systemd     {share / 'systemd'} (copy the units to /etc/systemd/system, the env file to /etc/enclave)\n"
         f"  report      {prefix / 'install-report.json'}")
    if shutil.which("espeak-ng") is None:
        _say("  warning     espeak-ng is not installed: the VITS voices phonemise with it and it is the fallback\n"
             "              voice. Install it from the OS packages (apt install espeak-ng, dnf install espeak-ng).")
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="install.py", description="Install Enclave from a site bundle, offline.")
    p.add_argument("--from", dest="bundle", required=True, type=Path, help="the bundle archive (enclave bundle)")
    p.add_argument("--prefix", type=Path, default=Path("/opt/enclave"), help="where to install (default /opt/enclave)")
    p.add_argument("--models-dir", type=Path, help="the model store (default PREFIX/models)")
    args = p.parse_args(argv)
    try:
        install(args.bundle, args.prefix, args.models_dir)
    except InstallError as e:
        print(f"install: {e}", file=sys.stderr)
        return 2
    except OSError as e:   # not root for /opt, a prefix under a file, a full disk
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"install: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
