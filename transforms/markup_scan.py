"""Find a tag with more attributes than libxml2 can parse in reasonable time, before it parses.

libxml2's HTML parser checks each attribute of a tag against the ones before it, so its time
grows with the square of one tag's attributes, or faster: a tag with 16,000 took it 0.7 s, one
with 64,000 40 s, and one with 600,000 (an 8 MB file) had not finished after 10 minutes.
``crowded_tag`` finds such a tag with the HTML5
tokenizer's states for tags and attributes (libxml2's HTML tokenizer follows HTML5). Comments,
doctypes and script or style text are not set apart, so a tag-like run inside them counts as a
tag: the count can be too high, never too low. ``transforms/_markup_scan.c`` is the same scan
in C; the test suite checks both agree.
"""

from __future__ import annotations

import re
from typing import AnyStr

from transforms import speedups

_SPACE = "\t\n\f\r "
_TAG = (
    rf"</?[A-Za-z][^{_SPACE}/>]*"
    rf"(?P<attributes>(?:[{_SPACE}/]*[^{_SPACE}/>][^{_SPACE}/>=]*[{_SPACE}]*"
    rf"(?:=[{_SPACE}]*(?:\"[^\"]*\"?|'[^']*'?|[^{_SPACE}>]*))?)*)"
)
"""A tag from its ``<`` through its last attribute, in the tokenizer's states: an attribute
name starts at anything but space, ``/`` or ``>`` (``=`` included) and runs to space, ``/``,
``>`` or ``=``; a value is quoted (to the closing quote, or the end) or runs to space or ``>``."""
_ATTRIBUTE = r"[^" + _SPACE + r"/>][^" + _SPACE + r"/>=]*"
_AFTER_ATTRIBUTE = (
    rf"[{_SPACE}]*(?:=[{_SPACE}]*(?:\"[^\"]*\"?|'[^']*'?|[^{_SPACE}>]*))?[{_SPACE}/]*"
)

_TAGS_IN_TEXT = re.compile(_TAG)
_TAGS_IN_BYTES = re.compile(_TAG.encode())
_ATTRIBUTE_RUN = rf"[{_SPACE}/]*{_ATTRIBUTE}{_AFTER_ATTRIBUTE}"
_ATTRIBUTES_IN_TEXT = re.compile(_ATTRIBUTE_RUN)
_ATTRIBUTES_IN_BYTES = re.compile(_ATTRIBUTE_RUN.encode())

_speedups = speedups.module()


def crowded_tag(markup: str | bytes, limit: int) -> int:
    """The number of attributes of the first tag in ``markup`` with more than ``limit`` of
    them, or 0 when no tag has that many."""
    if _speedups is not None and isinstance(markup, bytes):
        count: int = _speedups.crowded_tag(markup, limit)
        return count
    return _crowded_tag_python(markup, limit)


def _crowded_tag_python(markup: str | bytes, limit: int) -> int:
    """``crowded_tag`` in Python. Each attribute takes at least two characters (a separator or
    a value's closing quote, and a name), so only a tag longer than twice ``limit`` can hold
    more than ``limit``: only those are counted one attribute at a time."""
    if isinstance(markup, bytes):
        return _first_crowded(_TAGS_IN_BYTES, _ATTRIBUTES_IN_BYTES, markup, limit)
    return _first_crowded(_TAGS_IN_TEXT, _ATTRIBUTES_IN_TEXT, markup, limit)


def _first_crowded(
    tags: re.Pattern[AnyStr], attributes: re.Pattern[AnyStr], markup: AnyStr, limit: int
) -> int:
    for tag in tags.finditer(markup):
        start, end = tag.span("attributes")
        if end - start > 2 * limit:
            count = sum(1 for _ in attributes.finditer(markup, start, end))
            if count > limit:
                return count
    return 0
