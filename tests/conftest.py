"""Shared test helpers. The suite normally runs inside a network namespace with only loopback
(`make test`); `no_outbound_network` also guards the in-process tests when run outside one."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _is_loopback(address: object) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    return isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1"))


@pytest.fixture(scope="module")
def no_outbound_network() -> Iterator[None]:
    """Fail loudly on any non-loopback connection (e.g. a hidden hub download)."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> None:
        if self.family == socket.AF_UNIX or _is_loopback(address):
            return real_connect(self, address)
        raise AssertionError(f"outbound network access attempted: {address}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(socket.socket, "connect", guarded)
        yield


def espeak_wav(text: str, path: Path, rate: int = 16_000, pad_s: float = 0.0) -> Path:
    """Speak ``text`` with espeak-ng into a mono PCM16 WAV at ``rate`` (optional silence around it)."""
    if not shutil.which("espeak-ng") or not shutil.which("sox"):
        pytest.skip("espeak-ng and sox are needed (scripts/install.sh installs them as root)")
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True)
    cmd = ["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(path)]
    if pad_s:
        cmd += ["pad", str(pad_s), str(pad_s)]
    subprocess.run(cmd, check=True)
    raw.unlink()
    return path
