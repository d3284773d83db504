"""A local Prefect server for ``broadsheet serve`` when none is configured.

Prefect's ephemeral mode runs flows but has no scheduler, so a served deployment would never
fire. With no ``PREFECT_API_URL`` set, ``serve`` therefore starts ``prefect server start`` on
a free loopback port for as long as it serves, and points Prefect at it; its UI is then at
the printed address. With ``PREFECT_API_URL`` set, that server is used and nothing starts.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

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
