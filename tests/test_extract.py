"""Main-content extraction, content-kind decisions and text normalisation."""

from __future__ import annotations

import pytest

from crawl2model.pipeline.extract import DEFAULT_EXTRACTOR, EXTRACTORS, content_kind, extract_text, normalize_text

ARTICLE = """<!doctype html><html><head><title>Title</title><style>p {color: red}</style>
<script>var tracking = "do not extract me";</script></head><body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li><li><a href="/contact">Contact</a></li></ul></nav>
<article><h1>River levels rise after a week of rain</h1>
<p>The river reached its highest level in a decade on Tuesday, after seven days of continuous rain across the valley.</p>
<p>Officials said the flood barriers held, and that residents near the old bridge should expect road closures until Friday.</p>
<img src="river.jpg" alt="a photo of the river">
<p>Farmers upstream reported that fields had been under water since the weekend, delaying the spring planting by weeks.</p>
</article>
<footer>Copyright 2024 Valley News | Privacy | Terms</footer></body></html>"""

PARAGRAPHS = ["The river reached its highest level", "Officials said the flood barriers held",
              "Farmers upstream reported"]


@pytest.mark.parametrize("name", sorted(EXTRACTORS))
def test_extracts_main_content_paragraphs(name: str) -> None:
    text = extract_text(ARTICLE, name)
    lines = text.split("\n")
    for para in PARAGRAPHS:
        assert sum(line.startswith(para) for line in lines) == 1, (name, text)
    assert "\n\n" not in text
    assert "do not extract me" not in text and "color: red" not in text
    assert "a photo of the river" not in text
    assert "Privacy" not in text


@pytest.mark.parametrize("name", sorted(EXTRACTORS))
@pytest.mark.parametrize("garbage", ["", "   \n", "<<<>>>&&&", "\x00\x01\x02", "<html><body></body></html>",
                                     "<div>" * 3000 + "deep", "<p>unclosed <b>tags <i>everywhere"])
def test_garbage_never_raises(name: str, garbage: str) -> None:
    assert isinstance(extract_text(garbage, name), str)


def test_empty_page_gives_empty_text() -> None:
    assert extract_text("<html><body></body></html>") == ""


def test_unknown_extractor_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="resiliparse.*trafilatura"):
        extract_text(ARTICLE, "boilerpipe")
    assert DEFAULT_EXTRACTOR in EXTRACTORS


@pytest.mark.parametrize("content_type,head,kind", [
    ("text/html; charset=utf-8", b"", "html"),
    ("TEXT/HTML", b"", "html"),
    ("application/xhtml+xml", b"", "html"),
    ("text/plain", b"", "text"),
    ("text/plain; charset=gbk", b"", "text"),
    (None, b"  <!DOCTYPE html><html>", "html"),
    (None, b"<html lang=en>", "html"),
    (None, b"\xef\xbb\xbf<!-- c --><html>", "html"),
    ("", b"<HTML><HEAD>", "html"),
    (None, b"%PDF-1.7", None),
    (None, b"just some words", None),
    ("image/png", b"<html>", None),
    ("application/pdf", b"", None),
    ("application/octet-stream", b"<html>", None),
    ("application/json", b"{}", None),
    ("application/javascript", b"", None),
    ("text/css", b"", None),
])
def test_content_kind(content_type: str | None, head: bytes, kind: str | None) -> None:
    assert content_kind(content_type, head) == kind


def test_normalize_text() -> None:
    raw = "  Title  \r\n\r\n\r\n\r\nline one   \t\nline\x00 two\x07\n\n\n\n\ttabbed\x0b\u0085 \n\n"
    assert normalize_text(raw) == "Title\n\nline one\nline two\n\n\ttabbed"
    assert normalize_text("") == "" and normalize_text(" \n\n ") == ""
