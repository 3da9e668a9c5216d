"""A real PostgreSQL server from the embedded wheel."""

from __future__ import annotations

import psycopg

from loom.services import LocalServices
from loom.settings import LoomSettings


def test_postgres_answers_queries(settings: LoomSettings) -> None:
    with psycopg.connect(settings.database_url) as conn:
        (version,) = conn.execute("SHOW server_version_num").fetchone() or (0,)
        conn.execute("CREATE TEMP TABLE t (n int)")
        conn.execute("INSERT INTO t SELECT generate_series(1, 10)")
        (total,) = conn.execute("SELECT sum(n) FROM t").fetchone() or (0,)
    assert int(version) >= 150000
    assert total == 55


def test_postgres_keeps_committed_rows_across_a_restart(services: LocalServices) -> None:
    url = services.postgres.url
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS restart_probe (n int)")
        conn.execute("INSERT INTO restart_probe VALUES (42)")
    services.postgres.kill()
    services.postgres.start()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT n FROM restart_probe").fetchall() == [(42,)]
        conn.execute("DROP TABLE restart_probe")
