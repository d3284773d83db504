"""Discovery: deterministic order, and every path found is either a file to read or a skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from broadsheet import read_inputs
from broadsheet.read_inputs import (
    Discovery,
    InputPathError,
    SkipReason,
    discover,
    discover_for_run,
    prefetch_discovery,
    read_input,
)


def _touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_walks_recursively_in_sorted_order_and_records_skips(tmp_path: Path) -> None:
    for name in ["b/2.md", "b/10.md", "a.md", "c/d/e.md"]:
        _touch(tmp_path / name)
    _touch(tmp_path / ".hidden.md")
    _touch(tmp_path / ".git" / "config")
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "loop").symlink_to(tmp_path, target_is_directory=True)

    discovery = discover([tmp_path, tmp_path / "a.md"])

    assert [Path(f.path).relative_to(tmp_path).as_posix() for f in discovery.input_files()] == [
        "a.md",
        "b/10.md",
        "b/2.md",
        "c/d/e.md",
    ]
    skipped = {(Path(s.path).name, s.reason) for s in discovery.skipped}
    assert skipped == {
        (".git", SkipReason.HIDDEN),
        (".hidden.md", SkipReason.HIDDEN),
        ("pipe", SkipReason.NOT_REGULAR_FILE),
        ("loop", SkipReason.SYMLINKED_DIRECTORY),
        ("a.md", SkipReason.DUPLICATE_PATH),
    }


def _make_with_bytes_name(directory: Path, name: bytes, *, is_dir: bool = False) -> None:
    """A file or directory whose name is ``name``'s bytes, or a skip where the filesystem
    takes only UTF-8 names (APFS)."""
    path = os.path.join(os.fsencode(directory), name)
    try:
        if is_dir:
            os.mkdir(path)
            (Path(os.fsdecode(path)) / "inside.md").write_text("x")
        else:
            Path(os.fsdecode(path)).write_text("x")
    except OSError:
        pytest.skip("this filesystem takes only UTF-8 names")


def test_names_that_are_not_utf8_are_skipped_with_a_printable_path(tmp_path: Path) -> None:
    _touch(tmp_path / "café.md")
    _make_with_bytes_name(tmp_path, b"caf\xe9.md")
    _make_with_bytes_name(tmp_path, b"latin1-\xe9t\xe9", is_dir=True)

    discovery = discover([tmp_path])

    assert [Path(f.path).name for f in discovery.input_files()] == ["café.md"]
    skips = sorted((s.path, s.reason) for s in discovery.skipped)
    assert skips == [
        (f"{tmp_path}/caf\\xe9.md", SkipReason.UNDECODABLE_NAME),
        (f"{tmp_path}/latin1-\\xe9t\\xe9", SkipReason.UNDECODABLE_NAME),
    ]
    assert all(s.path.encode("utf-8") for s in discovery.skipped)
    assert "rename it" in discovery.skipped[0].detail


def test_an_input_path_that_is_not_utf8_is_one_skip(tmp_path: Path) -> None:
    _make_with_bytes_name(tmp_path, b"\xff", is_dir=True)
    discovery = discover([os.fsdecode(os.path.join(os.fsencode(tmp_path), b"\xff"))])
    assert discovery.files.num_rows == 0
    assert [(s.path, s.reason) for s in discovery.skipped] == [
        (f"{tmp_path}/\\xff", SkipReason.UNDECODABLE_NAME)
    ]


def test_same_order_whatever_the_creation_order(tmp_path: Path) -> None:
    names = [f"{i:03d}.md" for i in range(50)]
    for name in reversed(names):
        _touch(tmp_path / "x" / name)
    for name in names:
        _touch(tmp_path / "y" / name)
    assert [Path(f.path).name for f in discover([tmp_path / "x"]).input_files()] == [
        Path(f.path).name for f in discover([tmp_path / "y"]).input_files()
    ]


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputPathError, match=r"input path does not exist: .*nope"):
        discover([tmp_path / "nope"])


def _names(discovery: Discovery) -> list[str]:
    return [Path(f.path).name for f in discovery.input_files()]


def test_a_run_takes_the_prefetched_listing_of_its_paths_once(tmp_path: Path) -> None:
    _touch(tmp_path / "a.md")
    prefetch_discovery([str(tmp_path)])
    _touch(tmp_path / "b.md")  # arrives after the prefetch: the run's listing predates it

    assert _names(discover_for_run([str(tmp_path)])) == ["a.md"]
    assert _names(discover_for_run([str(tmp_path)])) == ["a.md", "b.md"]


def test_a_prefetch_of_other_paths_or_too_old_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _touch(tmp_path / "x" / "a.md")
    _touch(tmp_path / "y" / "b.md")
    prefetch_discovery([str(tmp_path / "x")])
    assert _names(discover_for_run([str(tmp_path / "y")])) == ["b.md"]

    prefetch_discovery([str(tmp_path / "x")])
    _touch(tmp_path / "x" / "c.md")
    monkeypatch.setattr(read_inputs, "PREFETCH_MAX_AGE_SECONDS", -1.0)
    assert _names(discover_for_run([str(tmp_path / "x")])) == ["a.md", "c.md"]


def test_a_prefetch_that_cannot_list_leaves_the_error_to_the_run(tmp_path: Path) -> None:
    prefetch_discovery([str(tmp_path / "nope")])
    prefetch_discovery(["s3://bucket/never-listed-in-advance"])
    with pytest.raises(InputPathError, match="input path does not exist"):
        discover_for_run([str(tmp_path / "nope")])


@pytest.mark.parametrize(
    "size",
    [0, 1, read_inputs._READ_CHUNK_BYTES - 1, read_inputs._READ_CHUNK_BYTES, 3 * 2**18 + 17],
)
def test_read_input_returns_every_byte_of_a_local_file(tmp_path: Path, size: int) -> None:
    path = tmp_path / "article.md"
    data = bytes(index % 251 for index in range(size))
    path.write_bytes(data)

    assert read_input(str(path)) == data


def test_read_input_raises_os_errors_the_run_records_as_unreadable(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_input(str(tmp_path / "gone.md"))
    with pytest.raises(IsADirectoryError):
        read_input(str(tmp_path))
