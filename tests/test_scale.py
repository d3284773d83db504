"""What keeps memory bounded at millions of files, and must not change any result: columnar
discovery and planning, runs committed in waves, the streamed ledger merge, and parse tasks
that write their rows a row group at a time."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from broadsheet import cli, pipeline, prefect_server, warehouse_commit
from broadsheet.allocators import (
    ARROW_POOL_VARIABLE,
    JEMALLOC_CONF_VARIABLE,
    RETURN_PAGES_SOON,
    glibc_malloc_trim,
    pyarrow_has_jemalloc,
)
from broadsheet.fault_injection import KILL_POINT_VARIABLE
from broadsheet.pipeline import RunSummary, run_ingest
from broadsheet.read_inputs import InputFile
from broadsheet.resolve import (
    LEDGER_PLAN_COLUMNS,
    READ_PLAN_COLUMNS,
    RUN_OUTCOME_COLUMNS,
    Outcome,
    plan_reads,
)
from broadsheet.warehouse_commit import MAX_PARTITION_FILES, PART_FILE, open_warehouse
from schemas import ARTICLES_SCHEMA, LEDGER_SCHEMA, SCHEMA_VERSION
from tests.test_warehouse import DAY, JAN_2024, snapshot, write_article, write_story

LEDGER_IDENTITY = ["source_path", "size", "mtime_ns", "content_sha256", "article_id"]
"""Ledger columns a run in waves must agree on with a run in one commit (the outcome may
differ: a version stored by an early wave and superseded by a later one was written when
its wave read it)."""


@pytest.fixture
def versions_dir(tmp_path: Path) -> Path:
    """Articles whose versions, copies and rejects fall in different waves in path order."""
    directory = tmp_path / "versions"
    for index in range(5):
        write_article(
            directory,
            f"a{index}.md",
            url=f"https://news.example/{index}",
            epoch_ms=JAN_2024 + index * 40 * DAY,
            text=f"Story {index} «quoted» 🎉.",
        )
    write_article(
        directory,
        "z-newer.md",
        url="https://news.example/0",
        epoch_ms=JAN_2024 + 300 * DAY,
        text="Story 0, later.",
    )
    write_article(
        directory,
        "m-older.md",
        url="https://news.example/4",
        epoch_ms=JAN_2024 - 30 * DAY,
        text="Story 4, earlier.",
    )
    shutil.copy(directory / "a1.md", directory / "y-copy.md")
    (directory / "n-empty.md").write_text("", encoding="utf-8")
    return directory


def _ledger(warehouse: Path, columns: list[str]) -> pl.DataFrame:
    return pl.read_parquet(warehouse / "ledger" / "*.parquet").select(columns).sort(columns)


def _runs(warehouse: Path) -> pl.DataFrame:
    return pl.read_parquet(warehouse / "runs" / "part-0.parquet")


def _assert_same_tables(left: Path, right: Path) -> None:
    expected = snapshot(right)
    for name, content in snapshot(left).items():
        assert content.equals(expected[name]), name


def _assert_runs_reconcile(runs: pl.DataFrame) -> None:
    outcome_sums = runs.select(pl.sum_horizontal(list(RUN_OUTCOME_COLUMNS.values())))
    assert outcome_sums.to_series().to_list() == runs.get_column("files_seen").to_list()


def test_a_run_in_waves_ends_with_the_tables_of_one_commit(
    tmp_path: Path, sample_dir: Path, versions_dir: Path
) -> None:
    paths = [str(sample_dir), str(versions_dir)]
    whole: RunSummary = run_ingest(paths, str(tmp_path / "whole"), batch_size=4)
    waves: RunSummary = run_ingest(paths, str(tmp_path / "waves"), batch_size=2, wave_files=3)

    _assert_same_tables(waves.warehouse, whole.warehouse)
    assert _ledger(waves.warehouse, LEDGER_IDENTITY).equals(
        _ledger(whole.warehouse, LEDGER_IDENTITY)
    )
    assert waves.files_seen == whole.files_seen == 23 + 9
    assert waves.reject_counts == whole.reject_counts
    runs = _runs(waves.warehouse)
    assert runs.height == 1
    assert runs.get_column("files_seen").to_list() == [waves.files_seen]
    _assert_runs_reconcile(runs)
    for table in ("articles", "article_versions"):
        for partition in (waves.warehouse / table).glob("year=*/month=*"):
            names = sorted(p.name for p in partition.iterdir())
            assert 1 <= len(names) <= MAX_PARTITION_FILES, names
            assert all(PART_FILE.fullmatch(name) for name in names), names
    assert not any((waves.warehouse / "_staging").iterdir())


def test_a_commit_merges_one_partition_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every partition reaches ``MAX_PARTITION_FILES`` in the same commit of a run in waves;
    merging two at once doubled what the commit held (``_MERGING``). Each merge waits a
    little inside, so that two commit threads would overlap if nothing kept them apart."""
    monkeypatch.setattr(warehouse_commit, "COMMIT_THREADS", 2)
    real_merge = warehouse_commit._stage_merged
    merging, most_at_once, merges = [0], [0], [0]
    count = threading.Lock()

    def watched_merge(
        path: Path, runs: list[warehouse_commit._SortedRun], metadata: Mapping[bytes, bytes]
    ) -> str | None:
        if len(runs) < 2:
            return real_merge(path, runs, metadata)
        with count:
            merging[0] += 1
            merges[0] += 1
            most_at_once[0] = max(most_at_once[0], merging[0])
        time.sleep(0.05)
        try:
            return real_merge(path, runs, metadata)
        finally:
            with count:
                merging[0] -= 1

    monkeypatch.setattr(warehouse_commit, "_stage_merged", watched_merge)
    inputs = tmp_path / "inputs"
    for index in range(MAX_PARTITION_FILES + 1):  # each wave adds a file to both months
        for month, epoch_ms in (("jan", JAN_2024), ("feb", JAN_2024 + 40 * DAY)):
            write_article(
                inputs,
                f"{index:02d}-{month}.md",
                url=f"https://news.example/{month}/{index}",
                epoch_ms=epoch_ms + index * 3_600_000,
                text=f"Story {index} of {month}.",
            )
    run_ingest([str(inputs)], str(tmp_path / "warehouse"), batch_size=2, wave_files=2)
    assert merges[0] == 2
    assert most_at_once[0] == 1


def test_only_the_wave_being_ingested_has_its_plan_in_memory(
    tmp_path: Path, sample_dir: Path, versions_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The plan of the waves still to come waits on disk, one file a wave; each wave's file
    # is gone once read, and the wave gets exactly its slice of the plan, in path order.
    paths = [str(sample_dir), str(versions_dir)]
    ingest_wave = pipeline._ingest_wave
    seen: list[tuple[list[str], list[str]]] = []

    def recording_ingest_wave(context: pipeline._RunContext, wave: pa.Table, *rest: object) -> int:
        plan_dirs = list((context.warehouse.root / "_staging").glob("*-plan"))
        waiting = sorted(p.name for d in plan_dirs for p in d.iterdir())
        seen.append((wave.column("path").to_pylist(), waiting))
        return ingest_wave(context, wave, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "_ingest_wave", recording_ingest_wave)
    summary = run_ingest(paths, str(tmp_path / "w"), batch_size=2, wave_files=10)

    assert [waiting for _, waiting in seen] == [
        ["wave-1.arrow", "wave-2.arrow", "wave-3.arrow"],
        ["wave-2.arrow", "wave-3.arrow"],
        ["wave-3.arrow"],
        [],
    ]
    read = [path for wave, _ in seen for path in wave]
    assert [len(wave) for wave, _ in seen] == [10, 10, 10, 2]
    assert read == sorted(read)
    assert len(set(read)) == summary.files_seen == 32
    assert not any((summary.warehouse / "_staging").iterdir())


def test_a_run_killed_between_waves_keeps_them_and_the_next_run_reads_the_rest(
    tmp_path: Path, sample_dir: Path, versions_dir: Path
) -> None:
    paths = [str(sample_dir), str(versions_dir)]
    reference = run_ingest(paths, str(tmp_path / "reference"))
    warehouse = tmp_path / "killed"
    script = (
        "import sys\nfrom broadsheet.pipeline import run_ingest\n"
        "run_ingest(sys.argv[2:], sys.argv[1], batch_size=1, wave_files=3)\n"
    )
    environment = {**os.environ, KILL_POINT_VARIABLE: "journal-removed"}
    killed = subprocess.run(
        [sys.executable, "-c", script, str(warehouse), *paths], env=environment, check=False
    )
    assert killed.returncode == -signal.SIGKILL

    runs = _runs(warehouse)
    assert runs.height == 1
    _assert_runs_reconcile(runs)
    assert pl.read_parquet(warehouse / "ledger" / "*.parquet").height == 3

    rest = run_ingest(paths, str(warehouse))
    assert rest.count(Outcome.UNCHANGED) == 3
    _assert_same_tables(warehouse, reference.warehouse)
    assert _ledger(warehouse, LEDGER_IDENTITY).equals(_ledger(reference.warehouse, LEDGER_IDENTITY))
    _assert_runs_reconcile(_runs(warehouse))


def test_parse_tasks_writing_small_row_groups_stage_the_same_rows(
    tmp_path: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = run_ingest([str(sample_dir)], str(tmp_path / "whole"), batch_size=50)
    monkeypatch.setattr(pipeline, "STAGED_ROW_GROUP", 2)
    groups = run_ingest([str(sample_dir)], str(tmp_path / "groups"), batch_size=50)
    _assert_same_tables(groups.warehouse, whole.warehouse)
    monkeypatch.setattr(pipeline, "STAGED_BUFFER_BYTES", 1)  # a record batch per month and chunk
    monkeypatch.setattr(warehouse_commit, "COMMIT_THREADS", 1)
    chunks = run_ingest([str(sample_dir)], str(tmp_path / "chunks"), batch_size=50)
    _assert_same_tables(chunks.warehouse, whole.warehouse)
    assert chunks.feeds == whole.feeds
    assert chunks.outcomes == whole.outcomes


@pytest.mark.parametrize("row_group", [500, 2], ids=["one-chunk", "chunks-of-two"])
def test_a_parse_task_stages_one_record_batch_per_month_in_month_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, row_group: int
) -> None:
    monkeypatch.setattr(pipeline, "STAGED_ROW_GROUP", row_group)
    january, march = 1_704_100_000_000, 1_709_300_000_000  # 2024-01-01 and 2024-03-01, UTC
    paths = []
    for index, published in enumerate([march, january, march, january, march]):
        path = tmp_path / f"{index}.md"
        path.write_text(
            f"<!--{published}-->\n[Story {index}](https://example.com/{index})\n------\n\n"
            f"<p>Body {index} «quoted» 🎉.</p>\n",
            encoding="utf-8",
        )
        paths.append(path)
    batch = pipeline.Batch(
        0, tuple((InputFile(str(p), p.stat().st_size, 0), None) for p in paths), 1
    )

    result = pipeline.parse_batch_files(batch, str(tmp_path / "staging"), "run", 0)

    assert result.staged_months == ((2024, 1), (2024, 3))
    facts = result.facts
    staged_months = zip(
        facts.column("staged_year").to_pylist(),
        facts.column("staged_month").to_pylist(),
        strict=True,
    )
    assert list(staged_months) == [
        (2024, 3),
        (2024, 1),
        (2024, 3),
        (2024, 1),
        (2024, 3),
    ]
    assert result.staged_articles is not None
    staged = warehouse_commit.read_staging_file(result.staged_articles)
    assert staged.column("source_path").to_pylist() == [
        str(paths[index]) for index in (1, 3, 0, 2, 4)
    ]


def _files(*rows: tuple[str, int, int]) -> pa.Table:
    return pa.table(
        {
            "path": pa.array([row[0] for row in rows], pa.string()),
            "size": pa.array([row[1] for row in rows], pa.int64()),
            "mtime_ns": pa.array([row[2] for row in rows], pa.int64()),
        }
    )


def _ledger_rows(*rows: Mapping[str, object]) -> pa.Table:
    defaults: dict[str, object] = {
        "parser_version": "9.9",
        "outcome": "article_written",
        "article_id": "id",
        "run_id": "r",
    }
    return pa.Table.from_pylist([{**defaults, **row} for row in rows], schema=LEDGER_SCHEMA)


def test_planning_reads_new_changed_and_reparsed_files_with_what_the_ledger_knows() -> None:
    files = _files(("/in/new.md", 5, 1), ("/in/same.md", 7, 2), ("/in/touched.md", 9, 3))
    files = pa.concat_tables([files, _files(("/in/old-parser.md", 4, 4))])
    ledger = _ledger_rows(
        {"source_path": "/in/same.md", "size": 7, "mtime_ns": 2, "content_sha256": "s"},
        {"source_path": "/in/touched.md", "size": 9, "mtime_ns": 1, "content_sha256": "t"},
        {"source_path": "/in/old-parser.md", "size": 4, "mtime_ns": 4, "content_sha256": "o"},
        {"source_path": "/in/gone.md", "size": 1, "mtime_ns": 1, "content_sha256": "g"},
    )
    ledger = ledger.set_column(
        ledger.schema.get_field_index("parser_version"),
        "parser_version",
        pa.array(["9.9", "9.9", "0.1", "9.9"]),
    )

    plan = plan_reads(files, ledger, "9.9")

    assert plan.unchanged == 1
    assert plan.to_read.column_names == list(READ_PLAN_COLUMNS)
    assert plan.to_read.to_pylist() == [
        {
            "path": "/in/new.md",
            "size": 5,
            "mtime_ns": 1,
            "known_sha256": None,
            "previous_outcome": None,
            "previous_article_id": None,
        },
        {
            "path": "/in/old-parser.md",
            "size": 4,
            "mtime_ns": 4,
            "known_sha256": None,
            "previous_outcome": None,
            "previous_article_id": None,
        },
        {
            "path": "/in/touched.md",
            "size": 9,
            "mtime_ns": 3,
            "known_sha256": "t",
            "previous_outcome": "article_written",
            "previous_article_id": "id",
        },
    ]
    assert plan_reads(files, None, "9.9").to_read.column("path").to_pylist() == sorted(
        files.column("path").to_pylist()
    )


_PATHS = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12
)

_LISTED = st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 2)))
_LEDGER_ENTRIES = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d", "e", "f"]),
        st.integers(0, 2),
        st.sampled_from(["9.9", "0.1"]),
    )
)


@given(listed=_LISTED, entries=_LEDGER_ENTRIES, extra_ledger_rows=st.integers(0, 40))
def test_the_ledger_rows_of_the_listed_paths_alone_give_the_whole_ledgers_plan(
    listed: list[tuple[str, int]],
    entries: list[tuple[str, int, str]],
    extra_ledger_rows: int,
) -> None:
    """``read_ledger`` gives a small listing only the ledger rows of its paths; the plan must
    be the one the whole ledger gives, for every mix of new, unchanged, touched and re-parsed
    files (and for paths the ledger holds twice)."""
    files = _files(*{f"/in/{name}": (f"/in/{name}", 5, stamp) for name, stamp in listed}.values())
    rows = [
        {"source_path": f"/in/{name}", "size": 5, "mtime_ns": stamp, "parser_version": version}
        for name, stamp, version in entries
    ]
    rows += [
        {"source_path": f"/old/{i}", "size": 1, "mtime_ns": 1} for i in range(extra_ledger_rows)
    ]
    ledger = _ledger_rows(*rows)
    own_rows = ledger.filter(pc.is_in(ledger.column("source_path"), value_set=files.column("path")))
    whole, own = plan_reads(files, ledger, "9.9"), plan_reads(files, own_rows, "9.9")
    assert (own.to_read.to_pylist(), own.unchanged) == (whole.to_read.to_pylist(), whole.unchanged)


@given(listed=_LISTED, entries=_LEDGER_ENTRIES)
def test_a_ledger_without_its_facts_plans_as_the_whole_ledger_asking_only_for_files_to_read(
    listed: list[tuple[str, int]], entries: list[tuple[str, int, str]]
) -> None:
    """Planning from ``LEDGER_PLAN_COLUMNS`` alone, with ``ledger_facts`` for the rest, gives
    the whole ledger's plan, and asks only for the paths it reads that the ledger holds under
    the current parser version."""
    files = _files(*{f"/in/{name}": (f"/in/{name}", 5, stamp) for name, stamp in listed}.values())
    entries = list({name: (name, stamp, version) for name, stamp, version in entries}.values())
    ledger = _ledger_rows(
        *(
            {
                "source_path": f"/in/{name}",
                "size": 5,
                "mtime_ns": stamp,
                "parser_version": version,
                "content_sha256": f"hash of {name}",
                "article_id": f"id of {name}",
            }
            for name, stamp, version in entries
        )
    )
    asked: list[list[str]] = []

    def ledger_facts(paths: pa.Array) -> pa.Table:
        asked.append(paths.to_pylist())
        return ledger.filter(pc.is_in(ledger.column("source_path"), value_set=paths))

    whole = plan_reads(files, ledger, "9.9")
    slim = plan_reads(files, ledger.select(LEDGER_PLAN_COLUMNS), "9.9", ledger_facts)
    assert (slim.to_read.to_pylist(), slim.unchanged) == (
        whole.to_read.to_pylist(),
        whole.unchanged,
    )
    expected = {row["path"] for row in whole.to_read.to_pylist() if row["known_sha256"]}
    assert [set(paths) for paths in asked] == ([expected] if expected else [])


def test_a_ledger_without_its_facts_and_nothing_to_give_them_is_an_error() -> None:
    files = _files(("/in/a.md", 5, 2))
    ledger = _ledger_rows({"source_path": "/in/a.md", "size": 5, "mtime_ns": 1})
    with pytest.raises(ValueError, match="needs ledger_facts"):
        plan_reads(files, ledger.select(LEDGER_PLAN_COLUMNS), "9.9")


CURRENT_SCHEMA = {b"broadsheet.schema_version": str(SCHEMA_VERSION).encode()}
"""File metadata that makes a stored file current: older files are rewritten."""


@settings(max_examples=80, deadline=None)
@given(
    old_paths=st.sets(_PATHS, max_size=25),
    new_paths=st.sets(_PATHS, max_size=12),
    stored_files=st.integers(min_value=1, max_value=MAX_PARTITION_FILES),
    slice_rows=st.integers(min_value=1, max_value=5),
    row_group_rows=st.integers(min_value=1, max_value=4),
)
def test_ledger_commit_keeps_every_path_once_with_the_newest_row(
    old_paths: set[str],
    new_paths: set[str],
    stored_files: int,
    slice_rows: int,
    row_group_rows: int,
) -> None:
    def rows(paths: list[str], run_id: str) -> pa.Table:
        return _ledger_rows(
            *(
                {
                    "source_path": path,
                    "size": len(path),
                    "mtime_ns": 1,
                    "content_sha256": None if "\r" in path else f"{run_id}:{path}",
                    "run_id": run_id,
                }
                for path in paths
            )
        )

    old, new = rows(sorted(old_paths), "old"), rows(sorted(new_paths), "new")
    with tempfile.TemporaryDirectory() as directory:
        warehouse = open_warehouse(Path(directory) / "warehouse")
        warehouse.table_dir("ledger").mkdir(parents=True)
        for number in range(stored_files):
            part = old.take(pa.array(range(number, old.num_rows, stored_files), pa.int64()))
            pq.write_table(
                part.replace_schema_metadata(CURRENT_SCHEMA),
                warehouse.table_dir("ledger") / f"part-{number}.parquet",
                row_group_size=row_group_rows,
            )
        original = warehouse_commit.LOG_READ_ROWS
        warehouse_commit.LOG_READ_ROWS = slice_rows
        try:
            operations = warehouse_commit._log_table_changes(
                warehouse, "ledger", new, warehouse.staging_dir("r") / "commit", {b"k": b"v"}
            )
        finally:
            warehouse_commit.LOG_READ_ROWS = original
        warehouse_commit._apply(warehouse, operations)
        files = warehouse.table_files("ledger")
        stored = warehouse_commit.read_table(warehouse, "ledger")
        installed = [pq.read_schema(Path(target)) for staged, target in operations if staged]

    expected = {row["source_path"]: row for row in old.to_pylist()}
    expected.update({row["source_path"]: row for row in new.to_pylist()})
    assert stored is not None
    assert sorted(stored.to_pylist(), key=lambda row: row["source_path"]) == [
        expected[path] for path in sorted(expected)
    ]
    assert len(files) <= MAX_PARTITION_FILES
    if new_paths and stored_files < MAX_PARTITION_FILES:
        stored_paths = old.column("source_path").to_pylist()
        emptied = [
            number
            for number in range(stored_files)
            if (part := set(stored_paths[number::stored_files])) and part <= new_paths
        ]
        assert len(files) == stored_files + 1 - len(emptied)
    assert all(schema.metadata == {b"k": b"v"} for schema in installed)


def test_a_ledger_file_is_read_only_where_its_path_ranges_hold_a_path_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "part-0.parquet"
    names = ("a/1", "a/2", "b/1", "b/2")
    stored = _ledger_rows(*({"source_path": name, "size": 1, "mtime_ns": 1} for name in names))
    pq.write_table(stored, path, row_group_size=2)
    read: list[int] = []
    original = pq.ParquetFile.read_row_group

    def counted(self: pq.ParquetFile, group: int, *args: object, **kwargs: object) -> pa.Table:
        read.append(group)
        return original(self, group, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", counted)

    def holds(*paths: str) -> bool:
        return warehouse_commit._holds_path(path, pa.array(sorted(paths), pa.string()))

    assert not holds("c/1", "c/2")
    assert read == []
    assert not holds("a/15", "c/1")
    assert read == [0]
    assert holds("0", "b/2")
    assert read == [0, 1]


def test_runs_over_new_files_add_log_files_and_leave_stored_ones_alone(
    tmp_path: Path,
) -> None:
    """A run that reads only new paths writes its ledger, rejects and skips rows as each
    table's next file; the ninth file folds them all into part-0."""
    inputs, warehouse = tmp_path / "in", tmp_path / "wh"
    inputs.mkdir()
    stamps: dict[str, int] = {}
    for run in range(MAX_PARTITION_FILES + 1):
        (inputs / f".hidden-{run}.md").write_text("x", encoding="utf-8")
        write_story(inputs, run)
        (inputs / f"{run:02d}-empty.md").write_text("", encoding="utf-8")
        run_ingest([str(inputs)], str(warehouse))
        names = {
            table: sorted(path.name for path in (warehouse / table).glob("*.parquet"))
            for table in ("ledger", "rejects", "skips")
        }
        if run < MAX_PARTITION_FILES:
            assert (
                names["ledger"] == names["rejects"] == [f"part-{n}.parquet" for n in range(run + 1)]
            )
            assert names["skips"] == [f"part-{n}.parquet" for n in range(run + 1)]
            for number in range(run):
                path = warehouse / "ledger" / f"part-{number}.parquet"
                assert path.stat().st_mtime_ns == stamps.setdefault(
                    path.name, path.stat().st_mtime_ns
                )
        else:
            assert names["ledger"] == names["rejects"] == names["skips"] == ["part-0.parquet"]
        ledger = pl.read_parquet(warehouse / "ledger" / "*.parquet")
        assert ledger.height == 2 * (run + 1)
        assert ledger.get_column("source_path").is_unique().all()
        assert pl.read_parquet(warehouse / "rejects" / "*.parquet").height == run + 1
        assert pl.read_parquet(warehouse / "skips" / "*.parquet").height == run + 1


def test_a_file_read_again_replaces_its_ledger_row_in_the_file_that_held_it(
    tmp_path: Path,
) -> None:
    inputs, warehouse = tmp_path / "in", tmp_path / "wh"
    inputs.mkdir()
    for index in range(2):
        write_article(
            inputs,
            f"{index}.md",
            url=f"https://news.example/{index}",
            epoch_ms=JAN_2024,
            text=f"Story {index}.",
        )
        run_ingest([str(inputs)], str(warehouse))
    first = warehouse / "ledger" / "part-0.parquet"
    second = warehouse / "ledger" / "part-1.parquet"
    untouched = second.stat().st_mtime_ns
    write_article(
        inputs, "0.md", url="https://news.example/0", epoch_ms=JAN_2024 + DAY, text="Later."
    )
    run_ingest([str(inputs)], str(warehouse))

    assert sorted(path.name for path in (warehouse / "ledger").glob("*.parquet")) == [
        "part-1.parquet",
        "part-2.parquet",
    ]
    assert not first.exists()
    assert second.stat().st_mtime_ns == untouched
    ledger = pl.read_parquet(warehouse / "ledger" / "*.parquet").sort("source_path")
    assert ledger.get_column("source_path").is_unique().all()
    assert ledger.height == 2
    assert ledger.get_column("outcome").to_list() == ["article_written", "article_written"]
    (newest,) = pl.read_parquet(warehouse / "ledger" / "part-2.parquet").to_dicts()
    assert newest["source_path"].endswith("0.md")


_NASTY_TEXT = st.one_of(
    st.none(),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20),
    st.sampled_from(["", "\r\n", "\"quoted\" 'text'", "emoji 📰🗞️", "\x00nul", "同一条新闻"]),
)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            _NASTY_TEXT,
            st.lists(_NASTY_TEXT, max_size=4),
            st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1),
        ),
        max_size=30,
    ),
    write_rows=st.integers(min_value=1, max_value=7),
)
def test_staging_files_give_back_exactly_the_rows_written(
    rows: list[tuple[str | None, list[str | None], int | None]], write_rows: int
) -> None:
    schema = pa.schema(
        [("title", pa.string()), ("paragraphs", pa.list_(pa.string())), ("n", pa.int64())]
    )
    table = pa.Table.from_pylist(
        [{"title": t, "paragraphs": p, "n": n} for t, p, n in rows], schema=schema
    )
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "staged.arrow"
        with warehouse_commit.open_staging_writer(path, schema) as writer:
            for start in range(0, max(table.num_rows, 1), write_rows):
                writer.write_table(table.slice(start, write_rows))
        read = warehouse_commit.read_staging_file(path)
    assert read.schema == schema
    assert read.to_pylist() == table.to_pylist()


_ALLOCATOR_PROBE = """
import os
import sys
from broadsheet.allocators import prefer_jemalloc
import broadsheet.cli  # the CLI's own imports must leave Arrow's choice open
chose = prefer_jemalloc()
import pyarrow as pa
import pyarrow.parquet as pq
path = sys.argv[1]
pq.write_table(pa.table({"n": list(range(100_000)), "s": ["x" * 20] * 100_000}), path)
pq.read_table(path)
print(chose, pa.default_memory_pool().backend_name, pa.mimalloc_memory_pool().max_memory())
print(os.environ.get("JE_ARROW_MALLOC_CONF", "unset"))
"""


def _probe_allocator(
    tmp_path: Path, pool_variable: str | None, jemalloc_conf: str | None = None
) -> list[str]:
    """In a fresh interpreter: what ``prefer_jemalloc`` chose, pyarrow's default pool, the
    peak bytes Arrow allocated with mimalloc while it wrote and read a Parquet file, and the
    jemalloc options left for the processes it starts."""
    ours = (ARROW_POOL_VARIABLE, JEMALLOC_CONF_VARIABLE)
    environment = {k: v for k, v in os.environ.items() if k not in ours}
    if pool_variable is not None:
        environment[ARROW_POOL_VARIABLE] = pool_variable
    if jemalloc_conf is not None:
        environment[JEMALLOC_CONF_VARIABLE] = jemalloc_conf
    completed = subprocess.run(
        [sys.executable, "-c", _ALLOCATOR_PROBE, str(tmp_path / "probe.parquet")],
        capture_output=True,
        text=True,
        env=environment,
        check=True,
    )
    assert completed.stderr == ""
    return completed.stdout.split()


def test_the_cli_chooses_jemalloc_for_all_of_arrow_before_pyarrow_is_imported(
    tmp_path: Path,
) -> None:
    chose, backend, mimalloc_peak, jemalloc_conf = _probe_allocator(tmp_path, None)
    if not pyarrow_has_jemalloc():
        assert (chose, backend, jemalloc_conf) == ("False", "mimalloc", "unset")
        return
    # Parquet's reader and writer allocate from Arrow's C++ default, not pyarrow's: nothing
    # of theirs may go through mimalloc. Freed pages go back soon, here and in workers.
    assert (chose, backend, mimalloc_peak) == ("True", "jemalloc", "0")
    assert jemalloc_conf == RETURN_PAGES_SOON


def test_a_chosen_arrow_allocator_is_kept(tmp_path: Path) -> None:
    chose, backend, _, jemalloc_conf = _probe_allocator(tmp_path, "system")
    assert (chose, backend, jemalloc_conf) == ("False", "system", "unset")


def test_jemalloc_options_the_user_set_are_kept(tmp_path: Path) -> None:
    if not pyarrow_has_jemalloc():
        pytest.skip("pyarrow was built without jemalloc")
    chose, backend, _, jemalloc_conf = _probe_allocator(tmp_path, None, "dirty_decay_ms:500")
    assert (chose, backend, jemalloc_conf) == ("True", "jemalloc", "dirty_decay_ms:500")


def test_pyarrow_build_configuration_is_read_without_importing_pyarrow() -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from broadsheet.allocators import pyarrow_has_jemalloc; "
            "pyarrow_has_jemalloc(); print('pyarrow' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert completed.stdout.strip() == "False"
    assert pyarrow_has_jemalloc() == _has_jemalloc()


def _has_jemalloc() -> bool:
    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        return False
    return True


_FRAGMENTED_HEAP_PROBE = """
from broadsheet.allocators import release_free_memory

def resident_mib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20

blocks = [bytearray(4_000) for _ in range(60_000)]  # about 230 MiB of C heap
kept = blocks[::64] + blocks[-1:]  # pinned chunks: free() alone cannot shrink the heap
del blocks
before = resident_mib()
release_free_memory()
print(before, resident_mib(), len(kept))
"""


@pytest.mark.skipif(
    glibc_malloc_trim() is None or not Path("/proc/self/statm").exists(),
    reason="needs glibc and /proc",
)
def test_memory_freed_between_waves_goes_back_to_the_system() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", _FRAGMENTED_HEAP_PROBE],
        capture_output=True,
        text=True,
        check=True,
    )
    before, after, _ = (float(value) for value in completed.stdout.split())
    assert before - after > 150, (before, after)


_MMAP_THRESHOLD_PROBE = """
import ctypes
import sys
from broadsheet.allocators import fix_malloc_mmap_threshold

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallInfo2

def resident_mib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20

fixed = fix_malloc_mmap_threshold() if sys.argv[1] == "fix" else False
freed = b"x" * (16 << 20)  # a mapping of its own; freed, glibc raises its threshold to it
del freed
before = resident_mib()
block = b"x" * (4 << 20)  # above a fixed threshold, below the raised one
mapped = mallinfo2().hblkhd / 2**20  # what glibc holds in mappings of their own
pinned = b"y" * 4_000  # from the heap: the block, if from there too, may sit below it
del block
print(fixed, mapped, resident_mib() - before, len(pinned))
"""


def _large_block(fix: bool, environment: Mapping[str, str] | None = None) -> tuple[float, float]:
    """In a fresh interpreter (with ``fix_malloc_mmap_threshold`` when ``fix``), a 4 MiB block
    allocated after a 16 MiB one was freed: the MiB glibc held in mappings of their own while
    it lived, and the MiB still resident once it was freed. glibc's own settings come only
    from ``environment``: any of them (Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_`` in the
    process that starts a local cluster) turns its moving threshold off."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("MALLOC_") and name != "GLIBC_TUNABLES"
    }
    completed = subprocess.run(
        [sys.executable, "-c", _MMAP_THRESHOLD_PROBE, "fix" if fix else "leave"],
        capture_output=True,
        text=True,
        check=True,
        env={**inherited, **(environment or {})},
    )
    fixed, mapped, left, _ = completed.stdout.split()
    assert fixed == str(fix and not environment)
    return float(mapped), float(left)


def _has_mallinfo2() -> bool:
    return hasattr(ctypes.CDLL(None), "mallinfo2")


@pytest.mark.skipif(
    not _has_mallinfo2() or not Path("/proc/self/statm").exists(),
    reason="needs glibc 2.33 or later and /proc",
)
def test_a_fixed_mmap_threshold_gives_large_blocks_back_when_freed() -> None:
    mapped, left = _large_block(fix=False)
    assert mapped < 1  # glibc's moving threshold: the block came from the heap...
    assert left > 3.5  # ...and stayed there
    mapped, left = _large_block(fix=True)
    assert mapped >= 4
    assert left < 0.5


@pytest.mark.skipif(not _has_mallinfo2(), reason="needs glibc 2.33 or later")
@pytest.mark.parametrize(
    "environment",
    [
        {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=33554432"},
        {"MALLOC_MMAP_THRESHOLD_": "33554432"},
    ],
)
def test_an_mmap_threshold_the_user_set_is_kept(environment: Mapping[str, str]) -> None:
    mapped, _ = _large_block(fix=True, environment=environment)
    assert mapped < 1  # 4 MiB is below the user's 32 MiB: from the heap


def test_run_and_serve_set_the_allocators_up_before_anything_else(
    monkeypatch: pytest.MonkeyPatch, sample_dir: Path
) -> None:
    """Both commands choose Arrow's allocator and fix glibc's threshold before their work
    allocates (the test stops each at the threshold)."""

    class StoppedAtThresholdError(Exception):
        pass

    calls: list[str] = []

    def fix_threshold() -> bool:
        calls.append("threshold")
        raise StoppedAtThresholdError

    def choose_jemalloc() -> bool:
        calls.append("jemalloc")
        return True

    def went_on() -> None:
        raise AssertionError("the command went on without fixing the threshold")

    monkeypatch.setattr(cli, "apply_quiet_prefect_defaults", lambda: None)
    monkeypatch.setattr(cli, "prefer_jemalloc", choose_jemalloc)
    monkeypatch.setattr(cli, "fix_malloc_mmap_threshold", fix_threshold)
    monkeypatch.setattr(cli, "end_process_when_stopped", went_on)  # run's next step
    monkeypatch.setattr(prefect_server, "prefect_home", went_on)  # serve's
    for command in ("run", "serve"):
        calls.clear()
        result = CliRunner().invoke(cli.app, [command, str(sample_dir)])
        assert isinstance(result.exception, StoppedAtThresholdError), (command, result.output)
        assert calls == ["jemalloc", "threshold"], command


def test_rows_leaving_a_partition_are_found_in_every_row_group(tmp_path: Path) -> None:
    digests = [f"{number:064x}" for number in range(10)]
    path = tmp_path / "part-0.parquet"
    pq.write_table(
        pa.table({"content_sha256": digests, "n": list(range(10))}), path, row_group_size=3
    )
    wanted = [digests[1], digests[4], digests[9], "f" * 64]
    found = warehouse_commit._rows_with_hashes([path, path], wanted)
    assert [n for rows in found for n in rows.column("n").to_pylist()] == [1, 4, 9, 1, 4, 9]
    assert warehouse_commit._rows_with_hashes([path], ["f" * 64]) == []


def _article_rows(keys: list[tuple[int, str, str]]) -> pa.Table:
    """Minimal ``articles`` rows with the given sort keys (published_at ms, id, hash)."""
    rows = len(keys)
    columns: dict[str, pa.Array] = {}
    for field in ARTICLES_SCHEMA:
        if field.name in ("published_at", "article_id", "content_sha256"):
            position = ("published_at", "article_id", "content_sha256").index(field.name)
            columns[field.name] = pa.array([key[position] for key in keys], field.type)
        elif pa.types.is_list(field.type):
            columns[field.name] = pa.array([[]] * rows, field.type)
        elif field.nullable:
            columns[field.name] = pa.nulls(rows, field.type)
        elif pa.types.is_timestamp(field.type):
            columns[field.name] = pa.array([0] * rows, field.type)
        else:
            columns[field.name] = pa.array(["x"] * rows, field.type)
    return pa.Table.from_pydict(columns, schema=ARTICLES_SCHEMA.remove_metadata())


@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(
        st.tuples(
            st.integers(0, 5),
            st.sampled_from("abc"),
            st.text("0123456789abcdef", min_size=8, max_size=8),
        ),
        unique_by=lambda key: key[2],
        max_size=60,
    ),
    runs=st.integers(1, 5),
    slice_rows=st.integers(1, 7),
    data=st.data(),
)
def test_a_merge_of_sorted_runs_writes_every_row_once_in_sort_order(
    tmp_path_factory: pytest.TempPathFactory,
    keys: list[tuple[int, str, str]],
    runs: int,
    slice_rows: int,
    data: st.DataObject,
) -> None:
    owners = [data.draw(st.integers(0, runs - 1)) for _ in keys]
    sorted_runs = []
    for run in range(runs):
        rows = _article_rows(
            sorted(k for k, owner in zip(keys, owners, strict=True) if owner == run)
        )
        slices = [rows.slice(start, slice_rows) for start in range(0, rows.num_rows, slice_rows)]
        sorted_runs.append(warehouse_commit._SortedRun(iter(slices)))
    staging = tmp_path_factory.mktemp("merge") / "_staging" / "run" / "commit"
    path = staging / "final" / "part-0.parquet"

    staged = warehouse_commit._stage_merged(path, sorted_runs, {})

    if not keys:
        assert staged is None
        assert not path.exists()
        return
    merged = pq.read_table(staged)
    written = list(
        zip(
            [int(value.timestamp() * 1000) for value in merged.column("published_at").to_pylist()],
            merged.column("article_id").to_pylist(),
            merged.column("content_sha256").to_pylist(),
            strict=True,
        )
    )
    assert written == sorted(keys)
