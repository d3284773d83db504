"""Reading a warehouse: query, runs, show, report (rendered in headless Chromium), dictionary."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from lxml import html as lxml_html
from typer.testing import CliRunner

from broadsheet import cli as cli_module
from broadsheet.cli import app
from broadsheet.data_dictionary import render
from broadsheet.pipeline import run_ingest
from broadsheet.report import CHARTS

REPO_ROOT = Path(__file__).resolve().parents[1]
RFI_URL = "https://www.rfi.fr/cn/%E6%B3%95%E5%9B%BD/20240217-%E6%B8%AF%E5%8F%A3%E6%B8%85%E6%B4%81"


@pytest.fixture(scope="module")
def warehouse(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("consume") / "warehouse"
    run_ingest([str(sample_dir)], str(root))
    return root


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_query_formats(warehouse: Path) -> None:
    sql = "SELECT source_format, count(*) AS n FROM articles GROUP BY ALL ORDER BY n DESC, 1"
    code, out, _ = invoke("query", sql, "--warehouse", str(warehouse), "--format", "csv")
    assert code == 0
    assert list(csv.reader(io.StringIO(out))) == [
        ["source_format", "n"],
        ["bare", "7"],
        ["front_matter", "5"],
        ["dated", "3"],
        ["front_matter_html", "2"],
    ]
    code, out, _ = invoke(
        "query",
        "SELECT reason, count(*) AS n FROM rejects GROUP BY ALL ORDER BY 1",
        "-w",
        str(warehouse),
        "-f",
        "json",
    )
    assert code == 0
    assert json.loads(out) == [
        {"reason": "binary_content", "n": 1},
        {"reason": "empty_file", "n": 1},
        {"reason": "not_utf8", "n": 1},
        {"reason": "truncated_header", "n": 2},
        {"reason": "unknown_format", "n": 1},
    ]
    code, out, _ = invoke(
        "query", "SELECT count(*) AS versions FROM article_versions", "-w", str(warehouse)
    )
    assert code == 0
    assert "versions" in out
    assert "1 row(s)" in out


def test_query_errors_are_one_line(warehouse: Path, tmp_path: Path) -> None:
    code, _, err = invoke("query", "SELEC nothing", "-w", str(warehouse))
    assert code == 2
    assert err.startswith("error: SQL error: Parser Error")
    assert len(err.strip().splitlines()) == 1
    code, _, err = invoke("query", "SELECT 1", "-w", str(tmp_path / "none"))
    assert code == 1
    assert err.strip() == (
        f"error: no warehouse at {(tmp_path / 'none').resolve()}: run "
        f"'broadsheet run --warehouse {(tmp_path / 'none').resolve()}' first"
    )


def test_runs_lists_recent_runs(warehouse: Path) -> None:
    code, out, _ = invoke("runs", "-w", str(warehouse), "-f", "json")
    assert code == 0
    runs = json.loads(out)
    assert len(runs) == 1
    assert (runs[0]["files_seen"], runs[0]["articles_written"], runs[0]["rejected"]) == (23, 17, 6)


@pytest.mark.parametrize(("width", "as_records"), [(80, True), (300, False)])
def test_runs_in_a_narrow_terminal_prints_each_run_as_lines(
    warehouse: Path, monkeypatch: pytest.MonkeyPatch, width: int, as_records: bool
) -> None:
    """Eleven column names do not fit in 80 columns: squeezed into a table, every value was
    folded four characters a line. Each run then prints as one line per column instead."""
    monkeypatch.setattr(cli_module.console, "width", width)
    code, out, _ = invoke("runs", "-w", str(warehouse))
    assert code == 0
    run_id = json.loads(invoke("runs", "-w", str(warehouse), "-f", "json")[1])[0]["run_id"]
    assert bool(re.search(rf"^run_id +{run_id} *$", out, re.MULTILINE)) is as_records, out
    assert ("┃ run_id" in out) is not as_records, out
    assert all(len(line) <= width for line in out.splitlines())


def test_show_by_url_or_id(warehouse: Path) -> None:
    code, out, _ = invoke(
        "show",
        RFI_URL.replace("https://www.rfi.fr", "HTTPS://WWW.RFI.FR:443"),
        "-w",
        str(warehouse),
    )
    assert code == 0
    assert (
        out.splitlines()[0]
        == "港口城市启动海岸清洁计划，渔民与志愿者共同参与 – 法国国际广播电台 - RFI"
    )
    assert "[11] 这项计划的进展报告将每半年公布一次" in out
    assert "  - facebook: https://rfi.my/Smpl.F" in out
    code, out, _ = invoke("show", RFI_URL, "-w", str(warehouse), "-f", "json")
    document = json.loads(out)
    code_by_id, out_by_id, _ = invoke(
        "show", document["article"]["article_id"], "-w", str(warehouse), "-f", "json"
    )
    assert (code, code_by_id) == (0, 0)
    assert json.loads(out_by_id) == document
    assert document["other_versions"] == []


def test_show_unknown_article_exits_4(warehouse: Path) -> None:
    code, _, err = invoke("show", "0" * 32, "-w", str(warehouse))
    assert code == 4
    assert err.strip() == f"error: no article '{'0' * 32}' in {warehouse}"


def test_dictionary_page_is_in_sync_with_the_schemas() -> None:
    page = (REPO_ROOT / "docs" / "data-dictionary.md").read_text(encoding="utf-8")
    assert page == render(), (
        "docs/data-dictionary.md is stale: run 'broadsheet dictionary "
        "--out docs/data-dictionary.md'"
    )
    code, out, _ = invoke("dictionary")
    assert code == 0
    assert out.rstrip("\n") == render().rstrip("\n")


def test_report_is_self_contained(warehouse: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    code, stdout, _ = invoke("report", "--out", str(out), "-w", str(warehouse))
    assert code == 0
    assert str(out.resolve()) in stdout
    page = out.read_text(encoding="utf-8")
    tree = lxml_html.fromstring(page)
    assert not _nodes(tree, "//script[@src] | //link[@href] | //img[@src] | //iframe")
    assert len(_nodes(tree, "//div[@class='chart']")) == len(CHARTS)


def _nodes(tree: Any, expression: str) -> list[Any]:
    """XPath results as a list (lxml's stubs type them as a union)."""
    found = tree.xpath(expression)
    assert isinstance(found, list)
    return found


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
def test_report_draws_every_chart_in_headless_chromium(warehouse: Path, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/run installs Debian's chromium")
        pytest.skip("chromium not installed (apt-get install chromium)")
    out = tmp_path / "report.html"
    assert invoke("report", "--out", str(out), "-w", str(warehouse))[0] == 0
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            out.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    dom = lxml_html.fromstring(result.stdout)
    assert _nodes(dom, "//body/@data-rendered") == ["true"]
    for key, title, _ in CHARTS:
        chart = _nodes(dom, f"//div[@data-chart='{key}']")[0]
        marks = _nodes(chart, ".//*[local-name()='rect' and @class='mark']")
        assert int(chart.get("data-points")) > 0, f"chart {title!r} drew no data"
        assert len(marks) == int(chart.get("data-points")), title
