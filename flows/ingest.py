"""The ``ingest`` flow: Prefect wiring around ``broadsheet.pipeline.run_ingest``.

Parsing is batched (``batch_size`` files a task, never one task a file); each task stages its
own Parquet, so only small per-file facts travel back to the flow. Everything else (the lock,
the ledger, version resolution, the commit) is the same code a run without Prefect uses.
Each run publishes Prefect artifacts: outcomes, feeds, reject reasons and a summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from broadsheet.pipeline import (
    DEFAULT_BATCH_SIZE,
    Batch,
    BatchResult,
    RunSummary,
    parse_batch_files,
    run_ingest,
)
from broadsheet.progress import batch_done

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
    order = {id(future): index for index, future in enumerate(futures)}
    results: dict[int, BatchResult] = {}
    batch_done(0, len(futures))
    for future in as_completed(futures):
        results[order[id(future)]] = future.result()
        batch_done(len(results), len(futures))
    return [results[index] for index in range(len(futures))]


_TASK_RUNNER: TaskRunner[Any] = ThreadPoolTaskRunner(max_workers=DEFAULT_WORKERS)


@flow(name="ingest", log_prints=False, validate_parameters=False, task_runner=_TASK_RUNNER)
def ingest(
    paths: Sequence[str],
    warehouse: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    wait: bool = False,
) -> RunSummary:
    """Ingest archive files under ``paths`` into the warehouse at ``warehouse``."""
    summary = run_ingest(
        paths, warehouse, batch_size=batch_size, wait=wait, map_batches=map_with_prefect_tasks
    )
    publish_artifacts(summary)
    return summary


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
