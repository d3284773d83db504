"""Pure transforms: bytes or text in, typed records out. No files, no Prefect."""

from transforms.article import (
    MAX_DOCUMENT_BYTES,
    PARSER_VERSION,
    ParsedArticle,
    parse_article,
    parse_articles,
)
from transforms.body import Body, Discard, DiscardReason, extract_body
from transforms.envelope import Envelope, SourceFormat, parse_envelope
from transforms.errors import RejectError, RejectReason
from transforms.links import ShareLink, article_id, canonical_url

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "PARSER_VERSION",
    "Body",
    "Discard",
    "DiscardReason",
    "Envelope",
    "ParsedArticle",
    "RejectError",
    "RejectReason",
    "ShareLink",
    "SourceFormat",
    "article_id",
    "canonical_url",
    "extract_body",
    "parse_article",
    "parse_articles",
    "parse_envelope",
]
