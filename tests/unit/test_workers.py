"""The pieces that let the gateway run as several processes: the leader lock (held by one process, freed when it
dies), the metrics directory prepared before the workers start, the live gauges of a gone worker dropped
(tests/integration/test_gateway_workers.py runs them together, with the shared rate limit, in a real two-process
gateway)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from gateway.workers import LeaderLock, forget_worker, lead_when_possible, worker_env


def test_one_process_holds_the_leader_lock_until_it_lets_go(tmp_path: Path) -> None:
    path = tmp_path / "run" / "leader.lock"
    first, second = LeaderLock(path), LeaderLock(path)
    assert first.try_acquire() and first.held
    assert not second.try_acquire()          # another open file description: refused, even in this process
    assert first.try_acquire()               # asking again while holding it is fine
    first.release()
    assert second.try_acquire()
    second.release()


def test_the_lock_of_a_process_that_dies_is_free_again(tmp_path: Path) -> None:
    path = tmp_path / "leader.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, sys.argv[2]); from gateway.workers import LeaderLock; "
        "assert LeaderLock(__import__('pathlib').Path(sys.argv[1])).try_acquire(); print('held', flush=True); "
        "time.sleep(60)"), str(path), str(Path(__file__).resolve().parents[2])], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        mine = LeaderLock(path)
        assert not mine.try_acquire()
        assert path.read_text().strip() == str(holder.pid)   # who holds it, for an operator looking
        holder.kill()
        holder.wait()
        assert mine.try_acquire()
        mine.release()
    finally:
        holder.kill()
        holder.wait()


def test_a_waiting_process_takes_the_duties_over_once_the_lock_is_free(tmp_path: Path) -> None:
    path = tmp_path / "leader.lock"
    holder, waiter = LeaderLock(path), LeaderLock(path)
    assert holder.try_acquire()
    started: list[float] = []

    async def duties() -> None:
        started.append(time.monotonic())

    async def scenario() -> None:
        task = asyncio.create_task(lead_when_possible(waiter, duties, retry_s=0.02))
        await asyncio.sleep(0.1)
        assert not started                  # still somebody else's
        holder.release()
        await asyncio.wait_for(task, 2)

    asyncio.run(scenario())
    assert len(started) == 1 and waiter.held
    waiter.release()


def test_duties_that_fail_to_start_let_the_lock_go_and_are_tried_again(tmp_path: Path, caplog) -> None:
    """The SIP port taken by something else, say: logged, the lock released for a while (another process may
    do better), then tried again."""
    lock = LeaderLock(tmp_path / "l.lock")
    other = LeaderLock(tmp_path / "l.lock")
    tries: list[bool] = []

    async def flaky() -> None:
        tries.append(True)
        if len(tries) == 1:
            assert not other.try_acquire()      # held while the duties start
            raise OSError("address already in use")

    async def scenario() -> None:
        task = asyncio.create_task(lead_when_possible(lock, flaky, retry_s=0.01, failed_pause_s=0.2))
        await asyncio.sleep(0.1)
        assert len(tries) == 1 and not lock.held
        assert other.try_acquire()              # free during the pause
        other.release()
        await asyncio.wait_for(task, 2)

    asyncio.run(scenario())
    assert len(tries) == 2 and lock.held and "did not start" in caplog.text
    lock.release()


def test_worker_env_prepares_an_empty_metrics_dir_only_for_several_workers(tmp_path: Path) -> None:
    assert worker_env(tmp_path, 1) == {}
    env = worker_env(tmp_path, 3)
    assert env["ENCLAVE_GATEWAY_WORKERS"] == "3"          # each worker's Settings, whatever the parent was told
    path = Path(env["PROMETHEUS_MULTIPROC_DIR"])
    assert path.is_dir() and path.is_relative_to(tmp_path.resolve())
    (path / "counter_123.db").write_bytes(b"stale")       # a previous run's values
    assert worker_env(tmp_path, 3) == env and not any(path.iterdir())


def test_a_gone_workers_live_gauges_are_dropped_and_its_counts_stay(tmp_path: Path) -> None:
    gone, other = 4242, os.getpid()
    for name in (f"gauge_livesum_{gone}.db", f"gauge_livemax_{gone}.db", f"gauge_livesum_{other}.db",
                 f"counter_{gone}.db"):
        (tmp_path / name).write_bytes(b"")
    forget_worker(gone, str(tmp_path))
    forget_worker(gone, str(tmp_path))                # the worker and its parent may both do it
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"gauge_livesum_{other}.db",
                                                                 f"counter_{gone}.db"])  # counts stay counted


def test_a_socket_per_worker_spreads_connections_where_one_shared_socket_did_not(tmp_path: Path) -> None:
    """The premise of deploy/gateway_workers.py: with SO_REUSEPORT the kernel, not the fastest accept loop,
    picks the socket of each new connection."""
    import socket

    from deploy.gateway_workers import listening_socket, port_is_free

    first = listening_socket("127.0.0.1", 0)
    port = first.getsockname()[1]
    second = listening_socket("127.0.0.1", port)
    for server in (first, second):
        server.listen()                               # uvicorn does this once the worker's app has started
    assert not port_is_free("127.0.0.1", port)        # a group listening on the port counts as taken
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
    counts = []
    for server in (first, second):
        server.setblocking(False)
        accepted = 0
        while True:
            try:
                conn, _ = server.accept()
            except BlockingIOError:
                break
            conn.close()
            accepted += 1
        counts.append(accepted)
    for c in clients + [first, second]:
        c.close()
    assert sum(counts) == 32 and min(counts) > 0, counts


def test_shared_rate_limits_fall_back_to_the_process_own_buckets_while_postgres_does_not_answer(caplog) -> None:
    """A real pool on a port where no Postgres listens. (The Postgres path itself runs in
    tests/integration/test_gateway_workers.py.)"""
    import pytest
    from psycopg_pool import AsyncConnectionPool

    from deploy.background import free_port
    from gateway.auth import SharedRateLimiter
    from gateway.errors import RateLimited

    async def scenario() -> None:
        pool = AsyncConnectionPool(f"postgresql://enclave@127.0.0.1:{free_port()}/enclave", min_size=1, open=False,
                                   kwargs={"connect_timeout": 1})
        await pool.open(wait=False)
        limiter = SharedRateLimiter(pool, default_per_min=600, timeout_s=0.2)
        try:
            for _ in range(3):
                await limiter.acquire("key:abc", 3)
            with pytest.raises(RateLimited):
                await limiter.acquire("key:abc", 3)
            await limiter.acquire("key:other", 3)      # buckets stay per key
        finally:
            await pool.close()

    asyncio.run(scenario())
    assert caplog.text.count("fall back") == 1       # said once a minute, not once a request


def test_the_default_worker_count_follows_the_cores_the_gateway_may_use(monkeypatch) -> None:
    """ENCLAVE_GATEWAY_WORKERS=0 (the default): a process per 4 cores, 1 to 4, resolved when Settings load,
    so every reader (the leader lock, the shared rate limits, the workers' parent) sees one number."""
    from gateway import config

    assert [config.auto_gateway_workers(c) for c in (1, 2, 4, 7, 8, 16, 128)] == [1, 1, 1, 1, 2, 4, 4]
    monkeypatch.setattr(config, "usable_cores", lambda: 16)
    monkeypatch.delenv("ENCLAVE_GATEWAY_WORKERS", raising=False)
    assert config.Settings().gateway_workers == 4
    assert config.Settings().shared_rate_limits                     # several processes: a key's limit in Postgres
    monkeypatch.setenv("ENCLAVE_GATEWAY_WORKERS", "1")
    assert config.Settings().gateway_workers == 1 and not config.Settings().shared_rate_limits


def test_usable_cores_are_cut_to_a_containers_cpu_quota(tmp_path: Path) -> None:
    from gateway.config import usable_cores

    affinity = len(os.sched_getaffinity(0))
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")                               # no quota: the affinity
    assert usable_cores(cpu_max) == affinity
    cpu_max.write_text("150000 100000\n")                            # 1.5 CPUs: 2 cores' worth of processes
    assert usable_cores(cpu_max) == min(affinity, 2)
    assert usable_cores(tmp_path / "absent") == affinity              # cgroup v1 or no cgroup fs
