"""Reading inputs: find archive files under the given paths and read their bytes.

Discovery is deterministic: paths in the order given, each directory walked recursively in
sorted order. Hidden entries, non-regular files, symlinked directories and repeats of a file
already listed are not read; each is returned as a ``SkippedPath`` so the run can record it.
A path may also be an object-store URL (``s3://bucket/prefix``): every object under the prefix
is listed, in key order, with the same hidden and repeat rules.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import pyarrow as pa

from broadsheet import object_store
from broadsheet.pickling import pickled_by_fields
from schemas import INPUT_FILES_SCHEMA


class InputPathError(Exception):
    """A path given on the command line does not exist. Not retryable: fix the arguments."""

    retryable = False


class SkipReason(StrEnum):
    """Stable codes stored in ``skips.reason``."""

    HIDDEN = "hidden"
    NOT_REGULAR_FILE = "not_regular_file"
    SYMLINKED_DIRECTORY = "symlinked_directory"
    DUPLICATE_PATH = "duplicate_path"
    UNREADABLE_DIRECTORY = "unreadable_directory"
    UNDECODABLE_NAME = "undecodable_name"


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class InputFile:
    """A regular file to parse, with the stat facts later runs compare against."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class SkippedPath:
    """A path that was found but deliberately not read."""

    path: str
    reason: SkipReason
    detail: str


_CHUNK_FILES = 65_536
"""Files discovery holds as Python objects before it packs them into Arrow columns."""


class _FileColumns:
    """Discovered files packed into Arrow chunks as they are found: about 100 bytes a file
    instead of about 300 as Python objects, so an archive of millions of files fits."""

    def __init__(self) -> None:
        self._chunks: list[pa.RecordBatch] = []
        self._paths: list[str] = []
        self._sizes = array("q")
        self._mtimes = array("q")

    def append(self, path: str, size: int, mtime_ns: int) -> None:
        self._paths.append(path)
        self._sizes.append(size)
        self._mtimes.append(mtime_ns)
        if len(self._paths) >= _CHUNK_FILES:
            self._pack()

    def _pack(self) -> None:
        if self._paths:
            self._chunks.append(
                pa.record_batch(
                    [
                        pa.array(self._paths, pa.string()),
                        pa.array(self._sizes),
                        pa.array(self._mtimes),
                    ],
                    schema=INPUT_FILES_SCHEMA,
                )
            )
        self._paths, self._sizes, self._mtimes = [], array("q"), array("q")

    def table(self) -> pa.Table:
        self._pack()
        return pa.Table.from_batches(self._chunks, schema=INPUT_FILES_SCHEMA)


@dataclass(slots=True)
class Discovery:
    """Every path found under the inputs: files to read (columns ``INPUT_FILES_SCHEMA``, in
    discovery order) and paths skipped."""

    files: pa.Table
    skipped: list[SkippedPath] = field(default_factory=list)

    def input_files(self) -> Iterator[InputFile]:
        """The files to read as ``InputFile``s (for small discoveries and tests)."""
        for batch in self.files.to_batches():
            columns = batch.to_pydict()
            yield from map(InputFile, columns["path"], columns["size"], columns["mtime_ns"])


def discover(paths: Sequence[Path | str]) -> Discovery:
    """Find the archive files under ``paths``; raise ``InputPathError`` if one does not exist."""
    missing = [str(path) for path in paths if not _exists(str(path))]
    if missing:
        raise InputPathError(f"input path does not exist: {', '.join(missing)}")
    skipped: list[SkippedPath] = []
    files = _FileColumns()
    seen: set[int] = set()
    seen_urls: set[str] = set()
    for given in paths:
        if object_store.is_remote(str(given)):
            _list_remote(str(given), files, skipped, seen_urls)
            continue
        for entry, entry_stat in _walk(os.path.abspath(given), skipped):
            identity = entry_stat.st_dev << 64 | entry_stat.st_ino
            if identity in seen:
                skipped.append(
                    SkippedPath(
                        entry,
                        SkipReason.DUPLICATE_PATH,
                        "the same file was already reached through another input path",
                    )
                )
                continue
            seen.add(identity)
            files.append(entry, entry_stat.st_size, entry_stat.st_mtime_ns)
    return Discovery(files.table(), skipped)


PREFETCH_MAX_AGE_SECONDS = 60.0
"""A prefetched listing older than this is not used: the run lists its inputs itself."""


@dataclass(frozen=True, slots=True)
class _Prefetch:
    paths: tuple[str, ...]
    discovery: Discovery
    made_at: float


_prefetched: _Prefetch | None = None
_prefetch_lock = threading.Lock()


def prefetch_discovery(paths: Sequence[str]) -> Discovery | None:
    """List the files under local ``paths`` now, for the next run in this process to take;
    return the listing (None where it is left to the run).

    The CLI calls this while it waits for Prefect's temporary server to start, so a re-run's
    listing (about 0.5 s for 100,000 files) overlaps that wait instead of following it. A run
    then lists its inputs as of a few seconds before it started, which is no different from a
    file arriving just after a listing: the next run reads it. Object-store paths and paths
    that cannot be listed are left to the run, which reports them.
    """
    global _prefetched
    if any(object_store.is_remote(str(path)) for path in paths):
        return None
    try:
        discovery = discover(paths)
    except (InputPathError, OSError):
        return None
    with _prefetch_lock:
        _prefetched = _Prefetch(tuple(map(str, paths)), discovery, time.monotonic())
    return discovery


def discover_for_run(paths: Sequence[Path | str]) -> Discovery:
    """What ``discover(paths)`` finds, taken from a prefetch of exactly these paths made in
    the last ``PREFETCH_MAX_AGE_SECONDS`` when there is one (each prefetch is used once)."""
    global _prefetched
    with _prefetch_lock:
        prefetched, _prefetched = _prefetched, None
    if (
        prefetched is not None
        and prefetched.paths == tuple(map(str, paths))
        and time.monotonic() - prefetched.made_at <= PREFETCH_MAX_AGE_SECONDS
    ):
        return prefetched.discovery
    return discover(paths)


def _exists(path: str) -> bool:
    if object_store.is_remote(path):
        return object_store.exists(path)
    return os.path.lexists(path)


def _list_remote(
    prefix: str, files: _FileColumns, skipped: list[SkippedPath], seen: set[str]
) -> None:
    """The objects under an object-store prefix, with the same skip rules as a directory."""
    base = prefix.rstrip("/")
    for entry in object_store.list_objects(prefix):
        relative = entry.url[len(base) :].strip("/")
        if any(part.startswith(".") for part in relative.split("/")):
            skipped.append(
                SkippedPath(entry.url, SkipReason.HIDDEN, "hidden entry (name starts with '.')")
            )
        elif entry.url in seen:
            skipped.append(
                SkippedPath(
                    entry.url,
                    SkipReason.DUPLICATE_PATH,
                    "the same object was already reached through another input path",
                )
            )
        else:
            seen.add(entry.url)
            files.append(entry.url, entry.size, entry.mtime_ns)


def _walk(top: str, skipped: list[SkippedPath]) -> Iterator[tuple[str, os.stat_result]]:
    """Regular files under ``top`` in sorted depth-first order, recording what is skipped.
    Iterative, on plain strings: archives hold millions of files."""
    pending = [(top, True)]
    while pending:
        path, is_top = pending.pop()
        name = path if is_top else os.path.basename(path)
        if not is_top and name.startswith("."):
            skipped.append(
                SkippedPath(path, SkipReason.HIDDEN, "hidden entry (name starts with '.')")
            )
            continue
        if not _is_utf8(name):
            skipped.append(
                SkippedPath(
                    printable_path(path),
                    SkipReason.UNDECODABLE_NAME,
                    "name is not valid UTF-8 (its other bytes are shown as \\xNN escapes) "
                    "and Parquet strings must be: rename it to ingest it",
                )
            )
            continue
        try:
            entry_stat = os.stat(path)
        except OSError as error:
            skipped.append(
                SkippedPath(path, SkipReason.NOT_REGULAR_FILE, f"cannot stat: {error.strerror}")
            )
            continue
        if stat.S_ISREG(entry_stat.st_mode):
            yield path, entry_stat
        elif not stat.S_ISDIR(entry_stat.st_mode):
            skipped.append(
                SkippedPath(
                    path,
                    SkipReason.NOT_REGULAR_FILE,
                    "not a regular file (device, socket or FIFO)",
                )
            )
        elif not is_top and os.path.islink(path):
            skipped.append(
                SkippedPath(
                    path,
                    SkipReason.SYMLINKED_DIRECTORY,
                    "symlinked directory not followed (avoids cycles and double counting)",
                )
            )
        else:
            try:
                children = sorted(os.listdir(path))
            except OSError as error:
                skipped.append(
                    SkippedPath(
                        path,
                        SkipReason.UNREADABLE_DIRECTORY,
                        f"cannot list directory: {error.strerror}",
                    )
                )
                continue
            pending.extend((os.path.join(path, child), False) for child in reversed(children))


def _is_utf8(name: str) -> bool:
    """Whether a name from the filesystem is valid UTF-8, as every path a table records must
    be: Python gives the bytes of one that is not as lone surrogates (``surrogateescape``)."""
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable_path(path: str) -> str:
    """``path`` as valid UTF-8, with the bytes that are not shown as ``\\xNN`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def read_input(path: str) -> bytes:
    """The bytes of one input file or object."""
    if object_store.is_remote(path):
        try:
            return object_store.read_bytes(path)
        except object_store.ObjectStoreError as error:
            raise OSError(str(error)) from error
    return _read_local_file(path)


_READ_CHUNK_BYTES = 1 << 18


def _read_local_file(path: str) -> bytes:
    """A local file's bytes, read to its end with bare ``os.read`` calls: a buffered file
    object costs more than the read itself for the few kilobytes of an article (measured:
    8 against 20 microseconds a file, 20,000 synthetic files in the page cache)."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        chunks = []
        while chunk := os.read(descriptor, _READ_CHUNK_BYTES):
            chunks.append(chunk)
    finally:
        os.close(descriptor)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
