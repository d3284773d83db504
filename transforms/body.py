"""Extract an article body from HTML: a pure function from markup to classified text blocks.

The walk follows document order. Text is gathered into blocks, which end at block-level
elements and at ``<br>``; each block is then classified as a body paragraph, a heading, a
caption or a meta block, or discarded as boilerplate with a named reason (see
``DiscardReason``). Images and share links are collected on the way. The rules are those of
the project's extraction rubric (README, "Extraction rules").
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from lxml import etree

from transforms import speedups
from transforms.errors import RejectError, RejectReason
from transforms.links import (
    PLACEHOLDER_PARTS,
    SHARE_HINT_CHARS,
    SHARE_HINT_PARTS,
    TRACKING_PIXEL_PREFIXES,
    ShareLink,
    image_source,
    share_link,
)
from transforms.markup_scan import crowded_tag
from transforms.text import normalise_text
from transforms.titles import clean_title


class Role(StrEnum):
    """What a block of text is to a reader."""

    BODY = "body"
    HEADING = "heading"
    CAPTION = "caption"
    META = "meta"
    BOILERPLATE = "boilerplate"


class DiscardReason(StrEnum):
    """Why text was left out of the article. Every discard carries one."""

    ADVERTISEMENT = "advertisement"
    RELATED_LINKS = "related_links"
    SHARE_WIDGET = "share_widget"
    PROMO = "promo"
    FEED_FOOTER = "feed_footer"
    COPYRIGHT = "copyright"
    ENGLISH_VERSION_LINK = "english_version_link"
    MEDIA_FALLBACK = "media_fallback"
    HIDDEN = "hidden"
    READ_MORE = "read_more"
    COMMENTS = "comments"
    SECTION_BREAK = "section_break"
    REPEATED_TITLE = "repeated_title"
    PAST_ARTICLE_END = "past_article_end"
    RELATED_STREAM = "related_stream"


@dataclass(frozen=True, slots=True)
class Discard:
    """A piece of text left out of the article, with the reason."""

    reason: DiscardReason
    text: str


@dataclass(frozen=True, slots=True)
class Body:
    """Everything Broadsheet takes from an article's HTML."""

    paragraphs: tuple[str, ...] = ()
    headings: tuple[str, ...] = ()
    captions: tuple[str, ...] = ()
    meta_blocks: tuple[str, ...] = ()
    image_urls: tuple[str, ...] = ()
    share_links: tuple[ShareLink, ...] = ()
    discarded: tuple[Discard, ...] = ()


_BLOCK_TAGS = frozenset(
    "p div section article main header footer aside blockquote figure figcaption ul ol li dl dt "
    "dd table thead tbody tfoot tr td th caption h1 h2 h3 h4 h5 h6 pre address hr center details "
    "summary nav form fieldset body html".split()
)
_HEADING_TAGS = frozenset("h1 h2 h3 h4 h5 h6".split())
_BOLD_TAGS = frozenset(("b", "strong"))
_NOT_CONTENT_TAGS = frozenset(
    "script style noscript template head title meta link svg canvas object embed button input "
    "select textarea option map area".split()
)
_MEDIA_TAGS = frozenset(("video", "audio", "iframe"))
_CAPTION_ANCHOR_TAGS = frozenset(("img", "video", "iframe", "picture", "figure", "audio"))
# Tags whose role depends on the tag itself (or its neighbours), checked even without attributes.
_TAG_RULE_TAGS = _HEADING_TAGS | frozenset("ul ol time figcaption figure small i em".split())
_ARTICLE_END_TAGS = frozenset(("article", "footer"))
"""Where an article may end early: its own footer, after paragraphs (``_end_article_at``)."""

# Attribute rules on lower-cased class and id values (see _attribute_context).
_TOKEN_SEPARATORS = re.compile(r"[-_]")
_HIDDEN_WORDS = frozenset(("element-invisible", "sr-only", "screen-reader-text"))
_AD_TOKENS = frozenset(("ad", "ads", "adsbygoogle", "sponsored"))
_AD_TOKEN_PREFIXES = ("advert", "adcontainer")
_PROMO_PARTS = ("newsletter", "selfpromo", "subscribe", "app-promo", "paywall", "barrier")
"""Newsletter, app and subscription promos; a paywall's barrier (NYT's ``BarrierFailsafe``,
``nykpaywall``) asks the reader to subscribe too."""
PROMO_MAX_CHARS = 300
"""A block inside promo markup this long or longer is read as article text, not a promo
(``_is_article_text_in_promo``). On the real corpus with parser 1.5.0, 42 of the 43 promo
discards ran to 38 characters at most; the other, 376, was an interview's answer in a
newsletter slot."""
_SHARE_TOKENS = frozenset(("addtoany", "a2a", "sharedaddy"))
_SHARE_TOKEN_PREFIXES = ("share", "social")
_RELATED_PARTS = ("related", "readmore", "read-more")
_RELATED_TOKENS = frozenset(("tags", "categories"))
"""A post's tag or category list (``post-tags``, ``tags``, ``categories``): links to other
posts, like a related list."""
_RELATED_STREAM_WORDS = frozenset(("streamitem--heading",))
"""The heading of Medium's stream of other stories (``streamItem--heading``, its "Related"
label): the cards after it (each story's publication, date, picture and title) are that
stream, not the post, so a block with this class starts a footer (``_start_footer_at``)."""
_RELATED_WORDS = frozenset(("wp-embedded-content",))
"""WordPress's card for another post embedded in this one: that post's title as a link."""
_META_TOKENS = frozenset(("meta", "submitted", "posted"))
"""Byline and date boxes (``entry-meta``, ``rich_media_meta``, Drupal's ``submitted``,
WordPress's ``posted-on``)."""
_META_WORDS = frozenset(("field-name-author",))
"""Drupal's author field ("文/" and the author's name). Not every ``author`` token: an author
bio closing an opinion piece is body, and ChinaFile's contributors' responses are
``comment-by-node-author``."""
_COMMENT_WORDS = frozenset(("comment-by-anonymous", "comment-add", "comment-form"))
"""Readers' comments, as Drupal marks those of anonymous users, and its comment form's link
and title. Comments in general are not left out: ChinaFile's "conversation" posts are made of
its contributors' comments."""
_CAPTION_PARTS = ("caption", "copyright", "credit")
_TOPIC_CLASS_PREFIXES = ("category-", "tag-")
"""Class words that name a post's topics, not what the element is: WordPress puts a post's
categories and tags on its container (``category-newsletters``, ``tag-social-media``), and
matching them dropped whole articles as promos or share widgets. The class rules skip them."""
_CLASS_RULES_FOR_C = (
    (Role.BOILERPLATE, DiscardReason.HIDDEN, tuple(sorted(_HIDDEN_WORDS)), (), (), (), ()),
    (
        Role.BOILERPLATE,
        DiscardReason.ADVERTISEMENT,
        (),
        (),
        tuple(sorted(_AD_TOKENS)),
        _AD_TOKEN_PREFIXES,
        (),
    ),
    (Role.BOILERPLATE, DiscardReason.PROMO, (), (), (), (), _PROMO_PARTS),
    (
        Role.BOILERPLATE,
        DiscardReason.SHARE_WIDGET,
        (),
        (),
        tuple(sorted(_SHARE_TOKENS)),
        _SHARE_TOKEN_PREFIXES,
        (),
    ),
    (
        Role.BOILERPLATE,
        DiscardReason.RELATED_STREAM,
        tuple(sorted(_RELATED_STREAM_WORDS)),
        (),
        (),
        (),
        (),
    ),
    (
        Role.BOILERPLATE,
        DiscardReason.RELATED_LINKS,
        tuple(sorted(_RELATED_WORDS)),
        (),
        tuple(sorted(_RELATED_TOKENS)),
        (),
        _RELATED_PARTS,
    ),
    (Role.BOILERPLATE, DiscardReason.COMMENTS, tuple(sorted(_COMMENT_WORDS)), (), (), (), ()),
    (Role.CAPTION, None, (), ("figure",), (), (), _CAPTION_PARTS),
    (Role.META, None, tuple(sorted(_META_WORDS)), (), tuple(sorted(_META_TOKENS)), (), ()),
)
"""``_class_context`` as data for the C walk, in its order: (role, reason, words, word
prefixes, tokens, token prefixes, substrings). Words split at whitespace, tokens at ``-``
and ``_`` too; C applies them to ASCII class and id values, Python to the rest."""
_RULE_ATTRIBUTE_NAMES = frozenset(("hidden", "style", "data-e2e", "aria-label", "data-root-share"))
_AD_LABEL_WORD = "广告"
"""An ``aria-label`` holding it marks an advertisement."""
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_DECORATION_ATTRIBUTE = re.compile(r"zoom|icon|avatar|wp-smiley|emoji|logo", re.IGNORECASE)

# Text patterns, applied to a whole normalised block.
# Whole-block text rules. A footer start discards the block and everything after it; the
# others discard just the block. Rules anchored at the start of the block are one regex tried
# at position 0 only; the rest are plain substrings, searched in the lower-cased block.
_ANCHORED_TEXT_RULES: tuple[tuple[str, DiscardReason, bool], ...] = (
    (r"获取更多RSS", DiscardReason.FEED_FOOTER, True),
    (r"Feed enhanced by|Post tags:", DiscardReason.FEED_FOOTER, True),
    (r"©|\(c\)|copyright\b", DiscardReason.COPYRIGHT, True),
    (r"(?:分享|分享到|share|share this)\s*[:：]?$", DiscardReason.SHARE_WIDGET, False),
    (r"(?:see|read) the english version", DiscardReason.ENGLISH_VERSION_LINK, False),
    (
        r"continue reading on .*$|(?:阅读|閱讀)(?:全文|更多)|read more\b",
        DiscardReason.READ_MORE,
        False,
    ),
    (
        r"微信搜索|(?:请)?关注(?:我们的)?(?:微信|公众号)|下载.{0,12}(?:app|客户端)",
        DiscardReason.PROMO,
        False,
    ),
    (
        r"(?:related(?: articles| stories| posts)?|相关(?:文章|阅读|新闻)?|相關(?:文章|閱讀|新聞)?"
        r"|延伸阅读|延伸閱讀)\s*[:：]?$",
        DiscardReason.RELATED_LINKS,
        False,
    ),
    (r"(?:[-*_=~#·•◆◇⁂\u2010-\u2015]\s*){3,}$", DiscardReason.SECTION_BREAK, False),
    (r"CDS\s*(?:档案|檔案)\s*[|｜]", DiscardReason.RELATED_LINKS, False),
    (r"(?:评论|評論)\s*[:：]?$", DiscardReason.COMMENTS, False),
    (r"No More\.$", DiscardReason.PAST_ARTICLE_END, True),
)
_ANCHORED_TEXT_RULE = re.compile(
    "|".join(f"(?P<rule{index}>{rule[0]})" for index, rule in enumerate(_ANCHORED_TEXT_RULES)),
    re.IGNORECASE,
)
_ANCHORED_FIRST_CHARS = frozenset(
    "获FfPp©(CcSsſRr分阅閱微请关下相延-*_=~#·•◆◇⁂\u2010\u2011\u2012\u2013\u2014\u2015评評Nn"
)
"""Every character an ``_ANCHORED_TEXT_RULE`` match can start with (``ſ`` matches ``s``
under IGNORECASE): a block starting with any other skips the regex."""
_CJK_SUBSTRING_TEXT_RULES: tuple[tuple[str, DiscardReason, bool], ...] = (
    ("版权声明", DiscardReason.COPYRIGHT, True),
    ("版权所有", DiscardReason.COPYRIGHT, True),
    ("点击查看本文英文版", DiscardReason.ENGLISH_VERSION_LINK, False),
    ("不支持播放", DiscardReason.MEDIA_FALLBACK, False),
)
"""Caseless substrings, searched in the block as it is; tried before the Latin ones."""
_LATIN_SUBSTRING_TEXT_RULES: tuple[tuple[str, DiscardReason, bool], ...] = (
    ("does not support the video", DiscardReason.MEDIA_FALLBACK, False),
    ("does not support video", DiscardReason.MEDIA_FALLBACK, False),
    ("does not support the audio", DiscardReason.MEDIA_FALLBACK, False),
    ("does not support audio", DiscardReason.MEDIA_FALLBACK, False),
    ("does not support the media", DiscardReason.MEDIA_FALLBACK, False),
    ("enable javascript to watch", DiscardReason.MEDIA_FALLBACK, False),
    ("enable javascript to view", DiscardReason.MEDIA_FALLBACK, False),
    (
        "on medium, where people are continuing the conversation",
        DiscardReason.FEED_FOOTER,
        True,
    ),
)
"""Substrings searched in the lower-cased block; every one holds an 's', so a block with no
's' or 'S' skips the (costly, for CJK text) lower-casing."""
_LATIN_RULE_STEMS = ("does not support", "enable javascript to", "continuing the conversation")
"""Every Latin substring rule holds one of these: three searches rule out all eight. (Medium's
feed adds "<title> was originally published in <publication> on Medium, where people are
continuing the conversation by highlighting and responding to this story." to each post.)"""
_META_TEXT = re.compile(
    r"^(\d{1,2}/\d{1,2}/\d{4}\s*-\s*\d{1,2}:\d{2}"
    r"|\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    r"|[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}(?::\d{2})? (?:GMT|UTC|[+-]\d{4})"
    r"|\d+\s*(?:秒|分钟|分鐘|小时|小時|天|日|周|週)前"
    r"|[（(]?\s*(?:翻译|翻譯|编译|編譯|译者|譯者|校对|校對|核稿|责编|責編|网编|網編|作者|撰文|"
    r"记者|記者|文|图|圖|摄影|攝影)\s*[：:/／｜|].{0,60}"
    r"|.{0,40}(?:责编|責編|网编|網編)\s*[：:].{0,60}"
    r"|本文最初发表于.{0,60}|本文最初發表於.{0,60}|translated by .{1,60}"
    r"|[^\s（(]{1,30}\s*[（(](?:路透社|法新社|美联社|美聯社|德新社|综合报道|綜合報道|dpa|afp|rtr|ap|"
    r"reuters)[^)）]{0,20}[)）])$",
    re.IGNORECASE,
)
_META_FIRST_CHARS = frozenset("（(本翻编編译譯校核责責网網作撰记記文图圖摄攝tT")
"""First characters that let a ``_META_TEXT`` match start without any of the other marks
``_may_be_meta_text`` looks for: a credit line's opening parenthesis or word, "本文最初…",
"translated by" (no other character folds to ``t`` under IGNORECASE: a test checks)."""
_CAPTION_TEXT = re.compile(
    r"^(以下图片来自|以下圖片來自|图片来源|圖片來源|图片来自|圖片來自)"
    r"|^(来源|來源|图|圖|摄|攝|photo|source)\s*[：:]",
    re.IGNORECASE,
)
_CAPTION_TEXT_MAX_CHARS = 80
_CAPTION_FIRST_CHARS = frozenset("以图圖来來摄攝PpSsſ")
"""Every character a ``_CAPTION_TEXT`` match can start with."""
_DECORATION_SRC = re.compile(r"(^|[/_-])icons?([/_.-]|$)|spinner|loading\.gif", re.IGNORECASE)
_DECORATION_SRC_PARTS = ("icon", "spinner", "loading.gif")
"""Every ``_DECORATION_SRC`` match holds one of these, lower-cased."""
_DECORATION_ATTRIBUTE_PARTS = ("zoom", "icon", "avatar", "wp-smiley", "emoji", "logo")
"""``_DECORATION_ATTRIBUTE``'s alternatives as plain substrings."""
_URL = re.compile(r"https?://", re.IGNORECASE)
_META_MAX_CHARS = 120
_CLOCK_CHECK_MASK = 255  # look at the clock every 256 parser events
_LEAD_MIN_CHARS = 20
_HEADING_MAX_CHARS = 80


_Fragment = tuple[str, Role, "DiscardReason | None", bool]
"""A piece of text with its context: (text, role, discard reason, inside bold)."""
_Frame = tuple[Role, "DiscardReason | None", bool, bool, str]
"""Context of an open element: (role, discard reason, bold, is block, outer container)."""
_LEAF_FRAME: _Frame = (Role.BODY, None, False, False, "")

# Element kinds for the walk; every kind above _BLOCK has its subtree skipped.
_INLINE, _BLOCK, _ANCHOR, _SKIP, _BREAK, _IMAGE, _MEDIA = range(7)
_TAG_KINDS: dict[str, int] = {
    **dict.fromkeys(_BLOCK_TAGS, _BLOCK),
    **dict.fromkeys(_NOT_CONTENT_TAGS, _SKIP),
    **dict.fromkeys(_MEDIA_TAGS, _MEDIA),
    "a": _ANCHOR,
    "br": _BREAK,
    "img": _IMAGE,
}


@dataclass(slots=True)
class _Walk:
    base_url: str
    fragments: list[_Fragment] = field(default_factory=list)
    container: str = "div"
    paragraphs: list[str] = field(default_factory=list)
    headings: list[str] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    meta_blocks: list[str] = field(default_factory=list)
    image_urls: list[str] = field(default_factory=list)
    share_links: list[ShareLink] = field(default_factory=list)
    discarded: list[Discard] = field(default_factory=list)
    footer_reason: DiscardReason | None = None
    image_since_last_block: bool = False


MAX_ATTRIBUTES_PER_TAG = 1_000
"""A body with a tag holding more attributes is rejected before libxml2 parses it, since its
parse time grows with the square of a tag's attributes (``transforms.markup_scan``). Real
markup holds a few: the most in the real corpus is 12. At this limit, a body of 7 MB of such
tags parses in about 2.6 s, as long as other bodies of that size; one tag of 64,000 took 40 s
and one of 600,000 had not finished after 10 minutes."""

DEFAULT_TIME_LIMIT_SECONDS = 2.0
"""Extraction of one body stops with a ``time_limit`` reject after this long (real bodies take
milliseconds), so one pathological file cannot stall a batch."""


def extract_body(
    html: str | bytes,
    base_url: str,
    *,
    title: str | None = None,
    time_limit_seconds: float = DEFAULT_TIME_LIMIT_SECONDS,
) -> Body:
    """Classify the text of an article's HTML (text, or its UTF-8 bytes) and collect its
    images and share links. Given the article's ``title``, a heading repeating it (the page
    title many bodies start with) is left out as ``repeated_title``: it is not a sub-title."""
    markup: str | bytes
    if isinstance(html, bytes):
        if _is_blank(html):
            return Body()
        markup = html
    elif not html.strip():
        return Body()
    else:
        try:
            markup = html.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: only lxml's own str path takes them
            markup = html
    crowded = crowded_tag(markup, MAX_ATTRIBUTES_PER_TAG)
    if crowded:
        raise RejectError(
            RejectReason.TOO_MANY_ATTRIBUTES,
            f"a tag holds {crowded:,} attributes, above the limit of "
            f"{MAX_ATTRIBUTES_PER_TAG:,}: libxml2's parse time grows with their square",
        )
    parser = _parser(utf8=isinstance(markup, bytes))
    root: etree._Element | None = etree.fromstring(markup, parser)
    _raise_on_lost_content(parser)
    if root is None:
        return Body()
    walk = _Walk(base_url)
    _WALKS[WALKER](walk, root, time.perf_counter() + time_limit_seconds)
    _flush(walk)
    if title is not None and walk.headings:
        _leave_out_repeated_title(walk, title)
    return Body(
        paragraphs=tuple(walk.paragraphs),
        headings=tuple(walk.headings),
        captions=tuple(walk.captions),
        meta_blocks=tuple(walk.meta_blocks),
        image_urls=tuple(dict.fromkeys(walk.image_urls)),
        share_links=tuple(walk.share_links),
        discarded=tuple(walk.discarded),
    )


def _leave_out_repeated_title(walk: _Walk, title: str) -> None:
    """Move the headings that repeat ``title`` (as given, or without its site suffix, both
    normalised like the headings) to the discards."""
    forms = {normalise_text(title), clean_title(title)}
    kept = []
    for heading in walk.headings:
        if heading in forms:
            walk.discarded.append(Discard(DiscardReason.REPEATED_TITLE, heading))
        else:
            kept.append(heading)
    walk.headings = kept


def _is_blank(markup: bytes) -> bool:
    """Whether UTF-8 ``markup`` decoded holds only whitespace (``str.isspace``'s), mostly
    without decoding it: ``bytes.lstrip`` strips the ASCII whitespace but \x1c-\x1f, and
    the rest of str's whitespace is not ASCII."""
    rest = markup.lstrip()
    if not rest:
        return True
    if rest[0] < 0x80 and not 0x1C <= rest[0] <= 0x1F:
        return False
    return not markup.decode("utf-8", "replace").strip()


_PARSERS = threading.local()


def _parser(*, utf8: bool) -> etree.HTMLParser:
    """One lxml parser per thread and input type: lxml parsers must not be shared between
    threads. The body is parsed as UTF-8 bytes (libxml2 reads them as they are; a ``str``
    of CJK text costs it a conversion) and only a string UTF-8 cannot encode as ``str``."""
    name = "utf8_parser" if utf8 else "str_parser"
    parser: etree.HTMLParser | None = getattr(_PARSERS, name, None)
    if parser is None:
        parser = etree.HTMLParser(
            remove_comments=True,
            remove_pis=True,
            no_network=True,
            recover=True,
            huge_tree=True,
            collect_ids=False,  # nothing looks elements up by id; hashing every id costs time
            encoding="utf-8" if utf8 else None,
        )
        setattr(_PARSERS, name, parser)
    return parser


def _raise_on_lost_content(parser: etree.HTMLParser) -> None:
    """libxml2 recovers from bad markup, but a fatal error means it dropped part of the text."""
    for entry in parser.error_log:
        if entry.level == etree.ErrorLevels.FATAL:
            reason = (
                RejectReason.TOO_DEEPLY_NESTED
                if "depth" in entry.message
                else RejectReason.UNPARSABLE_HTML
            )
            raise RejectError(reason, f"HTML parser stopped at line {entry.line}: {entry.message}")


def _walk_tree_python(walk: _Walk, root: etree._Element, deadline: float) -> None:
    """Walk the tree in document order with lxml's C iterator (no recursion, no depth limit).

    Each open element has a frame (role, discard reason, bold, block flag, outer container);
    an element's text takes its own frame's context, its tail its parent's. Whitespace that
    would open a block is dropped at once (it cannot change the block's text). This loop runs
    once per element of every article, so it keeps its work per event small.
    """
    frames: list[_Frame] = [(Role.BODY, None, False, False, walk.container)]
    article_starts: list[int] = []  # len(walk.paragraphs) as each open article and footer began
    fragments = walk.fragments
    events = etree.iterwalk(root, events=("start", "end"))
    count = 0
    for event, element in events:
        count += 1
        if not count & _CLOCK_CHECK_MASK and time.perf_counter() > deadline:
            raise _time_limit_reject(count)
        if event == "end":
            frame = frames.pop()
            if frame[3]:
                if fragments:
                    _flush(walk)
                walk.container = frame[4]
            if element.tag in _ARTICLE_END_TAGS:
                _end_article_at(element, frames, article_starts)
            tail = element.tail
            if tail and (fragments or not tail.isspace()):
                parent = frames[-1]
                fragments.append((tail, parent[0], parent[1], parent[2]))
            continue
        tag = element.tag  # the HTML parser gives lower-case names; other nodes have no str tag
        kind = _TAG_KINDS.get(tag, _INLINE) if type(tag) is str else _SKIP
        if kind == _ANCHOR:
            link = share_link(element.get("href", ""))
            if link is None:
                kind = _INLINE
            else:
                walk.share_links.append(link)
                _discard_subtree(walk, element, DiscardReason.SHARE_WIDGET)
                kind = _SKIP
        if kind > _BLOCK:
            events.skip_subtree()
            frames.append(_LEAF_FRAME)
            if kind == _BREAK:
                if fragments:
                    _flush(walk)
            elif kind == _IMAGE:
                if frames[-2][0] is not Role.BOILERPLATE and walk.footer_reason is None:
                    _take_image(walk, element)
            elif kind == _MEDIA:
                _discard_subtree(walk, element, DiscardReason.MEDIA_FALLBACK)
            continue
        role, reason, bold, _, _ = frames[-1]
        if tag in _TAG_RULE_TAGS or element.attrib:
            role, reason = _context(walk, element, tag, role, reason)
        if tag in _BOLD_TAGS:
            bold = True
        if kind == _BLOCK:
            if fragments:
                _flush(walk)
            if reason is DiscardReason.RELATED_STREAM:
                _start_footer_at(walk, reason)
            if tag in _ARTICLE_END_TAGS:
                article_starts.append(len(walk.paragraphs))
            if not len(element):
                _place_leaf_block(walk, element, tag, role, reason, bold)
                events.skip_subtree()
                frames.append(_LEAF_FRAME)
                continue
            frames.append((role, reason, bold, True, walk.container))
            walk.container = tag
        else:
            frames.append((role, reason, bold, False, ""))
        text = element.text
        if text and (fragments or not text.isspace()):
            fragments.append((text, role, reason, bold))


def _start_footer_at(walk: _Walk, reason: DiscardReason) -> None:
    """A block that starts a footer by its class (``_RELATED_STREAM_WORDS``): its text and
    everything after it are discarded with ``reason``, and no later image is the article's."""
    if walk.footer_reason is None:
        walk.footer_reason = reason


def _end_article_at(
    element: etree._Element, frames: list[_Frame], article_starts: list[int]
) -> None:
    """At the end of an ``<article>`` or ``<footer>`` (``article_starts`` holds the count of
    paragraphs as each open one began): an article's own footer, after paragraphs of that
    article, ends it. What follows inside the ``<article>`` (the top frame, once the footer's
    is popped) is the page around it, such as Nei.st's "肆零肆" mark. A footer that comes
    before the article's paragraphs (HTML allows one at the top, for a byline) ends nothing."""
    started = article_starts.pop()
    if element.tag != "footer" or not article_starts or started <= article_starts[-1]:
        return
    parent = element.getparent()
    if parent is not None and parent.tag == "article" and frames[-1][0] is not Role.BOILERPLATE:
        _, _, bold, is_block, container = frames[-1]
        frames[-1] = (Role.BOILERPLATE, DiscardReason.PAST_ARTICLE_END, bold, is_block, container)


def _place_leaf_block(
    walk: _Walk,
    element: etree._Element,
    tag: str,
    role: Role,
    reason: DiscardReason | None,
    bold: bool,
) -> None:
    """A block with no child elements (most paragraphs): one block of its own text."""
    text = element.text
    if text:
        _place_leaf_text(walk, text, tag, role, reason, bold)


def _place_leaf_text(
    walk: _Walk, text: str, tag: str, role: Role, reason: DiscardReason | None, bold: bool
) -> None:
    """Place the text of a leaf block, with the block itself as the container."""
    text = normalise_text(text)
    if text:
        outer_container = walk.container
        walk.container = tag
        _place(walk, role, reason, text, bold)
        walk.container = outer_container


def _context(
    walk: _Walk, element: etree._Element, tag: str, role: Role, reason: DiscardReason | None
) -> tuple[Role, DiscardReason | None]:
    """The role of the text inside ``element``, given the role of its parent."""
    if role is Role.BOILERPLATE:
        return role, reason
    if element.attrib:
        decided = _attribute_context(element)
        if decided is not None and _attribute_role_applies(decided[0], tag):
            return decided
    if tag in _TAG_RULE_TAGS:
        return _tag_context(walk, element, tag, role, reason)
    return role, reason


def _attribute_role_applies(role: Role, tag: str) -> bool:
    """Whether an attribute's role holds for this tag: a caption class does not make a heading
    a caption, and a meta class marks a byline box, a block, not an inline span inside a line
    (``<p>作者： <span class="rich_media_meta">…</span></p>`` is one meta line, not two)."""
    if role is Role.CAPTION:
        return tag not in _HEADING_TAGS
    if role is Role.META:
        return tag in _BLOCK_TAGS
    return True


def _attribute_context(element: etree._Element) -> tuple[Role, DiscardReason | None] | None:
    """The role an element's attributes give its text, or None when they say nothing."""
    names: list[str] = element.keys()  # type: ignore[assignment]  # HTML names are str
    if len(names) == 1:  # most elements: one attribute, and a class when it matters
        name = names[0]
        if name == "class":
            return _class_context(f"{element.get('class')} ")
        if name not in _RULE_ATTRIBUTE_NAMES and name != "id" and "data-selfpromo" not in name:
            return None
    promo = "data-selfpromo" in " ".join(names)
    if promo or not _RULE_ATTRIBUTE_NAMES.isdisjoint(names):
        if element.get("hidden") is not None or _HIDDEN_STYLE.search(element.get("style", "")):
            return Role.BOILERPLATE, DiscardReason.HIDDEN
        if element.get("data-e2e") == "advertisement" or _AD_LABEL_WORD in element.get(
            "aria-label", ""
        ):
            return Role.BOILERPLATE, DiscardReason.ADVERTISEMENT
        if promo:
            return Role.BOILERPLATE, DiscardReason.PROMO
        if element.get("data-root-share") is not None:
            return Role.BOILERPLATE, DiscardReason.SHARE_WIDGET
    class_name, identifier = element.get("class"), element.get("id")
    if class_name is None and identifier is None:
        return None
    return _class_context(f"{class_name or ''} {identifier or ''}")


@functools.lru_cache(maxsize=8192)
def _class_context(attributes: str) -> tuple[Role, DiscardReason | None] | None:
    """The role that class and id values give, matched as lower-cased tokens (split at
    whitespace, ``-`` and ``_``) and substrings, leaving out a post's category and tag classes
    (``_TOPIC_CLASS_PREFIXES``). Cached: sites repeat their class names."""
    words = [
        word for word in attributes.lower().split() if not word.startswith(_TOPIC_CLASS_PREFIXES)
    ]
    attributes = " ".join(words)
    tokens = _TOKEN_SEPARATORS.sub(" ", attributes).split()
    if not _HIDDEN_WORDS.isdisjoint(words):
        return Role.BOILERPLATE, DiscardReason.HIDDEN
    if not _AD_TOKENS.isdisjoint(tokens) or any(t.startswith(_AD_TOKEN_PREFIXES) for t in tokens):
        return Role.BOILERPLATE, DiscardReason.ADVERTISEMENT
    if any(part in attributes for part in _PROMO_PARTS):
        return Role.BOILERPLATE, DiscardReason.PROMO
    if not _SHARE_TOKENS.isdisjoint(tokens) or any(
        token.startswith(_SHARE_TOKEN_PREFIXES) for token in tokens
    ):
        return Role.BOILERPLATE, DiscardReason.SHARE_WIDGET
    if not _RELATED_STREAM_WORDS.isdisjoint(words):
        return Role.BOILERPLATE, DiscardReason.RELATED_STREAM
    if (
        any(part in attributes for part in _RELATED_PARTS)
        or not _RELATED_TOKENS.isdisjoint(tokens)
        or not _RELATED_WORDS.isdisjoint(words)
    ):
        return Role.BOILERPLATE, DiscardReason.RELATED_LINKS
    if not _COMMENT_WORDS.isdisjoint(words):
        return Role.BOILERPLATE, DiscardReason.COMMENTS
    if any(part in attributes for part in _CAPTION_PARTS) or any(
        word.startswith("figure") for word in words
    ):
        return Role.CAPTION, None
    if not _META_TOKENS.isdisjoint(tokens) or not _META_WORDS.isdisjoint(words):
        return Role.META, None
    return None


def _tag_context(
    walk: _Walk, element: etree._Element, tag: str, role: Role, reason: DiscardReason | None
) -> tuple[Role, DiscardReason | None]:
    """The role given by the tag alone (and its neighbours), when no attribute decides it."""
    if tag in _HEADING_TAGS:
        return Role.HEADING, None
    if tag in ("ul", "ol") and _is_link_list(element):
        return Role.BOILERPLATE, DiscardReason.RELATED_LINKS
    if tag == "time":
        return Role.META, None
    if tag in ("figcaption", "figure"):
        return Role.CAPTION, None
    if tag == "small" and _follows_media(element):
        return Role.CAPTION, None
    if tag in ("i", "em") and not walk.paragraphs and _is_sole_child_block(element):
        return Role.META, None
    return role, reason


def _is_link_list(element: etree._Element) -> bool:
    """A list whose every item is nothing but links: related-story lists, not article text."""
    items = [child for child in element if child.tag == "li"]
    if not items:
        return False
    for item in items:
        text = normalise_text(_text_content(item))
        link_text = normalise_text("".join(_text_content(a) for a in item.iter("a")))
        if not text or text != link_text:
            return False
    return True


def _follows_media(element: etree._Element) -> bool:
    """A ``<small>`` right under an image or video, or in a box right after one."""
    for candidate in (element, element.getparent()):
        if candidate is None:
            continue
        previous = candidate.getprevious()
        if previous is not None and previous.tag in _CAPTION_ANCHOR_TAGS:
            return True
    return False


def _is_sole_child_block(element: etree._Element) -> bool:
    """An italic run that fills its whole block, like a byline-and-date box at the top."""
    parent = element.getparent()
    if parent is None or parent.tag not in ("div", "p") or len(parent) != 1:
        return False
    return not (parent.text or "").strip() and not (element.tail or "").strip()


def _text_content(element: etree._Element) -> str:
    """All the text inside an element, as XPath ``string()`` gives it (without the element's
    tail), at a seventh of its cost."""
    return etree.tostring(element, method="text", encoding="unicode", with_tail=False)


def _discard_subtree(walk: _Walk, element: etree._Element, reason: DiscardReason) -> None:
    text = normalise_text(_text_content(element))
    if text:
        walk.discarded.append(Discard(reason, text))
    for image in element.iter("img"):
        if reason is DiscardReason.MEDIA_FALLBACK:
            _take_image(walk, image)


def _take_image(walk: _Walk, element: etree._Element) -> None:
    attributes: dict[str, str] = dict(element.attrib)  # type: ignore[arg-type]  # HTML: str
    parent = element.getparent()
    context = f"{attributes.get('class', '')} {attributes.get('id', '')}"
    if parent is not None:
        context += f" {parent.get('class', '')} {parent.get('id', '')}"
    _take_image_with(walk, attributes, context)


def _take_image_with(walk: _Walk, attributes: dict[str, str], context: str) -> None:
    """Record the image an ``<img>`` with these attributes shows, unless it is decoration.
    ``context`` is its class and id and its parent's, space-separated."""
    if _may_match(context, _DECORATION_ATTRIBUTE_PARTS) and _DECORATION_ATTRIBUTE.search(context):
        return
    url = image_source(attributes, walk.base_url)
    if url is not None and not (
        _may_match(url, _DECORATION_SRC_PARTS) and _DECORATION_SRC.search(url)
    ):
        walk.image_urls.append(url)
        walk.image_since_last_block = True


def _may_match(text: str, parts: tuple[str, ...]) -> bool:
    """False when an IGNORECASE pattern needing one of ``parts`` cannot match ``text``.

    Only ASCII text is ruled out this way: lower-casing it is exactly the pattern's case
    folding, whereas some non-ASCII letters (such as the long s) fold onto ASCII ones.
    """
    if not text.isascii():
        return True
    lowered = text.lower()
    return any(part in lowered for part in parts)


def _flush(walk: _Walk) -> None:
    """End the current block: classify the gathered text, one block per run of equal role."""
    fragments = walk.fragments
    if not fragments:
        return
    count = len(fragments)
    if count == 1:
        text, role, reason, bold = fragments[0]
        fragments.clear()
        text = normalise_text(text)
        if text:
            _place(walk, role, reason, text, bold)
        return
    runs: list[tuple[str, Role, DiscardReason | None, bool]] = []
    start = 0
    while start < count:
        _, role, reason, _ = fragments[start]
        end = start + 1
        while end < count and fragments[end][1] is role and fragments[end][2] is reason:
            end += 1
        run = fragments[start:end]
        bold = all(fragment[3] for fragment in run if not fragment[0].isspace())
        runs.append(("".join(fragment[0] for fragment in run), role, reason, bold))
        start = end
    fragments.clear()
    for text, role, reason, bold in runs:
        text = normalise_text(text)
        if text:
            _place(walk, role, reason, text, bold)


def _place(walk: _Walk, role: Role, reason: DiscardReason | None, text: str, bold: bool) -> None:
    if role is Role.BOILERPLATE and not _is_article_text_in_promo(reason, text):
        walk.discarded.append(Discard(reason or DiscardReason.PROMO, text))
        return
    if walk.footer_reason is not None:
        walk.discarded.append(Discard(walk.footer_reason, text))
        return
    text_rule = _text_rule(text)
    if text_rule is not None:
        discard_reason, starts_footer = text_rule
        if starts_footer:
            walk.footer_reason = discard_reason
        walk.discarded.append(Discard(discard_reason, text))
        return
    follows_image = walk.image_since_last_block
    walk.image_since_last_block = False
    if role is Role.HEADING:
        walk.headings.append(text)
    elif role is Role.CAPTION or _is_caption_text(text, follows_image):
        walk.captions.append(text)
    elif role is Role.META or _is_meta_text(text):
        walk.meta_blocks.append(text)
    elif bold and walk.container in ("p", "div") and _is_bold_heading(walk, text):
        walk.headings.append(text)
    else:
        walk.paragraphs.append(text)


def _is_article_text_in_promo(reason: DiscardReason | None, text: str) -> bool:
    """Whether a block inside promo markup is too long to be a promo: the article's own text
    in a promo slot (a copied RFI page holds a quotation of its interview in the newsletter
    slot). Only the markup says promo, and the text contradicts it; other boilerplate (an ad,
    a related list, comments) may well hold long text."""
    return reason in (DiscardReason.PROMO, None) and len(text) >= PROMO_MAX_CHARS


def _text_rule(text: str) -> tuple[DiscardReason, bool] | None:
    """The discard reason (and whether it starts the footer) a whole-block rule gives text."""
    if text[0] in _ANCHORED_FIRST_CHARS:
        anchored = _ANCHORED_TEXT_RULE.match(text)
        if anchored is not None:
            _, reason, starts_footer = _ANCHORED_TEXT_RULES[int(str(anchored.lastgroup)[4:])]
            return reason, starts_footer
    for substring, reason, starts_footer in _CJK_SUBSTRING_TEXT_RULES:
        if substring in text:
            return reason, starts_footer
    if "s" in text or "S" in text:
        lowered = text.lower()
        if not any(stem in lowered for stem in _LATIN_RULE_STEMS):
            return None
        for substring, reason, starts_footer in _LATIN_SUBSTRING_TEXT_RULES:
            if substring in lowered:
                return reason, starts_footer
    return None


def _is_meta_text(text: str) -> bool:
    """A short dateline, byline, credit or agency line. ``_may_be_meta_text`` rules out
    most paragraphs before the regex."""
    if len(text) > _META_MAX_CHARS or not _may_be_meta_text(text):
        return False
    return _META_TEXT.match(text) is not None


def _may_be_meta_text(text: str) -> bool:
    """False only when ``_META_TEXT`` cannot match: every alternative needs one of these
    marks, none of which case folding can produce. Its ``$`` also matches before a final
    newline, so the last character is looked for before one. The C walk
    (``transforms._speedups``) applies the same test."""
    first = text[:1]
    last = text[-2:-1] if text.endswith("\n") else text[-1:]
    return (
        last in (")", "）")  # an agency in parentheses
        or "编" in text  # 责编, 网编 anywhere in the first 40 characters
        or "編" in text
        or text[3:4] == ","  # "Mon, 12 Oct 2020 19:33:56 GMT"
        or first in _META_FIRST_CHARS
        or first.isspace()  # a credit line's word after an opening parenthesis and spaces
        or (
            first.isdecimal()
            and (
                text[1:2] == "/"  # 17/02/2024 - 15:16
                or text[2:3] == "/"
                or text[4:5] == "-"  # 2020-10-13
                or last == "前"  # 3分钟前
            )
        )
    )


def _is_caption_text(text: str, follows_image: bool) -> bool:
    """A short credit line such as '来源：…' under an image, or '以下图片来自…' before one."""
    if (
        len(text) > _CAPTION_TEXT_MAX_CHARS
        or text[0] not in _CAPTION_FIRST_CHARS
        or not (match := _CAPTION_TEXT.match(text))
    ):
        return False
    return follows_image or match.group(1) is not None


def _is_bold_heading(walk: _Walk, text: str) -> bool:
    """A bold-only paragraph is a sub-heading, except a lead that opens the article."""
    if not walk.paragraphs and len(text) >= _LEAD_MIN_CHARS:
        return False
    return len(text) <= _HEADING_MAX_CHARS and not _URL.search(text)


def _time_limit_reject(events: int) -> RejectError:
    return RejectError(
        RejectReason.TIME_LIMIT,
        f"body extraction passed its time limit after {events:,} parser events",
    )


def _walk_tree_c(walk: _Walk, root: etree._Element, deadline: float) -> None:
    """The walk of ``_walk_tree_python``, done in C by ``transforms._speedups``: same events,
    frames and placement, calling back into this module for the patterns and link rules."""
    assert _speedups is not None, "the C walk is registered only when it is built"
    events = _speedups.walk_tree(walk, root, deadline)
    if events is not None:
        raise _time_limit_reject(events)


_WALKS: dict[str, Callable[[_Walk, etree._Element, float], None]] = {"python": _walk_tree_python}

_speedups = speedups.module()
if _speedups is not None:
    _speedups.configure(
        tag_kinds=_TAG_KINDS,
        rule_tags=_TAG_RULE_TAGS,
        bold_tags=_BOLD_TAGS,
        heading_tags=_HEADING_TAGS,
        rule_attribute_names=_RULE_ATTRIBUTE_NAMES,
        role_body=Role.BODY,
        role_heading=Role.HEADING,
        role_caption=Role.CAPTION,
        role_meta=Role.META,
        role_boilerplate=Role.BOILERPLATE,
        reason_share_widget=DiscardReason.SHARE_WIDGET,
        reason_media_fallback=DiscardReason.MEDIA_FALLBACK,
        share_link=share_link,
        share_hint_parts=SHARE_HINT_PARTS,
        share_hint_chars=SHARE_HINT_CHARS,
        discard_subtree=_discard_subtree,
        take_image=_take_image,
        take_image_with=_take_image_with,
        context=_context,
        tag_context=_tag_context,
        class_context=_class_context,
        perf_counter=time.perf_counter,
        reason_promo=DiscardReason.PROMO,
        reason_hidden=DiscardReason.HIDDEN,
        reason_advertisement=DiscardReason.ADVERTISEMENT,
        ad_label_word=_AD_LABEL_WORD,
        reason_related_links=DiscardReason.RELATED_LINKS,
        reason_past_article_end=DiscardReason.PAST_ARTICLE_END,
        reason_related_stream=DiscardReason.RELATED_STREAM,
        decoration_attribute_parts=_DECORATION_ATTRIBUTE_PARTS,
        decoration_src_parts=_DECORATION_SRC_PARTS,
        placeholder_parts=PLACEHOLDER_PARTS,
        tracking_pixel_prefixes=TRACKING_PIXEL_PREFIXES,
        class_rules=_CLASS_RULES_FOR_C,
        topic_class_prefixes=_TOPIC_CLASS_PREFIXES,
        discard_type=Discard,
        text_rule=_text_rule,
        is_caption_text=_is_caption_text,
        is_meta_text=_is_meta_text,
        is_bold_heading=_is_bold_heading,
        anchored_first_chars=_ANCHORED_FIRST_CHARS,
        caption_first_chars=_CAPTION_FIRST_CHARS,
        meta_first_chars=_META_FIRST_CHARS,
        cjk_substrings=tuple(rule[0] for rule in _CJK_SUBSTRING_TEXT_RULES),
        latin_stems=_LATIN_RULE_STEMS,
        caption_max_chars=_CAPTION_TEXT_MAX_CHARS,
        meta_max_chars=_META_MAX_CHARS,
        promo_max_chars=PROMO_MAX_CHARS,
    )
    _WALKS["c"] = _walk_tree_c

WALKER = "c" if _speedups is not None else "python"
"""Which walk ``extract_body`` uses (see ``transforms.speedups``); both give the same output."""
