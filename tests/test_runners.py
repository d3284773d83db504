"""Where parse tasks run: worker processes, threads and a Dask cluster give the same tables."""

from __future__ import annotations

import re
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from prefect.task_runners import ThreadPoolTaskRunner

import broadsheet.worker_crashes
from broadsheet.fault_injection import HANG_VARIABLE, KILL_POINT_VARIABLE
from broadsheet.pipeline import RunSummary, automatic_batch_size
from broadsheet.runner import Runner
from broadsheet.worker_crashes import TIME_LIMIT_SCALE_VARIABLE
from flows.ingest import ingest_flow, task_slots

pytestmark = pytest.mark.usefixtures("prefect_harness")

LINEAGE = ["run_id", "ingested_at"]


def _tables(summary: RunSummary) -> dict[str, pl.DataFrame]:
    """Every table of a run's warehouse, without the columns that name the run."""
    root = summary.warehouse
    tables = {}
    for table in ("articles", "rejects", "ledger"):
        frame = pl.read_parquet(root / table / "**" / "*.parquet", hive_partitioning=True)
        tables[table] = frame.drop([c for c in LINEAGE if c in frame.columns])
    return tables


def _run(runner: Runner, sample: Path, warehouse: Path, **options: Any) -> RunSummary:
    flow = ingest_flow(runner, 2, options.get("dask_address"))
    return flow([str(sample)], str(warehouse), 4, False, runner.value, 2)


@pytest.fixture(scope="module")
def threads_tables(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _tables(_run(Runner.THREADS, sample_dir, tmp_path_factory.mktemp("threads")))


class _CountingPool(ProcessPoolExecutor):
    submitted = 0
    largest_pool = 0

    def __init__(self, max_workers: int, **kwargs: Any) -> None:
        type(self).largest_pool = max(type(self).largest_pool, max_workers)
        super().__init__(max_workers, **kwargs)

    def submit(self, *args: Any, **kwargs: Any) -> Future[Any]:
        type(self).submitted += 1
        return super().submit(*args, **kwargs)


def test_processes_parse_every_batch_in_worker_processes_with_the_same_result(
    sample_dir: Path,
    tmp_path: Path,
    threads_tables: dict[str, pl.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(broadsheet.worker_crashes, "ProcessPoolExecutor", _CountingPool)
    _CountingPool.submitted = 0
    summary = _run(Runner.PROCESSES, sample_dir, tmp_path)
    assert _CountingPool.submitted == 6  # 23 files in batches of 4
    assert summary.outcomes == {"article_written": 17, "rejected": 6}
    for name, table in _tables(summary).items():
        assert table.equals(threads_tables[name]), name


def test_a_single_batch_is_parsed_in_a_watched_worker_process(
    sample_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broadsheet.worker_crashes, "ProcessPoolExecutor", _CountingPool)
    _CountingPool.submitted = _CountingPool.largest_pool = 0
    flow = ingest_flow(Runner.PROCESSES, 2)
    summary = flow([str(sample_dir)], str(tmp_path), 500, False, "processes", 2)
    assert summary.outcomes == {"article_written": 17, "rejected": 6}
    assert _CountingPool.submitted == 1
    assert _CountingPool.largest_pool == 1


def test_the_threads_runner_starts_no_process(
    sample_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broadsheet.worker_crashes, "ProcessPoolExecutor", _CountingPool)
    _CountingPool.submitted = 0
    flow = ingest_flow(Runner.THREADS, 2)
    summary = flow([str(sample_dir)], str(tmp_path), 4, False, "threads", 2)
    assert summary.outcomes == {"article_written": 17, "rejected": 6}
    assert _CountingPool.submitted == 0


@pytest.mark.parametrize(
    ("runner", "workers", "slots"), [(Runner.PROCESSES, 2, 4), (Runner.THREADS, 2, 2)]
)
def test_worker_processes_get_a_task_queued_ahead_of_each(
    runner: Runner, workers: int, slots: int
) -> None:
    task_runner = ingest_flow(runner, workers).task_runner
    assert isinstance(task_runner, ThreadPoolTaskRunner)
    assert task_runner._max_workers == task_slots(runner, workers) == slots


@pytest.mark.slow
def test_dask_cluster_runs_the_parse_tasks_with_the_same_result(
    sample_dir: Path, tmp_path: Path, threads_tables: dict[str, pl.DataFrame]
) -> None:
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        summary = _run(Runner.DASK, sample_dir, tmp_path, dask_address=cluster.scheduler_address)
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert sum(executed.values()) == 6  # one Dask task a parse batch, all on the cluster
    assert summary.outcomes == {"article_written": 17, "rejected": 6}
    for name, table in _tables(summary).items():
        assert table.equals(threads_tables[name]), name


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "reason"),
    [(KILL_POINT_VARIABLE, "worker_crashed"), (HANG_VARIABLE, "time_limit")],
    ids=["crash", "stall"],
)
def test_a_batch_that_kills_or_stalls_its_dask_workers_is_parsed_here_without_its_file(
    sample_dir: Path,
    tmp_path: Path,
    threads_tables: dict[str, pl.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    reason: str,
) -> None:
    """A crashed worker dies; a stalled parse task ends its worker. Either way, after Dask's
    retries the flow finds the file here and rejects it. The cluster's workers take the fault
    and the limits' scale from this process's environment."""
    distributed = pytest.importorskip("distributed")
    poison = sorted(threads_tables["articles"]["source_path"])[0]
    monkeypatch.setenv(fault, f"parse:{poison}")
    monkeypatch.setenv(TIME_LIMIT_SCALE_VARIABLE, "0.05")  # 3 s a batch or a file
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        summary = _run(Runner.DASK, sample_dir, tmp_path, dask_address=cluster.scheduler_address)
    assert summary.outcomes == {"article_written": 16, "rejected": 7}
    tables = _tables(summary)
    found = tables["rejects"].filter(pl.col("reason") == reason)
    assert found["source_path"].to_list() == [poison]
    expected = threads_tables["articles"].filter(pl.col("source_path") != poison)
    assert tables["articles"].equals(expected)


@pytest.mark.parametrize(
    ("files", "size"),
    [(0, 500), (23, 500), (8_000, 500), (20_000, 1_250), (100_000, 6_250), (10**6, 10_000)],
)
def test_automatic_batch_size_keeps_tasks_few_and_batches_bounded(files: int, size: int) -> None:
    assert automatic_batch_size(files) == size
    assert -(-files // size) <= 100


@pytest.mark.slow
def test_cli_runs_on_a_temporary_dask_cluster_quietly(tmp_path: Path) -> None:
    pytest.importorskip("prefect_dask")
    from tests.test_cli import NOISE, broadsheet

    result = broadsheet("run", "--runner", "dask", cwd=tmp_path, home=tmp_path / "prefect")

    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert not NOISE.search(output), output
    assert "distributed.scheduler" not in output
    assert re.search(r"articles written\s*│\s*17", result.stdout)
