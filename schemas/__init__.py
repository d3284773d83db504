"""Arrow schemas of every Broadsheet table: the single source of truth for column names and types."""

from schemas.tables import (
    ARTICLES_PARTITION_COLUMNS,
    ARTICLES_SCHEMA,
    REJECTS_SCHEMA,
    RUNS_SCHEMA,
    SCHEMA_VERSION,
    SHARE_LINK_TYPE,
    SKIPS_SCHEMA,
    TABLE_SCHEMAS,
    describe,
)

__all__ = [
    "ARTICLES_PARTITION_COLUMNS",
    "ARTICLES_SCHEMA",
    "REJECTS_SCHEMA",
    "RUNS_SCHEMA",
    "SCHEMA_VERSION",
    "SHARE_LINK_TYPE",
    "SKIPS_SCHEMA",
    "TABLE_SCHEMAS",
    "describe",
]
