"""A warehouse in object storage (``s3://bucket/prefix``), written through a local working copy.

Object stores have no atomic rename and no lock, so a run does not commit there directly:

1. it finishes any push an earlier run left half done (see 4);
2. it makes the local working copy an exact mirror of the remote tables, downloading only the
   objects that changed since the copy last saw them;
3. it runs the ordinary local ingest on the copy: lock, journal, atomic swaps, recovery;
4. it pushes what the run changed: first a marker object (``_push.json``) listing every upload
   (with its SHA-256) and deletion, then the deletions (partition files that a merge folded
   into another, or that lost all their rows), then the files, tables in ``PUSH_ORDER`` (data
   first, the ledger after them, the runs row last) and, within a table, rewritten files
   before new ones, then it removes the marker.

Each object appears whole (a PUT is atomic), but a reader listing the tables during step 4 may
see some files of the run and not others. Deleting first means such a reader may miss rows
that are being merged, but does not see them twice. A run that finds the marker of a push
interrupted by a crash repeats it from its working copy when that copy holds exactly the
listed files, and otherwise stops with an error rather than guess. Only one machine may
write a remote warehouse at a time: nothing on the store enforces it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from broadsheet import object_store
from broadsheet.warehouse_commit import WarehouseError

PUSH_MARKER = "_push.json"
MANIFEST = "_pulled.json"
PUSH_ORDER = ("articles", "article_versions", "rejects", "skips", "ledger", "runs")
"""Order in which a push uploads tables: the ledger, which lets later runs skip files, only
after the rows it vouches for; the runs row, which announces the run, last."""

_Stat = tuple[int, int]


def working_copy_dir(remote: str) -> Path:
    """Where the working copy of a remote warehouse lives: under ``$BROADSHEET_CACHE_DIR``
    (default ``~/.cache/broadsheet``), one directory per URL."""
    root = Path(os.environ.get("BROADSHEET_CACHE_DIR", Path.home() / ".cache" / "broadsheet"))
    digest = hashlib.sha256(remote.rstrip("/").encode()).hexdigest()[:16]
    return root.expanduser() / "warehouses" / digest


@contextmanager
def remote_warehouse(remote: str, working_copy: Path | None = None) -> Iterator[Path]:
    """Yield a local working copy of ``remote`` to ingest into; push its changes on success."""
    local = working_copy or working_copy_dir(remote)
    local.mkdir(parents=True, exist_ok=True)
    remote = remote.rstrip("/")
    with open(local / "_sync.lock", "a+b") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise WarehouseError(
                f"another run on this machine is syncing {remote} (working copy {local})"
            ) from error
        _finish_interrupted_push(remote, local)
        pull(remote, local)
        before = table_files(local)
        yield local
        push(remote, local, before)


def table_files(local: Path) -> dict[str, _Stat]:
    """Table files of a working copy (relative path to size and mtime), without the private
    top-level entries (``_lock``, ``_staging``, the journal, the manifest)."""
    files: dict[str, _Stat] = {}
    for path in local.rglob("*"):
        relative = path.relative_to(local).as_posix()
        if relative.startswith("_") or path.name.startswith(".") or not path.is_file():
            continue
        stat = path.stat()
        files[relative] = (stat.st_size, stat.st_mtime_ns)
    return files


def pull(remote: str, local: Path) -> None:
    """Make ``local`` an exact mirror of the tables at ``remote``."""
    remote_files = _remote_files(remote)
    manifest = _read_manifest(local)
    local_files = table_files(local)
    for relative in local_files.keys() - remote_files.keys():
        (local / relative).unlink()
    (local / "_journal.json").unlink(missing_ok=True)
    shutil.rmtree(local / "_staging", ignore_errors=True)
    for relative, remote_stat in sorted(remote_files.items()):
        known = manifest.get(relative)
        if known == [*remote_stat, *local_files.get(relative, (-1, -1))]:
            continue
        target = local / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.pulling")
        temporary.write_bytes(object_store.read_bytes(f"{remote}/{relative}"))
        os.replace(temporary, target)
    _write_manifest(remote, local)


def push(remote: str, local: Path, before: dict[str, _Stat]) -> None:
    """Upload what changed in ``local`` since ``before`` and delete what it removed."""
    after = table_files(local)
    uploads = sorted(
        (r for r in after if before.get(r) != after[r]), key=lambda r: _push_rank(r, before)
    )
    deletions = sorted(before.keys() - after.keys())
    if not uploads and not deletions:
        return
    marker = {
        "uploads": {relative: _sha256(local / relative) for relative in uploads},
        "deletions": deletions,
    }
    object_store.write_bytes(f"{remote}/{PUSH_MARKER}", json.dumps(marker).encode())
    _apply_push(remote, local, uploads, deletions)


def _finish_interrupted_push(remote: str, local: Path) -> None:
    marker_url = f"{remote}/{PUSH_MARKER}"
    if not object_store.exists(marker_url):
        return
    marker = json.loads(object_store.read_bytes(marker_url))
    uploads: dict[str, str] = marker["uploads"]
    for relative, digest in uploads.items():
        path = local / relative
        if not path.is_file() or _sha256(path) != digest:
            raise WarehouseError(
                f"{remote} holds a push that was interrupted ({PUSH_MARKER}) and this working "
                f"copy ({local}) does not hold its files; re-run on the machine that started "
                "it, or restore the warehouse from a backup"
            )
    _apply_push(remote, local, list(uploads), marker["deletions"])  # the push's own order


def _apply_push(remote: str, local: Path, uploads: list[str], deletions: list[str]) -> None:
    for relative in deletions:
        object_store.delete(f"{remote}/{relative}")
    for relative in uploads:
        object_store.write_bytes(f"{remote}/{relative}", (local / relative).read_bytes())
    object_store.delete(f"{remote}/{PUSH_MARKER}")
    _write_manifest(remote, local)


def _remote_files(remote: str) -> dict[str, _Stat]:
    files = {}
    for entry in object_store.list_objects(remote):
        relative = entry.url[len(remote) :].strip("/")
        if relative and not relative.startswith("_"):
            files[relative] = (entry.size, entry.mtime_ns)
    return files


def _read_manifest(local: Path) -> dict[str, list[int]]:
    try:
        manifest: dict[str, list[int]] = json.loads((local / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return manifest


def _write_manifest(remote: str, local: Path) -> None:
    """Record, per file, the remote size and mtime and the local ones that match them, so
    the next pull downloads only what changed on either side."""
    local_files = table_files(local)
    manifest = {
        relative: [*remote_stat, *local_files[relative]]
        for relative, remote_stat in _remote_files(remote).items()
        if relative in local_files
    }
    temporary = local / f"{MANIFEST}.tmp"
    temporary.write_text(json.dumps(manifest, sort_keys=True))
    os.replace(temporary, local / MANIFEST)


def _push_rank(relative: str, before: Mapping[str, _Stat]) -> tuple[int, bool, str]:
    """Upload order: table by table (``PUSH_ORDER``), and within a table the files that were
    there before (rewritten without rows that are leaving them) ahead of new files (which
    may hold those rows again), so that a reader of the store never sees a row twice."""
    table = relative.split("/", 1)[0]
    rank = PUSH_ORDER.index(table) if table in PUSH_ORDER else len(PUSH_ORDER)
    return rank, relative not in before, relative


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
