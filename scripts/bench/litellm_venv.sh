#!/usr/bin/env bash
# A benchmark-only venv holding LiteLLM's proxy, so scripts/bench/gateway.py can compare against it.
# LiteLLM is never a project dependency: it lives in its own venv under var/ (git-ignored).
#   scripts/bench/litellm_venv.sh [DIR]      (default: var/bench/litellm-venv)
# Idempotent: does nothing when DIR/bin/litellm already exists.
set -euo pipefail

LITELLM_VERSION=1.106.10
DIR="${1:-var/bench/litellm-venv}"

if [ -x "$DIR/bin/litellm" ]; then
  echo "litellm venv already present: $DIR"
  exit 0
fi

mkdir -p "$(dirname "$DIR")"
python3 -m venv "$DIR"
PIP=("$DIR/bin/python" -m pip install --quiet)

if ! "${PIP[@]}" "litellm[proxy]==${LITELLM_VERSION}"; then
  # litellm 1.106.x declares certifi>=2026.10.19, which some indexes do not carry yet. certifi only
  # supplies a CA bundle (unused here: the proxy talks plain HTTP on loopback), so install litellm
  # without deps, then its [proxy] requirements with certifi left to whatever version resolves.
  echo "litellm_venv: plain install failed; retrying with certifi unpinned" >&2
  "${PIP[@]}" --no-deps "litellm==${LITELLM_VERSION}"
  reqs="$DIR/litellm-proxy-requirements.txt"
  "$DIR/bin/python" - >"$reqs" <<'PY'
import importlib.metadata as md

from pip._vendor.packaging.requirements import Requirement

for line in md.requires("litellm") or []:
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate({"extra": "proxy"}):
        continue
    if req.name.lower() != "certifi":
        req.marker = None
        print(req)
PY
  "${PIP[@]}" -r "$reqs" certifi
fi

LITELLM_LOCAL_MODEL_COST_MAP=True "$DIR/bin/litellm" --help >/dev/null
echo "litellm ${LITELLM_VERSION} installed in $DIR"
