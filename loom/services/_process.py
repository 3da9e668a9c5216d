"""Small helpers shared by the local service launchers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from loom.errors import ServiceError

__all__ = ["free_port", "log_tail", "stop_process", "wait_until"]


_HANDED_OUT: set[int] = set()


def free_port(host: str = "127.0.0.1", preferred: int = 0) -> int:
    """``preferred`` if nothing listens on it on ``host``, else any free TCP port.

    A port is only free until someone binds it, and the kernel may offer a just-closed
    port again: so this process never hands out the same port twice.
    """
    candidates = [preferred] if preferred else []
    for port in [*candidates, *([0] * 20)]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                continue
            found = int(sock.getsockname()[1])
        if found not in _HANDED_OUT:
            _HANDED_OUT.add(found)
            return found
    raise ServiceError(f"no free TCP port on {host}")


def log_tail(path: Path, lines: int = 25) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def wait_until(
    what: str,
    ready: Callable[[], bool],
    *,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    interval: float = 0.2,
) -> None:
    """Poll ``ready`` until it is true; fail naming ``what`` on timeout or early exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log_tail(log) if log else ""
            raise ServiceError(
                f"{what} exited with code {process.returncode} while starting; log:\n{tail}"
            )
        if ready():
            return
        time.sleep(interval)
    tail = f"; log:\n{log_tail(log)}" if log else ""
    raise ServiceError(f"{what} was not ready within {timeout:.0f}s{tail}")


def stop_process(
    process: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout: float = 30.0
) -> None:
    """Ask ``process`` to stop with ``sig``; kill it if it has not stopped by ``timeout``."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
