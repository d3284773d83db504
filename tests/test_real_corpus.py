"""The real archive in ../shared/corpus/real: every file is accounted for (skipped if absent)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from broadsheet.resolve import RUN_OUTCOME_COLUMNS
from flows.ingest import ingest

pytestmark = [pytest.mark.corpus, pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

FIRST_THREE_FORMAT_DIRS = ("news", "oped2", "society", "cdt")
OUTCOME_COLUMNS = list(RUN_OUTCOME_COLUMNS.values())


def test_every_real_file_lands_in_exactly_one_outcome(corpus_dir: Path, tmp_path: Path) -> None:
    real = corpus_dir / "real"
    on_disk = {str(path) for path in real.rglob("*") if path.is_file()}
    summary = ingest([str(real)], str(tmp_path / "warehouse"))
    root = summary.warehouse

    ledger = pl.read_parquet(root / "ledger" / "*.parquet")
    assert ledger.height == ledger.get_column("source_path").n_unique() == len(on_disk) == 3604
    assert set(ledger.get_column("source_path")) == on_disk

    run = pl.read_parquet(root / "runs" / "part-0.parquet").row(0, named=True)
    assert run["files_seen"] == sum(run[column] for column in OUTCOME_COLUMNS) == 3604
    by_outcome = dict(ledger.get_column("outcome").value_counts().rows())
    assert by_outcome.get("article_written", 0) == run["articles_written"]
    assert by_outcome.get("version_superseded", 0) == run["versions_superseded"]
    assert by_outcome.get("identical_duplicate", 0) == run["identical_duplicates"]
    assert by_outcome.get("rejected", 0) == run["rejected"]

    articles = pl.read_parquet(root / "articles" / "**" / "*.parquet", hive_partitioning=True)
    versions_dir = root / "article_versions"
    versions = (
        pl.read_parquet(versions_dir / "**" / "*.parquet", hive_partitioning=True)
        if versions_dir.exists()
        else articles.clear()
    )
    assert articles.height == articles.get_column("article_id").n_unique()
    assert articles.height == run["articles_written"]
    assert versions.height == run["versions_superseded"]
    stored = pl.concat([articles, versions]).get_column("content_sha256")
    assert stored.n_unique() == stored.len()

    rejected = set(ledger.filter(pl.col("outcome") == "rejected").get_column("source_path"))
    first_three = {
        path for path in on_disk if Path(path).relative_to(real).parts[0] in FIRST_THREE_FORMAT_DIRS
    }
    assert not first_three & rejected
    formats = dict(
        pl.concat([articles, versions]).get_column("source_format").value_counts().rows()
    )
    assert set(formats) == {"bare", "front_matter", "dated", "front_matter_html"}
