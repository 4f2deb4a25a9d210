"""Ray for one box: start a local head (or join ``RAY_ADDRESS``), start Serve on loopback, and clean
up after it — including the vLLM shared-memory files Ray leaves in /dev/shm."""

from __future__ import annotations

import glob
import math
import os
import signal
import time

from models.catalog import Profile

# Ray counts logical CPUs for scheduling only; the Serve proxy and ingress need a few beyond what
# the model replicas reserve, or the app never schedules on a 2-core box.
MIN_LOGICAL_CPUS = 8
_SHM_PATTERNS = ("/dev/shm/psm_*", "/dev/shm/sem.mp-*")


def quiet_offline_env() -> None:
    """Process-wide: no telemetry, no hub, loopback only. Inherited by every Ray worker we start."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")


def logical_cpus(profile: Profile) -> int:
    reserved = sum(d.num_cpus * d.replicas for d in profile.roles.values())
    return max(MIN_LOGICAL_CPUS, math.ceil(reserved) + 4)


def start_ray(profile: Profile, address: str | None = None) -> bool:
    """Start or join Ray. Returns True when this process started (and so owns) the cluster. The caller's
    SIGINT/SIGTERM handlers survive: Ray's core installs its own, which aborts the driver on SIGTERM (no
    clean-up, vLLM shared memory left behind)."""
    import ray

    quiet_offline_env()
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if address:
            ray.init(address=address, namespace="enclave", log_to_driver=False, logging_level="WARNING")
            return False
        ray.init(
            num_cpus=logical_cpus(profile),
            namespace="enclave",
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            object_store_memory=512 * 1024 * 1024,
            log_to_driver=False,
            logging_level="WARNING",
        )
        return True
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def start_serve(host: str, port: int) -> None:
    import logging

    from ray import serve

    # Serve and ray.serve.llm log every deployment option at INFO in the driver; the operator's
    # console gets our progress lines instead (replica logs stay in Ray's log folder).
    for name in ("ray.serve", "ray.llm"):
        logging.getLogger(name).setLevel(logging.WARNING)

    serve.start(http_options={"host": host, "port": port}, proxy_location="HeadOnly")


def stop_serving(app_names: list[str], owns_cluster: bool, started_at: float) -> None:
    """Remove our apps; if we started the cluster, shut Serve and Ray down and clean shared memory."""
    import ray
    from ray import serve

    try:
        if owns_cluster:
            serve.shutdown()
        else:
            for name in app_names:
                serve.delete(name)
    finally:
        ray.shutdown()
        if owns_cluster:
            clean_vllm_shm(since=started_at)


def clean_vllm_shm(since: float) -> list[str]:
    """Remove vLLM / multiprocessing shared-memory files created since ``since`` (ours, not others')."""
    removed = []
    for pattern in _SHM_PATTERNS:
        for path in glob.glob(pattern):
            try:
                if os.stat(path).st_mtime >= since - 1:
                    os.unlink(path)
                    removed.append(path)
            except OSError:
                pass
    return removed


def wait_until(predicate, timeout_s: float, interval_s: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return False
