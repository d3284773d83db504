"""A local Prefect server for ``broadsheet serve`` when none is configured.

Prefect's ephemeral mode runs flows but has no scheduler, so a served deployment would never
fire. With no ``PREFECT_API_URL`` set, ``serve`` therefore starts ``prefect server start`` on
a free loopback port for as long as it serves, and points Prefect at it; its UI is then at
the printed address (a new database is created first: ``migrate_a_new_database``). With
``PREFECT_API_URL`` set, that server is used and nothing starts.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

STARTUP_TIMEOUT_SECONDS = 90.0


class PrefectServerError(Exception):
    """The local Prefect server did not start. Retryable: it may be a slow machine."""

    retryable = True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def prefect_home() -> Path:
    """Prefect's home folder: ``PREFECT_HOME``, else Prefect's default ``~/.prefect``."""
    return Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect")).expanduser()


DATABASE_URL_VARIABLES = (
    "PREFECT_SERVER_DATABASE_CONNECTION_URL",
    "PREFECT_API_DATABASE_CONNECTION_URL",
)


def migrate_a_new_database(log: IO[bytes]) -> None:
    """Create Prefect's database with ``broadsheet.prefect_database`` (in a process of its
    own, since it imports Prefect's server) when none is where Prefect keeps it by default:
    ``prefect server start`` would spend 16-21 s migrating a new one through its async driver.
    A database that exists is left to the server, which migrates it if it is behind, so a
    later start costs nothing more."""
    if any(name in os.environ for name in DATABASE_URL_VARIABLES):
        return
    if (prefect_home() / "prefect.db").exists():
        return
    with contextlib.suppress(subprocess.TimeoutExpired):  # the server then migrates
        subprocess.run(
            [sys.executable, "-P", "-m", "broadsheet.prefect_database"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=STARTUP_TIMEOUT_SECONDS,
            check=False,
        )


@contextlib.contextmanager
def prefect_api(log_file: Path) -> Iterator[str]:
    """Yield the Prefect API URL to use, starting a local server if none is configured."""
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        yield configured
        return
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    executable = Path(sys.executable).with_name("prefect")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        migrate_a_new_database(log)
        server = subprocess.Popen(
            [str(executable), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
            while not _healthy(url):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise PrefectServerError(
                        f"the local Prefect server did not start; see {log_file}"
                    )
                time.sleep(0.5)
            os.environ["PREFECT_API_URL"] = url
            yield url
        finally:
            os.environ.pop("PREFECT_API_URL", None)
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


TEMPORARY_SERVER_SERVICES_OFF = (
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED",
    "PREFECT_API_EVENTS_STREAM_OUT_ENABLED",
)
"""Services of Prefect's ephemeral set that a server living for one run has no use for: the
automation triggers and their actions (automations belong on a lasting server, which
``PREFECT_API_URL`` selects), and the stream of events to websocket subscribers (nothing can
subscribe to a server on a random port that dies with the run). Starting them was about a
quarter of the server's start-up (measured: 6.2 s to the first answer with them, 4.7 s
without, medians of 4 alternating). A user who sets one of these variables keeps it."""


def temporary_server_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of the temporary server's process: ``environ``, Prefect's own flags
    for an ephemeral server without UI, and ``TEMPORARY_SERVER_SERVICES_OFF`` turned off
    unless ``environ`` sets them."""
    return {
        **{name: "false" for name in TEMPORARY_SERVER_SERVICES_OFF},
        **environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }


class EarlyTemporaryServer:
    """Prefect's temporary API server for one ``broadsheet run``, started before Prefect is
    imported so that its start-up (seconds) overlaps the CLI's own imports.

    It is the server Prefect's ephemeral mode would start (uvicorn serving Prefect's API app,
    no UI, the ephemeral set of services, the database under ``PREFECT_HOME``), only started
    earlier, without the services a one-run server has no use for
    (``TEMPORARY_SERVER_SERVICES_OFF``), and with Python's garbage collector off while it
    imports (``serve_api``).
    Prefect reads ``PREFECT_API_URL`` when it is imported, so ``start`` sets it at once;
    ``wait_ready`` then waits for the server to answer, and raises
    ``PrefectServerError`` if it never does.
    """

    def __init__(self) -> None:
        self.url: str | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """Whether this CLI started the server (no Prefect API was configured)."""
        return self._process is not None

    def start(self) -> None:
        """Launch the server unless it runs already, a Prefect API is configured or ephemeral
        mode is off."""
        if self._process is not None:
            return
        ephemeral = os.environ.get("PREFECT_SERVER_EPHEMERAL_ENABLED", "true").lower()
        if os.environ.get("PREFECT_API_URL") or ephemeral in ("0", "false"):
            return
        port = _free_port()
        self._process = subprocess.Popen(
            # -P: not the working directory first on the path, where a folder or file named
            # like a module (``broadsheet``, ``prefect``) would be imported instead
            [sys.executable, "-P", "-m", "broadsheet.prefect_server", str(port)],
            env=temporary_server_environment(os.environ),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_stop_with_parent if sys.platform == "linux" else None,
        )
        self.url = f"http://127.0.0.1:{port}/api"
        os.environ["PREFECT_API_URL"] = self.url
        os.environ.setdefault("PREFECT_UI_URL", "")  # no UI: no "View at" link to a dead page

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        """Return once the server answers its health check."""
        if self._process is None or self.url is None:
            return
        deadline = time.monotonic() + timeout
        while not _healthy(self.url):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise PrefectServerError(
                    "Prefect's temporary API server did not start; run again, or set "
                    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS or PREFECT_API_URL"
                )
            time.sleep(0.05)

    @contextlib.contextmanager
    def run_settings(self) -> Iterator[None]:
        """Prefect settings for a flow run on this server: no flow-run heartbeats. They let a
        long-lived server mark runs whose process died as crashed; this server dies with the
        run's process, so they would only delay the end of every run by up to a second
        (Prefect joins their thread, which sleeps in one-second steps)."""
        if self._process is None:
            yield
            return
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield

    def stop(self) -> None:
        """Stop the server (if it was started) and forget its URL."""
        if self._process is None:
            return
        _drain_prefect_queues()
        if os.environ.get("PREFECT_API_URL") == self.url:
            os.environ.pop("PREFECT_API_URL")
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
        self.url = None


RUN_SERVER = EarlyTemporaryServer()
"""The temporary server of this process's ``broadsheet run``: launched by the command's entry
point (``broadsheet.entry_point``) before the CLI is imported, else by ``run`` itself."""


FLOW_RUN_MODULES = (
    "prefect.flow_engine",
    "prefect.task_engine",
    "prefect.utilities.visualization",
    "fastapi.encoders",
)
"""Modules Prefect imports only when a flow is first called (measured: about 0.2 s)."""


def preload_flow_run_modules() -> None:
    """Import what Prefect would import at the start of the first flow run. Called while the
    temporary server starts (its start-up is the longer wait), it takes that time off the
    run's critical path. A module a later Prefect no longer has is skipped."""
    for name in FLOW_RUN_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _drain_prefect_queues() -> None:
    """Send the logs and events Prefect still holds to the server before it stops (Prefect
    would otherwise try at exit, find no server, and print an error)."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        service.drain_all(timeout=5)


def _stop_with_parent() -> None:
    """In the server's process, before it runs: have Linux send it SIGTERM when the CLI dies,
    even by SIGKILL, so that no server outlives its run. (Runs before any thread exists.)"""
    import ctypes
    import signal

    set_parent_death_signal = 1  # PR_SET_PDEATHSIG
    ctypes.CDLL(None, use_errno=True).prctl(set_parent_death_signal, signal.SIGTERM)


def serve_api(port: int) -> None:
    """Serve Prefect's API app (ephemeral settings come from the environment) on loopback
    ``port`` until stopped: the temporary server's process.

    Python's cyclic garbage collector is off until the server has started (Prefect's server
    modules imported, the app built, its lifespan run), then what start-up made is frozen out
    of its reach: start-up allocates hundreds of thousands of long-lived objects, and
    collecting while they pile up found nothing to free (measured: importing the server took
    3.9 s instead of 4.8 s, medians of 3). A new or outdated SQLite database is migrated
    first, faster than the server would (``broadsheet.prefect_database``)."""
    import gc

    gc.disable()
    import uvicorn
    from prefect.server.api.server import create_app

    from broadsheet.prefect_database import migrate_sqlite_database

    migrate_sqlite_database()

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            gc.freeze()
            gc.enable()

    config = uvicorn.Config(
        create_app(), host="127.0.0.1", port=port, log_level="error", lifespan="on"
    )
    _Server(config).run()


if __name__ == "__main__":
    serve_api(int(sys.argv[1]))
