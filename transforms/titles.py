"""Title clean-up: site suffixes and whitespace runs removed; the raw title is kept elsewhere."""

from __future__ import annotations

import re

from transforms.text import normalise_text

SITE_SUFFIXES = (
    "法国国际广播电台 - RFI",
    "法国国际广播电台",
    "RFI",
    "要闻分析",
    "法国世界报",
    "iYouPort",
    "BBC News 中文",
    "纽约时报中文网",
    "美国之音",
    "德国之声",
    "自由亚洲电台",
)
"""Trailing ``<separator> <site>`` segments removed from titles, longest first."""

_SUFFIX = re.compile(
    r"\s*[-–—|｜]\s*(?:" + "|".join(re.escape(suffix) for suffix in SITE_SUFFIXES) + r")\s*$"
)


def clean_title(title: str) -> str:
    """The title without trailing site suffixes, normalised like body text."""
    cleaned = normalise_text(title)
    while True:
        shorter = _SUFFIX.sub("", cleaned)
        if shorter == cleaned or not shorter:
            return cleaned
        cleaned = shorter
