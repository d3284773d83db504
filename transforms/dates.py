"""Publication time shown inside an article body (its dateline or timestamp meta block)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

_DAY_FIRST = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})\s*-\s*(\d{1,2}):(\d{2})")
_NAIVE_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2})?")
_ZONED_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})")
_RFC_1123 = re.compile(
    r"[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}(?::\d{2})? (?:GMT|UTC|[+-]\d{4})"
)

LOCAL_TIME_ZONES = {
    "rfi.fr": ZoneInfo("Europe/Paris"),
    "nytimes.com": ZoneInfo("Asia/Shanghai"),
}
"""Sites whose in-body timestamps carry no zone, and the zone they are written in."""


def body_published_at(meta_blocks: Sequence[str], url: str) -> int | None:
    """Epoch milliseconds of the first meta block that is a complete date and time, else None.

    Zoned forms (ISO 8601 with ``Z`` or an offset, RFC 1123 ``GMT``) are read as they are;
    the zone-less forms (``17/02/2024 - 15:16``, ``2020-10-13 14:38:42``) only on sites whose
    zone is known (``LOCAL_TIME_ZONES``), never guessed.
    """
    if not meta_blocks:
        return None
    zone = _site_zone(url)
    for block in meta_blocks:
        moment = _parse(block.strip(), zone)
        if moment is not None:
            return round(moment.timestamp() * 1000)
    return None


def _site_zone(url: str) -> ZoneInfo | None:
    host = (urlsplit(url).hostname or "").lower()
    for domain, zone in LOCAL_TIME_ZONES.items():
        if host == domain or host.endswith("." + domain):
            return zone
    return None


def _parse(text: str, zone: ZoneInfo | None) -> datetime | None:
    try:
        if _ZONED_ISO.fullmatch(text):
            return datetime.fromisoformat(text)
        if _RFC_1123.fullmatch(text):
            return parsedate_to_datetime(text).astimezone(UTC)
        if zone is None:
            return None
        if match := _DAY_FIRST.fullmatch(text):
            day, month, year, hour, minute = map(int, match.groups())
            return datetime(year, month, day, hour, minute, tzinfo=zone)
        if _NAIVE_ISO.fullmatch(text):
            return datetime.fromisoformat(text).replace(tzinfo=zone)
    except ValueError:
        return None
    return None
