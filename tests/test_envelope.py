"""Header parsing: the four formats, their quirks, and every reject reason."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.archive_files import bare, dated, front_matter_html, with_front_matter
from transforms import RejectError, RejectReason, SourceFormat, parse_envelope
from transforms import envelope as envelope_module
from transforms.article import decode_document
from transforms.envelope import FrontMatterValue, parse_front_matter

URL = "https://news.example/2024/02/17/harbour?id=7&lang=zh"
EPOCH_MS = 1708181101000
BODY = "<p>Hello</p>"


@pytest.mark.parametrize(
    ("render", "expected_format"),
    [
        (bare, SourceFormat.BARE),
        (with_front_matter, SourceFormat.FRONT_MATTER),
        (dated, SourceFormat.DATED),
        (front_matter_html, SourceFormat.FRONT_MATTER_HTML),
    ],
)
def test_each_format_gives_title_url_epoch_and_body(
    render: Callable[[str, str, int, str], str], expected_format: SourceFormat
) -> None:
    envelope = parse_envelope(render("港口 “清洁” 计划", URL, EPOCH_MS, BODY))
    assert envelope.source_format is expected_format
    assert (envelope.title, envelope.url, envelope.published_at_ms) == (
        "港口 “清洁” 计划",
        URL,
        EPOCH_MS,
    )
    assert envelope.body_text.strip() == BODY


def test_front_matter_gives_author_and_first_category_as_feed() -> None:
    text = with_front_matter("T", URL, EPOCH_MS, BODY).replace(
        "categories: [ sample ]", "categories: [ medium, essays ]"
    )
    envelope = parse_envelope(text)
    assert (envelope.author, envelope.feed) == ("Sample Author", "medium")


def test_bare_format_has_no_author_or_feed() -> None:
    envelope = parse_envelope(bare("T", URL, EPOCH_MS, BODY))
    assert (envelope.author, envelope.feed) == (None, None)


def test_front_matter_title_with_escaped_quotes_is_unescaped() -> None:
    text = front_matter_html('He said "no" \\ twice', URL, EPOCH_MS, BODY)
    assert '\\"no\\"' in text
    assert parse_envelope(text).title == 'He said "no" \\ twice'


def test_header_title_keeps_space_runs_and_backslash_before_non_ascii() -> None:
    envelope = parse_envelope(
        bare("美政府致函高校    敦促审查", URL, EPOCH_MS, BODY).replace(
            "敦促审查", "\\“敦促审查\\“"
        )
    )
    assert envelope.title == "美政府致函高校    \\“敦促审查\\“"


@pytest.mark.parametrize(
    ("header_title", "title"),
    [
        ("Plain title, no backslash", "Plain title, no backslash"),
        ("A \\[bracketed\\] \\*starred\\* \\_word\\_ 🎉", "A [bracketed] *starred* _word_ 🎉"),
        ("Path C:\\\\Users and 50\\% off", "Path C:\\Users and 50% off"),
    ],
)
def test_header_title_drops_markdown_escapes_before_ascii_punctuation(
    header_title: str, title: str
) -> None:
    text = f"<!--{EPOCH_MS}-->\n[{header_title}]({URL})\n------\n\n{BODY}"
    assert parse_envelope(text).title == title


def test_crlf_line_endings_parse_like_lf() -> None:
    lf = parse_envelope(with_front_matter("T", URL, EPOCH_MS, BODY))
    crlf = parse_envelope(with_front_matter("T", URL, EPOCH_MS, BODY).replace("\n", "\r\n"))
    assert crlf == lf


def test_header_wins_over_front_matter_but_front_matter_fills_an_empty_title() -> None:
    text = with_front_matter("From front matter", URL, EPOCH_MS, BODY).replace(
        "[From front matter]", "[]"
    )
    assert parse_envelope(text).title == "From front matter"


def test_url_with_parentheses_is_kept_whole() -> None:
    url = "https://en.example.org/wiki/Harbour_(city)"
    assert parse_envelope(bare("T", url, EPOCH_MS, BODY)).url == url


@pytest.mark.parametrize(
    ("text", "reason", "detail_fragment"),
    [
        ("<!--1708181101000-->\n", RejectReason.TRUNCATED_HEADER, "no '[title](url)' line"),
        (f"<!--1708181101000-->\n[T]({URL})\n", RejectReason.TRUNCATED_HEADER, "no '------'"),
        (f"[T]({URL})\n------\n", RejectReason.TRUNCATED_HEADER, "date line was expected"),
        ("---\ntitle: x\n", RejectReason.TRUNCATED_HEADER, "never closed"),
        ("just some text\n", RejectReason.UNKNOWN_FORMAT, "neither front matter"),
        (f"[T]({URL})\n------\n<p>x</p>\n", RejectReason.UNKNOWN_FORMAT, "'日期："),
        ("<!--1708181101000-->\nnot a link\n", RejectReason.UNKNOWN_FORMAT, "'[title](url)'"),
        (f"<!--12-->\n[T]({URL})\n------\n", RejectReason.INVALID_DATE, "outside 1990-2100"),
        (f"[T]({URL})\n------\n日期：yesterday\n", RejectReason.INVALID_DATE, "RFC 2822"),
        (
            "<!--1708181101000-->\n[T](ftp://x.example/a)\n------\n",
            RejectReason.INVALID_URL,
            "not http(s)",
        ),
        (
            "<!--1708181101000-->\n[](https://x.example/a)\n------\n",
            RejectReason.MISSING_FIELD,
            "no title",
        ),
        (
            '---\ntitle: "T"\nfrom: https://x.example\n---\n<p>x</p>',
            RejectReason.MISSING_FIELD,
            "no 'date'",
        ),
        ('---\ntitle: "T"\nthis is not yaml\n---\n', RejectReason.INVALID_FRONT_MATTER, "line 3"),
        (
            '---\ntitle: "T"\nfrom: https://x.example\ndate: someday\n---\n<p>x</p>',
            RejectReason.INVALID_DATE,
            "ISO 8601",
        ),
    ],
)
def test_bad_headers_are_rejected_with_a_specific_reason(
    text: str, reason: RejectReason, detail_fragment: str
) -> None:
    with pytest.raises(RejectError) as caught:
        parse_envelope(text)
    assert caught.value.reason is reason
    assert detail_fragment in caught.value.detail


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", RejectReason.EMPTY_FILE),
        (b" \n\r\n\t", RejectReason.EMPTY_FILE),
        (b"\x89PNG\r\n\x1a\n\x00\x00", RejectReason.BINARY_CONTENT),
        (b"<!--1-->\n[Caf\xe9](https://x.example)\n", RejectReason.NOT_UTF8),
    ],
)
def test_undecodable_files_are_rejected(raw: bytes, reason: RejectReason) -> None:
    with pytest.raises(RejectError) as caught:
        decode_document(raw)
    assert caught.value.reason is reason


def test_utf8_bom_is_dropped() -> None:
    assert decode_document("\ufeff<!--1-->".encode()) == "<!--1-->"


@pytest.mark.parametrize(("bom", "offset"), [(b"", 5), (b"\xef\xbb\xbf", 8)])
def test_a_bad_byte_is_reported_at_its_offset_in_the_file(bom: bytes, offset: int) -> None:
    with pytest.raises(RejectError, match=f"byte {offset} is not valid UTF-8"):
        decode_document(bom + b"<!--1\xff-->")


# Titles with the nasty cases: quotes, backslashes, brackets, emoji, CJK, space runs.
titles = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
    min_size=1,
    max_size=60,
).filter(lambda t: t.strip() != "")
urls = st.builds(
    lambda host, path, query: f"https://{host}.example/{path}" + (f"?q={query}" if query else ""),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9._~%/-]{0,40}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9]{0,10}", fullmatch=True),
)
epochs = st.integers(min_value=631_152_000, max_value=4_102_444_799).map(lambda s: s * 1000)


@given(
    title=titles,
    url=urls,
    epoch_ms=epochs,
    render=st.sampled_from([bare, with_front_matter, dated, front_matter_html]),
)
def test_header_round_trip(
    title: str, url: str, epoch_ms: int, render: Callable[[str, str, int, str], str]
) -> None:
    envelope = parse_envelope(render(title, url, epoch_ms, BODY))
    assert (envelope.title, envelope.url, envelope.published_at_ms) == (title, url, epoch_ms)


_FRONT_MATTER_LINE = re.compile(r"(?P<key>[A-Za-z_][\w-]*)\s*:(?:\s+(?P<value>.*))?")
"""The front-matter line grammar as a single pattern: what ``parse_front_matter`` implements."""


def _front_matter_by_pattern(block: str) -> dict[str, FrontMatterValue] | None:
    """Reference parse: None where a line breaks the grammar, else the fields."""
    fields: dict[str, FrontMatterValue] = {}
    for line in block.split("\n"):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _FRONT_MATTER_LINE.fullmatch(stripped)
        if match is None:
            return None
        value = (match.group("value") or "").strip()
        fields[match.group("key")] = envelope_module._front_matter_value(value)
    return fields


@given(
    st.lists(
        st.text(alphabet=st.sampled_from("aZ_-9é: \t\u3000\u00a0#\"'[],日"), max_size=12),
        max_size=4,
    ).map("\n".join)
)
@example("title: x\nkey :  value \ndate:")
@example("a:b")
@example("a\u3000:\u3000b")
def test_front_matter_lines_follow_the_key_value_grammar(block: str) -> None:
    expected = _front_matter_by_pattern(block)
    if expected is None:
        with pytest.raises(RejectError) as rejected:
            parse_front_matter(block)
        assert rejected.value.reason is RejectReason.INVALID_FRONT_MATTER
    else:
        assert parse_front_matter(block) == expected
