"""A real CalDAV server for the calendar tests: Radicale on 127.0.0.1 (a free port, its
storage in a temp dir, logins from an htpasswd file), started once per session."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import caldav
import pytest

from functions.calendar.settings import CalDavAccount, CalendarSettings

USERS = {"ada": "ada-s3cret-pass", "grace": "grace-s3cret-pass"}


@dataclass(frozen=True)
class Radicale:
    url: str

    def client(self, user: str = "ada") -> caldav.DAVClient:
        return caldav.DAVClient(url=self.url, username=user, password=USERS[user], timeout=10)

    def new_calendar(self, user: str = "ada", name: str = "Work") -> caldav.Calendar:
        """A calendar of its own for one test (display name ``name``, a fresh id)."""
        principal = self.client(user).get_principal()
        return principal.make_calendar(name=name, cal_id=f"cal-{uuid.uuid4().hex[:12]}")

    def account(self, user: str = "ada", **fields: object) -> CalDavAccount:
        return CalDavAccount.model_validate(
            {"url": self.url, "username": user, "password": USERS[user], **fields}
        )

    def settings(self, *accounts: CalDavAccount, **fields: object) -> CalendarSettings:
        return CalendarSettings(calendar_accounts=list(accounts), **fields)  # type: ignore[arg-type]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"radicale exited ({process.returncode}):\n{log.read_text()}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # it answers (a redirect or 401 is an answer)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"radicale did not answer within 30 s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radicale]:
    pytest.importorskip("radicale", reason="needs the radicale package (a real CalDAV server)")
    root = tmp_path_factory.mktemp("radicale")
    users = root / "users"
    users.write_text("".join(f"{user}:{password}\n" for user, password in USERS.items()))
    port = _free_port()
    log = root / "radicale.log"
    command = [
        sys.executable, "-m", "radicale", "--config", "",
        f"--storage-filesystem-folder={root / 'collections'}",
        f"--server-hosts=127.0.0.1:{port}",
        "--auth-type=htpasswd", f"--auth-htpasswd-filename={users}",
        "--auth-htpasswd-encryption=plain", "--auth-delay=0", "--logging-level=warning",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait(url, process, log)
        yield Radicale(url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
