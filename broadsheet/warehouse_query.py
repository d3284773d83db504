"""Reading the warehouse with DuckDB: one view per table, and the queries the CLI offers.

Every view reads its table's Parquet files with ``hive_partitioning`` and ``union_by_name``,
exactly as the README tells users to; a table with no file yet is an empty view with the
table's schema, so queries never fail just because, say, nothing was ever rejected.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from schemas import ARTICLES_PARTITION_COLUMNS, PARTITIONED_TABLES, TABLE_SCHEMAS
from transforms import article_id


class WarehouseMissingError(Exception):
    """The directory holds no warehouse. Not retryable: run an ingest first."""

    retryable = False


class QueryError(Exception):
    """DuckDB rejected a query. Not retryable: fix the SQL."""

    retryable = False


@dataclass(frozen=True, slots=True)
class Result:
    """Column names and rows of a query."""

    columns: list[str]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def connect(root: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a view per warehouse table."""
    if not (root / "runs").is_dir():
        raise WarehouseMissingError(
            f"no warehouse at {root}: run 'broadsheet run --warehouse {root}' first"
        )
    connection = duckdb.connect()
    for table, schema in TABLE_SCHEMAS.items():
        directory = root / table
        pattern = "**/*.parquet" if table in PARTITIONED_TABLES else "*.parquet"
        if any(directory.glob(pattern)):
            source = _quote(str(directory / pattern))
            connection.execute(
                f"CREATE VIEW {table} AS SELECT * FROM read_parquet({source}, "
                "hive_partitioning = true, union_by_name = true)"
            )
        else:
            columns = [
                f'CAST(NULL AS {_duckdb_type(field.type)}) AS "{field.name}"' for field in schema
            ]
            if table in PARTITIONED_TABLES:
                columns += [
                    f'CAST(NULL AS BIGINT) AS "{name}"' for name in ARTICLES_PARTITION_COLUMNS
                ]
            connection.execute(f"CREATE VIEW {table} AS SELECT {', '.join(columns)} WHERE false")
    return connection


def query(root: Path, sql: str) -> Result:
    """Run one SQL statement against the warehouse views."""
    connection = connect(root)
    try:
        cursor = connection.execute(sql)
    except duckdb.Error as error:
        raise QueryError(str(error).splitlines()[0]) from error
    columns = [column[0] for column in cursor.description or []]
    return Result(columns, cursor.fetchall())


def recent_runs(root: Path, limit: int) -> Result:
    """The latest runs, newest first, with duration and throughput."""
    return query(
        root,
        f"""
        SELECT run_id, started_at,
               round(epoch_ms(finished_at) / 1000 - epoch_ms(started_at) / 1000, 1) AS seconds,
               files_seen, articles_written, versions_superseded, identical_duplicates,
               rejected, unchanged, skipped,
               round(files_seen / greatest(epoch_ms(finished_at) - epoch_ms(started_at), 1)
                     * 1000) AS files_per_second
        FROM runs ORDER BY started_at DESC LIMIT {int(limit)}""",
    )


def find_article(root: Path, id_or_url: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """An article by id or URL (any spelling of its canonical URL), and its other versions."""
    key = article_id(id_or_url) if "://" in id_or_url else id_or_url.strip()
    connection = connect(root)
    current = _records(connection.execute("SELECT * FROM articles WHERE article_id = ?", [key]))
    versions = _records(
        connection.execute(
            "SELECT * FROM article_versions WHERE article_id = ? ORDER BY published_at DESC", [key]
        )
    )
    return (current[0] if current else None), versions


def _records(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    columns = [column[0] for column in cursor.description or []]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def to_json_value(value: Any) -> Any:
    """A query value as plain JSON: timestamps as ISO 8601, decimals as numbers."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list | tuple):
        return [to_json_value(item) for item in value]
    if isinstance(value, dict):
        return {key: to_json_value(item) for key, item in value.items()}
    return value


def to_json(result: Result) -> str:
    """A JSON array of row objects."""
    return json.dumps(
        [{k: to_json_value(v) for k, v in record.items()} for record in result.records()],
        ensure_ascii=False,
        indent=1,
    )


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _duckdb_type(arrow_type: Any) -> str:
    """The DuckDB type of an Arrow type, for the typed empty views."""
    if pa.types.is_string(arrow_type):
        return "VARCHAR"
    if pa.types.is_int64(arrow_type):
        return "BIGINT"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMPTZ"
    if pa.types.is_list(arrow_type):
        return f"{_duckdb_type(arrow_type.value_type)}[]"
    if pa.types.is_struct(arrow_type):
        fields = ", ".join(f'"{f.name}" {_duckdb_type(f.type)}' for f in arrow_type)
        return f"STRUCT({fields})"
    raise TypeError(f"no DuckDB type for {arrow_type}")
