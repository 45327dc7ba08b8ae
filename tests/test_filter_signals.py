"""Filter signals and rules as pure functions: words, heuristics, rule decisions, rule files and tables."""
from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from crawl2model.core.config import resolve, to_dict
from crawl2model.core.errors import ConfigError
from crawl2model.core.text import words
from crawl2model.pipeline.filters import heuristics, rules
from crawl2model.pipeline.filters.filter_stage import FilterConfig
from crawl2model.quality_models.featurize import model_text


def sig(text: str, lang: str = "en") -> dict[str, float]:
    return dict(zip(heuristics.SIGNALS, heuristics.doc_signals(text, lang)))


def test_chinese_words_come_from_jieba_and_japanese_from_script_runs():
    assert words("我们使用自由软件。", "zh") == ["我们", "使用", "自由软件", "。"]
    ja = words("これは日本語の文章です。", "ja")
    assert "日本語" in ja and "の" in ja and len(ja) >= 5
    assert model_text("Version 11, released!", "en") == "version 00 , released !"


def test_good_chinese_prose_passes_word_rules_that_whitespace_words_would_fail():
    text = ("自由软件基金会认为，用户应当有运行、复制、分发、学习、修改和改进软件的自由。"
            "这些自由让用户可以控制自己的计算，也让社区可以共同改进程序。") * 3
    zh, naive = sig(text, "zh"), sig(text, "en")
    assert zh["n_words"] >= 50 and 1 <= zh["mean_word_len"] <= 4 and zh["stop_words"] >= 2
    assert naive["n_words"] < 10  # what Gopher's whitespace split would see


def test_repetition_signals():
    para = "The quick brown fox jumps over the lazy dog near the river bank today."
    s = sig("\n".join([para] * 10))
    assert s["dup_line_frac"] == pytest.approx(0.9)
    assert s["dup_5gram_frac"] > 0.8 and s["top_2gram_frac"] > 0.1
    fresh = sig("\n".join(f"Sentence number {w} talks about something else entirely, {w}."
                          for w in ["one", "two", "three", "four", "five"]))
    assert fresh["dup_line_frac"] == 0 and fresh["line_punct_frac"] == 1.0


def test_c4_and_fineweb_signals():
    s = sig("Lorem ipsum dolor sit amet.\nPlease enable JavaScript to view.\nRead our privacy policy.\nx = {1}\nok")
    assert s["c4_lorem_ipsum"] == 1 and s["c4_curly_brace"] == 1
    assert s["c4_javascript_lines"] == pytest.approx(0.2) and s["c4_policy_lines"] == pytest.approx(0.2)
    assert s["short_line_frac"] == pytest.approx(0.8)  # all lines but one are <= 30 characters


def batch(**cols) -> pa.RecordBatch:
    n = len(next(iter(cols.values())))
    base = {"lang": ["en"] * n, "lang_score": [0.9] * n, "perplexity": [100.0] * n}
    base.update(cols)
    return pa.RecordBatch.from_pydict(base)


def test_first_failed_rule_value_threshold_and_all_failures():
    rs = rules.RuleSet(rules=(rules.Rule("min_words", "n_words", "min", 50, {"zh": 20}),
                              rules.Rule("max_dup", "dup", "max", 0.3)))
    out = rules.decide(batch(lang=["en", "zh", "en", "en", "fr"], lang_score=[0.9, 0.9, 0.9, 0.5, 0.99],
                             n_words=[10.0, 30.0, 60.0, 60.0, 100.0], dup=[0.5, 0.0, math.nan, 0.0, 0.0]),
                       rs, {})
    d = out.to_pydict()
    assert d["filter_rule"] == ["min_words", None, None, "language", "language"]
    assert d["filter_value"][0] == 10 and d["filter_threshold"][0] == 50
    assert d["filter_failed"][0] == ["min_words", "max_dup"]
    assert d["filter_threshold"][3] == 0.65  # default language threshold


def test_percentile_buckets_per_language():
    qs = {"en": list(np.linspace(10, 990, 99))}
    rs = rules.RuleSet(rules=(rules.Rule("ccnet_tail", "perplexity_pct", "max", 0.6),))
    out = rules.decide(batch(perplexity=[5.0, 400.0, 800.0, math.nan]), rs, qs).to_pydict()
    assert out["perplexity_bucket"] == ["head", "middle", "tail", None]
    assert [r for r in out["filter_rule"] if r] == ["ccnet_tail"]


def test_rule_file_overrides_adds_and_rejects_typos(tmp_path):
    rs = rules.ruleset_from_dict({"language": {"keep": ["en"], "min_score": 0.8},
                                  "rules": {"gopher_min_words": {"min": 100, "lang": {"zh": 30}},
                                            "my_rule": {"signal": "n_words", "max": 5000}}})
    by = {r.name: r for r in rs.rules}
    assert by["gopher_min_words"].threshold == 100 and by["gopher_min_words"].threshold_for("zh") == 30
    assert by["my_rule"].op == "max" and rs.keep_langs == ("en",)
    with pytest.raises(ConfigError, match="unknown keys"):
        rules.ruleset_from_dict({"rules": {"gopher_min_words": {"mn": 3}}})
    with pytest.raises(ConfigError, match="needs a signal"):
        rules.ruleset_from_dict({"rules": {"new": {"max": 3}}})
    (tmp_path / "r.toml").write_text("[rules.quality_score]\nmin = 0.9\n")
    assert {r.name: r for r in rules.load_ruleset(str(tmp_path / "r.toml")).rules}["quality_score"].threshold == 0.9


def test_filter_rules_table_of_a_run_file_is_applied(tmp_path):
    run = tmp_path / "run.toml"
    run.write_text('[filter]\ninput = "in"\noutput = "out"\nreapply = true\n'
                   '[filter.rules.language]\nkeep = ["zh"]\n'
                   '[filter.rules.rules.gopher_min_words]\nmin = 80\n')
    cfg = resolve(FilterConfig, "filter", {"config": str(run)})
    rs = cfg.ruleset()
    assert rs.keep_langs == ("zh",) and {r.name: r for r in rs.rules}["gopher_min_words"].threshold == 80
    assert to_dict(cfg)["rules"] == {"language": {"keep": ["zh"]}, "rules": {"gopher_min_words": {"min": 80}}}
    run.write_text('[filter]\ninput = "in"\noutput = "out"\n[filter.rules.rules.gopher_min_words]\nmin = "x"\n')
    with pytest.raises(ConfigError, match=r"\[filter.rules\]: rule gopher_min_words: min must be a number"):
        resolve(FilterConfig, "filter", {"config": str(run)})


PROSE = ("Run the following script as root to set up the chroot environment. It copies the programs the "
         "server needs and the libraries they are linked against, so that the jailed daemon finds them. "
         "Check the listing afterwards: every file should belong to root, and nothing should be writable "
         "by other users. The same steps work for any daemon that is started from an init script.")
LISTING = "\n".join([
    "$ ls -l /var/chroot/bin", "-rwxr-xr-x 1 root root 7875 Jun 3 13:45 pod2latex*",
    "-rwxr-xr-x 1 root root 20532 Jun 3 13:45 rm*", "|-- lib", "|   |-- libc.so.6", "`-- usr",
    'if [ ! -f $INITDBAK ]', "then", "cp $INITD $INITDBAK", "fi", "dh_auto_clean", "...",
    "iptables -A FORWARD -p tcp -s 0.0.0.0/0 -d 62.3.3.27/32 --dport 20:22 -j ACCEPT"] * 3)


def test_code_lines_are_told_from_prose():
    lines = (PROSE + "\n" + LISTING).split("\n")
    code = heuristics.code_lines(lines)
    assert code[0] is False and all(code[1:]), [ln for ln, c in zip(lines, code) if not c]
    for prose in ("In 1998, version 2.0 of Debian was released on 24 July.", "Prev", "7.3. Other Operators",
                  "Debian Policy Manual - https://www.debian.org/doc/debian-policy/", "是否要使用 chroot 环境？"):
        assert not heuristics.is_code_line(prose), prose


def test_composition_rules_read_the_prose_of_a_page_with_a_listing():
    page, prose_only = sig(PROSE + "\n" + LISTING), sig(PROSE)
    for name in ("alpha_word_frac", "line_punct_frac", "short_line_frac", "bullet_line_frac", "mean_word_len"):
        assert page[name] == pytest.approx(prose_only[name]), name
    assert page["code_line_frac"] > 0.9 and page["n_words"] > prose_only["n_words"]
    assert page["dup_line_frac"] > 0.5  # repetition is read on the whole document
    listing = sig(LISTING)  # all code, too little prose to judge: measured whole, as before
    assert listing["code_line_frac"] == 1 and listing["alpha_word_frac"] < 0.8 and listing["bullet_line_frac"] > 0.1
