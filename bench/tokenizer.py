"""Our byte-level BPE vs SentencePiece BPE at the same vocabulary on the same text.

    python bench/build_text_corpus.py --out bench/data/text   # once: ~250 MB from Debian packages
    nice -n 10 python bench/tokenizer.py --corpus bench/data/text --sizes 25MB,200MB

For each size, one training file is sampled (seeded) from the corpus's train
part and given to both trainers, each in its own process so that wall time
and peak RSS (`wait4`) are its own. SentencePiece runs with a time limit: its
BPE trainer is far slower at 100k pieces, and a size where it does not finish
is reported as such. Held-out bytes/token is measured line by line for both
(SentencePiece cannot encode a newline), on the corpus's held-out English,
Chinese and code. Encoding speed is single-core for both, plus the real
tokenize job in Spark local mode (`encode_mb_per_s_per_core` of its report).
Prints a table and writes bench/out/tokenizer.json.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from crawl2model.core.sizes import parse_size

ROOT = Path(__file__).resolve().parent.parent


LANGS = ("en", "zh", "code")


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
        for doc in tc.sample(files, size, seed, progress=tc.log):
            f.write(doc)
    return path.stat().st_size


def train_ours(text: Path, vocab: int, out: Path, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "crawl2model", "tokenizer", "train", "--input", str(text), "--output", str(out),
           "--vocab-size", str(vocab), "--max-bytes", "1000GB", "--overwrite"]
    return run_measured(cmd, timeout, out.with_suffix(".log"))


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


def heldout_lines(corpus: Path, lang: str) -> list[str]:
    text = (corpus / "heldout" / f"{lang}.txt").read_text(encoding="utf-8")
    return [line for line in text.split("\n") if line]


def compression_and_speed(encode, lines: list[str]) -> tuple[float, float]:
    """(bytes/token, MB/s on one core) over the lines, encoded in batches of 256."""
    nbytes = sum(len(line.encode()) for line in lines)
    t0 = time.perf_counter()
    tokens = 0
    for i in range(0, len(lines), 256):
        tokens += sum(len(ids) for ids in encode(lines[i:i + 256]))
    seconds = time.perf_counter() - t0
    return nbytes / max(tokens, 1), nbytes / 1e6 / seconds


def evaluate(corpus: Path, ours_dir: Path | None, spm_model: Path | None) -> dict:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    result: dict[str, dict] = {}
    encoders = {}
    if ours_dir is not None:
        from crawl2model.tokenizer import files

        tok = files.load(str(ours_dir))
        encoders["ours"] = lambda batch: [e.ids for e in tok.encode_batch_fast(batch, add_special_tokens=False)]
    if spm_model is not None:
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(spm_model))
        encoders["sentencepiece"] = lambda batch: sp.encode(batch, num_threads=1)
    for lang in LANGS:
        lines = heldout_lines(corpus, lang)
        for name, enc in encoders.items():
            bpt, speed = compression_and_speed(enc, lines)
            result.setdefault(name, {})[lang] = {"bytes_per_token": round(bpt, 3), "encode_mb_s_1core": round(speed, 2)}
    return result


def tokenize_job_speed(corpus: Path, ours_dir: Path, work: Path) -> dict:
    """The real tokenize job on the held-out text (one document per paragraph)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = []
    for lang in LANGS:
        text = (corpus / "heldout" / f"{lang}.txt").read_text(encoding="utf-8")
        docs += [(lang, d) for d in text.split("\n\n") if d.strip()]
    table_dir = work / "heldout-docs"
    table_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"doc_id": [f"{i:08d}" for i in range(len(docs))], "text": [d for _, d in docs],
                             "domain": [lang for lang, _ in docs]}), table_dir / "part-0.parquet",
                   row_group_size=2000)
    out = work / "heldout-tokens"
    cmd = [sys.executable, str(ROOT / "jobs" / "tokenize.py"), "--tokenizer", str(ours_dir), "--input",
           str(table_dir), "--output", str(out), "--overwrite", "--master", "local[2]"]
    measured = run_measured(cmd, 1800, work / "tokenize-job.log")
    report = json.loads((out / "report.json").read_text()) if measured["finished"] else {}
    return {"documents": report.get("docs_out"), "mb": round(report.get("bytes", 0) / 1e6, 2),
            "encode_mb_per_s_per_core": report.get("encode_mb_per_s_per_core"),
            "job_seconds": measured["seconds"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="bench/data/text")
    ap.add_argument("--work", default="bench/data/tok")
    ap.add_argument("--sizes", default="25MB,200MB", help="training text sizes, comma-separated")
    ap.add_argument("--vocab-size", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spm-timeout", type=float, default=1200, help="seconds before SentencePiece is stopped")
    ap.add_argument("--json", default="bench/out/tokenizer.json")
    args = ap.parse_args()
    corpus, work = Path(args.corpus), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    spm_gave_up = ""
    previous: tuple[int, float] | None = None  # (bytes, seconds) of SentencePiece's last finished run
    for size_text in args.sizes.split(","):
        size = parse_size(size_text)
        text = work / f"train-{size_text}.txt"
        actual = make_training_file(corpus, size, args.seed, text)
        ours_dir = work / f"ours-{size_text}"
        ours = train_ours(text, args.vocab_size, ours_dir, 4 * 3600)
        row = {"size": size_text, "train_mb": round(actual / 1e6, 1), "ours": ours}
        # Its training time grows at least linearly with the text: skip sizes it cannot finish.
        if previous and previous[1] * actual / previous[0] > args.spm_timeout:
            spm_gave_up = spm_gave_up or (f"{previous[1]:.0f} s at {previous[0] / 1e6:.0f} MB extrapolates "
                                          f"past the {args.spm_timeout:.0f} s limit")
        if spm_gave_up:
            row["sentencepiece"] = {"finished": False, "skipped": spm_gave_up}
        else:
            prefix = work / f"spm-{size_text}"
            row["sentencepiece"] = train_spm(text, args.vocab_size, prefix, args.spm_timeout)
            if row["sentencepiece"]["finished"]:
                previous = (actual, row["sentencepiece"]["seconds"])
            else:
                spm_gave_up = f"did not finish in {args.spm_timeout:.0f} s at {size_text}"
        spm_model = work / f"spm-{size_text}.model" if row["sentencepiece"].get("finished") else None
        row["heldout"] = evaluate(corpus, ours_dir if ours["finished"] else None, spm_model)
        if ours["finished"]:
            row["ours"]["ordinary_tokens"] = json.loads((ours_dir / "report.json").read_text())["ordinary_tokens"]
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    largest = next(r for r in reversed(rows) if r["ours"]["finished"])
    job = tokenize_job_speed(corpus, work / f"ours-{largest['size']}", work)
    result = {"vocab_size": args.vocab_size, "cores": os.cpu_count(), "runs": rows, "tokenize_job": job}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(format_table(result))
    return 0


def format_table(result: dict) -> str:
    lines = [f"vocab {result['vocab_size']:,}; {result['cores']} cores (shared)",
             f"{'size':>7} {'tool':<14} {'train s':>8} {'peak RSS MB':>11} "
             + " ".join(f"{'B/tok ' + lang:>10}" for lang in LANGS)
             + " " + " ".join(f"{'MB/s ' + lang:>9}" for lang in LANGS)]
    for r in result["runs"]:
        for tool in ("ours", "sentencepiece"):
            m = r[tool]
            h = r["heldout"].get(tool, {})
            if m.get("finished"):
                train = f"{m['seconds']:>8.1f}"
            else:  # stopped at the time limit, or not tried after a smaller size timed out
                train = f"{'>' + str(int(m['seconds'])):>8}" if "seconds" in m else f"{'skipped':>8}"
            rss = f"{m['peak_rss_mb']:>11.0f}" if "peak_rss_mb" in m else f"{'':>11}"
            bpt = " ".join(f"{h[lang]['bytes_per_token']:>10.3f}" if lang in h else f"{'-':>10}" for lang in LANGS)
            mbs = " ".join(f"{h[lang]['encode_mb_s_1core']:>9.2f}" if lang in h else f"{'-':>9}" for lang in LANGS)
            lines.append(f"{r['size']:>7} {tool:<14} {train} {rss} {bpt} {mbs}")
    j = result["tokenize_job"]
    lines.append(f"tokenize job (Spark local[2]) on held-out: {j['documents']} docs, {j['mb']} MB, "
                 f"{j['encode_mb_per_s_per_core']} MB/s per core, {j['job_seconds']} s wall")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
