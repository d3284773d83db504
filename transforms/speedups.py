"""The optional C speed-ups (``transforms._speedups``) and the switch that turns them off.

Installing from source compiles ``transforms/_speedups.c`` where a C compiler exists; without
one, installation goes on and every transform runs its pure-Python twin, which gives the same
output (the test suite checks both). ``BROADSHEET_PURE_PYTHON=1`` uses the Python code even
where the extension is built, to compare the two or to rule the extension out.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

PURE_PYTHON_VARIABLE = "BROADSHEET_PURE_PYTHON"

_built: ModuleType | None
try:
    _built = importlib.import_module("transforms._speedups")
except ImportError:
    _built = None

BUILT = _built is not None
"""Whether the extension was compiled and imports."""

ENABLED = BUILT and os.environ.get(PURE_PYTHON_VARIABLE, "").strip().lower() not in (
    "1",
    "true",
    "yes",
)
"""Whether transforms use it in this process."""


def module() -> ModuleType | None:
    """``transforms._speedups`` when it is built and enabled, else None."""
    return _built if ENABLED else None
