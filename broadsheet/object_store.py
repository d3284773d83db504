"""Reading and writing object-store URLs (``s3://bucket/key``) through pyarrow's filesystems.

Credentials, region and endpoint come from the usual AWS settings (environment variables such
as ``AWS_ACCESS_KEY_ID`` and ``AWS_ENDPOINT_URL``, or the AWS config files), as pyarrow reads
them. Local paths never come here: ``is_remote`` tells them apart.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyarrow import fs as pafs


class ObjectStoreError(Exception):
    """An object-store URL cannot be used. Retryable when the store was unreachable."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One object: its URL, size and modification time."""

    url: str
    size: int
    mtime_ns: int


def is_remote(path: str) -> bool:
    """True for an object-store URL such as ``s3://bucket/prefix``."""
    return "://" in path and not path.startswith("file://")


def split_url(url: str) -> tuple[str, str]:
    """(scheme://, bucket/key) of an object-store URL, with no trailing slash."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://", rest.strip("/")


@functools.lru_cache(maxsize=16)
def _filesystem(scheme_and_bucket: str) -> pafs.FileSystem:
    """One filesystem object per bucket and process (they hold connection pools)."""
    from pyarrow import fs as pafs  # imported on first use: the CLI starts without pyarrow

    filesystem, _ = pafs.FileSystem.from_uri(scheme_and_bucket)
    return filesystem


def filesystem_of(url: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem serving ``url`` and the path inside it (``bucket/key``)."""
    scheme, path = split_url(url)
    bucket = path.split("/", 1)[0]
    try:
        return _filesystem(f"{scheme}{bucket}"), path
    except (OSError, ValueError) as error:
        raise ObjectStoreError(f"cannot open {url}: {error}", retryable=False) from error


def list_objects(url: str) -> Iterator[ObjectInfo]:
    """Every object under ``url`` (a prefix, or one object), in sorted order of keys."""
    from pyarrow import fs as pafs

    filesystem, path = filesystem_of(url)
    scheme, _ = split_url(url)
    try:
        info = filesystem.get_file_info(path)
        if info.type == pafs.FileType.File:
            infos = [info]
        elif info.type == pafs.FileType.Directory:
            infos = filesystem.get_file_info(pafs.FileSelector(path, recursive=True))
        else:
            infos = []
    except OSError as error:
        raise ObjectStoreError(f"cannot list {url}: {error}", retryable=True) from error
    for entry in sorted(infos, key=lambda entry: entry.path):
        if entry.type == pafs.FileType.File:
            yield ObjectInfo(f"{scheme}{entry.path}", entry.size or 0, entry.mtime_ns or 0)


def exists(url: str) -> bool:
    """True when ``url`` is an object or a non-empty prefix."""
    from pyarrow import fs as pafs

    filesystem, path = filesystem_of(url)
    try:
        found: bool = filesystem.get_file_info(path).type != pafs.FileType.NotFound
    except OSError as error:
        raise ObjectStoreError(f"cannot reach {url}: {error}", retryable=True) from error
    return found


def read_bytes(url: str) -> bytes:
    """The bytes of one object."""
    filesystem, path = filesystem_of(url)
    with filesystem.open_input_stream(path) as stream:
        data: bytes = stream.read()
    return data


def write_bytes(url: str, data: bytes) -> None:
    """Write one object; object stores make a single PUT visible all at once."""
    filesystem, path = filesystem_of(url)
    with filesystem.open_output_stream(path) as stream:
        stream.write(data)


def delete(url: str) -> None:
    """Delete one object (no error if it is already gone)."""
    filesystem, path = filesystem_of(url)
    with contextlib.suppress(FileNotFoundError):
        filesystem.delete_file(path)
