"""Prefect's SQLite database migrated before the temporary server starts
(``broadsheet.prefect_database``): the database Prefect's own migrations make, faster.

Each case runs in a process of its own with a new Prefect home, as a first ``broadsheet run``
does: Prefect reads its settings (the database's location among them) once per process.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import Script

from broadsheet.fault_injection import KILL_POINT_VARIABLE
from broadsheet.prefect_server import DATABASE_URL_VARIABLES, migrate_a_new_database

pytestmark = pytest.mark.slow

OURS = "from broadsheet.prefect_database import migrate_sqlite_database as m; print(m())"
PREFECTS = (
    "import asyncio; from prefect.server.database import provide_database_interface as p; "
    "asyncio.run(p().run_migrations_upgrade())"
)
"""What Prefect's server runs as it starts (``PREFECT_API_DATABASE_MIGRATE_ON_START``)."""


def _python(code: str, home: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.pop(KILL_POINT_VARIABLE, None)
    env.update(PREFECT_HOME=str(home), **environment)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )


def _schema_and_rows(database: Path) -> list[str]:
    """Every table's, index's and trigger's SQL and every table's rows. A table's
    constraints are sorted: Prefect's own migrations write them in an order that changes
    with Python's hash seed (a set's order)."""
    with sqlite3.connect(database) as connection:
        described = []
        for kind, name, sql in connection.execute(
            "SELECT type, name, sql FROM sqlite_master ORDER BY type, name"
        ):
            lines = sorted(line.strip().rstrip(",") for line in str(sql).splitlines())
            described.append(f"{kind} {name}: {lines}")
        tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        for (table,) in tables.fetchall():
            rows = connection.execute(f'SELECT * FROM "{table}"').fetchall()
            described.append(f"rows of {table}: {sorted(map(repr, rows))}")
    return described


def _revision(database: Path) -> str:
    with sqlite3.connect(database) as connection:
        return str(connection.execute("SELECT version_num FROM alembic_version").fetchone()[0])


@pytest.fixture(scope="module")
def prefects_database(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The database Prefect's own migrations make in a new home."""
    home = tmp_path_factory.mktemp("prefect-home")
    result = _python(PREFECTS, home)
    assert result.returncode == 0, result.stderr
    return _schema_and_rows(home / "prefect.db")


def test_a_new_database_is_migrated_to_what_prefects_migrations_make(
    tmp_path: Path, prefects_database: list[str]
) -> None:
    first = _python(OURS, tmp_path / "home")
    again = _python(OURS, tmp_path / "home")

    assert (first.returncode, first.stdout, first.stderr) == (0, "True\n", "")
    assert (again.returncode, again.stdout, again.stderr) == (0, "False\n", "")
    assert _schema_and_rows(tmp_path / "home" / "prefect.db") == prefects_database


def test_a_migration_killed_midway_leaves_the_last_revision_for_prefect_to_go_on_from(
    tmp_path: Path, prefects_database: list[str]
) -> None:
    """Each migration is a transaction: killed inside one that rebuilds tables, the database
    is at the revision before it, and Prefect's own migrations (what the server runs when
    this fails) finish it. (Eight of Prefect's migrations commit part-way themselves, to
    backfill rows in batches; those are interrupted as Prefect's own would be.)"""
    killed_in, last_complete = next(
        (migration.revision, str(migration.down_revision))
        for migration in _prefect_migrations()[39:]
        if "batch_alter_table" in (source := Path(migration.path).read_text())
        and "autocommit_block" not in source
        and "COMMIT" not in source
    )
    database = tmp_path / "home" / "prefect.db"

    killed = _python(
        OURS, tmp_path / "home", **{KILL_POINT_VARIABLE: f"prefect-migration:{killed_in}"}
    )
    assert killed.returncode == -9, killed.stderr
    assert _revision(database) == last_complete

    finished = _python(PREFECTS, tmp_path / "home")
    assert finished.returncode == 0, finished.stderr
    assert _schema_and_rows(database) == prefects_database


def _prefect_migrations() -> list[Script]:
    """Prefect's SQLite migrations, oldest first."""
    from alembic.script import ScriptDirectory
    from prefect.server.database import provide_database_interface
    from prefect.server.database.alembic_commands import alembic_config

    script = ScriptDirectory.from_config(alembic_config())
    script.version_locations = [str(provide_database_interface().orm.versions_dir)]
    return list(reversed(list(script.walk_revisions())))


@pytest.mark.parametrize(
    "setting",
    [
        {"PREFECT_API_DATABASE_MIGRATE_ON_START": "false"},
        {"PREFECT_API_DATABASE_CONNECTION_URL": "sqlite+aiosqlite:///:memory:"},
        {"PREFECT_API_DATABASE_CONNECTION_URL": "postgresql+asyncpg://u:p@127.0.0.1:9/prefect"},
    ],
    ids=["migrations-off", "in-memory", "postgres"],
)
def test_a_database_prefect_does_not_migrate_on_start_or_not_a_sqlite_file_is_left_alone(
    tmp_path: Path, setting: dict[str, str]
) -> None:
    result = _python(OURS, tmp_path / "home", **setting)

    assert (result.returncode, result.stdout, result.stderr) == (0, "False\n", "")
    assert not (tmp_path / "home" / "prefect.db").exists()


def test_serve_creates_a_missing_database_before_prefects_server_starts(
    tmp_path: Path, new_prefect_home: Path
) -> None:
    log = tmp_path / "server.log"

    with log.open("ab") as output:
        migrate_a_new_database(output)

    assert _revision(new_prefect_home / "prefect.db") == _prefect_migrations()[-1].revision
    assert log.read_bytes() == b""


@pytest.mark.parametrize("configured", ["a database file", "a database URL"])
def test_serve_leaves_an_existing_or_configured_database_to_prefects_server(
    tmp_path: Path, new_prefect_home: Path, monkeypatch: pytest.MonkeyPatch, configured: str
) -> None:
    if configured == "a database file":
        new_prefect_home.mkdir()
        (new_prefect_home / "prefect.db").touch()
    else:
        monkeypatch.setenv(DATABASE_URL_VARIABLES[0], "postgresql+asyncpg://127.0.0.1:9/p")
    started: list[object] = []
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: started.append(args))

    with (tmp_path / "server.log").open("ab") as output:
        migrate_a_new_database(output)

    assert started == []
