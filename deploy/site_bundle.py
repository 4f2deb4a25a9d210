"""``enclave bundle``: everything an air-gapped site needs, in one archive built on a connected machine.

    BUNDLE.json                  manifest: version, target platform, profile, every file's sha256 and size
    install.py                   the stdlib-only installer (deploy/site_install.py)
    wheels/*.whl                 Enclave's wheel and exactly the dependency wheels it resolves to
    models/enclave-models-P.tar  the profile's models (models/bundle.py; sha256-checked on both ends)
    helm/enclave-V.tgz           the Helm chart, packaged
    systemd/                     the one-box units and the documented env file

The wheels come from ``--wheelhouse DIR`` (a site mirror, or a folder filled earlier) or are fetched with
``pip wheel`` (connected machine). Either way the bundle is proven complete before it is written: pip
resolves Enclave from the bundle's wheels alone (``--no-index``), and only the wheels of that resolution
go in. The wheels are for this machine's Python and platform — build the bundle on a machine like the target.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from deploy import site_install
from deploy.site_install import FORMAT, MANIFEST, this_platform
from models.store import sha256_file

REPO = Path(__file__).resolve().parent.parent
CHART_DIR = REPO / "helm" / "enclave"
SYSTEMD_DIR = REPO / "deploy" / "systemd"
EXTRAS = ("cpu", "gpu", "none")
CONSTRAINTS = {"cpu": REPO / "scripts" / "constraints-cpu.txt"}


class BundleBuildError(RuntimeError):
    pass


def _run(cmd: list[str], what: str, stream: bool = False) -> str:
    """Run a step; ``stream``: let its output (pip's download progress) reach the terminal as it comes."""
    if stream:
        proc = subprocess.run(cmd)
        if proc.returncode != 0:
            raise BundleBuildError(f"{what} failed (exit {proc.returncode}); its output is above")
        return ""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BundleBuildError(f"{what} failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout


def project_version() -> str:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def build_project_wheel(out: Path) -> Path:
    """Enclave's own wheel, built offline from a clean copy of the sources (no build/ left in the checkout)."""
    with tempfile.TemporaryDirectory(prefix="enclave-src-") as tmp:
        src = Path(tmp) / "enclave"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(REPO / name, src / name)
        for package in ("gateway", "serving", "models", "deploy"):
            shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
              "-w", str(out), str(src)], "building the enclave wheel")
    wheels = sorted(out.glob("enclave-*.whl"))
    if not wheels:
        raise BundleBuildError("building the enclave wheel produced no wheel")
    return wheels[-1]


def resolve_wheels(project_wheel: Path, extra: str, wheelhouse: Path, scratch: Path) -> list[dict]:
    """Resolve Enclave from ``project_wheel`` + ``wheelhouse`` only; the list of wheels it needs (name, version,
    file). A missing dependency fails here, on the connected machine, not at the site."""
    target = f"{project_wheel}[{extra}]" if extra != "none" else str(project_wheel)
    report_file = scratch / "resolution.json"
    _run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-index", "-q",
          "--find-links", str(wheelhouse), "--find-links", str(project_wheel.parent), "--only-binary", ":all:",
          "--report", str(report_file), target], "resolving Enclave from the wheels alone")
    items = json.loads(report_file.read_text())["install"]
    wheels = []
    for item in items:
        url = item["download_info"]["url"]
        if not url.startswith("file://"):
            raise BundleBuildError(f"{item['metadata']['name']} resolved to {url}, not a local wheel")
        path = Path(url2pathname(urlparse(url).path))   # percent-decoded: torch-2.13.0%2Bcpu… is torch-2.13.0+cpu…
        wheels.append({"name": item["metadata"]["name"], "version": item["metadata"]["version"], "path": path})
    return wheels


def fetch_wheels(extra: str, project_wheel: Path, wheelhouse: Path) -> None:
    """Connected machine: every dependency as a wheel (sdists are built into wheels here, once)."""
    target = f"{project_wheel}[{extra}]" if extra != "none" else str(project_wheel)
    cmd = [sys.executable, "-m", "pip", "wheel", "--progress-bar", "on", "-w", str(wheelhouse), target]
    if extra in CONSTRAINTS:
        cmd[4:4] = ["-c", str(CONSTRAINTS[extra])]
    _run(cmd, "fetching the dependency wheels (pip wheel; needs the network or a configured mirror)", stream=True)


def package_chart(out: Path) -> Path:
    """The chart as Helm packages it (helm-python-sdk, Helm's own code), else a plain .tgz of the folder."""
    out.mkdir(parents=True, exist_ok=True)
    try:
        import helm_python

        return Path(helm_python.package(str(CHART_DIR), destination=str(out)))
    except ImportError:
        import yaml

        version = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["version"]
        path = out / f"enclave-{version}.tgz"
        with tarfile.open(path, "w:gz") as tar:
            tar.add(CHART_DIR, arcname="enclave")
        return path


def build_bundle(output: Path, profile: str, extra: str, models_dir: Path, wheelhouse: Path | None = None,
                 say: Callable[[str], None] = print) -> dict:
    """Write the bundle to ``output``; returns its manifest."""
    from models.bundle import bundle_profile
    from models.catalog import load_catalog
    from models.store import ModelStore

    if extra not in EXTRAS:
        raise BundleBuildError(f"extra must be one of {', '.join(EXTRAS)}, got {extra!r}")
    if not (CHART_DIR / "Chart.yaml").is_file():
        raise BundleBuildError(f"no Helm chart at {CHART_DIR}")
    store = ModelStore(models_dir, load_catalog())
    if missing := store.missing_for_profile(profile):
        raise BundleBuildError(f"profile {profile!r} is not complete in {models_dir}: missing "
                               + ", ".join(e.id for e in missing.values()) + f"; run: enclave models fetch {profile}")
    with tempfile.TemporaryDirectory(prefix="enclave-bundle-") as tmp:
        stage = Path(tmp) / "stage"
        (stage / "wheels").mkdir(parents=True)
        say("1/4 building the enclave wheel")
        project_wheel = build_project_wheel(Path(tmp) / "project")
        if wheelhouse is None:
            wheelhouse = Path(tmp) / "wheelhouse"
            wheelhouse.mkdir()
            say("    fetching dependency wheels (pip wheel)")
            fetch_wheels(extra, project_wheel, wheelhouse)
        say(f"2/4 resolving enclave[{extra}] from the wheels alone")
        wheels = resolve_wheels(project_wheel, extra, wheelhouse, Path(tmp))
        for w in wheels:
            shutil.copy2(w["path"], stage / "wheels" / w["path"].name)
        say(f"    {len(wheels)} wheels, {sum(w['path'].stat().st_size for w in wheels) / 1e6:,.0f} MB")
        say(f"3/4 packing the {profile} models (sha256-checked)")
        models_archive = bundle_profile(store, profile, stage / "models" / f"enclave-models-{profile}.tar")
        say("4/4 packaging the Helm chart, systemd units and installer")
        chart = package_chart(stage / "helm")
        shutil.copytree(SYSTEMD_DIR, stage / "systemd")
        shutil.copy2(site_install.__file__, stage / "install.py")

        files = {str(p.relative_to(stage)): {"sha256": sha256_file(p), "size": p.stat().st_size}
                 for p in sorted(stage.rglob("*")) if p.is_file()}
        manifest = {"format": FORMAT, "version": project_version(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "target": this_platform(), "profile": profile, "extra": extra,
                    "models_archive": str(models_archive.relative_to(stage)), "chart": chart.name,
                    "wheels": [{"name": w["name"], "version": w["version"], "file": w["path"].name} for w in wheels],
                    "files": files}
        (Path(tmp) / MANIFEST).write_text(json.dumps(manifest, indent=2))
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = output.with_name(output.name + ".partial")
        with tarfile.open(partial, "w") as tar:
            tar.add(Path(tmp) / MANIFEST, arcname=MANIFEST)       # first: an installer reads it without scanning
            for name in files:
                tar.add(stage / name, arcname=name)
        partial.replace(output)
    say(f"bundle written: {output} ({output.stat().st_size / 1e6:,.0f} MB, {len(files)} files)")
    return manifest
