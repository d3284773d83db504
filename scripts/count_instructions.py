"""Count the CPU instructions the transform executes a file, under valgrind's callgrind.

Usage: python scripts/count_instructions.py [CORPUS_DIR] [--every N] [--step STEP]

On a shared machine, times of the same code spread by 10-30% from one run to the next;
instruction counts do not: callgrind counts what the program executes, whatever else the
machine is doing. A change's count against its parent's is therefore a steadier measure of
what it saves than a timing (though not of time: cache misses and the allocator cost time that
instructions do not show).

Runs a child process twice under ``valgrind --tool=callgrind``: both read every Nth file of
CORPUS_DIR (default ../shared/corpus/real) and run STEP on the first 100 as a warm-up; the second
then runs STEP over all of them once more. The difference of the two totals, divided by the
files, is what one pass costs a file, start-up and warm-up left out. STEP is
``parse_articles`` (in batches, as the pipeline's parse tasks call it) or ``extract_body`` (the
body of each file the header reader accepts). Needs valgrind (Debian's ``valgrind``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from broadsheet.pipeline import PARSE_CHUNK

DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "real"
STEPS = ("parse_articles", "extract_body")
WARM_UP_FILES = 100


def _child(corpus: Path, every: int, step: str, passes: int) -> None:
    """Load the files, warm up, run ``passes`` passes of ``step``; print the file count."""
    from transforms import RejectError, parse_articles
    from transforms.article import read_document
    from transforms.body import extract_body

    raws = [p.read_bytes() for p in sorted(corpus.rglob("*")) if p.is_file()][::every]
    envelopes = []
    for raw in raws:
        try:
            envelopes.append(read_document(raw))
        except RejectError:
            continue

    def one_pass(count: int) -> None:
        """``step`` over the first ``count`` files."""
        if step == "parse_articles":
            for start in range(0, count, PARSE_CHUNK):
                parse_articles(raws[start : min(start + PARSE_CHUNK, count)])
            return
        for envelope in envelopes[:count]:
            try:
                extract_body(envelope.body_html, envelope.url)
            except RejectError:
                continue

    files = len(raws) if step == "parse_articles" else len(envelopes)
    one_pass(min(WARM_UP_FILES, files))
    for _ in range(passes):
        one_pass(files)
    print(files)


def _callgrind_total(arguments: list[str], out_file: Path) -> tuple[int, int]:
    """(instructions executed, files) of one child run under callgrind."""
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out_file}",
            sys.executable,
            __file__,
            *arguments,
        ],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, PYTHONHASHSEED="0"),
    )
    summary = re.search(r"^summary: (\d+)$", out_file.read_text(), re.MULTILINE)
    if summary is None:
        raise RuntimeError(f"no instruction total in {out_file}")
    return int(summary.group(1)), int(result.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--every", type=int, default=6, help="count every Nth file (default 6)")
    parser.add_argument("--step", choices=STEPS, default=STEPS[0])
    parser.add_argument("--child-passes", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child_passes is not None:
        _child(arguments.corpus, arguments.every, arguments.step, arguments.child_passes)
        return
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (Debian: apt-get install valgrind)")
    if not any(p.is_file() for p in arguments.corpus.rglob("*")):
        parser.error(f"no files under {arguments.corpus}: pass the corpus directory")
    common = [str(arguments.corpus), "--every", str(arguments.every), "--step", arguments.step]
    with tempfile.TemporaryDirectory() as scratch:
        without, files = _callgrind_total([*common, "--child-passes", "0"], Path(scratch, "0"))
        with_pass, _ = _callgrind_total([*common, "--child-passes", "1"], Path(scratch, "1"))
    print(
        f"{arguments.step} on every {arguments.every}th file of {arguments.corpus} "
        f"({files:,} files): {(with_pass - without) / files:,.0f} instructions a file"
    )


if __name__ == "__main__":
    main()
