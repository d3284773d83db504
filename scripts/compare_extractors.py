"""Broadsheet's body extraction side by side with trafilatura's on the labelled dev gold.

Usage: python scripts/compare_extractors.py [CORPUS_DIR] [--speed-repeats N]
Needs the ``bench`` extra (``pip install -e '.[bench]'``) for trafilatura.

Both extractors get the same input, the HTML body of each labelled file (after Broadsheet's
header parsing), and are scored with character-bigram precision, recall and F1 against the
labelled body paragraphs (broadsheet.evaluation). Prints per-file scores, macro means per
source and overall, then each extractor's docs/s on those bodies (median of the repeats,
one core, measured alternately in one process).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import trafilatura

from broadsheet.evaluation import Score, load_gold, macro, score
from transforms import extract_body, parse_envelope
from transforms.article import decode_document

DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


def trafilatura_paragraphs(html: str) -> list[str]:
    """trafilatura's text of a body, one paragraph a line, with its default settings."""
    text = trafilatura.extract(html, output_format="txt", include_comments=False) or ""
    return [line for line in text.splitlines() if line.strip()]


def broadsheet_paragraphs(html: str, url: str) -> list[str]:
    """Broadsheet's body paragraphs of a body."""
    return list(extract_body(html, url).paragraphs)


def _docs_per_second(work: Callable[[], object], documents: int, repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        rates.append(documents / (time.perf_counter() - start))
    return statistics.median(rates)


def _row(name: str, ours: Score, theirs: Score) -> str:
    return (
        f"{name[:44]:<46}{ours.precision:>7.3f}{ours.recall:>7.3f}{ours.f1:>7.3f}"
        f"{theirs.precision:>9.3f}{theirs.recall:>7.3f}{theirs.f1:>7.3f}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Score both extractors and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--speed-repeats", type=int, default=5)
    options = parser.parse_args(argv)

    labels = load_gold(options.corpus / "gold-dev.jsonl")
    bodies = []
    for label in labels:
        envelope = parse_envelope(decode_document(label.path.read_bytes()))
        bodies.append((label, envelope.body_text, envelope.url))

    header = f"{'file':<46}{'P':>7}{'R':>7}{'F1':>7}{'traf P':>9}{'R':>7}{'F1':>7}"
    print("broadsheet (left) vs trafilatura (right), character-bigram scores on body paragraphs")
    print(header)
    by_source: dict[str, list[tuple[Score, Score]]] = defaultdict(list)
    for label, html, url in bodies:
        ours = score(broadsheet_paragraphs(html, url), label.body_paragraphs)
        theirs = score(trafilatura_paragraphs(html), label.body_paragraphs)
        by_source[label.source].append((ours, theirs))
        print(_row(f"{label.source}/{label.path.name}", ours, theirs))
    print()
    print(header.replace("file", "source (macro)"))
    for source, pairs in sorted(by_source.items()):
        print(
            _row(f"{source} ({len(pairs)})", macro(p[0] for p in pairs), macro(p[1] for p in pairs))
        )
    pairs = [pair for source_pairs in by_source.values() for pair in source_pairs]
    print(_row(f"ALL ({len(pairs)})", macro(p[0] for p in pairs), macro(p[1] for p in pairs)))

    repeats = options.speed_repeats
    ours_rate = _docs_per_second(
        lambda: [broadsheet_paragraphs(html, url) for _, html, url in bodies], len(bodies), repeats
    )
    theirs_rate = _docs_per_second(
        lambda: [trafilatura_paragraphs(html) for _, html, _ in bodies], len(bodies), repeats
    )
    print()
    print(
        f"speed on these {len(bodies)} bodies, one core, median of {repeats}: "
        f"broadsheet {ours_rate:,.0f} docs/s, trafilatura {theirs_rate:,.0f} docs/s, "
        f"ratio {ours_rate / theirs_rate:.1f}x"
    )


if __name__ == "__main__":
    main()
