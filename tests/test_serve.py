"""``broadsheet serve``: a scheduled deployment that really fires, then stops cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import polars as pl
import pytest

pytestmark = pytest.mark.slow


def test_serve_runs_the_ingest_on_its_cron_schedule_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    warehouse = tmp_path / "warehouse"
    executable = Path(sys.executable).with_name("broadsheet")
    process = subprocess.Popen(
        [str(executable), "serve", "--cron", "* * * * *", "--warehouse", str(warehouse)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        match = re.search(r"Prefect UI at (http://127\.0\.0\.1:\d+)", first_line)
        assert match, first_line
        deadline = time.monotonic() + 150
        runs_file = warehouse / "runs" / "part-0.parquet"
        while not runs_file.exists():
            assert process.poll() is None, "serve exited early"
            assert time.monotonic() < deadline, "no scheduled run within 150 s"
            time.sleep(1)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "Stopped." in output
    assert "Traceback" not in output
    runs = pl.read_parquet(runs_file)
    assert runs.row(0, named=True)["articles_written"] == 17
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"{match.group(1)}/api/health", timeout=2)
