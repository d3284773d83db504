"""The schemas are the contract: pinned names, and everything else derives from them."""

from __future__ import annotations

import dataclasses

import pyarrow as pa

from broadsheet.rows import Lineage, article_row
from schemas import ARTICLES_SCHEMA, REJECTS_SCHEMA, RUNS_SCHEMA, TABLE_SCHEMAS, describe
from transforms import ParsedArticle, SourceFormat

CONTRACT_ARTICLE_COLUMNS = [
    "article_id",
    "url",
    "title",
    "published_at",
    "paragraphs",
    "headings",
    "image_urls",
    "share_links",
    "author",
    "feed",
    "language",
    "source_format",
    "source_path",
    "content_sha256",
    "parser_version",
    "run_id",
    "ingested_at",
]


def test_public_article_columns_are_present_with_their_types() -> None:
    assert set(CONTRACT_ARTICLE_COLUMNS) <= set(ARTICLES_SCHEMA.names)
    assert ARTICLES_SCHEMA.field("published_at").type == pa.timestamp("ms", tz="UTC")
    assert ARTICLES_SCHEMA.field("paragraphs").type == pa.list_(pa.string())
    share = ARTICLES_SCHEMA.field("share_links").type.value_type
    assert [share.field(i).name for i in range(share.num_fields)] == [
        "platform",
        "url",
        "target_url",
    ]


def test_rejects_and_runs_columns() -> None:
    assert REJECTS_SCHEMA.names == [
        "source_path",
        "content_sha256",
        "reason",
        "detail",
        "run_id",
        "ingested_at",
    ]
    assert {
        "run_id",
        "parameters",
        "started_at",
        "finished_at",
        "files_seen",
        "articles_written",
        "rejected",
        "skipped",
    } <= set(RUNS_SCHEMA.names)


def test_every_column_is_documented() -> None:
    for table, schema in TABLE_SCHEMAS.items():
        for field in schema:
            assert describe(field), f"{table}.{field.name} has no description"


def test_article_row_follows_the_schema_column_order() -> None:
    content_fields = {field.name for field in dataclasses.fields(ParsedArticle)}
    lineage_fields = {field.name for field in dataclasses.fields(Lineage)}
    article = ParsedArticle(
        article_id="0" * 32,
        url="https://a.example/",
        title="t",
        title_clean="t",
        published_at_ms=0,
        body_published_at_ms=None,
        paragraphs=(),
        headings=(),
        captions=(),
        meta_blocks=(),
        image_urls=(),
        share_links=(),
        author=None,
        feed=None,
        language=None,
        source_format=SourceFormat.BARE,
    )
    row = article_row(article, Lineage("p", "h", "r", 0))
    assert list(row) == ARTICLES_SCHEMA.names
    unaccounted = set(ARTICLES_SCHEMA.names) - content_fields - lineage_fields
    assert unaccounted == {"published_at", "body_published_at", "parser_version", "ingested_at"}


def test_run_outcome_columns_cover_every_outcome() -> None:
    from broadsheet.resolve import RUN_OUTCOME_COLUMNS, Outcome

    assert set(RUN_OUTCOME_COLUMNS) == set(Outcome)
    assert set(RUN_OUTCOME_COLUMNS.values()) == set(RUNS_SCHEMA.names) - {
        "run_id",
        "started_at",
        "finished_at",
        "parameters",
        "parser_version",
        "files_seen",
    }
