"""What the gateway's processes share when it runs as several (``ENCLAVE_GATEWAY_WORKERS``).

One asyncio loop relays every stream, and each turn has fixed work besides (the guard, opening the
upstream, storing the turn: about 3 ms of CPU on the build machine). When many turns start or end in the
same moment (a batch of callers, vLLM finishing a batch together) that work queues on the loop: the last
turn of a burst waits for all the ones before it. ``deploy/gateway_workers.py`` starts several processes,
each listening on the port with its own socket, and the kernel spreads connections over them. What one
process kept in memory must then be shared:

* metrics: prometheus-client's multiprocess mode; every process writes its values to files in one
  directory, which the parent empties before the workers start, and ``/metrics`` adds them up;
* rate limits: kept in Postgres (``auth.SharedRateLimiter``), so a key gets its limit, not one per process;
* the SIP user agent (one UDP port) and the action runner run in one process only, the one holding
  :class:`LeaderLock`; when it dies the lock goes with it and another process takes the duties over;
* the API key cache: a revoked key is forgotten at once by the process that revoked it and within
  ``AUTH_CACHE_TTL_S`` (10 s) by the others; circuit breakers are per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import glob
import logging
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger("enclave.gateway")

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def metrics_dir(var_dir: Path) -> Path:
    return var_dir / "run" / "gateway-metrics"


def worker_env(var_dir: Path, workers: int) -> dict[str, str]:
    """What the gateway's processes need in their environment, prepared by their parent before they start:
    how many they are (each worker's Settings must say so, whatever the parent was told on its command
    line) and an empty directory for the metrics they share (a previous run's values would be added to this
    run's counters)."""
    if workers <= 1:
        return {}
    path = metrics_dir(var_dir.resolve())
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return {METRICS_ENV: str(path), "ENCLAVE_GATEWAY_WORKERS": str(workers)}


def shared_metrics_dir() -> str | None:
    """The multiprocess metrics directory of this process, when it is one of several workers."""
    return os.environ.get(METRICS_ENV) or None


def forget_worker(pid: int | None, path: str | None = None) -> None:
    """Drop a gone worker's live gauges (open streams, calls): they ended with it. Counters and histograms stay
    counted. The worker does it as it stops, the parent when it finds one dead (the directory is emptied
    when the parent starts, so nothing outlives a parent that was killed)."""
    path = path or shared_metrics_dir()
    if pid is None or path is None:
        return
    for name in glob.glob(os.path.join(path, f"gauge_live*_{pid}.db")):
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)


class LeaderLock:
    """An exclusive ``flock`` on a file in the var dir: the one process holding it runs the gateway's
    one-per-box duties. The kernel releases it when the process ends, however it ends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


def leader_lock(var_dir: Path) -> LeaderLock:
    return LeaderLock(var_dir / "run" / "gateway-leader.lock")


async def lead_when_possible(lock: LeaderLock, start_duties: Callable[[], Awaitable[None]], retry_s: float = 2.0,
                             failed_pause_s: float = 10.0) -> None:
    """Take the lock as soon as it is free (at start, or when the process holding it has died), then start the
    duties once. If they fail to start (the SIP port is taken, say), let the lock go so that this or another
    process tries again after a pause that doubles up to 5 minutes. Runs as a background task of every
    worker; cancelled at shutdown."""
    while True:
        while not lock.try_acquire():
            await asyncio.sleep(retry_s)
        log.info("this gateway process runs the SIP user agent and the action runner", extra={"pid": os.getpid()})
        try:
            await start_duties()
            return
        except Exception:
            log.exception("the one-per-box duties did not start in this gateway process; trying again in "
                          f"{failed_pause_s:g} s")
        lock.release()
        await asyncio.sleep(failed_pause_s)
        failed_pause_s = min(failed_pause_s * 2, 300.0)
