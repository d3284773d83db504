"""Score extracted body paragraphs against rubric labels (``gold-dev.jsonl``).

Character-bigram precision, recall and F1 over the concatenated paragraphs with all whitespace
removed, per file; the macro mean is the mean of the per-file scores.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean


@dataclass(frozen=True, slots=True)
class Score:
    """Precision, recall and F1 of one file or of a macro mean."""

    precision: float
    recall: float
    f1: float


def bigrams(paragraphs: Iterable[str]) -> Counter[str]:
    """Multiset of character bigrams of the paragraphs, whitespace removed."""
    text = "".join("".join(paragraphs).split())
    return Counter(text[index : index + 2] for index in range(len(text) - 1))


def score(predicted: Iterable[str], gold: Iterable[str]) -> Score:
    """Bigram precision, recall and F1 of predicted paragraphs against gold ones."""
    predicted_bigrams, gold_bigrams = bigrams(predicted), bigrams(gold)
    if not predicted_bigrams and not gold_bigrams:
        return Score(1.0, 1.0, 1.0)
    overlap = sum((predicted_bigrams & gold_bigrams).values())
    precision = overlap / sum(predicted_bigrams.values()) if predicted_bigrams else 0.0
    recall = overlap / sum(gold_bigrams.values()) if gold_bigrams else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Score(precision, recall, f1)


def macro(scores: Iterable[Score]) -> Score:
    """Mean of per-file scores."""
    materialised = list(scores)
    return Score(
        fmean(s.precision for s in materialised),
        fmean(s.recall for s in materialised),
        fmean(s.f1 for s in materialised),
    )


@dataclass(frozen=True, slots=True)
class GoldLabel:
    """One labelled file of the development gold set."""

    path: Path
    source: str
    title: str
    url: str
    epoch_ms: int
    body_paragraphs: tuple[str, ...]
    headings: tuple[str, ...]
    image_urls: tuple[str, ...]
    share_link_count: int


def load_gold(gold_file: Path) -> list[GoldLabel]:
    """Read ``gold-dev.jsonl``; paths are resolved against the file's folder."""
    labels = []
    for line in gold_file.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        relative = Path(row["path"])
        source = "/".join(relative.parts[1:3]) if relative.parts[1] == "news" else relative.parts[1]
        labels.append(
            GoldLabel(
                path=gold_file.parent / relative,
                source=source,
                title=row["title"],
                url=row["url"],
                epoch_ms=int(row["epoch_ms"]),
                body_paragraphs=tuple(row["body_paragraphs"]),
                headings=tuple(row["headings"]),
                image_urls=tuple(row["image_urls"]),
                share_link_count=len(row["share_links"]),
            )
        )
    return labels
