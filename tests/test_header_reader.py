"""The C header reader (``transforms.envelope.read_envelope``) against ``parse_envelope``.

``read_envelope`` reads a file's header from its bytes and leaves the body as bytes; it must
give exactly the envelope ``parse_envelope`` gives for the decoded file, or None (then the
pipeline runs ``parse_envelope``, which also words every reject). These tests build headers
from a grammar full of the cases where Python's rules are subtle (Unicode whitespace around
lines and values, Unicode digits and word characters, escapes, quotes, parentheses in URLs,
an unclosed front matter, CRLF, NUL, bad UTF-8, a BOM) and check that rule on each file and
on it cut short at many points (a truncated header, a split multi-byte character), then
that the common files really take the fast path and that bytes and text bodies extract
alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.archive_files import bare, dated, front_matter_html, with_front_matter
from transforms import RejectError, parse_article, speedups
from transforms.article import decode_document, read_document
from transforms.body import extract_body
from transforms.envelope import Envelope, parse_envelope, read_envelope

needs_header_reader = pytest.mark.skipif(
    not speedups.ENABLED, reason="transforms._speedups is not built or BROADSHEET_PURE_PYTHON=1"
)

_SPACE = st.sampled_from(
    [""] * 12 + [" ", "\t", "\u3000", "\xa0", "\x1c", "\u2028", "\x85", " \u3000"]
)
_KEYS = st.sampled_from(
    ["title", "date", "author", "from", "categories", "tags", "layout", "x-y_2", "_k"] * 4
    + ["9bad", "ключ", "a b", "", "日期", "-x", "title#"]
)
_VALUE_TEXT = st.text(
    alphabet=st.sampled_from([*"ab ,:#[]\"'\\", "\u3000", "中", "🎉", "\xa0"]),
    max_size=10,
)
_VALUES = st.one_of(
    _VALUE_TEXT,
    st.sampled_from(
        [
            '"Quoted title"',
            '"He said \\"no\\""',
            "'it''s'",
            "[ a, b ]",
            "[ 泡泡 ]",
            "[]",
            "[",
            "[ 'x', \"y\", , ]",
            "2020-02-10T18:04:54.000Z",
            "2016-07-06T09:29:00+02:00",
            "not a date",
            "https://news.example/a?b=1",
        ]
    ),
)

_AFTER_COLON = st.sampled_from([" ", "  ", "\t", "\u3000", ""])


@st.composite
def _front_matter_line(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["field"] * 12 + ["comment", "blank", "junk"]))
    if kind == "comment":
        return draw(_SPACE) + "# note: " + draw(_VALUE_TEXT)
    if kind == "blank":
        return draw(_SPACE)
    if kind == "junk":
        return draw(st.sampled_from(["no colon", "key:value", ":", "-- -", "---x"]))
    key, gap, value = draw(_KEYS), draw(_AFTER_COLON), draw(_VALUES)
    return f"{draw(_SPACE)}{key}{draw(_SPACE)}:{gap}{value}{draw(_SPACE)}"


_EPOCHS = st.sampled_from(
    ["1708181101000", "0631152000000", "4102444799999"] * 3
    + ["-1708181101000", "1", "4102444800000", "١٧٠٨١٨١١٠١٠٠٠"]
    + ["17081811010001708181101000", "", "17x"]
)
_TITLES = st.sampled_from(
    ["港口 “清洁” 计划", "A [bracket] title", "ends](with", "it's: (x) 🎉"] * 3
    + ["esc \\] aped", "", " ", "t\u3000", "\u3000"]
)
_URLS = st.sampled_from(
    ["https://news.example/a/b.html", "https://x.example/a_(b)", "https://x.example/中文"] * 4
    + ["https://x.example/(a(b))", "https://x.example/a b", "ftp://x.example/a", "", "/rel"]
    + ["https://x.example/a\u3000b", "https://x.example/a)"]
)
_SEPARATORS = st.sampled_from(["------"] * 8 + [" ------\t", "-----", "------\u3000", "-------"])
_DATE_LINES = st.sampled_from(
    ["日期：Fri, 26 Jun 2020 15:02:33 +0000", "日期:Tue, 23 Jun 2020 05:40:58 +0000"] * 3
    + ["日期： \u3000Fri, 26 Jun 2020 15:02:33 GMT", "日期：", "日期：not a date", "日期 x"]
)
_BODIES = st.sampled_from(
    ["<p>Hello</p>", "\n\n<div>正文</div>", "", "\u3000", "\x1c", "  \n", "<p>a</p>\n\n<p>b</p>"]
)


@st.composite
def _documents(draw: st.DrawFn) -> bytes:
    lines: list[str] = []
    if draw(st.booleans()):
        lines.append("---")
        lines += draw(st.lists(_front_matter_line(), max_size=5))
        if draw(st.booleans()):  # what a front_matter_html file needs
            lines += ["title: T", "from: https://news.example/fm", "date: 2020-02-10T18:04:54Z"]
        lines.append(draw(st.sampled_from(["---"] * 8 + ["--- ", "----", "---x"])))
    lines += [draw(_SPACE) for _ in range(draw(st.integers(0, 2)))]
    link = f"{draw(_SPACE)}[{draw(_TITLES)}]({draw(_URLS)}){draw(_SPACE)}"
    header = draw(st.sampled_from(["epoch", "epoch", "dated", "none", "junk"]))
    if header == "epoch":
        lines += [f"{draw(_SPACE)}<!--{draw(_SPACE)}{draw(_EPOCHS)}{draw(_SPACE)}-->", link]
        lines.append(draw(_SEPARATORS))
    elif header == "dated":
        lines += [link, draw(_SEPARATORS), draw(_DATE_LINES)]
    elif header == "junk":
        lines.append(draw(st.sampled_from(["<!-- x -->", "[T]", "------", link])))
    text = "\n".join(lines) + draw(st.sampled_from(["\n", "\n\n", "", "\n \n"])) + draw(_BODIES)
    raw = text.encode("utf-8")
    damage = draw(st.sampled_from(["none"] * 12 + ["crlf", "nul", "bad-utf8", "bom", "bom"]))
    if damage == "crlf":
        raw = raw.replace(b"\n", b"\r\n")
    elif damage == "nul":
        raw += b"\x00"
    elif damage == "bad-utf8":
        raw = raw[: len(raw) // 2] + draw(st.sampled_from([b"\xff", b"\xed\xa0\x80", b"\xc0\xaf"]))
    elif damage == "bom":
        raw = b"\xef\xbb\xbf" + raw
    return raw


def _reference(raw: bytes) -> Envelope | None:
    try:
        return parse_envelope(decode_document(raw))
    except RejectError:
        return None


def _as_text(envelope: Envelope) -> Envelope:
    body = envelope.body_html
    assert isinstance(body, bytes)
    return dataclasses.replace(envelope, body_html=body.decode("utf-8"))


@needs_header_reader
@settings(max_examples=1_500, deadline=None)
@given(_documents())
@example(with_front_matter("T", "https://news.example/a", 1708181101000, "<p>x</p>").encode())
@example(b"---\n---\n<!--1708181101000-->\n[T](https://a.example/b)\n------\n<p>x</p>")
@example(b"---\ntitle: T\nfrom: https://a.example/b\ndate: 2020-01-01\n---")
@example("[T](https://a.example/b)\n------\n日期：Fri, 26 Jun 2020 15:02:33 +0000".encode())
def test_read_envelope_gives_parse_envelopes_envelope_or_none(raw: bytes) -> None:
    for cut in (len(raw), *range(0, min(len(raw), 120), 7)):  # and files cut short
        piece = raw[:cut]
        expected = _reference(piece)
        result = read_envelope(piece, 3 if piece.startswith(b"\xef\xbb\xbf") else 0)
        if expected is None:
            assert result is None
        elif result is not None:
            assert _as_text(result) == expected


_RENDERS: list[Callable[[str, str, int, str], str]] = [
    bare,
    with_front_matter,
    dated,
    front_matter_html,
]


@needs_header_reader
@pytest.mark.parametrize("render", _RENDERS)
@pytest.mark.parametrize("title", ["港口 “清洁” 计划", "it's: a (test) 🎉"])
def test_usual_files_take_the_fast_path(
    render: Callable[[str, str, int, str], str], title: str
) -> None:
    raw = render(title, "https://news.example/a_(b)?c=1", 1708181101000, "<p>正文</p>").encode()
    result = read_envelope(raw)
    assert result is not None
    assert result.body_html == b"<p>\xe6\xad\xa3\xe6\x96\x87</p>"
    assert _as_text(result) == _reference(raw)


@needs_header_reader
@pytest.mark.parametrize(
    "raw",
    [
        b"<!--1708181101000-->\r\n[T](https://a.example/b)\r\n------\r\n<p>x</p>",
        b"<!--1708181101000-->\n[T](https://a.example/b)\n------\n<p>x\x00</p>",
        b"<!--1708181101000-->\n[T](https://a.example/b)\n------\n<p>\xff</p>",
        b"<!--1708181101000-->\n[T \\[x\\]](https://a.example/b)\n------\n<p>x</p>",
        b'---\ntitle: "a \\" b"\nfrom: https://a.example/b\ndate: 2020-01-01\n---\n<p>x</p>',
    ],
    ids=["crlf", "nul", "not-utf8", "markdown-escape", "json-escape"],
)
def test_files_the_reader_leaves_to_parse_envelope(raw: bytes) -> None:
    assert read_envelope(raw) is None


@pytest.mark.parametrize("body", ["", " \n\t", "\u3000", "\x1c\x1d", "\x85", "\u3000<p>x</p>"])
def test_bytes_and_text_bodies_extract_alike(body: str) -> None:
    url = "https://news.example/a"
    assert extract_body(body.encode(), url) == extract_body(body, url)


@given(st.text(st.sampled_from([*" \t\n\x0b\x0c\x1c\x1f\x85\xa0\u3000\u2028<p>x"]), max_size=12))
def test_blank_byte_bodies_are_those_whose_text_is_blank(body: str) -> None:
    url = "https://news.example/a"
    assert extract_body(body.encode(), url) == extract_body(body, url)


@needs_header_reader
@pytest.mark.corpus
def test_every_real_file_reads_the_same_from_bytes(corpus_dir: Path) -> None:
    compared = fast = 0
    differing: list[str] = []
    for path in sorted((corpus_dir / "real").rglob("*")):
        if not path.is_file():
            continue
        raw = path.read_bytes()
        compared += 1
        result = read_envelope(raw)
        if result is None:
            continue
        fast += 1
        if _as_text(result) != _reference(raw):
            differing.append(str(path.relative_to(corpus_dir)))
    assert differing == []
    assert compared > 3_000
    assert fast > 0.95 * compared


@needs_header_reader
def test_parse_article_reads_the_header_from_bytes() -> None:
    raw = bare("T", "https://news.example/a", 1708181101000, "<p>Body text.</p>").encode()
    envelope = read_document(raw)
    assert isinstance(envelope.body_html, bytes)
    assert parse_article(raw).paragraphs == ("Body text.",)
