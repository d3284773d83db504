"""transforms._speedups (C) against the pure-Python code it stands in for.

``extract_body`` must give the same ``Body`` (discards included) or the same reject whichever
walk runs, so these tests run both on generated HTML full of awkward cases and on every file of
the real corpus; ``normalise_text`` must return exactly what its Python twin returns.
"""

from __future__ import annotations

import contextlib
import shutil
import sysconfig
import unicodedata
from collections.abc import Iterator
from html import escape
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from lxml import etree

from tests.test_body import _METAISH
from transforms import RejectError, RejectReason, speedups
from transforms import body as body_module
from transforms.article import decode_document
from transforms.envelope import parse_envelope
from transforms.links import SHARE_HINT_CHARS, SHARE_HINT_PARTS
from transforms.text import normalise_text, normalise_text_python

needs_c_walker = pytest.mark.skipif(
    not speedups.ENABLED, reason="transforms._speedups is not built or BROADSHEET_PURE_PYTHON=1"
)

_AWKWARD_TEXT = st.text(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(" \t\n\r\x0b\x0c\x1c\x85\xa0\u1680\u2028\u3000"),
        st.sampled_from("\u200b\u200c\u200d\u2060\ufeff\xade\u0301\u212b\u1100\u1161中🎉"),
    )
)


@needs_c_walker
@settings(max_examples=1_000, deadline=None)
@given(_AWKWARD_TEXT)
@example(" a \u200b b ")
@example("\u200b")
@example("e\u0301\xa0\u3000x")
def test_c_normalise_text_returns_exactly_what_the_python_one_does(text: str) -> None:
    expected = normalise_text_python(text)
    result = normalise_text(text)
    assert result == expected
    assert type(result) is str


@needs_c_walker
def test_text_of_nfc_inert_characters_is_already_nfc() -> None:
    """normalise_text skips NFC for text made only of the C module's inert characters, which is
    right only if each is NFC_QC=Yes with combining class 0 (UAX #15's quick check): unchanged
    by NFC, not a non-starter, and never the second of a canonical composition pair."""
    module = speedups.module()
    assert module is not None
    second_of_a_pair = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))  # Hangul V, T
    for code_point in range(0x110000):
        fields = unicodedata.decomposition(chr(code_point)).split()
        if len(fields) == 2 and not fields[0].startswith("<"):
            second_of_a_pair.add(int(fields[1], 16))
    checked = 0
    for low, high in module.NFC_INERT_RANGES:
        for code_point in range(low, high + 1):
            character = chr(code_point)
            assert not 0xD800 <= code_point <= 0xDFFF, hex(code_point)
            assert unicodedata.combining(character) == 0, hex(code_point)
            assert unicodedata.normalize("NFC", character) == character, hex(code_point)
            assert code_point not in second_of_a_pair, hex(code_point)
            checked += 1
    assert checked > 40_000


@needs_c_walker
@given(
    st.text(
        st.sampled_from(
            [
                *"aé中文ぁか가\u1100\uff01\u3000\u3029\u302a\u3099\u309a\u309b\u2002\u2000",
                *"\u02ff\u0300\u0301\u1161\u11a8\u20cf\u20d0\ua66e\ua66f\uabed\uabee",
                *"\ud7ff\ufe2f\ufe30\ufb4f\U0002f800\u00ad\u200b\ufeff\xa0 ",
            ]
        )
    )
)
def test_c_normalise_text_agrees_at_the_edges_of_the_inert_ranges(text: str) -> None:
    assert normalise_text(text) == normalise_text_python(text)


_TEXTS = st.sampled_from(
    [
        "Ordinary paragraph text of a news article.",
        "Short words",
        "它说：“这是正文。”",
        "",
        " ",
        "\n  \t",
        "\r\n",
        "\xa0",
        "\u3000",
        "plain words",
        "  spaced   out  ",
        "它说：“这是正文。”",
        "emoji 🎉 and \u200bzero\u200cwidth\u00ad",
        "quotes \"double\" and 'single'",
        "e\u0301 combining",
        "&amp; &lt;b&gt; &#x4e2d; &nbsp;",
        "© 2024 Example",
        "Share this:",
        "来源：新华社",
        "17/02/2024 - 15:16",
        "责编：张三",
        "以下图片来自网络",
        "Your browser does not support the video tag.",
        "Your browser does not support the vidéo — sorry",
        "Please ENABLE JAVASCRİPT TO VIEW the clip",
        "Sorry, this Kelvin \u212a text does not support audio",
        "Read more →",
        "版权所有 © 2024",
        "获取更多RSS：",
        "* * *",
        "———",
        "——",
        "◆◇◆",
        "CDS档案 | 李文亮",
        "cds 檔案｜",
        "CDS档案收录",
        "评论",
        "評論：",
        "No More.",
        "A bold line that is longer than twenty characters",
        "http://example.com/in-text",
        "x" * 130,
        "正文很长。" * 60,  # as long as a promo block may be (``PROMO_MAX_CHARS``)
    ]
)
_BLOCK_TAGS = st.sampled_from(
    "p p p div div ul ol h2 figure section blockquote table article".split()
)
_TAGS = st.sampled_from(
    "p div span b strong strong b i em a a a ul ol li li h2 h3 figure figcaption small time "
    "table tr td section blockquote header footer footer nav aside center u font custom-tag "
    "article".split()
)
_CLASSES = st.sampled_from(
    [
        "",
        "content",
        "ad",
        "adsbygoogle",
        "share-bar",
        "social_links",
        "related-links",
        "readmore",
        "caption",
        "figure-img",
        "sr-only",
        "newsletter",
        "Content ARTICLE",
        "head_ad-slot",
        "AdContainer-top",
        "advertorial",
        "bad-word shadow",
        "a2a_kit",
        "SHARE",
        "sharedaddy sd-sharing",
        "wp-social",
        "figure",
        "figures\tlist",
        "photo-credit",
        "app-promo",
        "x\x1csr-only",
        "screen-reader-text",
        "element-invisible",
        "sr-only-focusable",
        "ſhare",
        "Ad",
        "read-more-link",
        "rel ated",
        "post hentry category-newsletters tag-social-media",
        "TAG-Subscribe Category-Share",
        "post-tag-newsletter",
        "x\x1ctag-share",
        "tag-",
        "entry-meta",
        "rich_media_meta",
        "submitted",
        "post-tags light-text",
        "categories icon-link",
        "comment comment-by-anonymous clearfix",
        "comment comment-by-node-author",
        "title comment-form",
        "x\x1ccomment-add",
        "aspectRatioPlaceholder nykpaywall",
        "BarrierFailsafe__fullBarrier___2bFWd",
        "site-posted-on",
        "field-name-author",
        "x-field-name-author",
        "wp-embedded-content",
        "wp-embedded-contents",
    ]
)
_HREFS = st.sampled_from(
    [
        "",
        "/relative/story",
        "https://example.com/story",
        "https://www.facebook.com/sharer/sharer.php?u=https%3A%2F%2Fa.example%2Fx",
        "https://twitter.com/intent/tweet?text=see%20https://a.example/x&amp;via=y",
        "whatsapp://send?text=https://a.example/x",
        "mailto:?subject=x&body=https://a.example/x",
        "javascript:void(0)",
    ]
)
_HREF_PIECES = st.sampled_from(
    [
        *SHARE_HINT_PARTS,
        *(part[:2] for part in SHARE_HINT_PARTS),
        *(part[1:] for part in SHARE_HINT_PARTS),
        *(part.upper() for part in SHARE_HINT_PARTS),
        "https://",
        "facebook.com/",
        "twitter.com/",
        "?u=https%3A%2F%2Fa.example%2Fx",
        "s",
        "x" * 40,
        "中",
    ]
)
_BUILT_HREFS = st.lists(_HREF_PIECES, max_size=8).map("".join)
"""hrefs made of share hints, their halves and padding: the C walk's cheap test that an
href is no share link must never say so of one ``share_link`` takes (hints at the end of the
160 characters looked at, straddling it, upper-cased, or made of two halves)."""


_STYLES = st.sampled_from(
    [
        "display: none",
        "color:red",
        "DISPLAY :\tNone",
        "margin:0; visibility:hidden",
        "Visibility : HIDDENx",
        "display:block",
        "display: ",
        "displaynone",
        "font-family: 宋体; display:none",
        "diſplay: none",
        "display:\x1cnone",
    ]
)
"""Style values the hidden-style rule must judge alike in C and Python, non-ASCII included."""


@st.composite
def _attributes(draw: st.DrawFn, tag: str) -> str:
    """Zero or more attributes, from the ones the context rules read to ones they ignore."""
    parts: list[str] = []
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 1, 1, 2, 3]))):
        kind = draw(
            st.sampled_from(
                [
                    "class",
                    "id",
                    "hidden",
                    "style",
                    "data-e2e",
                    "aria-label",
                    "data-selfpromo",
                    "data-root-share",
                    "x",
                ]
            )
        )
        if kind == "class":
            parts.append(f'class="{draw(_CLASSES)}"')
        elif kind == "id":
            parts.append(f'id="{draw(_CLASSES)}"')
        elif kind == "hidden":
            parts.append("hidden")
        elif kind == "style":
            parts.append(f'style="{draw(_STYLES)}"')
        elif kind == "data-e2e":
            parts.append(draw(st.sampled_from(['data-e2e="advertisement"', 'data-e2e="Advert"'])))
        elif kind == "aria-label":
            parts.append(draw(st.sampled_from(['aria-label="广告"', 'aria-label="横幅广告位"'])))
        elif kind == "data-selfpromo":
            parts.append(draw(st.sampled_from(["data-selfpromo-box", "data-selfpromo"])))
        elif kind == "data-root-share":
            parts.append("data-root-share")
        else:
            parts.append('title="a &amp; b"')
    if tag == "a":
        parts.append(f'href="{draw(st.one_of(_HREFS, _BUILT_HREFS))}"')
    return (" " + " ".join(parts)) if parts else ""


def _leaf(draw: st.DrawFn) -> str:
    choice = draw(st.integers(0, 14))
    if choice == 0:
        return "<br>"
    if choice == 1:
        src = draw(_IMAGE_SOURCES)
        extra = draw(
            st.sampled_from(
                [
                    "",
                    ' id="icon-3"',
                    ' width="1" height="1"',
                    ' srcset="s.jpg 320w, l.jpg 1024w"',
                    ' data-src="https://cdn.example/lazy.jpg"',
                    ' xml:lang="en"',
                    ' width="1" height="2"',
                    ' class="Logo"',
                    ' id="main-photo"',
                ]
            )
        )
        return f'<img src="{src}" class="{draw(_CLASSES)}"{extra}>'
    if choice == 2:
        return '<video><img src="poster.jpg">Your browser does not support video</video>'
    if choice == 3:
        return draw(st.sampled_from(["<script>x = '<p>no</p>';</script>", "<style>p{}</style>"]))
    if choice == 4:
        return "<!-- a comment -->"
    if choice == 5:
        return draw(_link_lists())
    return draw(_TEXTS)


_IMAGE_SOURCES = st.sampled_from(
    [
        "a.jpg",
        "",
        "https://cdn.example/i.png",
        "data:x",
        " \thttps://cdn.example/spaced.png\n",
        "HTTPS://CDN.Example/Upper.PNG",
        "http://cdn.example/plain.jpg?w=640#top",
        "https://stats.wordpress.com/g.gif",
        "HTTP://Pixel.WP.com/t.gif",
        "https://www.google-analytics.com/collect?v=1",
        "https://cdn.example/placeholder.png",
        "https://cdn.example/img/Lazy-Load.gif",
        "https://cdn.example/icons/share.png",
        "https://cdn.example/ICON.png",
        "https://cdn.example/spinner.svg",
        "http://[::1]/bracketed.png",
        "https://cdn.example/图片.png",
        "https:///no-host.png",
        "https://?query-only.png",
        "//cdn.example/protocol-relative.png",
        "ftp://cdn.example/f.png",
    ]
)
"""Image sources across the image rules: each rule's cases, and the plain ones C takes itself."""

_LIST_ITEMS = st.sampled_from(
    [
        "<a href='/x'>Related story</a>",
        " <a href='/x'>Related&nbsp;story</a>\n",
        "<a href='/x'><span>Two</span> <b>parts</b></a>",
        "<a href='/x'>Link</a> and words",
        "<a href='/x'></a>",
        "",
        "<!-- note --><a href='/x'>Commented</a>",
        "<a href='/x'>One</a><a href='/y'>Two</a>",
        "<div><a href='/x'>Nested deeper</a></div>",
        "<a href='/x'>Script</a><script>var a = 1;</script>",
        "<a href='/x'>Zero\u200bwidth</a>",
        "Plain item",
    ]
)
"""List items that make a list a related-links list or keep it text, and the edge cases between."""


@st.composite
def _link_lists(draw: st.DrawFn) -> str:
    tag = draw(st.sampled_from(["ul", "ol"]))
    items = draw(st.lists(_LIST_ITEMS, max_size=4))
    between = draw(st.sampled_from(["", " ", "<!-- c -->", "<p>stray</p>"]))
    return f"<{tag}>{between.join(f'<li>{item}</li>' for item in items)}</{tag}>"


@st.composite
def _html(draw: st.DrawFn, depth: int = 0) -> str:
    """Nested markup; at the top, mostly elements, as article bodies are."""
    parts: list[str] = []
    for _ in range(draw(st.integers(0, 6 if depth == 0 else 3))):
        if depth < 4 and (depth == 0 or draw(st.booleans())):
            tag = draw(_BLOCK_TAGS if depth == 0 else _TAGS)
            inner = draw(_html(depth + 1))
            parts.append(f"<{tag}{draw(_attributes(tag))}>{inner}</{tag}>")
        else:
            parts.append(_leaf(draw))
    return "".join(parts)


@contextlib.contextmanager
def _using(walker: str) -> Iterator[None]:
    saved = body_module.WALKER
    body_module.WALKER = walker
    try:
        yield
    finally:
        body_module.WALKER = saved


def _extract_with(walker: str, html: str, url: str = "https://news.example/a/b.html") -> object:
    """The body (or the reject) one walk gives, with every field compared."""
    with _using(walker):
        try:
            return body_module.extract_body(html, url)
        except RejectError as error:
            return (error.reason, str(error))


@needs_c_walker
@settings(max_examples=400, deadline=None)
@given(_html())
@example("<p>Ordinary paragraph text of a news article.</p><p><strong>Short words</strong></p>")
@example("<div><p>one</p>tail<figure><img src='a.jpg'><figcaption>cap</figcaption></figure></div>")
def test_c_walk_gives_exactly_what_the_python_walk_gives(html: str) -> None:
    assert _extract_with("c", html) == _extract_with("python", html)


@needs_c_walker
@settings(max_examples=500, deadline=None)
@given(_METAISH)
@example("6月30日，新华社最新公布的数字")
@example("12/10/2020 - 15:16")
@example("Mon, 12 Oct 2020 19:33:56 GMT")
@example("3分钟前")
def test_c_walk_sorts_meta_lines_as_the_python_walk_does(text: str) -> None:
    """The C walk's test that a block cannot be a meta line (``may_be_meta``) must never
    rule out one that ``_is_meta_text`` takes."""
    html = f"<div><p>{escape(text)}</p><p>{escape(text)}<br>after</p></div>"
    assert _extract_with("c", html) == _extract_with("python", html)


@needs_c_walker
@pytest.mark.parametrize(
    "share_url",
    [
        "https://{pad}plurk.com/?status=x",
        "https://{pad}del.icio.us/post?url=https://a.example/x",
        "https://{pad}GETPOCKET.com/edit?url=https://a.example/x",
        "https://{pad}line.me/R/msg/text/?https://a.example/x",
        "https://{pad}pinterest.com/pin/create/button/?url=https://a.example/x",
        "https://{pad}delicious.com/save?url=https://a.example/x",
    ],
)
def test_c_walk_finds_share_hints_wherever_python_does(share_url: str) -> None:
    """The C walk skips ``share_link`` for an href with no share hint in its first
    characters. Its hint search must agree with Python's at every place a hint can start,
    the last places before the limit and the first after it included."""
    outcomes = set()
    for pad_length in range(SHARE_HINT_CHARS - 30, SHARE_HINT_CHARS + 2):
        href = share_url.format(pad="s" * (pad_length - len("https://")) + ".")
        html = f'<p>text <a href="{href}">share</a></p>'
        c_body = _extract_with("c", html)
        assert c_body == _extract_with("python", html), href
        outcomes.add(bool(c_body.share_links))  # type: ignore[attr-defined]
    assert outcomes == {True, False}, "the hrefs must put the hint on both sides of the limit"


@needs_c_walker
@pytest.mark.parametrize(
    "html",
    [
        "<p>lead <b>bold</b> tail</p>text after<div><p>one</p>between<p>two</p></div>end",
        "<ul><li><a href='/x'>Related one</a></li><li><a href='/y'>Related two</a></li></ul>",
        "<div><small>Photo: agency</small></div><img src='a.jpg'><small>credit line</small>",
        "<div><i>By a writer, in a city</i></div><p>Body text that follows the byline.</p>",
        "<h2 class='caption'>Heading with a caption class</h2><p>text</p>",
        "<p>获取更多RSS：</p><p>everything after the footer marker</p>",
        "text with no element<br>and a break",
        "<article><p>body</p><footer><a href='/tag/x'>x</a></footer>tail<h1>肆零<div>肆</div>"
        "</h1></article><p>after the article</p><article><footer/><p>past</p></article>",
    ],
)
def test_c_walk_matches_on_each_context_rule(html: str) -> None:
    assert _extract_with("c", html) == _extract_with("python", html)


@needs_c_walker
@pytest.mark.parametrize(
    "html",
    [
        "<p class='story-meta'>By a writer</p><span class='story-meta'>inline</span>"
        "<h2 class='story-meta'>Heading</h2><p class='story-meta'>By another</p>",
        "<figure class='credit'><img src='a.jpg'></figure><h3 class='credit'>Heading</h3>"
        "<p class='credit'>Photo: agency</p><p id='credit'>Photo: agency</p>",
        "<div class='a' id='d'>kept</div><div class='ad'>dropped</div>"
        "<div class='' id='ad'>x</div>",
        "<div class='x&amp;newsletter'>promo</div><div class='x&amp;y'>kept</div>",
        "<div class='{long} newsletter'>promo</div><div class='{long}'>kept</div>"
        "<div class='{long} newsletter'>promo again</div>",
        "<div class='相关 related'>links</div><div class='相关'>kept</div>"
        "<div class='相关 related'>x</div>",
    ],
)
def test_c_walk_decides_repeated_class_values_as_python_does(html: str) -> None:
    """The C walk remembers the class rules' decision by class and id value. A value seen
    before, on another tag, after a long value too long to remember, or after a value that
    differs only in where class ends and id begins, must be decided as the first time."""
    html = html.format(long="word-" * 120)
    first = _extract_with("c", html)
    assert first == _extract_with("python", html)
    assert _extract_with("c", html) == first


@needs_c_walker
def test_c_walk_stops_at_the_time_limit_with_the_same_reject() -> None:
    html = "<div>" + "<p>paragraph <b>with</b> markup</p>" * 2_000 + "</div>"
    for walker in ("c", "python"):
        with _using(walker), pytest.raises(RejectError) as caught:
            body_module.extract_body(html, "https://a.example/", time_limit_seconds=0.0)
        assert caught.value.reason is RejectReason.TIME_LIMIT
        assert "after 256 parser events" in str(caught.value)


def test_speedups_are_built_wherever_a_compiler_is() -> None:
    """The fallback exists for machines without a compiler, not to hide a broken build."""
    compiler = str(sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}) on this machine")
    assert speedups.BUILT
    assert ("c" if speedups.ENABLED else "python") == body_module.WALKER


def _real_bodies(corpus_dir: Path) -> Iterator[tuple[Path, str, str]]:
    for path in sorted((corpus_dir / "real").rglob("*")):
        if not path.is_file():
            continue
        try:
            envelope = parse_envelope(decode_document(path.read_bytes()))
        except RejectError:
            continue
        yield path, envelope.body_text, envelope.url


@needs_c_walker
@pytest.mark.corpus
@pytest.mark.slow
def test_c_walk_matches_on_every_real_file(corpus_dir: Path) -> None:
    compared = 0
    differing: list[str] = []
    for path, html, url in _real_bodies(corpus_dir):
        compared += 1
        if _extract_with("c", html, url) != _extract_with("python", html, url):
            differing.append(str(path.relative_to(corpus_dir)))
    assert compared > 3_000
    assert differing == []


@settings(max_examples=300, deadline=None)
@given(_html())
def test_text_content_is_what_xpath_string_gives(html: str) -> None:
    """``_text_content`` stands in for the slower XPath ``string()`` in the discard rules."""
    root = etree.fromstring(f"<div>{html}</div>", etree.HTMLParser(remove_comments=True))
    for element in root.iter(etree.Element):
        assert body_module._text_content(element) == str(element.xpath("string()"))
