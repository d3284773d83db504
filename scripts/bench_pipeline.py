"""End-to-end benchmark: synthetic corpora, measured side by side in one process.

Usage: python scripts/bench_pipeline.py [--sizes 20000 100000] [--repeats 3] [--workdir DIR]
                                       [--scaling-size N] [--rescrapes nearby|scattered]

For each corpus size it generates a synthetic archive (scripts/synthetic_corpus.py), then
measures, alternating within each repeat: (a) the floor, reading every file and lxml-parsing
it in this process; (b) a full ``broadsheet run`` into a new warehouse (a subprocess: wall
time including Prefect start-up, and its peak RSS); (c) a no-op re-run on the same warehouse,
both wall (with no Prefect server configured, a run with nothing to read skips Prefect: see
the README) and the seconds the CLI reports as ingesting (what the flow itself spends on a
no-op, as under ``broadsheet serve``), each against the full run's, and its peak RSS (it
lists every file and reads the whole ledger).
Then a 10-file run's wall time (the fixed cost; and a first run's, in a new Prefect home), 1
against 2 worker processes (the ratio of the medians, and the median and range of each
repeat's own ratio: on a shared machine the pairs show how far the noise goes), and what
two cores give the transform alone (two processes parsing in memory at once against one:
the ceiling of the worker speed-up on this machine). Once, on a 2,000-file subset, (d)
trafilatura's docs/s if it is installed (the ``bench`` extra). Prints medians (peak RSS: the
median of the runs' peaks), the ratios, and between each two consecutive sizes the
steady-state throughput (extra files per extra second of a full run) and the growth of peak
RSS. Corpora already in ``--workdir`` (``corpus-N``, or ``corpus-N-scattered`` for
``--rescrapes scattered``: see scripts/synthetic_corpus.py) are reused.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_corpus import RESCRAPE_PLACEMENTS, generate

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


def _tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants (worker processes, Prefect's
    temporary server), from /proc."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return total


def broadsheet_run(
    corpus: Path,
    warehouse: Path,
    *extra: str,
    sample_rss: bool = True,
    prefect_home: Path | None = None,
) -> tuple[float, int, float]:
    """Wall seconds, peak RSS of the whole process tree (KiB; 0 unless ``sample_rss``) and the
    seconds the CLI reports as ingesting (without Prefect start-up), of one ``broadsheet run``
    (in ``prefect_home`` when given, else in the environment's Prefect home).

    Sampling RSS reads /proc for every process and thread of the tree every 50 ms, about 1 ms
    of CPU each time: on two cores that CPU comes out of a run that keeps both busy, so runs
    compared for speed alone (the worker scaling) do not sample."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(BROADSHEET), "run", str(corpus), "--warehouse", str(warehouse), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=dict(
            os.environ,
            COLUMNS="200",
            **({"PREFECT_HOME": str(prefect_home)} if prefect_home is not None else {}),
        ),
    )
    peak = 0
    while sample_rss and process.poll() is None:
        peak = max(peak, _tree_rss_kib(process.pid))
        time.sleep(0.05)
    output = process.communicate()[0].decode()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"broadsheet run failed with exit code {process.returncode}")
    match = re.search(r"\(([0-9.]+) s ingesting", output)
    return wall, peak, float(match.group(1)) if match else float("nan")


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
            bodies.append(parse_envelope(decode_document(path.read_bytes())).body_text)
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
    parser.add_argument(
        "--scaling-size",
        type=int,
        default=None,
        help="corpus size for 1 against 2 worker processes (default: the first of --sizes)",
    )
    parser.add_argument(
        "--rescrapes",
        choices=RESCRAPE_PLACEMENTS,
        default="nearby",
        help="where the corpora's re-scrapes fall (see scripts/synthetic_corpus.py)",
    )
    options = parser.parse_args()
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="broadsheet-bench-"))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; medians of {options.repeats}; re-scrapes "
        f"{options.rescrapes}; workdir {workdir}"
    )
    print(
        f"{'files':>8} {'floor docs/s':>13} {'run docs/s':>11} {'run/floor':>10} "
        f"{'run wall s':>11} {'no-op s':>8} {'no-op/run':>10} {'no-op ingest':>13} "
        f"{'ingest ratio':>13} {'peak RSS MiB':>13} {'no-op RSS MiB':>14}"
    )
    walls: dict[int, float] = {}
    peak_rss: dict[int, float] = {}
    noop_rss: dict[int, float] = {}
    floor_rates: dict[int, float] = {}
    for size in options.sizes:
        corpus = _corpus(workdir, size, options.rescrapes)
        floors, runs, noops, peaks, noop_peaks = [], [], [], [], []
        run_ingests, noop_ingests = [], []
        for repeat in range(options.repeats):
            floors.append(floor(corpus))
            warehouse = workdir / f"warehouse-{size}-{repeat}"
            shutil.rmtree(warehouse, ignore_errors=True)
            wall, peak, ingest = broadsheet_run(corpus, warehouse)
            runs.append(wall)
            peaks.append(peak)
            run_ingests.append(ingest)
            noop_wall, noop_peak, noop_ingest = broadsheet_run(corpus, warehouse)
            noops.append(noop_wall)
            noop_peaks.append(noop_peak)
            noop_ingests.append(noop_ingest)
            shutil.rmtree(warehouse)
        floor_s, run_s, noop_s, run_ingest_s, noop_ingest_s = map(
            statistics.median, (floors, runs, noops, run_ingests, noop_ingests)
        )
        walls[size] = run_s
        floor_rates[size] = size / floor_s
        peak_rss[size] = statistics.median(peaks) / 1024
        noop_rss[size] = statistics.median(noop_peaks) / 1024
        print(
            f"{size:>8,} {size / floor_s:>13,.0f} {size / run_s:>11,.0f} "
            f"{floor_s / run_s:>10.2f} {run_s:>11.1f} {noop_s:>8.1f} {noop_s / run_s:>10.2f} "
            f"{noop_ingest_s:>13.2f} {noop_ingest_s / run_ingest_s:>13.3f} "
            f"{peak_rss[size]:>13.0f} {noop_rss[size]:>14.0f}",
            flush=True,
        )
    sizes = sorted(options.sizes)
    for small, large in itertools.pairwise(sizes):
        steady = (large - small) / (walls[large] - walls[small])
        floor_rate = floor_rates[large]  # the median measured beside the runs of that size
        growth = peak_rss[large] / peak_rss[small]
        print(
            f"{small:,} -> {large:,} files: steady state {steady:,.0f} docs/s, "
            f"{steady / floor_rate:.2f} x the floor; peak RSS x{growth:.2f}, "
            f"a no-op's x{noop_rss[large] / noop_rss[small]:.2f}"
        )
    _fixed_cost_and_scaling(
        workdir, options.scaling_size or options.sizes[0], options.repeats, options.rescrapes
    )
    _two_transforms_at_once(_corpus(workdir, options.sizes[0], options.rescrapes), options.repeats)
    rate = trafilatura_rate(_corpus(workdir, options.sizes[0], options.rescrapes))
    if rate is None:
        print("trafilatura: not installed (pip install -e '.[bench]')")
    else:
        print(f"trafilatura on a 2,000-file subset: {rate:,.0f} docs/s")


_TRANSFORM_PASS_FILES = 6_000
"""Files a timed transform pass parses (``_two_transforms_at_once``)."""


def _two_transforms_at_once(corpus: Path, repeats: int) -> None:
    """What two cores give this workload with nothing else running: one process timing
    ``parse_articles`` over ``_TRANSFORM_PASS_FILES`` files in memory, alone and two at once,
    alternating. The worker-process speed-up of a run cannot exceed the ratio printed: the
    two workers also share the cores with the flow and Prefect's server, and the run's
    serial part does not shrink."""
    alone: list[float] = []
    paired: list[float] = []
    for _ in range(repeats):
        alone += _transform_passes(corpus, 1)
        paired += _transform_passes(corpus, 2)
    one, each = statistics.median(alone), statistics.median(paired)
    print(
        f"two transform processes at once (no Prefect, no I/O): each takes x{each / one:.2f} "
        f"the time of one alone, so two give {2 * one / each:.2f} x one"
    )


def _transform_passes(corpus: Path, processes: int) -> list[float]:
    """Seconds of one timed pass in each of ``processes`` children started together."""
    command = [sys.executable, __file__, "--transform-pass", str(corpus)]
    children = [
        subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(processes)
    ]
    return [float(child.communicate()[0]) for child in children]


def _transform_pass(corpus: Path) -> float:
    """Load files into memory, warm up, then time ``parse_articles`` over them in the
    pipeline's chunks."""
    from broadsheet.pipeline import PARSE_CHUNK
    from transforms import parse_articles

    documents = [path.read_bytes() for path in _files(corpus)[:_TRANSFORM_PASS_FILES]]
    parse_articles(documents[:PARSE_CHUNK])
    started = time.perf_counter()
    for start in range(0, len(documents), PARSE_CHUNK):
        parse_articles(documents[start : start + PARSE_CHUNK])
    return time.perf_counter() - started


def _corpus(workdir: Path, size: int, rescrapes: str) -> Path:
    """The synthetic corpus of ``size`` files in ``workdir``, generated on first use."""
    corpus = workdir / (f"corpus-{size}" if rescrapes == "nearby" else f"corpus-{size}-{rescrapes}")
    if not corpus.exists():
        generate(corpus, size, rescrapes=rescrapes)
    return corpus


def _fixed_cost_and_scaling(workdir: Path, size: int, repeats: int, rescrapes: str) -> None:
    """A 10-file run (wall, Prefect start-up included), alternating with a user's first: in a
    new Prefect home, whose database Prefect's server creates; then 1 against 2 worker
    processes on the first corpus (the seconds the CLI reports as ingesting), alternating.
    None of these samples RSS."""
    ten = _corpus(workdir, 10, rescrapes)
    fixed: list[float] = []
    first: list[float] = []
    new_home = workdir / "prefect-home-new"
    for repeat in range(repeats):
        warehouse = workdir / f"warehouse-10-{repeat}"
        for times, home in ((fixed, None), (first, new_home)):
            shutil.rmtree(warehouse, ignore_errors=True)
            shutil.rmtree(new_home, ignore_errors=True)
            times.append(broadsheet_run(ten, warehouse, sample_rss=False, prefect_home=home)[0])
        shutil.rmtree(warehouse)
        shutil.rmtree(new_home)
    print(
        f"fixed cost (10-file run, wall): {statistics.median(fixed):.1f} s; "
        f"a first run, in a new Prefect home: {statistics.median(first):.1f} s"
    )
    corpus = _corpus(workdir, size, rescrapes)
    ingest: dict[int, list[float]] = {1: [], 2: []}
    for repeat in range(repeats):
        for workers in (1, 2):
            warehouse = workdir / f"warehouse-w{workers}-{repeat}"
            shutil.rmtree(warehouse, ignore_errors=True)
            ingest[workers].append(
                broadsheet_run(corpus, warehouse, "--workers", str(workers), sample_rss=False)[2]
            )
            shutil.rmtree(warehouse)
    one, two = statistics.median(ingest[1]), statistics.median(ingest[2])
    paired = [alone / both for alone, both in zip(ingest[1], ingest[2], strict=True)]
    print(
        f"worker processes on {size:,} files (ingesting s): 1 worker {one:.1f} s, "
        f"2 workers {two:.1f} s, speed-up {one / two:.2f} x; each repeat's own ratio: median "
        f"{statistics.median(paired):.2f} x ({min(paired):.2f}-{max(paired):.2f})"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--transform-pass"]:
        print(_transform_pass(Path(sys.argv[2])))
    else:
        main()
