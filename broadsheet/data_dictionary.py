"""The data dictionary, generated from ``schemas``: every table, column, type and meaning."""

from __future__ import annotations

import pyarrow as pa

from broadsheet.warehouse_commit import LOG_TABLES, MAX_PARTITION_FILES
from schemas import (
    ARTICLES_PARTITION_COLUMNS,
    PARTITIONED_TABLES,
    SCHEMA_VERSION,
    TABLE_SCHEMAS,
    describe,
)

TABLE_PURPOSES = {
    "articles": "One row per article: its current (latest published) version.",
    "article_versions": "Every other version of each article; nothing read is thrown away.",
    "rejects": "Input files that did not become articles, with a stable reason code.",
    "skips": "Paths found but deliberately not read (hidden, not regular, repeated).",
    "runs": "One row per run, with its parameters and the count of files per outcome.",
    "ledger": "One row per input path read: what incremental re-runs compare against.",
}


def type_name(arrow_type: pa.DataType) -> str:
    """A readable name of an Arrow type."""
    if pa.types.is_list(arrow_type):
        return f"list<{type_name(arrow_type.value_type)}>"
    if pa.types.is_struct(arrow_type):
        inner = ", ".join(f"{field.name}: {type_name(field.type)}" for field in arrow_type)
        return f"struct<{inner}>"
    if pa.types.is_timestamp(arrow_type):
        return f"timestamp[{arrow_type.unit}, {arrow_type.tz or 'naive'}]"
    return str(arrow_type)


def render() -> str:
    """The data dictionary as Markdown."""
    lines = [
        "# Broadsheet data dictionary",
        "",
        "Generated from `schemas/tables.py` by `broadsheet dictionary`; do not edit by hand "
        "(`tests/test_consume.py` fails when it is out of date).",
        "",
        f"Schema version {SCHEMA_VERSION}. Each table is a directory of Parquet files under "
        "the warehouse root.",
        "",
    ]
    for table, schema in TABLE_SCHEMAS.items():
        lines += [f"## `{table}`", "", TABLE_PURPOSES[table], ""]
        if table in PARTITIONED_TABLES:
            keys = ", ".join(f"`{name}`" for name in ARTICLES_PARTITION_COLUMNS)
            lines += [
                f"Hive-partitioned by {keys} (int) of `published_at` in UTC: "
                f"`{table}/year=2024/month=2/part-0.parquet`, `part-1.parquet`, ... (at most "
                f"{MAX_PARTITION_FILES} files a partition).",
                "",
            ]
        elif table in LOG_TABLES:
            lines += [
                f"`{table}/part-0.parquet`, `part-1.parquet`, ...: each run that adds rows adds "
                f"a file (at most {MAX_PARTITION_FILES}; then they are merged into the first).",
                "",
            ]
        else:
            lines += [f"One file: `{table}/part-0.parquet`.", ""]
        lines += ["| column | type | nullable | meaning |", "|---|---|---|---|"]
        for field in schema:
            nullable = "yes" if field.nullable else "no"
            lines.append(
                f"| `{field.name}` | {type_name(field.type)} | {nullable} | {describe(field)} |"
            )
        lines.append("")
    return "\n".join(lines)
