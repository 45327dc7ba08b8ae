"""Our tokenizer (rustbpe trainer, tiktoken encoder) vs Hugging Face `tokenizers` and SentencePiece, same text.

    python bench/build_text_corpus.py --out bench/data/text   # once: ~230 MB from Debian packages
    nice -n 10 python bench/tokenizer.py --corpus bench/data/text --sizes 200MB

For each size, one training file is sampled (seeded) from the corpus's train
part and given to the three trainers, each in its own process so that wall
time and peak RSS (`wait4`) are its own: `crawl2model tokenizer train` with
`--trainer rustbpe` (ours) and `--trainer hf` (the same pre-tokenizer regex and
output, trained by `tokenizers`' BpeTrainer), and SentencePiece BPE.
SentencePiece runs with a time limit. Held-out bytes/token is measured line by
line for all three (SentencePiece cannot encode a newline) on the corpus's
held-out English, Chinese and code, and on its number-heavy lines (>= 30%
digits). Encoding speed, per CPU-second on one thread, on the held-out
documents with the same tokenizer.json: tiktoken from our tokenizer.tiktoken
vs `tokenizers` (ids checked equal), plus the real tokenize job in Spark
local mode (`encode_mb_per_s_per_core` of its report). `--repeat-gb N` also
times ours on the largest training file repeated to N GB (the streaming and
counting part at that size; the merge phase sees the unique pieces of the
original text). Prints a table and writes bench/out/tokenizer.json.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from crawl2model.core.sizes import parse_size

ROOT = Path(__file__).resolve().parent.parent


LANGS = ("en", "zh", "code", "digits")
TOOLS = ("ours", "hf", "sentencepiece")
DIGIT_SHARE = 0.3


def run_measured(cmd: list[str], timeout: float, log: Path) -> dict:
    """Wall seconds and peak RSS of one child process; killed after `timeout`."""
    t0 = time.time()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.time() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                return {"finished": False, "seconds": round(time.time() - t0, 1),
                        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}
            time.sleep(0.5)
    ok = os.waitstatus_to_exitcode(status) == 0
    if not ok:
        print(log.read_text()[-3000:], file=sys.stderr)
    return {"finished": ok, "seconds": round(time.time() - t0, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def make_training_file(corpus: Path, size: int, seed: int, path: Path) -> int:
    """Sample `size` bytes of the train part into one text file (kept between runs)."""
    from crawl2model.tokenizer import corpus as tc

    if path.exists():
        return path.stat().st_size
    files = tc.discover([str(corpus / "train")])
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(tc.sample(files, size, seed))
    return path.stat().st_size


def train_cli(trainer: str, text: Path, vocab: int, out: Path, timeout: float) -> dict:
    """`crawl2model tokenizer train` with one trainer, in its own process."""
    cmd = [sys.executable, "-m", "crawl2model", "tokenizer", "train", "--input", str(text), "--output", str(out),
           "--vocab-size", str(vocab), "--max-bytes", "1000GB", "--overwrite", "--trainer", trainer]
    measured = run_measured(cmd, timeout, out.with_suffix(".log"))
    if measured["finished"]:
        measured["ordinary_tokens"] = json.loads((out / "report.json").read_text())["ordinary_tokens"]
    return measured


SPM_TRAIN = """
import sys, sentencepiece as spm
spm.SentencePieceTrainer.train(input=sys.argv[1], model_prefix=sys.argv[2], vocab_size=int(sys.argv[3]),
    model_type="bpe", byte_fallback=True, split_digits=True, character_coverage=0.9995,
    input_sentence_size=0, max_sentence_length=1 << 16, num_threads=2, normalization_rule_name="identity",
    remove_extra_whitespaces=False, allow_whitespace_only_pieces=True, train_extremely_large_corpus=True,
    minloglevel=1)
"""


def train_spm(text: Path, vocab: int, prefix: Path, timeout: float) -> dict:
    cmd = [sys.executable, "-c", SPM_TRAIN, str(text), str(prefix), str(vocab)]
    return run_measured(cmd, timeout, prefix.with_suffix(".log"))


def heldout_lines(corpus: Path) -> dict[str, list[str]]:
    """Held-out lines per language; "digits" are the English and code lines that are >= 30% digits."""
    out: dict[str, list[str]] = {}
    for lang in ("en", "zh", "code"):
        text = (corpus / "heldout" / f"{lang}.txt").read_text(encoding="utf-8")
        out[lang] = [line for line in text.split("\n") if line]
    out["digits"] = [line for lang in ("en", "code") for line in out[lang]
                     if len(re.findall(r"\d", line)) >= DIGIT_SHARE * len(line) and len(line) >= 8]
    return out


def bytes_per_token(encode, lines: list[str]) -> float:
    nbytes = sum(len(line.encode()) for line in lines)
    tokens = sum(sum(len(ids) for ids in encode(lines[i:i + 256])) for i in range(0, len(lines), 256))
    return nbytes / max(tokens, 1)


def compression(lines: dict[str, list[str]], dirs: dict[str, Path | None], spm_model: Path | None) -> dict:
    """Held-out bytes/token per tool and language."""
    from crawl2model.tokenizer import encoder

    encoders = {name: encoder.TokenizersEncoder((d / "tokenizer.json").read_text()).encode_batch
                for name, d in dirs.items() if d is not None}
    if spm_model is not None:
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(spm_model))
        encoders["sentencepiece"] = lambda batch: sp.encode(batch, num_threads=1)
    return {name: {lang: round(bytes_per_token(enc, lines[lang]), 3) for lang in LANGS}
            for name, enc in encoders.items()}


def encode_speed(corpus: Path, ours_dir: Path) -> dict:
    """MB per CPU-second, one thread, held-out documents: tiktoken vs tokenizers on the same tokenizer folder."""
    import numpy as np

    from crawl2model.tokenizer import encoder

    docs = [d for lang in ("en", "zh", "code")
            for d in (corpus / "heldout" / f"{lang}.txt").read_text(encoding="utf-8").split("\n\n") if d.strip()]
    mb = sum(len(d.encode()) for d in docs) / 1e6
    spec = encoder.read_spec(str(ours_dir))
    result, ids = {"mb": round(mb, 2)}, {}
    for name, enc in (("tiktoken", encoder.get_encoder(spec)),
                      ("tokenizers", encoder.TokenizersEncoder(spec.tokenizer_json))):
        best = float("inf")
        for _ in range(3):  # best of three: the machine is shared
            t0 = time.process_time()
            ids[name] = [a for i in range(0, len(docs), 256) for a in enc.encode_batch(docs[i:i + 256])]
            best = min(best, time.process_time() - t0)
        result[name] = round(mb / best, 2)
    result["ids_identical"] = all(np.array_equal(a, b) for a, b in zip(ids["tiktoken"], ids["tokenizers"]))
    return result


def tokenize_job_speed(corpus: Path, ours_dir: Path, work: Path) -> dict:
    """The real tokenize job on the held-out text (one document per paragraph)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = []
    for lang in ("en", "zh", "code"):
        text = (corpus / "heldout" / f"{lang}.txt").read_text(encoding="utf-8")
        docs += [(lang, d) for d in text.split("\n\n") if d.strip()]
    table_dir = work / "heldout-docs"
    table_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"doc_id": [f"{i:08d}" for i in range(len(docs))], "text": [d for _, d in docs],
                             "domain": [lang for lang, _ in docs]}), table_dir / "part-0.parquet",
                   row_group_size=2000)
    out = work / "heldout-tokens"
    cmd = [sys.executable, "-m", "crawl2model", "tokenize", "--tokenizer", str(ours_dir), "--input",
           str(table_dir), "--output", str(out), "--overwrite", "--master", "local[2]"]
    measured = run_measured(cmd, 1800, work / "tokenize-job.log")
    report = json.loads((out / "report.json").read_text()) if measured["finished"] else {}
    return {"documents": report.get("docs_out"), "mb": round(report.get("bytes", 0) / 1e6, 2),
            "encoder": report.get("encoder"), "encode_mb_per_s_per_core": report.get("encode_mb_per_s_per_core"),
            "job_seconds": measured["seconds"]}


def repeated_file(text: Path, gb: float, path: Path) -> int:
    """`text` concatenated until it holds `gb` GB."""
    if not path.exists():
        data = text.read_bytes()
        with open(path, "wb") as f:
            f.writelines(data for _ in range(-(-int(gb * 1e9) // len(data))))
    return path.stat().st_size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="bench/data/text")
    ap.add_argument("--work", default="bench/data/tok")
    ap.add_argument("--sizes", default="200MB", help="training text sizes, comma-separated")
    ap.add_argument("--vocab-size", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spm-timeout", type=float, default=1200, help="seconds before SentencePiece is stopped")
    ap.add_argument("--repeat-gb", type=float, default=0, help="also time ours on the largest file repeated to N GB")
    ap.add_argument("--skip-job", action="store_true", help="skip the Spark tokenize job")
    ap.add_argument("--json", default="bench/out/tokenizer.json")
    args = ap.parse_args()
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread for the encode measurements in this process
    corpus, work = Path(args.corpus), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    lines = heldout_lines(corpus)
    rows = []
    for size_text in args.sizes.split(","):
        text = work / f"train-{size_text}.txt"
        actual = make_training_file(corpus, parse_size(size_text), args.seed, text)
        row = {"size": size_text, "train_mb": round(actual / 1e6, 1)}
        dirs = {name: work / f"{name}-{size_text}" for name in ("ours", "hf")}
        row["ours"] = train_cli("rustbpe", text, args.vocab_size, dirs["ours"], 4 * 3600)
        row["hf"] = train_cli("hf", text, args.vocab_size, dirs["hf"], 4 * 3600)
        prefix = work / f"spm-{size_text}"
        row["sentencepiece"] = train_spm(text, args.vocab_size, prefix, args.spm_timeout)
        row["heldout"] = compression(lines, {k: (d if row[k]["finished"] else None) for k, d in dirs.items()},
                                     prefix.with_suffix(".model") if row["sentencepiece"]["finished"] else None)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    largest = rows[-1]
    ours_dir = work / f"ours-{largest['size']}"
    result = {"vocab_size": args.vocab_size, "cores": os.cpu_count(), "load_avg_1m": os.getloadavg()[0],
              "heldout_lines": {lang: len(v) for lang, v in lines.items()}, "runs": rows,
              "encode": encode_speed(corpus, ours_dir)}
    if not args.skip_job:
        result["tokenize_job"] = tokenize_job_speed(corpus, ours_dir, work)
    if args.repeat_gb:
        big = work / f"train-{args.repeat_gb:g}GB-repeated.txt"
        nbytes = repeated_file(work / f"train-{largest['size']}.txt", args.repeat_gb, big)
        result["repeated"] = {"gb": round(nbytes / 1e9, 2),
                              "ours": train_cli("rustbpe", big, args.vocab_size, work / "ours-repeated", 3600)}
        big.unlink()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(format_table(result))
    return 0


def format_table(result: dict) -> str:
    lines = [f"vocab {result['vocab_size']:,}; {result['cores']} cores (shared, load {result['load_avg_1m']:.1f}); "
             f"held-out lines " + ", ".join(f"{k} {v:,}" for k, v in result["heldout_lines"].items()),
             f"{'size':>7} {'tool':<14} {'train s':>8} {'peak RSS MB':>11} "
             + " ".join(f"{'B/tok ' + lang:>12}" for lang in LANGS)]
    for r in result["runs"]:
        for tool in TOOLS:
            m, h = r[tool], r["heldout"].get(tool, {})
            train = f"{m['seconds']:>8.1f}" if m["finished"] else f"{'>' + str(int(m['seconds'])):>8}"
            bpt = " ".join(f"{h[lang]:>12.3f}" if lang in h else f"{'-':>12}" for lang in LANGS)
            lines.append(f"{r['size']:>7} {tool:<14} {train} {m['peak_rss_mb']:>11.0f} {bpt}")
        ours = r["ours"]
        for peer in ("hf", "sentencepiece"):
            if ours["finished"] and r[peer]["finished"]:
                lines.append(f"{'':>7} ours vs {peer}: train {r[peer]['seconds'] / ours['seconds']:.2f}x faster, "
                             f"peak RSS {ours['peak_rss_mb'] / r[peer]['peak_rss_mb']:.2f}x")
    e = result["encode"]
    lines.append(f"encode, 1 thread, {e['mb']} MB held-out, same tokenizer.json: tiktoken {e['tiktoken']} MB/s, "
                 f"tokenizers {e['tokenizers']} MB/s per CPU-second ({e['tiktoken'] / e['tokenizers']:.2f}x); "
                 f"ids identical: {e['ids_identical']}")
    if "tokenize_job" in result:
        j = result["tokenize_job"]
        lines.append(f"tokenize job (Spark local[2], {j['encoder']}) on held-out: {j['documents']} docs, {j['mb']} MB, "
                     f"{j['encode_mb_per_s_per_core']} MB/s per core, {j['job_seconds']} s wall")
    if "repeated" in result:
        rep = result["repeated"]
        lines.append(f"ours on {rep['gb']} GB (the {result['runs'][-1]['size']} file repeated): "
                     f"{rep['ours']['seconds']} s, peak RSS {rep['ours']['peak_rss_mb']:.0f} MB")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
