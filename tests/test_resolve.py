"""``resolve_table`` (Arrow columns) decides exactly what ``resolve`` (a Version at a time) does."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from broadsheet.resolve import (
    ARTICLES,
    NEW_VERSION_COLUMNS,
    VERSIONS,
    Outcome,
    StoredVersion,
    Version,
    resolve,
    resolve_table,
)

PARSER = "2.0"
ids = st.sampled_from(["a", "b", "c", "d", "é 📰"])
hashes = st.sampled_from([f"h{n}" for n in range(8)])
times = st.integers(0, 3)  # few values: ties are common and must break on the hash


@st.composite
def new_versions(draw: st.DrawFn) -> list[Version]:
    """New versions at unique paths; the same content repeats (re-scrapes, copies)."""
    rows = draw(st.lists(st.tuples(hashes, ids, times), max_size=12))
    paths = draw(st.permutations([f"in/{n:02d}.md" for n in range(len(rows))]))
    return [
        Version(digest, article, published, PARSER, path)
        for path, (digest, article, published) in zip(paths, rows, strict=True)
    ]


@st.composite
def stored_versions(draw: st.DrawFn) -> list[StoredVersion]:
    """Stored versions, one per content hash, some by an older parser."""
    digests = draw(st.lists(hashes, unique=True, max_size=6))
    return [
        StoredVersion(
            Version(
                digest,
                draw(ids),
                draw(times),
                draw(st.sampled_from([PARSER, "1.0"])),
                f"old/{digest}.md",
            ),
            draw(st.sampled_from([ARTICLES, VERSIONS])),
            (2024, draw(st.integers(1, 2))),
        )
        for digest in digests
    ]


def _table(versions: list[Version]) -> pa.Table:
    columns = {
        "source_path": [v.source_path for v in versions],
        "content_sha256": [v.content_sha256 for v in versions],
        "article_id": [v.article_id for v in versions],
        "published_at_ms": [v.published_at_ms for v in versions],
    }
    return pa.table(
        {
            name: pa.array(columns[name], pa.int64() if name == "published_at_ms" else pa.string())
            for name in NEW_VERSION_COLUMNS
        }
    )


@settings(max_examples=400)
@given(new_versions(), stored_versions())
def test_resolve_table_decides_as_resolve(
    versions: list[Version], stored: list[StoredVersion]
) -> None:
    expected = resolve(versions, stored, PARSER)

    got = resolve_table(_table(versions), stored, PARSER)

    paths = [v.source_path for v in versions]
    assert dict(zip(paths, got.outcomes.to_pylist(), strict=True)) == {
        path: outcome.value for path, outcome in expected.outcomes.items()
    }
    placed = {
        v.content_sha256: table
        for v, table in zip(versions, got.tables.to_pylist(), strict=True)
        if table is not None
    }
    assert placed == expected.new_rows
    assert got.removals == dict(expected.removals)
    assert got.moves == expected.moves


def test_resolve_table_of_a_run_with_nothing_stored() -> None:
    versions = [
        Version("h1", "a", 5, PARSER, "in/1.md"),
        Version("h2", "a", 9, PARSER, "in/2.md"),  # later: wins
        Version("h1", "a", 5, PARSER, "in/3.md"),  # same bytes as in/1.md
        Version("h4", "b", 7, PARSER, "in/4.md"),
        Version("h3", "b", 7, PARSER, "in/5.md"),  # same time: the greater hash wins
    ]

    got = resolve_table(_table(versions), [], PARSER)

    assert got.outcomes.to_pylist() == [
        Outcome.VERSION_SUPERSEDED,
        Outcome.ARTICLE_WRITTEN,
        Outcome.IDENTICAL_DUPLICATE,
        Outcome.ARTICLE_WRITTEN,
        Outcome.VERSION_SUPERSEDED,
    ]
    assert got.tables.to_pylist() == [VERSIONS, ARTICLES, None, ARTICLES, VERSIONS]
    assert (got.removals, got.moves) == ({}, {})


def test_resolve_table_of_no_versions() -> None:
    got = resolve_table(_table([]), [], PARSER)
    assert (got.outcomes.to_pylist(), got.tables.to_pylist()) == ([], [])
