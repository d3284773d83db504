"""Committing to the warehouse: lock, journal, atomic file swaps, and crash recovery.

Layout under the warehouse root::

    articles/year=YYYY/month=M/part-<n>.parquet        at most MAX_PARTITION_FILES a partition
    article_versions/year=YYYY/month=M/part-<n>.parquet
    rejects/part-<n>.parquet  skips/part-<n>.parquet  ledger/part-<n>.parquet   at most
                              MAX_PARTITION_FILES a table (LOG_TABLES)
    runs/part-0.parquet       one file
    _lock                     held (flock) by the run writing the warehouse
    _journal.json             present only while a commit is being applied
    _staging/<run_id>/        private to a run; never inside a table directory

Protocol. A run stages every file it will install under ``_staging``, flushes them to disk,
then writes the journal (atomically: temporary name, fsync, rename): the ordered list of
(staged file, table file) swaps. Each swap is an ``os.replace``, atomic on one filesystem, so
a reader sees the old file or the new one, never a partial or temporary one. The order keeps
every version in at most one place at any moment: rows leaving ``article_versions`` are taken
out first, then rows leaving ``articles`` (files that lose rows are rewritten without them,
files merged away are deleted), then ``articles`` gets its new rows, then
``article_versions``; the log tables follow and the ``runs`` row is installed last. A run
killed before the journal exists changed nothing; one killed after is rolled forward by the
next run (``recover``), which re-applies the swaps not yet done.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import json
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.ipc
import pyarrow.parquet as pq

from broadsheet.fault_injection import kill_point
from broadsheet.resolve import (
    ARTICLES,
    LEDGER_FACTS,
    VERSIONS,
    Partition,
    StoredVersion,
    Version,
)
from schemas import (
    ARTICLES_PARTITION_COLUMNS,
    ARTICLES_SCHEMA,
    PARTITIONED_TABLES,
    REPEATING_COLUMNS,
    SCHEMA_VERSION,
    TABLE_SCHEMAS,
)

STAGING_DIRNAME = "_staging"
PARSING_MARKER_NAME = "_parsing"
JOURNAL_NAME = "_journal.json"
LOCK_NAME = "_lock"
DATA_FILE = "part-0.parquet"
"""The file of the ``runs`` table, and the first file of a partition or a log table."""
PART_FILE = re.compile(r"part-(\d+)\.parquet")
"""Names of a partition's data files; each commit that adds rows adds the next number."""
MAX_PARTITION_FILES = 8
"""Files a partition or a log table may hold. A commit that would leave more merges some of
them into one (``files_to_merge``), so stored rows are rewritten once every few commits that
add to them, not by every one."""
MERGE_SIZE_RATIO = 2
"""How much larger than the files a merge has taken so far a stored file may be and still
join the merge (``files_to_merge``)."""
LOG_TABLES = ("rejects", "skips", "ledger")
"""Unpartitioned tables a run adds a file to, rather than rewriting them whole: a run over a
growing archive then writes what it adds, not the archive's history."""
_COMPRESSION = "zstd"
_HIVE = ds.partitioning(
    pa.schema([(name, pa.int32()) for name in ARTICLES_PARTITION_COLUMNS]), flavor="hive"
)
_SORT_KEYS = [
    ("published_at", "ascending"),
    ("article_id", "ascending"),
    ("content_sha256", "ascending"),
]


def parquet_write_options(schema: pa.Schema) -> dict[str, Any]:
    """How every table file is written: zstd, and dictionary pages for the
    ``REPEATING_COLUMNS`` of ``schema`` only. Measured on the 91,925 articles of a synthetic
    100,000-file run: 1.83 s to encode against 1.94 s with dictionaries for every column,
    and 244.9 against 247.0 MiB."""
    return {
        "compression": _COMPRESSION,
        "use_dictionary": [name for name in schema.names if name in REPEATING_COLUMNS],
    }


class WarehouseError(Exception):
    """The warehouse cannot be written. Not retryable until permissions or space are fixed."""

    retryable = False


class WarehouseBusyError(WarehouseError):
    """Another run holds the warehouse lock. Retryable: try again when it has finished."""

    retryable = True


@dataclass(frozen=True, slots=True)
class Warehouse:
    """Paths of one warehouse directory."""

    root: Path

    def table_dir(self, table: str) -> Path:
        """Directory holding one table's Parquet files."""
        return self.root / table

    def table_file(self, table: str) -> Path:
        """The first file of an unpartitioned table (the only one of ``runs``)."""
        return self.root / table / DATA_FILE

    def table_files(self, table: str) -> list[Path]:
        """The data files of an unpartitioned table, oldest first (``part-<n>.parquet``)."""
        return _part_files(self.table_dir(table))

    def partition_dir(self, partition: Partition) -> Path:
        """Directory of one partition of a partitioned table."""
        table, year, month = partition
        return self.root / table / f"year={year}" / f"month={month}"

    def partition_files(self, partition: Partition) -> list[Path]:
        """The data files of one partition, oldest first (``part-<n>.parquet`` by n)."""
        return _part_files(self.partition_dir(partition))

    def staging_dir(self, run_id: str) -> Path:
        """Private directory where a run stages its files before commit."""
        return self.root / STAGING_DIRNAME / run_id

    @property
    def parsing_marker(self) -> Path:
        """Exists while a run parses: one left behind shows that the run died parsing."""
        return self.root / PARSING_MARKER_NAME

    @property
    def journal(self) -> Path:
        """The commit journal; exists only while a commit is being applied."""
        return self.root / JOURNAL_NAME


def _part_files(directory: Path) -> list[Path]:
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    numbered = []
    for entry in entries:
        match = PART_FILE.fullmatch(entry.name)
        if match is not None:
            numbered.append((int(match.group(1)), Path(entry.path)))
    return [path for _, path in sorted(numbered)]


def open_warehouse(root: Path | str) -> Warehouse:
    """Create the warehouse directory if needed and check that it is writable."""
    warehouse = Warehouse(Path(os.path.abspath(root)))
    probe = warehouse.root / STAGING_DIRNAME / f".write-probe-{os.getpid()}"
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise WarehouseError(
            f"cannot write to warehouse {warehouse.root}: {error.strerror or error}"
        ) from error
    return warehouse


def probe_lock(warehouse: Warehouse) -> None:
    """Raise ``WarehouseBusyError`` now if another run holds the lock (a courtesy check for
    the CLI; the run itself still takes the lock)."""
    with warehouse_lock(warehouse, "probe", wait=False, record=False):
        pass


@contextlib.contextmanager
def warehouse_lock(
    warehouse: Warehouse, holder: str, *, wait: bool, record: bool = True
) -> Iterator[None]:
    """Hold the warehouse's exclusive lock. The kernel drops it when the holder dies, so the
    lock of a killed run is recovered by the next one with no clean-up."""
    path = warehouse.root / LOCK_NAME
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            current = path.read_text(encoding="utf-8", errors="replace").strip() or "unknown"
            raise WarehouseBusyError(
                f"another run is writing warehouse {warehouse.root} ({current}); "
                "wait for it to finish or pass --wait"
            ) from None
        if record:
            os.ftruncate(descriptor, 0)
            os.write(descriptor, holder.encode())
        yield
    finally:
        os.close(descriptor)


def recover(warehouse: Warehouse) -> bool:
    """Finish a commit that a killed run left half-applied, and drop abandoned staging.
    Call with the lock held. Returns True when a journal was rolled forward."""
    rolled_forward = False
    if warehouse.journal.exists():
        operations = json.loads(warehouse.journal.read_text(encoding="utf-8"))["operations"]
        _apply(warehouse, operations)
        warehouse.journal.unlink()
        rolled_forward = True
    staging = warehouse.root / STAGING_DIRNAME
    if staging.exists():
        for leftover in staging.iterdir():
            if leftover.is_dir():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()
    return rolled_forward


def table_signature(warehouse: Warehouse, table: str) -> tuple[tuple[str, int, int, int], ...]:
    """Name, inode, size and modification time of each file of an unpartitioned table. A
    commit replaces or adds whole files, so an equal signature later means the table has
    not changed in between."""
    signature = []
    for path in warehouse.table_files(table):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        signature.append((path.name, stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(signature)


SMALL_LISTING_SHARE = 4
"""``read_ledger`` reads only the rows of the listed paths when they are fewer than a quarter
of the ledger's rows: a scheduled run over a folder of new files, into a large warehouse.
For 10 new files against a 500,000-row ledger that read took 5 ms (counting the rows from
the files' footers included) instead of 0.1-0.3 s, and planning with its rows 0.2 ms instead
of 0.13-0.90 s. A larger listing reads the whole ledger: for 500,000 files already read,
filtering first made planning slower (0.45 s against 0.22)."""


def read_ledger(
    warehouse: Warehouse,
    listed_paths: pa.Array | pa.ChunkedArray | None = None,
    columns: Sequence[str] | None = None,
) -> pa.Table | None:
    """The ledger (None for a new warehouse), or, given the paths a run lists and fewer of
    them than a quarter of the ledger's rows (``SMALL_LISTING_SHARE``), only the rows of
    those paths, which is all that planning the run's reads needs: each file is then read only
    in the row groups whose range of paths (from its statistics) holds a listed one. Given
    ``columns``, only those."""
    if listed_paths is not None:
        files = warehouse.table_files("ledger")
        try:
            rows = sum(pq.read_metadata(path).num_rows for path in files)
        except (OSError, pa.ArrowException):
            rows = 0  # a damaged file: the whole read below reports it, naming the file
        if len(listed_paths) * SMALL_LISTING_SHARE < rows:
            return read_table(warehouse, "ledger", _path_is_in(listed_paths), columns)
    return read_table(warehouse, "ledger", columns=columns)


def read_ledger_rows_of(warehouse: Warehouse, paths: pa.Array | pa.ChunkedArray) -> pa.Table:
    """The ledger's rows of ``paths`` (or, when they are not fewer than a quarter of its rows,
    as ``read_ledger`` decides, all of them), in the columns ``plan_reads`` asks its
    ``ledger_facts`` for."""
    found = read_ledger(warehouse, paths, ("source_path", "parser_version", *LEDGER_FACTS))
    if found is None:
        raise WarehouseError(f"the ledger of {warehouse.root} is gone")
    return found


def _path_is_in(paths: pa.Array | pa.ChunkedArray) -> pc.Expression:
    if isinstance(paths, pa.ChunkedArray):
        paths = paths.combine_chunks()
    return pc.field("source_path").isin(paths)


def read_stored_versions(
    warehouse: Warehouse, article_ids: pa.Array, hashes: pa.Array
) -> list[StoredVersion]:
    """Stored versions of the given articles, or with the given content hashes (strings)."""
    wanted = ["content_sha256", "article_id", "published_at", "parser_version", "source_path"]
    stored: list[StoredVersion] = []
    if not len(article_ids) and not len(hashes):
        return stored
    for table in PARTITIONED_TABLES:
        dataset = _partitioned_dataset(warehouse, table)
        if dataset is None:
            continue
        condition = pc.field("article_id").isin(article_ids) | pc.field("content_sha256").isin(
            hashes
        )
        found = dataset.to_table(columns=[*wanted, *ARTICLES_PARTITION_COLUMNS], filter=condition)
        epochs = pc.cast(found.column("published_at"), _EPOCH_MS).cast(pa.int64())
        columns = [found.column(name).to_pylist() for name in wanted if name != "published_at"]
        years, months = (found.column(name).to_pylist() for name in ARTICLES_PARTITION_COLUMNS)
        for (digest, article_id, parser, path), epoch, year, month in zip(
            zip(*columns, strict=True), epochs.to_pylist(), years, months, strict=True
        ):
            stored.append(
                StoredVersion(
                    Version(digest, article_id, epoch, parser, path), table, (year, month)
                )
            )
    return stored


_EPOCH_MS = pa.timestamp("ms", tz="UTC")
"""``published_at``'s type, whose values (as int64) are epoch milliseconds."""


@dataclass(frozen=True, slots=True)
class CommitPlan:
    """Everything one run installs."""

    incoming: Mapping[Partition, Callable[[], pa.Table]]
    """New versions to store: per partition, what reads its articles rows (called once, when
    the commit reaches the partition, so that only the partitions being staged, at most
    ``COMMIT_THREADS``, have their new rows in memory)."""
    removals: Mapping[Partition, set[str]]
    moves: Mapping[str, tuple[Partition, str]]
    log_rows: Mapping[str, pa.Table]
    """New rows of the other unpartitioned tables: rejects, skips, runs."""
    ledger_rows: pa.Table
    """Ledger rows of the files this run read: they replace rows with the same path."""
    file_metadata: Mapping[bytes, bytes]


def commit(warehouse: Warehouse, run_id: str, plan: CommitPlan) -> list[Path]:
    """Stage, journal and apply one run's changes; return the table files installed."""
    staging = warehouse.staging_dir(run_id) / "commit"
    phase_one: list[tuple[str, str]] = []
    finals: list[tuple[str, str]] = []
    for change in _partition_changes(warehouse, plan, staging):
        phase_one += change.phase_one
        finals += change.finals
    operations: list[tuple[str, str]] = []
    for table in (VERSIONS, ARTICLES):
        operations += [op for op in phase_one if _table_of(warehouse, op[1]) == table]
    for table in (ARTICLES, VERSIONS):
        operations += [op for op in finals if _table_of(warehouse, op[1]) == table]
    for table in LOG_TABLES:
        rows = plan.ledger_rows if table == "ledger" else plan.log_rows[table]
        operations += _log_table_changes(warehouse, table, rows, staging, plan.file_metadata)
    runs = _upsert_runs(warehouse, plan.log_rows["runs"])
    operations.append(
        (
            _stage(runs, staging / "runs" / DATA_FILE, plan.file_metadata),
            str(warehouse.table_file("runs")),
        )
    )
    kill_point("staged")
    _write_journal(warehouse, run_id, operations)
    kill_point("journal-written")
    _apply(warehouse, operations)
    warehouse.journal.unlink()
    _fsync_directory(warehouse.root)
    kill_point("journal-removed")
    shutil.rmtree(warehouse.staging_dir(run_id), ignore_errors=True)
    return [Path(target) for staged, target in operations if staged]


STAGING_COMPRESSION = "lz4"
"""Buffer compression of the intermediate files a run writes and reads back itself."""


def open_staging_writer(
    path: Path, schema: pa.Schema, *, compression: str | None = STAGING_COMPRESSION
) -> pa.ipc.RecordBatchFileWriter:
    """A writer of an intermediate file that only this run reads back: Arrow IPC, with none
    of Parquet's encoding to pay, its buffers LZ4-compressed unless ``compression`` is None."""
    options = pa.ipc.IpcWriteOptions(compression=compression)
    return pa.ipc.new_file(str(path), schema, options=options)


def read_staging_file(path: Path | str) -> pa.Table:
    """The whole table of a file written by ``open_staging_writer``."""
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def _table_of(warehouse: Warehouse, target: str) -> str:
    return Path(target).relative_to(warehouse.root).parts[0]


PARTITION_READ_ROWS = 1_024
"""Rows of a stored file the commit holds at a time while it rewrites or merges the file."""
PARTITION_READ_BUFFER = 1 << 20
"""Bytes of a stored file's column chunk read at a time (rather than the whole chunk).
Merging nine real-sized partition files of about 1,500 articles each, Arrow's peak was 83
MiB with it and 104 MiB without, in the same time (0.31 s)."""
ROW_GROUP_BYTES = 32 << 20
"""About how many bytes of Arrow data each row group of a partition file holds, so readers
get row groups of a useful size whatever the pieces a commit writes come in: a merge writes
its rows a step at a time, and each step's rows (up to the smallest last key of its inputs'
slices) can be a handful. Synthetic article rows take about 4.8 KB each in Arrow, so a row
group holds about 7,000 of them; the commit holds at most one row group's rows while it
writes."""


@dataclass(frozen=True, slots=True)
class _PartitionChange:
    """The journal operations (staged file, table file) that change one partition. Phase
    one takes rows out: files that lose rows are replaced by staged copies without them,
    and files emptied or merged away are deleted (empty staged path). The finals add rows:
    a new file of the run's rows, or the merged file, and files rewritten in the current
    schema."""

    phase_one: list[tuple[str, str]]
    finals: list[tuple[str, str]]


def _partition_changes(
    warehouse: Warehouse, plan: CommitPlan, staging: Path
) -> Iterator[_PartitionChange]:
    """Stage the files of every partition the run touches, ``COMMIT_THREADS`` partitions at
    a time; the changes come in partition order.

    A run's new rows for a partition become one new file; stored files are rewritten only
    when they lose rows or when the partition would hold more than ``MAX_PARTITION_FILES``
    files (then some merge with the new rows: ``files_to_merge``). Stored files are
    streamed a slice at a time, so memory holds a slice of each
    file and the run's new rows for that partition, not the partition, which grows with the
    archive."""
    moved: dict[Partition, list[pa.Table]] = {}
    for source in sorted({source for source, _ in plan.moves.values()}):
        files = warehouse.partition_files(source)
        leaving = sorted(h for h, (origin, _) in plan.moves.items() if origin == source)
        if not files:
            raise WarehouseError(f"version {leaving[0]} to move is missing from {source}")
        found = [_conform(rows, ARTICLES_SCHEMA) for rows in _rows_with_hashes(files, leaving)]
        rows = pa.concat_tables(found) if found else ARTICLES_SCHEMA.remove_metadata().empty_table()
        for content_hash in leaving:
            _, table = plan.moves[content_hash]
            taken = rows.filter(pc.equal(rows.column("content_sha256"), content_hash))
            moved.setdefault((table, source[1], source[2]), []).append(taken)
    touched = (
        set(plan.removals) | set(plan.incoming) | set(moved) | set(_outdated_partitions(warehouse))
    )

    def stage(partition: Partition) -> _PartitionChange:
        pieces = moved.pop(partition, [])
        if partition in plan.incoming:
            pieces.insert(0, _conform(plan.incoming[partition](), ARTICLES_SCHEMA))
        return _stage_partition(
            warehouse,
            partition,
            sorted_rows(pa.concat_tables(pieces)) if pieces else None,
            plan.removals.get(partition, set()),
            staging,
            plan.file_metadata,
        )

    with ThreadPoolExecutor(COMMIT_THREADS, thread_name_prefix="broadsheet-commit") as pool:
        for change in pool.map(stage, sorted(touched)):
            if change.phase_one or change.finals:
                yield change


COMMIT_THREADS = min(2, os.cpu_count() or 1)
"""Partitions the commit stages at once. Sorting and Parquet encoding release the GIL, so on
two cores or more a second thread stages another partition meanwhile; memory then holds two
partitions' new rows rather than one. One core gains nothing from it."""


def _rows_with_hashes(paths: Sequence[Path], hashes: Sequence[str]) -> list[pa.Table]:
    """The rows of stored files whose content hash is in ``hashes``, as each file stores
    them. Read a row group at a time, its hash column first, so memory holds one row group,
    not the partition."""
    wanted = pa.array(hashes, pa.string())
    found = []
    for path in paths:
        stored = pq.ParquetFile(path)
        for group in range(stored.num_row_groups):
            digests = stored.read_row_group(group, columns=["content_sha256"]).column(0)
            matches = pc.is_in(digests, wanted)
            if pc.any(matches).as_py():
                found.append(stored.read_row_group(group).filter(matches))
    return found


def _stage_partition(
    warehouse: Warehouse,
    partition: Partition,
    new: pa.Table | None,
    removed: set[str],
    staging: Path,
    metadata: Mapping[bytes, bytes],
) -> _PartitionChange:
    """Stage one partition's changes: its stored files less the ``removed`` versions, plus
    ``new`` (sorted), per the rules of ``_partition_changes``."""
    files = warehouse.partition_files(partition)
    leaving = pa.array(sorted(removed), pa.string())
    losing = [path for path in files if removed and _holds_any(path, leaving)]
    new_runs = [_SortedRun(iter([new]))] if new is not None and new.num_rows else []
    phase_one: list[tuple[str, str]] = []
    finals: list[tuple[str, str]] = []

    def stage(kind: str, target: Path, runs: list[_SortedRun]) -> str | None:
        staged = staging / kind / target.relative_to(warehouse.root)
        return _stage_merged(staged, runs, metadata)

    merging = _merged_files(files, bool(new_runs))
    if merging:
        first = merging[0]
        phase_one += [("", str(path)) for path in merging[1:]]
        if first in losing:
            kept = stage("phase-1", first, [_SortedRun(_file_slices(first, leaving))])
            phase_one.insert(0, (kept or "", str(first)))
        with _MERGING:
            merged = stage(
                "final",
                first,
                [_SortedRun(_file_slices(path, leaving)) for path in merging] + new_runs,
            )
        if merged is not None:
            finals.append((merged, str(first)))
        elif first not in losing:
            phase_one.insert(0, ("", str(first)))
        new_runs = []  # merged
    for path in (path for path in files if path not in merging):
        if path in losing:
            kept = stage("phase-1", path, [_SortedRun(_file_slices(path, leaving))])
            phase_one.append((kept or "", str(path)))
        elif _is_outdated(path):
            current = stage("final", path, [_SortedRun(_file_slices(path, leaving))])
            finals.append((current or "", str(path)))
    if new_runs:
        target = warehouse.partition_dir(partition) / _next_part_name(files)
        added = stage("final", target, new_runs)
        if added is not None:
            finals.append((added, str(target)))
    return _PartitionChange(phase_one, finals)


_MERGING = threading.Lock()
"""Held while a partition's files are merged into one: a merge holds a slice of each of
its up to ``MAX_PARTITION_FILES`` + 1 inputs at once, and every partition of a warehouse
reaches its limit in the same commit. Measured, a 1,000,000-file run in ten waves: Arrow
held 422 MiB at the peak of the commit that merged every partition, two partitions at a
time, and the run's process tree peaked at 1,010 MiB; at 869 MiB with merges one at a time
(and ``PARTITION_READ_BUFFER``)."""


def files_to_merge(sizes: Sequence[int], adding: bool) -> list[int]:
    """Which stored files (by index into ``sizes``, their sizes in bytes, oldest first) a
    commit merges into one, with its new rows when ``adding``: none while every file fits in
    ``MAX_PARTITION_FILES``; else the smallest files, as many as it takes to fit, then each
    next-larger file while it holds at most ``MERGE_SIZE_RATIO`` times what the merge has
    taken so far. Files of about one size merge together, and a file much larger than the
    rest is left as it is, so old rows are rewritten far less often than when every file
    merged each time the limit was reached (once every ``MAX_PARTITION_FILES`` commits):
    simulated, 4,000 commits that each add a file of one size rewrite a row 5.7 times on
    average against 249.6, and 20,000 commits 7.8 times against 1,249.6. The indices come
    in ascending order; the merge is written over the first."""
    if len(sizes) + adding <= MAX_PARTITION_FILES:
        return []
    smallest_first = sorted(range(len(sizes)), key=lambda index: (sizes[index], index))
    needed = len(sizes) + 1 - MAX_PARTITION_FILES  # the merge's own file counts as one
    taken = smallest_first[:needed]
    total = sum(sizes[index] for index in taken)
    for index in smallest_first[needed:]:
        if sizes[index] > MERGE_SIZE_RATIO * total:
            break
        taken.append(index)
        total += sizes[index]
    return sorted(taken)


def _merged_files(files: Sequence[Path], adding: bool) -> list[Path]:
    """The files of ``files`` a commit merges (``files_to_merge``), oldest first."""
    return [files[i] for i in files_to_merge([path.stat().st_size for path in files], adding)]


def _next_part_name(files: Sequence[Path]) -> str:
    """The name of a partition's next file: one past the highest number in use."""
    numbers = [int(match.group(1)) for path in files if (match := PART_FILE.fullmatch(path.name))]
    return f"part-{max(numbers, default=-1) + 1}.parquet"


def _holds_any(path: Path, hashes: pa.Array) -> bool:
    """Whether a stored file holds a version with one of ``hashes`` (reads its hash column)."""
    digests = pq.read_table(path, columns=["content_sha256"], partitioning=None).column(0)
    return bool(pc.any(pc.is_in(digests, hashes)).as_py())


def _file_slices(path: Path, removed: pa.Array) -> Iterator[pa.Table]:
    """A stored file a slice at a time, in the current schema, less the ``removed`` hashes."""
    stored = pq.ParquetFile(path, buffer_size=PARTITION_READ_BUFFER)
    for batch in stored.iter_batches(batch_size=PARTITION_READ_ROWS):
        rows = _conform(pa.Table.from_batches([batch]), ARTICLES_SCHEMA)
        if len(removed):
            rows = rows.filter(pc.invert(pc.is_in(rows.column("content_sha256"), removed)))
        yield rows


class _SortedRun:
    """Rows in sort order, a slice at a time, with each row's sort key: one input of a merge."""

    def __init__(self, slices: Iterator[pa.Table]) -> None:
        self.slices = slices
        self.rows = ARTICLES_SCHEMA.remove_metadata().empty_table()
        self.keys: list[tuple[object, ...]] = []
        self.position = 0

    def advance(self) -> bool:
        """Load the next slice that has rows; False when none is left."""
        for rows in self.slices:
            if rows.num_rows:
                self.rows, self.keys, self.position = rows, _sort_keys(rows), 0
                return True
        return False


def _stage_merged(
    path: Path, runs: list[_SortedRun], metadata: Mapping[bytes, bytes]
) -> str | None:
    """Write the rows of sorted ``runs`` to ``path`` in sort order and make the file durable;
    None (and no file) when they hold no row. Each step writes every row up to the smallest
    last key of the runs' current slices, so memory holds one slice a run."""
    schema = ARTICLES_SCHEMA.remove_metadata().with_metadata(dict(metadata))
    if len(runs) == 1:
        return _stage_in_order(path, runs[0].slices, schema)
    live = [run for run in runs if run.advance()]
    if not live:
        return None
    with _staged_partition_writer(path, schema) as writer:
        while live:
            bound = min(run.keys[-1] for run in live)
            pieces = []
            for run in live:
                upto = bisect.bisect_right(run.keys, bound, lo=run.position)
                if upto > run.position:
                    pieces.append(run.rows.slice(run.position, upto - run.position))
                    run.position = upto
            merged = pieces[0] if len(pieces) == 1 else sorted_rows(pa.concat_tables(pieces))
            writer.write(merged)
            live = [run for run in live if run.position < len(run.keys) or run.advance()]
    return _finish_staged(path)


def _stage_in_order(path: Path, slices: Iterator[pa.Table], schema: pa.Schema) -> str | None:
    """``_stage_merged`` of a single run: its slices are already in order, so they are
    written as they come, without the merge's per-row sort keys."""
    filled = (table for table in slices if table.num_rows)
    first = next(filled, None)
    if first is None:
        return None
    with _staged_partition_writer(path, schema) as writer:
        writer.write(first)
        for table in filled:
            writer.write(table)
    return _finish_staged(path)


def _sort_keys(table: pa.Table) -> list[tuple[object, ...]]:
    """Each row's sort key (``_SORT_KEYS``) as a tuple, in the table's order."""
    columns = [table.column(name).to_pylist() for name, _ in _SORT_KEYS]
    return list(zip(*columns, strict=True))


class RowGroupWriter:
    """Writes tables, in order, to a Parquet writer in row groups of about ``limit`` bytes
    of Arrow data: pieces smaller than that are held and written together, and a larger
    table is cut into several. Each row group but the last holds as many rows as fit in
    ``limit`` at the average size of the rows written with it (at least one row)."""

    def __init__(self, writer: pq.ParquetWriter, limit: int) -> None:
        self._writer = writer
        self._limit = limit
        self._held: list[pa.Table] = []
        self._held_bytes = 0

    def write(self, table: pa.Table) -> None:
        """Add ``table``'s rows after those written before; write every full row group."""
        if not table.num_rows:
            return
        self._held.append(table)
        self._held_bytes += table.nbytes
        if self._held_bytes < self._limit:
            return
        rows = pa.concat_tables(self._held)
        group_rows = max(1, rows.num_rows * self._limit // self._held_bytes)
        start = 0
        while rows.num_rows - start >= group_rows:
            self._writer.write_table(rows.slice(start, group_rows))
            start += group_rows
        rest = rows.slice(start)
        self._held = [rest] if rest.num_rows else []
        self._held_bytes = rest.nbytes

    def flush(self) -> None:
        """Write the rows held as the last row group."""
        if self._held:
            self._writer.write_table(pa.concat_tables(self._held))
        self._held, self._held_bytes = [], 0


@contextlib.contextmanager
def _staged_writer(path: Path, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(path, schema, **parquet_write_options(schema)) as writer:
        yield writer


@contextlib.contextmanager
def _staged_partition_writer(path: Path, schema: pa.Schema) -> Iterator[RowGroupWriter]:
    """A partition file's writer, in row groups of about ``ROW_GROUP_BYTES``. (Log-table
    files keep the row groups they are written in: a ledger file's row groups are its
    path ranges, which ``_holds_path`` skips by.)"""
    with _staged_writer(path, schema) as writer:
        row_groups = RowGroupWriter(writer, ROW_GROUP_BYTES)
        yield row_groups
        row_groups.flush()


def _finish_staged(path: Path) -> str:
    """Make a staged file durable before any journal can name it."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
    kill_point(f"staged:{staged_name(path)}")
    return str(path)


def _outdated_partitions(warehouse: Warehouse) -> Iterator[Partition]:
    """Partitions with a file written under an older schema: rewritten in the current one,
    so that every file of a table always has the same columns."""
    for table in PARTITIONED_TABLES:
        for path in _table_part_files(warehouse, table):
            if _is_outdated(path):
                year = int(path.parent.parent.name.removeprefix("year="))
                month = int(path.parent.name.removeprefix("month="))
                yield table, year, month


def _is_outdated(path: Path) -> bool:
    metadata = pq.read_metadata(path).metadata or {}
    return int(metadata.get(b"broadsheet.schema_version", b"0")) < SCHEMA_VERSION


def sorted_rows(table: pa.Table, selected: pa.Array | None = None) -> pa.Table:
    """The ``selected`` rows of ``table`` (indices; all rows when None) in ``_SORT_KEYS``
    order, gathered by one ``take`` of the whole row; the table itself, uncopied, when that
    is every row, already in order. Only the key columns are gathered to find the order:
    the other columns (paragraphs, images) hold most of a row's bytes."""
    keys = table.select([name for name, _ in _SORT_KEYS])
    if selected is not None:
        keys = keys.take(selected)
    order = pc.sort_indices(keys, sort_keys=_SORT_KEYS)
    if selected is not None:
        order = selected.take(order)
    if len(order) == table.num_rows and order.equals(pa.array(range(len(order)), order.type)):
        return table
    return table.take(order)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """The table in the current schema: columns that older files lack are added as nulls."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        elif field.nullable:
            columns.append(pa.nulls(table.num_rows, field.type))
        else:
            raise WarehouseError(
                f"a file lacks required column {field.name!r}: schema changes must add "
                "nullable columns only"
            )
    return pa.Table.from_arrays(columns, schema=schema.remove_metadata())


def read_table(
    warehouse: Warehouse,
    table: str,
    rows: pc.Expression | None = None,
    columns: Sequence[str] | None = None,
) -> pa.Table | None:
    """An unpartitioned table (all its files, or their ``rows`` that match; all its columns,
    or only ``columns``) in the current schema, or None when it has no file yet."""
    files = warehouse.table_files(table)
    if not files:
        return None
    schema = TABLE_SCHEMAS[table]
    if columns is not None:
        schema = pa.schema([schema.field(name) for name in columns])
    return pa.concat_tables(
        [_read_conformed(path, schema, rows, every_column=columns is None) for path in files]
    )


def _read_conformed(
    path: Path, schema: pa.Schema, rows: pc.Expression | None, *, every_column: bool
) -> pa.Table:
    """One table file's ``rows``, in ``schema``'s columns (those the file lacks as nulls),
    reading only those unless ``every_column``."""
    present = None
    if not every_column:
        try:
            stored = pq.read_schema(path).names
        except pa.ArrowInvalid as error:  # worded as reading the table names the file
            message = f"Could not open Parquet input source '{path}': {error}"
            raise pa.ArrowInvalid(message) from error
        present = [name for name in schema.names if name in stored]
    return _conform(pq.read_table(path, columns=present, filters=rows, partitioning=None), schema)


def _partitioned_dataset(warehouse: Warehouse, table: str) -> ds.Dataset | None:
    directory = warehouse.table_dir(table)
    files = [str(path) for path in _table_part_files(warehouse, table)]
    if not files:
        return None
    schema = TABLE_SCHEMAS[table].remove_metadata()
    for name in ARTICLES_PARTITION_COLUMNS:
        schema = schema.append(pa.field(name, pa.int32()))
    return ds.dataset(
        files,
        format="parquet",
        partitioning=_HIVE,
        partition_base_dir=str(directory),
        schema=schema,
    )


def _table_part_files(warehouse: Warehouse, table: str) -> list[Path]:
    """Every data file of a partitioned table, partition by partition."""
    directories = sorted(warehouse.table_dir(table).glob("year=*/month=*"))
    return [path for directory in directories for path in _part_files(directory)]


def _upsert_runs(warehouse: Warehouse, rows: pa.Table) -> pa.Table:
    """The runs table with ``rows`` in place of earlier rows of the same runs: a run that
    commits in waves rewrites its own row with its counts so far."""
    new = _conform(rows, TABLE_SCHEMAS["runs"])
    old = read_table(warehouse, "runs")
    if old is None:
        return new
    replaced = pc.is_in(old.column("run_id"), new.column("run_id"))
    return pa.concat_tables([old.filter(pc.invert(replaced)), new])


LOG_READ_ROWS = 65_536
"""Rows of a stored log-table file held at a time while it is rewritten."""


def _log_table_changes(
    warehouse: Warehouse,
    table: str,
    rows: pa.Table,
    staging: Path,
    metadata: Mapping[bytes, bytes],
) -> list[tuple[str, str]]:
    """Stage a run's ``rows`` of a log table (``LOG_TABLES``); return the journal operations
    that install them.

    The rows become the table's next file, and stored files are left alone, except:
    ledger files holding a path the run read again (its new row replaces the old), and files
    of an older schema, are rewritten without those rows or in the current schema; and a
    commit that would leave more than ``MAX_PARTITION_FILES`` files merges some of them, with
    the new rows, into the first of those (``files_to_merge``). Rows leaving a file are
    taken out before the new file is installed, so a reader never sees a path twice. Stored
    files are read a slice at a time. Every table but the ledger (which only records reads)
    keeps a file, empty if need be."""
    files = warehouse.table_files(table)
    new = _conform(rows, TABLE_SCHEMAS[table])
    if table == "ledger":
        new = new.sort_by([("source_path", "ascending")])
    replaced = (  # in path order, as ``new`` is
        pc.unique(new.column("source_path"))
        if table == "ledger" and new.num_rows
        else pa.array([], pa.string())
    )
    adding = new.num_rows > 0 or (not files and table != "ledger")

    def stage(target: Path, pieces: Iterator[pa.Table]) -> str:
        staged = staging / table / target.name
        return _stage_log_file(staged, table, pieces, metadata, keep_empty=table != "ledger")

    operations: list[tuple[str, str]] = []
    merging = _merged_files(files, adding)
    operations += [("", str(path)) for path in merging[1:]]
    for path in (path for path in files if path not in merging):
        if (len(replaced) and _holds_path(path, replaced)) or _is_outdated(path):
            kept = stage(path, _log_file_slices(path, table, replaced))
            operations.append((kept, str(path)))
    if merging:
        pieces = [_log_file_slices(path, table, replaced) for path in merging]
        if adding:
            pieces.append(iter([new]))
        merged = stage(merging[0], (piece for slices in pieces for piece in slices))
        operations.append((merged, str(merging[0])))
    elif adding:
        target = warehouse.table_dir(table) / _next_part_name(files)
        operations.append((stage(target, iter([new])), str(target)))
    return operations


def _holds_path(path: Path, paths: pa.Array) -> bool:
    """Whether a stored log-table file has a row for one of ``paths`` (in sorted order). Reads
    the path column of only the row groups whose range of paths, from the file's statistics,
    holds one of them: a merged ledger file can hold millions of paths, and a run over new
    files (in a new directory, say) seldom falls inside most of its ranges."""
    stored = pq.ParquetFile(path)
    column = stored.schema_arrow.get_field_index("source_path")
    wanted = paths.to_pylist()
    for group in range(stored.metadata.num_row_groups):
        statistics = stored.metadata.row_group(group).column(column).statistics
        if statistics is not None and statistics.has_min_max:
            first = bisect.bisect_left(wanted, statistics.min)
            if first == len(wanted) or wanted[first] > statistics.max:
                continue
        rows = stored.read_row_group(group, columns=["source_path"]).column(0)
        if pc.any(pc.is_in(rows, paths)).as_py():
            return True
    return False


def _log_file_slices(path: Path, table: str, replaced: pa.Array) -> Iterator[pa.Table]:
    """A stored log-table file a slice at a time, in the current schema, less the rows of the
    ``replaced`` paths."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=LOG_READ_ROWS):
        rows = _conform(pa.Table.from_batches([batch]), TABLE_SCHEMAS[table])
        if len(replaced):
            rows = rows.filter(pc.invert(pc.is_in(rows.column("source_path"), replaced)))
        yield rows


def _stage_log_file(
    path: Path,
    table: str,
    pieces: Iterator[pa.Table],
    metadata: Mapping[bytes, bytes],
    *,
    keep_empty: bool,
) -> str:
    """Write ``pieces`` to ``path`` and make the file durable; "" (no file: the journal then
    deletes the target) when they hold no row, unless ``keep_empty``."""
    schema = TABLE_SCHEMAS[table].remove_metadata().with_metadata(dict(metadata))
    written = 0
    with _staged_writer(path, schema) as writer:
        for piece in pieces:
            if piece.num_rows:
                writer.write_table(piece)
                written += piece.num_rows
    if not written and not keep_empty:
        path.unlink()
        return ""
    return _finish_staged(path)


def _stage(table: pa.Table, path: Path, metadata: Mapping[bytes, bytes]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = table.schema.metadata or {}
    pq.write_table(
        table.replace_schema_metadata({**existing, **metadata}),
        path,
        **parquet_write_options(table.schema),
    )
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
    kill_point(f"staged:{staged_name(path)}")
    return str(path)


def staged_name(path: Path | str) -> str:
    """A staged file's path below its run's ``commit`` directory (names its kill point)."""
    parts = Path(path).parts
    start = parts.index("commit", parts.index(STAGING_DIRNAME))
    return "/".join(parts[start + 1 :])


def _write_journal(
    warehouse: Warehouse, run_id: str, operations: Sequence[tuple[str, str]]
) -> None:
    temporary = warehouse.staging_dir(run_id) / "journal.tmp"
    document = {
        "run_id": run_id,
        "schema_version": SCHEMA_VERSION,
        "operations": [list(op) for op in operations],
    }
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(document, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, warehouse.journal)
    _fsync_directory(warehouse.root)


def _apply(warehouse: Warehouse, operations: Sequence[Sequence[str]]) -> None:
    """Apply journal operations in order; idempotent, so a roll-forward can repeat them.
    An empty staged path means: delete the target."""
    for number, (staged, target) in enumerate(operations):
        target_path = Path(target)
        if not staged:
            if target_path.exists():
                target_path.unlink()
                _remove_empty_dirs(target_path.parent, warehouse.root)
        elif os.path.exists(staged):
            target_path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target_path)
        kill_point(f"applied-{number}")


def _remove_empty_dirs(directory: Path, root: Path) -> None:
    while directory != root and directory.parent != root:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
