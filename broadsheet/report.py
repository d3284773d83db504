"""A self-contained HTML report of a warehouse: the data as JSON, drawn as SVG by inline
JavaScript. No CDN, no network: the file works offline, opened from disk."""

from __future__ import annotations

import html
import itertools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broadsheet.warehouse_query import connect, to_json_value

TOP_SERIES = 6
HISTOGRAM_EDGES = (0, 1, 2, 3, 5, 10, 20, 50)

CHARTS: tuple[tuple[str, str, str], ...] = (
    ("per_day_by_feed", "Articles per day, by feed", "stacked"),
    ("per_day_by_domain", "Articles per day, by domain", "stacked"),
    ("languages", "Language mix", "bars"),
    ("paragraph_counts", "Paragraphs per article", "bars"),
    ("image_counts", "Images per article", "bars"),
    ("rejects", "Rejected files by reason", "bars"),
    ("run_seconds", "Run history: duration (s)", "bars"),
    ("run_throughput", "Run history: files per second", "bars"),
)
"""(data key, title, kind) of every chart, in page order."""


def collect(root: Path) -> dict[str, Any]:
    """Every series the report draws, computed with DuckDB over the warehouse views."""
    connection = connect(root)

    def rows(sql: str) -> list[tuple[Any, ...]]:
        return connection.execute(sql).fetchall()

    def stacked(label_sql: str) -> dict[str, Any]:
        top = [
            label
            for (label,) in rows(
                f"SELECT {label_sql} AS label FROM articles GROUP BY ALL "
                f"ORDER BY count(*) DESC, label LIMIT {TOP_SERIES}"
            )
        ]
        listed = ", ".join("'" + str(label).replace("'", "''") + "'" for label in top) or "''"
        data = rows(
            f"SELECT strftime(published_at AT TIME ZONE 'UTC', '%Y-%m-%d') AS day, "
            f"CASE WHEN {label_sql} IN ({listed}) THEN {label_sql} ELSE 'other' END AS series, "
            "count(*) FROM articles GROUP BY ALL ORDER BY day, series"
        )
        return {
            "series": [*map(str, top), "other"],
            "points": [[day, series, count] for day, series, count in data],
        }

    def histogram(column: str) -> list[list[Any]]:
        edges = HISTOGRAM_EDGES
        cases = " ".join(
            f"WHEN n < {high} THEN '{low}' "
            if high - low == 1
            else f"WHEN n < {high} THEN '{low}-{high - 1}' "
            for low, high in itertools.pairwise(edges)
        )
        data = dict(
            rows(
                f"SELECT CASE {cases} ELSE '{edges[-1]}+' END AS bin, count(*) "
                f"FROM (SELECT len({column}) AS n FROM articles) GROUP BY bin"
            )
        )
        labels = [
            str(low) if high - low == 1 else f"{low}-{high - 1}"
            for low, high in itertools.pairwise(edges)
        ] + [f"{edges[-1]}+"]
        return [[label, data.get(label, 0)] for label in labels]

    runs = rows(
        "SELECT run_id, epoch_ms(finished_at) - epoch_ms(started_at), files_seen "
        "FROM runs ORDER BY started_at"
    )
    domain = "coalesce(regexp_extract(url, '^[a-zA-Z]+://([^/:]+)', 1), '?')"
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "warehouse": str(root),
        "totals": dict(
            zip(
                ("articles", "versions", "rejects", "runs"),
                rows(
                    "SELECT (SELECT count(*) FROM articles), "
                    "(SELECT count(*) FROM article_versions), "
                    "(SELECT count(*) FROM rejects), (SELECT count(*) FROM runs)"
                )[0],
                strict=True,
            )
        ),
        "per_day_by_feed": stacked("coalesce(feed, '(no feed)')"),
        "per_day_by_domain": stacked(domain),
        "languages": [
            [str(label), count]
            for label, count in rows(
                "SELECT coalesce(language, 'unknown') AS label, count(*) FROM articles "
                "GROUP BY ALL ORDER BY 2 DESC, 1"
            )
        ],
        "paragraph_counts": histogram("paragraphs"),
        "image_counts": histogram("image_urls"),
        "rejects": [
            [reason, count]
            for reason, count in rows(
                "SELECT reason, count(*) FROM rejects GROUP BY ALL ORDER BY 2 DESC, 1"
            )
        ],
        "run_seconds": [[run_id, round(ms / 1000, 2)] for run_id, ms, _ in runs],
        "run_throughput": [
            [run_id, round(files * 1000 / max(ms, 1))] for run_id, ms, files in runs
        ],
    }


def render(data: dict[str, Any]) -> str:
    """The report page for the collected data."""
    payload = json.dumps(to_json_value(data), ensure_ascii=False).replace("</", "<\\/")
    totals = data["totals"]
    sections = "\n".join(
        f"<section><h2>{html.escape(title)}</h2>"
        f'<div class="chart" data-chart="{key}" data-kind="{kind}"></div></section>'
        for key, title, kind in CHARTS
    )
    return _PAGE.format(
        warehouse=html.escape(data["warehouse"]),
        generated=html.escape(data["generated_at"]),
        articles=totals["articles"],
        versions=totals["versions"],
        rejects=totals["rejects"],
        runs=totals["runs"],
        sections=sections,
        payload=payload,
        script=_SCRIPT,
    )


def write_report(root: Path, out: Path) -> Path:
    """Collect, render and write the report; returns the file written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(collect(root)), encoding="utf-8")
    return out


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Broadsheet report</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #222; }}
section {{ margin: 1.5rem 0; }} h2 {{ font-size: 1rem; margin: 0 0 .4rem; }}
.chart svg {{ width: 100%; max-width: 960px; height: auto; border: 1px solid #eee; }}
.legend span {{ display: inline-block; margin-right: 1em; }}
.legend i {{ display: inline-block; width: .8em; height: .8em; margin-right: .3em; }}
.empty {{ color: #888; }} .totals b {{ margin-right: 1.5em; }}
</style></head><body>
<h1>Broadsheet report</h1>
<p>Warehouse <code>{warehouse}</code>, generated {generated}.</p>
<p class="totals"><b>{articles} articles</b><b>{versions} superseded versions</b>
<b>{rejects} rejects</b><b>{runs} runs</b></p>
{sections}
<script type="application/json" id="report-data">{payload}</script>
<script>{script}</script>
</body></html>
"""

_SCRIPT = """
(function () {
  const data = JSON.parse(document.getElementById('report-data').textContent);
  const NS = 'http://www.w3.org/2000/svg';
  const colours = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1'];
  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const key in attrs) node.setAttribute(key, attrs[key]);
    if (parent) parent.appendChild(node);
    return node;
  }
  function svg(container, width, height) {
    return el('svg', {viewBox: '0 0 ' + width + ' ' + height, role: 'img'}, container);
  }
  function bars(container, points) {
    const width = 900, barHeight = 22, left = 220;
    const max = Math.max(1, ...points.map(p => p[1]));
    const root = svg(container, width, points.length * barHeight + 10);
    points.forEach((p, i) => {
      const y = 5 + i * barHeight;
      el('text', {x: left - 8, y: y + 15, 'text-anchor': 'end', 'font-size': 12}, root)
        .textContent = p[0];
      const bar = el('rect', {class: 'mark', x: left, y: y + 2, height: barHeight - 6,
        width: Math.max(1, (width - left - 80) * p[1] / max), fill: colours[0]}, root);
      el('title', {}, bar).textContent = p[0] + ': ' + p[1];
      el('text', {x: left + 6 + (width - left - 80) * p[1] / max, y: y + 15, 'font-size': 12},
        root).textContent = p[1];
    });
    return points.length;
  }
  function stacked(container, chart) {
    const days = [...new Set(chart.points.map(p => p[0]))].sort();
    const totals = {}, offsets = {};
    chart.points.forEach(p => { totals[p[0]] = (totals[p[0]] || 0) + p[2]; });
    const max = Math.max(1, ...Object.values(totals));
    const width = 900, height = 260, bottom = 30, left = 40;
    const step = (width - left - 10) / Math.max(1, days.length);
    const root = svg(container, width, height);
    const index = Object.fromEntries(days.map((d, i) => [d, i]));
    chart.points.forEach(p => {
      const h = (height - bottom - 10) * p[2] / max, x = left + index[p[0]] * step;
      const y0 = offsets[p[0]] || 0;
      const mark = el('rect', {class: 'mark', x: x, width: Math.max(1, step - 1), height: h,
        y: height - bottom - y0 - h,
        fill: colours[chart.series.indexOf(p[1]) % colours.length]}, root);
      el('title', {}, mark).textContent = p[0] + ' ' + p[1] + ': ' + p[2];
      offsets[p[0]] = y0 + h;
    });
    el('text', {x: left, y: height - 8, 'font-size': 12}, root).textContent = days[0] || '';
    el('text', {x: width - 10, y: height - 8, 'font-size': 12, 'text-anchor': 'end'}, root)
      .textContent = days[days.length - 1] || '';
    el('text', {x: left - 4, y: 20, 'font-size': 12, 'text-anchor': 'end'}, root)
      .textContent = max;
    const legend = document.createElement('div');
    legend.className = 'legend';
    chart.series.forEach((name, i) => {
      const item = document.createElement('span');
      item.innerHTML = '<i style="background:' + colours[i % colours.length] + '"></i>';
      item.appendChild(document.createTextNode(name));
      legend.appendChild(item);
    });
    container.appendChild(legend);
    return chart.points.length;
  }
  document.querySelectorAll('.chart').forEach(container => {
    const chart = data[container.dataset.chart];
    const empty = container.dataset.kind === 'stacked' ? !chart.points.length : !chart.length;
    if (empty) {
      container.innerHTML = '<p class="empty">No data.</p>';
      container.dataset.points = '0';
      return;
    }
    const drawn = container.dataset.kind === 'stacked' ? stacked(container, chart)
                                                       : bars(container, chart);
    container.dataset.points = String(drawn);
  });
  document.body.dataset.rendered = 'true';
})();
"""
