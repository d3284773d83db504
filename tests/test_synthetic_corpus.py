"""The benchmark's synthetic archive: its mix and where its re-scrapes fall."""

from __future__ import annotations

import importlib.util
import sys
from collections import defaultdict
from pathlib import Path
from types import ModuleType

import pytest

from transforms import RejectError, parse_article

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "synthetic_corpus.py"


def _synthetic_corpus() -> ModuleType:
    spec = importlib.util.spec_from_file_location("synthetic_corpus", _SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("synthetic_corpus", module)
    spec.loader.exec_module(module)
    return module


def _captures_by_url(corpus: Path) -> tuple[dict[str, list[int]], int]:
    """Each URL's file numbers in path order, and how many files were rejected."""
    captures: dict[str, list[int]] = defaultdict(list)
    rejected = 0
    for number, path in enumerate(sorted(corpus.rglob("*.md"))):
        try:
            captures[parse_article(path.read_bytes()).url].append(number)
        except RejectError:
            rejected += 1
    return captures, rejected


@pytest.mark.parametrize("rescrapes", ["nearby", "scattered"])
def test_the_mix_has_bad_files_and_rescrapes_placed_as_asked(
    tmp_path: Path, rescrapes: str
) -> None:
    files = 3000
    corpus = _synthetic_corpus().generate(tmp_path / rescrapes, files, rescrapes=rescrapes)
    captures, rejected = _captures_by_url(corpus)
    repeats = [numbers for numbers in captures.values() if len(numbers) > 1]
    rescraped = sum(len(numbers) - 1 for numbers in repeats)
    assert 0.04 * files < rejected < 0.06 * files
    assert 0.02 * files < rescraped < 0.04 * files
    # A nearby re-scrape repeats one of the 200 articles written before it, so at most 200
    # good files plus the bad files and re-scrapes among them lie in between.
    farthest = max(later - numbers[0] for numbers in repeats for later in numbers[1:])
    if rescrapes == "nearby":
        assert farthest < 300
    else:
        assert farthest > 1000


def test_an_unknown_placement_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rescrapes must be one of"):
        _synthetic_corpus().generate(tmp_path, 10, rescrapes="everywhere")
