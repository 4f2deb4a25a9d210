"""The local model store: resolve a catalog entry to files on disk, and prove they are the right ones.

Layout: ``$ENCLAVE_MODELS_DIR/<model-id>/<files…>`` plus ``.enclave-manifest.json``, the sha256 of every
file as generated or fetched. Nothing here touches the network: production resolves models offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from models.catalog import Catalog, ModelEntry, load_catalog

MANIFEST = ".enclave-manifest.json"
DEFAULT_MODELS_DIR = Path("var/models")


def models_dir_from_env() -> Path:
    """ENCLAVE_MODELS_DIR, else ENCLAVE_VAR_DIR/models, else var/models: where the appliance itself looks
    (Settings.model_store_dir), so `enclave models …` and `enclave up` agree on one store."""
    if models := os.environ.get("ENCLAVE_MODELS_DIR"):
        return Path(models)
    if var := os.environ.get("ENCLAVE_VAR_DIR"):
        return Path(var) / "models"
    return DEFAULT_MODELS_DIR


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class ModelNotInStoreError(FileNotFoundError):
    """A model the profile needs is not in the store; the message says how to get it there."""

    def __init__(self, entry: ModelEntry, root: Path, missing: list[str]):
        how = (
            "run `enclave models build-tiny`"
            if entry.generated
            else "run `enclave models fetch PROFILE` on a connected machine, or carry in a bundle "
            "(`enclave models bundle PROFILE` there, then `enclave models unbundle FILE` here)"
        )
        super().__init__(
            f"model '{entry.id}' ({entry.role}) is not in the store at {root / entry.id}: "
            f"missing {', '.join(missing)}; {how}"
        )
        self.entry = entry
        self.missing = missing


@dataclass(frozen=True)
class FileCheck:
    """Outcome of checking one file. ``problem`` is None when the file is good."""

    model: str
    file: str
    problem: str | None
    sha256: str | None = None

    def __str__(self) -> str:
        return f"{self.model}/{self.file}: {self.problem or 'ok'}"


class ModelStore:
    def __init__(self, root: Path | None = None, catalog: Catalog | None = None):
        self.root = (root or models_dir_from_env()).resolve()
        self.catalog = catalog or load_catalog()

    def model_dir(self, model_id: str) -> Path:
        self.catalog.model(model_id)  # raises UnknownModelError for a typo
        return self.root / model_id

    def missing_files(self, model_id: str) -> list[str]:
        entry = self.catalog.model(model_id)
        d = self.root / model_id
        return [f for f in entry.files if not (d / f).is_file()]

    def resolve(self, model_id: str) -> Path:
        """The model's folder, if every file is present (cheap: no hashing)."""
        missing = self.missing_files(model_id)
        if missing:
            raise ModelNotInStoreError(self.catalog.model(model_id), self.root, missing)
        return self.root / model_id

    def missing_for_profile(self, profile: str) -> dict[str, ModelEntry]:
        """role -> entry for every role of ``profile`` whose model is not (completely) in the store."""
        return {
            role: entry
            for role, entry in self.catalog.models_for(profile).items()
            if self.missing_files(entry.id)
        }

    def manifest(self, model_id: str) -> dict:
        """The manifest written at build/fetch time ({} when absent or unreadable)."""
        try:
            body = json.loads((self.root / model_id / MANIFEST).read_text())
        except (OSError, ValueError):
            return {}
        return body if isinstance(body, dict) else {}

    def read_manifest(self, model_id: str) -> dict[str, str]:
        """file -> sha256 as recorded in the manifest."""
        files = self.manifest(model_id).get("files")
        return dict(files) if isinstance(files, dict) else {}

    def write_manifest(self, model_id: str, extra: dict | None = None) -> dict[str, str]:
        """Record the sha256 of every catalog file as it is now (after a build or a fetch)."""
        entry = self.catalog.model(model_id)
        d = self.resolve(model_id)
        files = {f: sha256_file(d / f) for f in entry.files}
        body = {"model": model_id, "source": entry.source, "files": files, "recorded_at": time.time()}
        body.update(extra or {})
        (d / MANIFEST).write_text(json.dumps(body, indent=2, sort_keys=True))
        return files

    def verify(self, model_id: str) -> list[FileCheck]:
        """Hash every file and compare with the catalog's pin, else the manifest's record."""
        entry = self.catalog.model(model_id)
        d = self.root / model_id
        recorded = self.read_manifest(model_id)
        checks: list[FileCheck] = []
        for fname, pinned in entry.files.items():
            path = d / fname
            if not path.is_file():
                checks.append(FileCheck(model_id, fname, "missing"))
                continue
            actual = sha256_file(path)
            expected = pinned or recorded.get(fname)
            if not expected:
                checks.append(FileCheck(model_id, fname, "no sha256 pinned or recorded", actual))
            elif actual != expected:
                source = "catalog" if pinned else "manifest"
                checks.append(
                    FileCheck(model_id, fname, f"sha256 mismatch: expected {expected} ({source}), got {actual}", actual)
                )
            else:
                checks.append(FileCheck(model_id, fname, None, actual))
        return checks

    def verify_profile(self, profile: str) -> list[FileCheck]:
        return [c for e in self.catalog.models_for(profile).values() for c in self.verify(e.id)]
