"""Why an input file did not become an article: stable codes and the exception that carries them."""

from __future__ import annotations

from enum import StrEnum


class RejectReason(StrEnum):
    """Stable reject codes stored in ``rejects.reason``. Never renamed once published."""

    EMPTY_FILE = "empty_file"
    BINARY_CONTENT = "binary_content"
    NOT_UTF8 = "not_utf8"
    TOO_LARGE = "too_large"
    UNKNOWN_FORMAT = "unknown_format"
    TRUNCATED_HEADER = "truncated_header"
    INVALID_FRONT_MATTER = "invalid_front_matter"
    INVALID_DATE = "invalid_date"
    MISSING_FIELD = "missing_field"
    INVALID_URL = "invalid_url"
    TOO_DEEPLY_NESTED = "too_deeply_nested"
    TOO_MANY_ATTRIBUTES = "too_many_attributes"
    UNPARSABLE_HTML = "unparsable_html"
    TIME_LIMIT = "time_limit"
    EXTRACTION_FAILED = "extraction_failed"
    UNREADABLE = "unreadable"
    WORKER_CRASHED = "worker_crashed"


class RejectError(Exception):
    """An input that cannot become an article. Not retryable: the same bytes fail the same way."""

    retryable = False

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
