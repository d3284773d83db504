"""The ``broadsheet`` command's entry point. For ``broadsheet run`` it launches Prefect's
temporary server (``broadsheet.prefect_server.RUN_SERVER``) before anything else is imported,
then hands over to the CLI (``broadsheet.cli``).

The server's start-up is most of a short run's wall time, and the CLI's own imports (Typer,
Rich, the command modules) took about 0.2 s before ``run`` could launch it."""

from __future__ import annotations

import sys


def main() -> None:
    """Run the ``broadsheet`` command line."""
    from broadsheet.prefect_server import RUN_SERVER

    if runs_ingest(sys.argv[1:]):
        from broadsheet.prefect_env import apply_quiet_prefect_defaults

        apply_quiet_prefect_defaults()
        RUN_SERVER.start()
    from broadsheet.cli import app

    try:
        app()
    finally:
        RUN_SERVER.stop()  # when ``run`` never started (a usage error), nothing else would


def runs_ingest(arguments: list[str]) -> bool:
    """Whether the command line is a ``run`` that may ingest (not its ``--help``)."""
    return arguments[:1] == ["run"] and "--help" not in arguments
