"""Extraction quality against the rubric labels, with floors pinned in quality_floors.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from broadsheet.evaluation import GoldLabel, Score, load_gold, macro, score
from transforms import ParsedArticle, parse_article

FLOORS: dict[str, Any] = tomllib.loads(
    (Path(__file__).parent / "quality_floors.toml").read_text(encoding="utf-8")
)

pytestmark = pytest.mark.corpus


@pytest.fixture(scope="module")
def labelled(corpus_dir: Path) -> list[tuple[GoldLabel, ParsedArticle]]:
    labels = load_gold(corpus_dir / "gold-dev.jsonl")
    assert len(labels) == 40
    return [(label, parse_article(label.path.read_bytes())) for label in labels]


def test_body_paragraph_scores_meet_the_floors(
    labelled: list[tuple[GoldLabel, ParsedArticle]],
) -> None:
    floors = FLOORS["body_paragraphs"]
    scores = {
        label.path.name: score(article.paragraphs, label.body_paragraphs)
        for label, article in labelled
    }
    mean: Score = macro(scores.values())
    assert mean.precision >= floors["macro_precision"], mean
    assert mean.recall >= floors["macro_recall"], mean
    assert mean.f1 >= floors["macro_f1"], mean
    below = {name: s.f1 for name, s in scores.items() if s.f1 < floors["per_file_f1"]}
    assert not below, f"files below the per-file F1 floor: {below}"


@pytest.mark.parametrize("field", ["title_url_epoch", "headings", "image_urls", "share_link_count"])
def test_exact_field_agreement_meets_the_floors(
    labelled: list[tuple[GoldLabel, ParsedArticle]], field: str
) -> None:
    def agrees(label: GoldLabel, article: ParsedArticle) -> bool:
        if field == "title_url_epoch":
            return (article.title, article.url, article.published_at_ms) == (
                label.title,
                label.url,
                label.epoch_ms,
            )
        if field == "share_link_count":
            return len(article.share_links) == label.share_link_count
        return bool(getattr(article, field) == getattr(label, field))

    disagreeing = [label.path.name for label, article in labelled if not agrees(label, article)]
    agreement = 1 - len(disagreeing) / len(labelled)
    assert agreement >= FLOORS["exact"][field], disagreeing


def test_bigram_score_counts_repeats_and_ignores_whitespace() -> None:
    assert score(["a b", "c"], ["abc"]) == Score(1.0, 1.0, 1.0)
    half = score(["abab"], ["ab"])
    assert (half.precision, half.recall) == (1 / 3, 1.0)
    assert score([], []) == Score(1.0, 1.0, 1.0)
    assert score([], ["ab"]).f1 == 0.0
