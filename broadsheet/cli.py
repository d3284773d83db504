"""The ``broadsheet`` command line: a thin shell over the library (flows, warehouse queries,
report). Heavy imports happen inside the commands so that ``--help`` stays fast."""

from __future__ import annotations

import atexit
import contextlib
import csv
import gc
import inspect
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from enum import StrEnum
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from broadsheet import object_store
from broadsheet.allocators import fix_malloc_mmap_threshold, prefer_jemalloc
from broadsheet.prefect_env import apply_quiet_prefect_defaults
from broadsheet.prefect_server import (
    RUN_SERVER,
    EarlyTemporaryServer,
    PrefectServerError,
    preload_flow_run_modules,
)
from broadsheet.progress import set_batch_listener
from broadsheet.resolve import Outcome
from broadsheet.runner import Runner
from broadsheet.stop_signals import (
    EXIT_STOPPED_BY_SIGNAL,
    end_process_when_stopped,
    exit_now,
    is_stop_signal,
    signal_number,
    stopped_message,
)

if TYPE_CHECKING:
    from broadsheet.pipeline import RunSummary
    from broadsheet.read_inputs import Discovery
    from broadsheet.warehouse_query import Result

app = typer.Typer(
    name="broadsheet",
    help="Turn archives of scraped news articles into Hive-partitioned Parquet.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def command(function: Callable[P, R]) -> Callable[P, R]:
    """Register ``function`` as a command whose help is its docstring with each paragraph on
    one line: Typer keeps a docstring's line breaks, which broke help text mid-sentence at
    every terminal width."""
    help_text = unwrap_paragraphs(inspect.cleandoc(function.__doc__ or ""))
    return app.command(help=help_text)(function)


def unwrap_paragraphs(text: str) -> str:
    """``text`` with the lines of each paragraph (blank-line separated) joined by spaces."""
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in text.split("\n\n"))


EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_BUSY = 3
EXIT_NOT_FOUND = 4
EXIT_BROKEN = 5


def sample_input_dir() -> Path:
    """The synthetic sample archive bundled with the package."""
    return Path(str(files("broadsheet") / "sample_input"))


@app.callback()
def main() -> None:
    """Broadsheet: news archives to analytics-ready Parquet."""
    atexit.unregister(skip_exit_collection)
    atexit.register(skip_exit_collection)


def skip_exit_collection() -> None:
    """Registered before Prefect is imported, so it runs after every other exit handler: it
    moves all objects to the collector's permanent generation, which the interpreter's final
    collections skip. Tearing down Prefect's hundreds of modules then takes 0.04 s instead of
    0.4 s (measured on a 10-file run); the process is ending and the OS frees its memory."""
    gc.freeze()


BatchSizeOption = Annotated[
    int,
    typer.Option(
        min=0,
        help="Files parsed per Prefect task; 0: automatic (about 32 tasks of 500-5,000 files).",
    ),
]


@command
def run(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Archive files or directories, walked recursively, or object-store prefixes "
            "(s3://bucket/prefix). Default: the bundled sample.",
            show_default=False,
        ),
    ] = None,
    warehouse: Annotated[
        str,
        typer.Option(
            "--warehouse",
            "-w",
            help="Warehouse directory to write the tables into, or an object-store URL "
            "(s3://bucket/prefix, written through a local working copy).",
        ),
    ] = "warehouse",
    batch_size: BatchSizeOption = 0,
    runner: Annotated[
        Runner,
        typer.Option(
            help="Where parse tasks run: worker processes (one a core; a file that crashes "
            "or stalls one is rejected), threads of this process (unwatched: for debugging), "
            "or a Dask cluster."
        ),
    ] = Runner.PROCESSES,
    workers: Annotated[
        int, typer.Option(min=0, help="Parse workers (processes or threads); 0: one a core.")
    ] = 0,
    dask_address: Annotated[
        str | None,
        typer.Option(
            help="Scheduler of the Dask cluster for --runner dask, e.g. tcp://10.0.0.5:8786. "
            "Default: a temporary local cluster."
        ),
    ] = None,
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

    A file that crashes or stalls a parse worker is rejected, not the run. Environment:
    BROADSHEET_TIME_LIMIT_SCALE multiplies the time a batch, a chunk of 100 files or a file
    may take before its parse counts as stalled (default 1; raise it where reads are slow).
    """
    inputs = list(paths) if paths else [str(sample_input_dir())]
    try:
        missing = [
            path
            for path in inputs
            if not (
                object_store.exists(path) if object_store.is_remote(path) else Path(path).exists()
            )
        ]
    except object_store.ObjectStoreError as error:
        _fail(str(error), EXIT_FATAL)
    if missing:
        _fail(f"input path does not exist: {', '.join(missing)}", EXIT_USAGE)

    apply_quiet_prefect_defaults()
    prefer_jemalloc()
    fix_malloc_mmap_threshold()
    server = RUN_SERVER
    end_process_when_stopped()
    started = time.perf_counter()
    server.start()  # does nothing when the entry point started it already
    from pyarrow import ArrowInvalid

    try:
        _run_flow(
            inputs, warehouse, batch_size, wait, runner, workers, dask_address, server, started
        )
    except ArrowInvalid as error:  # Broadsheet's own files are written whole, then renamed
        server.stop()
        _fail(
            f"{error} (a warehouse file changed or cut short outside Broadsheet, which "
            "writes each file whole: restore it from a backup)",
            EXIT_FATAL,
        )
    except BaseException as stop:
        if not is_stop_signal(stop):
            raise
        server.stop()
        signum = signal_number(stop)
        exit_now(stopped_message(signum), EXIT_STOPPED_BY_SIGNAL + signum)
    finally:
        server.stop()


def _run_flow(
    inputs: list[str],
    warehouse: str,
    batch_size: int,
    wait: bool,
    runner: Runner,
    workers: int,
    dask_address: str | None,
    server: EarlyTemporaryServer,
    started: float,
) -> None:
    from broadsheet.read_inputs import prefetch_discovery
    from broadsheet.warehouse_commit import (
        WarehouseBusyError,
        WarehouseError,
        open_warehouse,
        probe_lock,
    )
    from broadsheet.worker_crashes import (
        WorkerCrashError,
        start_worker_server,
        time_limit_scale,
    )

    try:
        time_limit_scale()
    except ValueError as error:
        _fail(str(error), EXIT_USAGE)
    try:
        if not object_store.is_remote(warehouse):
            target = open_warehouse(warehouse)
            if not wait:
                probe_lock(target)
        discovery = prefetch_discovery(inputs)
        if _nothing_to_read(discovery, warehouse, own_server=server.running):
            server.stop()
            _run_without_prefect(inputs, warehouse, batch_size, wait, started)
            return
    except WarehouseBusyError as error:
        _fail(str(error), EXIT_BUSY)
    except WarehouseError as error:
        _fail(str(error), EXIT_FATAL)
    del discovery  # the run takes the prefetched listing itself
    if runner is Runner.PROCESSES:
        start_worker_server()  # its imports overlap the wait for Prefect's server
    from flows.ingest import RunnerUnavailableError, ingest_flow

    try:
        flow = ingest_flow(runner, workers, dask_address)
    except RunnerUnavailableError as error:
        _fail(str(error), EXIT_USAGE)
    preload_flow_run_modules()
    try:
        server.wait_ready()
    except PrefectServerError as error:
        _fail(str(error), EXIT_FATAL)
    try:
        with _batch_progress(), server.run_settings():
            summary = flow(inputs, warehouse, batch_size, wait, runner.value, workers)
    except (WarehouseError, object_store.ObjectStoreError, WorkerCrashError) as error:
        server.stop()  # sends what Prefect still holds first: the error is the last line
        again = " (retryable: run again)" if getattr(error, "retryable", False) else ""
        _fail(f"{error}{again}", EXIT_FATAL)
    except OSError as error:  # the machine's, not the data's: a full disk, a lost mount
        server.stop()
        _fail(
            f"{error} (fix this and run again: the next run completes or discards what "
            "this one left)",
            EXIT_FATAL,
        )
    _print_summary(summary, time.perf_counter() - started, warehouse)


def _nothing_to_read(discovery: Discovery | None, warehouse: str, *, own_server: bool) -> bool:
    """Whether this run may skip Prefect: it runs on its own temporary Prefect server (none
    is configured, so no one else sees its flow runs), its input and warehouse are local, and
    the ledger shows no file to read. Its flow run would only have recorded that."""
    from broadsheet.pipeline import count_files_to_read

    if not own_server or discovery is None or object_store.is_remote(warehouse):
        return False
    return count_files_to_read(discovery, warehouse) == 0


def _run_without_prefect(
    inputs: list[str], warehouse: str, batch_size: int, wait: bool, started: float
) -> None:
    """Run the ingest that found nothing to read in this process: the same code as the flow
    (lock, recovery of an interrupted commit, skips, the runs table), without starting Prefect.
    A file that arrived since the check is read here, in this process. The caller turns a
    busy or broken warehouse into its exit code."""
    from broadsheet.pipeline import run_ingest

    summary = run_ingest(inputs, warehouse, batch_size=batch_size, wait=wait)
    _print_summary(summary, time.perf_counter() - started, warehouse, prefect_started=False)


@contextlib.contextmanager
def _batch_progress() -> Iterator[None]:
    """A progress bar of parse batches on stderr, when it is a terminal."""
    progress = Progress(
        TextColumn("parsing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("batches"),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
        disable=not errors.is_terminal,
    )
    task = progress.add_task("parse", total=None)

    def advance(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    set_batch_listener(advance)
    try:
        with progress:
            yield
    finally:
        set_batch_listener(None)


def _fail(message: str, code: int) -> NoReturn:
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


def _print_summary(
    summary: RunSummary, wall_seconds: float, warehouse: str, *, prefect_started: bool = True
) -> None:
    if prefect_started:
        _say(
            f"Run {summary.run_id} finished in {wall_seconds:.1f} s "
            f"({summary.seconds:.1f} s ingesting, the rest starting Prefect and its server)."
        )
    else:
        _say(
            f"Run {summary.run_id} finished in {wall_seconds:.1f} s ({summary.seconds:.1f} s "
            "ingesting). When it started, the ledger showed no new or changed file, so it ran "
            "without starting Prefect."
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
    root = str(summary.warehouse)
    if object_store.is_remote(warehouse):
        _say(f"Local working copy of {warehouse} (for query, show, runs and report): {root}")
        root = warehouse.rstrip("/")
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


WarehouseOption = Annotated[
    Path, typer.Option("--warehouse", "-w", help="Warehouse directory to read.")
]


class OutputFormat(StrEnum):
    """How query-like commands print their rows."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"


FormatOption = Annotated[
    OutputFormat,
    typer.Option("--format", "-f", help="table for people; csv or json for pipes."),
]


@command
def query(
    sql: Annotated[str, typer.Argument(help="One SQL statement (DuckDB dialect).")],
    warehouse: WarehouseOption = Path("warehouse"),
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Run SQL over views named after the tables: articles, article_versions, rejects, skips,
    runs, ledger (Hive partitioning and union_by_name already applied)."""
    from broadsheet.warehouse_query import QueryError, WarehouseMissingError
    from broadsheet.warehouse_query import query as run_query

    try:
        result = run_query(warehouse.resolve(), sql)
    except WarehouseMissingError as error:
        _fail(str(error), EXIT_FATAL)
    except QueryError as error:
        _fail(f"SQL error: {error}", EXIT_USAGE)
    _print_result(result, output)


@command
def runs(
    warehouse: WarehouseOption = Path("warehouse"),
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many runs.")] = 20,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """List the most recent runs, newest first, with their outcomes and throughput."""
    from broadsheet.warehouse_query import WarehouseMissingError, recent_runs

    try:
        result = recent_runs(warehouse.resolve(), limit)
    except WarehouseMissingError as error:
        _fail(str(error), EXIT_FATAL)
    _print_result(result, output)


@command
def show(
    id_or_url: Annotated[str, typer.Argument(help="An article_id, or the article's URL.")],
    warehouse: WarehouseOption = Path("warehouse"),
    output: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="table (readable text) or json.")
    ] = OutputFormat.TABLE,
) -> None:
    """Print one article readably: its fields, body and other versions."""
    from broadsheet.warehouse_query import WarehouseMissingError, find_article, to_json_value

    try:
        article, versions = find_article(warehouse.resolve(), id_or_url)
    except WarehouseMissingError as error:
        _fail(str(error), EXIT_FATAL)
    if article is None:
        _fail(f"no article {id_or_url!r} in {warehouse}", EXIT_NOT_FOUND)
    if output is OutputFormat.JSON:
        document = {"article": to_json_value(article), "other_versions": to_json_value(versions)}
        print(json.dumps(document, ensure_ascii=False, indent=1))
        return
    if output is OutputFormat.CSV:
        _fail("show prints table or json", EXIT_USAGE)
    _print_article(article, versions)


@command
def report(
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")] = Path(
        "broadsheet-report.html"
    ),
    warehouse: WarehouseOption = Path("warehouse"),
) -> None:
    """Write a self-contained HTML report (works offline): articles per day by feed and by
    domain, languages, paragraph and image counts, rejects, run history."""
    from broadsheet.report import write_report
    from broadsheet.warehouse_query import WarehouseMissingError

    try:
        written = write_report(warehouse.resolve(), out)
    except WarehouseMissingError as error:
        _fail(str(error), EXIT_FATAL)
    except OSError as error:
        _fail(f"cannot write {out}: {error.strerror or error}", EXIT_FATAL)
    _say(f"Report written to {written.resolve()}")


@command
def verify(warehouse: WarehouseOption = Path("warehouse")) -> None:
    """Check the warehouse against the guarantees Broadsheet keeps: readable files, no
    half-applied commit, one row per article, version and ledger path, every version the
    ledger records as stored present, rows in their month's partition, runs whose outcomes
    add up. Exit code 5 when one is broken."""
    from broadsheet.warehouse_query import WarehouseMissingError
    from broadsheet.warehouse_verify import verify as verify_warehouse

    root = warehouse.resolve()
    try:
        results = verify_warehouse(root)
    except WarehouseMissingError as error:
        _fail(str(error), EXIT_FATAL)
    for result in results:
        state = "ok" if result.holds else f"BROKEN ({result.broken:,})"
        _say(f"{state:<14} {result.name}: {result.guarantee}")
        for example in result.examples:
            _say(f"{'':<17}{example}")
    broken = [result for result in results if not result.holds]
    if broken:
        _fail(
            f"{len(broken)} of {len(results)} checks failed on {root}: its files were changed "
            "outside Broadsheet, or a bug broke them",
            EXIT_BROKEN,
        )
    _say(f"All {len(results)} checks passed on {root}.")


@command
def dictionary(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="File to write; default: print.")
    ] = None,
) -> None:
    """Print (or write) the data dictionary generated from the schemas."""
    from broadsheet.data_dictionary import render

    text = render()
    if out is None:
        print(text)
    else:
        out.write_text(text, encoding="utf-8")
        _say(f"Data dictionary written to {out}")


@command
def serve(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Archive files or directories. Default: the bundled sample.", show_default=False
        ),
    ] = None,
    cron: Annotated[str, typer.Option(help="Cron schedule, e.g. '0 * * * *' (hourly).")] = (
        "0 * * * *"
    ),
    warehouse: Annotated[
        Path, typer.Option("--warehouse", "-w", help="Warehouse directory to write.")
    ] = Path("warehouse"),
    batch_size: BatchSizeOption = 0,
    name: Annotated[str, typer.Option(help="Name of the Prefect deployment.")] = (
        "broadsheet-ingest"
    ),
) -> None:
    """Serve a Prefect deployment that runs the ingest on a cron schedule until stopped
    (Ctrl-C). Works with no Prefect server; with one, watch the runs in its UI."""
    inputs = [path.resolve() for path in (paths or [sample_input_dir()])]
    missing = [str(path) for path in inputs if not path.exists()]
    if missing:
        _fail(f"input path does not exist: {', '.join(missing)}", EXIT_USAGE)
    apply_quiet_prefect_defaults()
    prefer_jemalloc()
    fix_malloc_mmap_threshold()
    from broadsheet.prefect_server import PrefectServerError, prefect_api, prefect_home

    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        with prefect_api(prefect_home() / "broadsheet-server.log") as api_url:
            from prefect.schedules import Cron

            from flows.ingest import ingest

            try:
                schedule = Cron(cron, timezone="UTC")
            except ValueError as error:
                _fail(f"invalid cron expression {cron!r}: {error}", EXIT_USAGE)

            ui_url = api_url.removesuffix("/api")
            _say(
                f"Serving deployment 'ingest/{name}' on cron '{cron}' (UTC) into "
                f"{warehouse.resolve()}; Prefect UI at {ui_url}. Ctrl-C stops it."
            )
            ingest.serve(
                name=name,
                schedule=schedule,
                parameters={
                    "paths": [str(path) for path in inputs],
                    "warehouse": str(warehouse.resolve()),
                    "batch_size": batch_size,
                    "wait": True,
                },
                print_starting_message=False,
            )
    except PrefectServerError as error:
        _fail(str(error), EXIT_FATAL)
    except KeyboardInterrupt:
        pass
    _say("Stopped.")


def _stop_on_sigterm(signum: int, frame: object) -> None:
    """Let SIGTERM (service managers, ``timeout``) stop ``serve`` as Ctrl-C does, so that
    the local Prefect server it started is shut down too."""
    raise KeyboardInterrupt


def _print_result(result: Result, output: OutputFormat) -> None:
    from broadsheet.warehouse_query import to_json, to_json_value

    if output is OutputFormat.JSON:
        print(to_json(result))
    elif output is OutputFormat.CSV:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(result.columns)
        for row in result.rows:
            writer.writerow([_cell(to_json_value(value)) for value in row])
    else:
        cells = [[_cell(to_json_value(value)) for value in row] for row in result.rows]
        table = Table(show_header=True)
        for column in result.columns:
            table.add_column(column, overflow="fold")
        unbounded = console.options.update_width(1_000_000)
        if Measurement.get(console, unbounded, table).maximum > console.width:
            _print_records(result.columns, cells)  # not even the column names fit
        else:
            for row_cells in cells:
                table.add_row(*row_cells)
            console.print(table)
        _say(f"{len(result.rows):,} row(s)")


def _print_records(columns: Sequence[str], cells: Sequence[Sequence[str]]) -> None:
    """Each row as lines of column and value, for results whose column names alone are wider
    than the terminal: a table would squeeze every column to a few characters (``runs``'s
    eleven in 80 columns)."""
    for number, row_cells in enumerate(cells, 1):
        record = Table(
            show_header=False, box=None, title=f"row {number}", title_justify="left", pad_edge=False
        )
        record.add_column(style="bold", no_wrap=True)
        record.add_column(overflow="fold")
        for column, cell in zip(columns, row_cells, strict=True):
            record.add_row(column, cell)
        console.print(record)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _print_article(article: dict[str, object], versions: list[dict[str, object]]) -> None:
    _say(str(article["title"]))
    _say(f"{article['url']}")
    details = [
        ("article_id", article["article_id"]),
        ("published_at", article["published_at"]),
        ("body_published_at", article.get("body_published_at")),
        ("language", article.get("language")),
        ("feed", article.get("feed")),
        ("author", article.get("author")),
        ("source", f"{article['source_path']} ({article['source_format']})"),
    ]
    for label, value in details:
        if value is not None:
            _say(f"  {label}: {value}")
    sections: list[tuple[str, object]] = [
        ("Headings", article.get("headings")),
        ("Captions", article.get("captions")),
        ("Meta blocks", article.get("meta_blocks")),
        ("Images", article.get("image_urls")),
    ]
    _say("")
    for number, paragraph in enumerate(_as_list(article.get("paragraphs")), start=1):
        _say(f"[{number}] {paragraph}")
    for label, values in sections:
        items = _as_list(values)
        if items:
            _say(f"\n{label}:")
            for item in items:
                _say(f"  - {item}")
    links = _as_list(article.get("share_links"))
    if links:
        _say("\nShare links:")
        for link in links:
            if isinstance(link, dict):
                _say(f"  - {link['platform']}: {link.get('target_url') or link['url']}")
    if versions:
        _say(f"\nOther versions ({len(versions)}):")
        for version in versions:
            _say(f"  - {version['published_at']}  {version['source_path']}")


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else []
