"""The ``broadsheet`` command as a user runs it: a real process, its exit code and its output."""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from broadsheet.cli import _nothing_to_read, app, skip_exit_collection
from broadsheet.entry_point import main, runs_ingest
from broadsheet.fault_injection import DISK_FULL_VARIABLE, HANG_VARIABLE, KILL_POINT_VARIABLE
from broadsheet.pipeline import run_ingest
from broadsheet.prefect_server import (
    FLOW_RUN_MODULES,
    RUN_SERVER,
    TEMPORARY_SERVER_SERVICES_OFF,
    EarlyTemporaryServer,
    temporary_server_environment,
)
from broadsheet.read_inputs import discover
from broadsheet.stop_signals import is_stop_signal
from broadsheet.worker_crashes import TIME_LIMIT_SCALE_VARIABLE
from tests.archive_files import bare, write_stories

NOISE = re.compile(r"Traceback|\bERROR\b|\bError\b|\bWARNING\b|Warning:|Exception", re.MULTILINE)


def broadsheet(
    *args: str,
    cwd: Path,
    home: Path,
    kill_at: str | None = None,
    disk_full_at: str | None = None,
    environment: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script in a clean Prefect home, as a user would (with the
    kill point ``kill_at``, or a full disk at ``disk_full_at``, if given, and any further
    ``environment``)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env |= environment or {}
    env["PREFECT_HOME"] = str(home)
    env["COLUMNS"] = "200"
    for variable, point in ((KILL_POINT_VARIABLE, kill_at), (DISK_FULL_VARIABLE, disk_full_at)):
        env.pop(variable, None)
        if point is not None:
            env[variable] = point
    executable = Path(sys.executable).with_name("broadsheet")
    return subprocess.run(
        [str(executable), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_a_first_run_in_a_terminal_prints_no_telemetry_notice(tmp_path: Path) -> None:
    """Prefect's SDK prints a notice about its telemetry on a user's first import in an
    interactive terminal (not in CI, which it detects): ``broadsheet run`` turns telemetry
    off, so a new user sees only the run's output."""
    env = {name: os.environ[name] for name in ("PATH", "LANG") if name in os.environ}
    env.update(HOME=str(tmp_path), PREFECT_HOME=str(tmp_path / "prefect"), TERM="xterm")
    controller, terminal = os.openpty()
    with subprocess.Popen(
        [str(Path(sys.executable).with_name("broadsheet")), "run"],
        cwd=tmp_path,
        env=env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    ) as cli:
        os.close(terminal)
        output = b""
        with contextlib.suppress(OSError):  # EIO once the CLI has closed the terminal
            while chunk := os.read(controller, 65536):
                output += chunk
        os.close(controller)
        assert cli.wait(timeout=300) == 0, output
    text = output.decode("utf-8", "replace")
    assert "articles written" in text, text
    assert "telemetry" not in text.lower(), text
    assert "usage data" not in text, text


@pytest.mark.slow
def test_run_without_paths_ingests_the_bundled_sample_quietly(tmp_path: Path) -> None:
    result = broadsheet("run", cwd=tmp_path, home=tmp_path / "prefect")
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert not NOISE.search(output), output
    assert re.search(r"articles written\s*│\s*17", result.stdout)
    assert re.search(r"rejected\s*│\s*6", result.stdout)
    assert re.search(r"files seen\s*│\s*23", result.stdout)
    warehouse = tmp_path / "warehouse"
    assert "hive_partitioning=True" in result.stdout
    assert "union_by_name=true" in result.stdout
    count = duckdb.execute(
        f"SELECT count(*) FROM read_parquet('{warehouse}/articles/**/*.parquet', "
        "hive_partitioning=true)"
    ).fetchall()[0][0]
    assert count == 17


@pytest.mark.slow
def test_a_file_that_crashes_the_parser_is_rejected_and_no_run_fails_for_it(
    tmp_path: Path,
) -> None:
    inputs = write_stories(tmp_path / "in", 6)
    poison = f"parse:{inputs / '3.md'}"
    home = tmp_path / "prefect"

    def run(warehouse: str, *options: str) -> subprocess.CompletedProcess[str]:
        return broadsheet(
            "run", str(inputs), "-w", warehouse, *options, cwd=tmp_path, home=home, kill_at=poison
        )

    pooled = run("pooled", "--batch-size", "2", "--workers", "2")
    assert pooled.returncode == 0, pooled.stderr
    assert re.search(r"articles written\s*│\s*5", pooled.stdout)
    assert re.search(r"rejected\s*│\s*1", pooled.stdout)
    assert "Traceback" not in pooled.stderr
    assert f"rejected as worker_crashed: {inputs / '3.md'}" in pooled.stderr

    # A single batch is parsed in a worker process too: the file is found in the same run.
    alone = run("alone")
    assert alone.returncode == 0, alone.stderr
    assert f"rejected as worker_crashed: {inputs / '3.md'}" in alone.stderr
    assert not (tmp_path / "alone" / "_parsing").exists()

    # The threads runner parses in the run's own process, which the file kills; the run
    # after it parses in a worker process, finds the file and rejects it.
    threads = ("--runner", "threads")
    killed = run("threads", *threads)
    assert killed.returncode == -signal.SIGKILL
    assert (tmp_path / "threads" / "_parsing").exists()
    after = run("threads", *threads)
    assert after.returncode == 0, after.stderr
    assert re.search(r"articles written\s*│\s*5", after.stdout)
    assert not (tmp_path / "threads" / "_parsing").exists()
    for warehouse in ("pooled", "alone", "threads"):
        rejects = duckdb.execute(
            f"SELECT source_path, reason FROM '{tmp_path / warehouse}/rejects/*.parquet'"
        ).fetchall()
        assert rejects == [(str(inputs / "3.md"), "worker_crashed")]
    rerun = run("threads", *threads)
    assert rerun.returncode == 0, rerun.stderr
    assert re.search(r"unchanged \(not read\)\s*│\s*6", rerun.stdout)


@pytest.mark.slow
def test_a_full_disk_mid_run_ends_it_with_one_error_line_and_the_next_run_recovers(
    tmp_path: Path, sample_dir: Path
) -> None:
    home = tmp_path / "prefect"
    failed = broadsheet("run", str(sample_dir), cwd=tmp_path, home=home, disk_full_at="batch-0")
    assert failed.returncode == 1
    last = failed.stderr.strip().splitlines()[-1]
    assert last == (
        "error: [Errno 28] No space left on device (injected at batch-0) (fix this and "
        "run again: the next run completes or discards what this one left)"
    )
    assert sorted(path.name for path in (tmp_path / "warehouse").iterdir()) == [
        "_lock",
        "_staging",
    ]
    again = broadsheet("run", str(sample_dir), cwd=tmp_path, home=home)
    assert again.returncode == 0, again.stderr
    assert re.search(r"articles written\s*│\s*17", again.stdout)
    assert not any((tmp_path / "warehouse" / "_staging").iterdir())


@pytest.mark.slow
def test_a_warehouse_file_damaged_outside_broadsheet_is_one_error_line(
    tmp_path: Path, sample_dir: Path
) -> None:
    warehouse = tmp_path / "warehouse"
    run_ingest([str(sample_dir)], str(warehouse))
    ledger = warehouse / "ledger" / "part-0.parquet"
    ledger.write_bytes(ledger.read_bytes()[:100])  # a copy cut short
    result = broadsheet("run", str(sample_dir), cwd=tmp_path, home=tmp_path / "prefect")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: Could not open Parquet input source '{ledger}'")
    assert lines[0].endswith("writes each file whole: restore it from a backup)")


def test_verify_exits_0_on_a_sound_warehouse_and_5_on_a_damaged_one(
    tmp_path: Path, sample_dir: Path
) -> None:
    warehouse = tmp_path / "warehouse"
    run_ingest([str(sample_dir)], str(warehouse))
    sound = broadsheet("verify", cwd=tmp_path, home=tmp_path / "prefect")
    assert sound.returncode == 0, sound.stderr
    assert sound.stdout.strip().splitlines()[-1] == f"All 8 checks passed on {warehouse}."
    ledger = warehouse / "ledger" / "part-0.parquet"
    shutil.copy(ledger, ledger.with_name("part-1.parquet"))
    damaged = broadsheet("verify", cwd=tmp_path, home=tmp_path / "prefect")
    assert damaged.returncode == 5
    assert re.search(r"^BROKEN \(23\) +one_ledger_row_per_path:", damaged.stdout, re.MULTILINE)
    assert damaged.stderr.strip() == (
        f"error: 1 of 8 checks failed on {warehouse}: its files were changed outside "
        "Broadsheet, or a bug broke them"
    )


@pytest.mark.slow
def test_a_rerun_with_nothing_to_read_skips_prefect_but_is_recorded(
    tmp_path: Path, sample_dir: Path
) -> None:
    inputs = tmp_path / "inputs"
    shutil.copytree(sample_dir, inputs)
    home = tmp_path / "prefect"

    first = broadsheet("run", str(inputs), cwd=tmp_path, home=home)
    again = broadsheet("run", str(inputs), cwd=tmp_path, home=home)
    assert _prefect_modules_imported_by_a_run(inputs, tmp_path, home) == []
    (inputs / "late.md").write_text(
        bare("Late story", "https://news.example/late", 1_704_067_200_000, "<p>Late.</p>"),
        encoding="utf-8",
    )
    third = broadsheet("run", str(inputs), cwd=tmp_path, home=home)

    for result in (first, again, third):
        assert result.returncode == 0, result.stderr
        assert not NOISE.search(result.stdout + result.stderr), result.stdout + result.stderr
    assert "starting Prefect and its server" in first.stdout
    assert "ran without starting Prefect" in again.stdout
    assert re.search(r"unchanged \(not read\)\s*│\s*23", again.stdout)
    assert "starting Prefect and its server" in third.stdout
    assert re.search(r"articles written\s*│\s*1\b", third.stdout)
    with sqlite3.connect(home / "prefect.db") as database:
        assert database.execute("SELECT count(*) FROM flow_run").fetchone() == (2,)
    runs = duckdb.execute(
        f"SELECT files_seen, unchanged FROM read_parquet('{tmp_path}/warehouse/runs/*.parquet') "
        "ORDER BY started_at"
    ).fetchall()
    assert runs == [(23, 0), (23, 23), (23, 23), (24, 23)]


def _prefect_modules_imported_by_a_run(inputs: Path, cwd: Path, home: Path) -> list[str]:
    """The Prefect modules ``broadsheet run`` imports in its own process (Python's import
    log on its stderr; the server it launches logs elsewhere)."""
    result = broadsheet(
        "run", str(inputs), cwd=cwd, home=home, environment={"PYTHONPROFILEIMPORTTIME": "1"}
    )
    assert result.returncode == 0, result.stderr
    assert "ran without starting Prefect" in result.stdout
    imported = re.findall(r"^import time:.*\|\s*(\S+)$", result.stderr, re.MULTILINE)
    assert "broadsheet.cli" in imported
    return [name for name in imported if name.split(".")[0] == "prefect"]


@pytest.mark.slow
def test_a_run_from_a_folder_with_files_named_like_the_servers_modules_still_starts_it(
    tmp_path: Path, sample_dir: Path
) -> None:
    """The temporary server's process does not import from the working directory, where a
    checkout or a script named ``prefect.py`` would take the place of what it imports."""
    for name in ("broadsheet/__init__.py", "broadsheet/prefect_server.py", "prefect.py"):
        shadow = tmp_path / name
        shadow.parent.mkdir(exist_ok=True)
        shadow.write_text("raise SystemExit(3)\n", encoding="utf-8")

    result = broadsheet(
        "run",
        str(sample_dir),
        "--warehouse",
        str(tmp_path / "warehouse"),
        cwd=tmp_path,
        home=tmp_path / "prefect",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"articles written\s*│\s*17\b", result.stdout), result.stdout


def test_only_a_run_on_its_own_temporary_prefect_server_may_skip_prefect(
    tmp_path: Path, sample_dir: Path
) -> None:
    warehouse = tmp_path / "warehouse"
    run_ingest([str(sample_dir)], str(warehouse))
    listing = discover([sample_dir])
    assert _nothing_to_read(listing, str(warehouse), own_server=True)
    assert not _nothing_to_read(listing, str(warehouse), own_server=False)
    assert not _nothing_to_read(listing, "s3://bucket/warehouse", own_server=True)
    assert not _nothing_to_read(None, str(warehouse), own_server=True)
    assert not _nothing_to_read(listing, str(tmp_path / "new-warehouse"), own_server=True)


@pytest.mark.parametrize("scale", ["0", "-1", "nan", "soon"])
def test_a_bad_time_limit_scale_exits_2_with_one_line(tmp_path: Path, scale: str) -> None:
    result = broadsheet(
        "run",
        cwd=tmp_path,
        home=tmp_path / "prefect",
        environment={TIME_LIMIT_SCALE_VARIABLE: scale},
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: BROADSHEET_TIME_LIMIT_SCALE must be a positive number, not '{scale}'"
    )
    assert not (tmp_path / "warehouse").exists()


def test_missing_input_path_exits_2_with_one_line(tmp_path: Path) -> None:
    result = broadsheet("run", str(tmp_path / "nope"), cwd=tmp_path, home=tmp_path / "prefect")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: input path does not exist: {tmp_path / 'nope'}"
    assert not (tmp_path / "warehouse").exists()


@pytest.mark.parametrize(
    ("arguments", "starts_server"),
    [
        (["run"], True),
        (["run", "archive", "--warehouse", "w", "--workers", "2"], True),
        (["run", "archive", "--help"], False),
        (["runs"], False),
        (["query", "SELECT 1"], False),
        (["serve", "--cron", "0 * * * *"], False),
        ([], False),
    ],
)
def test_the_entry_point_launches_a_server_early_only_for_a_run(
    arguments: list[str], starts_server: bool
) -> None:
    assert runs_ingest(arguments) is starts_server


def test_the_temporary_server_turns_off_services_a_one_run_server_needs_not() -> None:
    environment = temporary_server_environment({"PREFECT_HOME": "/somewhere"})
    assert {name: environment[name] for name in TEMPORARY_SERVER_SERVICES_OFF} == dict.fromkeys(
        TEMPORARY_SERVER_SERVICES_OFF, "false"
    )
    assert environment["PREFECT_HOME"] == "/somewhere"
    assert environment["PREFECT__SERVER_EPHEMERAL"] == "1"


def test_the_temporary_server_keeps_a_service_the_user_turned_on() -> None:
    kept = TEMPORARY_SERVER_SERVICES_OFF[0]
    environment = temporary_server_environment({kept: "true"})
    assert environment[kept] == "true"
    assert all(environment[name] == "false" for name in TEMPORARY_SERVER_SERVICES_OFF[1:])


def test_the_services_turned_off_are_named_as_prefect_names_them() -> None:
    """A Prefect release that renames a setting would silently turn the service back on."""
    from prefect.server.api import server  # noqa: F401  (registers every service class)
    from prefect.server.services.base import RunInEphemeralServers

    switches = {
        service.environment_variable_name() for service in RunInEphemeralServers.all_services()
    }
    assert set(TEMPORARY_SERVER_SERVICES_OFF) <= switches


def test_a_run_stopped_by_a_usage_error_stops_the_server_the_entry_point_launched(
    new_prefect_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["broadsheet", "run", "--workers", "-1"])
    launched: list[subprocess.Popen[bytes]] = []
    start = EarlyTemporaryServer.start

    def recording_start(server: EarlyTemporaryServer) -> None:
        start(server)
        if server._process is not None:
            launched.append(server._process)

    monkeypatch.setattr(EarlyTemporaryServer, "start", recording_start)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert len(launched) == 1
    assert launched[0].poll() is not None, "the server outlived the failed run"
    assert not RUN_SERVER.running
    assert os.environ.get("PREFECT_API_URL") is None


def test_unwritable_warehouse_exits_1_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = broadsheet(
        "run", "--warehouse", str(blocker / "warehouse"), cwd=tmp_path, home=tmp_path / "prefect"
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: cannot write to warehouse {blocker / 'warehouse'}: ")


_COMMANDS = {
    registered.name or registered.callback.__name__: registered.callback
    for registered in app.registered_commands
    if registered.callback is not None
}


@pytest.mark.parametrize("command", [None, *sorted(_COMMANDS)])
def test_every_command_has_help_whose_sentences_are_not_broken(
    tmp_path: Path, command: str | None
) -> None:
    """On a terminal wide enough, each paragraph of a command's docstring is one line of its
    help (and its first paragraph one line of the command list): Typer would keep the
    docstring's line breaks."""
    args = ("--help",) if command is None else (command, "--help")
    result = broadsheet(
        *args, cwd=tmp_path, home=tmp_path / "prefect", environment={"TERMINAL_WIDTH": "1000"}
    )
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
    lines = [" ".join(line.strip(" │").split()) for line in result.stdout.splitlines()]
    if command is None:
        paragraphs = [(function.__doc__ or "").split("\n\n")[0] for function in _COMMANDS.values()]
    else:
        paragraphs = (_COMMANDS[command].__doc__ or "").split("\n\n")
    assert paragraphs
    for paragraph in paragraphs:
        sentence = " ".join(paragraph.split())
        assert any(sentence in line for line in lines), (sentence, result.stdout)


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return children


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_prefect_server_started_by_run_dies_with_a_killed_cli(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    executable = Path(sys.executable).with_name("broadsheet")
    cli = subprocess.Popen(
        [str(executable), "run", "--warehouse", str(tmp_path / "warehouse")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    servers: list[int] = []
    while not servers and time.monotonic() < deadline:
        servers = [
            child for child in _children(cli.pid) if b"broadsheet.prefect_server" in _cmdline(child)
        ]
        time.sleep(0.05)
    assert servers, "the CLI started no Prefect server"
    cli.send_signal(signal.SIGKILL)
    cli.wait()
    status = Path(f"/proc/{servers[0]}/status")
    deadline = time.monotonic() + 20
    while _alive(status) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(status), "the Prefect server outlived the killed CLI"


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(status: Path) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        return "zombie" not in status.read_text()
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("module", FLOW_RUN_MODULES)
def test_every_module_preloaded_for_a_flow_run_exists_in_the_installed_prefect(
    module: str,
) -> None:
    # The preload skips a missing module quietly; this is where a Prefect upgrade that moved
    # one shows up.
    assert importlib.util.find_spec(module) is not None


def test_the_exit_handler_moves_every_object_out_of_the_collectors_reach() -> None:
    gc.unfreeze()
    try:
        skip_exit_collection()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def _default_sigint() -> None:
    """SIGINT as a terminal's foreground process has it: a shell starts background jobs (as
    this test may be) with SIGINT ignored, and their children inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stop", "options"),
    [
        (signal.SIGINT, ("--runner", "threads")),
        (signal.SIGTERM, ("--runner", "threads")),
        (signal.SIGINT, ("--batch-size", "2", "--workers", "2")),
    ],
    ids=["sigint-threads", "sigterm-threads", "sigint-worker-pool"],
)
def test_a_signal_ends_a_run_whose_parse_stalled_and_the_next_run_finishes(
    tmp_path: Path, stop: signal.Signals, options: tuple[str, ...]
) -> None:
    """The ``threads`` runner parses in the run's own process, where a stalled parse holds a
    thread for good; the ``processes`` runner in worker processes, one of which stalls.
    Ctrl-C or a scheduler's SIGTERM must still end the run, with one error line and no
    traceback, leave ``_parsing``, and the next run must parse in a (watched) worker process
    and write every file."""
    inputs = write_stories(tmp_path / "in", 4)
    home, warehouse = tmp_path / "prefect", tmp_path / "warehouse"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(home), HANG_VARIABLE: f"parse:{inputs / '2.md'}"}
    executable = Path(sys.executable).with_name("broadsheet")
    stalled = subprocess.Popen(
        [str(executable), "run", str(inputs), "-w", str(warehouse), *options],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )
    try:
        deadline = time.monotonic() + 180
        while not (warehouse / "_parsing").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (warehouse / "_parsing").exists(), "the run never started parsing"
        time.sleep(2)  # well inside the stalled parse
        stalled.send_signal(stop)
        _, stderr = stalled.communicate(timeout=60)
    finally:
        stalled.kill()
    assert stalled.returncode == 128 + stop, stderr
    assert stderr.strip().splitlines()[-1].startswith(f"error: stopped by {stop.name}: the next")
    assert "Traceback" not in stderr
    assert (warehouse / "_parsing").exists()
    after = broadsheet("run", str(inputs), "-w", str(warehouse), cwd=tmp_path, home=home)
    assert after.returncode == 0, after.stderr
    assert re.search(r"articles written\s*│\s*4", after.stdout)
    assert not (warehouse / "_parsing").exists()


def test_a_stop_signal_is_ctrl_c_or_the_sigterm_prefect_raised() -> None:
    from prefect.exceptions import TerminationSignal

    assert is_stop_signal(KeyboardInterrupt())
    assert is_stop_signal(TerminationSignal(signal.SIGTERM))
    assert not is_stop_signal(SystemExit(1))
    assert not is_stop_signal(ValueError("not a signal"))
