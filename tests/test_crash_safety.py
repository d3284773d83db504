"""Kill a real run with SIGKILL at many points; the warehouse must stay readable and
consistent, and the next run must end with exactly the tables an uninterrupted run gives.

Kill points: every step of the commit path (``BROADSHEET_KILL_AT``: after staging, after the
journal is written, after each journal operation, after the journal is removed) plus kills
at seeded random delays, which land in start-up, discovery and parsing.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

from broadsheet.fault_injection import KILL_POINT_VARIABLE
from broadsheet.pipeline import run_ingest
from broadsheet.warehouse_commit import JOURNAL_NAME, PART_FILE, staged_name
from broadsheet.warehouse_verify import verify
from tests.archive_files import bare

pytestmark = pytest.mark.slow

JAN_2024 = 1_704_067_200_000
DAY = 86_400_000
RANDOM_KILLS = 12
SEED = 20261128
TABLES = ("articles", "article_versions", "rejects", "skips", "ledger")
RUN_B = (
    "import sys\nfrom broadsheet.pipeline import run_ingest\n"
    "run_ingest(sys.argv[2:], sys.argv[1], batch_size=1)\n"
)


def _article(directory: Path, name: str, url: str, epoch_ms: int, text: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(
        bare(f"About {url}", url, epoch_ms, f"<p>{text}</p>"), encoding="utf-8"
    )


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Inputs of run A, inputs added for run B, the warehouse after A, and the reference
    warehouse after A then B uninterrupted."""
    root = tmp_path_factory.mktemp("crash")
    a, b = root / "a", root / "b"
    for index in range(8):
        _article(
            a,
            f"a{index}.md",
            f"https://news.example/{index}",
            JAN_2024 + index * 25 * DAY,
            f"Story {index}.",
        )
    (a / "broken.md").write_text("<!--1704067200000-->\n", encoding="utf-8")
    _article(b, "a1-newer.md", "https://news.example/1", JAN_2024 + 200 * DAY, "Story 1, v2.")
    _article(b, "a2-older.md", "https://news.example/2", JAN_2024 - 30 * DAY, "Story 2, v0.")
    shutil.copy(a / "a3.md", b / "a3-copy.md")
    for index in range(8, 11):
        _article(
            b,
            f"b{index}.md",
            f"https://news.example/{index}",
            JAN_2024 + 300 * DAY + index * DAY,
            f"Story {index}.",
        )
    (b / "empty.md").write_text("", encoding="utf-8")
    (b / ".hidden.md").write_text("x", encoding="utf-8")

    after_a = root / "after-a"
    run_ingest([str(a)], str(after_a))
    # A file of run A changed before run B: B reads it again, so its ledger row replaces
    # the old one in the ledger file that held it (a rewrite), beside the new file B adds.
    _article(a, "a0.md", "https://news.example/0", JAN_2024 + DAY, "Story 0, changed.")
    reference = root / "reference"
    shutil.copytree(after_a, reference)
    run_ingest([str(a), str(b)], str(reference))
    return {"a": a, "b": b, "after_a": after_a, "reference": reference, "root": root}


def _content(warehouse: Path) -> dict[str, pl.DataFrame]:
    """Every table without what differs between runs (run ids, ingestion times)."""
    result = {}
    for name in TABLES:
        files = sorted((warehouse / name).rglob("*.parquet"))
        if not files:
            result[name] = pl.DataFrame()
            continue
        frame = pl.concat([pl.read_parquet(f) for f in files], how="diagonal")
        frame = frame.drop([c for c in ("run_id", "ingested_at") if c in frame.columns])
        result[name] = frame.sort(frame.columns)
    return result


def _assert_readable_and_consistent(warehouse: Path) -> None:
    for name in (*TABLES, "runs"):
        directory = warehouse / name
        if not directory.exists():
            continue
        for path in directory.rglob("*"):
            if path.is_file():
                assert PART_FILE.fullmatch(path.name), f"stray file in a table: {path}"
        if not any(directory.rglob("*.parquet")):
            continue
        pl.scan_parquet(directory / "**" / "*.parquet", hive_partitioning=True).collect()
        duckdb.execute(
            f"SELECT count(*) FROM read_parquet('{directory}/**/*.parquet', "
            "hive_partitioning=true, union_by_name=true)"
        ).fetchall()
    articles = _content(warehouse)["articles"]
    versions = _content(warehouse)["article_versions"]
    if not articles.is_empty():
        assert articles.get_column("article_id").is_unique().all(), "an article appears twice"
        if not versions.is_empty():
            both = set(articles.get_column("content_sha256")) & set(
                versions.get_column("content_sha256")
            )
            assert not both, f"versions in both tables: {both}"


def _run_b(
    scenario: dict[str, Path],
    warehouse: Path,
    *,
    kill_at: str | None = None,
    delay: float | None = None,
) -> int:
    env = {k: v for k, v in os.environ.items() if k != KILL_POINT_VARIABLE}
    if kill_at is not None:
        env[KILL_POINT_VARIABLE] = kill_at
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_B, str(warehouse), str(scenario["a"]), str(scenario["b"])],
        env=env,
    )
    if delay is not None:
        time.sleep(delay)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
    return process.wait(timeout=120)


def _injected_kill_points(scenario: dict[str, Path]) -> list[str]:
    """Every injected kill point of run B, in the order the run reaches them. The journal of
    a run killed right after writing it lists the commit's staged files and operations."""
    probe = scenario["root"] / "probe"
    shutil.copytree(scenario["after_a"], probe)
    assert _run_b(scenario, probe, kill_at="journal-written") == -signal.SIGKILL
    operations = json.loads((probe / JOURNAL_NAME).read_text())["operations"]
    ledger_files = {Path(target).name for staged, target in operations if "/ledger/" in target}
    assert ledger_files == {"part-0.parquet", "part-1.parquet"}, "B must rewrite and add"
    batches = len(list(scenario["b"].glob("[!.]*.md"))) + 1  # a batch a file: B's and a0.md
    return [
        "locked",
        "recovered",
        *(f"batch-{n}" for n in range(batches)),
        "parsed",
        "resolved",
        *(f"staged:{staged_name(staged)}" for staged, _ in operations if staged),
        "staged",
        "journal-written",
        *(f"applied-{n}" for n in range(len(operations))),
        "journal-removed",
    ]


def test_sigkill_at_any_point_loses_and_duplicates_nothing(scenario: dict[str, Path]) -> None:
    reference = _content(scenario["reference"])
    assert reference["articles"].height == 11
    assert reference["article_versions"].height == 3

    points: list[tuple[str, str | None, float | None]] = [
        (name, name, None) for name in _injected_kill_points(scenario)
    ]
    durations = []
    for attempt in range(2):
        probe = scenario["root"] / f"timing-{attempt}"
        shutil.copytree(scenario["after_a"], probe)
        started = time.perf_counter()
        assert _run_b(scenario, probe) == 0
        durations.append(time.perf_counter() - started)
    duration = min(durations)
    rng = random.Random(SEED)
    points += [(f"random-{i}", None, rng.uniform(0.3, 1.0) * duration) for i in range(RANDOM_KILLS)]

    killed = []
    for number, (label, kill_at, delay) in enumerate(points):
        warehouse = scenario["root"] / f"killed-{number:02d}"
        shutil.copytree(scenario["after_a"], warehouse)
        code = _run_b(scenario, warehouse, kill_at=kill_at, delay=delay)
        if kill_at is not None:
            assert code == -signal.SIGKILL, f"kill point {label} was never reached"
        if code == -signal.SIGKILL:
            killed.append(label)
        _assert_readable_and_consistent(warehouse)

        run_ingest([str(scenario["a"]), str(scenario["b"])], str(warehouse))

        _assert_readable_and_consistent(warehouse)
        broken = [result for result in verify(warehouse) if not result.holds]
        assert not broken, f"after a kill at {label}: {broken}"
        content = _content(warehouse)
        for name, expected in reference.items():
            assert content[name].equals(expected), f"{name} differs after a kill at {label}"
        runs = pl.read_parquet(warehouse / "runs" / "part-0.parquet")
        assert runs.get_column("run_id").is_unique().all()
        shutil.rmtree(warehouse)

    injected = [label for label in killed if not label.startswith("random-")]
    print(
        f"\nkill test: {len(killed)} runs killed ({len(injected)} at injected points, "
        f"{len(killed) - len(injected)} at random moments), all recovered: {killed}"
    )
    assert len(injected) >= 25
