"""The ``ingest`` flow: Prefect wiring around ``broadsheet.pipeline.run_ingest``.

Parsing is batched (``batch_size`` files a task, never one task a file); each task stages its
own article rows on disk, so only small per-file facts travel back to the flow. Everything
else (the lock, the ledger, version resolution, the commit) is the same code a run without
Prefect uses.
Each run publishes Prefect artifacts: outcomes, feeds, reject reasons and a summary.

Where the parse tasks run (``Runner``): ``processes`` (the default) runs each task's batch in
a pool of worker processes, one per core, so parsing is not bound by one interpreter's GIL;
``threads`` runs them in threads of the flow's process; ``dask`` hands the tasks to a Dask
cluster through prefect-dask's ``DaskTaskRunner``. Results are the same whichever runs them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

from prefect import Flow, flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.exceptions import TerminationSignal
from prefect.futures import as_completed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from broadsheet import object_store
from broadsheet.pipeline import (
    DEFAULT_BATCH_SIZE,
    Batch,
    BatchResult,
    RunSummary,
    parse_batch_files,
    run_ingest,
)
from broadsheet.progress import batch_done
from broadsheet.runner import Runner, default_workers
from broadsheet.stop_signals import end_after_grace, signal_number
from broadsheet.warehouse_sync import remote_warehouse
from broadsheet.worker_crashes import (
    WorkerPool,
    batch_time_limit,
    parse_batch_after_crash,
    parse_batch_watched,
    process_ends_if_stalled,
)

_process_workers = 0
"""Worker processes the current run may start (0: parse in the task's own thread)."""
_tasks_in_this_process = True
"""Whether the current run's parse tasks run in this process (not on a Dask cluster)."""
_process_pool: WorkerPool | None = None
"""The worker processes of the current run, while its parse tasks run."""


@contextmanager
def _run_worker_processes(workers: int, *, tasks_in_this_process: bool) -> Iterator[None]:
    """Let the parse tasks of the run inside use up to ``workers`` worker processes (0: none)."""
    global _process_workers, _tasks_in_this_process
    _process_workers, _tasks_in_this_process = workers, tasks_in_this_process
    try:
        yield
    finally:
        _process_workers, _tasks_in_this_process = 0, True


@contextmanager
def _worker_processes(batches: Sequence[Batch]) -> Iterator[None]:
    """Start worker processes for the parse tasks of one wave, and stop them before the
    wave's commit, which then has the memory to itself. Even a single batch goes to a worker
    process: there a file that crashes or stalls the parse is found and rejected
    (``broadsheet.worker_crashes``), where in the flow's own process it would end the run, or
    hold it until someone stops it, which no one does for a scheduled run. A worker forked
    from the worker server starts in milliseconds (``start_worker_server``); a spawned one,
    where there is no such server, in about 0.25 s. The ``threads`` runner parses in the
    flow's process, unwatched, except after a run that died while parsing
    (``Batch.after_crash``)."""
    global _process_pool
    workers = min(_process_workers, len(batches))
    if _tasks_in_this_process and batches and batches[0].after_crash:
        workers = max(workers, 1)
    if workers < 1:
        yield
        return
    pool = WorkerPool(workers)
    _process_pool = pool
    try:
        yield
    finally:
        _process_pool = None
        pool.shutdown()


@task(name="parse-batch", cache_policy=NO_CACHE, retries=0)
def parse_batch(batch: Batch, staging: str, run_id: str, ingested_at_ms: int) -> BatchResult:
    """Parse a batch of files and stage their article rows."""
    pool = _process_pool
    if pool is not None:
        return pool.parse(batch, staging, run_id, ingested_at_ms, get_run_logger().warning)
    if not _on_a_dask_worker():
        return parse_batch_files(batch, staging, run_id, ingested_at_ms)
    with process_ends_if_stalled(batch_time_limit(batch)):
        return parse_batch_watched(batch, staging, run_id, ingested_at_ms)


def _on_a_dask_worker() -> bool:
    """Whether this task runs on a Dask worker (where ``distributed`` is imported already)."""
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return False
    try:
        distributed.get_worker()
    except ValueError:
        return False
    return True


def map_with_prefect_tasks(
    batches: Sequence[Batch], staging: str, run_id: str, ingested_at_ms: int
) -> list[BatchResult]:
    """Submit one ``parse-batch`` task a batch to the flow's task runner; keep batch order.

    On thread-pool task runners each batch is passed ``quote``d (``_unvisited``): otherwise
    Prefect walks every parameter, element by element, looking for futures to wait on, and a
    batch holds thousands of files (measured: 14 s of the flow process's CPU in a
    100,000-file run, taken from the parse workers)."""
    if not batches:
        return []
    done_before, run_batches = batches[0].index, batches[0].run_batches
    with _worker_processes(batches):
        futures = [
            parse_batch.submit(_unvisited(batch), staging, run_id, ingested_at_ms)
            for batch in batches
        ]
        order = {id(future): index for index, future in enumerate(futures)}
        results: dict[int, BatchResult] = {}
        batch_done(done_before, run_batches)
        try:
            for future in as_completed(futures):
                index = order[id(future)]
                try:
                    results[index] = future.result()
                except Exception as error:
                    if type(error).__name__ != "KilledWorker":
                        raise
                    results[index] = _parse_here_after_dask_crash(
                        batches[index], staging, run_id, ingested_at_ms
                    )
                batch_done(done_before + len(results), run_batches)
        except (KeyboardInterrupt, TerminationSignal) as stop:
            _stop_parsing(stop)
            raise
    return [results[index] for index in range(len(futures))]


def _stop_parsing(stop: BaseException) -> None:
    """On a stop signal while batches are parsing: kill the worker processes and, in the
    CLI's process, end it shortly if the clean-up waits on a parse task's thread held by a
    stalled parse (``broadsheet.stop_signals``)."""
    pool = _process_pool
    if pool is not None:
        pool.stop()
    if _tasks_in_this_process:
        end_after_grace(signal_number(stop))


def _parse_here_after_dask_crash(
    batch: Batch, staging: str, run_id: str, ingested_at_ms: int
) -> BatchResult:
    """A batch that killed or stalled every Dask worker that ran it (``KilledWorker``,
    after Dask's own retries; a stalled worker ends itself: ``process_ends_if_stalled``),
    parsed by ``parse_batch_after_crash`` in processes of the flow's own machine, which reads
    the inputs and writes the staging directory as the workers do."""
    warn = get_run_logger().warning
    warn(
        f"Dask workers died or stalled running batch {batch.index}: parsing its files one by "
        "one in new processes here to find any file that ends or stalls one"
    )
    return parse_batch_after_crash(batch, staging, run_id, ingested_at_ms, warn)


def _unvisited(batch: Batch) -> Batch:
    """``batch`` wrapped in Prefect's ``quote`` when the flow's task runner is a thread pool:
    Prefect unwraps it before the task runs (hence typed as the batch itself). Not for a
    runner that pickles parameters (Dask): a pickled ``quote`` comes back wrapping a 1-tuple
    of the batch (``quote`` is a tuple subclass whose ``__new__`` takes one value)."""
    context = FlowRunContext.get()
    if context is None or not isinstance(context.task_runner, ThreadPoolTaskRunner):
        return batch
    return cast(Batch, quote(batch))


def task_slots(runner: Runner, workers: int) -> int:
    """Parse tasks the flow runs at once. With worker processes, twice as many as workers:
    each task's thread spends Prefect's bookkeeping (creating the task run, reporting its
    states) before and after its batch, and meanwhile the next task's batch waits in the
    process pool's queue instead of its worker waiting for a task. Measured ingesting
    100,000 files (medians of 3, alternating): 51.6 against 54.6 s with 1 worker, 32.1
    against 34.7 s with 2."""
    return 2 * workers if runner is Runner.PROCESSES else workers


_DEFAULT_TASK_RUNNER: TaskRunner[Any] = ThreadPoolTaskRunner(
    max_workers=task_slots(Runner.PROCESSES, default_workers())
)


@flow(
    name="ingest",
    log_prints=False,
    validate_parameters=False,
    task_runner=_DEFAULT_TASK_RUNNER,
)
def ingest(
    paths: Sequence[str],
    warehouse: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    wait: bool = False,
    runner: str = Runner.PROCESSES.value,
    workers: int = 0,
) -> RunSummary:
    """Ingest archive files under ``paths`` into the warehouse at ``warehouse``.

    Paths and the warehouse may be object-store URLs (``s3://``); a remote warehouse is
    written through a local working copy (``broadsheet.warehouse_sync``).

    ``runner`` and ``workers`` say where parse tasks run (``workers`` 0: one a core); build
    the flow with ``ingest_flow`` so that its task runner matches.
    """
    workers = workers or default_workers()
    with _run_worker_processes(
        workers if Runner(runner) is Runner.PROCESSES else 0,
        tasks_in_this_process=Runner(runner) is not Runner.DASK,
    ):
        if object_store.is_remote(warehouse):
            with remote_warehouse(warehouse) as working_copy:
                summary = run_ingest(
                    paths,
                    str(working_copy),
                    batch_size=batch_size,
                    wait=wait,
                    map_batches=map_with_prefect_tasks,
                    warehouse_name=warehouse,
                )
        else:
            summary = run_ingest(
                paths,
                warehouse,
                batch_size=batch_size,
                wait=wait,
                map_batches=map_with_prefect_tasks,
            )
    publish_artifacts(summary)
    return summary


def ingest_flow(
    runner: Runner = Runner.PROCESSES, workers: int = 0, dask_address: str | None = None
) -> Flow[..., RunSummary]:
    """The ``ingest`` flow with the task runner ``runner`` needs.

    Processes and threads: a thread pool of ``task_slots`` task slots (in ``processes`` each
    slot waits on a worker process, or on a place in its queue). Dask: the cluster at
    ``dask_address`` (prefect-dask), or a temporary local cluster when it is None.
    """
    return ingest.with_options(task_runner=_task_runner(runner, workers, dask_address))


def _task_runner(runner: Runner, workers: int, dask_address: str | None) -> TaskRunner[Any]:
    workers = workers or default_workers()
    if runner is not Runner.DASK:
        return ThreadPoolTaskRunner(max_workers=task_slots(runner, workers))
    try:
        from prefect_dask.task_runners import DaskTaskRunner
    except ImportError as error:
        raise RunnerUnavailableError(
            "--runner dask needs prefect-dask: pip install 'broadsheet[dask]'"
        ) from error
    logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO lines read as noise
    if dask_address:
        return DaskTaskRunner(address=dask_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1})


class RunnerUnavailableError(Exception):
    """The chosen runner's optional dependency is not installed. Not retryable."""

    retryable = False


def publish_artifacts(summary: RunSummary) -> None:
    """Prefect artifacts of a run: outcomes, feeds, reject reasons, and a short summary."""
    create_table_artifact(
        key="ingest-outcomes",
        table=[
            {"outcome": name, "files": count} for name, count in sorted(summary.outcomes.items())
        ],
        description=f"Files per outcome in run {summary.run_id}",
    )
    create_table_artifact(
        key="ingest-feeds",
        table=[
            {"feed": feed, "versions stored": count}
            for feed, count in sorted(summary.feeds.items(), key=lambda item: (-item[1], item[0]))
        ],
        description=f"Article versions stored per feed in run {summary.run_id}",
    )
    create_table_artifact(
        key="ingest-rejects",
        table=[
            {
                "reason": reason,
                "files": count,
                "examples": "; ".join(summary.reject_examples.get(reason, [])),
            }
            for reason, count in sorted(summary.reject_counts.items())
        ],
        description=f"Reject reasons with example paths in run {summary.run_id}",
    )
    lines = [
        f"# Run {summary.run_id}",
        "",
        f"{summary.files_seen:,} files seen in {summary.seconds:.1f} s; warehouse "
        f"`{summary.warehouse}`.",
        "",
        "| outcome | files |",
        "|---|---|",
        *(f"| {name} | {count:,} |" for name, count in sorted(summary.outcomes.items())),
    ]
    if summary.recovered_previous_commit:
        lines += ["", "The run first completed an interrupted earlier commit."]
    create_markdown_artifact(
        key="ingest-summary",
        markdown="\n".join(lines),
        description=f"Summary of run {summary.run_id}",
    )
