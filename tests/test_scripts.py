"""The benchmark scripts stop with one usage line, not a traceback, where the corpus is absent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _run_script(script: str, argument: Path, *, hide_trafilatura: bool = False) -> str:
    """The script's stderr, run as ``python scripts/SCRIPT ARGUMENT``, after checking that it
    exited with a usage error and no traceback. ``hide_trafilatura`` runs it as if the
    ``bench`` extra were not installed, whether or not it is."""
    hide = "sys.modules['trafilatura'] = None; " if hide_trafilatura else ""
    code = (
        f"import runpy, sys; {hide}sys.argv = sys.argv[1:]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(SCRIPTS / script), str(argument)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("compare_extractors.py", "no gold labels at"),
        ("bench_transforms.py", "no files under"),
    ],
)
def test_a_missing_corpus_is_one_usage_error(script: str, expected: str, tmp_path: Path) -> None:
    stderr = _run_script(script, tmp_path / "absent")
    assert f"error: {expected} {tmp_path / 'absent'}" in stderr


def test_comparing_without_trafilatura_is_one_usage_error(tmp_path: Path) -> None:
    """trafilatura is a development extra (``bench``), absent from a plain install and CI's."""
    (tmp_path / "gold-dev.jsonl").write_text("")
    stderr = _run_script("compare_extractors.py", tmp_path, hide_trafilatura=True)
    assert "error: trafilatura is not installed: pip install -e '.[bench]'" in stderr
