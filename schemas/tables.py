"""Pinned Arrow schemas, one module constant per table.

Column names are a public contract: later versions add nullable columns, never rename or retype
existing ones. Every other list of fields in the project (record conversion, the README's data
dictionary, tests) derives from these constants. Each field carries its meaning in the Arrow field
metadata under ``description`` so that the documentation can be generated from the schema itself.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 3
"""Bumped whenever a column is added; stored in every Parquet file's key-value metadata."""

_TIMESTAMP_UTC = pa.timestamp("ms", tz="UTC")
_STRINGS = pa.list_(pa.string())


def _field(name: str, type_: pa.DataType, description: str, *, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"description": description})


SHARE_LINK_TYPE = pa.struct(
    [
        pa.field("platform", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=False),
        pa.field("target_url", pa.string()),
    ]
)

ARTICLES_SCHEMA = pa.schema(
    [
        _field(
            "article_id",
            pa.string(),
            "Stable id: 32 hex chars of SHA-256 of the canonical URL.",
            nullable=False,
        ),
        _field("url", pa.string(), "Article URL exactly as the archive gives it.", nullable=False),
        _field("title", pa.string(), "Title exactly as the archive gives it.", nullable=False),
        _field(
            "title_clean",
            pa.string(),
            "Title without site suffixes and whitespace runs (null in rows of schema 1 files).",
        ),
        _field(
            "published_at",
            _TIMESTAMP_UTC,
            "Publication time from the file header (UTC).",
            nullable=False,
        ),
        _field(
            "body_published_at",
            _TIMESTAMP_UTC,
            "Publication time shown in the body (dateline or timestamp block), UTC; else null.",
        ),
        _field(
            "paragraphs", _STRINGS, "Body paragraphs in reading order, lead first.", nullable=False
        ),
        _field("headings", _STRINGS, "Sub-headings inside the article, in order.", nullable=False),
        _field(
            "captions",
            _STRINGS,
            "Image and video captions and photo credits, in order.",
            nullable=False,
        ),
        _field(
            "meta_blocks",
            _STRINGS,
            "Separate dateline, timestamp and byline blocks.",
            nullable=False,
        ),
        _field(
            "image_urls",
            _STRINGS,
            "Absolute http(s) URLs of the article's images, in order.",
            nullable=False,
        ),
        _field(
            "share_links",
            pa.list_(SHARE_LINK_TYPE),
            "Social share anchors: platform, decoded href, and the URL they share (or null).",
            nullable=False,
        ),
        _field("author", pa.string(), "Author from the front matter, else null."),
        _field("feed", pa.string(), "Feed name: the front matter's first category, else null."),
        _field(
            "language",
            pa.string(),
            "ISO 639-1 code of the text (zh-Hans / zh-Hant for Chinese); null if unsure.",
        ),
        _field(
            "source_format",
            pa.string(),
            "Archive format: bare, front_matter, dated or front_matter_html.",
            nullable=False,
        ),
        _field(
            "source_path", pa.string(), "Path of the input file the row came from.", nullable=False
        ),
        _field(
            "content_sha256",
            pa.string(),
            "SHA-256 of the input file's bytes (hex).",
            nullable=False,
        ),
        _field(
            "parser_version",
            pa.string(),
            "Version of the extraction code that made the row.",
            nullable=False,
        ),
        _field("run_id", pa.string(), "Id of the run that wrote the row.", nullable=False),
        _field(
            "ingested_at",
            _TIMESTAMP_UTC,
            "Start time of the run that wrote the row (UTC).",
            nullable=False,
        ),
    ]
)

ARTICLES_PARTITION_COLUMNS = ("year", "month")
"""Hive partition keys of ``articles``, derived from ``published_at`` (UTC); not stored in files."""

REJECTS_SCHEMA = pa.schema(
    [
        _field("source_path", pa.string(), "Path of the rejected input file.", nullable=False),
        _field("content_sha256", pa.string(), "SHA-256 of the file's bytes; null if unreadable."),
        _field(
            "reason",
            pa.string(),
            "Stable reject code (see README: reject reasons).",
            nullable=False,
        ),
        _field("detail", pa.string(), "One human sentence saying what was wrong.", nullable=False),
        _field("run_id", pa.string(), "Id of the run that rejected the file.", nullable=False),
        _field("ingested_at", _TIMESTAMP_UTC, "Start time of that run (UTC).", nullable=False),
    ]
)

SKIPS_SCHEMA = pa.schema(
    [
        _field("source_path", pa.string(), "Path that was not read.", nullable=False),
        _field(
            "reason", pa.string(), "Stable skip code (see README: skip reasons).", nullable=False
        ),
        _field(
            "detail", pa.string(), "One human sentence saying why it was skipped.", nullable=False
        ),
        _field("run_id", pa.string(), "Id of the run that skipped the path.", nullable=False),
        _field("ingested_at", _TIMESTAMP_UTC, "Start time of that run (UTC).", nullable=False),
    ]
)

ARTICLE_VERSIONS_SCHEMA = ARTICLES_SCHEMA
"""``article_versions`` holds superseded versions of articles, with exactly the articles columns
and the same Hive partitioning (by each version's own ``published_at``)."""

LEDGER_SCHEMA = pa.schema(
    [
        _field("source_path", pa.string(), "Input file path (one row per path).", nullable=False),
        _field("size", pa.int64(), "File size in bytes when last read.", nullable=False),
        _field(
            "mtime_ns", pa.int64(), "File modification time (ns) when last read.", nullable=False
        ),
        _field(
            "content_sha256", pa.string(), "SHA-256 of the bytes last read; null if unreadable."
        ),
        _field(
            "parser_version",
            pa.string(),
            "Parser version that last processed the file.",
            nullable=False,
        ),
        _field(
            "outcome",
            pa.string(),
            "Outcome when last processed: article_written, version_superseded, "
            "identical_duplicate or rejected.",
            nullable=False,
        ),
        _field("article_id", pa.string(), "Article the file carries; null if rejected."),
        _field("run_id", pa.string(), "Run that last processed the file.", nullable=False),
    ]
)

RUNS_SCHEMA = pa.schema(
    [
        _field(
            "run_id",
            pa.string(),
            "Run id: UTC start time plus a random suffix; sortable.",
            nullable=False,
        ),
        _field("started_at", _TIMESTAMP_UTC, "When the run started (UTC).", nullable=False),
        _field(
            "finished_at",
            _TIMESTAMP_UTC,
            "When the run finished parsing, just before its commit (UTC).",
            nullable=False,
        ),
        _field(
            "parameters",
            pa.string(),
            "JSON object of the run's parameters (input paths, warehouse, batch size).",
            nullable=False,
        ),
        _field("parser_version", pa.string(), "Extraction code version used.", nullable=False),
        _field(
            "files_seen",
            pa.int64(),
            "Input paths discovered; the sum of the six outcome columns.",
            nullable=False,
        ),
        _field(
            "articles_written",
            pa.int64(),
            "Files whose version is now the article's row in articles.",
            nullable=False,
        ),
        _field(
            "versions_superseded",
            pa.int64(),
            "Files whose version went to article_versions (a newer version exists).",
            nullable=False,
        ),
        _field(
            "identical_duplicates",
            pa.int64(),
            "Files whose exact bytes are already stored: counted, not stored twice.",
            nullable=False,
        ),
        _field("rejected", pa.int64(), "Input files rejected with a reason.", nullable=False),
        _field(
            "unchanged",
            pa.int64(),
            "Files skipped because the ledger shows them unchanged since the last run.",
            nullable=False,
        ),
        _field(
            "skipped",
            pa.int64(),
            "Paths skipped without reading (hidden, not regular, duplicates).",
            nullable=False,
        ),
    ]
)

TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "articles": ARTICLES_SCHEMA,
    "article_versions": ARTICLE_VERSIONS_SCHEMA,
    "rejects": REJECTS_SCHEMA,
    "skips": SKIPS_SCHEMA,
    "runs": RUNS_SCHEMA,
    "ledger": LEDGER_SCHEMA,
}
"""Every table of the warehouse by directory name."""

REPEATING_COLUMNS = frozenset(
    {
        "author",
        "feed",
        "language",
        "source_format",
        "parser_version",
        "run_id",
        "ingested_at",
        "outcome",
        "reason",
        "detail",
    }
)
"""Columns whose values repeat from row to row (codes, feeds, languages, a run's id and
time). Parquet files dictionary-encode these and only these: the other columns (ids,
hashes, URLs, paths, text, publication times) are unique or nearly so, where a dictionary
costs encoding time until Parquet gives up on it, and makes no file smaller."""

INPUT_FILES_SCHEMA = pa.schema(
    [
        _field("path", pa.string(), "A regular file found under the inputs.", nullable=False),
        _field("size", pa.int64(), "Its size in bytes when found.", nullable=False),
        _field("mtime_ns", pa.int64(), "Its modification time (ns) when found.", nullable=False),
    ]
)
"""Not a warehouse table: the files a run's discovery finds to read, one row per file, in
discovery order (``broadsheet.read_inputs.Discovery.files``)."""

FILE_FACTS_SCHEMA = pa.schema(
    [
        _field("content_sha256", pa.string(), "SHA-256 of the file's bytes; null if unreadable."),
        _field(
            "unchanged",
            pa.bool_(),
            "Whether the bytes hash to the ledger's hash of the file (then not parsed).",
            nullable=False,
        ),
        _field("article_id", pa.string(), "Article the file carries; null if not an article."),
        _field("published_at_ms", pa.int64(), "The article's publication time, epoch ms."),
        _field("feed", pa.string(), "The article's feed, when it has one."),
        _field("staged_year", pa.int32(), "Year of the partition its row was staged under."),
        _field("staged_month", pa.int32(), "Month of the partition its row was staged under."),
    ]
)
"""Not a warehouse table: what a parse task tells the flow of each file of its batch, in
the batch's order (the article rows themselves are staged on disk). Columns rather than an
object a file, so that the flow resolves, counts and builds the ledger of a run in Arrow."""

PARTITIONED_TABLES = ("articles", "article_versions")
"""Tables Hive-partitioned by ``ARTICLES_PARTITION_COLUMNS``; the others are one file each."""


def describe(field: pa.Field) -> str:
    """The human meaning of a column, from its field metadata."""
    metadata = field.metadata or {}
    return str(metadata.get(b"description", b"").decode())
