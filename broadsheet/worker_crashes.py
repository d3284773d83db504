"""Parse batches whose worker process died, without failing the run.

A worker process can die with no Python exception to catch: a crash in C code (libxml2,
CLD2, Broadsheet's C walk) on some file, or the kernel's out-of-memory killer. Python's
process pool then fails every batch it holds (``BrokenProcessPool``). Failing the run would
fail every later run too, on the same file, since a file is recorded only by a finished run.

So each batch the dead worker's pool held is parsed again: first its files one by one, in a
fresh process, which shows which file, if any, ends a process on its own (the next process
starts after it); those files become ``worker_crashed`` rejects; then the rest of the batch
in a fresh process. The pool is replaced for the batches still to come.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.sharedctypes import Synchronized

from broadsheet.pipeline import (
    Batch,
    BatchResult,
    kill_at_parse,
    parse_batch_files,
    read_and_hash,
)
from broadsheet.read_inputs import InputFile
from transforms import parse_articles

_CONTEXT = multiprocessing.get_context("spawn")
"""Spawned, not forked, as the pool's workers: the flow's process runs threads."""


class WorkerCrashError(Exception):
    """A batch's parse process died where no single file explains it. Retryable: a process
    killed for memory that other processes held may well live the next time."""

    retryable = True


class WorkerPool:
    """Worker processes for the parse tasks of one wave: ``parse`` is ``parse_batch_files``
    in one of them. When a worker dies, every batch its pool held is parsed again with
    ``parse_batch_after_crash`` and a new pool takes the batches still to come."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._lock = threading.Lock()
        self._executor = self._new_executor()

    def parse(
        self,
        batch: Batch,
        staging: str,
        run_id: str,
        ingested_at_ms: int,
        warn: Callable[[str], None],
    ) -> BatchResult:
        """The batch's result; ``warn`` is told of a dead worker and of each file rejected."""
        executor = self._executor
        try:
            future = executor.submit(parse_batch_files, batch, staging, run_id, ingested_at_ms)
        except BrokenProcessPool:  # broken before the batch reached it: the new pool takes it
            self._replace(executor)
            return self.parse(batch, staging, run_id, ingested_at_ms, warn)
        try:
            return future.result()
        except BrokenProcessPool:
            self._replace(executor)
        warn(
            f"a parse worker process died while batch {batch.index} was in its pool: parsing "
            "the batch's files one by one in a new process to find any file that ends one"
        )
        return parse_batch_after_crash(batch, staging, run_id, ingested_at_ms, warn)

    def shutdown(self) -> None:
        """Stop the workers once they are idle."""
        self._executor.shutdown(wait=True)

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is broken:
                broken.shutdown(wait=False, cancel_futures=True)
                self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self._workers, mp_context=_CONTEXT)


def parse_batch_after_crash(
    batch: Batch,
    staging: str,
    run_id: str,
    ingested_at_ms: int,
    warn: Callable[[str], None],
) -> BatchResult:
    """``parse_batch_files`` of a batch whose worker died, in a fresh process, with the files
    that end a process on their own (``crashing_files``) rejected instead of parsed; ``warn``
    is told of each."""
    crashed = crashing_files(batch)
    for path, detail in crashed.items():
        warn(f"rejected as worker_crashed: {path}: {detail}")
    retry = dataclasses.replace(batch, crashed=tuple(sorted(crashed.items())))
    with ProcessPoolExecutor(max_workers=1, mp_context=_CONTEXT) as executor:
        future = executor.submit(parse_batch_files, retry, staging, run_id, ingested_at_ms)
        try:
            return future.result()
        except BrokenProcessPool:
            pass
    raise WorkerCrashError(
        f"batch {batch.index}: the process parsing it died again although no file of it "
        f"({len(crashed)} set aside) ends a process on its own; rerun: files are recorded "
        "only by a finished run"
    )


def crashing_files(batch: Batch) -> dict[str, str]:
    """Path -> reject detail of each file of ``batch`` whose parse ends the process, found by
    parsing the batch's files one by one in a fresh process; after a file that ends one, the
    next process starts at the file after it."""
    found: dict[str, str] = {}
    position: Synchronized[int] = _CONTEXT.Value("q", -1)
    start = 0
    while start < len(batch.files):
        position.value = -1
        process = _CONTEXT.Process(
            target=_parse_one_by_one,
            args=(batch.files[start:], position),
            name=f"broadsheet-crash-search-{batch.index}",
            daemon=True,
        )
        process.start()
        process.join()
        if process.exitcode == 0:
            break
        if position.value < 0:
            raise WorkerCrashError(
                f"batch {batch.index}: a new parse process died ({_death(process.exitcode)}) "
                "before it read a file"
            )
        crashed = start + position.value
        found[batch.files[crashed][0].path] = (
            f"the process parsing this file alone died ({_death(process.exitcode)}): a crash "
            "in C code, or the out-of-memory killer; it is read again when it changes or the "
            "parser version does"
        )
        start = crashed + 1
    return found


def _parse_one_by_one(
    files: Sequence[tuple[InputFile, str | None]], position: Synchronized[int]
) -> None:
    """Parse the files that ``parse_batch_files`` would, one at a time, with ``position``
    at the file being parsed: what the parent reads when this process dies."""
    for index, (input_file, known_hash) in enumerate(files):
        position.value = index
        content = read_and_hash(input_file)
        if isinstance(content, OSError) or content[1] == known_hash:
            continue
        kill_at_parse([input_file])
        parse_articles([content[0]])


def _death(exitcode: int | None) -> str:
    """How a process ended, from its exit code: negative for the signal that killed it."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"
