"""From the bytes of one archive file to one typed article record: the pure entry point."""

from __future__ import annotations

from dataclasses import dataclass

from transforms.body import DEFAULT_TIME_LIMIT_SECONDS, Body, extract_body
from transforms.dates import body_published_at
from transforms.envelope import SourceFormat, parse_envelope
from transforms.errors import RejectError, RejectReason
from transforms.language import detect_language
from transforms.links import ShareLink, article_id
from transforms.titles import clean_title

PARSER_VERSION = "1.1.0"
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


def parse_article(
    raw: bytes, *, time_limit_seconds: float = DEFAULT_TIME_LIMIT_SECONDS
) -> ParsedArticle:
    """Parse one archive file. Raises ``RejectError`` with a stable reason when it cannot."""
    envelope = parse_envelope(decode_document(raw))
    body: Body = extract_body(
        envelope.body_html, envelope.url, time_limit_seconds=time_limit_seconds
    )
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
        language=detect_language((envelope.title, *body.paragraphs)),
        source_format=envelope.source_format,
    )
