"""Catalog parsing and the model store's offline resolve/verify logic (on small real files)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from models.bundle import BundleError, bundle_profile, unbundle
from models.catalog import (
    ROLE_HEALTH_PATHS,
    ROLE_ROUTES,
    ROLES,
    CatalogError,
    UnknownModelError,
    UnknownProfileError,
    load_catalog,
)
from models.store import ModelNotInStoreError, ModelStore

CATALOG = """
schema = 1
[profiles.p]
description = "test"
[profiles.p.roles.llm]
model = "l"
[profiles.p.roles.stt]
model = "s"
[profiles.p.roles.tts]
model = "t"
[profiles.p.roles.embed]
model = "e"
[models.l]
role = "llm"
licence = "x"
source = { kind = "generated", builder = "tiny-llm" }
files = { "w.bin" = "" }
[models.s]
role = "stt"
licence = "x"
source = { kind = "hub", repo = "org/stt", revision = "abc" }
files = { "model.bin" = "" }
[models.t]
role = "tts"
licence = "x"
source = { kind = "url", url = "https://example.invalid/t.zip" }
files = { "model.pth" = "" }
[models.e]
role = "embed"
licence = "x"
source = { kind = "pypi", package = "p", version = "1" }
# sha256 of b"embed"
files = { "e.bin" = "8a1eed22144c3f04485a69eea62bfd3fa1026de39dc252b77ba9b1f3f08b00ec" }
"""


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG)
    return ModelStore(tmp_path / "store", load_catalog(path))


def _put(store: ModelStore, model: str, name: str, data: bytes) -> None:
    (store.root / model).mkdir(parents=True, exist_ok=True)
    (store.root / model / name).write_bytes(data)


def test_shipped_catalog_is_consistent() -> None:
    cat = load_catalog()
    assert set(cat.profiles) == {"tiny", "cpu-small", "gpu"}
    for prof in cat.profiles.values():
        assert set(prof.roles) == set(ROLES)
    assert set(ROLE_ROUTES) == set(ROLE_HEALTH_PATHS) == set(ROLES)
    pinned = cat.model("minilm-l6").files["model.safetensors"]
    assert pinned.startswith("53aa5117") and pinned.endswith("28d9db")
    for entry in cat.models.values():
        if entry.source_kind == "hub":
            assert entry.source["revision"], entry.id


def test_unknown_names_are_clear(store: ModelStore) -> None:
    with pytest.raises(UnknownProfileError, match="unknown model profile 'nope' \\(known: p\\)"):
        store.catalog.profile("nope")
    with pytest.raises(UnknownModelError, match="unknown model 'zz'"):
        store.catalog.model("zz")


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s.replace('role = "tts"', 'role = "vision"'), "model 't' has unknown role 'vision'"),
    (lambda s: s.replace('model = "e"', 'model = "ghost"'), "role 'embed' names unknown model 'ghost'"),
    (lambda s: s.replace('model = "s"', 'model = "l"'), "puts llm model 'l' in role 'stt'"),
    (lambda s: s.replace("8a1eed", "zz"), "sha256 must be 64 hex digits"),
    (lambda s: s.replace('[profiles.p.roles.tts]\nmodel = "t"\n', ''), "profile 'p' has no model for tts"),
    (lambda s: s + "\n[[[", "catalog.toml"),
    # these were tracebacks (TypeError, KeyError) or accepted until something used them
    (lambda s: s.replace('revision = "abc"', 'rev = "abc"'), "model 's': a hub source needs revision"),
    (lambda s: s.replace('kind = "url", ', ''), "model 't' has unknown source kind None"),
    (lambda s: s.replace('[profiles.p.roles.llm]\nmodel = "l"\n', '[profiles.p.roles.llm]\nmodel = "l"\nmax_ongoing_request = 9\n'),
     "profile 'p' role 'llm': unknown field 'max_ongoing_request'"),
    (lambda s: s.replace('[profiles.p.roles.llm]\nmodel = "l"\n', '[profiles.p.roles.llm]\nmodel = "l"\nreplicas = "two"\n'),
     "replicas must be a non-negative int, got 'two'"),
])
def test_broken_catalog_names_the_problem(tmp_path: Path, mutate, message: str) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(mutate(CATALOG))
    with pytest.raises(CatalogError, match=message.replace("(", "\\(").replace(")", "\\)")):
        load_catalog(path)


def test_missing_model_says_how_to_get_it(store: ModelStore) -> None:
    with pytest.raises(ModelNotInStoreError, match="missing model.bin.*enclave models fetch"):
        store.resolve("s")
    with pytest.raises(ModelNotInStoreError, match="build-tiny"):
        store.resolve("l")
    assert set(store.missing_for_profile("p")) == {"llm", "stt", "tts", "embed"}


def test_sha_mismatch_names_the_file(store: ModelStore) -> None:
    _put(store, "e", "e.bin", b"embed")
    assert [c.problem for c in store.verify("e")] == [None]
    _put(store, "e", "e.bin", b"tampered")
    [check] = store.verify("e")
    assert check.file == "e.bin"
    assert "sha256 mismatch" in check.problem and "(catalog)" in check.problem
    assert "e/e.bin" in str(check)


def test_manifest_records_unpinned_files_and_catches_changes(store: ModelStore) -> None:
    _put(store, "s", "model.bin", b"weights")
    assert "no sha256 pinned or recorded" in store.verify("s")[0].problem
    store.write_manifest("s", {"resolved": "abc"})
    assert store.verify("s")[0].problem is None
    assert json.loads((store.root / "s" / ".enclave-manifest.json").read_text())["resolved"] == "abc"
    _put(store, "s", "model.bin", b"weightz")
    assert "(manifest)" in store.verify("s")[0].problem
    (store.root / "s" / "model.bin").unlink()
    assert store.verify("s")[0].problem == "missing"


def test_bundle_round_trip_and_tamper(store: ModelStore, tmp_path: Path) -> None:
    for model, name, data in (("l", "w.bin", b"l"), ("s", "model.bin", b"s"), ("t", "model.pth", b"t"), ("e", "e.bin", b"embed")):
        _put(store, model, name, data)
        store.write_manifest(model)
    archive = bundle_profile(store, "p", tmp_path / "b.tar")
    target = ModelStore(tmp_path / "airgap", store.catalog)
    assert unbundle(target, archive) == "p"
    assert not target.missing_for_profile("p")

    _put(store, "s", "model.bin", b"corrupt")
    with pytest.raises(BundleError, match="s/model.bin: sha256 mismatch"):
        bundle_profile(store, "p", tmp_path / "c.tar")
    (tmp_path / "junk.tar").write_bytes(b"not a tar")
    with pytest.raises(BundleError, match="cannot read bundle"):
        unbundle(target, tmp_path / "junk.tar")


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_a_bundle_that_does_not_verify_changes_nothing_and_cannot_skip_the_check(store: ModelStore,
                                                                                tmp_path: Path) -> None:
    """An index that named no models installed whatever files came along, and called them verified; a bundle
    that failed verification had already overwritten good models."""
    for model, name, data in (("l", "w.bin", b"l"), ("s", "model.bin", b"s"), ("t", "model.pth", b"t"), ("e", "e.bin", b"embed")):
        _put(store, model, name, data)
        store.write_manifest(model)
    archive = bundle_profile(store, "p", tmp_path / "b.tar")
    target = ModelStore(tmp_path / "airgap", store.catalog)
    unbundle(target, archive)
    good = (target.root / "s" / "model.bin").read_bytes()
    with tarfile.open(archive) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    tampered = _tar(tmp_path / "t.tar", {**members, "s/model.bin": b"tampered"})
    with pytest.raises(BundleError, match="does not verify"):
        unbundle(target, tampered)
    assert (target.root / "s" / "model.bin").read_bytes() == good          # the store was not changed
    empty_index = _tar(tmp_path / "e.tar", {"enclave-bundle.json": json.dumps({"profile": "p", "models": {}}).encode(),
                                            "s/model.bin": b"tampered"})
    with pytest.raises(BundleError, match="not profile p's"):
        unbundle(target, empty_index)
    extra = _tar(tmp_path / "x.tar", {**members, "s/../../evil.sh": b"#!"})
    with pytest.raises(BundleError, match="not the profile's model files"):
        unbundle(target, extra)
    assert all(c.problem is None for c in target.verify_profile("p"))   # still whole
