"""Prefect defaults for a quiet, serverless run. Applied before Prefect is first imported.

With no ``PREFECT_API_URL`` Prefect starts a temporary local server (ephemeral mode). Its
anonymous telemetry would try to reach the internet and log an error where there is none, and
one INFO line per task is noise on a CLI; both are turned down here unless the user set them.
Telemetry has two switches: the server's (``PREFECT_SERVER_ANALYTICS_ENABLED``) and the
client's (``DO_NOT_TRACK``, the cross-tool convention Prefect's SDK reads). Without the second,
a first run in an interactive terminal printed Prefect's telemetry notice above the run's
output.
"""

from __future__ import annotations

import os

QUIET_PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "WARNING",
}


def apply_quiet_prefect_defaults() -> None:
    """Set each quiet default that the environment does not already set."""
    for name, value in QUIET_PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)
