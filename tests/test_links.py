"""Canonical URLs and article ids."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from transforms import article_id, canonical_url
from transforms import links as links_module
from transforms.links import is_http_url


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        (
            "HTTPS://WWW.Example.COM:443/a%e3%80%90b?x=%2f#frag",
            "https://www.example.com/a%E3%80%90b?x=%2F",
        ),
        ("http://example.com:80", "http://example.com/"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("https://example.com/A/b?q=1&r=2", "https://example.com/A/b?q=1&r=2"),
        ("https://Example.com:http/a", "https://example.com:http/a"),
    ],
)
def test_canonical_url(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical


def test_article_id_is_stable_and_ignores_cosmetic_differences() -> None:
    a = article_id("https://News.Example.com:443/story%c3%a9?id=1#top")
    b = article_id("https://news.example.com/story%C3%A9?id=1")
    assert a == b == "194b8efe8b5666de7a1432f49df7ba4e"
    assert article_id("https://news.example.com/story%C3%A9?id=2") != a


@given(
    st.from_regex(
        r"https?://[a-zA-Z]{1,10}\.example(:[0-9]{1,4})?/[A-Za-z0-9%/]{0,20}", fullmatch=True
    )
)
def test_canonicalisation_is_idempotent(url: str) -> None:
    assert canonical_url(canonical_url(url)) == canonical_url(url)


_URLISH = st.text(alphabet=st.sampled_from("hHtTpPsS:/?#.aé \t\n%x1[]＃@"), max_size=16)


def _full_parse_says_http(url: str) -> bool | str:
    try:
        parts = urlsplit(url)
    except ValueError as error:
        return f"ValueError: {error}"
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


@given(
    st.one_of(_URLISH, st.builds("{}{}".format, st.sampled_from(["http://", "HTTPS://"]), _URLISH))
)
@example("http://[::1")
@example("http://a＃b")
def test_http_url_shortcut_agrees_with_a_full_parse(url: str) -> None:
    try:
        shortcut: bool | str = is_http_url(url)
    except ValueError as error:
        shortcut = f"ValueError: {error}"
    assert shortcut == _full_parse_says_http(url)


_CANONICALISH = st.builds(
    "{}{}{}".format,
    st.sampled_from(["http://", "HTTPS://", " https://", "ftp://", "http:/", ""]),
    st.text(alphabet=st.sampled_from("aZ.-:@[]1"), max_size=8),
    st.text(alphabet=st.sampled_from("/?#%aAfF09é \t\x01\x7f=&"), max_size=16),
)


def _canonical_or_error(canonicalise: Callable[[str], str], url: str) -> str:
    try:
        return canonicalise(url)
    except ValueError as error:
        return f"ValueError: {error}"


@given(_CANONICALISH)
@example("http://a.com/%e3%80%90?q=%2f#%aa")
@example("http://a.com#x?y")
@example("http://a.com@b/x")
@example("http://a.com\t/x")
def test_plain_url_shortcut_agrees_with_a_full_parse(url: str) -> None:
    full_parse = links_module._canonical_url_parsed
    assert _canonical_or_error(canonical_url, url) == _canonical_or_error(
        lambda text: full_parse(text.strip()), url
    )


_PLACEHOLDERISH = st.lists(
    st.sampled_from(
        [
            *("https://img.example/", "PLACEHOLDER", "Grey-Placeholder", "blank.GIF"),
            *("spacer.gif", "Transparent.PNG", "transparent.gif", "LazyLoad", "lazy-load"),
            *("lazy_load", "lazy", "load", ".", "ſpacer.gif", "\u212a", "é", "x"),
        ]
    ),
    max_size=6,
).map("".join)


@given(st.text(alphabet=st.sampled_from([*"%%%aAfF09xg/中"]), max_size=16))
@example("%e5%85%ad%E7%a5")
@example("%%41%4%4g%")
def test_percent_escapes_are_upper_cased_as_one_escape_at_a_time_would_be(text: str) -> None:
    one_at_a_time = re.sub(r"%[0-9a-fA-F]{2}", lambda match: match.group(0).upper(), text)
    assert links_module._upper_percent_escapes(text) == one_at_a_time


@given(_PLACEHOLDERISH)
@example("https://img.example/ſpacer.gif")
@example("https://img.example/LAZY-LOAD/a.jpg")
def test_placeholder_shortcut_gives_the_answer_of_the_placeholder_pattern(src: str) -> None:
    expected = links_module._PLACEHOLDER_SRC.search(src) is not None
    assert links_module._is_placeholder(src) == expected


def _first_endpoint_in_order(host: str, path: str) -> str | None:
    """The share-endpoint rule as the rubric states it: first entry in list order whose host
    suffix and path prefix match."""
    for platform, host_suffix, path_prefix in links_module._SHARE_ENDPOINTS:
        on_host = host == host_suffix or host.endswith("." + host_suffix)
        if on_host and path.startswith(path_prefix):
            return platform
    return None


def test_endpoint_lookup_by_host_keeps_the_list_order() -> None:
    hosts = {"", "example.com"}
    for _, host_suffix, _ in links_module._SHARE_ENDPOINTS:
        hosts |= {host_suffix, f"www.{host_suffix}", f"a.b.{host_suffix}", f"x{host_suffix}"}
        hosts |= {f"{host_suffix}.evil", f".{host_suffix}", host_suffix[1:]}
    paths = {"", "/", "/x", "/sharer.php", "/share/", "/intent/tweetx"}
    paths |= {path_prefix for _, _, path_prefix in links_module._SHARE_ENDPOINTS}
    checked = 0
    for host in sorted(hosts):
        for path in sorted(paths):
            expected = _first_endpoint_in_order(host, path)
            assert links_module._web_share_platform(host, path) == expected, (host, path)
            checked += expected is not None
    assert checked > 100


_QUERYISH = st.lists(
    st.tuples(
        st.sampled_from(["u", "url", "href", "text", "body", "via", "t%65xt", "u+", "", "x=y"]),
        st.sampled_from(["", "=", "=a", "=https%3A%2F%2Fa.example%2Fx", "=b+c", "=%E4%BD%A0%zz"]),
    ),
    max_size=6,
).map(lambda fields: "&".join(name + value for name, value in fields))


@given(st.one_of(_QUERYISH, st.text(max_size=40)))
@example("u=1&u=2&&url&text=see%20https://a.example/x")
def test_share_query_values_are_what_parse_qsl_gives_for_their_names(query: str) -> None:
    from urllib.parse import parse_qsl

    names = {"u", "url", "href", "text", "body"}
    expected = {
        name: value
        for name, value in dict(parse_qsl(query, keep_blank_values=True)).items()
        if name in names
    }
    assert links_module.share_query_values(query) == expected


_ESCAPEISH = st.lists(
    st.one_of(
        st.sampled_from(["%", "%4", "%zz", "%E4", "%B8", "%AD", "%e6%96%87", "%F0%9F%98", "%80"]),
        st.sampled_from(["%41", "%20", "%25", "+", "a", "中", "\U0001f389", "\r\n", "\x00"]),
        st.builds(lambda byte: f"%{byte:02X}", st.integers(0, 255)),
        st.builds(lambda byte: f"%{byte:02x}", st.integers(0, 255)),
        st.text(max_size=3),
    ),
    max_size=12,
).map("".join)


@given(_ESCAPEISH)
@example("%E4%B8a%E4%B8%AD")
@example("%F0%9F%98%E4%B8%AD%80\U0001f389%C3")
def test_unquote_is_what_the_standard_library_gives(text: str) -> None:
    from urllib.parse import unquote

    assert links_module.unquote(text) == unquote(text)


_HREFISH = st.builds(
    "{}{}{}{}".format,
    st.sampled_from(["https://", "HTTP://", "whatsapp://", "mailto:", "ftp://", "http:/", ""]),
    st.text(alphabet=st.sampled_from("aZ.-:@[]1é"), max_size=10),
    st.text(alphabet=st.sampled_from("/?#%aA09é=&+ \t\x01\x7f"), max_size=16),
    st.sampled_from(["", "?u=https://a.example/x&t=y", "?text=see%20https://b.example", "#f"]),
)


def _split_or_error(split: Callable[[str], tuple[str, str, str, str]], href: str) -> object:
    try:
        return split(href)
    except ValueError as error:
        return f"ValueError: {error}"


def _full_split(href: str) -> tuple[str, str, str, str]:
    parts = urlsplit(href)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.path, parts.query


@given(_HREFISH.map(str.strip))
@example("https://Www.Facebook.com/sharer/sharer.php?u=https://a.example/&t=x#frag")
@example("https://a.example?")
@example("https://a.example:8080/share")
def test_href_split_shortcut_agrees_with_urlsplit(href: str) -> None:
    assert _split_or_error(links_module.split_href, href) == _split_or_error(_full_split, href)
