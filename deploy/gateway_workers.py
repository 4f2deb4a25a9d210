"""How the gateway process is served: one uvicorn server, or several processes on one port, each with its
own listening socket (SO_REUSEPORT). `enclave up` and `enclave gateway run` both come through ``serve``.

uvicorn's own ``--workers`` shares one listening socket among its workers, and whichever wakes first
accepts everything waiting: under the benchmark's burst of 64 connections one worker took 62 of them and
the other 2, so the second process added overhead and no relief. With a socket per worker and
SO_REUSEPORT the kernel spreads new connections over the workers by their address hash.

With several workers this is their parent: it checks the port is free, prepares what the workers share (gateway/workers.py),
starts ``gateway_workers`` processes, starts a new one in the place of one that dies, and stops them all on
SIGTERM or SIGINT. If one of the first workers fails while starting (the app factory or the lifespan raised,
the socket could not be bound), the whole gateway stops: the next one would fail the same way. A
replacement that fails to start is tried again after a pause that doubles up to 30 s.

    python -m deploy.gateway_workers --host 127.0.0.1 --port 8080 [--workers 4] [--ssl-certfile F --ssl-keyfile F]

(without ``--workers``: ENCLAVE_GATEWAY_WORKERS, like every other setting the gateway reads)
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

STARTUP_FAILURE = 3      # uvicorn's exit status for a server that never started
RESTART_PAUSE_S = 1.0    # between a worker's death and its replacement: no tight loop if it keeps dying


def listening_socket(host: str, port: int) -> socket.socket:
    """One worker's own socket on the shared port, bound but not listening yet: the kernel hands connections
    only to listening sockets, and uvicorn calls ``listen`` once the app's lifespan has started, so a worker
    that is still starting (or fails to) never holds connections that nobody accepts."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


def port_is_free(host: str, port: int) -> bool:
    """Bound without SO_REUSEPORT, so that another gateway group on this port (which would silently share the
    connections) counts as taken, like any other listener."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError:
            return False
    return True


def _exit_with_parent(parent: int) -> None:
    """A worker outlives a parent that was killed outright (SIGKILL): it notices and stops itself."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def _worker(host: str, port: int, options: dict[str, Any], parent: int) -> None:
    """Whatever stops a worker before it served (the socket, the app factory, TLS files, the lifespan) exits
    with STARTUP_FAILURE, so the parent can tell it from a crash later on."""
    import uvicorn

    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    server = None
    try:
        sock = listening_socket(host, port)
        config = uvicorn.Config("gateway.app:build_app", factory=True, host=host, port=port, **options)
        server = uvicorn.Server(config)
        server.run(sockets=[sock])
    except BaseException:
        if server is not None and server.started:
            raise
        sys.exit(STARTUP_FAILURE)
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _running(proc: BaseProcess) -> bool:
    """``is_alive`` counts a worker reaped by someone else as alive (its waitpid fails): ask the kernel too."""
    if not proc.is_alive() or proc.pid is None:
        return False
    try:
        os.kill(proc.pid, 0)
    except ProcessLookupError:
        return False
    return True


class Supervisor:
    def __init__(self, host: str, port: int, workers: int, var_dir: Path, options: dict[str, Any]) -> None:
        self.host, self.port, self.workers, self.var_dir, self.options = host, port, workers, var_dir, options
        self.context = multiprocessing.get_context("spawn")
        self.processes: list[BaseProcess] = []
        self.stopping = False    # set by the signal handler: a plain flag (an Event's lock is not signal-safe)

    def _stop_signal(self, *_: Any) -> None:
        self.stopping = True

    def _start_one(self) -> BaseProcess:
        proc = self.context.Process(target=_worker, args=(self.host, self.port, self.options, os.getpid()),
                                    name="enclave-gateway-worker")
        proc.start()
        return proc

    def _say(self, text: str) -> None:
        print(f"gateway: {text}", file=sys.stderr, flush=True)

    def run(self) -> int:
        if not port_is_free(self.host, self.port):
            self._say(f"{self.host}:{self.port} is already in use")
            return 1
        from gateway.workers import forget_worker, worker_env

        os.environ.update(worker_env(self.var_dir, self.workers))  # the workers inherit it
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop_signal)
        # A SIGCHLD ignored by whoever started us is inherited, and the kernel then reaps dead workers before
        # this loop can see them: they would never be replaced (seen under pytest).
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.processes = [self._start_one() for _ in range(self.workers)]
        replaced = [False] * self.workers      # a replacement's start-up failure is retried, the first ones' is fatal
        pause = [RESTART_PAUSE_S] * self.workers
        self._say(f"{self.workers} worker processes on {self.host}:{self.port} "
                  f"(pids {', '.join(str(p.pid) for p in self.processes)})")
        status = 0
        while not self.stopping:
            time.sleep(0.5)
            for i, proc in enumerate(self.processes):
                if self.stopping or _running(proc):
                    continue
                forget_worker(proc.pid)        # its open streams and calls ended with it
                if proc.exitcode == STARTUP_FAILURE and not replaced[i]:
                    self._say(f"worker {proc.pid} failed to start; stopping (see the log above)")
                    self.stopping, status = True, 1
                    break
                pause[i] = min(pause[i] * 2, 30.0) if proc.exitcode == STARTUP_FAILURE else RESTART_PAUSE_S
                self._say(f"worker {proc.pid} exited ({proc.exitcode}); another in {pause[i]:g} s")
                deadline = time.monotonic() + pause[i]
                while not self.stopping and time.monotonic() < deadline:
                    time.sleep(0.1)
                if not self.stopping:
                    self.processes[i], replaced[i] = self._start_one(), True
        self.stop()
        return status

    def stop(self, timeout_s: float = 12.0) -> None:
        """SIGTERM: uvicorn's graceful shutdown (streams finish, the lifespan ends). Shorter than the 15 s
        `enclave up` gives this parent, so the workers are gone before it would kill the group."""
        for proc in self.processes:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in self.processes:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--workers", type=int, help="default: ENCLAVE_GATEWAY_WORKERS")
    ap.add_argument("--ssl-certfile")
    ap.add_argument("--ssl-keyfile")
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--timeout-keep-alive", type=float, help="idle client connections, s (default: ENCLAVE_GATEWAY_KEEPALIVE_S)")
    ap.add_argument("--no-access-log", action="store_true", help="(always off; accepted for uvicorn's command line)")
    return ap.parse_args(argv)


def serve(host: str, port: int, workers: int, var_dir: Path, options: dict[str, Any]) -> int:
    """The gateway on ``host:port`` until SIGTERM or SIGINT: in this process, or as ``workers`` children."""
    options = {"access_log": False, **options}
    if workers <= 1:
        import uvicorn

        # The app reads its Settings again: it must see one process, not ENCLAVE_GATEWAY_WORKERS=0's choice
        # for this box (a leader lock and rate limits in Postgres for a gateway that has no peers).
        os.environ["ENCLAVE_GATEWAY_WORKERS"] = "1"
        uvicorn.run("gateway.app:build_app", factory=True, host=host, port=port, **options)
        return 0
    return Supervisor(host, port, workers, var_dir, options).run()


def main(argv: list[str] | None = None) -> int:
    from gateway.config import Settings

    args = parse_args(argv)
    settings = Settings()
    options: dict[str, Any] = {"log_level": args.log_level,
                               "timeout_keep_alive": args.timeout_keep_alive or settings.gateway_keepalive_s}
    if args.ssl_certfile:
        options |= {"ssl_certfile": args.ssl_certfile, "ssl_keyfile": args.ssl_keyfile}
    return serve(args.host, args.port, args.workers or settings.gateway_workers, settings.var_dir, options)


if __name__ == "__main__":
    sys.exit(main())
