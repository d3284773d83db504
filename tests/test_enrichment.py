"""Title clean-up, in-body dates and language detection."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.archive_files import bare, dated, front_matter_html, with_front_matter
from transforms import RejectError, RejectReason, extract_body, parse_article, parse_articles
from transforms.dates import body_published_at
from transforms.language import detect_language
from transforms.titles import clean_title


@pytest.mark.parametrize(
    ("title", "clean"),
    [
        (
            "出手助难民 梵蒂冈将在罗马开设接待营 – 法国国际广播电台 - RFI",
            "出手助难民 梵蒂冈将在罗马开设接待营",
        ),
        ("蔡英文向北京伸出橄榄枝 - 要闻分析", "蔡英文向北京伸出橄榄枝"),
        ("马克龙访华 - 法国世界报", "马克龙访华"),
        ("美政府致函高校    敦促审查孔子学院", "美政府致函高校 敦促审查孔子学院"),
        ("大国如何瓦解 - iYouPort", "大国如何瓦解"),
        ("RFI", "RFI"),
        ("A - B - C", "A - B - C"),
    ],
)
def test_clean_title(title: str, clean: str) -> None:
    assert clean_title(title) == clean


def _ms(text: str) -> int:
    return round(datetime.fromisoformat(text).astimezone(UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("blocks", "url", "expected"),
    [
        (["17/02/2024 - 15:16"], "https://www.rfi.fr/cn/x", _ms("2024-02-17T14:16:00+00:00")),
        (["17/07/2024 - 15:16"], "https://www.rfi.fr/cn/x", _ms("2024-07-17T13:16:00+00:00")),
        (
            ["AUTHOR", "2020-10-13 14:38:42"],
            "https://cn.nytimes.com/a",
            _ms("2020-10-13T06:38:42+00:00"),
        ),
        (
            ["Tue, 13 Oct 2020 01:13:37 GMT"],
            "https://www.voachinese.com/a",
            _ms("2020-10-13T01:13:37+00:00"),
        ),
        (
            ["张慈 （综合报道）", "2020-10-13T06:08:01.314Z"],
            "https://www.dw.com/zh/a",
            _ms("2020-10-13T06:08:01.314+00:00"),
        ),
        (["2020-10-13 14:38:42"], "https://unknown.example/a", None),
        (["18 分钟前"], "https://www.bbc.com/zhongwen/a", None),
        (["31/02/2024 - 15:16"], "https://www.rfi.fr/cn/x", None),
        ([], "https://www.rfi.fr/cn/x", None),
    ],
)
def test_body_published_at(blocks: list[str], url: str, expected: int | None) -> None:
    assert body_published_at(blocks, url) == expected


@pytest.mark.parametrize(
    ("texts", "language"),
    [
        (
            ["这是一个关于城市公共图书馆延长开放时间的新闻报道，记者采访了多位读者和馆长。"],
            "zh-Hans",
        ),
        (
            ["這是一個關於城市公共圖書館延長開放時間的新聞報導，記者採訪了多位讀者和館長。"],
            "zh-Hant",
        ),
        (
            ["The ferry was late again, so I walked the long way round the bay and counted boats."],
            "en",
        ),
        ([], None),
        (["   "], None),
    ],
)
def test_detect_language(texts: list[str], language: str | None) -> None:
    assert detect_language(texts) == language


def test_sample_articles_get_language_title_clean_and_body_date(sample_dir: Path) -> None:
    rfi = parse_article((sample_dir / "news" / "rfi-harbour-cleanup.md").read_bytes())
    assert rfi.language == "zh-Hans"
    assert rfi.title_clean == "港口城市启动海岸清洁计划，渔民与志愿者共同参与"
    assert rfi.body_published_at_ms == _ms("2024-02-17T14:16:00+00:00")
    letter = parse_article(
        (sample_dir / "oped-other" / "2020-01-15-a-letter-from-the-coast.md").read_bytes()
    )
    assert (letter.language, letter.body_published_at_ms) == ("en", None)


@pytest.mark.parametrize("layout", [bare, with_front_matter, dated, front_matter_html])
def test_the_page_title_at_the_top_of_a_body_is_not_a_heading(layout: Callable[..., str]) -> None:
    """Many bodies open with the page's own title as an ``<h1>``: the title is its own
    column, and the heading list holds the sub-titles."""
    title = "港口 “城市” 计划 🎉 - 法国国际广播电台 - RFI"
    body = "<h1>港口 “城市” 计划 🎉</h1><p>正文。</p><h2>小标题</h2><p>更多。</p>"
    raw = layout(title, "https://news.example/a", 1_708_181_101_000, body).encode()
    for article in (parse_article(raw), *parse_articles([raw])):
        assert not isinstance(article, RejectError)
        assert article.title == title
        assert article.headings == ("小标题",)
        assert article.paragraphs == ("正文。", "更多。")


def test_time_limit_turns_a_slow_body_into_a_reject() -> None:
    html = "<div>" + "<p>paragraph <b>bold</b> text</p>" * 5000 + "</div>"
    assert len(extract_body(html, "https://a.example/").paragraphs) == 5000
    with pytest.raises(RejectError) as caught:
        extract_body(html, "https://a.example/", time_limit_seconds=0.0)
    assert caught.value.reason is RejectReason.TIME_LIMIT


@pytest.mark.corpus
def test_language_spot_check_on_the_real_corpus(corpus_dir: Path) -> None:
    real = corpus_dir / "real"
    news = [parse_article(path.read_bytes()) for path in sorted((real / "news").rglob("*.md"))]
    assert len(news) == 22
    assert {article.language for article in news} == {"zh-Hans"}
    spot = {
        "oped2/2020-03-25-The Flowers Blooming in the Dark.md": "en",
        "oped2/2019-06-06-舊詩.md": "zh-Hant",
        "oped2/2014-12-18-想提高效率，就别再做这7件事了.md": "zh-Hans",
    }
    for relative, language in spot.items():
        assert parse_article((real / relative).read_bytes()).language == language, relative
    cdt = [parse_article(path.read_bytes()).language for path in (real / "cdt").glob("*.md")]
    assert cdt.count("zh-Hans") / len(cdt) >= 0.95
