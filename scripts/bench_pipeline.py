"""End-to-end benchmark: synthetic corpora, measured side by side in one process.

Usage: python scripts/bench_pipeline.py [--sizes 20000 100000] [--repeats 3] [--workdir DIR]

For each corpus size it generates a synthetic archive (scripts/synthetic_corpus.py), then
measures, alternating within each repeat: (a) the floor, reading every file and lxml-parsing
it in this process; (b) a full ``broadsheet run`` into a new warehouse (a subprocess: wall
time including Prefect start-up, and its peak RSS); (c) a no-op re-run on the same warehouse.
Once, on a 2,000-file subset, (d) trafilatura's docs/s if it is installed (the ``bench``
extra). Prints medians, the ratios, and the steady-state throughput between the two largest
sizes (extra files per extra second of a full run).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_corpus import generate

BROADSHEET = Path(sys.executable).with_name("broadsheet")


def _files(corpus: Path) -> list[Path]:
    return sorted(path for path in corpus.rglob("*.md"))


def floor(corpus: Path) -> float:
    """Seconds to read every file and lxml-parse it, in this process."""
    parser = etree.HTMLParser()
    started = time.perf_counter()
    for path in _files(corpus):
        data = path.read_bytes()
        if data.strip():
            etree.fromstring(data, parser)
    return time.perf_counter() - started


def broadsheet_run(corpus: Path, warehouse: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB, the CLI process) of ``broadsheet run``."""
    env = dict(os.environ)
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(BROADSHEET), "run", str(corpus), "--warehouse", str(warehouse)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    peak = 0
    status = Path(f"/proc/{process.pid}/status")
    while process.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.05)
    if process.returncode != 0:
        raise RuntimeError(f"broadsheet run failed with exit code {process.returncode}")
    return time.perf_counter() - started, peak


def trafilatura_rate(corpus: Path, limit: int = 2000) -> float | None:
    """trafilatura's docs/s on the bodies of the first ``limit`` files, or None."""
    try:
        import trafilatura
    except ImportError:
        return None
    from transforms import RejectError, parse_envelope
    from transforms.article import decode_document

    bodies = []
    for path in _files(corpus)[:limit]:
        try:
            bodies.append(parse_envelope(decode_document(path.read_bytes())).body_html)
        except RejectError:
            continue
    started = time.perf_counter()
    for body in bodies:
        trafilatura.extract(body)
    return len(bodies) / (time.perf_counter() - started)


def main() -> None:
    """Generate, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    options = parser.parse_args()
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="broadsheet-bench-"))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; medians of {options.repeats}; workdir {workdir}"
    )
    print(
        f"{'files':>8} {'floor docs/s':>13} {'run docs/s':>11} {'run/floor':>10} "
        f"{'run wall s':>11} {'no-op s':>8} {'no-op/run':>10} {'peak RSS MiB':>13}"
    )
    walls: dict[int, float] = {}
    for size in options.sizes:
        corpus = workdir / f"corpus-{size}"
        if not corpus.exists():
            generate(corpus, size)
        floors, runs, noops, peaks = [], [], [], []
        for repeat in range(options.repeats):
            floors.append(floor(corpus))
            warehouse = workdir / f"warehouse-{size}-{repeat}"
            shutil.rmtree(warehouse, ignore_errors=True)
            wall, peak = broadsheet_run(corpus, warehouse)
            runs.append(wall)
            peaks.append(peak)
            noops.append(broadsheet_run(corpus, warehouse)[0])
            shutil.rmtree(warehouse)
        floor_s, run_s, noop_s = map(statistics.median, (floors, runs, noops))
        walls[size] = run_s
        print(
            f"{size:>8,} {size / floor_s:>13,.0f} {size / run_s:>11,.0f} "
            f"{floor_s / run_s:>10.2f} {run_s:>11.1f} {noop_s:>8.1f} {noop_s / run_s:>10.2f} "
            f"{max(peaks) / 1024:>13.0f}"
        )
    if len(options.sizes) >= 2:
        small, large = sorted(options.sizes)[-2:]
        steady = (large - small) / (walls[large] - walls[small])
        print(f"steady state ({small:,} -> {large:,} files): {steady:,.0f} docs/s")
    rate = trafilatura_rate(workdir / f"corpus-{options.sizes[0]}")
    if rate is None:
        print("trafilatura: not installed (pip install -e '.[bench]')")
    else:
        print(f"trafilatura on a 2,000-file subset: {rate:,.0f} docs/s")


if __name__ == "__main__":
    main()
