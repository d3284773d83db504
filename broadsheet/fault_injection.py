"""Named kill points for the crash-safety tests.

When the environment variable ``BROADSHEET_KILL_AT`` names a point, the process SIGKILLs
itself on reaching it, exactly as an OOM killer or a ``kill -9`` would stop a run there. When
``BROADSHEET_DISK_FULL_AT`` names it, the point raises the ``OSError`` of a full disk instead.
Unset (always, outside the tests) a kill point costs two dictionary lookups.
"""

from __future__ import annotations

import errno
import os
import signal

KILL_POINT_VARIABLE = "BROADSHEET_KILL_AT"
DISK_FULL_VARIABLE = "BROADSHEET_DISK_FULL_AT"


def armed_kill_point(prefix: str) -> str | None:
    """The kill point ``BROADSHEET_KILL_AT`` names when it starts with ``prefix``, else None:
    a loop with a point per item looks the variable up once, not once an item."""
    name = os.environ.get(KILL_POINT_VARIABLE)
    return name if name is not None and name.startswith(prefix) else None


def kill_point(name: str) -> None:
    """SIGKILL this process if ``BROADSHEET_KILL_AT`` is ``name``; raise a full disk's
    ``OSError`` if ``BROADSHEET_DISK_FULL_AT`` is."""
    if os.environ.get(KILL_POINT_VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(DISK_FULL_VARIABLE) == name:
        raise OSError(errno.ENOSPC, f"No space left on device (injected at {name})")
