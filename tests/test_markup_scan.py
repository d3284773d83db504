"""transforms.markup_scan: a tag with too many attributes for libxml2 is found before it parses.

The scan must never count fewer attributes than libxml2's tokenizer sees (else a crowded tag
slips through to a parse that takes minutes), its C and Python versions must agree, and a body
holding such a tag must become a ``too_many_attributes`` reject.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from lxml import etree

from transforms import RejectError, RejectReason, parse_article, speedups
from transforms.body import MAX_ATTRIBUTES_PER_TAG, extract_body
from transforms.markup_scan import _crowded_tag_python, crowded_tag

needs_c_scan = pytest.mark.skipif(
    not speedups.ENABLED, reason="transforms._speedups is not built or BROADSHEET_PURE_PYTHON=1"
)

_MARKUP_PIECES = st.sampled_from(
    [*"<>/=\"' \t\n\f\raB1é中🎉\u3000\x0b", "<!--", "-->", "<a ", "</p ", "<img ", "x=", "</"]
)
_MARKUP = st.lists(_MARKUP_PIECES, max_size=60).map("".join)


def _both(markup: str, limit: int) -> tuple[int, int]:
    """The Python scan's answer on the text and on its UTF-8 bytes."""
    return _crowded_tag_python(markup, limit), _crowded_tag_python(markup.encode(), limit)


@needs_c_scan
@settings(max_examples=3_000, deadline=None)
@given(_MARKUP, st.integers(min_value=0, max_value=4))
@example("<p a=\"x\"b='y'c=d/e f>", 2)
@example('<p a="unclosed b c d', 0)
@example("</p a b c>", 2)
@example("<p a = b\tc\n=d>", 2)
def test_c_and_python_scans_agree(markup: str, limit: int) -> None:
    expected = speedups.module().crowded_tag(markup.encode(), limit)  # type: ignore[union-attr]
    assert _both(markup, limit) == (expected, expected)


_NAME = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz-_:0123456789"), min_size=1).filter(
    lambda name: name[0].isalpha()
)
_VALUE = st.one_of(
    st.none(),
    st.text(st.sampled_from("xyz <>/='\t")).map(lambda text: '"' + text.replace('"', "") + '"'),
    st.text(st.sampled_from('xyz <>/="\t')).map(lambda text: "'" + text.replace("'", "") + "'"),
    st.text(st.sampled_from("xyz/='\"<"), min_size=1).filter(lambda text: text[0] not in "'\""),
)
_SEPARATOR = st.sampled_from(["", " ", "\t", "\n", "\r\n", "\f", " / ", "/", "  "])


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.tuples(_NAME, _VALUE, _SEPARATOR), min_size=1, max_size=12, unique_by=lambda a: a[0]
    )
)
def test_the_scan_counts_the_attributes_libxml2_parses(
    attributes: list[tuple[str, str | None, str]],
) -> None:
    """One start tag of distinctly named attributes, with every kind of value and separator
    (none after a quoted value): the scan counts exactly the attributes libxml2 gives the
    element."""
    markup = "<div"
    after_quote = False
    for name, value, separator in attributes:
        if not after_quote and separator in ("", "/"):
            separator = " " + separator  # else the name would run on from what precedes it
        markup += separator + name + ("" if value is None else "=" + value)
        after_quote = value is not None and value[0] in "\"'"
    markup += ">text</div>"
    root = etree.fromstring(markup, etree.HTMLParser())
    element = root.find(".//div")
    assert element is not None
    assert crowded_tag(markup.encode(), 0) == len(element.attrib)
    assert _both(markup, 0) == (len(element.attrib), len(element.attrib))


def _tag_with(attributes: int) -> str:
    return "<div " + " ".join(f"a{index}=1" for index in range(attributes)) + ">text</div>"


@pytest.mark.parametrize("scan", [crowded_tag, _crowded_tag_python])
def test_only_a_tag_over_the_limit_is_crowded(scan: object) -> None:
    assert callable(scan)
    limit = MAX_ATTRIBUTES_PER_TAG
    many = "<p>x</p>" + _tag_with(limit) * 3
    assert scan(many.encode(), limit) == 0
    assert scan(many + _tag_with(limit + 1) + _tag_with(limit + 5), limit) == limit + 1
    assert scan(f'<p title="{_tag_with(limit + 1)}">x</p>'.encode(), limit) == 0


def test_a_body_with_a_crowded_tag_is_rejected_before_parsing() -> None:
    with pytest.raises(RejectError) as rejected:
        extract_body(_tag_with(MAX_ATTRIBUTES_PER_TAG + 1), "https://example.com/a")
    assert rejected.value.reason is RejectReason.TOO_MANY_ATTRIBUTES
    assert f"a tag holds {MAX_ATTRIBUTES_PER_TAG + 1:,} attributes" in rejected.value.detail
    body = extract_body(_tag_with(MAX_ATTRIBUTES_PER_TAG), "https://example.com/a")
    assert body.paragraphs == ("text",)


def test_a_file_libxml2_would_parse_for_minutes_is_a_reject() -> None:
    """One tag of 600,000 attributes, about 8 MB: libxml2 had not parsed it after 10 minutes."""
    names = " ".join(f"a{index}" for index in range(600_000))
    raw = f"<!--1708181101000-->\n[T](https://example.com/a)\n------\n\n<div {names}>x</div>"
    with pytest.raises(RejectError) as rejected:
        parse_article(raw.encode())
    assert rejected.value.reason is RejectReason.TOO_MANY_ATTRIBUTES
    assert "600,000 attributes" in rejected.value.detail


def test_no_real_file_has_a_crowded_tag(corpus_dir: Path) -> None:
    paths = sorted((corpus_dir / "real").rglob("*"))
    raws = [path.read_bytes() for path in paths if path.is_file()]
    assert any(crowded_tag(raw, 0) for raw in raws)  # it sees attributes in real markup
    assert [raw[:80] for raw in raws if crowded_tag(raw, MAX_ATTRIBUTES_PER_TAG)] == []
