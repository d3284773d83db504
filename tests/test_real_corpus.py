"""The real archive in ../shared/corpus/real: every file is accounted for (skipped if absent)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from flows.ingest import ingest

pytestmark = [pytest.mark.corpus, pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

FIRST_THREE_FORMAT_DIRS = ("news", "oped2", "society", "cdt")


def test_every_real_file_is_an_article_or_a_reject_with_a_reason(
    corpus_dir: Path, tmp_path: Path
) -> None:
    real = corpus_dir / "real"
    on_disk = {str(path) for path in real.rglob("*") if path.is_file()}
    summary = ingest([str(real)], str(tmp_path / "warehouse"))

    articles = pl.read_parquet(
        summary.warehouse / "articles" / "**" / "*.parquet", hive_partitioning=True
    )
    rejects = pl.read_parquet(summary.warehouse / "rejects" / "*.parquet")
    skips = pl.read_parquet(summary.warehouse / "skips" / "*.parquet")
    article_paths = set(articles.get_column("source_path").to_list())
    reject_paths = set(rejects.get_column("source_path").to_list())
    skip_paths = set(skips.get_column("source_path").to_list())

    assert summary.files_seen == len(on_disk) == 3604
    assert article_paths | reject_paths | skip_paths == on_disk
    assert len(article_paths) + len(reject_paths) + len(skip_paths) == len(on_disk)
    assert articles.height == len(article_paths)
    assert rejects.filter(pl.col("reason").is_null() | (pl.col("detail") == "")).height == 0

    first_three = {
        path for path in on_disk if Path(path).relative_to(real).parts[0] in FIRST_THREE_FORMAT_DIRS
    }
    assert first_three <= article_paths
    formats = dict(articles.get_column("source_format").value_counts().rows())
    assert formats == {"bare": 22, "front_matter": 3151, "dated": 168, "front_matter_html": 263}
