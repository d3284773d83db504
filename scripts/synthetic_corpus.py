"""Generate a synthetic archive that mirrors the real corpus mix, for benchmarks.

Formats in the real corpus's proportions (front matter + bare header 87%, front matter +
HTML 7%, dated 5%, bare 1%), bodies from a few sentences to long essays with images, share
widgets, captions, bylines and boilerplate, about 5% bad files (empty, binary, truncated,
headerless) and about 3% re-scrapes of an earlier URL (half identical bytes, half a version
published 1 hour to 14 days later). Deterministic for a given seed. All text is generated
here; nothing is copied.

Where re-scrapes fall (``--rescrapes``):

- ``nearby`` (default), as in the real corpus, whose 25 re-scraped URLs lie 1 to 119 files
  after their first capture in path order: a re-scrape repeats one of the 200 articles
  written just before it.
- ``scattered``, a worst case for the warehouse: a re-scrape repeats any of the first 5,000
  articles, so every later commit supersedes versions stored by the first.
"""

from __future__ import annotations

import argparse
import random
from datetime import UTC, datetime
from pathlib import Path

_HAN = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动"
    "同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自"
    "二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日"
    "那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变"
    "条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总"
    "次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指"
    "几九区强放决西被干做必战先回则任取据处府"
)
_WORDS = (
    "harbour city council plan volunteers fishermen plastic coast school teachers "
    "students market prices residents bridge village library night readers station "
    "railway tickets weather storm river museum report officials statement data"
).split()


def _sentence(rng: random.Random, chinese: bool) -> str:
    if chinese:
        return "".join(rng.choice(_HAN) for _ in range(rng.randint(15, 60))) + "。"
    words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 25))]
    return " ".join(words).capitalize() + "."


def _body(rng: random.Random, url: str, chinese: bool) -> str:
    parts = []
    if rng.random() < 0.3:
        parts.append(f"<div><i>Sample Reporter<br>2020-10-{rng.randint(10, 28)} 14:38:42</i></div>")
    for index in range(rng.choice((0, 1, 2, 4, 8, 15, 30, 60))):
        if rng.random() < 0.15:
            parts.append(
                f'<figure><img src="https://img.example/{rng.randrange(10**9)}.jpg" '
                f'srcset="https://img.example/s.jpg 240w, https://img.example/l.jpg '
                f'800w"><figcaption>{_sentence(rng, chinese)}</figcaption></figure>'
            )
        if index and rng.random() < 0.08:
            parts.append(f"<p><strong>{_sentence(rng, chinese)[:12]}</strong></p>")
        inline = f'<a href="https://ref.example/{index}">{_sentence(rng, chinese)[:8]}</a>'
        parts.append(f"<p>{_sentence(rng, chinese)} {inline}{_sentence(rng, chinese)}</p>")
    if rng.random() < 0.2:
        parts.append('<ul><li><a href="https://other.example/1">Related story</a></li></ul>')
    if rng.random() < 0.5:
        parts.append(
            f'<div><a href="https://www.facebook.com/sharer/sharer.php?u={url}&amp;t=x"></a>'
            f'<a href="whatsapp://send?text=read%20{url}"></a></div>'
        )
    if rng.random() < 0.2:
        parts.append("<p>© 2020 Sample Agency</p>")
    return "".join(parts) if rng.random() < 0.7 else "<div>\n" + "\n".join(parts) + "\n</div>"


def _front_matter(title: str, url: str, moment: datetime, feed: str) -> str:
    escaped = title.replace("\\", "\\\\").replace('"', '\\"')
    return (
        f'---\nlayout: post\ntitle: "{escaped}"\ndate: {moment:%Y-%m-%dT%H:%M:%S}.000Z\n'
        f"author: sample\nfrom: {url}\ntags: [ {feed} ]\ncategories: [ {feed} ]\n---\n"
    )


def render_article(rng: random.Random, number: int, url: str, epoch_ms: int) -> bytes:
    """One synthetic archive file in a format drawn with the real corpus's proportions."""
    chinese = rng.random() < 0.75
    title = _sentence(rng, chinese)[:30] + (' "quoted"' if rng.random() < 0.05 else "")
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    body = _body(rng, url, chinese)
    link = f"[{title}]({url})\n------\n"
    draw = rng.random()
    if draw < 0.87:
        text = _front_matter(title, url, moment, f"feed{number % 40}") + (
            f"<!--{epoch_ms}-->\n{link}\n{body}\n"
        )
    elif draw < 0.94:
        text = _front_matter(title, url, moment, "longform") + f"\n<article>{body}</article>\n"
    elif draw < 0.99:
        date = moment.strftime("%a, %d %b %Y %H:%M:%S +0000")
        text = f"{link}日期：{date}\n\n{body}\n"
    else:
        text = f"<!--{epoch_ms}-->\n{link}\n{body}\n"
    return text.encode("utf-8")


def _bad_file(rng: random.Random) -> bytes:
    return rng.choice(
        [
            b"",
            b"\x89PNG\r\n\x1a\n\x00\x00\x00",
            b"<!--1602571472000-->\n",
            b"notes without any header\n",
        ]
    )


RESCRAPE_PLACEMENTS = ("nearby", "scattered")
_NEARBY_ARTICLES = 200
_SCATTERED_ARTICLES = 5000
_HOUR_MS = 3_600_000


def generate(directory: Path, files: int, seed: int = 7, rescrapes: str = "nearby") -> Path:
    """Write ``files`` synthetic archive files under ``directory`` (sharded by thousands);
    ``rescrapes`` is one of ``RESCRAPE_PLACEMENTS`` (see the module docstring)."""
    if rescrapes not in RESCRAPE_PLACEMENTS:
        raise ValueError(f"rescrapes must be one of {RESCRAPE_PLACEMENTS}, not {rescrapes!r}")
    rng = random.Random(seed)
    start_ms = 1_577_836_800_000  # 2020-01-01
    written: list[tuple[str, int, bytes]] = []
    for number in range(files):
        shard = directory / f"{number // 1000:04d}"
        shard.mkdir(parents=True, exist_ok=True)
        draw = rng.random()
        if draw < 0.05:
            data = _bad_file(rng)
        elif draw < 0.08 and written:
            url, epoch_ms, previous = rng.choice(written)
            later_ms = epoch_ms + rng.randint(1, 14 * 24) * _HOUR_MS
            data = previous if rng.random() < 0.5 else render_article(rng, number, url, later_ms)
        else:
            url = f"https://news{number % 7}.example/{number}/story-{rng.randrange(10**6)}"
            epoch_ms = start_ms + rng.randrange(5 * 365 * 86_400_000)
            data = render_article(rng, number, url, epoch_ms)
            if rescrapes == "nearby" or len(written) < _SCATTERED_ARTICLES:
                written.append((url, epoch_ms, data))
            if rescrapes == "nearby" and len(written) > _NEARBY_ARTICLES:
                del written[0]
        (shard / f"{number:07d}.md").write_bytes(data)
    return directory


def main() -> None:
    """Command-line entry: write a synthetic corpus."""
    parser = argparse.ArgumentParser(description="Write a synthetic archive for benchmarks.")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rescrapes", choices=RESCRAPE_PLACEMENTS, default="nearby")
    options = parser.parse_args()
    generate(options.directory, options.files, options.seed, options.rescrapes)


if __name__ == "__main__":
    main()
