"""Named kill points for the crash-safety tests.

When the environment variable ``BROADSHEET_KILL_AT`` names a point, the process SIGKILLs
itself on reaching it, exactly as an OOM killer or a ``kill -9`` would stop a run there. When
``BROADSHEET_DISK_FULL_AT`` names it, the point raises the ``OSError`` of a full disk instead;
when ``BROADSHEET_HANG_AT`` does, the process sleeps there for good, as a parse that never ends.
Unset (always, outside the tests) a kill point costs two dictionary lookups.
"""

from __future__ import annotations

import errno
import os
import signal
import time

KILL_POINT_VARIABLE = "BROADSHEET_KILL_AT"
DISK_FULL_VARIABLE = "BROADSHEET_DISK_FULL_AT"
HANG_VARIABLE = "BROADSHEET_HANG_AT"


def armed_kill_point(prefix: str) -> str | None:
    """The point ``BROADSHEET_KILL_AT`` (or ``BROADSHEET_HANG_AT``) names when it starts with
    ``prefix``, else None: a loop with a point per item looks the variables up once, not once
    an item."""
    for variable in (KILL_POINT_VARIABLE, HANG_VARIABLE):
        name = os.environ.get(variable)
        if name is not None and name.startswith(prefix):
            return name
    return None


def kill_point(name: str) -> None:
    """SIGKILL this process if ``BROADSHEET_KILL_AT`` is ``name``; raise a full disk's
    ``OSError`` if ``BROADSHEET_DISK_FULL_AT`` is; never return if ``BROADSHEET_HANG_AT`` is."""
    if os.environ.get(KILL_POINT_VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    while os.environ.get(HANG_VARIABLE) == name:
        time.sleep(60)
    if os.environ.get(DISK_FULL_VARIABLE) == name:
        raise OSError(errno.ENOSPC, f"No space left on device (injected at {name})")
