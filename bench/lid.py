"""Language ID on the held-out set (issue 16, item 1): ours vs plain lid.176 on the whole text.

The set is built by `crawl2model.corpora.heldout_lid` from Debian packages no
other part of the project reads (10 languages; documentation pages cut into
documents of 300-4000 characters, classical Chinese poems and sayings). The
rules were tuned on its `dev` split; `test` is the figure to quote.

    python bench/lid.py [--split test|dev|all]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from crawl2model.corpora import heldout_lid
from crawl2model.pipeline.filters.langid import identify
from crawl2model.quality_models import shipped
from crawl2model.quality_models.classifier import one_line
from crawl2model.quality_models.scorers import Labeller

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="test", choices=("test", "dev", "all"))
    ap.add_argument("--data", default=str(ROOT / heldout_lid.DEFAULT_OUTPUT), help="built if missing")
    ap.add_argument("--cache", default=str(ROOT / "build" / "debian-docs"), help="unpacked Debian packages")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "lid.json"))
    args = ap.parse_args(argv)

    if not os.path.isfile(args.data):
        heldout_lid.write_jsonl_gz(heldout_lid.build(args.cache), args.data)
    rows = [r for r in heldout_lid.read_jsonl_gz(args.data) if args.split in ("all", r["split"])]
    texts = [r["text"] for r in rows]
    model = Labeller(shipped.lid_model_path())
    model([texts[0]])  # load once
    results = {}
    for name, run in (("ours", lambda: identify(texts, model)[0]),
                      ("lid.176 whole text", lambda: model([one_line(t) for t in texts])[0])):
        t0 = time.process_time()
        predicted = run()
        cpu = time.process_time() - t0
        res = heldout_lid.evaluate(rows, predicted)
        res["docs_per_cpu_second"] = round(len(rows) / max(cpu, 1e-9), 1)
        res["errors"] = [{"id": r["id"], "lang": r["lang"], "got": p} for r, p in zip(rows, predicted)
                         if r["lang"] != p]
        results[name] = res
        print(f"\n{name}: accuracy {res['overall']['accuracy']:.4f} on {len(rows)} documents ({args.split} split), "
              f"{res['docs_per_cpu_second']} docs/s/core")
        print(heldout_lid.confusion_table(res))
    print(f"\n{'source':<20}{'docs':>6}" + "".join(f"{n[:18]:>20}" for n in results))
    for src in results["ours"]["per_source"]:
        print(f"{src:<20}{results['ours']['per_source'][src]['documents']:>6}"
              + "".join(f"{r['per_source'][src]['accuracy']:>20.4f}" for r in results.values()))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"split": args.split, "documents": len(rows), "results": results}, f, indent=2, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
