"""Carry a profile's models into an air-gapped site: one tar archive out, verified on the way in."""

from __future__ import annotations

import json
import shutil
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
    """Extract a bundle into the store and verify it; returns the profile it carries.

    Everything lands in a staging folder first and is verified there; only then does each model replace its
    folder in the store (a bundle that does not verify leaves the store as it was). The bundle must carry
    exactly its profile's models as the catalog names them, and only their catalog files and manifests: an
    index that named no models installed whatever files came along, and called them verified."""
    try:
        with tarfile.open(archive) as tar:
            try:
                index_member = tar.extractfile(BUNDLE_INDEX)
            except KeyError:
                index_member = None
            if index_member is None:
                raise BundleError(f"{archive}: not an Enclave bundle (no {BUNDLE_INDEX})")
            index = json.load(index_member)
            profile = str(index.get("profile"))
            expected = {role: e.id for role, e in store.catalog.models_for(profile).items()}
            if index.get("models") != expected:
                raise BundleError(f"{archive}: the bundle's models {index.get('models')} are not profile "
                                  f"{profile}'s in this catalog ({expected})")
            allowed = {f"{e.id}/{f}" for e in store.catalog.models_for(profile).values() for f in [*e.files, MANIFEST]}
            members = [m for m in tar.getmembers() if m.name != BUNDLE_INDEX and not m.isdir()]
            if bad := [m.name for m in members if m.name not in allowed or not m.isfile()]:
                raise BundleError(f"{archive}: entries that are not the profile's model files: {', '.join(bad[:5])}")
            store.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".unbundle-", dir=store.root))
            try:
                for m in members:                    # names checked above: plain files at <id>/<catalog file>
                    target = staging / m.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(m)
                    assert source is not None
                    with target.open("wb") as out:
                        shutil.copyfileobj(source, out)
                staged = ModelStore(staging, store.catalog)
                bad_files = [c for mid in expected.values() for c in staged.verify(mid) if c.problem]
                if bad_files:
                    raise BundleError("the bundle does not verify (the store was not changed):\n  "
                                      + "\n  ".join(map(str, bad_files)))
                for mid in set(expected.values()):
                    _replace_dir(staging / mid, store.root / mid)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except (tarfile.TarError, OSError, ValueError) as e:
        raise BundleError(f"{archive}: cannot read bundle: {e}") from e
    return profile


def _replace_dir(new: Path, current: Path) -> None:
    """``current`` becomes ``new``; the old folder is kept aside until the new one is in place."""
    old = current.with_name(current.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if current.exists():
        current.rename(old)
    new.rename(current)
    shutil.rmtree(old, ignore_errors=True)
