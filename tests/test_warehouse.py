"""Warehouse guarantees: incremental re-runs, one row per article, versions, duplicates,
locking, one file per partition, schema upgrades and determinism.

These call ``run_ingest`` with in-process batches (no Prefect) to stay fast; the Prefect flow
runs exactly the same function (tests/test_flow.py).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadsheet import warehouse_commit
from broadsheet.pipeline import RunSummary, count_files_to_read, run_ingest
from broadsheet.read_inputs import Discovery, discover, prefetch_discovery
from broadsheet.resolve import RUN_OUTCOME_COLUMNS, Outcome
from broadsheet.warehouse_commit import (
    DATA_FILE,
    MAX_PARTITION_FILES,
    PART_FILE,
    RowGroupWriter,
    Warehouse,
    WarehouseBusyError,
    files_to_merge,
    open_warehouse,
    read_ledger,
    read_table,
    sorted_rows,
    warehouse_lock,
)
from broadsheet.warehouse_verify import verify
from schemas import ARTICLES_SCHEMA, REPEATING_COLUMNS, SCHEMA_VERSION
from tests.archive_files import bare, with_front_matter

LINEAGE = ["run_id", "ingested_at"]
JAN_2024 = 1_704_067_200_000
DAY = 86_400_000


def write_article(directory: Path, name: str, *, url: str, epoch_ms: int, text: str) -> Path:
    """A bare-format article file."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(bare(f"Title of {url}", url, epoch_ms, f"<p>{text}</p>"), encoding="utf-8")
    return path


def table(root: Path, name: str) -> pl.DataFrame:
    """A warehouse table as Polars reads it, in a stable order, without run lineage."""
    files = sorted((root / name).rglob("*.parquet"))
    if not files:
        return pl.DataFrame()
    frame = (
        pl.read_parquet(root / name / "**" / "*.parquet", hive_partitioning=True)
        if name in ("articles", "article_versions")
        else pl.read_parquet(files)
    )
    frame = frame.drop([c for c in LINEAGE if c in frame.columns])
    return frame.sort(frame.columns[:3])


def snapshot(root: Path) -> dict[str, pl.DataFrame]:
    """Every table's content that must not depend on how the runs were cut."""
    return {
        name: table(root, name) for name in ("articles", "article_versions", "rejects", "skips")
    }


def file_states(root: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime_ns) of every table file: changes when a file is rewritten."""
    return {
        str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in root.rglob("*.parquet")
        if "_staging" not in p.parts
    }


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    directory = tmp_path / "inputs"
    for index in range(6):
        write_article(
            directory,
            f"a{index}.md",
            url=f"https://news.example/{index}",
            epoch_ms=JAN_2024 + index * 20 * DAY,
            text=f"Story {index}.",
        )
    (directory / "bad.md").write_text("no header here\n", encoding="utf-8")
    return directory


def ingest(inputs: Path | list[Path], warehouse: Path, **options: int) -> RunSummary:
    """One run, after which ``broadsheet verify`` must find every guarantee kept."""
    paths = [str(p) for p in (inputs if isinstance(inputs, list) else [inputs])]
    summary = run_ingest(paths, str(warehouse), batch_size=options.get("batch_size", 500))
    broken = [result for result in verify(warehouse) if not result.holds]
    assert not broken, broken
    return summary


def test_rerun_on_unchanged_inputs_reads_nothing_and_rewrites_nothing(
    inputs: Path, tmp_path: Path
) -> None:
    warehouse = tmp_path / "warehouse"
    first = ingest(inputs, warehouse)
    assert first.outcomes == {"article_written": 6, "rejected": 1}
    before = file_states(warehouse)
    tables_before = snapshot(warehouse)

    second = ingest(inputs, warehouse)

    assert second.outcomes == {"unchanged": 7}
    after = file_states(warehouse)
    assert {k: v for k, v in after.items() if not k.startswith("runs")} == {
        k: v for k, v in before.items() if not k.startswith("runs")
    }
    assert after["runs/part-0.parquet"] != before["runs/part-0.parquet"]
    assert all(snapshot(warehouse)[name].equals(frame) for name, frame in tables_before.items())
    assert pl.read_parquet(warehouse / "runs" / "part-0.parquet").height == 2


def test_only_repeating_columns_are_dictionary_encoded(inputs: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "wh"
    ingest(inputs, warehouse)
    files = sorted(warehouse.rglob("*.parquet"))
    tables = {path.relative_to(warehouse).parts[0] for path in files}
    assert {"articles", "ledger", "rejects", "runs"} <= tables
    for path in files:
        metadata = pq.read_metadata(path)
        for group in range(metadata.num_row_groups):
            for index in range(metadata.num_columns):
                chunk = metadata.row_group(group).column(index)
                column = chunk.path_in_schema.split(".")[0]
                assert chunk.has_dictionary_page == (column in REPEATING_COLUMNS), (path, column)


def test_touched_but_identical_file_is_unchanged(inputs: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse"
    ingest(inputs, warehouse)
    os.utime(inputs / "a1.md", ns=(time.time_ns(), time.time_ns()))
    assert ingest(inputs, warehouse).outcomes == {"unchanged": 7}
    assert ingest(inputs, warehouse).outcomes == {"unchanged": 7}


def test_changed_file_is_reprocessed_and_its_old_version_kept(inputs: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse"
    ingest(inputs, warehouse)
    write_article(
        inputs,
        "a2.md",
        url="https://news.example/2",
        epoch_ms=JAN_2024 + 40 * DAY + 3_600_000,
        text="Story 2, corrected.",
    )

    summary = ingest(inputs, warehouse)

    assert summary.outcomes == {"article_written": 1, "unchanged": 6}
    articles = table(warehouse, "articles")
    versions = table(warehouse, "article_versions")
    assert articles.height == 6
    row = articles.filter(pl.col("url") == "https://news.example/2").row(0, named=True)
    assert row["paragraphs"] == ["Story 2, corrected."]
    assert versions.get_column("paragraphs").to_list() == [["Story 2."]]


def test_latest_version_wins_and_superseded_versions_are_kept(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    write_article(inputs, "old.md", url="https://news.example/x", epoch_ms=JAN_2024, text="v1")
    write_article(
        inputs,
        "new.md",
        url="HTTPS://News.Example:443/x#top",
        epoch_ms=JAN_2024 + 40 * DAY,
        text="v2",
    )
    summary = ingest(inputs, tmp_path / "warehouse")
    assert summary.outcomes == {"article_written": 1, "version_superseded": 1}
    articles = table(tmp_path / "warehouse", "articles")
    versions = table(tmp_path / "warehouse", "article_versions")
    assert articles.get_column("paragraphs").to_list() == [["v2"]]
    assert (articles.row(0, named=True)["year"], articles.row(0, named=True)["month"]) == (2024, 2)
    assert versions.get_column("paragraphs").to_list() == [["v1"]]
    assert versions.row(0, named=True)["month"] == 1


def test_versions_of_one_month_in_one_run_are_split_between_the_tables(tmp_path: Path) -> None:
    """The parse tasks stage a month's rows together, whichever table each goes to."""
    inputs = tmp_path / "inputs"
    write_article(inputs, "a/old.md", url="https://news.example/x", epoch_ms=JAN_2024, text="v1")
    write_article(inputs, "b/other.md", url="https://news.example/y", epoch_ms=JAN_2024, text="y")
    write_article(inputs, "c/copy.md", url="https://news.example/y", epoch_ms=JAN_2024, text="y")
    write_article(
        inputs, "d/new.md", url="https://news.example/x", epoch_ms=JAN_2024 + 2 * DAY, text="v2"
    )
    summary = ingest(inputs, tmp_path / "warehouse")
    assert summary.outcomes == {
        "article_written": 2,
        "version_superseded": 1,
        "identical_duplicate": 1,
    }
    articles = table(tmp_path / "warehouse", "articles")
    versions = table(tmp_path / "warehouse", "article_versions")
    assert sorted(articles.get_column("paragraphs").to_list()) == [["v2"], ["y"]]
    assert versions.get_column("paragraphs").to_list() == [["v1"]]
    assert set(articles.get_column("month")) == set(versions.get_column("month")) == {1}


def test_an_older_version_arriving_later_goes_to_versions(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    write_article(
        inputs, "new.md", url="https://news.example/x", epoch_ms=JAN_2024 + 40 * DAY, text="v2"
    )
    ingest(inputs, tmp_path / "warehouse")
    write_article(inputs, "old.md", url="https://news.example/x", epoch_ms=JAN_2024, text="v1")
    summary = ingest(inputs, tmp_path / "warehouse")
    assert summary.outcomes == {"version_superseded": 1, "unchanged": 1}
    assert table(tmp_path / "warehouse", "articles").get_column("paragraphs").to_list() == [["v2"]]


def test_a_newer_version_moves_the_old_winner_to_versions(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    write_article(inputs, "old.md", url="https://news.example/x", epoch_ms=JAN_2024, text="v1")
    ingest(inputs, tmp_path / "warehouse")
    write_article(
        inputs, "new.md", url="https://news.example/x", epoch_ms=JAN_2024 + 40 * DAY, text="v2"
    )
    summary = ingest(inputs, tmp_path / "warehouse")
    assert summary.outcomes == {"article_written": 1, "unchanged": 1}
    root = tmp_path / "warehouse"
    assert table(root, "articles").get_column("paragraphs").to_list() == [["v2"]]
    assert table(root, "article_versions").get_column("paragraphs").to_list() == [["v1"]]
    assert not (root / "articles" / "year=2024" / "month=1").exists()


def test_ties_are_broken_the_same_way_whatever_the_order(tmp_path: Path) -> None:
    results = []
    for order in (("a.md", "b.md"), ("b.md", "a.md")):
        inputs = tmp_path / "-".join(order)
        warehouse = tmp_path / ("w-" + "-".join(order))
        for name, text in zip(order, ("first", "second"), strict=True):
            write_article(
                inputs, name, url="https://news.example/tie", epoch_ms=JAN_2024, text=text
            )
            ingest(inputs, warehouse)
        results.append(table(warehouse, "articles").get_column("paragraphs").to_list())
    texts = {tuple(map(tuple, result)) for result in results}
    assert len(texts) == 1


def test_identical_rescrape_is_counted_not_stored(inputs: Path, tmp_path: Path) -> None:
    shutil.copy(inputs / "a3.md", inputs / "a3-copy.md")
    warehouse = tmp_path / "warehouse"
    summary = ingest(inputs, warehouse)
    assert summary.outcomes == {"article_written": 6, "identical_duplicate": 1, "rejected": 1}
    assert table(warehouse, "articles").height == 6
    assert table(warehouse, "article_versions").is_empty()
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(inputs / "a4.md", again / "a4.md")
    assert ingest([inputs, again], warehouse).outcomes == {"unchanged": 8, "identical_duplicate": 1}


def test_new_parser_version_reprocesses_every_file_without_duplicating(
    inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = tmp_path / "warehouse"
    ingest(inputs, warehouse)
    monkeypatch.setattr("broadsheet.pipeline.PARSER_VERSION", "99.0.0")
    monkeypatch.setattr("broadsheet.rows.PARSER_VERSION", "99.0.0")
    summary = ingest(inputs, warehouse)
    assert summary.outcomes == {"article_written": 6, "rejected": 1}
    articles = table(warehouse, "articles")
    assert articles.height == 6
    assert set(articles.get_column("parser_version")) == {"99.0.0"}
    assert table(warehouse, "article_versions").is_empty()
    assert ingest(inputs, warehouse).outcomes == {"unchanged": 7}


def test_the_count_of_files_to_read_follows_the_ledger(
    inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = tmp_path / "warehouse"
    assert count_files_to_read(discover([inputs]), str(warehouse)) == 7
    ingest(inputs, warehouse)
    assert count_files_to_read(discover([inputs]), str(warehouse)) == 0
    os.utime(inputs / "a1.md", ns=(time.time_ns(), time.time_ns()))
    write_article(inputs, "new.md", url="https://news.example/new", epoch_ms=JAN_2024, text="N")
    assert count_files_to_read(discover([inputs]), str(warehouse)) == 2
    ingest(inputs, warehouse)
    monkeypatch.setattr("broadsheet.pipeline.PARSER_VERSION", "99.0.0")
    assert count_files_to_read(discover([inputs]), str(warehouse)) == 8


def _prefetched(inputs: Path) -> Discovery:
    """The listing the CLI prefetches for the next run, as ``ingest`` will ask for it."""
    discovery = prefetch_discovery([str(inputs)])
    assert discovery is not None
    return discovery


def test_a_run_takes_its_preflight_plan_only_while_the_ledger_is_unchanged(
    inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = tmp_path / "warehouse"
    ingest(inputs, warehouse)
    ledger_reads: list[Path] = []

    def counted(
        target: Warehouse,
        listed: pa.ChunkedArray | None = None,
        columns: Sequence[str] | None = None,
    ) -> object:
        ledger_reads.append(target.root)
        return read_ledger(target, listed, columns)

    monkeypatch.setattr("broadsheet.pipeline.read_ledger", counted)

    write_article(inputs, "new.md", url="https://news.example/new", epoch_ms=JAN_2024, text="N")
    assert count_files_to_read(_prefetched(inputs), str(warehouse)) == 1
    summary = ingest(inputs, warehouse)
    assert len(ledger_reads) == 1  # the count's; the run took its plan
    assert summary.outcomes == {"unchanged": 7, "article_written": 1}

    write_article(inputs, "newer.md", url="https://news.example/newer", epoch_ms=JAN_2024, text="M")
    assert count_files_to_read(_prefetched(inputs), str(warehouse)) == 1
    other = subprocess.run(  # another process commits to the warehouse in between
        [
            sys.executable,
            "-c",
            "import sys; from broadsheet.pipeline import run_ingest; "
            "run_ingest([sys.argv[1]], sys.argv[2])",
            str(inputs),
            str(warehouse),
        ],
        check=False,
    )
    assert other.returncode == 0
    summary = ingest(inputs, warehouse)
    assert len(ledger_reads) == 3  # the run planned again: newer.md is no longer new
    assert summary.outcomes == {"unchanged": 9}

    write_article(inputs, "last.md", url="https://news.example/last", epoch_ms=JAN_2024, text="L")
    assert count_files_to_read(discover([inputs]), str(warehouse)) == 1
    assert ingest(inputs, warehouse).outcomes == {"unchanged": 9, "article_written": 1}
    assert len(ledger_reads) == 5  # another listing than the count's: planned again


def test_a_run_over_a_few_new_files_reads_only_their_ledger_rows(
    inputs: Path, tmp_path: Path
) -> None:
    """A scheduled run over a folder of new files lists fewer paths than a quarter of the
    ledger: it reads the ledger's rows of its own paths only, and still sees them next time."""
    warehouse = tmp_path / "warehouse"
    ingest(inputs, warehouse)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    write_article(fresh, "f.md", url="https://news.example/fresh", epoch_ms=JAN_2024, text="F")
    assert ingest(fresh, warehouse).outcomes == {"article_written": 1}
    assert ingest(fresh, warehouse).outcomes == {"unchanged": 1}
    os.utime(fresh / "f.md", ns=(time.time_ns(), time.time_ns()))
    assert ingest(fresh, warehouse).outcomes == {"unchanged": 1}  # read, hashed, same bytes
    write_article(
        fresh, "f.md", url="https://news.example/fresh", epoch_ms=JAN_2024 + DAY, text="G"
    )
    assert ingest(fresh, warehouse).outcomes == {"article_written": 1}

    whole = read_ledger(open_warehouse(warehouse))
    assert whole is not None
    assert whole.num_rows == 8
    listed = pa.chunked_array([[str(fresh / "f.md")], []], pa.string())  # 1 path of 8: small
    mine = read_ledger(open_warehouse(warehouse), listed)
    assert mine is not None
    assert mine.to_pylist() == [
        row for row in whole.to_pylist() if row["source_path"] == str(fresh / "f.md")
    ]
    two_of_eight = pa.array(sorted(whole.column(0).to_pylist())[:2])  # not small: all rows
    assert read_ledger(open_warehouse(warehouse), two_of_eight) == whole


@pytest.mark.parametrize("listed", [None, pa.array(["/in/one.md"])])
def test_a_damaged_ledger_file_is_reported_by_name_whatever_the_listing(
    inputs: Path, tmp_path: Path, listed: pa.Array | None
) -> None:
    warehouse = tmp_path / "warehouse"
    ingest(inputs, warehouse)
    ledger = warehouse / "ledger" / "part-0.parquet"
    ledger.write_bytes(ledger.read_bytes()[:100])  # a copy cut short
    with pytest.raises(pa.ArrowInvalid, match=f"Could not open Parquet input source '{ledger}'"):
        read_ledger(open_warehouse(warehouse), listed)


def test_runs_reconcile_and_every_path_is_in_the_ledger_once(inputs: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse"
    (inputs / ".hidden.md").write_text("x")
    shutil.copy(inputs / "a0.md", inputs / "a0-copy.md")
    ingest(inputs, warehouse)
    write_article(
        inputs,
        "a0-later.md",
        url="https://news.example/0",
        epoch_ms=JAN_2024 + DAY,
        text="Story 0, later.",
    )
    ingest(inputs, warehouse)
    runs = pl.read_parquet(warehouse / "runs" / "part-0.parquet")
    outcome_columns = list(RUN_OUTCOME_COLUMNS.values())
    assert (
        runs.select(pl.sum_horizontal(outcome_columns)).to_series().to_list()
        == runs.get_column("files_seen").to_list()
        == [9, 10]
    )
    ledger = pl.read_parquet(warehouse / "ledger" / "*.parquet")
    assert ledger.get_column("source_path").is_unique().all()
    assert ledger.height == 9
    assert pl.read_parquet(warehouse / "skips" / "*.parquet").height == 1


def write_story(inputs: Path, index: int) -> None:
    """Story ``index`` of January 2024, published ``index`` days into the month."""
    write_article(
        inputs,
        f"{index:02d}.md",
        url=f"https://news.example/{index}",
        epoch_ms=JAN_2024 + index * DAY,
        text=f"Story {index}.",
    )


def test_a_partition_holds_at_most_a_few_files_over_many_runs(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    warehouse = tmp_path / "warehouse"
    partition = warehouse / "articles" / "year=2024" / "month=1"
    file_counts = []
    for index in range(2 * MAX_PARTITION_FILES + 2):
        write_story(inputs, index)
        ingest(inputs, warehouse)
        files = sorted(partition.iterdir())
        assert all(PART_FILE.fullmatch(path.name) for path in files), files
        file_counts.append(len(files))
        rows = pl.concat([pl.read_parquet(path) for path in files])
        assert rows.height == index + 1
        assert rows.get_column("article_id").is_unique().all()
        for path in files:
            published = pl.read_parquet(path).get_column("published_at")
            assert published.is_sorted()
    # Each run adds a file; the run that would make MAX_PARTITION_FILES + 1 merges them all.
    cycle = list(range(1, MAX_PARTITION_FILES + 1))
    assert file_counts == [*cycle, *cycle, 1, 2]
    assert set((warehouse / "articles").rglob("*.parquet")) == set(partition.iterdir())


def test_a_merge_leaves_a_file_much_larger_than_the_rest_as_it_is(tmp_path: Path) -> None:
    """Once a partition holds one large file, the commits that reach the file limit merge
    the small files that came after it and leave it alone (``files_to_merge``)."""
    inputs = tmp_path / "inputs"
    warehouse = tmp_path / "warehouse"
    partition = warehouse / "articles" / "year=2024" / "month=1"
    for index in range(600):  # 1 KB of hexadecimal digits each, about 300 KB compressed
        write_article(
            inputs,
            f"big-{index:03d}.md",
            url=f"https://news.example/big/{index}",
            epoch_ms=JAN_2024 + index * 60_000,
            text="".join(hashlib.sha512(f"{index}-{n}".encode()).hexdigest() for n in range(8)),
        )
    ingest(inputs, warehouse)
    large = partition / DATA_FILE
    inode = large.stat().st_ino
    for index in range(MAX_PARTITION_FILES):
        write_story(inputs, index)
        ingest(inputs, warehouse)
    names = sorted(path.name for path in partition.iterdir())
    assert names == [DATA_FILE, "part-1.parquet"]  # the eight small files merged into one
    assert large.stat().st_ino == inode
    rows = pl.read_parquet(partition / "part-1.parquet")
    assert sorted(rows.get_column("url").to_list()) == sorted(
        f"https://news.example/{index}" for index in range(MAX_PARTITION_FILES)
    )
    assert pl.read_parquet(large).height == 600


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=10**9), max_size=2 * MAX_PARTITION_FILES),
    adding=st.booleans(),
)
def test_a_merge_leaves_at_most_the_file_limit(sizes: list[int], adding: bool) -> None:
    merged = files_to_merge(sizes, adding)
    assert merged == sorted(set(merged))
    assert all(0 <= index < len(sizes) for index in merged)
    left = len(sizes) - len(merged) + (1 if merged or adding else 0)
    if len(sizes) + adding <= MAX_PARTITION_FILES:
        assert merged == []
    else:
        assert left <= MAX_PARTITION_FILES
        kept = [size for index, size in enumerate(sizes) if index not in merged]
        assert all(size >= max(sizes[index] for index in merged) for size in kept)


def test_files_to_merge_keeps_a_large_file_and_merges_files_of_one_size() -> None:
    assert files_to_merge([10] * MAX_PARTITION_FILES, adding=True) == list(
        range(MAX_PARTITION_FILES)
    )
    assert files_to_merge([1_000] + [10] * (MAX_PARTITION_FILES - 1), adding=True) == list(
        range(1, MAX_PARTITION_FILES)
    )
    assert files_to_merge([10] * MAX_PARTITION_FILES, adding=False) == []
    assert files_to_merge([10] * (MAX_PARTITION_FILES - 1), adding=True) == []


def _bytes_rewritten(commits: int, choose: Callable[[list[int]], list[int]]) -> int:
    """Bytes a partition's merges rewrite over ``commits`` commits that each add a file of
    one byte, when ``choose`` picks the files each merge takes."""
    sizes: list[int] = []
    rewritten = 0
    for _ in range(commits):
        merged = choose(sizes) if len(sizes) + 1 > MAX_PARTITION_FILES else []
        total = sum(sizes[index] for index in merged) + 1
        rewritten += total if merged else 0
        sizes = [size for index, size in enumerate(sizes) if index not in merged] + [total]
    return rewritten


def test_merges_rewrite_a_row_a_logarithmic_number_of_times() -> None:
    commits = 4_000
    tiered = _bytes_rewritten(commits, lambda sizes: files_to_merge(sizes, adding=True))
    every_file = _bytes_rewritten(commits, lambda sizes: list(range(len(sizes))))
    assert tiered <= commits * math.log(commits, 1.5)
    assert every_file > commits * commits / (4 * MAX_PARTITION_FILES)  # the former policy
    assert tiered * 20 < every_file, (tiered, every_file)


def _row_group_sizes(path: Path) -> list[int]:
    metadata = pq.read_metadata(path)
    return [metadata.row_group(group).num_rows for group in range(metadata.num_row_groups)]


def test_a_merged_file_is_one_row_group_not_one_a_merge_step(tmp_path: Path) -> None:
    """A merge writes a step at a time (rows up to the smallest last key of its inputs), and
    each step was its own row group: nine one-story files merged into nine one-row groups."""
    inputs = tmp_path / "inputs"
    warehouse = tmp_path / "warehouse"
    partition = warehouse / "articles" / "year=2024" / "month=1"
    for index in range(MAX_PARTITION_FILES + 1):
        write_story(inputs, index)
        ingest(inputs, warehouse)
    assert [path.name for path in partition.iterdir()] == [DATA_FILE]
    assert _row_group_sizes(partition / DATA_FILE) == [MAX_PARTITION_FILES + 1]


def test_partition_files_are_cut_into_row_groups_of_about_row_group_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = tmp_path / "inputs"
    warehouse = tmp_path / "warehouse"
    for index in range(40):
        write_article(
            inputs,
            f"{index:02d}.md",
            url=f"https://news.example/{index}",
            epoch_ms=JAN_2024 + index * 60_000,
            text=f"Story {index} " + "x" * 1_000,
        )
    monkeypatch.setattr(warehouse_commit, "ROW_GROUP_BYTES", 10_000)
    ingest(inputs, warehouse)
    path = warehouse / "articles" / "year=2024" / "month=1" / DATA_FILE
    written = pq.read_table(path, partitioning=None)
    sizes = _row_group_sizes(path)
    # Rows of about 1.1 KB of Arrow data: groups of the same number of rows, the last fewer.
    assert len(sizes) > 1
    assert len(set(sizes[:-1])) == 1
    assert 0 < sizes[-1] <= sizes[0]
    assert sizes[0] * written.nbytes // written.num_rows <= 10_000
    assert written.column("url").to_pylist() == [
        f"https://news.example/{index}" for index in range(40)
    ]


@settings(max_examples=80, deadline=None)
@given(
    pieces=st.lists(st.integers(min_value=0, max_value=40), max_size=12),
    limit=st.integers(min_value=1, max_value=400),
)
def test_the_row_group_writer_keeps_every_row_in_order_in_full_groups(
    tmp_path_factory: pytest.TempPathFactory, pieces: list[int], limit: int
) -> None:
    """Rows of 8 bytes (one int64 column) in pieces of any size: every row group but the
    last holds ``limit // 8`` rows (at least one), the last at most that, in order."""
    path = tmp_path_factory.mktemp("row-groups") / "part-0.parquet"
    schema = pa.schema([pa.field("n", pa.int64(), nullable=False)])
    starts = [sum(pieces[:index]) for index in range(len(pieces))]
    with pq.ParquetWriter(path, schema) as parquet:
        writer = RowGroupWriter(parquet, limit)
        for start, rows in zip(starts, pieces, strict=True):
            writer.write(pa.table({"n": range(start, start + rows)}, schema=schema))
        writer.flush()
    assert pq.read_table(path).column("n").to_pylist() == list(range(sum(pieces)))
    sizes = _row_group_sizes(path)
    group = max(1, limit // 8)
    assert all(size == group for size in sizes[:-1])
    assert all(0 < size <= group for size in sizes[-1:])


def test_a_run_rewrites_only_the_stored_files_that_lose_rows(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    warehouse = tmp_path / "warehouse"
    partition = warehouse / "articles" / "year=2024" / "month=1"
    for index in range(3):
        write_story(inputs, index)
        ingest(inputs, warehouse)
    before = {path.name: path.stat().st_ino for path in partition.iterdir()}
    assert sorted(before) == ["part-0.parquet", "part-1.parquet", "part-2.parquet"]

    write_article(
        inputs,
        "1-newer.md",
        url="https://news.example/1",
        epoch_ms=JAN_2024 + 5 * DAY,
        text="Story 1, updated.",
    )
    summary = ingest(inputs, warehouse)

    assert summary.count(Outcome.ARTICLE_WRITTEN) == 1
    after = {path.name: path.stat().st_ino for path in partition.iterdir()}
    # part-1 held the older version of article 1: it moved to article_versions, which
    # emptied that file; the other stored files are untouched and the new version is part-3.
    assert sorted(after) == ["part-0.parquet", "part-2.parquet", "part-3.parquet"]
    assert after["part-0.parquet"] == before["part-0.parquet"]
    assert after["part-2.parquet"] == before["part-2.parquet"]
    assert pl.read_parquet(partition / "part-3.parquet").get_column("paragraphs").to_list() == [
        ["Story 1, updated."]
    ]
    versions = pl.read_parquet(warehouse / "article_versions" / "**" / "*.parquet")
    assert versions.get_column("paragraphs").to_list() == [["Story 1."]]


def test_same_rows_in_same_order_whatever_the_batch_size_or_order(
    tmp_path: Path, sample_dir: Path
) -> None:
    one = ingest(sample_dir, tmp_path / "one", batch_size=1)
    many = ingest(sample_dir, tmp_path / "many", batch_size=500)
    for name in ("articles", "rejects"):
        files_one = sorted((one.warehouse / name).rglob("*.parquet"))
        files_many = sorted((many.warehouse / name).rglob("*.parquet"))
        assert [p.relative_to(one.warehouse) for p in files_one] == [
            p.relative_to(many.warehouse) for p in files_many
        ]
        for a, b in zip(files_one, files_many, strict=True):
            left = pl.read_parquet(a).drop(LINEAGE, strict=False)
            right = pl.read_parquet(b).drop(LINEAGE, strict=False)
            assert left.equals(right), a


def test_older_schema_partitions_are_rewritten_in_the_current_schema(
    inputs: Path, tmp_path: Path
) -> None:
    warehouse = tmp_path / "warehouse"
    ingest(inputs, warehouse)
    partition = next((warehouse / "articles").rglob("*.parquet"))
    old = pq.read_table(partition).drop_columns(["title_clean", "body_published_at"])
    pq.write_table(old.replace_schema_metadata({b"broadsheet.schema_version": b"1"}), partition)

    before = duckdb.execute(
        f"SELECT count(*) FROM read_parquet('{warehouse}/articles/**/*.parquet', "
        "hive_partitioning=true, union_by_name=true)"
    ).fetchall()
    assert before == [(6,)]

    ingest(inputs, warehouse)

    for path in (warehouse / "articles").rglob("*.parquet"):
        metadata = pq.read_metadata(path).metadata
        assert metadata[b"broadsheet.schema_version"] == str(SCHEMA_VERSION).encode()
        assert pq.read_schema(path).names == ARTICLES_SCHEMA.names
    articles = pl.scan_parquet(
        warehouse / "articles" / "**" / "*.parquet", hive_partitioning=True
    ).collect()
    assert articles.height == 6


def test_a_table_file_older_than_a_column_reads_with_nulls_in_it_whatever_the_columns(
    inputs: Path, tmp_path: Path
) -> None:
    """``read_table`` conforms each file to the current schema, also when asked for only some
    columns: one of them missing from an older file comes out null."""
    warehouse = tmp_path / "warehouse"
    ingest(inputs, warehouse)
    ledger_file = next((warehouse / "ledger").glob("*.parquet"))
    pq.write_table(pq.read_table(ledger_file).drop_columns(["article_id"]), ledger_file)
    opened = open_warehouse(warehouse)

    whole = read_table(opened, "ledger")
    some = read_table(opened, "ledger", columns=("source_path", "article_id"))

    assert whole is not None
    assert some is not None
    assert some.column_names == ["source_path", "article_id"]
    assert some.num_rows == whole.num_rows == 7
    assert some.column("article_id").null_count == 7
    assert some.column("source_path").to_pylist() == whole.column("source_path").to_pylist()


def test_second_run_while_one_is_active_fails_clearly_or_waits(
    inputs: Path, tmp_path: Path
) -> None:
    root = tmp_path / "warehouse"
    warehouse = open_warehouse(root)
    results: list[RunSummary] = []
    with warehouse_lock(warehouse, "pid 1, run test-holder", wait=False):
        with pytest.raises(
            WarehouseBusyError,
            match=r"another run is writing warehouse .*"
            r"\(pid 1, run test-holder\); wait for it to finish or pass --wait",
        ):
            ingest(inputs, root)
        waiter = threading.Thread(
            target=lambda: results.append(run_ingest([str(inputs)], str(root), wait=True))
        )
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive()
        assert not results
    waiter.join(timeout=30)
    assert results[0].outcomes == {"article_written": 6, "rejected": 1}


def test_lock_of_a_killed_run_is_recovered(inputs: Path, tmp_path: Path) -> None:
    root = tmp_path / "warehouse"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from broadsheet.warehouse_commit import open_warehouse, warehouse_lock\n"
            "with warehouse_lock(open_warehouse(sys.argv[1]), 'pid x', wait=False):\n"
            "    print('locked', flush=True); time.sleep(60)\n",
            str(root),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(WarehouseBusyError):
        ingest(inputs, root)
    holder.kill()
    holder.wait(timeout=10)
    holder.stdout.close()
    assert ingest(inputs, root).outcomes == {"article_written": 6, "rejected": 1}


def test_front_matter_and_bare_copies_of_one_article_are_versions(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    url = "https://news.example/same"
    (inputs / "bare.md").write_text(bare("T", url, JAN_2024, "<p>x</p>"), encoding="utf-8")
    (inputs / "fm.md").write_text(
        with_front_matter("T", url, JAN_2024, "<p>x</p>"), encoding="utf-8"
    )
    summary = ingest(inputs, tmp_path / "warehouse")
    assert summary.outcomes == {"article_written": 1, "version_superseded": 1}


def test_a_reparse_that_changes_an_article_id_leaves_no_orphan_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = tmp_path / "inputs"
    old = write_article(
        inputs, "old.md", url="https://news.example/x", epoch_ms=JAN_2024, text="v1"
    )
    write_article(
        inputs, "new.md", url="https://news.example/x", epoch_ms=JAN_2024 + 40 * DAY, text="v2"
    )
    warehouse = tmp_path / "warehouse"
    ingest(inputs, warehouse)
    old_id = table(warehouse, "articles").get_column("article_id").to_list()[0]
    old.unlink()  # its version stays stored; the archive no longer has the file
    monkeypatch.setattr("broadsheet.pipeline.PARSER_VERSION", "99.0.0")
    monkeypatch.setattr("broadsheet.rows.PARSER_VERSION", "99.0.0")
    monkeypatch.setattr("transforms.article.article_id", lambda url: "f" * 32)

    assert ingest(inputs, warehouse).outcomes == {"article_written": 1}

    articles = table(warehouse, "articles")
    assert sorted(articles.get_column("article_id").to_list()) == sorted([old_id, "f" * 32])
    assert articles.filter(pl.col("article_id") == old_id).get_column("paragraphs").to_list() == [
        ["v1"]
    ]
    assert table(warehouse, "article_versions").is_empty()


def test_each_file_of_a_batch_keeps_its_own_outcome_across_parse_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parse tasks parse their files a chunk at a time; an unreadable file, an unchanged one,
    a reject and a parser bug each stay with their own path, wherever they fall."""
    import broadsheet.pipeline
    import broadsheet.read_inputs
    import transforms.article
    import transforms.body

    inputs = tmp_path / "inputs"
    files = 2 * broadsheet.pipeline.PARSE_CHUNK + 37
    for index in range(files):
        write_article(
            inputs,
            f"{index:04d}.md",
            url=f"https://example.com/{index}",
            epoch_ms=JAN_2024 + index * DAY,
            text=f"story {index}",
        )
    warehouse = tmp_path / "warehouse"
    assert ingest(inputs, warehouse).outcomes == {"article_written": files}
    changed = {3, 99, 100, 101, 150, 200, files - 1}
    for index in changed:
        path = inputs / f"{index:04d}.md"
        path.write_text(path.read_text(encoding="utf-8").replace("story", "edited story"))
    (inputs / "0099.md").write_text("no header here\n", encoding="utf-8")
    real_read_input = broadsheet.read_inputs.read_input
    real_extract_body = transforms.body.extract_body

    def read_input(path: str) -> bytes:
        if path.endswith("0150.md"):
            raise PermissionError(13, "Permission denied")
        return real_read_input(path)

    def extract_body(html: str, url: str, **options: Any) -> object:
        if url.endswith("/101"):
            raise ValueError("a bug")
        return real_extract_body(html, url, **options)

    monkeypatch.setattr(broadsheet.pipeline, "read_input", read_input)
    monkeypatch.setattr(transforms.article, "extract_body", extract_body)
    summary = ingest(inputs, warehouse)

    assert summary.outcomes == {
        "unchanged": files - len(changed),
        "article_written": len(changed) - 3,
        "rejected": 3,
    }
    rejects = table(warehouse, "rejects").sort("source_path")
    assert [
        (Path(p).name, r, d) for p, r, d in rejects.select("source_path", "reason", "detail").rows()
    ] == [
        (
            "0099.md",
            "unknown_format",
            "file starts with neither front matter, an epoch comment nor a title link",
        ),
        ("0101.md", "extraction_failed", "unexpected ValueError: a bug"),
        ("0150.md", "unreadable", "cannot read file: Permission denied"),
    ]
    articles = table(warehouse, "articles").filter(
        pl.col("paragraphs").list.first().str.starts_with("edited")
    )
    assert sorted(
        (Path(path).name, url, text)
        for path, url, text in articles.select(
            "source_path", "url", pl.col("paragraphs").list.first()
        ).rows()
    ) == [
        (f"{index:04d}.md", f"https://example.com/{index}", f"edited story {index}")
        for index in sorted(changed - {99, 101, 150})
    ]


_KEYED_ROW = st.tuples(
    st.integers(0, 3), st.sampled_from(["a", "b", "é"]), st.sampled_from(["0", "f"]), st.text()
)


def _keyed_table(rows: list[tuple[int, str, str, str]]) -> pa.Table:
    """Rows with the sort keys of the articles table and a payload that must travel along."""
    columns = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
    return pa.table(
        {
            "published_at": pa.array(columns[0], pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            "article_id": pa.array(columns[1], pa.string()),
            "content_sha256": pa.array(columns[2], pa.string()),
            "payload": pa.array(columns[3], pa.string()),
        }
    )


@given(st.lists(_KEYED_ROW, max_size=30), st.data())
def test_sorted_rows_gathers_the_selected_rows_in_key_order(
    rows: list[tuple[int, str, str, str]], data: st.DataObject
) -> None:
    """The commit drops other tables' rows and sorts the rest with one ``take``; ties on
    every key keep their selected order, as a stable sort does."""
    selected = data.draw(st.lists(st.sampled_from(range(len(rows))), unique=True)) if rows else []
    picked = sorted_rows(_keyed_table(rows), pa.array(selected, pa.uint64()))
    picked = picked.set_column(0, "published_at", picked.column(0).cast(pa.int64()))
    expected = sorted((rows[index] for index in selected), key=lambda row: row[:3])
    assert [tuple(row.values()) for row in picked.to_pylist()] == expected


def test_sorted_rows_returns_every_row_already_in_order_uncopied() -> None:
    table = _keyed_table([(1, "a", "0", "x"), (2, "a", "0", "y")])
    assert sorted_rows(table) is table
    assert sorted_rows(table, pa.array([0, 1], pa.uint64())) is table
    assert sorted_rows(table, pa.array([1], pa.uint64())).column("payload").to_pylist() == ["y"]
