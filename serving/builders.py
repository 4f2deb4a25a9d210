"""Serve application builders for a Ray cluster that Enclave does not start itself (KubeRay's RayService).

A RayService's ``serveConfigV2`` names one application per role with ``import_path:
serving.builders:role_app`` and ``args: {role, profile, models_dir, pin_resource}``; Serve calls
``role_app(args)`` on the head and deploys what it returns — the same app ``enclave up`` builds
(serving/app.py). ``pin_resource`` (optional) is the custom resource the role's worker group advertises
(``role_llm`` …), so each role's replicas land on its own group.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from models.catalog import load_catalog
from models.store import ModelStore


class BuilderArgsError(ValueError):
    pass


def role_app(args: dict[str, Any]) -> Any:
    """The Serve application of one role of one profile, its model resolved (and verified) in the store."""
    from serving.app import build_role_apps

    role = args.get("role")
    profile = args.get("profile") or os.environ.get("ENCLAVE_MODEL_PROFILE")
    models_dir = args.get("models_dir") or os.environ.get("ENCLAVE_MODELS_DIR")
    if not (role and profile and models_dir):
        raise BuilderArgsError(f"serving.builders:role_app needs args role, profile and models_dir; got {args!r}")
    catalog = load_catalog()
    roles = catalog.profile(profile).roles
    if role not in roles:
        raise BuilderArgsError(f"profile {profile!r} has no role {role!r} (it has {', '.join(roles)})")
    for ra in build_role_apps(catalog, profile, ModelStore(Path(models_dir), catalog), roles=[role],
                              pin_resource=args.get("pin_resource")):
        return ra.app
    raise BuilderArgsError(f"no app built for role {role!r}")
