"""The benchmark scripts stop with one usage line, not a traceback, where the corpus is absent,
and the pipeline benchmark runs end to end."""

from __future__ import annotations

import re
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


@pytest.mark.slow
def test_the_pipeline_benchmark_prints_every_measure_on_tiny_corpora(tmp_path: Path) -> None:
    """``bench_pipeline.py`` end to end on corpora of 20 and 40 files, one repeat: every line
    the README quotes from it is printed, with numbers."""
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "bench_pipeline.py"),
            "--sizes",
            "20",
            "40",
            "--repeats",
            "1",
            "--workdir",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    number = r"-?[0-9][0-9,]*(?:\.[0-9]+)?"
    for line in (
        rf"^ +40( +{number}){{10}}$",
        rf"^20 -> 40 files: steady state {number} docs/s, {number} x the floor; "
        rf"peak RSS x{number}, a no-op's x{number}$",
        rf"^fixed cost \(10-file run, wall\): {number} s; a first run, in a new Prefect home: "
        rf"{number} s$",
        rf"^worker processes on 20 files \(ingesting s\): 1 worker {number} s, 2 workers "
        rf"{number} s, speed-up {number} x; each repeat's own ratio: median {number} x "
        rf"\({number}-{number}\)$",
        rf"^two transform processes at once .* two give {number} x one$",
    ):
        assert re.search(line, result.stdout, re.MULTILINE), (line, result.stdout)
