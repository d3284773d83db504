"""Render synthetic archive files in every format, for tests and property-based round trips."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

_MARKDOWN_SPECIAL = re.compile(r"([\\\[\]])")


def link_line(title: str, url: str) -> str:
    """The ``[title](url)`` header line, escaping what Markdown would otherwise eat."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", title)
    return f"[{escaped}]({url})"


def front_matter(
    title: str,
    url: str,
    epoch_ms: int,
    *,
    author: str = "Sample Author",
    categories: tuple[str, ...] = ("sample",),
) -> str:
    """A Jekyll front matter block as the archivers write it."""
    date = datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat().replace("+00:00", "Z")
    return (
        "---\nlayout: post\n"
        f"title: {json.dumps(title, ensure_ascii=False)}\n"
        f"date: {date}\nauthor: {author}\nfrom: {url}\n"
        f"tags: [ {', '.join(categories)} ]\ncategories: [ {', '.join(categories)} ]\n---\n"
    )


def bare(title: str, url: str, epoch_ms: int, body: str, *, newline: str = "\n") -> str:
    """``bare`` format: epoch comment, title link, separator, blank line, body."""
    return newline.join([f"<!--{epoch_ms}-->", link_line(title, url), "------", "", body])


def with_front_matter(title: str, url: str, epoch_ms: int, body: str) -> str:
    """``front_matter`` format: front matter followed by the bare header."""
    return front_matter(title, url, epoch_ms) + bare(title, url, epoch_ms, body)


def dated(title: str, url: str, epoch_ms: int, body: str) -> str:
    """``dated`` format: title link, separator, ``日期：`` RFC 2822 line, blank line, body."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return "\n".join(
        [link_line(title, url), "------", f"日期：{format_datetime(moment)}", "", body]
    )


def front_matter_html(title: str, url: str, epoch_ms: int, body: str) -> str:
    """``front_matter_html`` format: front matter followed directly by HTML."""
    return front_matter(title, url, epoch_ms) + "\n" + body


def write_stories(directory: Path, count: int) -> Path:
    """``directory``, made and holding ``count`` short bare-header articles ``0.md``,
    ``1.md``, ... of January 2024, each at its own URL."""
    directory.mkdir(parents=True)
    for number in range(count):
        url = f"https://news.example/{number}"
        (directory / f"{number}.md").write_text(
            bare(f"Story {number}", url, 1_704_067_200_000, "<p>Text.</p>"), encoding="utf-8"
        )
    return directory
