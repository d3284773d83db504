"""A parse worker that dies (a crash in C code, the out-of-memory killer) or stalls (a parse
that never ends) costs the files that kill or stall a process on their own, as
``worker_crashed`` or ``time_limit`` rejects, never the run."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import broadsheet.worker_crashes
from broadsheet.fault_injection import HANG_VARIABLE, KILL_POINT_VARIABLE
from broadsheet.pipeline import (
    Batch,
    BatchFiles,
    BatchResult,
    parse_batch_files,
    read_and_hash,
    run_ingest,
)
from broadsheet.read_inputs import InputFile
from broadsheet.resolve import Outcome
from broadsheet.runner import Runner
from broadsheet.warehouse_commit import read_staging_file
from broadsheet.warehouse_verify import verify
from broadsheet.worker_crashes import (
    TIME_LIMIT_SCALE_VARIABLE,
    ParseStoppedError,
    WorkerCrashError,
    WorkerPool,
    _SearchEnd,
    batch_time_limit,
    crashing_files,
    file_time_limit,
    parse_batch_after_crash,
    start_worker_server,
    time_limit_scale,
)
from flows.ingest import ingest, ingest_flow
from tests.archive_files import bare, write_stories
from tests.test_pickling import read_plan
from transforms import RejectReason

JAN_2024 = 1_704_067_200_000


def _batch(directory: Path, index: int, names: list[str]) -> Batch:
    """A batch of new synthetic articles, one file a name, none known to the ledger."""
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for number, name in enumerate(names):
        path = directory / name
        url = f"https://news.example/{index}/{number}"
        path.write_text(bare(f"Story {name}", url, JAN_2024, f"<p>Text of {name}.</p>"))
        stat = path.stat()
        files.append((InputFile(str(path), stat.st_size, stat.st_mtime_ns), None))
    return Batch(index, tuple(files), 1)


def _staged_paths(result: BatchResult) -> list[str]:
    if result.staged_articles is None:
        return []
    return sorted(read_staging_file(result.staged_articles).column("source_path").to_pylist())


def test_the_file_that_ends_a_process_alone_is_found_and_the_search_goes_on_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = _batch(tmp_path / "in", 0, ["a.md", "b.md", "c.md", "d.md"])
    poison = batch.files[1][0].path
    monkeypatch.setenv(KILL_POINT_VARIABLE, f"parse:{poison}")
    found = crashing_files(batch)
    assert list(found) == [poison]
    reason, detail = found[poison]
    assert reason is RejectReason.WORKER_CRASHED
    assert "killed by SIGKILL" in detail
    assert "read again when it changes" in detail


def test_a_process_that_dies_after_its_last_file_blames_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A death reported once every file was parsed (Python's fork server, under load, can
    report exit code 255 for a process that finished) is no file's doing."""
    batch = _batch(tmp_path / "in", 0, ["a.md", "b.md"])
    monkeypatch.setenv(KILL_POINT_VARIABLE, "search-finished")
    assert crashing_files(batch) == {}


def test_a_death_that_a_file_alone_does_not_repeat_is_not_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first search process dies on b.md (as if the out-of-memory killer took it); b.md
    alone then parses, so it is not blamed and the search goes on at c.md."""
    batch = _batch(tmp_path / "in", 0, ["a.md", "b.md", "c.md"])
    parse_alone = broadsheet.worker_crashes._parse_alone
    searched: list[list[str]] = []

    def dies_once_on_b(
        batch: Batch,
        files: Sequence[tuple[InputFile, str | None]],
        stopping: threading.Event | None,
    ) -> _SearchEnd:
        searched.append([Path(input_file.path).name for input_file, _ in files])
        if len(searched) == 1:
            return _SearchEnd(position=1, stalled=False, exitcode=-signal.SIGKILL)
        return parse_alone(batch, files, stopping)

    monkeypatch.setattr(broadsheet.worker_crashes, "_parse_alone", dies_once_on_b)
    assert crashing_files(batch) == {}
    assert searched == [["a.md", "b.md", "c.md"], ["b.md"], ["c.md"]]


def test_no_file_is_blamed_when_every_file_parses(tmp_path: Path) -> None:
    assert crashing_files(_batch(tmp_path / "in", 0, ["a.md", "b.md"])) == {}


def test_unchanged_files_are_not_parsed_in_the_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = _batch(tmp_path / "in", 0, ["a.md", "b.md"])
    unchanged_file = batch.files[0][0]
    content = read_and_hash(unchanged_file)
    assert not isinstance(content, OSError)
    batch = Batch(0, ((unchanged_file, content[1]), batch.files[1]), 1)
    monkeypatch.setenv(KILL_POINT_VARIABLE, f"parse:{unchanged_file.path}")
    assert crashing_files(batch) == {}


def test_a_batch_is_parsed_again_without_its_crashing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = _batch(tmp_path / "in", 3, ["a.md", "b.md", "c.md"])
    reference = parse_batch_files(batch, str(tmp_path / "reference"), "run", JAN_2024)
    poison = batch.files[2][0].path
    monkeypatch.setenv(KILL_POINT_VARIABLE, f"parse:{poison}")
    warnings: list[str] = []
    result = parse_batch_after_crash(
        batch, str(tmp_path / "staging"), "run", JAN_2024, warnings.append
    )
    assert [(row.source_path, row.reason) for row in result.rejects] == [
        (poison, RejectReason.WORKER_CRASHED.value)
    ]
    assert "killed by SIGKILL" in result.rejects[0].detail
    assert warnings == [f"rejected as worker_crashed: {poison}: {result.rejects[0].detail}"]
    assert result.rejects[0].content_sha256 == reference.facts.column("content_sha256")[2].as_py()
    assert result.facts.slice(0, 2).equals(reference.facts.slice(0, 2))
    assert result.facts.column("article_id")[2].as_py() is None
    assert _staged_paths(result) == sorted(path.path for path, _ in batch.files[:2])


def _three_batches_through_a_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str, batch_index: int, file_index: int
) -> tuple[str, dict[int, BatchResult], list[str]]:
    """Three batches of three files parsed at once by a pool of two workers, with the fault
    ``fault`` (a fault-injection variable) armed at one file, then a batch after them that
    the replaced pool must parse. Checks that every batch came back with every file but the
    faulty one staged and that the faulty file is the only reject; returns its path, the
    three results and the warnings."""
    batches = [
        _batch(tmp_path / f"in{index}", index, [f"{index}-{n}.md" for n in range(3)])
        for index in range(3)
    ]
    faulty = batches[batch_index].files[file_index][0].path
    monkeypatch.setenv(fault, f"parse:{faulty}")
    pool = WorkerPool(2)
    warnings: list[str] = []
    results: dict[int, BatchResult] = {}

    def parse(batch: Batch) -> None:
        results[batch.index] = pool.parse(
            batch, str(tmp_path / "staging"), "run", 0, warnings.append
        )

    threads = [threading.Thread(target=parse, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert not any(thread.is_alive() for thread in threads), "a batch is still parsing"
        after = pool.parse(
            _batch(tmp_path / "after", 9, ["x.md"]), str(tmp_path / "staging"), "run", 0, print
        )
    finally:
        pool.shutdown()
    assert sorted(results) == [0, 1, 2]
    assert [row.source_path for r in results.values() for row in r.rejects] == [faulty]
    for batch in batches:
        expected = [file.path for file, _ in batch.files if file.path != faulty]
        assert _staged_paths(results[batch.index]) == sorted(expected)
    assert _staged_paths(after) == [str(tmp_path / "after" / "x.md")]
    return faulty, results, warnings


def test_a_pool_whose_worker_dies_recovers_every_batch_it_held_and_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison, results, warnings = _three_batches_through_a_pool(
        tmp_path, monkeypatch, KILL_POINT_VARIABLE, 1, 0
    )
    assert results[1].rejects[0].reason == "worker_crashed"
    assert any("died while batch 1" in warning for warning in warnings)
    assert [w for w in warnings if w.startswith("rejected")] == [
        f"rejected as worker_crashed: {poison}: {results[1].rejects[0].detail}"
    ]


def test_a_batch_given_to_a_pool_already_broken_goes_to_the_new_pool_unsearched(
    tmp_path: Path,
) -> None:
    pool = WorkerPool(1)
    try:
        broken = pool._executor
        with pytest.raises(BrokenProcessPool):
            broken.submit(signal.raise_signal, signal.SIGKILL).result()
        warnings: list[str] = []
        batch = _batch(tmp_path / "in", 0, ["a.md"])
        result = pool.parse(batch, str(tmp_path / "staging"), "run", 0, warnings.append)
        assert pool._executor is not broken
    finally:
        pool.shutdown()
    assert warnings == []
    assert _staged_paths(result) == [batch.files[0][0].path]


def _environment_variable(name: str) -> str | None:
    return os.environ.get(name)


def _threads_of_parent() -> int:
    return len(os.listdir(f"/proc/{os.getppid()}/task"))


def test_a_worker_has_the_environment_of_its_pool_not_of_the_server_it_forks_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    start_worker_server()  # started before the variables change, as by an earlier run
    monkeypatch.setenv("BROADSHEET_TEST_SET", "set after the server started")
    monkeypatch.delenv(TIME_LIMIT_SCALE_VARIABLE, raising=False)
    pool = WorkerPool(1)
    try:
        submit = pool._executor.submit
        assert submit(_environment_variable, "BROADSHEET_TEST_SET").result() == (
            "set after the server started"
        )
        assert submit(_environment_variable, TIME_LIMIT_SCALE_VARIABLE).result() is None
    finally:
        pool.shutdown()


def test_a_worker_left_alive_by_a_pool_that_broke_is_killed_at_shutdown(tmp_path: Path) -> None:
    pool = WorkerPool(1)
    try:
        broken = pool._executor
        with pytest.raises(BrokenProcessPool):
            broken.submit(signal.raise_signal, signal.SIGKILL).result()
        pool.parse(_batch(tmp_path / "in", 0, ["a.md"]), str(tmp_path / "staging"), "run", 0, print)
        assert pool._executor is not broken
        # As when the broken pool started a worker just as it broke: one it never stops.
        straggler = broadsheet.worker_crashes._CONTEXT.Process(target=time.sleep, args=(120,))
        straggler.start()
        pool._retired[0][straggler.pid or 0] = straggler
    finally:
        pool.shutdown()
    straggler.join(10)
    assert straggler.exitcode == -signal.SIGKILL


@pytest.mark.skipif(
    broadsheet.worker_crashes._CONTEXT.get_start_method() != "forkserver"
    or not Path("/proc/self/task").is_dir(),
    reason="workers fork from a server process only where there is one; threads read from /proc",
)
def test_workers_fork_from_a_server_process_with_a_single_thread() -> None:
    # pyarrow's jemalloc starts a background thread unless told not to; a process that
    # forks should have one thread (Python 3.12 warns otherwise).
    pool = WorkerPool(1)
    try:
        assert pool._executor.submit(_threads_of_parent).result() == 1
    finally:
        pool.shutdown()


@pytest.mark.parametrize(
    ("exitcode", "described"),
    [(-9, "killed by SIGKILL"), (-11, "killed by SIGSEGV"), (1, "exit code 1"), (-99, "signal 99")],
)
def test_a_dead_process_is_described_by_its_signal(exitcode: int, described: str) -> None:
    assert described in broadsheet.worker_crashes._death(exitcode)


def test_staged_rows_hold_no_row_of_a_file_set_aside(tmp_path: Path) -> None:
    batch = _batch(tmp_path / "in", 0, ["a.md", "b.md", "c.md"])
    set_aside = (
        (batch.files[0][0].path, RejectReason.WORKER_CRASHED, "died"),
        (batch.files[2][0].path, RejectReason.TIME_LIMIT, "stalled"),
    )
    crashed = Batch(0, batch.files, 1, set_aside=set_aside)
    result = parse_batch_files(crashed, str(tmp_path / "staging"), "run", 0)
    assert _staged_paths(result) == [batch.files[1][0].path]
    assert [(row.reason, row.detail) for row in result.rejects] == [
        ("worker_crashed", "died"),
        ("time_limit", "stalled"),
    ]


@pytest.fixture
def short_time_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Limits of seconds instead of minutes, so that a stall is found within a test."""
    monkeypatch.setattr(broadsheet.worker_crashes, "FILE_TIME_LIMIT_SECONDS", 3.0)
    monkeypatch.setattr(broadsheet.worker_crashes, "BATCH_TIME_LIMIT_SECONDS", 6.0)


@pytest.mark.usefixtures("short_time_limits")
def test_the_file_that_stalls_a_process_alone_is_a_time_limit_reject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = _batch(tmp_path / "in", 0, ["a.md", "b.md", "c.md"])
    stalling = batch.files[1][0].path
    monkeypatch.setenv(HANG_VARIABLE, f"parse:{stalling}")
    found = crashing_files(batch)
    assert list(found) == [stalling]
    reason, detail = found[stalling]
    assert reason is RejectReason.TIME_LIMIT
    assert "still on it after 3 s" in detail


@pytest.mark.usefixtures("short_time_limits")
def test_a_pool_with_a_stalled_batch_stops_it_and_recovers_every_batch_it_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, results, warnings = _three_batches_through_a_pool(tmp_path, monkeypatch, HANG_VARIABLE, 0, 2)
    assert results[0].rejects[0].reason == "time_limit"
    assert any("batch 0 has not finished after" in warning for warning in warnings)


def test_a_worker_ends_itself_on_a_stalled_chunk_long_before_the_batch_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The scale, which the workers read too, puts a chunk's limit in the worker at about
    3 s; the flow's own limit for the batch is set at about 300 s (in this process only). The
    stall is caught by the worker's own watch, quietly, and the file found as after a crash."""
    monkeypatch.setenv(TIME_LIMIT_SCALE_VARIABLE, "0.05")
    monkeypatch.setattr(broadsheet.worker_crashes, "BATCH_TIME_LIMIT_SECONDS", 6000.0)
    batch = _batch(tmp_path / "in", 0, ["a.md", "b.md", "c.md"])
    stalling = batch.files[1][0].path
    monkeypatch.setenv(HANG_VARIABLE, f"parse:{stalling}")
    pool = WorkerPool(1)
    warnings: list[str] = []
    started = time.monotonic()
    try:
        result = pool.parse(batch, str(tmp_path / "staging"), "run", 0, warnings.append)
    finally:
        pool.shutdown()
    assert time.monotonic() - started < 60
    assert [(row.source_path, row.reason) for row in result.rejects] == [(stalling, "time_limit")]
    assert _staged_paths(result) == sorted(
        file.path for file, _ in batch.files if file.path != stalling
    )
    assert any(
        "died while batch 0" in warning and "a stall it ended itself on" in warning
        for warning in warnings
    ), warnings
    assert "Timeout (" not in capfd.readouterr().err


@pytest.mark.usefixtures("short_time_limits")
@pytest.mark.parametrize(
    ("fault", "message"),
    [(KILL_POINT_VARIABLE, "died again"), (HANG_VARIABLE, "had not finished after")],
    ids=["crashes", "stalls"],
)
def test_a_batch_that_fails_again_without_its_faulty_files_is_a_retryable_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str, message: str
) -> None:
    """The batch dies or stalls again as a whole (a point reached by the batch, not by one
    file), so no file explains it: the run must stop with a retryable error."""
    batch = _batch(tmp_path / "in", 5, ["a.md", "b.md"])
    monkeypatch.setenv(fault, "batch-5")
    with pytest.raises(WorkerCrashError, match=message) as raised:
        parse_batch_after_crash(batch, str(tmp_path / "staging"), "run", JAN_2024, print)
    assert raised.value.retryable


def test_a_batch_may_take_longer_the_more_files_and_bytes_it_holds(tmp_path: Path) -> None:
    small = _batch(tmp_path / "small", 0, ["a.md"])
    many = _batch(tmp_path / "many", 1, [f"{n}.md" for n in range(50)])
    limit = broadsheet.worker_crashes.batch_time_limit
    assert limit(small) < limit(many)
    large_file = (InputFile(small.files[0][0].path, 8 * 2**20, 0), None)
    assert limit(Batch(0, (large_file,), 1)) == pytest.approx(
        limit(small) + (8 * 2**20 - small.files[0][0].size) / 2**20 * 10.0
    )


def test_a_batch_of_plan_columns_gets_its_limit_without_building_a_file_object(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The flow's process sizes every batch it hands to a worker: from the size column, not
    by building the ``InputFile``s that ``BatchFiles`` leaves to the worker."""
    files = tuple((InputFile(f"/in/{n}.md", n * 3 * 2**20, 0), None) for n in range(1, 4))
    columns = read_plan(list(files))
    as_pairs = batch_time_limit(Batch(0, files, 1))

    def built(self: BatchFiles) -> None:
        raise AssertionError("the flow's process built the batch's InputFiles")

    monkeypatch.setattr(BatchFiles, "_all", built)
    assert batch_time_limit(Batch(0, BatchFiles(columns), 1)) == pytest.approx(as_pairs)


def test_every_stall_limit_scales_with_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = _batch(tmp_path / "in", 0, ["a.md", "b.md"])
    monkeypatch.delenv(TIME_LIMIT_SCALE_VARIABLE, raising=False)
    assert time_limit_scale() == 1.0
    assert file_time_limit() == broadsheet.worker_crashes.FILE_TIME_LIMIT_SECONDS
    default = batch_time_limit(batch)
    monkeypatch.setenv(TIME_LIMIT_SCALE_VARIABLE, "2.5")
    assert file_time_limit() == 2.5 * broadsheet.worker_crashes.FILE_TIME_LIMIT_SECONDS
    assert batch_time_limit(batch) == pytest.approx(2.5 * default)


@pytest.mark.parametrize("text", ["0", "-2", "inf", "nan", "", "fast"])
def test_a_time_limit_scale_that_is_not_a_positive_number_is_refused(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv(TIME_LIMIT_SCALE_VARIABLE, text)
    with pytest.raises(ValueError, match=f"must be a positive number, not {text!r}"):
        time_limit_scale()


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_a_block_that_outlives_its_limit_ends_its_process_even_holding_the_gil() -> None:
    """A catastrophic regular expression keeps the GIL for good: only a timer that needs no
    GIL can end the process (a Dask worker's, where nothing else can)."""
    stalled = _python(
        "import re\n"
        "from broadsheet.worker_crashes import process_ends_if_stalled\n"
        "with process_ends_if_stalled(0.5):\n"
        "    re.match(r'(a+)+$', 'a' * 64 + 'b')\n"
        "print('finished')\n"
    )
    assert stalled.returncode == 1
    assert "finished" not in stalled.stdout
    assert re.match(r"Timeout \(0:00:00\.[45]\d*\)!\n", stalled.stderr), stalled.stderr
    assert " in match\n" in stalled.stderr


def test_a_block_that_ends_in_time_leaves_its_process_and_any_outer_limit_running() -> None:
    finished = _python(
        "import time\n"
        "from broadsheet.worker_crashes import process_ends_if_stalled\n"
        "with process_ends_if_stalled(30):\n"
        "    with process_ends_if_stalled(0.3):\n"
        "        pass\n"
        "    time.sleep(1)\n"
        "time.sleep(0.5)\n"
        "print('finished')\n"
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout == "finished\n"


def test_a_stalled_block_ends_its_process_while_other_threads_start_later_blocks() -> None:
    """A stall that lets other threads run (a read that hangs) on a Dask worker running
    tasks in several threads: the others keep starting blocks with later deadlines, and
    the process still ends at the stalled block's own."""
    started = time.monotonic()
    stalled = _python(
        "import threading, time\n"
        "from broadsheet.worker_crashes import process_ends_if_stalled\n"
        "def later_blocks():\n"
        "    for _ in range(40):\n"
        "        with process_ends_if_stalled(2):\n"
        "            time.sleep(0.1)\n"
        "threading.Thread(target=later_blocks).start()\n"
        "with process_ends_if_stalled(0.5):\n"
        "    time.sleep(4)\n"
        "print('finished')\n"
    )
    elapsed = time.monotonic() - started
    assert stalled.returncode == 1, stalled.stderr
    assert "finished" not in stalled.stdout
    assert re.match(r"Timeout \(0:00:00\.\d+\)!\n", stalled.stderr), stalled.stderr
    assert elapsed < 3


def _rejects(warehouse: Path) -> list[tuple[str, str]]:
    table = pq.read_table(warehouse / "rejects", columns=["source_path", "reason"])
    return list(zip(*table.to_pydict().values(), strict=True))


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness", "short_time_limits")
def test_a_run_with_a_file_that_stalls_its_worker_rejects_it_and_writes_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = write_stories(tmp_path / "in", 6)
    monkeypatch.setenv(HANG_VARIABLE, f"parse:{inputs / '3.md'}")
    warehouse = tmp_path / "warehouse"
    summary = ingest_flow(Runner.PROCESSES, 2)(
        [str(inputs)], str(warehouse), batch_size=2, workers=2
    )
    assert summary.count(Outcome.ARTICLE_WRITTEN) == 5
    assert summary.reject_counts == {"time_limit": 1}
    assert _rejects(warehouse) == [(str(inputs / "3.md"), "time_limit")]
    assert [check.name for check in verify(warehouse) if not check.holds] == []


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness", "short_time_limits")
def test_a_single_batch_run_rejects_a_file_that_stalls_its_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a run of one batch parses in a watched worker process: a scheduled run, which no
    one is there to stop, must not wait on a stalled parse for good."""
    inputs = write_stories(tmp_path / "in", 4)
    monkeypatch.setenv(HANG_VARIABLE, f"parse:{inputs / '2.md'}")
    warehouse = tmp_path / "warehouse"
    summary = ingest([str(inputs)], str(warehouse))
    assert summary.count(Outcome.ARTICLE_WRITTEN) == 3
    assert _rejects(warehouse) == [(str(inputs / "2.md"), "time_limit")]
    assert not (warehouse / "_parsing").exists()


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness", "short_time_limits")
def test_a_run_stopped_while_parsing_leaves_the_next_one_to_watch_its_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``threads`` runner parses in the run's own process, where nothing can stop a
    stalled parse but the user. A run stopped while parsing leaves ``_parsing``; the next run
    then parses even a ``threads`` run's batch in a worker process, which is watched, and
    rejects the file."""
    inputs = write_stories(tmp_path / "in", 4)
    warehouse = tmp_path / "warehouse"

    def stopped_by_the_user(*_: object) -> list[BatchResult]:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_ingest([str(inputs)], str(warehouse), map_batches=stopped_by_the_user)
    assert (warehouse / "_parsing").exists()
    monkeypatch.setenv(HANG_VARIABLE, f"parse:{inputs / '2.md'}")
    summary = ingest_flow(Runner.THREADS, 1)(
        [str(inputs)], str(warehouse), runner=Runner.THREADS.value, workers=1
    )
    assert summary.count(Outcome.ARTICLE_WRITTEN) == 3
    assert _rejects(warehouse) == [(str(inputs / "2.md"), "time_limit")]
    assert not (warehouse / "_parsing").exists()


def test_a_stopping_run_ends_the_search_and_its_process_instead_of_waiting_out_a_stall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the full 60 s limit, a stop (Ctrl-C, SIGTERM) a second into a stalled file ends
    the search with ``ParseStoppedError`` rather than a ``time_limit`` verdict a minute on."""
    batch = _batch(tmp_path / "in", 0, ["a.md", "b.md"])
    monkeypatch.setenv(HANG_VARIABLE, f"parse:{batch.files[0][0].path}")
    stopping = threading.Event()
    threading.Timer(1.0, stopping.set).start()
    with pytest.raises(ParseStoppedError):
        crashing_files(batch, stopping)
    assert [p for p in multiprocessing.active_children() if "crash-search" in p.name] == []
