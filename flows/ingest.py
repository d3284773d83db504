"""The ``ingest`` flow: Prefect wiring around ``broadsheet.pipeline.run_ingest``.

Parsing is batched (``batch_size`` files a task, never one task a file); each task stages its
own Parquet, so only small per-file facts travel back to the flow. Everything else (the lock,
the ledger, version resolution, the commit) is the same code a run without Prefect uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from broadsheet.pipeline import (
    DEFAULT_BATCH_SIZE,
    Batch,
    BatchResult,
    RunSummary,
    parse_batch_files,
    run_ingest,
)

DEFAULT_WORKERS = 2


@task(name="parse-batch", cache_policy=NO_CACHE, retries=0)
def parse_batch(batch: Batch, staging: str, run_id: str, ingested_at_ms: int) -> BatchResult:
    """Parse a batch of files and stage their article rows as Parquet."""
    return parse_batch_files(batch, staging, run_id, ingested_at_ms)


def map_with_prefect_tasks(
    batches: Sequence[Batch], staging: str, run_id: str, ingested_at_ms: int
) -> list[BatchResult]:
    """Submit one ``parse-batch`` task a batch to the flow's task runner; keep batch order."""
    futures = [parse_batch.submit(batch, staging, run_id, ingested_at_ms) for batch in batches]
    return [future.result() for future in futures]


_TASK_RUNNER: TaskRunner[Any] = ThreadPoolTaskRunner(max_workers=DEFAULT_WORKERS)


@flow(name="ingest", log_prints=False, validate_parameters=False, task_runner=_TASK_RUNNER)
def ingest(
    paths: Sequence[str],
    warehouse: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    wait: bool = False,
) -> RunSummary:
    """Ingest archive files under ``paths`` into the warehouse at ``warehouse``."""
    return run_ingest(
        paths, warehouse, batch_size=batch_size, wait=wait, map_batches=map_with_prefect_tasks
    )
