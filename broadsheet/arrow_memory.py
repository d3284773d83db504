"""Which allocator Arrow uses in the processes Broadsheet owns (the CLI and its workers).

Arrow's C++ library picks its default allocator once, from ``ARROW_DEFAULT_MEMORY_POOL``,
when pyarrow is imported; the Parquet reader and writer and the compute kernels allocate
from it whatever pyarrow's own default is later set to. pyarrow's built-in choice, mimalloc,
keeps the memory a thread freed for its next allocations, so the flow's process held about
40 MB more after each wave of a run (measured: five waves of 20,000 files, all of the growth
in mimalloc's reserved region). jemalloc hands freed memory back, so the CLI chooses it, and
must do so before anything imports pyarrow: this module does not import it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"


def prefer_jemalloc() -> bool:
    """Choose jemalloc for Arrow in this process and the processes it starts, unless the user
    chose (``ARROW_DEFAULT_MEMORY_POOL``) or pyarrow was built without it. Returns whether it
    chose. Called after pyarrow's import, it still sets pyarrow's own default and the choice
    of processes started later, but Arrow's C++ default stays what it was."""
    if os.environ.get(ARROW_POOL_VARIABLE) or not pyarrow_has_jemalloc():
        return False
    os.environ[ARROW_POOL_VARIABLE] = "jemalloc"
    if "pyarrow" in sys.modules:
        import pyarrow as pa

        pa.set_memory_pool(pa.jemalloc_memory_pool())
    return True


def pyarrow_has_jemalloc() -> bool:
    """Whether the installed pyarrow was built with jemalloc, read from the build
    configuration it ships (``arrow/util/config.h``) without importing it."""
    spec = importlib.util.find_spec("pyarrow")
    if spec is None or not spec.submodule_search_locations:
        return False
    for location in spec.submodule_search_locations:
        config = Path(location) / "include" / "arrow" / "util" / "config.h"
        try:
            text = config.read_text(encoding="utf-8")
        except OSError:
            continue
        return "#define ARROW_JEMALLOC\n" in text
    return False
