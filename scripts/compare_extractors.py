"""Broadsheet's body extraction side by side with trafilatura's on the labelled dev gold.

Usage: python scripts/compare_extractors.py [CORPUS_DIR] [--speed-repeats N]
Needs the ``bench`` extra (``pip install -e '.[bench]'``) for trafilatura.

Both extractors get the same input, the HTML body of each labelled file (after Broadsheet's
header parsing), and are scored with character-bigram precision, recall and F1 against the
labelled body paragraphs (broadsheet.evaluation). Prints per-file scores, macro means per
source and overall, then each extractor's docs/s on those bodies, one core, in rounds that
alternate between the two in one process: a round times Broadsheet over every body
``--passes`` times (one pass takes milliseconds, too short to time on a shared machine),
then trafilatura over every body once. Prints the medians and spread of each, and the
ratio of each round (both measured under the same load) with their median.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from broadsheet.evaluation import Score, load_gold, macro, score
from transforms import extract_body, parse_envelope
from transforms.article import decode_document

DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


def trafilatura_paragraphs(html: str) -> list[str]:
    """trafilatura's text of a body, one paragraph a line, with its default settings."""
    import trafilatura  # the bench extra's: imported once ``main`` has checked it is there

    text = trafilatura.extract(html, output_format="txt", include_comments=False) or ""
    return [line for line in text.splitlines() if line.strip()]


def broadsheet_paragraphs(html: str, url: str) -> list[str]:
    """Broadsheet's body paragraphs of a body."""
    return list(extract_body(html, url).paragraphs)


def _docs_per_second(work: Callable[[], object], documents: int) -> float:
    start = time.perf_counter()
    work()
    return documents / (time.perf_counter() - start)


def alternating_rates(
    bodies: Sequence[tuple[str, str]], rounds: int, passes: int
) -> tuple[list[float], list[float]]:
    """Broadsheet's and trafilatura's docs/s on ``bodies`` (HTML, URL), one of each a round."""
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(rounds):
        ours.append(
            _docs_per_second(
                lambda: [
                    broadsheet_paragraphs(html, url) for _ in range(passes) for html, url in bodies
                ],
                len(bodies) * passes,
            )
        )
        theirs.append(
            _docs_per_second(
                lambda: [trafilatura_paragraphs(html) for html, _ in bodies], len(bodies)
            )
        )
    return ours, theirs


def _spread(rates: Sequence[float]) -> str:
    return f"{statistics.median(rates):,.0f} docs/s ({min(rates):,.0f}-{max(rates):,.0f})"


def _row(name: str, ours: Score, theirs: Score) -> str:
    return (
        f"{name[:44]:<46}{ours.precision:>7.3f}{ours.recall:>7.3f}{ours.f1:>7.3f}"
        f"{theirs.precision:>9.3f}{theirs.recall:>7.3f}{theirs.f1:>7.3f}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Score both extractors and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--speed-repeats", type=int, default=7, help="rounds of the speed test")
    parser.add_argument(
        "--passes", type=int, default=20, help="Broadsheet's passes over the bodies a round"
    )
    options = parser.parse_args(argv)
    gold = options.corpus / "gold-dev.jsonl"
    if not gold.is_file():
        parser.error(f"no gold labels at {gold}: pass the corpus directory")
    try:
        importlib.import_module("trafilatura")
    except ImportError:
        parser.error("trafilatura is not installed: pip install -e '.[bench]'")

    labels = load_gold(gold)
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

    rounds, passes = options.speed_repeats, options.passes
    our_rates, their_rates = alternating_rates(
        [(html, url) for _, html, url in bodies], rounds, passes
    )
    ratios = [mine / other for mine, other in zip(our_rates, their_rates, strict=True)]
    print()
    print(
        f"speed on these {len(bodies)} bodies, one core, {rounds} alternating rounds "
        f"(broadsheet {passes} passes a round, trafilatura one), median (min-max):"
    )
    print(f"  broadsheet   {_spread(our_rates)}")
    print(f"  trafilatura  {_spread(their_rates)}")
    print(
        f"  ratio        {statistics.median(ratios):.1f}x the median round "
        f"({min(ratios):.1f}-{max(ratios):.1f}x); "
        f"{statistics.median(our_rates) / statistics.median(their_rates):.1f}x the medians"
    )


if __name__ == "__main__":
    main()
