#!/usr/bin/env bash
# Run a command inside a fresh network namespace where only loopback is up, so any hidden download
# or telemetry call fails instead of quietly succeeding. Needs root (or unprivileged user namespaces).
#   scripts/offline.sh CMD [ARGS…]
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: scripts/offline.sh CMD [ARGS...]" >&2; exit 2; }

inner='ip link set lo up && exec "$@"'
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  exec unshare -n -- bash -c "$inner" offline "$@"
elif unshare -rn true 2>/dev/null; then
  exec unshare -rn -- bash -c "$inner" offline "$@"
elif [ "${ENCLAVE_ALLOW_NETWORK_TESTS:-0}" = 1 ]; then
  echo "offline.sh: cannot create a network namespace; running WITH network (ENCLAVE_ALLOW_NETWORK_TESTS=1)" >&2
  exec "$@"
else
  echo "offline.sh: cannot create a network namespace here (needs root or user namespaces)." >&2
  echo "            Set ENCLAVE_ALLOW_NETWORK_TESTS=1 to run the tests with the network up." >&2
  exit 1
fi
