"""Text normalisation shared by every extracted string."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from transforms import speedups

_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")


def normalise_text_python(text: str) -> str:
    """NFC, zero-width characters removed, every whitespace run (NBSP included) to one space.

    ASCII text needs only the whitespace step, and the zero-width scan runs only when one of
    those characters is present. ``normalise_text`` is this function's C twin (in
    ``transforms._speedups``) where that is built: it runs on every block of every article.
    """
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
        if (
            "\u200b" in text
            or "\u200c" in text
            or "\u200d" in text
            or "\u2060" in text
            or "\ufeff" in text
            or "\u00ad" in text
        ):
            text = _ZERO_WIDTH.sub("", text)
    return " ".join(text.split())


normalise_text: Callable[[str], str] = getattr(
    speedups.module(), "normalise_text", normalise_text_python
)
"""``normalise_text_python``, or its C twin where that is built and enabled."""
