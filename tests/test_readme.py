"""The README documents every table column and every reason code the code can emit."""

from __future__ import annotations

from pathlib import Path

import pytest

from broadsheet.read_inputs import SkipReason
from schemas import TABLE_SCHEMAS
from transforms import RejectReason, SourceFormat

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("table", sorted(TABLE_SCHEMAS))
def test_every_column_has_a_readme_row(table: str) -> None:
    section = README.split(f"### `{table}`", 1)[1].split("\n### ", 1)[0]
    if table != "articles" and TABLE_SCHEMAS[table] is TABLE_SCHEMAS["articles"]:
        assert "Exactly the columns and partitioning of `articles`" in section
        return
    missing = [name for name in TABLE_SCHEMAS[table].names if f"| `{name}` |" not in section]
    assert not missing, f"README section for {table} lacks rows for {missing}"


@pytest.mark.parametrize(
    "code",
    [*RejectReason, *SkipReason, *SourceFormat],
    ids=str,
)
def test_every_code_is_documented(code: str) -> None:
    assert f"`{code}`" in README


def test_every_cli_command_has_a_readme_entry() -> None:
    from broadsheet.cli import app

    commands = [
        command.name or command.callback.__name__
        for command in app.registered_commands
        if command.callback is not None
    ]
    assert len(commands) == 8
    for name in commands:
        assert f"### `broadsheet {name}" in README, f"README has no entry for {name}"
