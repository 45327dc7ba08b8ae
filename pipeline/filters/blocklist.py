"""URL blocklists and banned words: the UT1 lists and the word lists datatrove ships, as signal columns.

The signals (`SIGNALS`, counts per document; NaN where a document has no URL
or no lists are loaded) are thresholded by the rule set like every other
signal, and `blocklist_match` names what matched ("domain:adult:example.com",
"url_word:xxx", "text_soft:...") so rejected/ shows why:

- `url_blocked`: the URL's host or one of its parent domains is in a domain
  list of the chosen categories, or the URL (without scheme) starts with a
  listed URL at a path boundary (UT1's semantics: a domain covers its
  subdomains);
- `url_banned_words`, `url_soft_banned_words`: distinct words of the URL (split
  on non-alphanumerics, as datatrove's URLFilter) in the banned and
  soft-banned lists; a soft word alone is no evidence, the rule wants two;
- `url_banned_subwords`: banned phrases found in the URL with every
  non-alphanumeric removed ("freesexvideo" hides "sex video");
- `text_banned_words`, `text_soft_banned_words`: C4's bad-words test on the
  document's words (the same lists; English ones, so other languages pass).

Lists come from a `source`: "datatrove" (the default: the UT1 domains and
URLs, `assets/url_filterblacklistsv0_3_0.tar.gz`, and the word lists inside
the installed datatrove wheel; read at run time, never copied into this
project), or a user's UT1 archive (`blacklists.tar.gz`, a `<category>/domains`
and `<category>/urls` per category) or folder of the same layout, which may
also hold `banned_words.txt`, `soft_banned_words.txt`, `banned_subwords.txt`.
Flat `domains`/`urls` files (datatrove's archive) belong to every category.

Four and a half million domains are kept as sorted 64-bit hashes (36 MB, not
the ~400 MB a set of strings takes in every Spark worker), built once per
machine into `~/.cache/crawl2model/blocklists/` and memory-mapped after.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from crawl2model.core.errors import ConfigError
from crawl2model.core.log import get_logger
from crawl2model.core.resources import publish_folder, user_cache

log = get_logger("filter")

SIGNALS = ("url_blocked", "url_banned_words", "url_soft_banned_words", "url_banned_subwords",
           "text_banned_words", "text_soft_banned_words")
MATCH_COLUMN = "blocklist_match"
DATATROVE = "datatrove"
DATATROVE_ARCHIVE = "url_filterblacklistsv0_3_0.tar.gz"
WORD_FILES = {"banned": "banned_words.txt", "soft": "soft_banned_words.txt", "subwords": "banned_subwords.txt"}
DEFAULT_CATEGORIES = ("adult", "phishing", "malware")
ALL = "all"   # the category of flat lists (datatrove's archive: UT1's adult lists, merged)
MAX_TEXT_CHARS = 100_000   # as the heuristics: the words of the first 100k characters
_URL_SPLIT = re.compile(r"[^a-z0-9]+")
_WORD = re.compile(r"[^\W\d_]+")


def datatrove_assets() -> Path:
    """The assets folder of the installed datatrove package (found without importing it)."""
    spec = importlib.util.find_spec("datatrove")
    if spec is None or not spec.origin:
        raise ConfigError("filter: blocklists = \"datatrove\" needs the datatrove package, whose wheel ships the "
                          "UT1 lists (pip install 'crawl2model[blocklists]'), or give a UT1 archive or folder")
    path = Path(spec.origin).parent / "assets"
    if not (path / DATATROVE_ARCHIVE).is_file():
        raise ConfigError(f"filter: {path / DATATROVE_ARCHIVE} not found in the installed datatrove")
    return path


def _hash(entry: str) -> int:
    return int.from_bytes(hashlib.blake2b(entry.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def _entries(data: bytes) -> list[str]:
    text = data.decode("utf-8", "replace")
    return [x for x in (ln.strip().lower() for ln in text.split("\n")) if x and not x.startswith("#")]


def _words(data: bytes) -> frozenset[str]:
    """A word list as datatrove reads it: `#` lines are comments, entries lose every non-alphanumeric."""
    return frozenset(w for w in (_URL_SPLIT.sub("", x) for x in _entries(data)) if w)


def _member_kind(name: str, categories: tuple[str, ...]) -> tuple[str, str] | None:
    """("domains" | "urls", category) for a list file of a UT1 layout, None for others or other categories."""
    parts = Path(name).parts
    if not parts or parts[-1] not in ("domains", "urls"):
        return None
    category = parts[-2] if len(parts) >= 2 and parts[-2] != "blacklists" else ALL
    if category != ALL and category not in categories:
        return None
    return parts[-1], category


def _read_lists(source: Path, categories: tuple[str, ...]) -> dict[str, list[tuple[str, str]]]:
    """{"domains": [(category, entry)], "urls": [...], "banned"|"soft"|"subwords": [("", word)]}."""
    found: dict[str, list[tuple[str, str]]] = {"domains": [], "urls": []}

    def add(name: str, data: bytes) -> None:
        kind = _member_kind(name, categories)
        if kind:
            found[kind[0]] += [(kind[1], x) for x in _entries(data)]
        for key, file in WORD_FILES.items():
            if Path(name).name == file:
                found[key] = [("", w) for w in sorted(_words(data))]

    bundled = source / DATATROVE_ARCHIVE
    archives = [source] if source.is_file() else [bundled] if bundled.is_file() else []
    for archive in archives:
        try:
            with tarfile.open(archive, "r:*") as tar:
                for member in tar:
                    if member.isfile():
                        f = tar.extractfile(member)
                        if f is not None:
                            add(member.name, f.read())
        except tarfile.TarError as e:
            raise ConfigError(f"filter: blocklists {archive}: not a tar archive ({e})") from e
    if source.is_dir():
        for path in sorted(source.rglob("*")):
            if path.is_file() and path.name != DATATROVE_ARCHIVE:
                add(str(path.relative_to(source)), path.read_bytes())
    return found


@dataclass(frozen=True)
class Blocklists:
    """The lists a filter run uses, named by where they come from; loaded on first use, once per process."""

    source: str = DATATROVE
    categories: tuple[str, ...] = DEFAULT_CATEGORIES

    def path(self) -> Path:
        if self.source == DATATROVE:
            return datatrove_assets()
        path = Path(self.source)
        if not path.exists():
            raise ConfigError(f"filter: blocklists not found: {self.source}")
        return path

    def describe(self) -> dict:
        lists = _load(self)
        return {"source": str(self.path()), "categories": list(self.categories), "domains": len(lists.domains),
                "urls": len(lists.urls), "banned_words": len(lists.banned), "soft_banned_words": len(lists.soft),
                "banned_subwords": lists.n_subwords}


@dataclass(frozen=True)
class _Lists:
    domains: np.ndarray            # sorted uint64 hashes of the listed domains
    domain_categories: np.ndarray  # the category (an index into `categories`) of each
    categories: list[str]
    urls: dict[str, str]           # listed URL without scheme -> category
    banned: frozenset[str]
    soft: frozenset[str]
    subwords: re.Pattern | None
    n_subwords: int


@functools.lru_cache(maxsize=4)
def _load(spec: Blocklists) -> _Lists:
    source = spec.path()
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    # Names relative to the source and contents, not absolute paths or mtimes: a cluster's
    # executors unpack the same lists into a new folder per application, and every install (a
    # new packed environment, a new virtualenv) gives them new mtimes; all must find the cache
    # built the first time. Hashing the lists' bytes takes milliseconds; rebuilding, seconds.
    stamp = "|".join(f"{p.relative_to(source).as_posix() if p != source else p.name}:{_digest(p)}" for p in files)
    key = hashlib.sha1(f"{stamp}|{sorted(spec.categories)}".encode()).hexdigest()[:16]
    cache = user_cache("blocklists", key)
    if not (cache / "_DONE").is_file():
        _build_cache(source, spec.categories, cache)
    domains = np.load(cache / "domains.npy", mmap_mode="r")
    domain_categories = np.load(cache / "domain_categories.npy", mmap_mode="r")
    categories = (cache / "categories.txt").read_text("utf-8").split("\n")
    urls = dict(ln.split("\t", 1)[::-1] for ln in (cache / "urls.tsv").read_text("utf-8").splitlines() if ln)
    words = {k: frozenset((cache / f"{k}.txt").read_text("utf-8").split("\n")) - {""} for k in WORD_FILES}
    subwords = re.compile("|".join(map(re.escape, sorted(words["subwords"], key=len, reverse=True)))) \
        if words["subwords"] else None
    return _Lists(domains, domain_categories, categories, urls, words["banned"], words["soft"], subwords,
                  len(words["subwords"]))


def _build_cache(source: Path, categories: tuple[str, ...], cache: Path) -> None:
    """Hash the domain lists once per machine (seconds for UT1's millions), beside the URL and word lists."""
    log.info(f"blocklists: reading {source} (categories {', '.join(categories)}) into {cache}")
    lists = _read_lists(source, categories)
    names = sorted({c for c, _ in lists["domains"]})
    index = {c: i for i, c in enumerate(names)}
    hashes, first = np.unique(np.fromiter((_hash(d) for _, d in lists["domains"]), dtype=np.uint64,
                                          count=len(lists["domains"])), return_index=True)
    cats = np.array([index[c] for c, _ in lists["domains"]], dtype=np.uint8)[first] if len(first) \
        else np.zeros(0, np.uint8)

    def write(tmp: Path) -> None:
        np.save(tmp / "domains.npy", hashes)
        np.save(tmp / "domain_categories.npy", cats)
        (tmp / "categories.txt").write_text("\n".join(names), "utf-8")
        with open(tmp / "urls.tsv", "w", encoding="utf-8") as f:
            f.writelines(f"{c}\t{_strip_url(u)}\n" for c, u in lists["urls"])
        for key in WORD_FILES:
            (tmp / f"{key}.txt").write_text("\n".join(w for _, w in lists.get(key, [])), "utf-8")
        (tmp / "_DONE").write_text("")

    publish_folder(cache, write)


def _digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()


def _strip_url(url: str) -> str:
    url = url.strip().lower()
    url = re.sub(r"^[a-z][a-z0-9+.-]*://", "", url)
    return url.removeprefix("www.")


def _host_suffixes(host: str) -> list[str]:
    """The host and each parent domain with at least two labels (a listed domain covers its subdomains)."""
    labels = host.strip(".").split(".")
    return [".".join(labels[i:]) for i in range(max(len(labels) - 1, 1))]


def _url_match(lists: _Lists, url: str) -> tuple[float, str | None]:
    split = urlsplit(url if "://" in url else "http://" + url)
    host = (split.hostname or "").lower()
    if host:
        candidates = _host_suffixes(host)
        hashes = np.array([_hash(c) for c in candidates], dtype=np.uint64)
        pos = np.searchsorted(lists.domains, hashes)
        for c, h, p in zip(candidates, hashes, pos):
            if p < len(lists.domains) and lists.domains[p] == h:
                return 1.0, f"domain:{lists.categories[int(lists.domain_categories[p])]}:{c}"
    bare = _strip_url(url)
    for i, ch in enumerate(bare + "/"):
        if ch in "/?#" and bare[:i] in lists.urls:
            return 1.0, f"url:{lists.urls[bare[:i]]}:{bare[:i]}"
    return 0.0, None


def signals(texts: list[str], urls: list[str | None], spec: Blocklists) -> tuple[dict[str, np.ndarray], list]:
    """The SIGNALS of each document, and `blocklist_match` (what matched, ';'-joined; None if nothing)."""
    lists = _load(spec)
    n = len(texts)
    out = {s: np.full(n, np.nan) for s in SIGNALS}
    matches: list[str | None] = [None] * n
    for i, (text, url) in enumerate(zip(texts, urls)):
        found: list[str] = []
        if url:
            blocked, what = _url_match(lists, url)
            words = set(_URL_SPLIT.split(url.lower()))
            hard, soft = sorted(words & lists.banned), sorted(words & lists.soft)
            sub = sorted(set(lists.subwords.findall(_URL_SPLIT.sub("", url.lower())))) if lists.subwords else []
            out["url_blocked"][i], out["url_banned_words"][i] = blocked, len(hard)
            out["url_soft_banned_words"][i], out["url_banned_subwords"][i] = len(soft), len(sub)
            found += ([what] if what else []) + [f"url_word:{w}" for w in hard] + [f"url_soft:{w}" for w in soft] \
                + [f"url_subword:{w}" for w in sub]
        ws = set(_WORD.findall((text or "")[:MAX_TEXT_CHARS].lower()))
        hard, soft = sorted(ws & lists.banned), sorted(ws & lists.soft)
        out["text_banned_words"][i], out["text_soft_banned_words"][i] = len(hard), len(soft)
        found += [f"text_word:{w}" for w in hard] + [f"text_soft:{w}" for w in soft]
        matches[i] = ";".join(found) or None
    return out, matches
