"""One ingest run, end to end, independent of how its parse batches are executed.

``run_ingest`` takes the warehouse lock, rolls forward any half-applied commit, discovers the
inputs, skips what the ledger shows unchanged, parses the rest in batches through the given
``map_batches`` (Prefect tasks in ``flows.ingest``; a plain loop in tests), decides where
every version belongs (``broadsheet.resolve``) and commits (``broadsheet.warehouse_commit``),
in waves of at most ``WAVE_FILES`` files so that its memory does not grow with the archive.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import itertools
import json
import os
import secrets
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import overload

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc

from broadsheet.allocators import release_free_memory
from broadsheet.fault_injection import armed_kill_point, kill_point
from broadsheet.read_inputs import Discovery, InputFile, discover_for_run, read_input
from broadsheet.resolve import (
    ARTICLES,
    LEDGER_PLAN_COLUMNS,
    NEW_VERSION_COLUMNS,
    READ_PLAN_COLUMNS,
    RUN_OUTCOME_COLUMNS,
    VERSIONS,
    Outcome,
    Partition,
    ReadPlan,
    StoredVersion,
    plan_reads,
    resolve_table,
)
from broadsheet.rows import (
    Lineage,
    RejectRow,
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
    read_ledger_rows_of,
    read_staging_file,
    read_stored_versions,
    read_table,
    recover,
    sorted_rows,
    table_signature,
    warehouse_lock,
)
from schemas import (
    ARTICLES_PARTITION_COLUMNS,
    ARTICLES_SCHEMA,
    FILE_FACTS_SCHEMA,
    LEDGER_SCHEMA,
    RUNS_SCHEMA,
)
from transforms import PARSER_VERSION, ParsedArticle, RejectError, RejectReason, parse_articles

AUTOMATIC_BATCH_SIZE = 0
"""``batch_size`` meaning: about ``TARGET_PARSE_TASKS`` tasks a run, with batches of
``MIN_BATCH_SIZE`` to ``MAX_BATCH_SIZE`` files (so a million files make 100 tasks)."""
DEFAULT_BATCH_SIZE = AUTOMATIC_BATCH_SIZE
MIN_BATCH_SIZE = 500
MAX_BATCH_SIZE = 10_000
TARGET_PARSE_TASKS = 16


def automatic_batch_size(files: int) -> int:
    """Files a parse task takes when ``batch_size`` is automatic. Each task run costs CPU in
    Prefect's temporary server and in the flow's process, on the cores the parsing uses,
    hence few tasks; enough of them that a worker left without one near the end of a run
    waits little. Measured ingesting 100,000 files, alternating, three rounds: 16 tasks
    against 32 took 18.5 against 19.7 s (medians) with 1 worker and 10.9 against 11.7 s with
    2, the server's CPU 3.1-3.8 against 3.6-5.1 s."""
    return min(MAX_BATCH_SIZE, max(MIN_BATCH_SIZE, -(-files // TARGET_PARSE_TASKS)))


class BatchFiles(Sequence[tuple[InputFile, str | None]]):
    """A parse batch's files as the columns of its slice of the read plan (path, size,
    mtime_ns, known_sha256), read as (``InputFile``, known hash) pairs.

    The flow's process cuts a wave into batches without making Python objects per file: the
    pairs are built where the batch is read, in the worker, once. The flow's process is the
    serial part of a run; cutting a 100,000-file wave into 16 batches and pickling them took
    it 327 ms as tuples of ``InputFile`` and 5 ms as columns (medians of 7, alternating,
    ``InputFile`` pickled by fields), and a worker unpickles and reads either in the same
    time (119 against 113 ms). It pickles as an Arrow IPC stream of its own rows: a pickled
    slice would carry its whole wave's buffers."""

    __slots__ = ("_columns", "_pairs")

    def __init__(self, columns: pa.Table) -> None:
        self._columns = columns.select(list(READ_PLAN_COLUMNS[:4]))
        self._pairs: tuple[tuple[InputFile, str | None], ...] | None = None

    @classmethod
    def from_ipc(cls, stream: bytes) -> BatchFiles:
        """The files pickled by ``__reduce__``."""
        return cls(pa.ipc.open_stream(stream).read_all())

    def __reduce__(self) -> tuple[Callable[[bytes], BatchFiles], tuple[bytes]]:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, self._columns.schema) as writer:
            writer.write_table(self._columns)
        return BatchFiles.from_ipc, (sink.getvalue().to_pybytes(),)

    def _all(self) -> tuple[tuple[InputFile, str | None], ...]:
        if self._pairs is None:
            paths, sizes, mtimes, known = (column.to_pylist() for column in self._columns.columns)
            files = map(InputFile, paths, sizes, mtimes)
            self._pairs = tuple(zip(files, known, strict=True))
        return self._pairs

    def __len__(self) -> int:
        rows: int = self._columns.num_rows
        return rows

    def total_size(self) -> int:
        """Bytes of all the files, from the size column (without building the pairs)."""
        total = pc.sum(self._columns.column("size")).as_py()
        return int(total or 0)

    @overload
    def __getitem__(self, index: int) -> tuple[InputFile, str | None]: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[tuple[InputFile, str | None], ...]: ...

    def __getitem__(
        self, index: int | slice
    ) -> tuple[InputFile, str | None] | tuple[tuple[InputFile, str | None], ...]:
        return self._all()[index]

    def __iter__(self) -> Iterator[tuple[InputFile, str | None]]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    __hash__ = None  # type: ignore[assignment]


def total_size(files: Sequence[tuple[InputFile, str | None]]) -> int:
    """Bytes of all the ``files``; read from the columns of a ``BatchFiles``: the flow's
    process sizes every batch it hands to a worker (for its time limit), and building the
    pairs there would make the Python objects a file that ``BatchFiles`` leaves to the
    worker (measured: 530,000 more blocks alive in the flow's process during a 100,000-file
    wave's parse, 28 MB of Python's pools left unused after it)."""
    if isinstance(files, BatchFiles):
        return files.total_size()
    return sum(input_file.size for input_file, _ in files)


@dataclass(frozen=True, slots=True)
class Batch:
    """Files one parse task reads, each with the hash that would make it unchanged."""

    index: int
    files: Sequence[tuple[InputFile, str | None]]
    """A ``BatchFiles`` in a run; any sequence of pairs in tests."""
    run_batches: int
    """Batches in the whole run (for progress: a run of several waves maps several times)."""
    after_crash: bool = False
    """The run before this one died while parsing: parse this batch in a worker process even
    where it would be parsed in the flow's own (``flows.ingest``), so that a file that
    crashes the process is found and rejected instead of ending this run too."""
    set_aside: tuple[tuple[str, RejectReason, str], ...] = ()
    """(path, reason, detail) of the files that end or stall a process parsing them alone
    (``broadsheet.worker_crashes``): rejected as ``worker_crashed`` or ``time_limit`` without
    being parsed."""


class _FileFacts:
    """``FILE_FACTS_SCHEMA`` of a batch's files, a column list each, filled a file at a time."""

    def __init__(self) -> None:
        self.columns: list[list[object]] = [[] for _ in FILE_FACTS_SCHEMA]
        self._hashes, self._unchanged, self._ids, self._published, self._feeds = self.columns[:5]
        self._years, self._months = self.columns[5:]

    def __len__(self) -> int:
        return len(self._hashes)

    def add(
        self,
        content_sha256: str | None,
        *,
        unchanged: bool = False,
        article: ParsedArticle | None = None,
    ) -> None:
        self._hashes.append(content_sha256)
        self._unchanged.append(unchanged)
        self._ids.append(article.article_id if article is not None else None)
        self._published.append(article.published_at_ms if article is not None else None)
        self._feeds.append(article.feed if article is not None else None)
        self._years.append(None)
        self._months.append(None)

    def staged_under(self, position: int, month: tuple[int, int]) -> None:
        self._years[position], self._months[position] = month

    def record_batch(self) -> pa.RecordBatch:
        return pa.record_batch(
            [
                pa.array(values, field.type)
                for values, field in zip(self.columns, FILE_FACTS_SCHEMA, strict=True)
            ],
            schema=FILE_FACTS_SCHEMA,
        )


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one parse task did; the article rows themselves are staged on disk."""

    facts: pa.RecordBatch
    """What reading each file of the batch gave, in the batch's order (``FILE_FACTS_SCHEMA``):
    a few columns travel back from a worker, rather than an object a file."""
    rejects: tuple[RejectRow, ...]
    staged_articles: str | None
    staged_months: tuple[tuple[int, int], ...] = ()
    """The (year, month) of each record batch of ``staged_articles``, in file order."""


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


ChunkWatch = Callable[
    [Sequence[tuple[InputFile, str | None]]], contextlib.AbstractContextManager[object]
]
"""What ``parse_batch_files`` runs each chunk of files inside, given the chunk's files."""


def parse_batch_files(
    batch: Batch,
    staging: str,
    run_id: str,
    ingested_at_ms: int,
    *,
    watch_chunk: ChunkWatch | None = None,
) -> BatchResult:
    """Read and parse one batch; stage its article rows in ``staging`` (``_StagedArticles``).
    Each chunk of ``PARSE_CHUNK`` files is read, parsed and staged inside ``watch_chunk``
    (a worker process's stall watch: ``broadsheet.worker_crashes``), when given."""
    facts = _FileFacts()
    rejects: list[RejectRow] = []
    articles: list[ParsedArticle] = []
    lineages: list[Lineage] = []
    unstaged: list[int] = []  # positions in ``facts`` of the files in ``articles``
    staged = _StagedArticles(Path(staging) / "articles" / f"batch-{batch.index:06d}.arrow")

    def stage_rows() -> None:
        months = staged.add(articles_table(articles, lineages, run_id))
        for position, month in zip(unstaged, months, strict=True):
            facts.staged_under(position, month)
        articles.clear()
        lineages.clear()
        unstaged.clear()

    def reject(
        input_file: InputFile, digest: str | None, reason: RejectReason, detail: str
    ) -> None:
        rejects.append(RejectRow(input_file.path, digest, reason.value, detail))
        facts.add(digest)

    set_aside = {path: (reason, detail) for path, reason, detail in batch.set_aside}

    def parse_chunk(chunk: Sequence[tuple[InputFile, str | None]]) -> None:
        contents = [read_and_hash(input_file) for input_file, _ in chunk]
        changed = [
            (input_file, content[0])
            for (input_file, known_hash), content in zip(chunk, contents, strict=True)
            if not isinstance(content, OSError)
            and content[1] != known_hash
            and input_file.path not in set_aside
        ]
        kill_at_parse(input_file for input_file, _ in changed)
        outcomes = iter(parse_articles([raw for _, raw in changed]))
        for (input_file, known_hash), content in zip(chunk, contents, strict=True):
            if isinstance(content, OSError):
                reject(
                    input_file,
                    None,
                    RejectReason.UNREADABLE,
                    f"cannot read file: {content.strerror or content}",
                )
                continue
            digest = content[1]
            if digest == known_hash:
                facts.add(digest, unchanged=True)
                continue
            if input_file.path in set_aside:
                reject(input_file, digest, *set_aside[input_file.path])
                continue
            article = next(outcomes)
            if isinstance(article, RejectError):
                reject(input_file, digest, article.reason, article.detail)
                continue
            articles.append(article)
            lineages.append(Lineage(input_file.path, digest, run_id, ingested_at_ms))
            unstaged.append(len(facts))
            facts.add(digest, article=article)
            if len(articles) >= STAGED_ROW_GROUP:
                stage_rows()

    for start in range(0, len(batch.files), PARSE_CHUNK):
        chunk = batch.files[start : start + PARSE_CHUNK]
        with watch_chunk(chunk) if watch_chunk is not None else contextlib.nullcontext():
            parse_chunk(chunk)
    if articles:
        stage_rows()
    staged_file = staged.close()
    kill_point(f"batch-{batch.index}")
    return BatchResult(facts.record_batch(), tuple(rejects), staged_file, tuple(staged.months))


def kill_at_parse(files: Iterable[InputFile]) -> None:
    """The kill point ``parse:<path>`` of each file about to be parsed: for the tests of a
    worker process that dies on one file (``broadsheet.worker_crashes``)."""
    armed = armed_kill_point("parse:")
    if armed is not None:
        for input_file in files:
            kill_point(f"parse:{input_file.path}")


def read_and_hash(input_file: InputFile) -> tuple[bytes, str] | OSError:
    """A file's bytes and their SHA-256, or the error that kept it from being read."""
    try:
        raw = read_input(input_file.path)
    except OSError as error:
        return error
    return raw, hashlib.sha256(raw).hexdigest()


PARSE_CHUNK = 100
"""Files a parse task reads, then parses together (``parse_articles``, a step at a time over
the chunk, which keeps each step's code in the processor's caches)."""

STAGED_ROW_GROUP = 500
"""Article rows a parse task holds as Python objects before it turns them into Arrow."""

STAGED_BUFFER_BYTES = 8 * 2**20
"""Arrow article rows (by ``nbytes``) a parse task holds before writing them out, a record
batch per partition month: bounds a worker's memory whatever the batch size, while giving
the commit record batches of 8 MiB of rows a month rather than a few hundred rows. A
worker's peak, measured: 107 MiB for a 1,563-file batch and 115 MiB for a 5,000-file one
(96 and 98 MiB when each 500 rows were written at once, unsorted), 134 MiB with 16 MiB."""


class _StagedArticles:
    """One batch's article rows in its staging file, a record batch per partition month and
    buffer, so that the commit reads each partition's rows straight from the files of the
    parse tasks (``StagedIncoming``), with no pass that sorts them into partitions first.
    Written uncompressed: the commit reads them back as many small record batches, and
    with LZ4 buffers that reading took 2.7 of a 20,000-file commit's 5.3 s (profiled).

    Each chunk of rows is put in month order as it arrives (one small copy), so that writing
    the buffer only slices: a take over the whole buffer, one chunk per ``add``, made Arrow
    concatenate every chunk once per month (profiled: 9% of a parse task's time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.months: list[tuple[int, int]] = []
        """The (year, month) of each record batch written, in order."""
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self._buffer: list[tuple[pa.Table, list[tuple[tuple[int, int], int, int]]]] = []
        """Chunks in month order, each with its (month, first row, rows) runs."""
        self._buffered = 0

    def add(self, rows: pa.Table) -> list[tuple[int, int]]:
        """Stage ``rows`` (with their partition columns); return each row's (year, month)."""
        year, month = (rows.column(name).to_pylist() for name in ARTICLES_PARTITION_COLUMNS)
        months = list(zip(year, month, strict=True))
        order = sorted(range(len(months)), key=months.__getitem__)
        if order != list(range(len(months))):
            rows = rows.take(pa.array(order, pa.int64()))
        runs, start = [], 0
        for key, members in itertools.groupby(months[index] for index in order):
            count = sum(1 for _ in members)
            runs.append((key, start, count))
            start += count
        self._buffer.append((rows, runs))
        self._buffered += rows.nbytes
        if self._buffered >= STAGED_BUFFER_BYTES:
            self._write_buffer()
        return months

    def close(self) -> str | None:
        """Write what is buffered; the staged file, or None when the batch staged no row."""
        self._write_buffer()
        if self._writer is None:
            return None
        self._writer.close()
        return str(self.path)

    def _write_buffer(self) -> None:
        """Write the buffer as one record batch per month, in month order. Only one month's
        rows are copied at a time: a copy of the whole buffer would double the peak."""
        if not self._buffer:
            return
        buffer, self._buffer, self._buffered = self._buffer, [], 0
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = open_staging_writer(self.path, buffer[0][0].schema, compression=None)
        slices: dict[tuple[int, int], list[pa.Table]] = {}
        for rows, runs in buffer:
            for key, start, count in runs:
                slices.setdefault(key, []).append(rows.slice(start, count))
        for key in sorted(slices):
            (rows_of_month,) = (
                pa.concat_tables(slices[key]).combine_chunks().to_batches(max_chunksize=None)
            )
            self._writer.write_batch(rows_of_month)
            self.months.append(key)


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
    after_crash: bool
    """The previous run died while parsing (``Warehouse.parsing_marker`` was left behind)."""


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
        after_crash = warehouse.parsing_marker.exists()
        kill_point("recovered")
        discovery = discover_for_run(list(paths))
        skipped = discovery.skipped
        plan = _read_plan(discovery, warehouse)
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
            after_crash,
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
            if wave + 1 < len(wave_starts):
                # Prefect's task runs leave reference cycles that wait for Python's rare
                # full collection (about 25,000 more blocks alive after each 100,000-file
                # wave); collected here (about 0.1 s), their memory goes back before the
                # next wave instead of pinning its allocations.
                gc.collect()
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
    version). Read-only and without the lock, so only a hint: the next run in this process
    takes the plan made here only if it lists the same files (this very ``discovery``, a
    prefetch) and the ledger has not changed since; otherwise it plans again."""
    global _plan_hint
    warehouse = open_warehouse(warehouse_dir)
    ledger = table_signature(warehouse, "ledger")  # before reading it: a change shows later
    plan = _plan(discovery, warehouse)
    _plan_hint = _PlanHint(discovery, warehouse.root, ledger, plan)
    return int(plan.to_read.num_rows)


@dataclass(frozen=True, slots=True)
class _PlanHint:
    """A read plan made before a run took the lock, and what it was made from."""

    discovery: Discovery
    warehouse: Path
    ledger: tuple[tuple[str, int, int, int], ...]
    plan: ReadPlan


_plan_hint: _PlanHint | None = None


def _read_plan(discovery: Discovery, warehouse: Warehouse) -> ReadPlan:
    """The run's read plan: the one ``count_files_to_read`` made of ``discovery`` for this
    warehouse when its ledger is still as it was then (planning again cost 0.5-1.0 s at
    500,000 files when it joined the ledger's rows), else a new one. Call with the lock
    held."""
    global _plan_hint
    hint, _plan_hint = _plan_hint, None
    if (
        hint is not None
        and hint.discovery is discovery
        and hint.warehouse == warehouse.root
        and hint.ledger == table_signature(warehouse, "ledger")
    ):
        return hint.plan
    return _plan(discovery, warehouse)


def _plan(discovery: Discovery, warehouse: Warehouse) -> ReadPlan:
    """Plan the reads of ``discovery`` against the ledger, holding only the ledger columns
    every row is needed for: its hashes and ids are read only for the files to read (on
    the synthetic 500,000-file warehouse a whole ledger row is 226 bytes in Arrow, those
    columns 76)."""
    paths = discovery.files.column("path")
    return plan_reads(
        discovery.files,
        read_ledger(warehouse, paths, LEDGER_PLAN_COLUMNS),
        PARSER_VERSION,
        ledger_facts=functools.partial(read_ledger_rows_of, warehouse),
    )


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
    staging = warehouse.staging_dir(run_id)
    staging.mkdir(parents=True, exist_ok=True)
    batches = [
        Batch(
            first_batch + number,
            BatchFiles(wave.slice(start, batch_size)),
            context.run_batches,
            context.after_crash,
        )
        for number, start in enumerate(range(0, wave.num_rows, batch_size))
    ]
    warehouse.parsing_marker.write_text(run_id, encoding="utf-8")
    try:
        results = context.map_batches(batches, str(staging), run_id, context.started_ms)
    except Exception:
        warehouse.parsing_marker.unlink()
        raise
    # Left by a process that dies parsing, and by one stopped there (KeyboardInterrupt,
    # SystemExit): the user may have stopped a parse that stalled, which the next run's
    # worker process then watches (``broadsheet.worker_crashes``).
    warehouse.parsing_marker.unlink()
    kill_point("parsed")

    read = _files_read(wave, batches, results)
    column = {name: read.column(name).combine_chunks() for name in read.column_names}
    is_version = pc.is_valid(column["article_id"])
    new = read.filter(is_version).select(["path", *NEW_VERSION_COLUMNS[1:]])
    new = new.rename_columns(list(NEW_VERSION_COLUMNS))
    resolution = resolve_table(new, _stored_versions_of(warehouse, new), PARSER_VERSION)
    kill_point("resolved")

    unchanged = column["unchanged"]
    resolved = pc.if_else(
        is_version,
        pc.replace_with_mask(pa.nulls(read.num_rows, pa.string()), is_version, resolution.outcomes),
        Outcome.REJECTED.value,
    )
    outcomes = pc.if_else(unchanged, Outcome.UNCHANGED.value, resolved)
    counts = tally.counts
    for entry in pc.value_counts(outcomes).to_pylist():
        counts[entry["values"]] += entry["counts"]
    ledger_rows = pa.Table.from_arrays(
        [
            column["path"],
            column["size"],
            column["mtime_ns"],
            column["content_sha256"],
            pa.repeat(PARSER_VERSION, read.num_rows),
            pc.if_else(unchanged, column["previous_outcome"], resolved),
            pc.if_else(unchanged, column["previous_article_id"], column["article_id"]),
            pa.repeat(run_id, read.num_rows),
        ],
        schema=LEDGER_SCHEMA,
    )
    stored_rows = pc.is_in(
        outcomes,
        value_set=pa.array([Outcome.ARTICLE_WRITTEN.value, Outcome.VERSION_SUPERSEDED.value]),
    )
    placed = read.append_column(
        "table",
        pc.replace_with_mask(pa.nulls(read.num_rows, pa.string()), is_version, resolution.tables),
    ).filter(stored_rows)
    incoming = StagedIncoming(results, placed)

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
    plan = CommitPlan(
        incoming={
            partition: functools.partial(incoming.rows, partition)
            for partition in incoming.partitions
        },
        removals=resolution.removals,
        moves=resolution.moves,
        log_rows={
            "rejects": rejects_table(rejects, run_id, context.started_ms),
            "skips": skips_table(skips, run_id, context.started_ms),
            "runs": run_row,
        },
        ledger_rows=ledger_rows,
        file_metadata=file_metadata(run_id),
    )
    # What listing the stored versions and resolving freed is still held by the allocators;
    # the commit's own peak comes on top of it. Measured, a 500,000-file run in five waves:
    # the flow's process peaked at 405-419 MiB in the commits of waves 2-5 with this, and at
    # 444-471 MiB without it (372 and 388 MiB in the first wave's, into an empty warehouse).
    release_free_memory()
    with incoming:
        committed = commit(warehouse, run_id, plan)
    tally.committed.update(dict.fromkeys(committed))
    return len(batches)


def _files_read(
    wave: pa.Table, batches: Sequence[Batch], results: Sequence[BatchResult]
) -> pa.Table:
    """The wave's files (``READ_PLAN_COLUMNS``, in its order, which is the batches' order) with
    what reading each gave (``FILE_FACTS_SCHEMA``) and the position of its batch."""
    for batch, result in zip(batches, results, strict=True):
        if result.facts.num_rows != len(batch.files):
            raise RuntimeError(
                f"batch {batch.index}: {result.facts.num_rows} results for {len(batch.files)} files"
            )
    facts = pa.Table.from_batches([result.facts for result in results], schema=FILE_FACTS_SCHEMA)
    positions = [
        pa.repeat(pa.scalar(number, pa.int32()), len(b.files)) for number, b in enumerate(batches)
    ]
    return pa.Table.from_arrays(
        [
            *wave.columns,
            *facts.columns,
            pa.chunked_array(positions, pa.int32()),
        ],
        names=[*wave.column_names, *facts.column_names, "batch"],
    )


def _stored_versions_of(warehouse: Warehouse, new: pa.Table) -> list[StoredVersion]:
    """Every stored version ``resolve_table`` needs for the ``new`` versions: those of their
    articles and those with their hashes, plus every version of an article a re-parse takes a
    version from (a new parser may give the same content another article id)."""
    ids = pc.unique(new.column("article_id").combine_chunks())
    hashes = pc.unique(new.column("content_sha256").combine_chunks())
    stored = read_stored_versions(warehouse, ids, hashes)
    stored_ids = pa.array(sorted({entry.version.article_id for entry in stored}), pa.string())
    former_ids = stored_ids.filter(pc.invert(pc.is_in(stored_ids, value_set=ids)))
    if len(former_ids):
        stored = read_stored_versions(warehouse, pa.concat_arrays([ids, former_ids]), hashes)
    return stored


class StagedIncoming:
    """The versions a wave stores, read a partition at a time straight from the files the
    parse tasks staged (one record batch per month a staged chunk: ``_StagedArticles``).

    ``partitions`` says which (table, year, month) partitions receive rows, before any is
    read; ``rows`` reads one of them: the staged rows of files whose outcome stores them,
    going to that table (one version per content hash, as ``resolve`` placed it). Use it as
    a context manager: it keeps the staged files open until closed. They are read, not
    memory-mapped: mapped pages stay resident until unmapped, which holds every file open
    for the whole commit, so a wave's staged rows would count in the process's memory."""

    def __init__(self, results: Sequence[BatchResult], placed: pa.Table) -> None:
        """``placed``: the files whose versions are stored, with their ``path``, ``batch``
        (position in ``results``), ``table`` (where the version goes), ``staged_year``,
        ``staged_month`` and ``feed``."""
        feeds = pc.value_counts(pc.fill_null(placed.column("feed"), "(no feed)"))
        self.feeds: Counter[str] = Counter(
            {entry["values"]: entry["counts"] for entry in feeds.to_pylist()}
        )
        keys = ["batch", "table", "staged_year", "staged_month"]
        groups = placed.group_by(keys, use_threads=False).aggregate([("path", "list")])
        kept: dict[tuple[int, str, int, int], pa.Array] = {}
        paths = groups.column("path_list").combine_chunks()
        for row, key in enumerate(zip(*(groups.column(k).to_pylist() for k in keys), strict=True)):
            kept[key] = paths[row].values
        self.partitions: set[Partition] = {(table, year, month) for _, table, year, month in kept}
        self._sources: dict[Partition, list[tuple[str, int, pa.Array]]] = {}
        """Per partition: (staged file, record batch, the source paths of its rows to keep)."""
        for number, result in enumerate(results):
            for index, (year, month) in enumerate(result.staged_months):
                assert result.staged_articles is not None
                for table in (ARTICLES, VERSIONS):
                    sources = kept.get((number, table, year, month))
                    if sources is not None:
                        self._sources.setdefault((table, year, month), []).append(
                            (result.staged_articles, index, sources)
                        )
        self._files: dict[str, tuple[pa.OSFile, pa.ipc.RecordBatchFileReader]] = {}
        self._opening = threading.Lock()

    def __enter__(self) -> StagedIncoming:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def rows(self, partition: Partition) -> pa.Table:
        """The new rows of one partition, in the articles schema (no partition columns), in
        the warehouse's sort order. The staged record batches are used as read; rows of
        other tables or outcomes in them are dropped, and the rest sorted, by one ``take``
        at the end (``sorted_rows``)."""
        pieces: list[pa.RecordBatch] = []
        keep: list[pa.Array] = []
        for path, index, sources in self._sources.get(partition, []):
            staged = self._reader(path).get_batch(index)
            pieces.append(staged)
            keep.append(pc.is_in(staged.column("source_path"), value_set=sources))
        if not pieces:
            return ARTICLES_SCHEMA.empty_table()
        rows = pa.Table.from_batches(pieces).drop_columns(list(ARTICLES_PARTITION_COLUMNS))
        selected = pc.indices_nonzero(pa.chunked_array(keep))
        return sorted_rows(rows, selected).cast(ARTICLES_SCHEMA)

    def _reader(self, path: str) -> pa.ipc.RecordBatchFileReader:
        with self._opening:  # the commit reads partitions from several threads
            opened = self._files.get(path)
            if opened is None:
                source = pa.OSFile(path)
                opened = self._files[path] = (source, pa.ipc.open_file(source))
        return opened[1]

    def close(self) -> None:
        for source, _ in self._files.values():
            source.close()
        self._files.clear()


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
