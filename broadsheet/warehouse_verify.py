"""Checking a warehouse against the guarantees Broadsheet writes it to keep.

``verify`` reads every file of the warehouse (their footers, then the tables through DuckDB)
and reports each broken guarantee with the rows or files that break it. A warehouse that only
Broadsheet has written passes every check; a failure means something outside it changed the
files (a copy cut short, a file moved or edited by hand, a disk fault), or a bug.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from broadsheet.resolve import RUN_OUTCOME_COLUMNS, Outcome
from broadsheet.warehouse_commit import JOURNAL_NAME
from broadsheet.warehouse_query import connect
from schemas import PARTITIONED_TABLES, TABLE_SCHEMAS

SHOWN = 5
"""Rows or files a failed check names, at most; it counts them all."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One guarantee, and what breaks it (nothing when it holds)."""

    name: str
    guarantee: str
    broken: int
    examples: tuple[str, ...] = ()

    @property
    def holds(self) -> bool:
        """Whether nothing breaks the guarantee."""
        return self.broken == 0


def verify(root: Path) -> list[CheckResult]:
    """Every check of the warehouse at ``root``, in order; raises ``WarehouseMissingError``
    when there is none. Files Arrow cannot read are reported, and the table checks then
    skipped: they would fail on those files rather than on the rows."""
    unreadable = _unreadable_files(root)
    results = [
        CheckResult(
            "files_readable",
            "every table file is Parquet that Arrow can read",
            len(unreadable),
            tuple(unreadable[:SHOWN]),
        ),
        _no_journal(root),
    ]
    if unreadable:
        return results
    connection = connect(root)
    connection.execute("SET TimeZone = 'UTC'")  # partitions are UTC months
    try:
        results += [check(connection) for check in _TABLE_CHECKS]
    finally:
        connection.close()
    return results


def _unreadable_files(root: Path) -> list[str]:
    """Table files whose Parquet footer cannot be read, each with Arrow's reason."""
    broken = []
    for table in TABLE_SCHEMAS:
        pattern = "**/*.parquet" if table in PARTITIONED_TABLES else "*.parquet"
        for path in sorted((root / table).glob(pattern)):
            try:
                pq.read_metadata(path)
            except (OSError, ValueError) as error:  # ArrowInvalid is a ValueError
                broken.append(f"{path}: {error}")
    return broken


def _no_journal(root: Path) -> CheckResult:
    journal = root / JOURNAL_NAME
    present = journal.exists()
    return CheckResult(
        "no_interrupted_commit",
        "no commit was left half-applied (the next run would complete it)",
        int(present),
        (f"{journal} exists: run 'broadsheet run' on this warehouse to complete it",)
        if present
        else (),
    )


def _rows_check(
    name: str, guarantee: str, sql: str
) -> Callable[[duckdb.DuckDBPyConnection], CheckResult]:
    """A check whose ``sql`` selects one line of text for each row or key that breaks it."""

    def check(connection: duckdb.DuckDBPyConnection) -> CheckResult:
        problems = [line for (line,) in connection.execute(sql).fetchall()]
        return CheckResult(name, guarantee, len(problems), tuple(problems[:SHOWN]))

    return check


_OUTCOME_SUM = " + ".join(RUN_OUTCOME_COLUMNS.values())
_STORED_OUTCOMES = ", ".join(
    f"'{outcome.value}'"
    for outcome in (
        Outcome.ARTICLE_WRITTEN,
        Outcome.VERSION_SUPERSEDED,
        Outcome.IDENTICAL_DUPLICATE,
    )
)

_TABLE_CHECKS = (
    _rows_check(
        "one_row_per_article",
        "articles holds one row per article_id",
        "SELECT article_id || ': ' || count(*) || ' rows' FROM articles GROUP BY article_id "
        "HAVING count(*) > 1 ORDER BY 1",
    ),
    _rows_check(
        "one_row_per_version",
        "each content hash is stored once, in articles or article_versions",
        "SELECT content_sha256 || ': ' || count(*) || ' rows' FROM (SELECT content_sha256 "
        "FROM articles UNION ALL SELECT content_sha256 FROM article_versions) "
        "GROUP BY content_sha256 HAVING count(*) > 1 ORDER BY 1",
    ),
    _rows_check(
        "ledger_versions_stored",
        "every version the ledger records as stored (written, superseded or an identical "
        "duplicate of one) is in articles or article_versions",
        "SELECT source_path || ': ' || outcome || ', ' || content_sha256 || ' not stored' "
        f"FROM ledger WHERE outcome IN ({_STORED_OUTCOMES}) AND content_sha256 NOT IN "
        "(SELECT content_sha256 FROM articles UNION ALL SELECT content_sha256 FROM "
        "article_versions) ORDER BY 1",
    ),
    _rows_check(
        "rows_in_their_month",
        "each article row is in the partition of its publication month (UTC)",
        "SELECT source_path || ' (published ' || strftime(published_at, '%Y-%m') "
        "|| ') in year=' || year || '/month=' || month FROM (SELECT source_path, year, month, "
        "published_at FROM articles UNION ALL SELECT source_path, year, month, published_at "
        "FROM article_versions) WHERE year != year(published_at) "
        "OR month != month(published_at) ORDER BY 1",
    ),
    _rows_check(
        "one_ledger_row_per_path",
        "the ledger holds one row per input path",
        "SELECT source_path || ': ' || count(*) || ' rows' FROM ledger GROUP BY source_path "
        "HAVING count(*) > 1 ORDER BY 1",
    ),
    _rows_check(
        "runs_add_up",
        "each run's outcome columns sum to its files_seen",
        f"SELECT run_id || ': ' || ({_OUTCOME_SUM}) || ' outcomes for ' || files_seen "
        f"|| ' files seen' FROM runs WHERE {_OUTCOME_SUM} != files_seen ORDER BY 1",
    ),
)
