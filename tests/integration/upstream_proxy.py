"""A TCP forwarder put between a test gateway and the real Serve LLM endpoint.

It lets a test see and control the upstream without faking it: the gateway's requests go through to
the real model, and the test can read the JSON bodies that reached the LLM, switch the upstream off
(connection refused, like a crashed server) and on again, and see whether the gateway closed an
upstream connection before the model had finished (a cancelled generation).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field


def _split_events(data: bytes) -> list[bytes]:
    """The same bytes, cut after each SSE event (HTTP chunk framing is left as it is)."""
    parts = data.split(b"\n\n")
    return [p + b"\n\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


@dataclass
class Connection:
    opened_at: float
    bytes_down: int = 0                 # upstream -> gateway
    closed_by: str | None = None        # "gateway" or "upstream": who hung up first
    closed_at: float | None = None
    request_ids: list[str] = field(default_factory=list)  # X-Request-Id of each request, in order
    dones: int = 0                      # "data: [DONE]" seen: streams the upstream finished

    @property
    def cut_off(self) -> bool:
        """The gateway hung up while a stream on this connection was still running."""
        return self.closed_by == "gateway" and self.dones < len(self.request_ids)


@dataclass
class RecordingProxy:
    target_port: int
    target_host: str = "127.0.0.1"
    port: int = 0
    requests: list[dict] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)
    delay_down_s: float = 0.0           # > 0: a slow upstream, pausing before each SSE event it relays

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    # -- control (called from the test thread) --
    def start(self) -> int:
        self._call(self._start())
        return self.port

    def stop(self) -> None:
        """Stop listening and drop open connections: the upstream is now 'dead' (connection refused)."""
        self._call(self._stop())

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def chat_requests(self) -> list[dict]:
        return [r for r in self.requests if r.get("_path", "").endswith("/chat/completions")]

    def _call(self, coro) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port or 0, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        self._writers: set[asyncio.StreamWriter] = set()

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            self._server = None

    # -- relaying --
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(time.monotonic())
        self.connections.append(conn)
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.close()
            return

        async def gateway_to_upstream() -> None:
            buf = b""
            while data := await reader.read(65536):
                buf = self._parse_requests(buf + data, conn)
                up_writer.write(data)
                await up_writer.drain()
            if conn.closed_by is None:
                conn.closed_by, conn.closed_at = "gateway", time.monotonic()
            up_writer.close()

        async def upstream_to_gateway() -> None:
            while data := await up_reader.read(65536):
                conn.bytes_down += len(data)
                conn.dones += data.count(b"data: [DONE]")
                for piece in _split_events(data) if self.delay_down_s else [data]:
                    if self.delay_down_s and b"data:" in piece:
                        await asyncio.sleep(self.delay_down_s)
                    try:
                        writer.write(piece)
                        await writer.drain()
                    except (ConnectionError, OSError):
                        # The gateway hung up while this side was writing: the same hang-up as its EOF, which
                        # the other direction may never get to read (a flaky "ran on" in the cancel tests).
                        if conn.closed_by is None:
                            conn.closed_by, conn.closed_at = "gateway", time.monotonic()
                        raise
            if conn.closed_by is None:
                conn.closed_by, conn.closed_at = "upstream", time.monotonic()
            writer.close()

        try:
            await asyncio.gather(gateway_to_upstream(), upstream_to_gateway())
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            up_writer.close()
            writer.close()

    def _parse_requests(self, buf: bytes, conn: Connection) -> bytes:
        """Pull whole HTTP requests (Content-Length bodies) out of the byte stream; keep the rest."""
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                return buf
            head = buf[:head_end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(buf) < head_end + 4 + length:
                return buf
            body = buf[head_end + 4:head_end + 4 + length]
            buf = buf[head_end + 4 + length:]
            parts = head[0].split(" ")
            headers = {ln.partition(":")[0].strip().lower(): ln.partition(":")[2].strip() for ln in head[1:]}
            conn.request_ids.append(headers.get("x-request-id", ""))
            try:
                parsed = json.loads(body) if body else {}
            except ValueError:
                parsed = {"_raw": body.decode("latin-1")}
            if isinstance(parsed, dict):
                parsed.update({"_path": parts[1] if len(parts) > 1 else "", "_request_id": headers.get("x-request-id")})
                self.requests.append(parsed)
