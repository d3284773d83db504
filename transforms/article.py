"""From the bytes of one archive file to one typed article record: the pure entry point."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from transforms.body import DEFAULT_TIME_LIMIT_SECONDS, Body, extract_body
from transforms.dates import body_published_at
from transforms.envelope import Envelope, SourceFormat, parse_envelope, read_envelope
from transforms.errors import RejectError, RejectReason
from transforms.language import detect_language
from transforms.links import ShareLink, article_id
from transforms.titles import clean_title

_In = TypeVar("_In")
_Out = TypeVar("_Out")
_Error = TypeVar("_Error", bound=BaseException)

PARSER_VERSION = "1.7.0"
"""Version of the extraction rules; bump it whenever their output may change."""

_UTF8_BOM = b"\xef\xbb\xbf"

MAX_DOCUMENT_BYTES = 8 * 1024 * 1024
"""Files above this size are rejected rather than parsed: no archive article is that large."""


@dataclass(frozen=True, slots=True)
class ParsedArticle:
    """The content fields of an ``articles`` row; lineage is added by the flow."""

    article_id: str
    url: str
    title: str
    title_clean: str
    published_at_ms: int
    body_published_at_ms: int | None
    paragraphs: tuple[str, ...]
    headings: tuple[str, ...]
    captions: tuple[str, ...]
    meta_blocks: tuple[str, ...]
    image_urls: tuple[str, ...]
    share_links: tuple[ShareLink, ...]
    author: str | None
    feed: str | None
    language: str | None
    source_format: SourceFormat


def decode_document(raw: bytes) -> str:
    """UTF-8 text of an archive file, or a ``RejectError`` saying why it has none."""
    if not raw or raw.isspace():
        raise RejectError(
            RejectReason.EMPTY_FILE, "file is empty" if not raw else "file holds only whitespace"
        )
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise RejectError(
            RejectReason.TOO_LARGE,
            f"file is {len(raw):,} bytes, above the {MAX_DOCUMENT_BYTES:,} limit",
        )
    nul_offset = raw.find(b"\x00")
    if nul_offset != -1:
        raise RejectError(
            RejectReason.BINARY_CONTENT, f"file holds a NUL byte at offset {nul_offset}: not text"
        )
    start = len(_UTF8_BOM) if raw.startswith(_UTF8_BOM) else 0
    try:
        # Slicing off the BOM and decoding plain UTF-8 keeps to the C fast path, which the
        # "utf-8-sig" codec (a Python-level decoder) does not.
        return (raw[start:] if start else raw).decode("utf-8")
    except UnicodeDecodeError as error:
        raise RejectError(
            RejectReason.NOT_UTF8,
            f"byte {start + error.start} is not valid UTF-8 ({error.reason})",
        ) from error


def read_document(raw: bytes) -> Envelope:
    """``parse_envelope(decode_document(raw))``: the header of an archive file and its body,
    or a ``RejectError`` saying why it has none. Where the C header reader takes the file
    (``read_envelope``), only the header is decoded and the body stays the file's bytes."""
    if 0 < len(raw) <= MAX_DOCUMENT_BYTES:
        start = len(_UTF8_BOM) if raw.startswith(_UTF8_BOM) else 0
        envelope = read_envelope(raw, start)
        if envelope is not None:
            return envelope
    return parse_envelope(decode_document(raw))


def parse_article(
    raw: bytes, *, time_limit_seconds: float = DEFAULT_TIME_LIMIT_SECONDS
) -> ParsedArticle:
    """Parse one archive file. Raises ``RejectError`` with a stable reason when it cannot."""
    envelope = read_document(raw)
    body = extract_body(
        envelope.body_html,
        envelope.url,
        title=envelope.title,
        time_limit_seconds=time_limit_seconds,
    )
    return _article(envelope, body, _language(envelope, body))


def parse_articles(
    raws: Sequence[bytes], *, time_limit_seconds: float = DEFAULT_TIME_LIMIT_SECONDS
) -> list[ParsedArticle | RejectError]:
    """Parse many archive files: for each, in order, its article or the ``RejectError``
    ``parse_article`` would raise. Any other exception a file raises (a parser bug) becomes
    an ``extraction_failed`` reject chained to it, so that one file cannot fail the batch.

    The articles are those of ``parse_article``, computed a step at a time over the batch
    (headers, bodies, language, the rest) rather than a file at a time: each step's
    code and tables (CLD2's above all) then stay in the processor's caches, which made the
    transform about a fifth faster on the real corpus (docs/performance-history.md).
    """
    outcomes: list[ParsedArticle | RejectError | None] = [None] * len(raws)
    envelopes = _each(outcomes, enumerate(raws), read_document)
    bodies = _each(
        outcomes,
        envelopes,
        lambda envelope: (
            envelope,
            extract_body(
                envelope.body_html,
                envelope.url,
                title=envelope.title,
                time_limit_seconds=time_limit_seconds,
            ),
        ),
    )
    languages = _each(outcomes, bodies, _with_language)
    for position, article in _each(outcomes, languages, lambda parts: _article(*parts)):
        outcomes[position] = article
    finished = [outcome for outcome in outcomes if outcome is not None]
    if len(finished) != len(raws):
        raise AssertionError("parse_articles left a file without an outcome")
    return finished


def _each(
    outcomes: list[ParsedArticle | RejectError | None],
    items: Iterable[tuple[int, _In]],
    step: Callable[[_In], _Out],
) -> list[tuple[int, _Out]]:
    """``step`` of each item, kept with its position; a step that fails puts its reject at
    that position in ``outcomes`` instead."""
    done: list[tuple[int, _Out]] = []
    for position, item in items:
        try:
            done.append((position, step(item)))
        except RejectError as error:
            outcomes[position] = _without_frames(error)
        except Exception as error:  # a parser bug must cost one file, not the batch
            reject = RejectError(
                RejectReason.EXTRACTION_FAILED, f"unexpected {type(error).__name__}: {error}"
            )
            reject.add_note("".join(traceback.format_exception(error)))
            reject.__cause__ = _without_frames(error)
            outcomes[position] = reject
    return done


def _without_frames(error: _Error) -> _Error:
    """``error`` with no traceback on it or on the exceptions it chains to. A stored
    traceback holds its frames, whose callers hold ``outcomes``: the cycle kept a whole chunk
    of files in memory until Python's cycle collector ran (measured: a parse task grew by
    11-15 MiB a 1,563-file batch). A parser bug's traceback is kept as text instead, in a
    note on its reject."""
    chained: BaseException | None = error
    seen: set[int] = set()
    while chained is not None and id(chained) not in seen:
        seen.add(id(chained))
        chained.__traceback__ = None
        chained = chained.__cause__ or chained.__context__
    return error


def _with_language(parts: tuple[Envelope, Body]) -> tuple[Envelope, Body, str | None]:
    envelope, body = parts
    return envelope, body, _language(envelope, body)


def _language(envelope: Envelope, body: Body) -> str | None:
    return detect_language((envelope.title, *body.paragraphs))


def _article(envelope: Envelope, body: Body, language: str | None) -> ParsedArticle:
    return ParsedArticle(
        article_id=article_id(envelope.url),
        url=envelope.url,
        title=envelope.title,
        title_clean=clean_title(envelope.title),
        published_at_ms=envelope.published_at_ms,
        body_published_at_ms=body_published_at(body.meta_blocks, envelope.url),
        paragraphs=body.paragraphs,
        headings=body.headings,
        captions=body.captions,
        meta_blocks=body.meta_blocks,
        image_urls=body.image_urls,
        share_links=body.share_links,
        author=envelope.author,
        feed=envelope.feed,
        language=language,
        source_format=envelope.source_format,
    )
