"""Inputs and warehouse in object storage, against a local S3-compatible server (moto).

The server listens on 127.0.0.1 only and is started by the fixture; nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from broadsheet import object_store, warehouse_sync
from broadsheet.pipeline import RunSummary
from broadsheet.runner import Runner
from broadsheet.warehouse_commit import WarehouseError
from broadsheet.warehouse_sync import PUSH_MARKER, remote_warehouse, working_copy_dir
from flows.ingest import ingest_flow

pytestmark = pytest.mark.usefixtures("prefect_harness")

BUCKET = "archive"
LINEAGE = ["run_id", "ingested_at", "source_path"]


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server on a free loopback port, with credentials pointed at it."""
    server_module = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    settings = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        "BROADSHEET_CACHE_DIR": str(tmp_path_factory.mktemp("cache")),
    }
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    try:
        yield endpoint
    finally:
        server.stop()
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _upload(directory: Path, prefix: str) -> None:
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            key = path.relative_to(directory).as_posix()
            object_store.write_bytes(f"{prefix}/{key}", path.read_bytes())


def _sample_on_s3(sample_dir: Path, name: str) -> tuple[str, str]:
    """Upload the sample under its own prefix; return (inputs URL, warehouse URL) for a test."""
    inputs = f"s3://{BUCKET}/{name}/inputs"
    _upload(sample_dir, inputs)
    return inputs, f"s3://{BUCKET}/{name}/warehouse"


def _run(inputs: str, warehouse: str, runner: Runner = Runner.THREADS) -> RunSummary:
    return ingest_flow(runner, 2)([inputs], warehouse, 5, False, runner.value, 2)


def _remote_table(warehouse: str, table: str) -> pl.DataFrame:
    frames = [
        pl.read_parquet(object_store.read_bytes(entry.url))
        for entry in object_store.list_objects(f"{warehouse}/{table}")
    ]
    return pl.concat(frames, how="vertical") if frames else pl.DataFrame()


def test_s3_inputs_and_warehouse_give_the_tables_of_a_local_run(
    s3_endpoint: str, sample_dir: Path, tmp_path: Path
) -> None:
    inputs, warehouse = _sample_on_s3(sample_dir, "first")

    summary = _run(inputs, warehouse, Runner.PROCESSES)
    assert summary.outcomes == {"article_written": 17, "rejected": 6}

    remote_keys = {entry.url for entry in object_store.list_objects(warehouse)}
    assert f"{warehouse}/runs/part-0.parquet" in remote_keys
    assert f"{warehouse}/ledger/part-0.parquet" in remote_keys
    assert not any(PUSH_MARKER in key or "/_staging/" in key for key in remote_keys)
    articles = _remote_table(warehouse, "articles")
    assert articles.height == 17
    assert all(path.startswith(f"{inputs}/") for path in articles.get_column("source_path"))

    local = _run(str(sample_dir), str(tmp_path / "local"))
    local_articles = pl.read_parquet(local.warehouse / "articles" / "**" / "*.parquet")
    order = ["article_id", "content_sha256"]
    assert articles.drop(LINEAGE).sort(order).equals(local_articles.drop(LINEAGE).sort(order))
    runs = _remote_table(warehouse, "runs")
    assert json.loads(runs.get_column("parameters")[0])["warehouse"] == warehouse


def test_s3_rerun_reads_nothing_and_pushes_only_the_runs_row(
    s3_endpoint: str, sample_dir: Path
) -> None:
    inputs, warehouse = _sample_on_s3(sample_dir, "rerun")
    _run(inputs, warehouse)
    before = _contents(warehouse)

    summary = _run(inputs, warehouse)

    assert summary.outcomes == {"unchanged": 23}
    after = _contents(warehouse)
    changed = {url for url in after if before.get(url) != after[url]}
    assert changed == {f"{warehouse}/runs/part-0.parquet"}
    assert _remote_table(warehouse, "runs").height == 2


def test_a_fresh_working_copy_pulls_the_remote_tables_first(
    s3_endpoint: str, sample_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs, warehouse = _sample_on_s3(sample_dir, "pull")
    _run(inputs, warehouse)
    monkeypatch.setenv("BROADSHEET_CACHE_DIR", str(tmp_path / "other-machine"))
    assert not working_copy_dir(warehouse).exists()

    summary = _run(inputs, warehouse)

    assert summary.outcomes == {"unchanged": 23}
    assert pq.read_table(working_copy_dir(warehouse) / "runs" / "part-0.parquet").num_rows == 2


def test_an_interrupted_push_is_finished_by_the_next_run_or_refused(
    s3_endpoint: str, sample_dir: Path, tmp_path: Path
) -> None:
    warehouse = f"s3://{BUCKET}/interrupted"
    copy = tmp_path / "copy"
    with remote_warehouse(warehouse, copy) as local:
        (local / "runs").mkdir()
        (local / "runs" / "part-0.parquet").write_bytes(b"new runs file")
    object_store.write_bytes(
        f"{warehouse}/{PUSH_MARKER}",
        json.dumps(
            {"uploads": {"runs/part-0.parquet": _digest(b"new runs file")}, "deletions": []}
        ).encode(),
    )
    object_store.delete(f"{warehouse}/runs/part-0.parquet")

    with remote_warehouse(warehouse, copy):
        pass
    assert object_store.read_bytes(f"{warehouse}/runs/part-0.parquet") == b"new runs file"
    assert not object_store.exists(f"{warehouse}/{PUSH_MARKER}")

    object_store.write_bytes(
        f"{warehouse}/{PUSH_MARKER}",
        json.dumps({"uploads": {"runs/part-0.parquet": "0" * 64}, "deletions": []}).encode(),
    )
    with (
        pytest.raises(WarehouseError, match="interrupted"),
        remote_warehouse(warehouse, tmp_path / "stranger"),
    ):
        pass


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _contents(prefix: str) -> dict[str, str]:
    """Digest of every object under ``prefix`` (S3 times have one-second resolution)."""
    return {
        entry.url: _digest(object_store.read_bytes(entry.url))
        for entry in object_store.list_objects(prefix)
    }


@pytest.mark.slow
def test_cli_runs_on_s3_and_a_missing_prefix_exits_2(
    s3_endpoint: str, sample_dir: Path, tmp_path: Path
) -> None:
    from tests.test_cli import NOISE, broadsheet

    inputs, warehouse = _sample_on_s3(sample_dir, "cli")

    result = broadsheet("run", inputs, "--warehouse", warehouse, cwd=tmp_path, home=tmp_path)

    assert result.returncode == 0, result.stderr
    assert not NOISE.search(result.stdout + result.stderr), result.stdout + result.stderr
    assert f"Local working copy of {warehouse}" in result.stdout
    assert f"{warehouse}/articles/**/*.parquet" in result.stdout
    assert _remote_table(warehouse, "articles").height == 17

    missing = broadsheet("run", f"s3://{BUCKET}/nothing-here", cwd=tmp_path, home=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: input path does not exist: s3://{BUCKET}/nothing-here"


def test_a_push_deletes_merged_away_files_before_it_uploads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A merge folds part-1 into part-0: uploading part-0 first would let a reader of the
    # store see part-1's rows twice; deleting part-1 first can only hide them for a moment.
    partition = "articles/year=2024/month=1"
    local = tmp_path / "copy"
    (local / partition).mkdir(parents=True)
    (local / partition / "part-0.parquet").write_bytes(b"merged")
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(object_store, "delete", lambda url: calls.append(("delete", url)))
    monkeypatch.setattr(
        object_store, "write_bytes", lambda url, data: calls.append(("upload", url))
    )
    monkeypatch.setattr(warehouse_sync, "_write_manifest", lambda remote, local: None)

    warehouse_sync._apply_push(
        "s3://bucket/w", local, [f"{partition}/part-0.parquet"], [f"{partition}/part-1.parquet"]
    )

    assert calls == [
        ("delete", f"s3://bucket/w/{partition}/part-1.parquet"),
        ("upload", f"s3://bucket/w/{partition}/part-0.parquet"),
        ("delete", f"s3://bucket/w/{PUSH_MARKER}"),
    ]


def test_a_push_uploads_a_tables_rewritten_files_before_its_new_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A ledger file rewritten without a path the run read again, and the new file holding
    # that path's new row: the new file first would let a reader see the path twice.
    local = tmp_path / "copy"
    partition = "articles/year=2024/month=1"
    rewritten = ["ledger/part-2.parquet", f"{partition}/part-1.parquet"]
    added = ["ledger/part-10.parquet", f"{partition}/part-3.parquet"]
    for relative in [*rewritten, *added, "runs/part-0.parquet"]:
        (local / relative).parent.mkdir(parents=True, exist_ok=True)
        (local / relative).write_bytes(b"after")
    before = {relative: (1, 1) for relative in [*rewritten, "runs/part-0.parquet"]}
    uploads: list[str] = []
    monkeypatch.setattr(object_store, "write_bytes", lambda url, data: uploads.append(url))
    monkeypatch.setattr(object_store, "delete", lambda url: None)
    monkeypatch.setattr(warehouse_sync, "_write_manifest", lambda remote, local: None)

    warehouse_sync.push("s3://bucket/w", local, before)

    assert uploads == [
        f"s3://bucket/w/{PUSH_MARKER}",
        f"s3://bucket/w/{partition}/part-1.parquet",
        f"s3://bucket/w/{partition}/part-3.parquet",
        "s3://bucket/w/ledger/part-2.parquet",
        "s3://bucket/w/ledger/part-10.parquet",
        "s3://bucket/w/runs/part-0.parquet",
    ]
