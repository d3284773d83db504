"""The ``broadsheet`` command line: a thin shell over the ``ingest`` flow."""

from __future__ import annotations

import time
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from broadsheet.prefect_env import apply_quiet_prefect_defaults
from broadsheet.resolve import Outcome

if TYPE_CHECKING:
    from broadsheet.pipeline import RunSummary

app = typer.Typer(
    name="broadsheet",
    help="Turn archives of scraped news articles into Hive-partitioned Parquet.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)

EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_BUSY = 3


def sample_input_dir() -> Path:
    """The synthetic sample archive bundled with the package."""
    return Path(str(files("broadsheet") / "sample_input"))


@app.callback()
def main() -> None:
    """Broadsheet: news archives to analytics-ready Parquet."""


@app.command()
def run(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Archive files or directories, walked recursively. Default: the bundled sample.",
            show_default=False,
        ),
    ] = None,
    warehouse: Annotated[
        Path,
        typer.Option("--warehouse", "-w", help="Warehouse directory to write the tables into."),
    ] = Path("warehouse"),
    batch_size: Annotated[int, typer.Option(min=1, help="Files parsed per Prefect task.")] = 500,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="If another run is writing the warehouse, wait for it "
            "instead of exiting with code 3.",
        ),
    ] = False,
) -> None:
    """Ingest archive files into the warehouse and print what happened to each file.

    Re-runs are incremental: files the warehouse ledger shows unchanged are not read again.
    """
    inputs = list(paths) if paths else [sample_input_dir()]
    missing = [str(path) for path in inputs if not path.exists()]
    if missing:
        _fail(f"input path does not exist: {', '.join(missing)}", EXIT_USAGE)

    apply_quiet_prefect_defaults()
    from broadsheet.warehouse_commit import (
        WarehouseBusyError,
        WarehouseError,
        open_warehouse,
        probe_lock,
    )

    try:
        target = open_warehouse(warehouse)
        if not wait:
            probe_lock(target)
    except WarehouseBusyError as error:
        _fail(str(error), EXIT_BUSY)
    except WarehouseError as error:
        _fail(str(error), EXIT_FATAL)
    from flows.ingest import ingest

    started = time.perf_counter()
    summary = ingest([str(path) for path in inputs], str(warehouse), batch_size, wait)
    _print_summary(summary, time.perf_counter() - started)


def _fail(message: str, code: int) -> None:
    errors.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _say(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


_OUTCOME_LABELS = {
    Outcome.ARTICLE_WRITTEN: "articles written",
    Outcome.VERSION_SUPERSEDED: "versions superseded",
    Outcome.IDENTICAL_DUPLICATE: "identical duplicates",
    Outcome.REJECTED: "rejected",
    Outcome.UNCHANGED: "unchanged (not read)",
    Outcome.SKIPPED: "skipped",
}


def _print_summary(summary: RunSummary, wall_seconds: float) -> None:
    _say(
        f"Run {summary.run_id} finished in {wall_seconds:.1f} s "
        f"({summary.seconds:.1f} s ingesting, the rest Prefect start-up and shutdown)."
    )
    if summary.recovered_previous_commit:
        _say("It first completed the commit of an earlier run that had been interrupted.")
    table = Table(show_header=True)
    table.add_column("outcome")
    table.add_column("files", justify="right")
    for outcome, label in _OUTCOME_LABELS.items():
        table.add_row(label, f"{summary.count(outcome):,}")
    table.add_row("files seen", f"{summary.files_seen:,}", style="bold")
    console.print(table)
    root = summary.warehouse
    _say(
        f"Tables in {root}: articles/ and article_versions/ (year=/month= partitions), "
        "rejects/, skips/, runs/, ledger/"
    )
    articles_glob = f"{root}/articles/**/*.parquet"
    _say("Read them with Polars:")
    _say(
        f"  python -c \"import polars as pl; print(pl.scan_parquet('{articles_glob}', "
        f'hive_partitioning=True).collect())"'
    )
    _say("or with DuckDB:")
    _say(
        f'  python -c "import duckdb; duckdb.sql(\\"SELECT year, month, count(*) FROM '
        f"read_parquet('{articles_glob}', hive_partitioning=true, union_by_name=true) "
        f'GROUP BY ALL ORDER BY ALL\\").show()"'
    )
    if summary.count(Outcome.REJECTED):
        _say(f"Rejects and their reasons: {root}/rejects/")
