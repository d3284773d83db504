"""The benchmark scripts stop with one usage line, not a traceback, where the corpus is absent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("compare_extractors.py", "no gold labels at"),
        ("bench_transforms.py", "no files under"),
    ],
)
def test_a_missing_corpus_is_one_usage_error(script: str, expected: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / script), str(tmp_path / "absent")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"error: {expected} {tmp_path / 'absent'}" in result.stderr
