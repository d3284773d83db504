"""The memory allocators of the processes Broadsheet owns (the CLI and its workers).

Which allocator Arrow uses:

Arrow's C++ library picks its default allocator once, from ``ARROW_DEFAULT_MEMORY_POOL``,
when pyarrow is imported; the Parquet reader and writer and the compute kernels allocate
from it whatever pyarrow's own default is later set to. pyarrow's built-in choice, mimalloc,
keeps the memory a thread freed for its next allocations, so the flow's process held about
40 MB more after each wave of a run (measured: five waves of 20,000 files, all of the growth
in mimalloc's reserved region). jemalloc hands freed memory back, so the CLI chooses it, and
must do so before anything imports pyarrow: this module does not import it.

Handing freed memory back: a run's waves each allocate and free hundreds of megabytes, in
Arrow and in C's allocator, and both keep some of what was freed for later. Between waves the
pipeline asks both to return it (``release_free_memory``), so that the next wave starts lower
(measured: 45-54 MiB returned after each 100,000-file wave).

Large blocks of C's heap: glibc serves a block of at least its mmap threshold with a mapping
of its own, which goes back to the system when freed; but each time such a block is freed it
raises the threshold to that block's size (up to 32 MiB). The flow's process allocates and
frees many blocks of a megabyte and more each wave (which ones was not traced), so once large
ones had been freed, later ones were cut from the heap instead, where small objects allocated
between them pin the holes they leave. Its resident memory at the end of each wave's parse
grew: 177, 204, 219, 234 and 248 MiB in the five waves of a 500,000-file run. The CLI fixes
the threshold (``fix_malloc_mmap_threshold``), which also stops glibc from moving it: 174,
191, 199, 200 and 201 MiB in the same run (one run each).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"
JEMALLOC_CONF_VARIABLE = "JE_ARROW_MALLOC_CONF"
"""Options of the jemalloc that pyarrow bundles (its symbols carry the ``je_arrow_`` prefix),
read once, when it starts."""
RETURN_PAGES_SOON = "dirty_decay_ms:100,muzzy_decay_ms:100"
"""jemalloc options that give freed pages back to the system a tenth of a second after they
are freed, rather than over the next second (Arrow's own setting). Arrow's setting let a
run's process keep pages that Arrow had freed (measured, one run without Prefect, 100,000
files in 20,000-file waves: 134-190 MiB held between waves, against 104-113 MiB with pages
given back at once). Giving them back at once (0 ms) made Parquet encoding, the bulk of a
commit, 42-66% slower (each process's median pass against the other setting's): every
buffer freed was unmapped and faulted in again for the next one. A tenth of a second is as
fast as Arrow's setting (encoding the 91,925 articles of a synthetic 100,000-file run with
two threads, three passes in each of two processes: 0.71-0.93 s at 100 ms, 0.66-0.88 s at
1,000 ms, 1.03-1.42 s at 0 ms)."""


def prefer_jemalloc() -> bool:
    """Choose jemalloc for Arrow in this process and the processes it starts, unless the user
    chose (``ARROW_DEFAULT_MEMORY_POOL``) or pyarrow was built without it, and have it give
    freed pages back soon (``RETURN_PAGES_SOON``) unless the user set its options
    (``JE_ARROW_MALLOC_CONF``). Returns whether it chose. Called after pyarrow's import, it
    still sets pyarrow's own default and the choice of processes started later, but Arrow's
    C++ default and this process's jemalloc options stay what they were."""
    if os.environ.get(ARROW_POOL_VARIABLE) or not pyarrow_has_jemalloc():
        return False
    os.environ[ARROW_POOL_VARIABLE] = "jemalloc"
    os.environ.setdefault(JEMALLOC_CONF_VARIABLE, RETURN_PAGES_SOON)
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


MMAP_THRESHOLD_BYTES = 1 << 20
"""Blocks of C's heap from this size up get a mapping of their own (``M_MMAP_THRESHOLD``),
given back when freed. A 500,000-file run took 78.7 s with 1 MiB and 81.5 s with 128 KiB,
glibc's starting value (one run each); the flow's process ended the last wave's parse at 201
and 200 MiB."""
_M_MMAP_THRESHOLD = -3
"""``mallopt``'s parameter number for the threshold, from glibc's ``malloc.h``."""


def fix_malloc_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold at ``MMAP_THRESHOLD_BYTES`` in this process, unless the user
    set it (``MALLOC_MMAP_THRESHOLD_``, or ``glibc.malloc.mmap_threshold`` in
    ``GLIBC_TUNABLES``) or the C library is not glibc. Returns whether it did. A fixed
    threshold no longer follows the largest block freed, so large blocks keep going back to
    the system when freed instead of fragmenting the heap (see the module docstring)."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or "glibc.malloc.mmap_threshold" in tunables:
        return False
    mallopt = _glibc_function("mallopt")
    return mallopt is not None and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1


def release_free_memory() -> None:
    """Return to the operating system the memory this process has freed but its allocators
    still hold: Arrow's pool, and with glibc, C's heap (``malloc_trim``; 20 ms measured on a
    fragmented 240 MiB heap). Call it where a large working set has just been dropped."""
    if "pyarrow" in sys.modules:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    trim = glibc_malloc_trim()
    if trim is not None:
        trim(0)


def glibc_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None on a C library without it (musl, macOS)."""
    return _glibc_function("malloc_trim")


@cache
def _glibc_function(name: str) -> Callable[..., int] | None:
    """A function of glibc's that takes and returns C ints, or None on a C library without it
    (musl, macOS). Looked up by a name only glibc has: musl has a ``mallopt`` that does
    nothing."""
    try:
        library = ctypes.CDLL(None)
        library.gnu_get_libc_version  # noqa: B018 (only glibc has it)
        function: Callable[..., int] = getattr(library, name)
        return function
    except (AttributeError, OSError):
        return None
