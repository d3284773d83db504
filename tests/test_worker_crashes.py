"""A parse worker that dies (a crash in C code, the out-of-memory killer) costs the files that
kill a process on their own, as ``worker_crashed`` rejects, never the run."""

from __future__ import annotations

import signal
import threading
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

import broadsheet.worker_crashes
from broadsheet.fault_injection import KILL_POINT_VARIABLE
from broadsheet.pipeline import Batch, BatchResult, parse_batch_files, read_and_hash
from broadsheet.read_inputs import InputFile
from broadsheet.warehouse_commit import read_staging_file
from broadsheet.worker_crashes import (
    WorkerCrashError,
    WorkerPool,
    crashing_files,
    parse_batch_after_crash,
)
from tests.archive_files import bare
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
    assert "killed by SIGKILL" in found[poison]
    assert "read again when it changes" in found[poison]


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
    assert result.rejects[0].content_sha256 == reference.files[2].content_sha256
    assert result.files[:2] == reference.files[:2]
    assert result.files[2].article_id is None
    assert _staged_paths(result) == sorted(path.path for path, _ in batch.files[:2])


def test_a_batch_that_crashes_again_without_its_crashing_files_is_a_retryable_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = _batch(tmp_path / "in", 5, ["a.md", "b.md"])
    monkeypatch.setenv(KILL_POINT_VARIABLE, "batch-5")  # reached by a whole batch, not one file
    with pytest.raises(WorkerCrashError, match="died again") as raised:
        parse_batch_after_crash(batch, str(tmp_path / "staging"), "run", JAN_2024, print)
    assert raised.value.retryable


def test_a_pool_whose_worker_dies_recovers_every_batch_it_held_and_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = [
        _batch(tmp_path / f"in{index}", index, [f"{index}-{n}.md" for n in range(3)])
        for index in range(3)
    ]
    poison = batches[1].files[0][0].path
    monkeypatch.setenv(KILL_POINT_VARIABLE, f"parse:{poison}")
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
        thread.join()
    try:
        after = pool.parse(
            _batch(tmp_path / "after", 9, ["x.md"]), str(tmp_path / "staging"), "run", 0, print
        )
    finally:
        pool.shutdown()
    assert sorted(results) == [0, 1, 2]
    rejected = [(row.source_path, row.reason) for r in results.values() for row in r.rejects]
    assert rejected == [(poison, "worker_crashed")]
    for batch in batches:
        expected = [file.path for file, _ in batch.files if file.path != poison]
        assert _staged_paths(results[batch.index]) == sorted(expected)
    assert any("died while batch 1" in warning for warning in warnings)
    assert [w for w in warnings if w.startswith("rejected")] == [
        f"rejected as worker_crashed: {poison}: {results[1].rejects[0].detail}"
    ]
    assert _staged_paths(after) == [str(tmp_path / "after" / "x.md")]


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


@pytest.mark.parametrize(
    ("exitcode", "described"),
    [(-9, "killed by SIGKILL"), (-11, "killed by SIGSEGV"), (1, "exit code 1"), (-99, "signal 99")],
)
def test_a_dead_process_is_described_by_its_signal(exitcode: int, described: str) -> None:
    assert described in broadsheet.worker_crashes._death(exitcode)


def test_staged_rows_hold_no_row_of_a_crashed_file(tmp_path: Path) -> None:
    batch = _batch(tmp_path / "in", 0, ["a.md", "b.md"])
    crashed = Batch(0, batch.files, 1, crashed=((batch.files[0][0].path, "died"),))
    result = parse_batch_files(crashed, str(tmp_path / "staging"), "run", 0)
    assert _staged_paths(result) == [batch.files[1][0].path]
    assert [(row.reason, row.detail) for row in result.rejects] == [("worker_crashed", "died")]
