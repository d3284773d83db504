"""One ingest run, end to end, independent of how its parse batches are executed.

``run_ingest`` takes the warehouse lock, rolls forward any half-applied commit, discovers the
inputs, skips what the ledger shows unchanged, parses the rest in batches through the given
``map_batches`` (Prefect tasks in ``flows.ingest``; a plain loop in tests), decides where
every version belongs (``broadsheet.resolve``) and commits (``broadsheet.warehouse_commit``),
in waves of at most ``WAVE_FILES`` files so that its memory does not grow with the archive.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import secrets
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc

from broadsheet.allocators import release_free_memory
from broadsheet.fault_injection import kill_point
from broadsheet.read_inputs import Discovery, InputFile, discover_for_run, read_input
from broadsheet.resolve import (
    READ_PLAN_COLUMNS,
    RUN_OUTCOME_COLUMNS,
    Outcome,
    Partition,
    StoredVersion,
    Version,
    plan_reads,
    resolve,
)
from broadsheet.rows import (
    Lineage,
    RejectRow,
    article_row,
    articles_table,
    file_metadata,
    rejects_table,
    skips_table,
)
from broadsheet.warehouse_commit import (
    CommitPlan,
    Warehouse,
    commit,
    open_staging_writer,
    open_warehouse,
    read_ledger,
    read_staging_file,
    read_stored_versions,
    read_table,
    recover,
    warehouse_lock,
)
from schemas import ARTICLES_PARTITION_COLUMNS, ARTICLES_SCHEMA, LEDGER_SCHEMA, RUNS_SCHEMA
from transforms import PARSER_VERSION, RejectError, RejectReason, parse_article

AUTOMATIC_BATCH_SIZE = 0
"""``batch_size`` meaning: about ``TARGET_PARSE_TASKS`` tasks a run, with batches of
``MIN_BATCH_SIZE`` to ``MAX_BATCH_SIZE`` files (so a million files make 200 tasks)."""
DEFAULT_BATCH_SIZE = AUTOMATIC_BATCH_SIZE
MIN_BATCH_SIZE = 500
MAX_BATCH_SIZE = 5_000
TARGET_PARSE_TASKS = 64


def automatic_batch_size(files: int) -> int:
    """Files a parse task takes when ``batch_size`` is automatic. Each task run costs Prefect
    API calls (40-50 ms measured, on the same cores as the parsing), hence few tasks; a batch's
    rows are in a worker's memory at once, hence the cap."""
    return min(MAX_BATCH_SIZE, max(MIN_BATCH_SIZE, -(-files // TARGET_PARSE_TASKS)))


@dataclass(frozen=True, slots=True)
class Batch:
    """Files one parse task reads, each with the hash that would make it unchanged."""

    index: int
    files: tuple[tuple[InputFile, str | None], ...]
    run_batches: int
    """Batches in the whole run (for progress: a run of several waves maps several times)."""


@dataclass(frozen=True, slots=True)
class FileResult:
    """What reading one file of a batch gave (in the batch's order): its hash and, if it
    parsed, its article id and publication time. Small on purpose: one travels back from a
    worker for every input file, and the flow keeps them until the commit."""

    content_sha256: str | None
    unchanged: bool
    article_id: str | None = None
    published_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one parse task did; the article rows themselves are staged on disk."""

    files: tuple[FileResult, ...]
    rejects: tuple[RejectRow, ...]
    staged_articles: str | None


BatchMapper = Callable[[Sequence[Batch], str, str, int], list[BatchResult]]
"""Runs ``parse_batch_files`` over batches: (batches, staging dir, run id, ingested_at ms)."""


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Outcome of one run, as the CLI reports it and the runs table records it."""

    run_id: str
    warehouse: Path
    outcomes: dict[str, int]
    seconds: float
    committed_files: tuple[Path, ...]
    recovered_previous_commit: bool
    feeds: dict[str, int]
    """Versions stored this run, per feed (``(no feed)`` when the file has none)."""
    reject_counts: dict[str, int]
    reject_examples: dict[str, list[str]]
    """Up to three example paths per reject reason."""

    @property
    def files_seen(self) -> int:
        """Every input path discovered: the sum of all outcomes."""
        return sum(self.outcomes.values())

    def count(self, outcome: Outcome) -> int:
        """Files with one outcome."""
        return self.outcomes.get(outcome.value, 0)


def new_run_id(started: datetime) -> str:
    """Sortable run id: UTC start time plus random hex."""
    return f"{started:%Y%m%dT%H%M%S}Z-{secrets.token_hex(4)}"


def parse_batch_files(batch: Batch, staging: str, run_id: str, ingested_at_ms: int) -> BatchResult:
    """Read and parse one batch; stage its article rows as Parquet in ``staging``."""
    results: list[FileResult] = []
    rejects: list[RejectRow] = []
    rows = []
    staged = _StagedArticles(Path(staging) / "articles" / f"batch-{batch.index:06d}.arrow")

    def reject(
        input_file: InputFile, digest: str | None, reason: RejectReason, detail: str
    ) -> None:
        rejects.append(RejectRow(input_file.path, digest, reason.value, detail))
        results.append(FileResult(digest, False))

    for input_file, known_hash in batch.files:
        try:
            raw = read_input(input_file.path)
        except OSError as error:
            reject(
                input_file,
                None,
                RejectReason.UNREADABLE,
                f"cannot read file: {error.strerror or error}",
            )
            continue
        digest = hashlib.sha256(raw).hexdigest()
        if digest == known_hash:
            results.append(FileResult(digest, True))
            continue
        try:
            article = parse_article(raw)
        except RejectError as error:
            reject(input_file, digest, error.reason, error.detail)
            continue
        except Exception as error:  # a parser bug must cost one file, not the run
            reject(
                input_file,
                digest,
                RejectReason.EXTRACTION_FAILED,
                f"unexpected {type(error).__name__}: {error}",
            )
            continue
        rows.append(article_row(article, Lineage(input_file.path, digest, run_id, ingested_at_ms)))
        results.append(FileResult(digest, False, article.article_id, article.published_at_ms))
        if len(rows) >= STAGED_ROW_GROUP:
            staged.write(articles_table(rows, run_id))
            rows = []
    kill_point(f"batch-{batch.index}")
    if rows:
        staged.write(articles_table(rows, run_id))
    return BatchResult(tuple(results), tuple(rejects), staged.close())


STAGED_ROW_GROUP = 500
"""Article rows a parse task holds before writing them out: bounds a worker's memory
whatever the batch size."""


class _StagedArticles:
    """One batch's article rows, written to its staging file a record batch at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: pa.ipc.RecordBatchFileWriter | None = None

    def write(self, rows: pa.Table) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = open_staging_writer(self.path, rows.schema)
        self._writer.write_table(rows)

    def close(self) -> str | None:
        """The staged file, or None when the batch stored no article."""
        if self._writer is None:
            return None
        self._writer.close()
        return str(self.path)


def map_in_process(
    batches: Sequence[Batch], staging: str, run_id: str, ingested_at_ms: int
) -> list[BatchResult]:
    """Parse batches one after another in this process."""
    return [parse_batch_files(batch, staging, run_id, ingested_at_ms) for batch in batches]


WAVE_FILES = 100_000
"""Files a run reads, at most, between two commits. A larger run commits in waves: its
memory is bounded by a wave rather than the run, and a run interrupted after a wave keeps
what that wave committed (the next run reads only the rest)."""


@dataclass(slots=True)
class _RunTally:
    """What the waves of one run add up to, for its runs row and its summary."""

    counts: Counter[str]
    feeds: Counter[str] = field(default_factory=Counter)
    reject_counts: Counter[str] = field(default_factory=Counter)
    reject_examples: dict[str, list[str]] = field(default_factory=dict)
    committed: dict[Path, None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _RunContext:
    """What every wave of one run shares."""

    warehouse: Warehouse
    run_id: str
    started_ms: int
    paths: Sequence[str]
    warehouse_name: str
    batch_size: int
    run_batches: int
    map_batches: BatchMapper


def run_ingest(
    paths: Sequence[str],
    warehouse_dir: str,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    wait: bool = False,
    map_batches: BatchMapper = map_in_process,
    warehouse_name: str | None = None,
    wave_files: int = WAVE_FILES,
) -> RunSummary:
    """Ingest the files under ``paths`` into the warehouse; see the module docstring.

    ``warehouse_name`` is what the runs table records as the warehouse (the object-store URL
    when ``warehouse_dir`` is its local working copy); by default the directory itself.
    The files to read are committed in waves of ``wave_files`` (in path order); each wave
    rewrites the run's row in the runs table with the counts so far.
    """
    if batch_size < 0:
        raise ValueError(f"batch_size must be 0 (automatic) or more, got {batch_size}")
    if wave_files < 1:
        raise ValueError(f"wave_files must be 1 or more, got {wave_files}")
    clock = time.perf_counter()
    started = datetime.now(UTC)
    run_id = new_run_id(started)
    warehouse = open_warehouse(warehouse_dir)
    holder = f"pid {os.getpid()}, run {run_id}, started {started:%Y-%m-%d %H:%M:%S} UTC"
    with warehouse_lock(warehouse, holder, wait=wait):
        kill_point("locked")
        recovered = recover(warehouse)
        kill_point("recovered")
        discovery = discover_for_run(list(paths))
        skipped = discovery.skipped
        plan = plan_reads(discovery.files, read_ledger(warehouse), PARSER_VERSION)
        del discovery  # the plan holds what is still needed of the files found
        files_to_read, unchanged = plan.to_read.num_rows, plan.unchanged
        batch_size = batch_size or automatic_batch_size(files_to_read)
        wave_starts = range(0, files_to_read, wave_files) or range(1)
        waves = _WaveFiles.spill(plan.to_read, wave_starts, wave_files, warehouse, run_id)
        del plan
        release_free_memory()  # the files found and the plan are on disk or gone now
        context = _RunContext(
            warehouse,
            run_id,
            int(started.timestamp() * 1000),
            paths,
            warehouse_name or str(warehouse.root),
            batch_size,
            sum(-(-min(wave_files, files_to_read - s) // batch_size) for s in wave_starts),
            map_batches,
        )
        tally = _RunTally(
            Counter(
                {
                    Outcome.UNCHANGED.value: unchanged,
                    Outcome.SKIPPED.value: len(skipped),
                }
            )
        )
        skips = _new_skips(warehouse, [(s.path, s.reason.value, s.detail) for s in skipped])
        first_batch = 0
        for wave in range(len(wave_starts)):
            first_batch += _ingest_wave(context, waves.read(wave), first_batch, skips, tally)
            skips = []
            release_free_memory()  # what this wave freed goes back before the next one
        waves.remove()
    return RunSummary(
        run_id,
        warehouse.root,
        {k: v for k, v in tally.counts.items() if v},
        time.perf_counter() - clock,
        tuple(tally.committed),
        recovered,
        dict(tally.feeds),
        dict(tally.reject_counts),
        tally.reject_examples,
    )


@dataclass(frozen=True, slots=True)
class _WaveFiles:
    """A run's read plan, one Arrow IPC file a wave, so that only the wave being ingested is
    in memory (76 bytes a file, measured: 36.5 MiB for 500,000 files). The files live in the
    warehouse's ``_staging`` beside the run's own directory, which each commit empties; a
    killed run's are dropped by the next run's recovery like any abandoned staging."""

    directory: Path

    @classmethod
    def spill(
        cls,
        to_read: pa.Table,
        wave_starts: range,
        wave_files: int,
        warehouse: Warehouse,
        run_id: str,
    ) -> _WaveFiles:
        """Write the plan's slice of each wave to its own file."""
        directory = warehouse.staging_dir(f"{run_id}-plan")
        directory.mkdir(parents=True, exist_ok=True)
        for wave, start in enumerate(wave_starts):
            rows = to_read.slice(start, wave_files)
            with open_staging_writer(directory / f"wave-{wave}.arrow", rows.schema) as writer:
                writer.write_table(rows)
        return cls(directory)

    def read(self, wave: int) -> pa.Table:
        """The plan of one wave, read into memory; its file is deleted."""
        path = self.directory / f"wave-{wave}.arrow"
        rows = read_staging_file(path)
        path.unlink()
        return rows

    def remove(self) -> None:
        """Delete the directory once every wave was read."""
        shutil.rmtree(self.directory, ignore_errors=True)


def count_files_to_read(discovery: Discovery, warehouse_dir: str) -> int:
    """How many of the files in ``discovery`` a run would read now, going by the ledger of
    the warehouse at ``warehouse_dir`` (new, changed, or last parsed by another parser
    version). Read-only and without the lock, so only a hint: a run plans again under it."""
    ledger = read_ledger(open_warehouse(warehouse_dir))
    return int(plan_reads(discovery.files, ledger, PARSER_VERSION).to_read.num_rows)


def _ingest_wave(
    context: _RunContext,
    wave: pa.Table,
    first_batch: int,
    skips: list[tuple[str, str, str]],
    tally: _RunTally,
) -> int:
    """Read, parse, resolve and commit one wave of files (``READ_PLAN_COLUMNS``); add what
    it did to ``tally``. Returns the number of batches it parsed."""
    warehouse, run_id, batch_size = context.warehouse, context.run_id, context.batch_size
    files: list[tuple[InputFile, str | None]] = []
    recorded_before: dict[str, tuple[str, str | None]] = {}
    columns = wave.to_pydict()
    for path, size, mtime_ns, known, outcome, article in zip(
        *(columns.pop(name) for name in READ_PLAN_COLUMNS), strict=True
    ):
        files.append((InputFile(path, size, mtime_ns), known))
        if known is not None:
            recorded_before[path] = (outcome, article)
    staging = warehouse.staging_dir(run_id)
    staging.mkdir(parents=True, exist_ok=True)
    batches = [
        Batch(first_batch + number, tuple(files[start : start + batch_size]), context.run_batches)
        for number, start in enumerate(range(0, len(files), batch_size))
    ]
    del files
    results = context.map_batches(batches, str(staging), run_id, context.started_ms)
    kill_point("parsed")

    versions = [
        Version(file.content_sha256, file.article_id, file.published_at_ms, PARSER_VERSION, path)
        for path, _, file in _files_read(batches, results)
        if file.article_id is not None
        and file.content_sha256 is not None
        and file.published_at_ms is not None
    ]
    stored = _stored_versions_of(warehouse, versions)
    resolution = resolve(versions, stored, PARSER_VERSION)
    kill_point("resolved")

    counts = tally.counts
    ledger_columns: dict[str, list[object]] = {name: [] for name in LEDGER_SCHEMA.names}
    for path, input_file, file in _files_read(batches, results):
        previous = recorded_before.get(path)
        if file.unchanged and previous is not None:
            outcome = Outcome.UNCHANGED.value
            recorded, article = previous
        elif file.article_id is None:
            outcome = recorded = Outcome.REJECTED.value
            article = None
        else:
            outcome = recorded = resolution.outcomes[path].value
            article = file.article_id
        counts[outcome] += 1
        for name, value in (
            ("source_path", path),
            ("size", input_file.size),
            ("mtime_ns", input_file.mtime_ns),
            ("content_sha256", file.content_sha256),
            ("parser_version", PARSER_VERSION),
            ("outcome", recorded),
            ("article_id", article),
            ("run_id", run_id),
        ):
            ledger_columns[name].append(value)

    incoming = _stage_incoming(results, resolution.new_rows, resolution.outcomes, staging)
    rejects = [reject for result in results for reject in result.rejects]
    tally.feeds.update(incoming.feeds)
    for reject in rejects:
        tally.reject_counts[reject.reason] += 1
        examples = tally.reject_examples.setdefault(reject.reason, [])
        if len(examples) < 3:
            examples.append(reject.source_path)
    run_row = _run_row(
        run_id,
        context.started_ms,
        context.paths,
        context.warehouse_name,
        batch_size,
        counts,
    )
    committed = commit(
        warehouse,
        run_id,
        CommitPlan(
            incoming=incoming.files,
            removals=resolution.removals,
            moves=resolution.moves,
            log_rows={
                "rejects": rejects_table(rejects, run_id, context.started_ms),
                "skips": skips_table(skips, run_id, context.started_ms),
                "runs": run_row,
            },
            ledger_rows=pa.Table.from_pydict(ledger_columns, schema=LEDGER_SCHEMA),
            file_metadata=file_metadata(run_id),
        ),
    )
    tally.committed.update(dict.fromkeys(committed))
    return len(batches)


def _files_read(
    batches: Sequence[Batch], results: Sequence[BatchResult]
) -> Iterator[tuple[str, InputFile, FileResult]]:
    """(path, input file, result) of every file the run read, in batch order."""
    for batch, result in zip(batches, results, strict=True):
        for (input_file, _), file in zip(batch.files, result.files, strict=True):
            yield input_file.path, input_file, file


def _stored_versions_of(warehouse: Warehouse, versions: Sequence[Version]) -> list[StoredVersion]:
    """Every stored version ``resolve`` needs: those of the new versions' articles and those
    with their hashes, plus every version of an article a re-parse takes a version from
    (a new parser may give the same content another article id)."""
    ids = {version.article_id for version in versions}
    hashes = {version.content_sha256 for version in versions}
    stored = read_stored_versions(warehouse, ids, hashes)
    former_ids = {entry.version.article_id for entry in stored} - ids
    if former_ids:
        stored = read_stored_versions(warehouse, ids | former_ids, hashes)
    return stored


@dataclass(frozen=True, slots=True)
class IncomingRows:
    """The new versions of a run, staged per partition, and how many came from each feed."""

    files: dict[Partition, Path]
    feeds: Counter[str]


INCOMING_BUFFER_BYTES = 48 * 2**20
"""Article rows ``_stage_incoming`` holds before writing them out: bounds its memory while
keeping its writes few and large (a Parquet write costs about a millisecond however small)."""

STAGED_CHUNK_ROWS = 2_000
"""Staged rows ``_stage_incoming`` sorts into partitions at a time."""


class _PartitionWriters:
    """One temporary Parquet file per partition, written from a bounded buffer.

    The buffered pieces are slices of the chunks ``add`` is given, so a chunk stays in memory
    while any of its slices does; the buffer is therefore written out whole when full."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files: dict[Partition, Path] = {}
        self._writers: dict[Partition, pa.ipc.RecordBatchFileWriter] = {}
        self._buffers: dict[Partition, list[pa.Table]] = {}
        self._buffered = 0

    def add(self, partition: Partition, rows: pa.Table) -> None:
        self._buffers.setdefault(partition, []).append(rows)
        self._buffered += rows.nbytes
        if self._buffered > INCOMING_BUFFER_BYTES:
            self._write_all()

    def close(self) -> None:
        self._write_all()
        for writer in self._writers.values():
            writer.close()

    def _write_all(self) -> None:
        for partition, pieces in sorted(self._buffers.items()):
            writer = self._writers.get(partition)
            if writer is None:
                table, year, month = partition
                self.files[partition] = self.directory / f"{table}-{year}-{month}.arrow"
                self.directory.mkdir(parents=True, exist_ok=True)
                writer = self._writers[partition] = open_staging_writer(
                    self.files[partition], ARTICLES_SCHEMA
                )
            # One record batch for the partition's slices: a batch per slice costs far more.
            writer.write_table(pa.concat_tables(pieces).combine_chunks())
        self._buffers.clear()
        self._buffered = 0


def _stage_incoming(
    results: Sequence[BatchResult],
    placement: dict[str, str],
    outcomes: dict[str, Outcome],
    staging: Path,
) -> IncomingRows:
    """Sort the staged rows of the versions to store into one Parquet file per partition
    (one version per content hash, with the table it goes to), a chunk of staged rows at a
    time, so that memory holds a bounded buffer of article rows, never the whole run."""
    stored_outcomes = {Outcome.ARTICLE_WRITTEN, Outcome.VERSION_SUPERSEDED}
    writers = _PartitionWriters(staging / "incoming")
    feeds: Counter[str] = Counter()
    year_column, month_column = ARTICLES_PARTITION_COLUMNS
    try:
        for staged in _staged_chunks(results):
            keys: list[tuple[str, int, int]] = []
            chosen: list[int] = []
            for index, (path, digest, year, month) in enumerate(
                zip(
                    *(
                        staged.column(name).to_pylist()
                        for name in ("source_path", "content_sha256", year_column, month_column)
                    ),
                    strict=True,
                )
            ):
                if outcomes.get(path) in stored_outcomes:
                    keys.append((placement[digest], year, month))
                    chosen.append(index)
            order = sorted(range(len(keys)), key=keys.__getitem__)
            rows = staged.take(pa.array([chosen[i] for i in order], pa.int64()))
            feeds.update(feed or "(no feed)" for feed in rows.column("feed").to_pylist())
            data = rows.drop_columns(list(ARTICLES_PARTITION_COLUMNS)).cast(ARTICLES_SCHEMA)
            del staged, rows  # one chunk in memory at a time: drop it before the next read
            start = 0
            for partition, members in itertools.groupby(order, key=keys.__getitem__):
                count = sum(1 for _ in members)
                writers.add(partition, data.slice(start, count))
                start += count
            del data
    finally:
        writers.close()
    return IncomingRows(writers.files, feeds)


def _staged_chunks(results: Sequence[BatchResult]) -> Iterator[pa.Table]:
    """The article rows the parse tasks staged, about ``STAGED_CHUNK_ROWS`` at a time (whole
    record batches)."""
    for result in results:
        if result.staged_articles is None:
            continue
        with pa.memory_map(result.staged_articles) as source:
            staged = pa.ipc.open_file(source)
            batches: list[pa.RecordBatch] = []
            rows = 0
            for index in range(staged.num_record_batches):
                batch = staged.get_batch(index)
                batches.append(batch)
                rows += batch.num_rows
                if rows >= STAGED_CHUNK_ROWS:
                    yield pa.Table.from_batches(batches)
                    batches, rows = [], 0
            if batches:
                yield pa.Table.from_batches(batches)


def _new_skips(
    warehouse: Warehouse, skips: list[tuple[str, str, str]]
) -> list[tuple[str, str, str]]:
    """Skips not already recorded (same path and reason) by an earlier run."""
    recorded = read_table(warehouse, "skips")
    if recorded is None or not skips:
        return skips
    known = set(
        zip(
            recorded.column("source_path").to_pylist(),
            recorded.column("reason").to_pylist(),
            strict=True,
        )
    )
    return [skip for skip in skips if (skip[0], skip[1]) not in known]


def _run_row(
    run_id: str,
    started_ms: int,
    paths: Sequence[str],
    warehouse_name: str,
    batch_size: int,
    counts: Counter[str],
) -> pa.Table:
    parameters = {
        "paths": [str(p) for p in paths],
        "warehouse": warehouse_name,
        "batch_size": batch_size,
    }
    row = {
        "run_id": run_id,
        "started_at": started_ms,
        "finished_at": int(datetime.now(UTC).timestamp() * 1000),
        "parameters": json.dumps(parameters, ensure_ascii=False, sort_keys=True),
        "parser_version": PARSER_VERSION,
        "files_seen": sum(counts.values()),
        **{column: counts[outcome.value] for outcome, column in RUN_OUTCOME_COLUMNS.items()},
    }
    return pa.Table.from_pylist([row], schema=RUNS_SCHEMA)
