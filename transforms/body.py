"""Extract an article body from HTML: a pure function from markup to classified text blocks.

The walk follows document order. Text is gathered into blocks, which end at block-level
elements and at ``<br>``; each block is then classified as a body paragraph, a heading, a
caption or a meta block, or discarded as boilerplate with a named reason (see
``DiscardReason``). Images and share links are collected on the way. The rules are those of
the project's extraction rubric (README, "Extraction rules").
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from lxml import etree

from transforms.links import ShareLink, image_source, share_link
from transforms.text import normalise_text


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

_AD_ATTRIBUTE = re.compile(
    r"(^|[\s_-])(ad|ads|advert\w*|adsbygoogle|dotcom-ad|AdContainer\S*|"
    r"sponsored)($|[\s_-])",
    re.IGNORECASE,
)
_PROMO_ATTRIBUTE = re.compile(r"newsletter|selfpromo|subscribe|app-promo", re.IGNORECASE)
_SHARE_ATTRIBUTE = re.compile(
    r"(^|[\s_-])(share\w*|social\w*|addtoany|a2a_kit|sharedaddy)"
    r"($|[\s_-])",
    re.IGNORECASE,
)
_RELATED_ATTRIBUTE = re.compile(r"related|read-?more|jp-relatedposts", re.IGNORECASE)
_HIDDEN_ATTRIBUTE = re.compile(r"(^|\s)(element-invisible|sr-only|screen-reader-text)(\s|$)")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_CAPTION_ATTRIBUTE = re.compile(r"caption|copyright|credit|(^|\s)Figure", re.IGNORECASE)
_DECORATION_ATTRIBUTE = re.compile(r"zoom|icon|avatar|wp-smiley|emoji|logo", re.IGNORECASE)

# Text patterns, applied to a whole normalised block.
_BOILERPLATE_TEXT: tuple[tuple[re.Pattern[str], DiscardReason], ...] = (
    (
        re.compile(r"^(分享|分享到|share|share this)\s*[:：]?$", re.IGNORECASE),
        DiscardReason.SHARE_WIDGET,
    ),
    (
        re.compile(r"点击查看本文英文版|^(see|read) the english version", re.IGNORECASE),
        DiscardReason.ENGLISH_VERSION_LINK,
    ),
    (
        re.compile(
            r"不支持播放|does not support (the )?(video|audio|media)|"
            r"enable javascript to (watch|view)",
            re.IGNORECASE,
        ),
        DiscardReason.MEDIA_FALLBACK,
    ),
    (
        re.compile(
            r"^continue reading on .*»?$|^(阅读|閱讀)(全文|更多)|^read more\b", re.IGNORECASE
        ),
        DiscardReason.READ_MORE,
    ),
    (
        re.compile(
            r"^微信搜索|^(请)?关注(我们的)?(微信|公众号)|^下载.{0,12}(app|客户端)", re.IGNORECASE
        ),
        DiscardReason.PROMO,
    ),
)
_FOOTER_START: tuple[tuple[re.Pattern[str], DiscardReason], ...] = (
    (re.compile(r"^获取更多RSS"), DiscardReason.FEED_FOOTER),
    (re.compile(r"^Feed enhanced by|^Post tags:"), DiscardReason.FEED_FOOTER),
    (
        re.compile(r"^(©|\(c\)|copyright\b)|版权声明|版权所有", re.IGNORECASE),
        DiscardReason.COPYRIGHT,
    ),
)
_META_TEXT = re.compile(
    r"^(\d{1,2}/\d{1,2}/\d{4}\s*-\s*\d{1,2}:\d{2}"
    r"|\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    r"|[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}(?::\d{2})? (?:GMT|UTC|[+-]\d{4})"
    r"|\d+\s*(?:秒|分钟|分鐘|小时|小時|天|日|周|週)前"
    r"|[（(]?\s*(?:翻译|翻譯|编译|編譯|译者|譯者|校对|校對|核稿|责编|責編|网编|網編|作者|撰文|"
    r"记者|記者|文|图|圖|摄影|攝影)\s*[：:/／].{0,60}"
    r"|.{0,40}(?:责编|責編|网编|網編)\s*[：:].{0,60}"
    r"|本文最初发表于.{0,60}|本文最初發表於.{0,60}|translated by .{1,60}"
    r"|[^\s（(]{1,30}\s*[（(](?:路透社|法新社|美联社|美聯社|德新社|综合报道|綜合報道|dpa|afp|rtr|ap|"
    r"reuters)[^)）]{0,20}[)）])$",
    re.IGNORECASE,
)
_CAPTION_TEXT = re.compile(
    r"^(以下图片来自|以下圖片來自|图片来源|圖片來源|图片来自|圖片來自)"
    r"|^(来源|來源|图|圖|摄|攝|photo|source)\s*[：:]",
    re.IGNORECASE,
)
_CAPTION_TEXT_MAX_CHARS = 80
_DECORATION_SRC = re.compile(r"(^|[/_-])icons?([/_.-]|$)|spinner|loading\.gif", re.IGNORECASE)
_URL = re.compile(r"https?://", re.IGNORECASE)
_LEAD_MIN_CHARS = 20
_HEADING_MAX_CHARS = 80


@dataclass(slots=True)
class _Fragment:
    text: str
    role: Role
    bold: bool
    reason: DiscardReason | None


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


def extract_body(html: str, base_url: str) -> Body:
    """Classify the text of an article's HTML and collect its images and share links."""
    if not html.strip():
        return Body()
    root: etree._Element | None = etree.fromstring(html, _parser())
    if root is None:
        return Body()
    walk = _Walk(base_url)
    _visit(walk, root, Role.BODY, None, bold=False)
    _flush(walk)
    return Body(
        paragraphs=tuple(walk.paragraphs),
        headings=tuple(walk.headings),
        captions=tuple(walk.captions),
        meta_blocks=tuple(walk.meta_blocks),
        image_urls=tuple(dict.fromkeys(walk.image_urls)),
        share_links=tuple(walk.share_links),
        discarded=tuple(walk.discarded),
    )


_PARSERS = threading.local()


def _parser() -> etree.HTMLParser:
    """One lxml parser per thread: lxml parsers must not be shared between threads."""
    parser: etree.HTMLParser | None = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = etree.HTMLParser(
            remove_comments=True,
            remove_pis=True,
            no_network=True,
            recover=True,
            huge_tree=True,
        )
        _PARSERS.parser = parser
    return parser


def _visit(
    walk: _Walk, element: etree._Element, role: Role, reason: DiscardReason | None, *, bold: bool
) -> None:
    raw_tag: object = element.tag  # entities and other non-element nodes have no string tag
    if not isinstance(raw_tag, str):
        return
    tag = raw_tag.lower()
    if tag in _NOT_CONTENT_TAGS:
        return
    if tag == "br":
        _flush(walk)
        return
    if tag == "img":
        _take_image(walk, element)
        return
    if tag == "a":
        link = share_link(element.get("href", ""))
        if link is not None:
            walk.share_links.append(link)
            _discard_subtree(walk, element, DiscardReason.SHARE_WIDGET)
            return
    role, reason = _context(walk, element, tag, role, reason)
    if tag in _MEDIA_TAGS:
        _discard_subtree(walk, element, DiscardReason.MEDIA_FALLBACK)
        return
    is_block = tag in _BLOCK_TAGS
    outer_container = walk.container
    if is_block:
        _flush(walk)
        walk.container = tag
    bold = bold or tag in _BOLD_TAGS
    if element.text:
        walk.fragments.append(_Fragment(element.text, role, bold, reason))
    for child in element:
        _visit(walk, child, role, reason, bold=bold)
        if child.tail:
            walk.fragments.append(_Fragment(child.tail, role, bold, reason))
    if is_block:
        _flush(walk)
        walk.container = outer_container


def _context(
    walk: _Walk, element: etree._Element, tag: str, role: Role, reason: DiscardReason | None
) -> tuple[Role, DiscardReason | None]:
    """The role of the text inside ``element``, given the role of its parent."""
    if role is Role.BOILERPLATE:
        return role, reason
    if not element.attrib:
        return _tag_context(walk, element, tag, role, reason)
    attributes = f"{element.get('class', '')} {element.get('id', '')}"
    if (
        element.get("hidden") is not None
        or _HIDDEN_STYLE.search(element.get("style", ""))
        or (_HIDDEN_ATTRIBUTE.search(attributes))
    ):
        return Role.BOILERPLATE, DiscardReason.HIDDEN
    if (
        element.get("data-e2e") == "advertisement"
        or "广告" in element.get("aria-label", "")
        or _AD_ATTRIBUTE.search(attributes)
    ):
        return Role.BOILERPLATE, DiscardReason.ADVERTISEMENT
    if any(str(name).startswith("data-selfpromo") for name in element.attrib) or (
        _PROMO_ATTRIBUTE.search(attributes)
    ):
        return Role.BOILERPLATE, DiscardReason.PROMO
    if _SHARE_ATTRIBUTE.search(attributes) or "data-root-share" in element.attrib:
        return Role.BOILERPLATE, DiscardReason.SHARE_WIDGET
    if _RELATED_ATTRIBUTE.search(attributes):
        return Role.BOILERPLATE, DiscardReason.RELATED_LINKS
    if _CAPTION_ATTRIBUTE.search(attributes) and tag not in _HEADING_TAGS:
        return Role.CAPTION, None
    return _tag_context(walk, element, tag, role, reason)


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
        text = normalise_text(str(item.xpath("string()")))
        link_text = normalise_text("".join(str(a.xpath("string()")) for a in item.iter("a")))
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


def _discard_subtree(walk: _Walk, element: etree._Element, reason: DiscardReason) -> None:
    text = normalise_text(str(element.xpath("string()")))
    if text:
        walk.discarded.append(Discard(reason, text))
    for image in element.iter("img"):
        if reason is DiscardReason.MEDIA_FALLBACK:
            _take_image(walk, image)


def _take_image(walk: _Walk, element: etree._Element) -> None:
    attributes = {str(key): str(value) for key, value in element.attrib.items()}
    parent = element.getparent()
    context = f"{attributes.get('class', '')} {attributes.get('id', '')}"
    if parent is not None:
        context += f" {parent.get('class', '')} {parent.get('id', '')}"
    if _DECORATION_ATTRIBUTE.search(context):
        return
    url = image_source(attributes, walk.base_url)
    if url is not None and not _DECORATION_SRC.search(url):
        walk.image_urls.append(url)
        walk.image_since_last_block = True


def _flush(walk: _Walk) -> None:
    """End the current block: classify the gathered text, one block per run of equal role."""
    fragments = walk.fragments
    if not fragments:
        return
    walk.fragments = []
    if len(fragments) == 1:
        only = fragments[0]
        text = normalise_text(only.text)
        if text:
            _place(walk, only.role, only.reason, text, only.bold)
        return
    for role, reason, texts, bold_flags in _runs(fragments):
        text = normalise_text("".join(texts))
        if text:
            _place(walk, role, reason, text, all(bold_flags))


def _runs(
    fragments: list[_Fragment],
) -> Iterator[tuple[Role, DiscardReason | None, list[str], list[bool]]]:
    start = 0
    for index in range(1, len(fragments) + 1):
        if index == len(fragments) or (fragments[index].role, fragments[index].reason) != (
            fragments[start].role,
            fragments[start].reason,
        ):
            run = fragments[start:index]
            texts = [fragment.text for fragment in run]
            bold_flags = [fragment.bold for fragment in run if fragment.text.strip()]
            yield run[0].role, run[0].reason, texts, bold_flags
            start = index


def _place(walk: _Walk, role: Role, reason: DiscardReason | None, text: str, bold: bool) -> None:
    if role is Role.BOILERPLATE:
        walk.discarded.append(Discard(reason or DiscardReason.PROMO, text))
        return
    if walk.footer_reason is not None:
        walk.discarded.append(Discard(walk.footer_reason, text))
        return
    for pattern, footer_reason in _FOOTER_START:
        if pattern.search(text):
            walk.footer_reason = footer_reason
            walk.discarded.append(Discard(footer_reason, text))
            return
    for pattern, boilerplate_reason in _BOILERPLATE_TEXT:
        if pattern.search(text):
            walk.discarded.append(Discard(boilerplate_reason, text))
            return
    follows_image = walk.image_since_last_block
    walk.image_since_last_block = False
    if role is Role.HEADING:
        walk.headings.append(text)
    elif role is Role.CAPTION or _is_caption_text(text, follows_image=follows_image):
        walk.captions.append(text)
    elif role is Role.META or _META_TEXT.match(text):
        walk.meta_blocks.append(text)
    elif bold and walk.container in ("p", "div") and _is_bold_heading(walk, text):
        walk.headings.append(text)
    else:
        walk.paragraphs.append(text)


def _is_caption_text(text: str, *, follows_image: bool) -> bool:
    """A short credit line such as '来源：…' under an image, or '以下图片来自…' before one."""
    if len(text) > _CAPTION_TEXT_MAX_CHARS or not (match := _CAPTION_TEXT.match(text)):
        return False
    return follows_image or match.group(1) is not None


def _is_bold_heading(walk: _Walk, text: str) -> bool:
    """A bold-only paragraph is a sub-heading, except a lead that opens the article."""
    if not walk.paragraphs and len(text) >= _LEAD_MIN_CHARS:
        return False
    return len(text) <= _HEADING_MAX_CHARS and not _URL.search(text)
