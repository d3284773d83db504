"""Reading inputs: find archive files under the given paths and read their bytes.

Discovery is deterministic: paths in the order given, each directory walked recursively in
sorted order. Hidden entries, non-regular files, symlinked directories and repeats of a file
already listed are not read; each is returned as a ``SkippedPath`` so the run can record it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


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


@dataclass(slots=True)
class Discovery:
    """Every path found under the inputs: files to read and paths skipped."""

    files: list[InputFile] = field(default_factory=list)
    skipped: list[SkippedPath] = field(default_factory=list)


def discover(paths: Sequence[Path | str]) -> Discovery:
    """Find the archive files under ``paths``; raise ``InputPathError`` if one does not exist."""
    missing = [str(path) for path in paths if not os.path.lexists(path)]
    if missing:
        raise InputPathError(f"input path does not exist: {', '.join(missing)}")
    discovery = Discovery()
    seen: set[tuple[int, int]] = set()
    for given in paths:
        for entry, entry_stat in _walk(Path(os.path.abspath(given)), discovery, top=True):
            identity = (entry_stat.st_dev, entry_stat.st_ino)
            if identity in seen:
                discovery.skipped.append(
                    SkippedPath(
                        str(entry),
                        SkipReason.DUPLICATE_PATH,
                        "the same file was already reached through another input path",
                    )
                )
                continue
            seen.add(identity)
            discovery.files.append(
                InputFile(str(entry), entry_stat.st_size, entry_stat.st_mtime_ns)
            )
    return discovery


def _walk(path: Path, discovery: Discovery, *, top: bool) -> Iterator[tuple[Path, os.stat_result]]:
    if not top and path.name.startswith("."):
        discovery.skipped.append(
            SkippedPath(str(path), SkipReason.HIDDEN, "hidden entry (name starts with '.')")
        )
        return
    try:
        entry_stat = path.stat()
    except OSError as error:
        discovery.skipped.append(
            SkippedPath(str(path), SkipReason.NOT_REGULAR_FILE, f"cannot stat: {error.strerror}")
        )
        return
    if stat.S_ISDIR(entry_stat.st_mode):
        if path.is_symlink() and not top:
            discovery.skipped.append(
                SkippedPath(
                    str(path),
                    SkipReason.SYMLINKED_DIRECTORY,
                    "symlinked directory not followed (avoids cycles and double counting)",
                )
            )
            return
        try:
            children = sorted(os.listdir(path))
        except OSError as error:
            discovery.skipped.append(
                SkippedPath(
                    str(path),
                    SkipReason.UNREADABLE_DIRECTORY,
                    f"cannot list directory: {error.strerror}",
                )
            )
            return
        for child in children:
            yield from _walk(path / child, discovery, top=False)
    elif stat.S_ISREG(entry_stat.st_mode):
        yield path, entry_stat
    else:
        discovery.skipped.append(
            SkippedPath(
                str(path),
                SkipReason.NOT_REGULAR_FILE,
                "not a regular file (device, socket or FIFO)",
            )
        )


def read_input(path: str) -> bytes:
    """The bytes of one input file."""
    with open(path, "rb") as handle:
        return handle.read()
