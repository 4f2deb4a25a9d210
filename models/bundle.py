"""Carry a profile's models into an air-gapped site: one tar archive out, verified on the way in."""

from __future__ import annotations

import json
import tarfile
import tempfile
from pathlib import Path

from models.store import MANIFEST, ModelStore


class BundleError(RuntimeError):
    pass


BUNDLE_INDEX = "enclave-bundle.json"


def bundle_profile(store: ModelStore, profile: str, out: Path) -> Path:
    """Verify every model of ``profile`` and pack them (with their manifests) into ``out``."""
    entries = store.catalog.models_for(profile)
    bad = [c for e in entries.values() for c in store.verify(e.id) if c.problem]
    if bad:
        raise BundleError("cannot bundle, the store has problems:\n  " + "\n  ".join(map(str, bad)))
    out.parent.mkdir(parents=True, exist_ok=True)
    index = {"profile": profile, "models": {role: e.id for role, e in entries.items()}}
    with tarfile.open(out, "w") as tar:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(index, f, indent=2)
        tar.add(f.name, arcname=BUNDLE_INDEX)
        Path(f.name).unlink()
        for entry in entries.values():
            d = store.root / entry.id
            for fname in [*entry.files, MANIFEST]:
                tar.add(d / fname, arcname=f"{entry.id}/{fname}")
    return out


def unbundle(store: ModelStore, archive: Path) -> str:
    """Extract a bundle into the store and verify it; returns the profile it carries."""
    try:
        with tarfile.open(archive) as tar:
            index_member = tar.extractfile(BUNDLE_INDEX)
            if index_member is None:
                raise BundleError(f"{archive}: not an Enclave bundle (no {BUNDLE_INDEX})")
            index = json.load(index_member)
            store.root.mkdir(parents=True, exist_ok=True)
            members = [m for m in tar.getmembers() if m.name != BUNDLE_INDEX]
            if hasattr(tarfile, "data_filter"):
                tar.extractall(store.root, members=members, filter="data")
            else:   # Python < 3.11.4 (Debian 12's 3.11.2): the "data" filter's rule by hand
                root = store.root.resolve()
                if bad := [m.name for m in members if not (m.isfile() or m.isdir())
                           or not (root / m.name).resolve().is_relative_to(root)]:
                    raise BundleError(f"{archive}: unsafe entries: {', '.join(bad[:5])}")
                tar.extractall(store.root, members=members)
    except (tarfile.TarError, KeyError, OSError, ValueError) as e:
        raise BundleError(f"{archive}: cannot read bundle: {e}") from e
    bad = [c for mid in index["models"].values() for c in store.verify(mid) if c.problem]
    if bad:
        raise BundleError("bundle extracted but does not verify:\n  " + "\n  ".join(map(str, bad)))
    return str(index["profile"])
