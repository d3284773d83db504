"""End a run promptly on Ctrl-C (SIGINT) or SIGTERM, even while a parse holds a thread for good.

A parse that stalls in C code (see ``broadsheet.worker_crashes``) cannot be interrupted, and
both Python and Prefect wait for every thread of a task runner on the way out: without this,
a run stopped during such a parse would never end. Stopping loses nothing: a run commits
only after parsing, and the next run completes or discards whatever a stopped one left.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import NoReturn

EXIT_STOPPED_BY_SIGNAL = 128
"""Plus the signal's number: 130 for Ctrl-C's SIGINT, 143 for SIGTERM, as shells report."""

GRACE_SECONDS = 5.0
"""How long the run's own clean-up may take after a stop signal before the process ends."""

_end_process_when_stopped = False


def is_stop_signal(error: BaseException) -> bool:
    """Whether ``error`` is Ctrl-C (``KeyboardInterrupt``) or a SIGTERM that Prefect's flow
    engine raised as ``TerminationSignal``. Prefect is not imported for the check: a process
    that has not imported it cannot have raised its exception, and ``broadsheet run`` with
    nothing to read skips importing it (0.8 s of a no-op re-run's 1.4 s)."""
    if isinstance(error, KeyboardInterrupt):
        return True
    exceptions = sys.modules.get("prefect.exceptions")
    return exceptions is not None and isinstance(error, exceptions.TerminationSignal)


def signal_number(stop: BaseException) -> int:
    """The signal behind ``stop``: Prefect's ``TerminationSignal`` carries it; a
    ``KeyboardInterrupt`` is Ctrl-C's SIGINT."""
    number = getattr(stop, "signal", None)
    return number if isinstance(number, int) else signal.SIGINT


def stopped_message(signum: int) -> str:
    """The one error line a stopped run ends with."""
    return (
        f"stopped by {signal.Signals(signum).name}: the next run completes or discards what "
        "this one left and, if this one was parsing, parses in a watched worker process"
    )


def exit_now(message: str, code: int) -> NoReturn:
    """Print ``message`` as an error line and end the process at once, without waiting for
    its threads."""
    sys.stdout.flush()
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    os._exit(code)


def end_process_when_stopped() -> None:
    """Let ``end_after_grace`` end this process: for the CLI, whose process is the run's. A
    program that calls the flow itself (a notebook, a test) keeps its process."""
    global _end_process_when_stopped
    _end_process_when_stopped = True


def end_after_grace(signum: int) -> None:
    """End the process ``GRACE_SECONDS`` from now, from a daemon thread, unless it has ended
    by then: for the clean-up that waits for a thread held by a stalled parse. Only after
    ``end_process_when_stopped``."""
    if not _end_process_when_stopped:
        return

    def end() -> None:
        time.sleep(GRACE_SECONDS)
        exit_now(stopped_message(signum), EXIT_STOPPED_BY_SIGNAL + signum)

    threading.Thread(target=end, name="broadsheet-stop", daemon=True).start()
