"""baresip as a real SIP caller for the tests: a throw-away config folder, the caller's voice from a WAV
(``aufile``), what it hears recorded to WAV (``sndfile``), and control over ctrl_tcp (netstring JSON)."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
from pathlib import Path

MODULES = Path("/usr/lib/baresip/modules")


class Baresip:
    def __init__(self, folder: Path, voice_wav: Path, sip_port: int, ctrl_port: int) -> None:
        self.folder, self.ctrl_port = folder, ctrl_port
        self.recordings = folder / "recordings"
        self.recordings.mkdir(parents=True, exist_ok=True)
        (folder / "accounts").write_text("<sip:caller@127.0.0.1>;regint=0;audio_codecs=PCMU\n")
        (folder / "contacts").write_text("")
        (folder / "config").write_text("\n".join([
            "poll_method epoll", f"sip_listen 127.0.0.1:{sip_port}", f"audio_source aufile,{voice_wav}",
            "audio_player aubridge,nil", "audio_alert aubridge,nil", "ausrc_srate 8000", "auplay_srate 8000",
            "ausrc_channels 1", "auplay_channels 1", f"module_path {MODULES}", "module g711.so", "module aufile.so",
            "module aubridge.so", "module sndfile.so", "module_app account.so", "module_app menu.so",
            "module_app ctrl_tcp.so", f"ctrl_tcp_listen 127.0.0.1:{ctrl_port}", f"snd_path {self.recordings}",
            "net_interface 127.0.0.1",     # its own address: with only loopback up there is no default route
            "rtp_stats yes", ""]))
        self.log = folder / "baresip.log"
        self.proc = subprocess.Popen(["baresip", "-f", str(folder)], stdin=subprocess.DEVNULL,
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        self.sock = self._connect()
        self.buffer = b""
        self.events: list[dict] = []

    def _connect(self) -> socket.socket:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"baresip exited:\n{self.log.read_text(errors='replace')[-2000:]}")
            with contextlib.suppress(OSError):
                return socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
            time.sleep(0.2)
        raise RuntimeError(f"baresip's ctrl_tcp did not open:\n{self.log.read_text(errors='replace')[-2000:]}")

    def command(self, command: str, params: str = "") -> None:
        body = json.dumps({"command": command, "params": params, "token": command}).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")

    def wait_for(self, event_type: str, timeout_s: float) -> dict:
        """The next event of that type (CALL_ESTABLISHED, CALL_CLOSED…); earlier ones are kept in ``events``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for message in self._messages():
                if message.get("event"):
                    self.events.append(message)
                    if message.get("type") == event_type:
                        return message
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                chunk = self.sock.recv(65535)
                if not chunk:
                    break
                self.buffer += chunk
        raise AssertionError(f"no {event_type}; events {[e.get('type') for e in self.events]}\n"
                             f"{self.log.read_text(errors='replace')[-3000:]}")

    def _messages(self) -> list[dict]:
        out = []
        while b":" in self.buffer:
            size, _, rest = self.buffer.partition(b":")
            if not size.isdigit() or len(rest) < int(size) + 1:
                break
            out.append(json.loads(rest[:int(size)]))
            self.buffer = rest[int(size) + 1:]
        return out

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.command("quit")
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.sock.close()
