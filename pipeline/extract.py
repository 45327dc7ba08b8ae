"""Main-content text from HTML, and the small decisions around it.

Two extractors behind one signature so a benchmark can pick the default:
resiliparse (fast, C++ DOM) and trafilatura (slower, usually a little more
precise). Both return "" for pages with no main content or broken markup, so
the ingest stage counts an empty extraction instead of failing a task.
"""

from __future__ import annotations

import logging
import re
from typing import Callable

__all__ = ["EXTRACTORS", "DEFAULT_EXTRACTOR", "extract_text", "content_kind", "normalize_text"]

log = logging.getLogger(__name__)


def _resiliparse(html: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse(html)
    if tree.body is None:
        return ""
    # alt texts and list bullets are page furniture, not prose; links and form fields likewise
    return extract_plain_text(tree, preserve_formatting=True, main_content=True, list_bullets=False,
                              alt_texts=False, links=False, form_fields=False, noscript=False,
                              comments=False)


def _trafilatura(html: str) -> str:
    import trafilatura  # imported on first use: it takes about a second

    # Defaults otherwise: its balanced mode with fallback extractors gave the
    # best F1 in trafilatura's own evaluation; favor_precision trades recall away.
    text = trafilatura.extract(html, include_comments=False, include_tables=True, include_images=False,
                               include_links=False, with_metadata=False, deduplicate=False,
                               output_format="txt")
    return text or ""


EXTRACTORS: dict[str, Callable[[str], str]] = {"resiliparse": _resiliparse, "trafilatura": _trafilatura}
DEFAULT_EXTRACTOR = "resiliparse"   # provisional: bench/ picks the final default


def extract_text(html: str, extractor: str = DEFAULT_EXTRACTOR) -> str:
    """Main-content text, paragraphs separated by newlines; "" when there is none."""
    try:
        fn = EXTRACTORS[extractor]
    except KeyError:
        raise ValueError(f"unknown extractor {extractor!r}; known: {', '.join(sorted(EXTRACTORS))}") from None
    if not html or not html.strip():
        return ""
    try:
        text = fn(html)
    except (ValueError, TypeError, RuntimeError, LookupError, RecursionError) as e:
        # parser failures on broken markup (resiliparse raises HTMLParserException, a ValueError;
        # lxml's errors are ValueErrors); anything else is a bug and should surface
        log.debug("extractor %s failed: %s", extractor, e)
        return ""
    # one newline between paragraphs, whichever extractor ran (resiliparse leaves a blank line)
    return _PARAGRAPH_GAP.sub("\n", normalize_text(text))


_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "application/xhtml", "text/xhtml"})
_TEXT_TYPES = frozenset({"text/plain", "text/markdown", "text/x-markdown"})
_UNKNOWN_TYPES = frozenset({"", "unknown", "unk", "application/unknown", "content/unknown", "no-type"})
_HTML_SNIFF = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)[\s>]", re.I | re.S)


def content_kind(content_type: str | None, payload_head: bytes = b"") -> str | None:
    """"html", "text" or None (binary or a format we do not extract) for a payload."""
    mime = (content_type or "").split(";", 1)[0].split(",", 1)[0].strip().lower()
    if mime in _HTML_TYPES:
        return "html"
    if mime in _TEXT_TYPES:
        return "text"
    if mime in _UNKNOWN_TYPES:
        head = payload_head[:1024].lstrip(b"\xef\xbb\xbf")
        return "html" if _HTML_SNIFF.match(head) else None
    return None


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_TRAILING_SPACE = re.compile(r"[^\S\n]+(?=\n)|[^\S\n]+\Z")
_BLANK_RUN = re.compile(r"\n{3,}")
_PARAGRAPH_GAP = re.compile(r"\n{2,}")


def normalize_text(text: str) -> str:
    """One whitespace convention for every extractor and for plain-text records.

    Deduplication hashes and quality signals downstream compare texts, so
    invisible differences (CRLF, trailing blanks, control bytes) must go here.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = _TRAILING_SPACE.sub("", text)
    text = _BLANK_RUN.sub("\n\n", text)
    return text.strip()
