"""Offline language detection of an article's text (CLD2, via pycld2)."""

from __future__ import annotations

from collections.abc import Iterable

import pycld2

_SCRIPTED_CODES = {"zh": "zh-Hans", "zh-Hant": "zh-Hant"}
_MAX_CHARS = 1_500
"""Detection looks at this many characters at most: plenty for a reliable answer, bounded cost."""


def detect_language(texts: Iterable[str]) -> str | None:
    """ISO 639-1 code of the dominant language, with the script for Chinese (``zh-Hans``,
    ``zh-Hant``); None when the text is empty or CLD2 is not reasonably sure."""
    parts: list[str] = []
    length = 0
    for text in texts:
        parts.append(text)
        length += len(text) + 1
        if length >= _MAX_CHARS:
            break
    sample = "\n".join(parts)[:_MAX_CHARS]
    if not sample.strip():
        return None
    try:
        reliable, _, details = pycld2.detect(sample, isPlainText=True)
    except pycld2.error:
        return None
    code = details[0][1]
    if code in _SCRIPTED_CODES:
        return _SCRIPTED_CODES[code]
    if not reliable or code == "un" or len(code) != 2:
        return None
    return str(code)
