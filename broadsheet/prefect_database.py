"""Prefect's SQLite database brought to Prefect's schema before its temporary server starts,
through Python's own ``sqlite3`` driver.

Prefect's server migrates its database as it starts, through its async SQLite driver
(aiosqlite), which hands each of tens of thousands of statements to a thread and back: on a
new Prefect home that made a first ``broadsheet run`` take 20-27 s instead of 7 (measured).
``migrate_sqlite_database`` runs the same migration scripts (Prefect's own, with the options
Prefect's migration environment gives them) on ``sqlite3`` first, in 4-8 s; the server then
finds the database current (a first run took 12-15 s). As in Prefect, each migration is a
transaction of its own (but the few of Prefect's that commit part-way to backfill rows in
batches), so an interrupted one leaves the database at the last revision it completed, and
whatever fails here is left to the server, which migrates from there.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broadsheet.fault_injection import kill_point

if TYPE_CHECKING:
    from alembic.runtime.migration import MigrationContext, MigrationInfo


def migrate_sqlite_database() -> bool:
    """Bring Prefect's database to Prefect's head revision when it is a SQLite file, Prefect
    is set to migrate on start and the database is behind. Returns whether it did; False
    when there was nothing to do, or on any failure (a speed-up only: Prefect's server then
    migrates whatever is left)."""
    try:
        return _migrate_sqlite_database()
    except Exception:
        return False


def _migrate_sqlite_database() -> bool:
    import sqlalchemy
    from prefect.server.database import provide_database_interface
    from prefect.settings import get_current_settings

    if not get_current_settings().server.database.migrate_on_start:
        return False
    database = provide_database_interface()
    url = sqlalchemy.engine.make_url(database.database_config.connection_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:") or url.query:
        return False
    Path(str(url.database)).parent.mkdir(parents=True, exist_ok=True)
    engine = sqlalchemy.create_engine(
        url.set(drivername="sqlite"), poolclass=sqlalchemy.pool.NullPool
    )
    sqlalchemy.event.listen(engine, "connect", _prepare_connection)
    sqlalchemy.event.listen(engine, "begin", _begin_immediate)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore",
                message="Skipped unsupported reflection of expression-based index",
                category=sqlalchemy.exc.SAWarning,
            )
            return _upgrade_to_head(engine, database)
    finally:
        engine.dispose()


def _upgrade_to_head(engine: Any, database: Any) -> bool:
    from alembic.runtime.environment import EnvironmentContext
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from prefect.server.database.alembic_commands import alembic_config

    config = alembic_config()
    script = ScriptDirectory.from_config(config)
    script.version_locations = [str(database.orm.versions_dir)]
    head = script.get_current_head()
    with engine.connect() as connection:
        if MigrationContext.configure(connection).get_current_revision() == head:
            return False
        connection.commit()  # else the migrations would all run in the check's transaction
        environment = EnvironmentContext(
            config,
            script,
            fn=lambda revision, _: script._upgrade_revs("head", revision),
            destination_rev="head",
        )
        environment.configure(
            connection=connection,
            target_metadata=database.Base.metadata,
            include_schemas=True,
            render_as_batch=True,
            transaction_per_migration=True,
            template_args={"dialect": "sqlite"},
            on_version_apply=_migration_applied,
        )
        with environment.begin_transaction():
            environment.run_migrations()
    return True


def _prepare_connection(connection: Any, _: object) -> None:
    """The connection settings of Prefect's SQLite engine, with foreign keys off as Prefect's
    migration environment has them; ``BEGIN`` is left to ``_begin_immediate`` (the driver's
    own would leave schema changes outside transactions)."""
    connection.isolation_level = None
    cursor = connection.cursor()
    for pragma in (
        "journal_mode = WAL",
        "foreign_keys = OFF",
        "legacy_alter_table = OFF",
        "synchronous = NORMAL",
        "busy_timeout = 60000",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _begin_immediate(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _migration_applied(
    ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
) -> None:
    """Called by alembic inside each migration's transaction, before it commits."""
    kill_point(f"prefect-migration:{step.up_revision_id}")


if __name__ == "__main__":
    migrate_sqlite_database()
