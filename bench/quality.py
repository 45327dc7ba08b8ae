"""Quality filtering on the held-out prose-vs-junk set (issue 16, item 2): kept and dropped per source.

The set (`crawl2model.corpora.heldout_quality`) comes from Debian packages the
shipped models and the rule thresholds never saw. Every signal runs as the
filter job runs it, with the shipped models and the default rules; the table
gives, per source, the share of good prose kept or of junk dropped, then each
good document lost with the rule that rejected it, and each junk document
that survived.

    python bench/quality.py [--split test|dev|all]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from pathlib import Path

from crawl2model.corpora import heldout_quality
from crawl2model.corpora.heldout_lid import read_jsonl_gz, write_jsonl_gz
from crawl2model.jobs.filter import filter_models
from crawl2model.pipeline.filters.filter_stage import FilterConfig

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="test", choices=("test", "dev", "all"))
    ap.add_argument("--data", default=str(ROOT / heldout_quality.DEFAULT_OUTPUT), help="built if missing")
    ap.add_argument("--cache", default=str(ROOT / "build" / "debian-docs"), help="unpacked Debian packages")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "quality.json"))
    args = ap.parse_args(argv)

    if not os.path.isfile(args.data):
        write_jsonl_gz(heldout_quality.build(args.cache), args.data)
    rows = [r for r in read_jsonl_gz(args.data) if args.split in ("all", r["split"])]
    decided = heldout_quality.judge(rows, filter_models(FilterConfig(input="-", output="-"))).to_pydict()
    why = decided["filter_rule"]
    per_source: dict[str, dict] = {}
    for r, rule in zip(rows, why):
        e = per_source.setdefault(r["source"], {"kind": r["kind"], "documents": 0, "kept": 0, "rules": {}})
        e["documents"] += 1
        e["kept"] += rule is None
        if rule:
            e["rules"][rule] = e["rules"].get(rule, 0) + 1
    totals = {k: [sum(e["documents"] for e in per_source.values() if e["kind"] == k),
                  sum(e["kept"] for e in per_source.values() if e["kind"] == k)] for k in ("clean", "junk")}
    good_kept = totals["clean"][1] / max(totals["clean"][0], 1)
    junk_dropped = 1 - totals["junk"][1] / max(totals["junk"][0], 1)
    print(f"{args.split} split: good prose kept {good_kept:.1%} of {totals['clean'][0]}, "
          f"junk dropped {junk_dropped:.1%} of {totals['junk'][0]}")
    print(f"{'source':<24}{'kind':<7}{'docs':>6}{'kept':>8}{'dropped':>9}   rejected by (first rule)")
    for src, e in sorted(per_source.items(), key=lambda kv: (kv[1]["kind"], kv[0])):
        top = ", ".join(f"{k} {v}" for k, v in sorted(e["rules"].items(), key=lambda kv: -kv[1])[:4])
        print(f"{src:<24}{e['kind']:<7}{e['documents']:>6}{e['kept'] / e['documents']:>8.1%}"
              f"{1 - e['kept'] / e['documents']:>9.1%}   {top}")
    lost = [{"id": r["id"], "rule": rule, "value": decided["filter_value"][i],
             "threshold": decided["filter_threshold"][i], "all_failed": decided["filter_failed"][i]}
            for i, (r, rule) in enumerate(zip(rows, why)) if r["kind"] == "clean" and rule]
    survived = [{"id": r["id"], "junk": r["junk"], "lang": decided["lang"][i],
                 "quality_score": round(decided["quality_score"][i], 3), "text": r["text"][:100]}
                for i, (r, rule) in enumerate(zip(rows, why)) if r["kind"] == "junk" and rule is None]
    print(f"\ngood documents lost ({len(lost)}), by rule: "
          f"{dict(collections.Counter(x['rule'] for x in lost).most_common())}")
    for x in lost:
        print(f"  {x['id']:<70} {x['rule']} {x['value']:.4g} (threshold {x['threshold']:.4g})")
    print(f"\njunk that survived ({len(survived)}):")
    for x in survived:
        print(f"  {x['id']:<60} {x['junk']:<10} {x['lang']} q={x['quality_score']}  {x['text']!r}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"split": args.split, "good_kept": round(good_kept, 4), "junk_dropped": round(junk_dropped, 4),
                   "per_source": per_source, "lost": lost, "survived": survived}, f, indent=2, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
