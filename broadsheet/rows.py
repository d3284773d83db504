"""Turn parsed records into Arrow tables whose columns come from ``schemas``.

Pure: no I/O. Column order and types are those of the schema constants; a record that lacks a
schema column fails loudly here rather than producing a silently different table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from schemas import (
    ARTICLES_PARTITION_COLUMNS,
    ARTICLES_SCHEMA,
    REJECTS_SCHEMA,
    SCHEMA_VERSION,
    SKIPS_SCHEMA,
)
from transforms import PARSER_VERSION, ParsedArticle


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a row came from: the file, its content hash, and the run that read it."""

    source_path: str
    content_sha256: str
    run_id: str
    ingested_at_ms: int


@dataclass(frozen=True, slots=True)
class RejectRow:
    """A file that did not become an article."""

    source_path: str
    content_sha256: str | None
    reason: str
    detail: str


def file_metadata(run_id: str) -> dict[bytes, bytes]:
    """Key-value metadata written into every Parquet file."""
    return {
        b"broadsheet.schema_version": str(SCHEMA_VERSION).encode(),
        b"broadsheet.parser_version": PARSER_VERSION.encode(),
        b"broadsheet.run_id": run_id.encode(),
    }


def article_row(article: ParsedArticle, lineage: Lineage) -> dict[str, Any]:
    """One ``articles`` row as a dict keyed by schema column name."""
    values: dict[str, Any] = {
        "article_id": article.article_id,
        "url": article.url,
        "title": article.title,
        "title_clean": article.title_clean,
        "published_at": article.published_at_ms,
        "body_published_at": article.body_published_at_ms,
        "paragraphs": list(article.paragraphs),
        "headings": list(article.headings),
        "captions": list(article.captions),
        "meta_blocks": list(article.meta_blocks),
        "image_urls": list(article.image_urls),
        "share_links": [
            {"platform": link.platform, "url": link.url, "target_url": link.target_url}
            for link in article.share_links
        ],
        "author": article.author,
        "feed": article.feed,
        "language": article.language,
        "source_format": article.source_format.value,
        "source_path": lineage.source_path,
        "content_sha256": lineage.content_sha256,
        "parser_version": PARSER_VERSION,
        "run_id": lineage.run_id,
        "ingested_at": lineage.ingested_at_ms,
    }
    return {name: values[name] for name in ARTICLES_SCHEMA.names}


def articles_table(rows: Sequence[dict[str, Any]], run_id: str) -> pa.Table:
    """The ``articles`` rows plus their Hive partition columns ``year`` and ``month`` (UTC)."""
    table = pa.Table.from_pylist(list(rows), schema=ARTICLES_SCHEMA)
    published = table.column("published_at")
    year_column, month_column = ARTICLES_PARTITION_COLUMNS
    table = table.append_column(year_column, pc.year(published).cast(pa.int32()))
    table = table.append_column(month_column, pc.month(published).cast(pa.int32()))
    return table.replace_schema_metadata(file_metadata(run_id))


def rejects_table(rejects: Sequence[RejectRow], run_id: str, ingested_at_ms: int) -> pa.Table:
    """The ``rejects`` rows of one batch."""
    rows = [
        {
            "source_path": r.source_path,
            "content_sha256": r.content_sha256,
            "reason": r.reason,
            "detail": r.detail,
            "run_id": run_id,
            "ingested_at": ingested_at_ms,
        }
        for r in rejects
    ]
    return pa.Table.from_pylist(rows, schema=REJECTS_SCHEMA).replace_schema_metadata(
        file_metadata(run_id)
    )


def skips_table(
    skips: Sequence[tuple[str, str, str]], run_id: str, ingested_at_ms: int
) -> pa.Table:
    """The ``skips`` rows of a run, from (path, reason, detail) triples."""
    rows = [
        {
            "source_path": path,
            "reason": reason,
            "detail": detail,
            "run_id": run_id,
            "ingested_at": ingested_at_ms,
        }
        for path, reason, detail in skips
    ]
    return pa.Table.from_pylist(rows, schema=SKIPS_SCHEMA).replace_schema_metadata(
        file_metadata(run_id)
    )
