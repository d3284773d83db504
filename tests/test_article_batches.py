"""``parse_articles``: a batch gives, file for file, what ``parse_article`` gives each file."""

from __future__ import annotations

import gc
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import transforms.article
from tests.archive_files import bare, dated, front_matter_html, with_front_matter
from tests.test_synthetic_corpus import _synthetic_corpus
from transforms import (
    ParsedArticle,
    RejectError,
    RejectReason,
    extract_body,
    parse_article,
    parse_articles,
)

_BAD_FILES = (
    b"",
    b" \r\n\t",
    b"\x00binary",
    b"\xef\xbb\xbf<!--1600000000000-->\n[T](https://example.com/bom)\n------\n\n<p>x</p>",
    b"<!--1600000000000-->\n[caf\xe9](https://example.com/latin1)\n------\n\n<p>x</p>",
    b"<!--1600000000000-->\n",
    b"<!--99-->\n[T](https://example.com/old)\n------\n\n<p>too early</p>",
    b"---\ntitle: never closed\n",
    b"[T](javascript:alert(1))\n------\n\xe6\x97\xa5\xe6\x9c\x9f\xef\xbc\x9anot a date\n\n<p>x</p>",
    b"just some text\n",
)


def _outcome(raw: bytes) -> ParsedArticle | tuple[RejectReason, str]:
    try:
        return parse_article(raw)
    except RejectError as error:
        return error.reason, error.detail


def _batch_outcomes(raws: list[bytes]) -> list[ParsedArticle | tuple[RejectReason, str]]:
    return [
        (outcome.reason, outcome.detail) if isinstance(outcome, RejectError) else outcome
        for outcome in parse_articles(raws)
    ]


_TEXT = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00"),
    max_size=40,
)
_FORMATS = (bare, with_front_matter, dated, front_matter_html)


@st.composite
def _archive_file(draw: st.DrawFn) -> bytes:
    """A file of any format with a nasty title and body (quotes, emoji, CRLF), or a bad one."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.sampled_from(_BAD_FILES))
    render = draw(st.sampled_from(_FORMATS))
    title = draw(_TEXT)
    paragraphs = draw(st.lists(_TEXT, max_size=4))
    body = "".join(f"<p>{paragraph}</p>" for paragraph in paragraphs)
    epoch_ms = draw(st.integers(631_152_000_000, 4_102_444_799_000)) // 1000 * 1000
    text = render(title, f"https://example.com/{draw(st.integers(0, 9))}", epoch_ms, body)
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    return text.encode("utf-8")


@given(st.lists(_archive_file(), max_size=12))
def test_a_batch_gives_what_each_file_gives_alone(raws: list[bytes]) -> None:
    assert _batch_outcomes(raws) == [_outcome(raw) for raw in raws]


def test_the_synthetic_mix_and_the_bundled_sample_agree_file_for_file(
    sample_dir: Path, tmp_path: Path
) -> None:
    corpus = _synthetic_corpus().generate(tmp_path / "synthetic", 600)
    paths = sorted(corpus.rglob("*.md")) + sorted(p for p in sample_dir.rglob("*") if p.is_file())
    raws = [path.read_bytes() for path in paths]
    random.Random(5).shuffle(raws)
    expected = [_outcome(raw) for raw in raws]
    assert sum(isinstance(outcome, tuple) for outcome in expected) > 20
    assert _batch_outcomes(raws) == expected


def test_the_real_corpus_agrees_file_for_file(corpus_dir: Path) -> None:
    raws = [
        path.read_bytes() for path in sorted((corpus_dir / "real").rglob("*")) if path.is_file()
    ]
    assert _batch_outcomes(raws) == [_outcome(raw) for raw in raws]


def test_a_parser_bug_costs_its_file_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    good = bare("Fine", "https://example.com/fine", 1_600_000_000_000, "<p>kept</p>").encode()
    buggy = bare("Boom", "https://example.com/boom", 1_600_000_000_000, "<p>x</p>").encode()

    def extract_body_with_a_bug(html: str, url: str, **options: Any) -> object:
        if url.endswith("/boom"):
            raise KeyError("lost")
        return extract_body(html, url, **options)

    monkeypatch.setattr(transforms.article, "extract_body", extract_body_with_a_bug)
    first, failed, last = parse_articles([good, buggy, good])
    assert isinstance(first, ParsedArticle)
    assert isinstance(last, ParsedArticle)
    assert first.paragraphs == last.paragraphs == ("kept",)
    assert isinstance(failed, RejectError)
    assert failed.reason is RejectReason.EXTRACTION_FAILED
    assert failed.detail == "unexpected KeyError: 'lost'"
    assert isinstance(failed.__cause__, KeyError)


def test_an_empty_batch_gives_nothing() -> None:
    assert parse_articles([]) == []


def test_a_batch_leaves_no_garbage_cycle_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rejects, the errors they chain to and parser bugs keep no traceback: its frames lead
    back to ``parse_articles``'s own, and the cycle would hold a whole chunk of files until
    the cycle collector ran."""

    def extract_body_with_a_bug(html: str, url: str, **options: Any) -> object:
        if url.endswith("/boom"):
            raise KeyError("lost")
        return extract_body(html, url, **options)

    monkeypatch.setattr(transforms.article, "extract_body", extract_body_with_a_bug)
    good = bare("Fine", "https://example.com/fine", 1_600_000_000_000, "<p>kept</p>").encode()
    buggy = bare("Boom", "https://example.com/boom", 1_600_000_000_000, "<p>x</p>").encode()
    not_utf8 = b"<!--1600000000000-->\n[caf\xe9](https://example.com/x)\n------\n\n<p>x</p>"
    batch = [good, b"just some text\n", b"\x00", not_utf8, buggy, good]
    parse_articles(batch)
    gc.collect()
    gc.disable()
    try:
        outcomes = parse_articles(batch)
        assert [type(outcome) for outcome in outcomes] == [
            ParsedArticle,
            RejectError,
            RejectError,
            RejectError,
            RejectError,
            ParsedArticle,
        ]
        del outcomes
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_a_parser_bug_keeps_the_traceback_of_the_failing_step_as_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken_envelope(text: str) -> object:
        raise RuntimeError("header bug")

    monkeypatch.setattr(transforms.article, "parse_envelope", broken_envelope)
    (failed,) = parse_articles([b"anything"])
    assert isinstance(failed, RejectError)
    assert failed.detail == "unexpected RuntimeError: header bug"
    assert isinstance(failed.__cause__, RuntimeError)
    assert failed.__traceback__ is None
    assert failed.__cause__.__traceback__ is None
    (note,) = failed.__notes__
    assert note.startswith("Traceback (most recent call last):")
    assert 'in broken_envelope\n    raise RuntimeError("header bug")' in note
    assert note.endswith("RuntimeError: header bug\n")
