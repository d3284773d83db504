"""Parse batches whose worker process died or stalled, without failing or stalling the run.

A worker process can die with no Python exception to catch: a crash in C code (libxml2,
CLD2, Broadsheet's C walk) on some file, or the kernel's out-of-memory killer. Python's
process pool then fails every batch it holds (``BrokenProcessPool``). Failing the run would
fail every later run too, on the same file, since a file is recorded only by a finished run.
A worker can also stall: a parse that, on some input, takes hours in C code where Python
cannot interrupt it (libxml2 took over 10 minutes on one tag of 600,000 attributes, before
``transforms.markup_scan`` found such tags), or a read from a network mount that hangs. So a
worker ends itself when a chunk of a batch's files has not finished long after it should have
(``parse_batch_watched``), and a batch that has not (``batch_time_limit``) has its pool's
processes stopped, as if they had died.

Each batch the dead or stopped pool held is then parsed again: first its files one by one,
in a fresh process, which shows which file, if any, ends a process on its own (the next
process starts after it) or keeps it on one file for ``FILE_TIME_LIMIT_SECONDS``; those files
become ``worker_crashed`` (when a second process, parsing the file alone, dies too) or
``time_limit`` rejects; then the rest of the batch in a fresh process. The pool is replaced
for the batches still to come.

On a Dask worker, which the flow cannot stop, a parse task that outlives its batch's limit
ends the worker's process (``process_ends_if_stalled``), as a crash would: Dask's nanny
starts a new worker, the scheduler retries the task, and a batch that ends every worker it
tries reaches the flow as ``KilledWorker``, which searches it here as above.

Every limit is multiplied by ``BROADSHEET_TIME_LIMIT_SCALE`` (``time_limit_scale``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import functools
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import Synchronized
from typing import IO, TYPE_CHECKING

from broadsheet.allocators import JEMALLOC_CONF_VARIABLE
from broadsheet.fault_injection import kill_point
from broadsheet.pipeline import (
    Batch,
    BatchResult,
    kill_at_parse,
    parse_batch_files,
    read_and_hash,
    total_size,
)
from broadsheet.read_inputs import InputFile
from transforms import RejectReason, parse_articles

if TYPE_CHECKING:  # ForkServerContext does not exist on Windows
    from multiprocessing.context import ForkServerContext, SpawnContext


def _worker_context() -> SpawnContext | ForkServerContext:
    """Where worker processes come from: forked from a server process (``forkserver``) that
    has imported this module already, where the platform has one, else spawned. Never forked
    from the flow's process, which runs threads. A spawned worker starts an interpreter and
    imports the parser before its first batch, and finalises the interpreter when it leaves;
    a forked one does neither. Measured in 100,000-file runs with 2 workers (three each):
    the first batch began 0.24-0.35 s after it was handed to a spawned pool, 0.02-0.04 s to
    a forked one, and the pool shut down in 51-84 ms against 8-12 ms."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


_CONTEXT = _worker_context()
_SERVER_START = threading.Lock()
_NO_BACKGROUND_THREAD = "background_thread:false"
_SAFE_PATH = "PYTHONSAFEPATH"


def start_worker_server() -> None:
    """Start the process that worker processes fork from, where there is one, so that its
    imports run while the caller does something else, such as waiting for Prefect's server;
    otherwise the first pool starts it, and waits for it. Idempotent. It runs with the
    environment of the moment, which each worker then replaces with its pool's
    (``_start_worker``), except for two settings of its own: no background thread for
    jemalloc, which pyarrow's import would start (a process that forks should have one
    thread), and no working directory first on ``sys.path`` (``PYTHONSAFEPATH``), where a
    folder named like one of Broadsheet's packages would take its place."""
    if _CONTEXT.get_start_method() != "forkserver":
        return
    from multiprocessing import forkserver

    with _SERVER_START:
        saved = {name: os.environ.get(name) for name in (JEMALLOC_CONF_VARIABLE, _SAFE_PATH)}
        configured = saved[JEMALLOC_CONF_VARIABLE]
        os.environ[JEMALLOC_CONF_VARIABLE] = ",".join(
            option for option in (configured, _NO_BACKGROUND_THREAD) if option
        )
        os.environ[_SAFE_PATH] = "1"
        try:
            forkserver.ensure_running()
        finally:
            for name, value in saved.items():
                if value is None:
                    del os.environ[name]
                else:
                    os.environ[name] = value


def _start_worker(environment: dict[str, str], *, quiet: bool) -> None:
    """First thing in a worker process: take the environment of the process that started
    it, as a spawned process would have (fault injection and the time-limit scale are read
    from it), and, when ``quiet``, send the stacks of a stall it ends itself on nowhere: the
    flow's warning and the file's reject report it."""
    global _stall_report
    if os.environ != environment:
        os.environ.clear()
        os.environ.update(environment)
    if quiet:
        _stall_report = open(os.devnull, "w")  # noqa: SIM115 - open for the life of the process


FILE_TIME_LIMIT_SECONDS = 60.0
"""A file that keeps a process parsing it alone for this long is a ``time_limit`` reject. The
slowest real file parses in milliseconds, an 8 MiB file of the worst markup in about 3 s."""

BATCH_TIME_LIMIT_SECONDS = 60.0
BATCH_SECONDS_PER_FILE = 0.02
BATCH_SECONDS_PER_MIB = 10.0
"""With the two above: how long a batch may take in the pool before its processes are
stopped (``batch_time_limit``), some 30 to 80 times what its files take on this project's
development machine (about 0.3 ms a file and 0.3 s a MiB), so a loaded machine never trips
it, and an hour-long stall costs minutes."""

TIME_LIMIT_SCALE_VARIABLE = "BROADSHEET_TIME_LIMIT_SCALE"

_POLL_SECONDS = 0.2


def time_limit_scale() -> float:
    """The factor ``BROADSHEET_TIME_LIMIT_SCALE`` puts on every stall limit (default 1):
    above 1 where reads are slow (a network mount), below 1 in tests. Read from each
    process's own environment, so Dask workers take theirs."""
    text = os.environ.get(TIME_LIMIT_SCALE_VARIABLE, "1")
    try:
        scale = float(text)
    except ValueError:
        scale = math.nan
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"{TIME_LIMIT_SCALE_VARIABLE} must be a positive number, not {text!r}")
    return scale


def file_time_limit() -> float:
    """Seconds a process may parse one file alone before the file is a ``time_limit``
    reject."""
    return FILE_TIME_LIMIT_SECONDS * time_limit_scale()


def batch_time_limit(batch: Batch) -> float:
    """Seconds ``batch`` may take in a worker before it is taken to have stalled."""
    return files_time_limit(batch.files)


def files_time_limit(files: Sequence[tuple[InputFile, str | None]]) -> float:
    """Seconds a worker may take over ``files`` (a batch, or a chunk of one) before it is
    taken to have stalled."""
    mebibytes = total_size(files) / 2**20
    return time_limit_scale() * (
        BATCH_TIME_LIMIT_SECONDS
        + len(files) * BATCH_SECONDS_PER_FILE
        + mebibytes * BATCH_SECONDS_PER_MIB
    )


def parse_batch_watched(
    batch: Batch, staging: str, run_id: str, ingested_at_ms: int
) -> BatchResult:
    """``parse_batch_files`` in a worker process that ends itself when one chunk of the
    batch's files outlives its limit (``files_time_limit`` of the chunk, about a minute for
    100 files): a stall is then caught a chunk's limit after it began, not the whole batch's
    (six minutes for 3,125 files of 24 MB), and the batch is searched as after a crash."""
    return parse_batch_files(batch, staging, run_id, ingested_at_ms, watch_chunk=_watch_chunk)


def _watch_chunk(
    files: Sequence[tuple[InputFile, str | None]],
) -> contextlib.AbstractContextManager[None]:
    return process_ends_if_stalled(files_time_limit(files))


_stall_report: IO[str] = sys.stderr
"""Where a process that ends itself on a stall writes every thread's stack."""

_deadlines: dict[object, float] = {}
"""Monotonic deadline of each block in ``process_ends_if_stalled``, by a token of its own."""
_deadlines_lock = threading.Lock()


@contextlib.contextmanager
def process_ends_if_stalled(seconds: float) -> Iterator[None]:
    """End this process (exit code 1, every thread's stack on stderr) if the block has not
    finished within ``seconds``. For a parse task on a Dask worker, which nothing else can
    stop: the worker's nanny starts a new one and the scheduler retries the task elsewhere,
    as after a crash. The timer is ``faulthandler``'s, a C thread that needs no GIL, so it
    fires even while a parse holds the GIL in C code. A process has one such timer: with
    several blocks at once (a Dask worker running tasks in several threads) it is set for
    the earliest of their deadlines, since a block past its own has stalled; the others'
    tasks are then retried elsewhere, like any task of a worker that died. Set for the
    latest, a stall that lets other threads run (a read that hangs) would never be caught
    while they kept starting blocks with later deadlines."""
    token = object()
    with _deadlines_lock:
        _deadlines[token] = time.monotonic() + seconds
        _arm_stall_timer()
    try:
        yield
    finally:
        with _deadlines_lock:
            del _deadlines[token]
            _arm_stall_timer()


def _arm_stall_timer() -> None:
    faulthandler.cancel_dump_traceback_later()
    if _deadlines:
        remaining = min(_deadlines.values()) - time.monotonic()
        faulthandler.dump_traceback_later(max(remaining, 0.001), exit=True, file=_stall_report)


class ParseStoppedError(BaseException):
    """The run is stopping (a stop signal): a batch left unparsed is not parsed again. A
    ``BaseException``, as ``KeyboardInterrupt`` is: an interruption, not an error for an
    ``except Exception`` to handle (Prefect reports its task as crashed, with no traceback)."""


class WorkerCrashError(Exception):
    """A batch's parse process died where no single file explains it. Retryable: a process
    killed for memory that other processes held may well live the next time."""

    retryable = True


class WorkerPool:
    """Worker processes for the parse tasks of one wave: ``parse`` is ``parse_batch_files``
    in one of them. When a worker dies, or a batch stalls and the pool's processes are
    stopped, every batch the pool held is parsed again with ``parse_batch_after_crash`` and a
    new pool takes the batches still to come."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._lock = threading.Lock()
        self._executor = self._new_executor()
        self._longest_limit = 0.0
        self._stopping = threading.Event()
        self._retired: list[dict[int, BaseProcess]] = []
        """The worker processes of each pool this one replaced, as those pools track them."""

    def parse(
        self,
        batch: Batch,
        staging: str,
        run_id: str,
        ingested_at_ms: int,
        warn: Callable[[str], None],
    ) -> BatchResult:
        """The batch's result; ``warn`` is told of a dead or stalled worker and of each file
        rejected."""
        limit = batch_time_limit(batch)
        if self._stopping.is_set():
            raise ParseStoppedError(f"batch {batch.index} was not parsed: the run is stopping")
        with self._lock:
            self._longest_limit = max(self._longest_limit, limit)
            executor = self._executor
        try:
            future = executor.submit(parse_batch_watched, batch, staging, run_id, ingested_at_ms)
        except BrokenProcessPool:  # broken before the batch reached it: the new pool takes it
            self._replace(executor)
            return self.parse(batch, staging, run_id, ingested_at_ms, warn)
        # Counted from when the batch enters the pool's queue, where it may wait for one
        # batch ahead of it to finish.
        if not _finished_within(future, limit + self._longest_limit):
            warn(
                f"batch {batch.index} has not finished after {limit + self._longest_limit:.0f} "
                "s, far longer than its files take: stopping its pool's processes to find any "
                "file that stalls one"
            )
            _stop_processes(executor)
            self._replace(executor)
            return parse_batch_after_crash(
                batch, staging, run_id, ingested_at_ms, warn, self._stopping
            )
        try:
            return future.result()
        except CancelledError:  # the pool was replaced before it started the batch
            return self.parse(batch, staging, run_id, ingested_at_ms, warn)
        except BrokenProcessPool:
            if self._stopping.is_set():
                raise ParseStoppedError(
                    f"batch {batch.index} was not parsed: the run is stopping"
                ) from None
            self._replace(executor)
        warn(
            f"a parse worker process died while batch {batch.index} was in its pool (a crash, "
            "or a stall it ended itself on): parsing the batch's files one by one in a new "
            "process to find any file that ends or stalls one"
        )
        return parse_batch_after_crash(batch, staging, run_id, ingested_at_ms, warn, self._stopping)

    def shutdown(self) -> None:
        """Stop the workers once they are idle, and kill any process left of a pool that
        broke: one it started as it broke never hears that the pool is gone, and a process
        that ends would wait on it."""
        self._executor.shutdown(wait=True)
        for processes in self._retired:
            for process in list(processes.values()):
                if process.is_alive():
                    process.kill()

    def stop(self) -> None:
        """Kill the workers now, for a run that is stopping: the batches they held fail with
        ``ParseStoppedError`` instead of being parsed again."""
        self._stopping.set()
        with self._lock:
            _stop_processes(self._executor)

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is broken:
                self._retired.append(_processes_of(broken))
                broken.shutdown(wait=False, cancel_futures=True)
                self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        return _executor(self._workers, quiet=True)


def _executor(workers: int, *, quiet: bool) -> ProcessPoolExecutor:
    """A pool of ``workers`` worker processes, started by ``_start_worker``."""
    start_worker_server()
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_CONTEXT,
        initializer=functools.partial(_start_worker, quiet=quiet),
        initargs=(dict(os.environ),),
    )


def _finished_within(
    future: Future[BatchResult], seconds: float, stopping: threading.Event | None = None
) -> bool:
    """Whether ``future`` finished (or failed) within ``seconds`` of the pool starting it;
    False at once when ``stopping`` is set."""
    started: float | None = None
    while not wait([future], timeout=_POLL_SECONDS).done:
        if stopping is not None and stopping.is_set():
            return False
        if started is None:
            if future.running():
                started = time.monotonic()
        elif time.monotonic() - started > seconds:
            return False
    return True


def _stop_processes(executor: ProcessPoolExecutor) -> None:
    """SIGKILL the pool's worker processes; its futures then fail with ``BrokenProcessPool``.
    Python 3.11 has no public way to reach them (3.14 adds ``kill_workers``)."""
    for process in list(_processes_of(executor).values()):
        process.kill()


def _processes_of(executor: ProcessPoolExecutor) -> dict[int, BaseProcess]:
    """The pool's worker processes by pid: the pool's own dict, which it adds to as it
    starts them, until it is shut down (then empty)."""
    processes: dict[int, BaseProcess] = getattr(executor, "_processes", None) or {}
    return processes


def parse_batch_after_crash(
    batch: Batch,
    staging: str,
    run_id: str,
    ingested_at_ms: int,
    warn: Callable[[str], None],
    stopping: threading.Event | None = None,
) -> BatchResult:
    """``parse_batch_files`` of a batch whose worker died or stalled, in a fresh process, with
    the files that end or stall a process on their own (``crashing_files``) rejected instead
    of parsed; ``warn`` is told of each. When ``stopping`` is set (the run is stopping), the
    search stops with ``ParseStoppedError``."""
    set_aside = crashing_files(batch, stopping)
    for path, (reason, detail) in set_aside.items():
        warn(f"rejected as {reason}: {path}: {detail}")
    retry = dataclasses.replace(
        batch,
        set_aside=tuple((path, reason, detail) for path, (reason, detail) in set_aside.items()),
    )
    limit = batch_time_limit(retry)
    with _executor(1, quiet=False) as executor:
        future = executor.submit(parse_batch_files, retry, staging, run_id, ingested_at_ms)
        if not _finished_within(future, limit, stopping):
            _stop_processes(executor)
            if stopping is not None and stopping.is_set():
                raise ParseStoppedError(f"batch {batch.index} was not parsed: the run is stopping")
            raise WorkerCrashError(
                f"batch {batch.index}: the process parsing it again had not finished after "
                f"{limit:.0f} s although no file of it ({len(set_aside)} set aside) stalls a "
                "process on its own; rerun: files are recorded only by a finished run"
            )
        try:
            return future.result()
        except BrokenProcessPool:
            pass
    raise WorkerCrashError(
        f"batch {batch.index}: the process parsing it died again although no file of it "
        f"({len(set_aside)} set aside) ends a process on its own; rerun: files are recorded "
        "only by a finished run"
    )


def crashing_files(
    batch: Batch, stopping: threading.Event | None = None
) -> dict[str, tuple[RejectReason, str]]:
    """Path -> (reason, detail) of each file of ``batch`` whose parse ends the process
    (``worker_crashed``) or keeps it on that file for ``file_time_limit``
    (``time_limit``), found by parsing the batch's files one by one in a fresh process;
    after such a file, the next process starts at the file after it.

    A file is blamed for a death only when a second process, parsing that file alone, dies
    too: a process can die without its file's doing (the out-of-memory killer taking it for
    memory others held, or Python's fork server failing under load and reporting exit code
    255 for a process that had finished, CPython gh-140867), and a reject costs the file
    until it changes. A process that got through every file is done, whatever exit code it
    is reported with."""
    found: dict[str, tuple[RejectReason, str]] = {}
    start = 0
    while start < len(batch.files):
        files = batch.files[start:]
        end = _parse_alone(batch, files, stopping)
        if end.finished(len(files)):
            break
        culprit = start + end.position
        if not end.stalled:
            end = _parse_alone(batch, files[end.position : end.position + 1], stopping)
            if end.finished(1):
                start = culprit + 1
                continue
        found[batch.files[culprit][0].path] = (
            (
                RejectReason.TIME_LIMIT,
                f"the process parsing this file alone was still on it after "
                f"{file_time_limit():.0f} s and was stopped: a parse that stalls in C "
                "code, or a read that hangs; it is read again when it changes or the parser "
                "version does",
            )
            if end.stalled
            else (
                RejectReason.WORKER_CRASHED,
                f"two processes parsing this file alone died ({_death(end.exitcode)}): a "
                "crash in C code, or the out-of-memory killer; it is read again when it "
                "changes or the parser version does",
            )
        )
        start = culprit + 1
    return found


@dataclasses.dataclass(frozen=True, slots=True)
class _SearchEnd:
    """How a process of the search ended: the position of the file it was on (-1 before the
    first, the number of files once it got through them all), whether it was stopped for
    stalling, and its exit code as reported."""

    position: int
    stalled: bool
    exitcode: int | None

    def finished(self, files: int) -> bool:
        """Whether the process got through all ``files``."""
        return self.exitcode == 0 or self.position == files


def _parse_alone(
    batch: Batch,
    files: Sequence[tuple[InputFile, str | None]],
    stopping: threading.Event | None,
) -> _SearchEnd:
    """Parse ``files`` one by one in a fresh process of the search (``_parse_one_by_one``)
    and say how it ended; raise ``WorkerCrashError`` when it ended before its first file."""
    position: Synchronized[int] = _CONTEXT.Value("q", -1)
    start_worker_server()
    process = _CONTEXT.Process(
        target=_parse_one_by_one,
        args=(dict(os.environ), files, position),
        name=f"broadsheet-crash-search-{batch.index}",
        daemon=True,
    )
    process.start()
    stalled = _stalled(process, position, stopping)
    end = _SearchEnd(position.value, stalled, process.exitcode)
    if end.position < 0 and not end.finished(len(files)):
        raise WorkerCrashError(
            f"batch {batch.index}: a new parse process "
            f"{'did not start' if stalled else 'died'} ({_death(end.exitcode)}) "
            "before it read a file"
        )
    return end


def _stalled(
    process: BaseProcess, position: Synchronized[int], stopping: threading.Event | None
) -> bool:
    """Wait for ``process`` to end; SIGKILL it, and say so, once ``position`` has stayed on
    one file (or before the first) for ``file_time_limit``. SIGKILL it and raise
    ``ParseStoppedError`` when ``stopping`` is set."""
    last, since = position.value, time.monotonic()
    limit = file_time_limit()
    while True:
        process.join(_POLL_SECONDS)
        if process.exitcode is not None:
            return False
        if stopping is not None and stopping.is_set():
            process.kill()
            process.join()
            raise ParseStoppedError("the search for a file that stalls a process was stopped")
        current = position.value
        if current != last:
            last, since = current, time.monotonic()
        elif time.monotonic() - since > limit:
            process.kill()
            process.join()
            return True


def _parse_one_by_one(
    environment: dict[str, str],
    files: Sequence[tuple[InputFile, str | None]],
    position: Synchronized[int],
) -> None:
    """Parse the files that ``parse_batch_files`` would, one at a time, with ``position``
    at the file being parsed (what the parent reads when this process dies or stalls), then
    at ``len(files)`` once they are all parsed."""
    _start_worker(environment, quiet=False)
    for index, (input_file, known_hash) in enumerate(files):
        position.value = index
        content = read_and_hash(input_file)
        if isinstance(content, OSError) or content[1] == known_hash:
            continue
        kill_at_parse([input_file])
        parse_articles([content[0]])
    position.value = len(files)
    kill_point("search-finished")


def _death(exitcode: int | None) -> str:
    """How a process ended, from its exit code: negative for the signal that killed it."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"
