"""Discovery: deterministic order, and every path found is either a file to read or a skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from broadsheet.read_inputs import InputPathError, SkipReason, discover


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
