"""PII redaction: a transform of the text, not a filter (no document is removed for holding an address).

E-mail addresses, public IP addresses and phone numbers written unambiguously
are replaced by fixed placeholders (`PLACEHOLDERS`), and each document gets
the number of each it had (`COUNT_COLUMNS`; the report sums them). What is
*not* replaced matters as much in documentation and code:

- e-mail: `name@host.tld` with a real top-level domain; `icon@2x.png`,
  `@decorator` and `user@localhost` are not addresses;
- IPv4: four octets not part of a longer dotted run (`1.2.3.4.5`, OIDs) and not
  after "v"/"version"/"release"/"section" (version strings, section numbers),
  nor a numbered heading ("6.5.1.1. Managing" at a line start); private, loopback,
  link-local, documentation and other non-global ranges are kept, since they
  identify no one (`192.168.1.1`, `10.0.0.1`, `127.0.0.1`, `192.0.2.7`);
- IPv6: only global unicast (2000::/3) addresses that parse as IPv6, so
  `std::vector`, `fe80::1`, times and MAC addresses stay;
- phone: an international number (`+` country code, 8 to 15 digits with
  spaces, dots, dashes or brackets between groups) or the North American
  `(555) 123-4567` / `555-123-4567` forms; dates, ISBNs, versions and bare
  digit runs are ambiguous and stay.
"""
from __future__ import annotations

import ipaddress
import re

import numpy as np
import pyarrow as pa

KINDS = ("email", "ip", "phone")
PLACEHOLDERS = {"email": "<EMAIL>", "ip": "<IP_ADDRESS>", "phone": "<PHONE_NUMBER>"}
COUNT_COLUMNS = {"email": "pii_emails", "ip": "pii_ip_addresses", "phone": "pii_phones"}
FIELDS = [pa.field(c, pa.int32()) for c in COUNT_COLUMNS.values()]

# File extensions that follow "@2x" in asset names: not top-level domains of addresses.
_NOT_TLDS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "css", "js", "html", "htm", "json", "xml",
                       "txt", "pdf", "py", "md", "ico", "zip", "gz"})
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"
                    r"([A-Za-z]{2,24})(?![\w-])")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.])({_OCTET}(?:\.{_OCTET}){{3}})(?![\w]|\.\d)")
_VERSION_BEFORE = re.compile(r"(?:\bv|version|release|ver\.?|build|rev\.?|section|sect\.|chapter|§)\s*$",
                             re.IGNORECASE)
_HEADING_AFTER = re.compile(r"\.?[\s\xa0]+\S")   # "6.5.1.1.\xa0Managing": a numbered heading at a line start
_IPV6 = re.compile(r"(?<![\w:.])((?:[0-9A-Fa-f]{1,4}:){1,7}:?(?::?[0-9A-Fa-f]{1,4}){1,7}|(?:[0-9A-Fa-f]{1,4}:){1,7}:)"
                   r"(?![\w:])")
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_PHONE_INTL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(\d{1,4}\)|[ .-]?\d{1,4})(?:[ .-]?\d{2,4}){1,5}(?![\w])")
_PHONE_NANP = re.compile(r"(?<![\w(-])(?:\(\d{3}\)\s?|\d{3}-)\d{3}-\d{4}(?![\w-])")


def _email(m: re.Match) -> bool:
    return m.group(1).lower() not in _NOT_TLDS


def _ipv4(m: re.Match, text: str) -> bool:
    if _VERSION_BEFORE.search(text[max(m.start() - 12, 0):m.start()]):
        return False
    line_start = text.rfind("\n", 0, m.start()) + 1
    if not text[line_start:m.start()].strip() and _HEADING_AFTER.match(text, m.end()) \
            and text[m.end():m.end() + 1] == ".":
        return False
    return ipaddress.IPv4Address(m.group(1)).is_global


def _ipv6(m: re.Match) -> bool:
    try:
        addr = ipaddress.IPv6Address(m.group(1))
    except ValueError:
        return False
    return addr in _GLOBAL_UNICAST and addr.is_global


def _phone(m: re.Match) -> bool:
    digits = sum(c.isdigit() for c in m.group(0))
    return 8 <= digits <= 15


def redact(text: str, kinds: tuple[str, ...] = KINDS) -> tuple[str, dict[str, int]]:
    """`text` with the PII of `kinds` replaced by placeholders, and how many of each were replaced."""
    counts = dict.fromkeys(kinds, 0)

    def sub(pattern: re.Pattern, kind: str, ok, s: str) -> str:
        def repl(m: re.Match) -> str:
            if not ok(m):
                return m.group(0)
            counts[kind] += 1
            return PLACEHOLDERS[kind]
        return pattern.sub(repl, s)

    if "email" in kinds and "@" in text:
        text = sub(_EMAIL, "email", _email, text)
    if "ip" in kinds:
        if "." in text:
            current = text
            text = sub(_IPV4, "ip", lambda m: _ipv4(m, current), text)
        if "::" in text or text.count(":") >= 7:
            text = sub(_IPV6, "ip", _ipv6, text)
    if "phone" in kinds:
        if "+" in text:
            text = sub(_PHONE_INTL, "phone", _phone, text)
        text = sub(_PHONE_NANP, "phone", lambda m: True, text)
    return text, counts


def redact_texts(texts: list[str | None], kinds: tuple[str, ...]) -> tuple[list[str | None], list[pa.Array]]:
    """Redacted texts and the COUNT_COLUMNS arrays (in FIELDS order; zeros for kinds not redacted)."""
    out: list[str | None] = []
    counts = {k: np.zeros(len(texts), np.int32) for k in KINDS}
    for i, t in enumerate(texts):
        if not t or not kinds:
            out.append(t)
            continue
        red, c = redact(t, kinds)
        out.append(red)
        for k, v in c.items():
            counts[k][i] = v
    return out, [pa.array(counts[k], pa.int32()) for k in KINDS]
