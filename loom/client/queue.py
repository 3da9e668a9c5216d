"""The on-disk queue that keeps events while ingest cannot be reached (SQLite).

Events go in complete (id assigned) and come out oldest first; the client deletes
each only after ingest answered 2xx for it, so a crash or a lost answer means it is
sent again — the same id, deduplicated downstream. An event ingest refused for good
(a 4xx) is moved to the ``rejected`` table with its problem document, the last
:data:`REJECTED_KEPT` of them, so it cannot block the ones behind it.

The file is safe to share between processes (WAL, a writer lock per change); its
size is bounded by ``max_events``. By default it lives in the user's cache directory,
one file per ingest URL and device: ``~/.cache/loom/queue-<hash>.db``.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from loom.client.closing import Closing
from loom.client.errors import QueueFull

__all__ = ["REJECTED_KEPT", "EventQueue", "Queued", "default_queue_path"]

REJECTED_KEPT = 1000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    event BLOB NOT NULL,
    queued_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    event BLOB NOT NULL,
    status INTEGER NOT NULL,
    problem BLOB,
    rejected_at REAL NOT NULL
);
"""


def _cache_dir() -> Path:
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "loom" / "cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "loom"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "loom"


def default_queue_path(url: str, device_id: str | None = None) -> Path:
    """``<user cache dir>/loom/queue-<hash of url and device>.db``."""
    key = f"{url.rstrip('/')}\n{device_id or ''}".encode()
    return _cache_dir() / f"queue-{hashlib.sha256(key).hexdigest()[:16]}.db"


@dataclass(frozen=True)
class Queued:
    """An event waiting in the queue; ``seq`` orders it."""

    seq: int
    id: str
    event: dict[str, Any]


class EventQueue(Closing):
    """A bounded FIFO of complete CloudEvents in one SQLite file."""

    def __init__(self, path: Path | str, *, max_events: int = 100_000) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self.path = Path(path).expanduser()
        self.max_events = max_events
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    # ── writing ──────────────────────────────────────────────────────────

    def put(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Append ``events`` (complete, with ids) at the end, all or none."""
        if not events:
            return
        rows = [(str(e["id"]), orjson.dumps(e), time.time()) for e in events]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                (count,) = self._db.execute("SELECT count(*) FROM events").fetchone()
                if count + len(rows) > self.max_events:
                    raise QueueFull(
                        f"the queue {self.path} holds {count} events and takes at most "
                        f"{self.max_events}; {len(rows)} more do not fit. Flush it once "
                        "ingest is reachable, or allow a larger queue"
                    )
                self._db.executemany(
                    "INSERT INTO events (id, event, queued_at) VALUES (?, ?, ?)", rows
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def delete(self, seqs: Iterable[int]) -> None:
        """Forget events ingest has taken."""
        with self._lock:
            self._db.executemany("DELETE FROM events WHERE seq = ?", [(s,) for s in seqs])

    def reject(self, refused: Iterable[tuple[Queued, int, Mapping[str, Any] | None]]) -> None:
        """Move events ingest refused for good (item, status, problem) out of the queue."""
        rows = [
            (q.seq, q.id, orjson.dumps(q.event), status,
             orjson.dumps(problem) if problem is not None else None, time.time())
            for q, status, problem in refused
        ]  # fmt: skip
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO rejected"
                    " (seq, id, event, status, problem, rejected_at) VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._db.executemany("DELETE FROM events WHERE seq = ?", [(r[0],) for r in rows])
                self._db.execute(
                    "DELETE FROM rejected WHERE seq NOT IN"
                    " (SELECT seq FROM rejected ORDER BY seq DESC LIMIT ?)",
                    (REJECTED_KEPT,),
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ── reading ──────────────────────────────────────────────────────────

    def peek(self, limit: int, max_bytes: int | None = None) -> list[Queued]:
        """The oldest events, at most ``limit`` of them and about ``max_bytes`` of JSON."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, id, event FROM events ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        out: list[Queued] = []
        size = 0
        for seq, event_id, blob in rows:
            size += len(blob) + 1
            if out and max_bytes is not None and size > max_bytes:
                break
            out.append(Queued(seq, event_id, orjson.loads(blob)))
        return out

    def rejected(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest events ingest refused: ``event``, ``status``, ``problem``, ``rejected_at``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT event, status, problem, rejected_at FROM rejected"
                " ORDER BY seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            {"event": orjson.loads(event), "status": status,
             "problem": orjson.loads(problem) if problem else None, "rejected_at": at}
            for event, status, problem, at in rows
        ]  # fmt: skip

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT count(*) FROM events").fetchone()
        return int(count)

    # ── lifetime ─────────────────────────────────────────────────────────

    def close(self) -> None:
        with self._lock:
            self._db.close()
