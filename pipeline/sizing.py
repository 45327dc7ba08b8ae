"""What a run over N Common Crawl dumps costs: core-hours, shuffle, disk and output per stage.

A back-of-the-envelope model a team can argue with, kept pure (no Spark, no
I/O) so the numbers are testable. Two kinds of input, kept apart on purpose:

- `Throughputs`: per-core speeds of each stage, measured by `bench/` and
  committed with where each figure came from (`infra/sizing/throughputs.json`); a
  speed nobody measured says `"source": "estimate: ..."` and is flagged in
  the output.
- `Assumptions`: sizes of Common Crawl and of our rows, each a plain number
  with the reasoning behind it in its help text (every one is a flag).

How things grow with N: ingest sees every page of every dump (linear in N).
Dedup computes signatures for every document and shuffles signatures and
band keys once over all dumps together, and its candidate edges (and so the
connected-components rounds) grow with the duplicate count, which grows
faster than N because the removal rate rises with the number of dumps
deduplicated together (the paper: 22.2% for 1 dump, 89.8% for 91). Filter,
remix and tokenize are linear in the documents that survive dedup,
N * (1 - r(N)).

Every stage also pays one shuffle of its output rows: `write_parquet`
repartitions by `doc_id` so that reruns give identical bytes.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from crawl2model.core.errors import ConfigError

# DeepSeek LLM (arXiv 2401.02954), Table 1: removal rate when deduplicating 1 dump and 91 dumps together.
PAPER_DEDUP = ((1, 0.222), (91, 0.898))
STAGES = ("ingest", "dedup", "filter", "remix", "tokenize")
GROWS_AS = {
    "ingest": "N",
    "dedup": "N docs + N*r(N) edges",
    "filter": "N*(1-r(N))",
    "remix": "N*(1-r(N))",
    "tokenize": "N*(1-r(N))",
}
SECONDS_PER_HOUR = 3600.0


def removal_rate(dumps: float) -> float:
    """Share of documents dedup removes when `dumps` dumps are deduplicated together.

    Linear in log(N) through the paper's two points; beyond 91 dumps it is held
    at 89.8% (the paper has no larger point, and the log-linear line would
    pass 100% near 180 dumps).
    """
    if not dumps > 0:
        raise ConfigError(f"dumps must be positive, got {dumps}")
    (n0, r0), (n1, r1) = PAPER_DEDUP
    if dumps >= n1:
        return r1
    return max(0.0, r0 + (r1 - r0) * math.log(dumps / n0) / math.log(n1 / n0))


@dataclass(frozen=True)
class Throughput:
    value: float
    unit: str
    source: str

    @property
    def measured(self) -> bool:
        return not self.source.startswith("estimate")


# The keys infra/sizing/throughputs.json must hold, each a speed per core.
THROUGHPUT_KEYS = ("ingest_pages", "dedup_signature_docs", "shuffle_mb", "filter_docs", "remix_docs",
                   "tokenize_mb", "bytes_per_token")


def load_throughputs(data: dict[str, Any], where: str) -> dict[str, Throughput]:
    """The entries of a throughputs file, checked: each has a positive value, a unit and a source."""
    found = {}
    for key in THROUGHPUT_KEYS:
        entry = data.get(key)
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: missing entry '{key}' (needs {', '.join(THROUGHPUT_KEYS)})")
        value, unit, source = entry.get("value"), entry.get("unit"), entry.get("source")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"{where}: '{key}.value' must be a positive number, got {value!r}")
        if not (isinstance(unit, str) and isinstance(source, str) and source):
            raise ConfigError(f"{where}: '{key}' needs a 'unit' and a 'source' (which bench run, or 'estimate: ...')")
        found[key] = Throughput(float(value), unit, source)
    return found


def assumption(default: float, help: str) -> Any:
    """A field whose help text is its documentation and its flag's help."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Assumptions:
    """Sizes the model rests on; none is measured here, all are flags (`crawl2model plan --help`)."""

    warc_tb_per_dump: float = assumption(
        90.0, "compressed WARC TB per dump (a 2023-2024 dump: ~90-100 TB, ~3 billion pages)")
    docs_per_tb: float = assumption(
        3e9 / 90, "pages per compressed WARC TB (3 billion pages / 90 TB)")
    doc_fraction: float = assumption(
        0.95, "pages that become documents; the rest are skipped (non-HTML, empty text)")
    text_bytes_per_doc: float = assumption(
        5000.0, "UTF-8 text bytes per document after main-content extraction; WET "
                "(all visible text, ~9 TB gzip a dump, ~8 KB a page) is the upper bound")
    meta_bytes_per_doc: float = assumption(
        250.0, "bytes of the other columns per document (doc_id, dump, url, host, date, type, n_chars)")
    signal_bytes_per_doc: float = assumption(
        120.0, "bytes of the columns filter adds (lang, scores, heuristics, perplexity, rule)")
    parquet_ratio: float = assumption(3.0, "raw / stored bytes of documents in zstd Parquet")
    shuffle_ratio: float = assumption(2.0, "raw / shuffled bytes of document rows (Spark's lz4 shuffle)")
    num_perm: int = assumption(128, "MinHash permutations (dedup default), 4 bytes each")
    bands: int = assumption(9, "LSH bands (dedup's optimal_bands(0.8, 128) = 9 x 13), an 8-byte key each")
    band_row_bytes: float = assumption(32.0, "one (node, band, key) row in the shuffle: 8-byte null map + 3 fields")
    edges_per_duplicate: float = assumption(
        2.0, "candidate edges per removed document (star edges per band bucket, before distinct)")
    edge_bytes: float = assumption(24.0, "one (src, dst) edge row in the shuffle")
    components_rounds: int = assumption(8, "connected-components rounds, each shuffling the edges once")
    duplicate_row_bytes: float = assumption(
        80.0, "stored bytes per removed document in duplicates/ (doc_id, representative, reason)")
    filter_keep: float = assumption(
        0.5, "share of deduplicated documents the filter keeps (not measured on real web pages)")
    remix_rate: float = assumption(1.0, "mean up/down-sampling rate of remix (1 = as many documents out as in)")
    token_row_bytes: float = assumption(48.0, "per-document bytes of a token shard besides its ids (offsets, doc_id)")
    core_hour_price: float = assumption(
        0.05, "USD per core-hour (on-demand general-purpose vCPU; spot is about a third)")

    def validate(self) -> None:
        for name in ("doc_fraction", "filter_keep"):
            if not 0 < getattr(self, name) <= 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be in (0, 1], got {getattr(self, name)}")
        for name in ("parquet_ratio", "shuffle_ratio"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")

    @property
    def doc_bytes(self) -> float:
        return self.text_bytes_per_doc + self.meta_bytes_per_doc

    @property
    def signature_row_bytes(self) -> float:
        """node + exact hash + signature + band keys, as dedup persists and shuffles them."""
        return 16 + 4 * self.num_perm + 8 * self.bands


@dataclass(frozen=True)
class StageEstimate:
    stage: str
    docs_in: float
    docs_out: float
    core_hours: float
    shuffle_core_hours: float  # the part of core_hours spent moving the shuffle
    shuffle_bytes: float
    peak_disk_bytes: float
    output_bytes: float
    cost_usd: float
    measured: bool  # the stage's own speed was measured (the shuffle speed is reported apart)


def _stage(stage: str, docs_in: float, docs_out: float, compute_s: float, shuffle: float, output: float,
           a: Assumptions, t: dict[str, Throughput], used: tuple[str, ...]) -> StageEstimate:
    """Core-hours are compute plus moving the shuffle; peak disk is the shuffle files plus the output."""
    shuffle_hours = shuffle / (t["shuffle_mb"].value * 1e6) / SECONDS_PER_HOUR
    hours = compute_s / SECONDS_PER_HOUR + shuffle_hours
    return StageEstimate(stage, docs_in, docs_out, hours, shuffle_hours, shuffle, shuffle + output, output,
                         hours * a.core_hour_price, all(t[k].measured for k in used))


def documents(dumps: float, a: Assumptions) -> float:
    """Documents ingest writes for `dumps` dumps."""
    return dumps * a.warc_tb_per_dump * a.docs_per_tb * a.doc_fraction


def dedup_shuffle(docs: float, rate: float, a: Assumptions) -> dict[str, float]:
    """Dedup's shuffle bytes by what is shuffled, over all dumps at once.

    Signatures and band keys: one row per document (per band), linear in the
    total. Edges: candidate pairs grow with the duplicates, docs * r(N), and
    are shuffled once to be built and once per components round. Documents:
    the anti-join against the duplicates and the write of what is kept.
    """
    kept = docs * (1 - rate)
    return {
        "signatures": docs * a.signature_row_bytes,
        "band_keys": docs * a.bands * a.band_row_bytes,
        "edges": docs * rate * a.edges_per_duplicate * a.edge_bytes * (a.components_rounds + 1),
        "documents": (docs + kept) * a.doc_bytes / a.shuffle_ratio,
    }


def plan_stages(dumps: float, a: Assumptions, t: dict[str, Throughput]) -> list[StageEstimate]:
    """The five stages for `dumps` dumps (a float, so growth can be taken as a derivative)."""
    rate = removal_rate(dumps)
    pages = dumps * a.warc_tb_per_dump * a.docs_per_tb
    docs = documents(dumps, a)
    ingest = _stage("ingest", pages, docs, pages / t["ingest_pages"].value,
                    docs * a.doc_bytes / a.shuffle_ratio, docs * a.doc_bytes / a.parquet_ratio,
                    a, t, ("ingest_pages",))

    removed = docs * rate
    kept = docs - removed
    dedup = _stage("dedup", docs, kept, docs / t["dedup_signature_docs"].value,
                   sum(dedup_shuffle(docs, rate, a).values()),
                   kept * a.doc_bytes / a.parquet_ratio + removed * a.duplicate_row_bytes,
                   a, t, ("dedup_signature_docs",))

    filtered_bytes = a.doc_bytes + a.signal_bytes_per_doc
    passed = kept * a.filter_keep
    filt = _stage("filter", kept, passed, kept / t["filter_docs"].value,
                  kept * filtered_bytes / a.shuffle_ratio, kept * filtered_bytes / a.parquet_ratio,
                  a, t, ("filter_docs",))  # kept/ and rejected/ together hold every input row

    mixed = passed * a.remix_rate
    remix = _stage("remix", passed, mixed, passed / t["remix_docs"].value,
                   mixed * filtered_bytes / a.shuffle_ratio, mixed * filtered_bytes / a.parquet_ratio,
                   a, t, ("remix_docs",))

    text = mixed * a.text_bytes_per_doc
    tokens = text / t["bytes_per_token"].value
    tokenize = _stage("tokenize", mixed, mixed, text / (t["tokenize_mb"].value * 1e6),
                      mixed * a.doc_bytes / a.shuffle_ratio, tokens * 4 + mixed * a.token_row_bytes,
                      a, t, ("tokenize_mb", "bytes_per_token"))
    return [ingest, dedup, filt, remix, tokenize]


def total(stages: list[StageEstimate]) -> StageEstimate:
    """All stages: sums, except peak disk = every stage's output kept plus the largest shuffle."""
    return StageEstimate(
        "total", stages[0].docs_in, stages[-1].docs_out,
        sum(s.core_hours for s in stages), sum(s.shuffle_core_hours for s in stages),
        sum(s.shuffle_bytes for s in stages),
        sum(s.output_bytes for s in stages) + max(s.shuffle_bytes for s in stages),
        sum(s.output_bytes for s in stages), sum(s.cost_usd for s in stages), all(s.measured for s in stages))


METRICS = ("core_hours", "shuffle_core_hours", "shuffle_bytes", "peak_disk_bytes", "output_bytes", "cost_usd")


def growth(dumps: float, a: Assumptions, t: dict[str, Throughput], step: float = 1e-3) -> dict[str, dict[str, float]]:
    """Local exponent k of each metric (metric ~ N^k near `dumps`), per stage and in total.

    Taken just below `dumps`, where the removal-rate interpolation holds (it is
    held flat above 91 dumps): k = 1 is linear, k < 1 means later dumps add
    less than earlier ones (their documents are mostly duplicates).
    """
    lower = dumps / (1 + step)
    now, before = plan_stages(dumps, a, t), plan_stages(lower, a, t)
    now.append(total(now))
    before.append(total(before))
    return {s.stage: {m: math.log(getattr(s, m) / getattr(b, m)) / math.log(dumps / lower) for m in METRICS}
            for s, b in zip(now, before)}


def plan(dumps: int, a: Assumptions, t: dict[str, Throughput]) -> dict[str, Any]:
    """One run's estimate as plain values: what `--json` prints and the table is drawn from."""
    stages = plan_stages(dumps, a, t)
    exponents = growth(dumps, a, t)
    rows = [*stages, total(stages)]
    return {
        "dumps": dumps,
        "warc_bytes": dumps * a.warc_tb_per_dump * 1e12,
        "removal_rate": removal_rate(dumps),
        "tokens": stages[-1].docs_in * a.text_bytes_per_doc / t["bytes_per_token"].value,
        "dedup_shuffle_bytes": dedup_shuffle(documents(dumps, a), removal_rate(dumps), a),
        "stages": [{**dataclasses.asdict(s), "grows_as": GROWS_AS.get(s.stage, "sum of stages"),
                    "growth_exponent": exponents[s.stage]} for s in rows],
    }
