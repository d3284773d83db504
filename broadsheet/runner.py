"""Where parse tasks run: the choices of ``broadsheet run --runner`` (light: no Prefect import)."""

from __future__ import annotations

import os
from enum import StrEnum


class Runner(StrEnum):
    """Where parse tasks run."""

    PROCESSES = "processes"
    """A pool of worker processes on this machine, one a core by default."""
    THREADS = "threads"
    """Threads of the flow's own process (one interpreter: parsing shares its GIL)."""
    DASK = "dask"
    """A Dask cluster, through prefect-dask's ``DaskTaskRunner``."""


def default_workers() -> int:
    """One worker a core this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
