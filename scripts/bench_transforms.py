"""Benchmark the pure transform path against a bare lxml parse, side by side, on one core.

Usage: python scripts/bench_transforms.py [CORPUS_DIR] [--repeats N]

Reads every file under CORPUS_DIR (default ../shared/corpus/real) into memory once, then times,
alternating in each repeat: (a) the floor, lxml-parsing each file's bytes; (b) parse_article on
each file's bytes (header, body extraction, record) with the C speed-ups where they are built;
(c) parse_articles on batches of BATCH files, as the pipeline's parse tasks call it (the same
records, a step at a time over each batch); (d) parse_article in a child process with
BROADSHEET_PURE_PYTHON=1, the pure-Python code alone (timed inside the child, after a warm-up
pass). Prints the median docs/s of each and the ratios. Nothing else runs while it measures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree

from broadsheet.pipeline import PARSE_CHUNK
from transforms import RejectError, parse_article, parse_articles, speedups

BATCH = PARSE_CHUNK
"""Files a ``parse_articles`` call gets: as many as in the pipeline's parse tasks."""
DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "real"


def _load(corpus: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(corpus.rglob("*")) if p.is_file()]


def _floor(documents: list[bytes]) -> None:
    parser = etree.HTMLParser()
    for raw in documents:
        etree.fromstring(raw, parser)


def _transform(documents: list[bytes]) -> None:
    for raw in documents:
        with contextlib.suppress(RejectError):
            parse_article(raw)


def _batched_transform(documents: list[bytes]) -> None:
    for start in range(0, len(documents), BATCH):
        parse_articles(documents[start : start + BATCH])


def _docs_per_second(work: Callable[[list[bytes]], None], documents: list[bytes]) -> float:
    start = time.perf_counter()
    work(documents)
    return len(documents) / (time.perf_counter() - start)


def _pure_python_docs_per_second(corpus: Path) -> float:
    """One timed pass of the pure-Python transform, in a child process that loads the files
    and warms up first, so only the pass itself is timed."""
    environment = {**os.environ, speedups.PURE_PYTHON_VARIABLE: "1"}
    child = subprocess.run(
        [sys.executable, __file__, str(corpus), "--one-pass"],
        env=environment,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(child.stdout)


def main() -> None:
    """Run the benchmark and print a small table."""
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    arguments.add_argument("--repeats", type=int, default=5)
    arguments.add_argument("--one-pass", action="store_true", help=argparse.SUPPRESS)
    options = arguments.parse_args()
    documents = _load(options.corpus)
    if not documents:
        arguments.error(f"no files under {options.corpus}: pass the corpus directory")
    _transform(documents[:200])  # warm caches and compiled patterns
    if options.one_pass:
        print(_docs_per_second(_transform, documents))
        return
    size_mib = sum(map(len, documents)) / 2**20
    compare = speedups.ENABLED
    floor_rates, transform_rates, batched_rates, pure_rates = [], [], [], []
    for _ in range(options.repeats):
        floor_rates.append(_docs_per_second(_floor, documents))
        transform_rates.append(_docs_per_second(_transform, documents))
        batched_rates.append(_docs_per_second(_batched_transform, documents))
        if compare:
            pure_rates.append(_pure_python_docs_per_second(options.corpus))
    floor, transform = statistics.median(floor_rates), statistics.median(transform_rates)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; corpus: {len(documents)} files, {size_mib:.1f} MiB; "
        f"medians of {options.repeats} alternating repeats, one core; C speed-ups "
        f"{'in use' if speedups.ENABLED else 'not in use'}"
    )
    print(f"{'path':<40}{'docs/s':>10}")
    print(f"{'lxml parse only (floor)':<40}{floor:>10,.0f}")
    print(f"{'parse_article (full transform)':<40}{transform:>10,.0f}")
    print(f"{'transform / floor':<40}{transform / floor:>10.2f}")
    batched = statistics.median(batched_rates)
    ratios = [b / t for b, t in zip(batched_rates, transform_rates, strict=True)]
    print(f"{f'parse_articles, batches of {BATCH}':<40}{batched:>10,.0f}")
    print(f"{'batched / file by file (paired median)':<40}{statistics.median(ratios):>10.2f}")
    print(f"{'batched / floor':<40}{batched / floor:>10.2f}")
    if compare:
        pure = statistics.median(pure_rates)
        print(f"{'parse_article, pure Python':<40}{pure:>10,.0f}")
        print(f"{'transform / pure Python':<40}{transform / pure:>10.2f}")


if __name__ == "__main__":
    main()
