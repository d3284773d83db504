"""Committing to the warehouse: stage a run's Parquet outside the tables, then move it in.

Layout under the warehouse root::

    articles/year=YYYY/month=M/part-<run_id>-<n>.parquet   Hive-partitioned by published_at
    rejects/part-<run_id>.parquet
    skips/part-<run_id>.parquet
    runs/part-<run_id>.parquet                              written last: marks the run done
    _staging/<run_id>/                                      private to a running run

Parse tasks write batch files into the run's staging directory. The commit merges them into
at most one file per partition, then renames each finished file into its table directory
(``os.replace``: atomic on one filesystem, so a reader never sees a partial file), and writes
the ``runs`` row last.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from broadsheet.rows import file_metadata
from schemas import ARTICLES_PARTITION_COLUMNS, REJECTS_SCHEMA

STAGING_DIRNAME = "_staging"
_PARTITIONING = ds.partitioning(
    pa.schema([(name, pa.int32()) for name in ARTICLES_PARTITION_COLUMNS]), flavor="hive"
)
_COMPRESSION = "zstd"


class WarehouseError(Exception):
    """The warehouse cannot be written. Not retryable until permissions or space are fixed."""

    retryable = False


@dataclass(frozen=True, slots=True)
class Warehouse:
    """Paths of one warehouse directory."""

    root: Path

    def table_dir(self, table: str) -> Path:
        """Directory holding one table's Parquet files."""
        return self.root / table

    def staging_dir(self, run_id: str) -> Path:
        """Private directory where a run stages its files before commit."""
        return self.root / STAGING_DIRNAME / run_id


def open_warehouse(root: Path | str) -> Warehouse:
    """Create the warehouse directory if needed and check that it is writable."""
    warehouse = Warehouse(Path(os.path.abspath(root)))
    probe = warehouse.root / STAGING_DIRNAME / f".write-probe-{uuid.uuid4().hex}"
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise WarehouseError(
            f"cannot write to warehouse {warehouse.root}: {error.strerror or error}"
        ) from error
    return warehouse


def stage_batch(staging: Path, batch_index: int, articles: pa.Table, rejects: pa.Table) -> None:
    """Write one parse batch's articles and rejects into the run's staging directory."""
    for kind, table in (("articles", articles), ("rejects", rejects)):
        directory = staging / kind
        directory.mkdir(parents=True, exist_ok=True)
        pq.write_table(
            table, directory / f"batch-{batch_index:06d}.parquet", compression=_COMPRESSION
        )


def commit_run(warehouse: Warehouse, run_id: str, skips: pa.Table, run: pa.Table) -> list[Path]:
    """Move a run's staged output into the tables; return the committed file paths."""
    staging = warehouse.staging_dir(run_id)
    ready = staging / "ready"
    _merge_articles(staging / "articles", ready / "articles", run_id)
    rejects = _concat_staged(staging / "rejects", REJECTS_SCHEMA).replace_schema_metadata(
        file_metadata(run_id)
    )
    _write(rejects, ready / "rejects" / f"part-{run_id}.parquet")
    _write(skips, ready / "skips" / f"part-{run_id}.parquet")
    committed = _move_into_tables(ready, warehouse.root)
    runs_path = warehouse.table_dir("runs") / f"part-{run_id}.parquet"
    staged_run = staging / f"runs-{run_id}.parquet"
    _write(run, staged_run)
    runs_path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged_run, runs_path)
    committed.append(runs_path)
    shutil.rmtree(staging)
    return committed


def _merge_articles(staged: Path, destination: Path, run_id: str) -> None:
    batch_files = sorted(str(path) for path in staged.glob("batch-*.parquet"))
    if not batch_files:
        return
    dataset = ds.dataset(batch_files, format="parquet")
    ds.write_dataset(
        dataset,
        destination,
        format="parquet",
        partitioning=_PARTITIONING,
        basename_template=f"part-{run_id}-{{i}}.parquet",
        file_options=ds.ParquetFileFormat().make_write_options(compression=_COMPRESSION),
        existing_data_behavior="error",
        preserve_order=True,
        use_threads=False,
    )


def _concat_staged(staged: Path, schema: pa.Schema) -> pa.Table:
    batch_files = sorted(staged.glob("batch-*.parquet"))
    tables = [pq.read_table(path) for path in batch_files]
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables)


def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression=_COMPRESSION)


def _move_into_tables(ready: Path, root: Path) -> list[Path]:
    moved = []
    for source in sorted(ready.rglob("*.parquet")):
        target = root / source.relative_to(ready)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        moved.append(target)
    return moved
