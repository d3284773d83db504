"""The ``ingest`` flow: discover archive files, parse them in batched tasks, commit to Parquet.

Parsing is batched (``batch_size`` files a task, never one task a file) and each task stages
its own Parquet, so the flow itself only moves counts around. The commit happens once, after
every batch has finished (see ``broadsheet.warehouse_commit``).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from broadsheet.read_inputs import InputFile, discover, read_input
from broadsheet.rows import (
    Lineage,
    RejectRow,
    article_row,
    articles_table,
    file_metadata,
    rejects_table,
    skips_table,
)
from broadsheet.warehouse_commit import commit_run, open_warehouse, stage_batch
from schemas import RUNS_SCHEMA
from transforms import PARSER_VERSION, RejectError, RejectReason, parse_article

DEFAULT_BATCH_SIZE = 500
DEFAULT_WORKERS = 2


@dataclass(frozen=True, slots=True)
class BatchCounts:
    """What one parse task did."""

    articles: int
    rejects: int


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Outcome of one ``ingest`` run, as the CLI reports it."""

    run_id: str
    warehouse: Path
    files_seen: int
    articles_written: int
    rejected: int
    skipped: int
    seconds: float
    committed_files: tuple[Path, ...]


def new_run_id(started: datetime) -> str:
    """Sortable run id: UTC start time plus random hex."""
    return f"{started:%Y%m%dT%H%M%S}Z-{secrets.token_hex(4)}"


@task(name="parse-batch", cache_policy=NO_CACHE, retries=0)
def parse_batch(
    files: Sequence[InputFile], batch_index: int, staging: str, run_id: str, ingested_at_ms: int
) -> BatchCounts:
    """Parse a batch of files and stage their articles and rejects as Parquet."""
    rows = []
    rejects = []
    for input_file in files:
        try:
            raw = read_input(input_file.path)
        except OSError as error:
            rejects.append(
                RejectRow(
                    input_file.path,
                    None,
                    RejectReason.UNREADABLE.value,
                    f"cannot read file: {error.strerror or error}",
                )
            )
            continue
        digest = hashlib.sha256(raw).hexdigest()
        try:
            article = parse_article(raw)
        except RejectError as error:
            rejects.append(RejectRow(input_file.path, digest, error.reason.value, error.detail))
            continue
        except Exception as error:  # a parser bug must cost one file, not the run
            rejects.append(
                RejectRow(
                    input_file.path,
                    digest,
                    RejectReason.EXTRACTION_FAILED.value,
                    f"unexpected {type(error).__name__}: {error}",
                )
            )
            continue
        rows.append(article_row(article, Lineage(input_file.path, digest, run_id, ingested_at_ms)))
    stage_batch(
        Path(staging),
        batch_index,
        articles_table(rows, run_id),
        rejects_table(rejects, run_id, ingested_at_ms),
    )
    return BatchCounts(len(rows), len(rejects))


_TASK_RUNNER: TaskRunner[Any] = ThreadPoolTaskRunner(max_workers=DEFAULT_WORKERS)


@flow(name="ingest", log_prints=False, validate_parameters=False, task_runner=_TASK_RUNNER)
def ingest(
    paths: Sequence[str], warehouse: str, batch_size: int = DEFAULT_BATCH_SIZE
) -> RunSummary:
    """Ingest archive files under ``paths`` into the warehouse at ``warehouse``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    clock = time.perf_counter()
    started = datetime.now(UTC)
    started_ms = int(started.timestamp() * 1000)
    run_id = new_run_id(started)
    target = open_warehouse(warehouse)
    discovery = discover(list(paths))
    staging = target.staging_dir(run_id)
    staging.mkdir(parents=True, exist_ok=True)

    batches = [
        discovery.files[start : start + batch_size]
        for start in range(0, len(discovery.files), batch_size)
    ]
    futures = [
        parse_batch.submit(batch, index, str(staging), run_id, started_ms)
        for index, batch in enumerate(batches)
    ]
    counts = [future.result() for future in futures]
    articles_written = sum(c.articles for c in counts)
    rejected = sum(c.rejects for c in counts)

    skips = skips_table(
        [(s.path, s.reason.value, s.detail) for s in discovery.skipped], run_id, started_ms
    )
    files_seen = len(discovery.files) + len(discovery.skipped)
    parameters = {
        "paths": [str(p) for p in paths],
        "warehouse": str(target.root),
        "batch_size": batch_size,
    }
    run_row = pa.Table.from_pylist(
        [
            {
                "run_id": run_id,
                "started_at": started_ms,
                "finished_at": int(datetime.now(UTC).timestamp() * 1000),
                "parameters": json.dumps(parameters, ensure_ascii=False, sort_keys=True),
                "parser_version": PARSER_VERSION,
                "files_seen": files_seen,
                "articles_written": articles_written,
                "rejected": rejected,
                "skipped": len(discovery.skipped),
            }
        ],
        schema=RUNS_SCHEMA,
    ).replace_schema_metadata(file_metadata(run_id))
    committed = commit_run(target, run_id, skips, run_row)
    return RunSummary(
        run_id,
        target.root,
        files_seen,
        articles_written,
        rejected,
        len(discovery.skipped),
        time.perf_counter() - clock,
        tuple(committed),
    )
