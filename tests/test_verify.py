"""``verify`` passes every warehouse Broadsheet writes, and names each guarantee that a change
made outside it breaks, with the rows or files that break it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from broadsheet.pipeline import run_ingest
from broadsheet.warehouse_commit import JOURNAL_NAME
from broadsheet.warehouse_query import WarehouseMissingError
from broadsheet.warehouse_verify import SHOWN, CheckResult, verify

CHECKS = [
    "files_readable",
    "no_interrupted_commit",
    "one_row_per_article",
    "one_row_per_version",
    "ledger_versions_stored",
    "rows_in_their_month",
    "one_ledger_row_per_path",
    "runs_add_up",
]


@pytest.fixture(scope="module")
def pristine(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pristine") / "warehouse"
    run_ingest([str(sample_dir)], str(root))
    run_ingest([str(sample_dir)], str(root))  # a no-op re-run adds a runs row
    return root


@pytest.fixture
def warehouse(pristine: Path, tmp_path: Path) -> Path:
    """A copy of the pristine warehouse for a test to damage."""
    return Path(shutil.copytree(pristine, tmp_path / "warehouse"))


def _broken(root: Path) -> dict[str, CheckResult]:
    return {result.name: result for result in verify(root) if not result.holds}


def _partition_files(root: Path) -> list[Path]:
    return sorted((root / "articles").glob("year=*/month=*/*.parquet"))


def test_a_warehouse_broadsheet_wrote_passes_every_check(pristine: Path) -> None:
    results = verify(pristine)
    assert [result.name for result in results] == CHECKS
    assert all(result.holds and not result.examples for result in results)


def test_a_file_cut_short_is_named_and_the_table_checks_wait(warehouse: Path) -> None:
    damaged = _partition_files(warehouse)[0]
    damaged.write_bytes(damaged.read_bytes()[:50])
    results = verify(warehouse)
    assert [result.name for result in results] == CHECKS[:2]
    assert results[0].broken == 1
    assert results[0].examples[0].startswith(f"{damaged}: ")


def test_a_half_applied_commit_is_reported(warehouse: Path) -> None:
    (warehouse / JOURNAL_NAME).write_text('{"operations": []}')
    broken = _broken(warehouse)
    assert list(broken) == ["no_interrupted_commit"]
    assert "run 'broadsheet run'" in broken["no_interrupted_commit"].examples[0]


def test_a_partition_file_copied_twice_duplicates_articles_and_versions(
    warehouse: Path,
) -> None:
    original = _partition_files(warehouse)[0]
    shutil.copy(original, original.with_name("part-9.parquet"))
    rows = pq.read_table(original).num_rows
    broken = _broken(warehouse)
    assert list(broken) == ["one_row_per_article", "one_row_per_version"]
    assert broken["one_row_per_article"].broken == rows
    assert len(broken["one_row_per_article"].examples) == min(rows, SHOWN)
    assert all(e.endswith(": 2 rows") for e in broken["one_row_per_version"].examples)


def test_rows_lost_with_a_deleted_file_are_named_by_their_input_paths(warehouse: Path) -> None:
    removed = _partition_files(warehouse)[0]
    lost = sorted(pq.read_table(removed).column("source_path").to_pylist())
    removed.unlink()
    broken = _broken(warehouse)
    assert list(broken) == ["ledger_versions_stored"]
    assert broken["ledger_versions_stored"].broken == len(lost)
    named = [
        example.split(": article_written, ")[0]
        for example in broken["ledger_versions_stored"].examples
    ]
    assert named == lost[:SHOWN]


def test_a_file_moved_to_another_month_is_reported(warehouse: Path) -> None:
    original = _partition_files(warehouse)[0]
    elsewhere = warehouse / "articles" / "year=1999" / "month=1"
    elsewhere.mkdir(parents=True)
    original.rename(elsewhere / "part-0.parquet")
    broken = _broken(warehouse)
    assert list(broken) == ["rows_in_their_month"]
    assert broken["rows_in_their_month"].examples[0].endswith("in year=1999/month=1")


def test_a_ledger_file_copied_twice_is_reported(warehouse: Path) -> None:
    ledger = warehouse / "ledger" / "part-0.parquet"
    shutil.copy(ledger, ledger.with_name("part-1.parquet"))
    broken = _broken(warehouse)
    assert list(broken) == ["one_ledger_row_per_path"]
    assert broken["one_ledger_row_per_path"].broken == pq.read_table(ledger).num_rows


def test_a_run_whose_counts_were_edited_is_reported(warehouse: Path) -> None:
    path = warehouse / "runs" / "part-0.parquet"
    runs = pq.read_table(path)
    seen = runs.column("files_seen")
    runs = runs.set_column(runs.schema.get_field_index("files_seen"), "files_seen", pc.add(seen, 1))
    pq.write_table(runs, path)
    broken = _broken(warehouse)
    assert list(broken) == ["runs_add_up"]
    assert broken["runs_add_up"].broken == runs.num_rows == 2
    assert broken["runs_add_up"].examples[0].endswith("23 outcomes for 24 files seen")


def test_no_warehouse_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(WarehouseMissingError):
        verify(tmp_path)
