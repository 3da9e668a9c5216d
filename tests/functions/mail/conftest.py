"""A real IMAP server for the mail tests: pymap (pure Python, in-memory mailboxes) on a
free port, one per test module; each test reads mailboxes of its own."""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from functions.mail.settings import ImapAccount
from loom.services._process import free_port, stop_process, wait_until

USER, PASSWORD = "ada", "correct-horse-battery-staple"
_names = itertools.count(1)


@dataclass
class ImapServer:
    host: str
    port: int

    def client(self) -> IMAPClient:
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        client.login(USER, PASSWORD)
        return client

    def mailbox(self) -> str:
        """A new, empty mailbox of its own for one test."""
        name = f"Box{next(_names)}"
        with self.client() as client:
            client.create_folder(name)
        return name

    def append(self, mailbox: str, raw: bytes, when: datetime | None = None) -> int:
        """Deliver ``raw`` to ``mailbox``; returns its UID."""
        with self.client() as client:
            answer = client.append(mailbox, raw, msg_time=when)
        return int(answer.split(b"APPENDUID ")[1].split(b"]")[0].split()[1])

    def flags(self, mailbox: str) -> dict[int, tuple[bytes, ...]]:
        with self.client() as client:
            client.select_folder(mailbox, readonly=True)
            found = client.fetch(client.search("ALL"), ["FLAGS"])
        return {uid: item[b"FLAGS"] for uid, item in found.items()}

    def account(self, *mailboxes: str, **fields: Any) -> ImapAccount:
        given: dict[str, Any] = {"host": self.host, "port": self.port, "security": "none",
                                 "username": USER, "password": PASSWORD,
                                 "mailboxes": list(mailboxes) or ["INBOX"]}  # fmt: skip
        return ImapAccount(**(given | fields))


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            return sock.recv(64).startswith(b"* OK")
    except OSError:
        return False


@pytest.fixture(scope="module")
def imap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImapServer]:
    host, port = "127.0.0.1", free_port()
    log = tmp_path_factory.mktemp("pymap") / "pymap.log"
    # pymap reads what it stores with the standard library's parser too: deep enough
    # for the most deeply nested test message (messages.nested), which ours gives up on.
    start = "import sys; sys.setrecursionlimit(20_000); from pymap.main import main; main()"
    command = [sys.executable, "-c", start, "--host", host, "--port", str(port), "--no-tls",
               "dict", "--demo-user", USER, "--demo-password", PASSWORD]  # fmt: skip
    with Path(log).open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until("pymap", lambda: _answers(host, port), timeout=30, process=process, log=log)
        yield ImapServer(host, port)
    finally:
        stop_process(process, timeout=10)
