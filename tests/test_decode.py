"""Encoding choice for crawled payloads: declarations, detection on real CJK text, and refusal of binary."""

from __future__ import annotations

import codecs
import random

import pytest

from crawl2model.pipeline.decode import DecodeError, charset_from_content_type, decode_payload

ZH_S = ("北京是中华人民共和国的首都，也是全国的政治、文化和国际交往中心。这座城市有三千多年的建城史，"
        "八百多年的建都史，拥有众多的名胜古迹，例如故宫、天坛和颐和园。每年都有大量的游客从世界各地来到这里参观。")
ZH_T = ("臺北是臺灣最大的都市之一，也是政治、經濟與文化的中心。這座城市擁有許多著名的景點，例如國立故宮博物院、"
        "臺北101大樓以及陽明山國家公園。夜市是臺灣飲食文化的重要部分，遊客可以在那裡品嚐各種傳統小吃。")
JA = ("東京は日本の首都であり、世界でも有数の大都市です。江戸時代には徳川幕府が置かれ、明治維新の後に"
      "東京と改名されました。現在では、政治や経済の中心として多くの企業の本社が集まっています。")

CJK = [(ZH_S, "gb18030", "gb18030"), (ZH_S, "gbk", "gb18030"), (ZH_T, "big5", "big5hkscs"),
       (JA, "shift_jis", "cp932"), (JA, "euc_jp", "euc_jp")]


def html(body: str, meta: str = "") -> str:
    return (f"<!doctype html><html><head>{meta}<title>t</title></head><body>"
            f"<nav><a href='/'>Home</a> <a href='/about'>About</a></nav><p>{body}</p></body></html>")


@pytest.mark.parametrize("text,codec,expected", CJK)
def test_detects_cjk_without_declaration(text: str, codec: str, expected: str) -> None:
    for doc, is_html in ((text, False), (html(text), True), (text[:15], False)):
        d = decode_payload(doc.encode(codec), None, is_html=is_html)
        assert d.text == doc and d.source == "detected" and d.replaced == 0
        assert codecs.lookup(d.encoding).name == codecs.lookup(expected).name


@pytest.mark.parametrize("text,codec,expected", CJK)
def test_header_and_meta_declarations_are_whatwg_mapped(text: str, codec: str, expected: str) -> None:
    label = {"gb18030": "GB2312", "gbk": "gbk", "big5": "Big5", "shift_jis": "Shift_JIS", "euc_jp": "EUC-JP"}[codec]
    payload = html(text).encode(codec)
    d = decode_payload(payload, f"text/html; charset={label}", is_html=True)
    assert (d.text, d.source) == (html(text), "header")
    assert d.encoding == expected
    for meta in (f'<meta charset="{label}">', f'<meta http-equiv="Content-Type" content="text/html; charset={label}">'):
        doc = html(text, meta)
        d = decode_payload(doc.encode(codec), "text/html", is_html=True)
        assert (d.text, d.source, d.encoding) == (doc, "meta", expected)


def test_wrong_declaration_falls_through_to_detection() -> None:
    d = decode_payload(JA.encode("euc_jp"), "text/html; charset=Shift_JIS", is_html=True)
    assert (d.text, d.source, d.encoding) == (JA, "detected", "euc_jp")


def test_unknown_or_non_text_labels_are_ignored() -> None:
    assert charset_from_content_type("text/html; charset=foo-bar") is None
    assert charset_from_content_type("text/html; charset=base64") is None
    assert charset_from_content_type('text/html; charset="ISO-8859-1"') == "cp1252"
    assert charset_from_content_type("text/html;charset=us-ascii") == "cp1252"
    assert charset_from_content_type("text/html; charset=x-sjis") == "cp932"
    assert charset_from_content_type("text/html; charset=EUC-KR") == "cp949"
    assert charset_from_content_type(None) is None and charset_from_content_type("text/html") is None


def test_latin1_label_decodes_as_windows_1252() -> None:
    text = "“Smart quotes” – and café"
    d = decode_payload(text.encode("cp1252"), "text/plain; charset=iso-8859-1", is_html=False)
    assert (d.text, d.encoding, d.source) == (text, "cp1252", "header")


def test_valid_utf8_wins_over_a_legacy_label() -> None:
    text = "naïve café – 中文"
    d = decode_payload(text.encode(), "text/html; charset=iso-8859-1", is_html=True)
    assert (d.text, d.encoding) == (text, "utf-8")
    assert decode_payload(text.encode(), "text/html; charset=utf-8", is_html=True).source == "header"


def test_bom_and_ascii_and_empty() -> None:
    d = decode_payload(codecs.BOM_UTF16_LE + ZH_S.encode("utf-16-le"), "text/html; charset=gbk", is_html=True)
    assert (d.text, d.encoding, d.source) == (ZH_S, "utf-16-le", "bom")
    d = decode_payload(codecs.BOM_UTF8 + b"hello", None, is_html=False)
    assert (d.text, d.source) == ("hello", "bom")
    d = decode_payload(b"plain ascii", None, is_html=False)
    assert (d.text, d.encoding, d.source) == ("plain ascii", "utf-8", "default")
    assert decode_payload(b"", None, is_html=True).text == ""


def test_utf8_with_a_few_invalid_bytes_is_replaced_and_counted() -> None:
    payload = ("Grüße aus Köln. " * 40).encode() + b"\xff\xfe" + " Schöne Grüße".encode()
    d = decode_payload(payload, None, is_html=False)
    assert d.encoding == "utf-8" and d.replaced == 2 and d.text.count("\ufffd") == 2
    assert d.text.endswith("Schöne Grüße")


def test_truncated_multibyte_tail_does_not_fail_a_declared_charset() -> None:
    payload = ZH_S.encode("gbk")[:-1]          # cut in the middle of the last character
    d = decode_payload(payload, "text/html; charset=gbk", is_html=False)
    assert d.source == "header" and ZH_S.startswith(d.text) and len(d.text) == len(ZH_S) - 1


def test_random_binary_is_undecodable() -> None:
    payload = random.Random(3).randbytes(4000)
    with pytest.raises(DecodeError) as e:
        decode_payload(payload, None, is_html=False)
    assert e.value.reason == "undecodable_text"
    assert isinstance(e.value, ValueError)


def test_replacement_threshold_is_configurable() -> None:
    payload = b"abc " * 100 + b"\xe4\xb8" + "中文".encode() * 3   # one broken UTF-8 sequence
    d = decode_payload(payload, None, is_html=False)
    assert (d.encoding, d.replaced) == ("utf-8", 1)
    binary = random.Random(4).randbytes(2000)
    assert decode_payload(binary, None, is_html=False, max_replaced_fraction=1.0).replaced > 0
