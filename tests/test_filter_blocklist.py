"""URL blocklist and banned words (issue 16, item 4): UT1 layouts, categories, datatrove's shipped lists."""
from __future__ import annotations

import importlib.util
import io
import math
import tarfile

import pytest

from crawl2model.core.errors import ConfigError
from crawl2model.pipeline.filters import rules
from crawl2model.pipeline.filters.blocklist import Blocklists, signals
from crawl2model.pipeline.filters.filter_stage import FilterConfig

HAS_DATATROVE = importlib.util.find_spec("datatrove") is not None


def _ut1(tmp_path, members: dict[str, str]):
    """A UT1-style archive (blacklists/<category>/domains|urls) as a user would download it."""
    path = tmp_path / "blacklists.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture()
def user_lists(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return _ut1(tmp_path, {
        "blacklists/adult/domains": "# comment\nbad-site.example\n",
        "blacklists/adult/urls": "hosting.example/~bad/page\n",
        "blacklists/gambling/domains": "casino.example\n",
        "blacklists/phishing/domains": "login-bank.example\n",
        "blacklists/banned_words.txt": "porno\nxxx\n",
        "blacklists/soft_banned_words.txt": "sex\nescort\nnude\n",
        "blacklists/banned_subwords.txt": "free sex\n",
    })


def test_domains_subdomains_urls_and_categories(user_lists):
    spec = Blocklists(str(user_lists), ("adult", "phishing"))
    urls = ["https://bad-site.example/a", "http://www.cdn.bad-site.example:8080/x?y", "https://casino.example/",
            "https://login-bank.example/", "https://hosting.example/~bad/page/2", "https://hosting.example/~badder",
            "https://not-bad-site.example/", None]
    sig, match = signals(["text"] * len(urls), urls, spec)
    assert list(sig["url_blocked"][:7]) == [1, 1, 0, 1, 1, 0, 0] and math.isnan(sig["url_blocked"][7])
    assert match[0] == "domain:adult:bad-site.example" and match[1] == "domain:adult:bad-site.example"
    assert match[3] == "domain:phishing:login-bank.example"
    assert match[4] == "url:adult:hosting.example/~bad/page"
    assert spec.describe()["domains"] == 2  # gambling not chosen
    assert signals(["t"], ["https://casino.example/"], Blocklists(str(user_lists), ("gambling",)))[0]["url_blocked"][0] == 1


def test_url_and_text_words(user_lists):
    spec = Blocklists(str(user_lists), ("adult",))
    urls = ["https://a.example/porno-films", "https://a.example/sex-escort", "https://a.example/sex-ed",
            "https://a.example/freesexvids", "https://a.example/essex"]
    sig, match = signals(["A page about Essex county."] * 5, urls, spec)
    assert list(sig["url_banned_words"]) == [1, 0, 0, 0, 0]
    assert list(sig["url_soft_banned_words"]) == [0, 2, 1, 0, 0]   # whole words only: "essex" is no "sex"
    assert list(sig["url_banned_subwords"]) == [0, 0, 0, 1, 0]
    assert match[1] == "url_soft:escort;url_soft:sex" and match[4] is None
    text = ["Nude escort sex here, xxx porno.", "The variable xxx is a placeholder.", "Sex and gender in biology."]
    sig, match = signals(text, [None] * 3, spec)
    assert list(sig["text_banned_words"]) == [2, 1, 0] and list(sig["text_soft_banned_words"]) == [3, 0, 1]
    assert match[0] == "text_word:porno;text_word:xxx;text_soft:escort;text_soft:nude;text_soft:sex"


def test_default_rules_reject_what_the_lists_match(user_lists):
    import pyarrow as pa

    spec = Blocklists(str(user_lists), ("adult",))
    urls = ["https://bad-site.example/", "https://a.example/sex-escort", "https://a.example/docs"]
    texts = ["plain", "plain", "The variable xxx is a placeholder."]
    sig, _ = signals(texts, urls, spec)
    b = pa.RecordBatch.from_pydict({"lang": ["en"] * 3, "lang_score": [0.9] * 3, "perplexity": [100.0] * 3,
                                    **{k: list(v) for k, v in sig.items()}})
    only = rules.RuleSet(rules=tuple(r for r in rules.DEFAULT_RULES if r.signal in sig))
    assert rules.decide(b, only, {}).to_pydict()["filter_rule"] == ["url_blocklist", "url_soft_banned_words", None]


def test_bad_sources_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="blocklists not found"):
        FilterConfig(input="in", output="out", blocklists=str(tmp_path / "missing.tar.gz")).validate()
    (tmp_path / "junk.tar.gz").write_text("not an archive")
    with pytest.raises(ConfigError, match="not a tar archive"):
        Blocklists(str(tmp_path / "junk.tar.gz")).describe()
    assert FilterConfig(input="in", output="out", blocklists="none").blocklist_spec() is None


@pytest.mark.skipif(not HAS_DATATROVE, reason="datatrove (the blocklists extra) is not installed")
def test_datatrove_shipped_lists():
    spec = Blocklists()
    info = spec.describe()
    assert info["domains"] > 4_000_000 and info["urls"] > 10_000 and info["soft_banned_words"] > 50
    urls = ["https://www.pornhub.com/view", "https://docs.python.org/3/tutorial/index.html"]
    sig, match = signals(["x", "x"], urls, spec)
    assert list(sig["url_blocked"]) == [1, 0] and match[0].startswith("domain:all:pornhub.com")
