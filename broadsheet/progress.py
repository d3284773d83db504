"""A hook through which the CLI follows a run's parse batches (for its progress bar).

Set by the CLI around one call of the flow; ``None`` (the default) costs nothing. A plain
module-level listener rather than a flow parameter: it is a live callback, not data Prefect
should record or serialise.
"""

from __future__ import annotations

from collections.abc import Callable

BatchListener = Callable[[int, int], None]
"""Called with (batches done, batches in total)."""

_listener: BatchListener | None = None


def set_batch_listener(listener: BatchListener | None) -> None:
    """Install (or remove, with None) the listener."""
    global _listener
    _listener = listener


def batch_done(done: int, total: int) -> None:
    """Tell the listener, if any, that ``done`` of ``total`` batches have finished."""
    if _listener is not None:
        _listener(done, total)
