"""Offline language detection of an article's text (CLD2, via pycld2)."""

from __future__ import annotations

from collections.abc import Iterable

import pycld2

_SCRIPTED_CODES = {"zh": "zh-Hans", "zh-Hant": "zh-Hant"}
_MAX_CHARS = 4_000
"""Detection looks at this many characters at most: plenty for a reliable answer, bounded cost."""


def detect_language(texts: Iterable[str]) -> str | None:
    """ISO 639-1 code of the dominant language, with the script for Chinese (``zh-Hans``,
    ``zh-Hant``); None when the text is empty or CLD2 is not reasonably sure."""
    sample = "\n".join(texts)[:_MAX_CHARS]
    if not sample.strip():
        return None
    try:
        reliable, _, details = pycld2.detect(sample)
    except pycld2.error:
        return None
    code = details[0][1]
    if code in _SCRIPTED_CODES:
        return _SCRIPTED_CODES[code]
    if not reliable or code == "un" or len(code) != 2:
        return None
    return str(code)
