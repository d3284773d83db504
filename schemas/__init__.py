"""Arrow schemas of every Broadsheet table: the one source of truth for columns and types."""

from schemas.tables import (
    ARTICLE_VERSIONS_SCHEMA,
    ARTICLES_PARTITION_COLUMNS,
    ARTICLES_SCHEMA,
    FILE_FACTS_SCHEMA,
    LEDGER_SCHEMA,
    PARTITIONED_TABLES,
    REJECTS_SCHEMA,
    REPEATING_COLUMNS,
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
    "ARTICLE_VERSIONS_SCHEMA",
    "FILE_FACTS_SCHEMA",
    "LEDGER_SCHEMA",
    "PARTITIONED_TABLES",
    "REJECTS_SCHEMA",
    "REPEATING_COLUMNS",
    "RUNS_SCHEMA",
    "SCHEMA_VERSION",
    "SHARE_LINK_TYPE",
    "SKIPS_SCHEMA",
    "TABLE_SCHEMAS",
    "describe",
]
