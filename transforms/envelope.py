"""Split an archive file into its header fields and its HTML body, and tell which format it is.

Four formats share one family (see README, "Input formats"):

- ``bare``: ``<!--epoch ms-->``, ``[title](url)``, ``------``, blank line, HTML.
- ``front_matter``: YAML front matter, then the bare header.
- ``dated``: ``[title](url)``, ``------``, ``日期：<RFC 2822 date>``, blank line, HTML.
- ``front_matter_html``: YAML front matter followed directly by HTML.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

from transforms import speedups
from transforms.errors import RejectError, RejectReason
from transforms.links import is_http_url

_EPOCH_LINE = re.compile(r"<!--\s*(-?\d+)\s*-->")
_LINK_LINE = re.compile(r"\[(?P<title>.*)\]\((?P<url>[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)\)")
_SEPARATOR = "------"
_DATE_LINE = re.compile(r"日期[：:]\s*(?P<date>.+)")
_MARKDOWN_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_FRONT_MATTER_KEY = re.compile(r"[A-Za-z_][\w-]*")
_USUAL_FRONT_MATTER_KEYS = frozenset(
    ("layout", "title", "date", "author", "from", "tags", "categories")
)
"""Keys archivers write, valid by ``_FRONT_MATTER_KEY`` and spared the pattern."""
# Plausible publication times: 1990-01-01 to 2100-01-01, in epoch milliseconds.
_MIN_EPOCH_MS = 631_152_000_000
_MAX_EPOCH_MS = 4_102_444_800_000


class SourceFormat(StrEnum):
    """The archive formats Broadsheet reads; stored in ``articles.source_format``."""

    BARE = "bare"
    FRONT_MATTER = "front_matter"
    DATED = "dated"
    FRONT_MATTER_HTML = "front_matter_html"


@dataclass(frozen=True, slots=True)
class Envelope:
    """What an archive file says about its article, before the body is extracted."""

    source_format: SourceFormat
    title: str
    url: str
    published_at_ms: int
    author: str | None
    feed: str | None
    body_html: str | bytes
    """The HTML after the header: text from ``parse_envelope``, the file's own UTF-8 bytes
    from ``read_envelope``."""

    @property
    def body_text(self) -> str:
        """``body_html`` as text, whichever way the header was read."""
        body = self.body_html
        return body if isinstance(body, str) else body.decode("utf-8")


FrontMatterValue = str | list[str]


def parse_envelope(text: str) -> Envelope:
    """Parse the header of a decoded archive file; raise ``RejectError`` when it has none."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    front_matter: dict[str, FrontMatterValue] | None = None
    position = 0
    if text.startswith("---\n"):
        close = text.find("\n---", 3)
        while close != -1 and text[close + 4 : close + 5] not in ("\n", ""):
            close = text.find("\n---", close + 4)
        if close == -1:
            raise RejectError(
                RejectReason.TRUNCATED_HEADER, "front matter opened with '---' is never closed"
            )
        front_matter = parse_front_matter(text[4 : close + 1])
        position = close + 5

    first, after_first = _next_line(text, _skip_blank_lines(text, position))
    epoch_match = _EPOCH_LINE.fullmatch(first.strip())
    if epoch_match:
        title, url, after_header = _read_link_and_separator(text, after_first)
        published_at_ms = _epoch_ms(epoch_match.group(1))
        source_format = SourceFormat.FRONT_MATTER if front_matter is not None else SourceFormat.BARE
        return _envelope(
            source_format, title, url, published_at_ms, front_matter, text[after_header:]
        )
    if _LINK_LINE.fullmatch(first.strip()):
        title, url, after_header = _read_link_and_separator(text, position)
        date_line, after_date = _next_line(text, after_header)
        date_match = _DATE_LINE.fullmatch(date_line.strip())
        if date_match is None:
            if after_header >= len(text):
                raise RejectError(
                    RejectReason.TRUNCATED_HEADER,
                    "file ends after '------' where a date line was expected",
                )
            raise RejectError(
                RejectReason.UNKNOWN_FORMAT,
                "header has a title link but neither an epoch comment nor a '日期：' line",
            )
        published_at_ms = _rfc2822_ms(date_match.group("date"))
        return _envelope(
            SourceFormat.DATED, title, url, published_at_ms, front_matter, text[after_date:]
        )
    if front_matter is not None:
        return _front_matter_html_envelope(front_matter, text[position:])
    raise RejectError(
        RejectReason.UNKNOWN_FORMAT,
        "file starts with neither front matter, an epoch comment nor a title link",
    )


def read_envelope(raw: bytes, start: int = 0) -> Envelope | None:
    """``parse_envelope`` of ``raw[start:]`` decoded, read from the bytes themselves by the C
    header reader (``transforms._speedups.read_header``), with ``body_html`` left as the
    file's UTF-8 bytes; None when the reader is not built or leaves the file to
    ``parse_envelope`` (any file it would reject among them: it then says why).

    Decoding a whole file to read its header, and encoding its body back for libxml2, cost
    about a tenth of the transform (docs/performance-history.md)."""
    native = speedups.module()
    header = native.read_header(raw, start) if native is not None else None
    if header is None:
        return None
    source_format, front_matter, title, url, date, body_start = header
    body = raw[start + body_start :]
    try:
        if front_matter is not None and source_format == SourceFormat.FRONT_MATTER_HTML:
            return _front_matter_html_envelope(front_matter, body)
        if title is None or url is None or date is None:
            raise AssertionError(f"read_header gave a {source_format} header without its fields")
        published_at_ms = (
            _rfc2822_ms(date) if source_format == SourceFormat.DATED else _epoch_ms(date)
        )
        return _envelope(
            SourceFormat(source_format), title, url, published_at_ms, front_matter, body
        )
    except RejectError:
        return None


def parse_front_matter(block: str) -> dict[str, FrontMatterValue]:
    """Parse the flat ``key: value`` YAML subset archivers write (quoted strings, flow lists)."""
    fields: dict[str, FrontMatterValue] = {}
    for number, line in enumerate(block.split("\n"), start=2):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        # The first colon ends the key (a key holds none); a value must follow a space.
        key, colon, value = stripped.partition(":")
        key = key.rstrip()
        if (
            not colon
            or (value and not value[0].isspace())
            or (key not in _USUAL_FRONT_MATTER_KEYS and not _FRONT_MATTER_KEY.fullmatch(key))
        ):
            raise RejectError(
                RejectReason.INVALID_FRONT_MATTER,
                f"front matter line {number} is not 'key: value': {stripped[:60]!r}",
            )
        fields[key] = _front_matter_value(value.strip())
    return fields


def _front_matter_value(raw: str) -> FrontMatterValue:
    if raw.startswith("[") and raw.endswith("]"):
        return [item for item in (_scalar(part.strip()) for part in raw[1:-1].split(",")) if item]
    return _scalar(raw)


def _scalar(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        if "\\" not in raw:
            return raw[1:-1]
        try:
            value = json.loads(raw)
        except ValueError:
            value = re.sub(r"\\(.)", r"\1", raw[1:-1])
        return str(value)
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return raw[1:-1].replace("''", "'")
    return raw


def _front_matter_html_envelope(
    front_matter: dict[str, FrontMatterValue], body: str | bytes
) -> Envelope:
    date = _string_field(front_matter, "date")
    if not date:
        raise RejectError(RejectReason.MISSING_FIELD, "front matter has no 'date'")
    return _envelope(
        SourceFormat.FRONT_MATTER_HTML,
        _string_field(front_matter, "title"),
        _string_field(front_matter, "from"),
        _iso8601_ms(date),
        front_matter,
        body,
    )


def _envelope(
    source_format: SourceFormat,
    title: str,
    url: str,
    published_at_ms: int,
    front_matter: dict[str, FrontMatterValue] | None,
    body: str | bytes,
) -> Envelope:
    front_matter = front_matter or {}
    title = title or _string_field(front_matter, "title")
    url = url or _string_field(front_matter, "from")
    if not title.strip():
        raise RejectError(RejectReason.MISSING_FIELD, "article has no title")
    if not url:
        raise RejectError(RejectReason.MISSING_FIELD, "article has no URL")
    if not is_http_url(url):
        raise RejectError(RejectReason.INVALID_URL, f"article URL is not http(s): {url[:80]!r}")
    categories = front_matter.get("categories")
    feed = categories[0] if isinstance(categories, list) and categories else None
    author = _string_field(front_matter, "author") or None
    body = body.lstrip(b"\n") if isinstance(body, bytes) else body.lstrip("\n")
    return Envelope(source_format, title, url, published_at_ms, author, feed, body)


def _string_field(front_matter: dict[str, FrontMatterValue], key: str) -> str:
    value = front_matter.get(key, "")
    return value if isinstance(value, str) else ", ".join(value)


def _read_link_and_separator(text: str, position: int) -> tuple[str, str, int]:
    link, after_link = _next_line(text, position)
    match = _LINK_LINE.fullmatch(link.strip())
    if match is None:
        if not link.strip() and after_link >= len(text):
            raise RejectError(
                RejectReason.TRUNCATED_HEADER,
                "file ends after the epoch comment; no '[title](url)' line",
            )
        raise RejectError(
            RejectReason.UNKNOWN_FORMAT,
            f"expected a '[title](url)' line, found {link.strip()[:60]!r}",
        )
    separator, after_separator = _next_line(text, after_link)
    if separator.strip() != _SEPARATOR:
        if not separator.strip() and after_separator >= len(text):
            raise RejectError(
                RejectReason.TRUNCATED_HEADER, "file ends after the title link; no '------' line"
            )
        raise RejectError(
            RejectReason.UNKNOWN_FORMAT,
            f"expected '------' after the title link, found {separator[:60]!r}",
        )
    title = match.group("title")
    if "\\" in title:
        title = _MARKDOWN_ESCAPE.sub(r"\1", title)
    return title, match.group("url"), after_separator


def _next_line(text: str, position: int) -> tuple[str, int]:
    end = text.find("\n", position)
    if end == -1:
        return text[position:], len(text)
    return text[position:end], end + 1


def _skip_blank_lines(text: str, position: int) -> int:
    while True:
        line, after = _next_line(text, position)
        if line.strip() or after >= len(text):
            return position
        position = after


def _epoch_ms(raw: str) -> int:
    value = int(raw)
    if not _MIN_EPOCH_MS <= value < _MAX_EPOCH_MS:
        raise RejectError(RejectReason.INVALID_DATE, f"epoch comment {raw} ms is outside 1990-2100")
    return value


def _rfc2822_ms(raw: str) -> int:
    try:
        moment = parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError) as error:
        raise RejectError(
            RejectReason.INVALID_DATE,
            f"'日期：' line is not an RFC 2822 date: {raw.strip()[:60]!r}",
        ) from error
    return _checked_ms(moment, raw)


def _iso8601_ms(raw: str) -> int:
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError as error:
        raise RejectError(
            RejectReason.INVALID_DATE, f"front matter date is not ISO 8601: {raw.strip()[:60]!r}"
        ) from error
    return _checked_ms(moment, raw)


def _checked_ms(moment: datetime, raw: str) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    value = round(moment.timestamp() * 1000)
    if not _MIN_EPOCH_MS <= value < _MAX_EPOCH_MS:
        raise RejectError(
            RejectReason.INVALID_DATE, f"date {raw.strip()[:40]!r} is outside 1990-2100"
        )
    return value
