"""PII redaction (issue 16, item 5): what is replaced, and the look-alikes in documentation and code that are not."""
from __future__ import annotations

import pytest

from crawl2model.pipeline.filters.pii import PLACEHOLDERS, redact, redact_texts

EMAIL, IP, PHONE = PLACEHOLDERS["email"], PLACEHOLDERS["ip"], PLACEHOLDERS["phone"]


@pytest.mark.parametrize("text, expected, counts", [
    ("Write to jane.doe+lists@mail.example.co.uk today.", f"Write to {EMAIL} today.", {"email": 1}),
    ("Maintainer: Jo Bloggs <jo@debian.org>", f"Maintainer: Jo Bloggs <{EMAIL}>", {"email": 1}),
    ("DNS at 8.8.8.8, or 1.1.1.1.", f"DNS at {IP}, or {IP}.", {"ip": 2}),
    ("allow-update { 127.0.0.1 212.94.201.10 };\n93.184.216.119 answered", f"allow-update {{ 127.0.0.1 {IP} }};\n{IP} answered",
     {"ip": 2}),
    ("ping 2001:4860:4860::8888 now", f"ping {IP} now", {"ip": 1}),
    ("Call +1 415 555 0132 or +49 (30) 1234567.", f"Call {PHONE} or {PHONE}.", {"phone": 2}),
    ("Office: (555) 123-4567, fax 555-123-4568", f"Office: {PHONE}, fax {PHONE}", {"phone": 2}),
])
def test_replaced(text, expected, counts):
    out, got = redact(text)
    assert out == expected and {k: v for k, v in got.items() if v} == counts


@pytest.mark.parametrize("text", [
    # versions, OIDs, dates, times, ISBNs, numbers
    "Python version 3.11.2.1 and version 1.2.3.4, v2.0.0.1, release 4.3.2.1; OID 1.3.6.1.4.1.311",
    "Released 2024-03-01 at 12:30:45; ISBN 978-3-16-148410-0; 1,000,000 rows; x+1; +3 points; +12 34",
    # section numbers
    "See section 6.5.1.1 for more.\n6.5.1.1.\xa0Managing Recommends\n 6.5.1.2. Better Solver Algorithms",
    # private, loopback, link-local, documentation ranges
    "listen on 127.0.0.1, 10.0.0.1, 192.168.1.1, 172.16.0.5, 169.254.1.1, 192.0.2.7, 0.0.0.0",
    "fe80::1%eth0, ::1, 2001:db8::1, fd00::5",
    # code
    "std::vector<int> v; a::b::c(); @decorator\ndef f(x): return x @ y",
    "img src=icon@2x.png; user@localhost; git@github",
    "MAC 00:1a:2b:3c:4d:5e and ratio 16:9 and 10:30:00",
])
def test_not_replaced(text):
    out, counts = redact(text)
    assert out == text and not any(counts.values())


def test_only_chosen_kinds_and_count_columns():
    texts = ["a@b.example.com 8.8.8.8 +1 415 555 0132", None, ""]
    out, _ = redact(texts[0], ("email",))
    assert out == f"{EMAIL} 8.8.8.8 +1 415 555 0132"
    red, cols = redact_texts(texts, ("email", "ip", "phone"))
    assert red == [f"{EMAIL} {IP} {PHONE}", None, ""]
    assert [c.to_pylist() for c in cols] == [[1, 0, 0], [1, 0, 0], [1, 0, 0]]
    assert redact_texts(texts, ())[0] == texts
