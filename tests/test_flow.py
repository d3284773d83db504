"""The ingest flow end to end: a real run into a temp warehouse, read back by Polars and DuckDB."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from prefect import flow
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from broadsheet.pipeline import Batch, RunSummary
from broadsheet.resolve import RUN_OUTCOME_COLUMNS
from flows.ingest import _unvisited, ingest
from schemas import ARTICLES_SCHEMA, SCHEMA_VERSION

pytestmark = pytest.mark.usefixtures("prefect_harness")

EXPECTED_PARTITIONS = {
    "year=2019/month=6",
    "year=2020/month=1",
    "year=2020/month=5",
    "year=2020/month=7",
    "year=2020/month=10",
    "year=2021/month=1",
    "year=2021/month=3",
    "year=2022/month=11",
    "year=2024/month=2",
}
EXPECTED_REJECTS = {
    "empty.md": "empty_file",
    "binary-image-saved-as-md.md": "binary_content",
    "header-cut-short.md": "truncated_header",
    "front-matter-unclosed.md": "truncated_header",
    "notes-without-header.md": "unknown_format",
    "latin1-encoded.md": "not_utf8",
}


def _relative_files(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


@pytest.fixture(scope="module")
def sample_run(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> RunSummary:
    warehouse = tmp_path_factory.mktemp("warehouse")
    return ingest([str(sample_dir)], str(warehouse))


def test_run_writes_exactly_the_expected_files(sample_run: RunSummary) -> None:
    expected = {f"articles/{partition}/part-0.parquet" for partition in EXPECTED_PARTITIONS}
    expected |= {f"{table}/part-0.parquet" for table in ("rejects", "skips", "runs", "ledger")}
    assert _relative_files(sample_run.warehouse) == expected | {"_lock"}
    assert {
        p.relative_to(sample_run.warehouse).as_posix() for p in sample_run.committed_files
    } == expected


def test_counts_reconcile(sample_run: RunSummary) -> None:
    assert sample_run.outcomes == {"article_written": 17, "rejected": 6}
    assert sample_run.files_seen == 23
    runs = pl.read_parquet(sample_run.warehouse / "runs" / "*.parquet").row(0, named=True)
    outcome_columns = list(RUN_OUTCOME_COLUMNS.values())
    assert runs["files_seen"] == sum(runs[column] for column in outcome_columns) == 23
    assert runs["run_id"] == sample_run.run_id


def test_polars_reads_articles_with_hive_partitions(sample_run: RunSummary) -> None:
    articles = pl.scan_parquet(
        sample_run.warehouse / "articles" / "**" / "*.parquet", hive_partitioning=True
    ).collect()
    assert articles.height == 17
    assert articles.columns == [*ARTICLES_SCHEMA.names, "year", "month"]
    rfi = articles.filter(pl.col("source_path").str.ends_with("rfi-harbour-cleanup.md"))
    row = rfi.row(0, named=True)
    assert (row["year"], row["month"]) == (2024, 2)
    assert len(row["paragraphs"]) == 11
    assert row["headings"] == ["学校也将参与"]
    assert [link["platform"] for link in row["share_links"]] == [
        "facebook",
        "whatsapp",
        "whatsapp",
        "x",
    ]
    assert str(row["published_at"]) == "2024-02-17 14:45:01+00:00"
    assert articles.get_column("source_format").value_counts().sort("source_format").rows() == [
        ("bare", 7),
        ("dated", 3),
        ("front_matter", 5),
        ("front_matter_html", 2),
    ]


def test_duckdb_reads_every_table(sample_run: RunSummary) -> None:
    root = sample_run.warehouse
    count = duckdb.execute(
        f"SELECT count(*), count(DISTINCT article_id) FROM read_parquet("
        f"'{root}/articles/**/*.parquet', hive_partitioning=true, union_by_name=true)"
    ).fetchall()[0]
    assert count == (17, 17)
    rejects = dict(
        duckdb.execute(
            f"SELECT regexp_extract(source_path, '[^/]+$'), reason "
            f"FROM read_parquet('{root}/rejects/*.parquet')"
        ).fetchall()
    )
    assert rejects == EXPECTED_REJECTS
    details = duckdb.execute(
        f"SELECT detail FROM read_parquet('{root}/rejects/*.parquet')"
    ).fetchall()
    assert all(detail and detail[0] for detail in details)


def test_parquet_files_carry_schema_and_parser_versions(sample_run: RunSummary) -> None:
    for path in sample_run.committed_files:
        metadata = pq.read_metadata(path).metadata
        assert metadata[b"broadsheet.schema_version"] == str(SCHEMA_VERSION).encode()
        assert metadata[b"broadsheet.run_id"] == sample_run.run_id.encode()


def test_no_staging_or_temporary_files_remain(sample_run: RunSummary) -> None:
    leftovers = [
        p
        for p in sample_run.warehouse.rglob("*")
        if p.name.startswith(("_", ".")) and p.name not in ("_staging", "_lock")
    ]
    assert leftovers == []
    assert list((sample_run.warehouse / "_staging").iterdir()) == []


def test_same_rows_in_same_order_whatever_the_batch_size(sample_dir: Path, tmp_path: Path) -> None:
    lineage = ["run_id", "ingested_at"]

    def rows(batch_size: int) -> pl.DataFrame:
        summary = ingest([str(sample_dir)], str(tmp_path / f"b{batch_size}"), batch_size)
        return pl.read_parquet(
            summary.warehouse / "articles" / "**" / "*.parquet", hive_partitioning=True
        ).drop(lineage)

    assert rows(1).equals(rows(500))


def test_hidden_and_special_files_are_recorded_as_skips(sample_dir: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "article.md").write_bytes((sample_dir / "news" / "nyt-style-library.md").read_bytes())
    (inputs / ".draft.md").write_text("hidden")
    os.mkfifo(inputs / "fifo")
    expected = ["hidden", "not_regular_file"]
    with contextlib.suppress(OSError):  # a filesystem that takes only UTF-8 names refuses it
        Path(os.fsdecode(os.path.join(os.fsencode(inputs), b"caf\xe9.md"))).write_text("x")
        expected.append("undecodable_name")
    summary = ingest([str(inputs)], str(tmp_path / "warehouse"))
    assert summary.outcomes == {"article_written": 1, "skipped": len(expected)}
    skips = pl.read_parquet(summary.warehouse / "skips" / "*.parquet")
    assert sorted(skips.get_column("reason").to_list()) == expected


def test_thread_pool_tasks_get_their_batch_quoted_and_other_callers_as_is() -> None:
    """Quoted, Prefect does not walk a batch's thousands of files looking for futures."""
    batch = Batch(0, (), 1)

    runner: TaskRunner[Any] = ThreadPoolTaskRunner(max_workers=1)

    @flow(task_runner=runner)
    def wrapper_in_a_flow() -> str:
        return type(_unvisited(batch)).__name__

    assert wrapper_in_a_flow() == "quote"
    assert _unvisited(batch) is batch
