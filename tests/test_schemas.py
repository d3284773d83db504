"""The schemas are the contract: pinned names, and everything else derives from them."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest

from broadsheet.rows import ARTICLE_COLUMNS, Lineage, articles_table
from schemas import (
    ARTICLES_PARTITION_COLUMNS,
    ARTICLES_SCHEMA,
    FILE_FACTS_SCHEMA,
    INPUT_FILES_SCHEMA,
    REJECTS_SCHEMA,
    REPEATING_COLUMNS,
    RUNS_SCHEMA,
    TABLE_SCHEMAS,
    describe,
)
from transforms import PARSER_VERSION, ParsedArticle, ShareLink, SourceFormat

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
    internal = {"(input files)": INPUT_FILES_SCHEMA, "(file facts)": FILE_FACTS_SCHEMA}
    for table, schema in {**TABLE_SCHEMAS, **internal}.items():
        for field in schema:
            assert describe(field), f"{table}.{field.name} has no description"


def test_every_repeating_column_is_a_flat_column_of_some_table() -> None:
    flat = {
        field.name
        for schema in TABLE_SCHEMAS.values()
        for field in schema
        if not pa.types.is_nested(field.type)
    }
    assert flat >= REPEATING_COLUMNS


def _article(**changes: object) -> ParsedArticle:
    fields = {
        "article_id": "0" * 32,
        "url": "https://a.example/",
        "title": "t",
        "title_clean": "t",
        "published_at_ms": 0,
        "body_published_at_ms": None,
        "paragraphs": (),
        "headings": (),
        "captions": (),
        "meta_blocks": (),
        "image_urls": (),
        "share_links": (),
        "author": None,
        "feed": None,
        "language": None,
        "source_format": SourceFormat.BARE,
    }
    return ParsedArticle(**{**fields, **changes})  # type: ignore[arg-type]


def test_article_columns_follow_the_schema_and_cover_every_field() -> None:
    content_fields = {field.name for field in dataclasses.fields(ParsedArticle)}
    lineage_fields = {field.name for field in dataclasses.fields(Lineage)}
    assert list(ARTICLE_COLUMNS) == ARTICLES_SCHEMA.names
    unaccounted = set(ARTICLES_SCHEMA.names) - content_fields - lineage_fields
    assert unaccounted == {"published_at", "body_published_at", "parser_version", "ingested_at"}


def test_articles_table_puts_each_value_in_its_column() -> None:
    first = _article(
        paragraphs=('lead "quoted"', "second 📰"),
        headings=("h",),
        image_urls=("https://a.example/1.jpg",),
        share_links=(
            ShareLink("facebook", "https://www.facebook.com/sharer?u=x", "x"),
            ShareLink("email", "mailto:?body=y", None),
        ),
        author="Ann",
        feed="news",
        language="en",
        body_published_at_ms=1_708_181_101_000,
        published_at_ms=1_708_181_101_000,
        source_format=SourceFormat.FRONT_MATTER,
    )
    second = _article(article_id="1" * 32, title="t2\r\nrest", title_clean="t2 rest")
    table = articles_table(
        [first, second],
        [Lineage("a.md", "h1", "run-1", 5), Lineage("b.md", "h2", "run-1", 6)],
        "run-1",
    )
    assert table.schema.names == [*ARTICLES_SCHEMA.names, *ARTICLES_PARTITION_COLUMNS]
    assert table.schema.metadata[b"broadsheet.run_id"] == b"run-1"
    rows = table.to_pylist()
    assert rows[0]["paragraphs"] == ['lead "quoted"', "second 📰"]
    assert rows[0]["share_links"] == [
        {"platform": "facebook", "url": "https://www.facebook.com/sharer?u=x", "target_url": "x"},
        {"platform": "email", "url": "mailto:?body=y", "target_url": None},
    ]
    assert (rows[0]["author"], rows[0]["feed"], rows[0]["language"]) == ("Ann", "news", "en")
    assert rows[0]["source_format"] == SourceFormat.FRONT_MATTER.value
    assert rows[0]["body_published_at"] == rows[0]["published_at"]
    assert (rows[0]["year"], rows[0]["month"]) == (2024, 2)
    assert rows[1]["title"] == "t2\r\nrest"
    assert rows[1]["body_published_at"] is None
    assert [row["source_path"] for row in rows] == ["a.md", "b.md"]
    assert [row["content_sha256"] for row in rows] == ["h1", "h2"]
    assert [row["ingested_at"].timestamp() * 1000 for row in rows] == [5, 6]
    assert {row["parser_version"] for row in rows} == {PARSER_VERSION}


def test_articles_table_needs_a_lineage_for_every_article() -> None:
    with pytest.raises(ValueError, match="2 articles but 1 lineages"):
        articles_table([_article(), _article()], [Lineage("a.md", "h", "r", 0)], "r")


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
