"""`crawl2model report RUN_DIR`: one self-contained HTML page for a whole run.

The page is built only from what the stages already wrote (report.json, the
filter's histograms, the trainer's metrics.jsonl), so it can be made at any
time, for any run layout, without Spark or torch. Stage folders are found by
the `stage` key of their report.json, not by name. Images are inline data:
URIs and the CSS is inline, so the one file can be mailed, attached to an
issue or opened from an object store without its neighbours.
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any, Callable, Iterable

from crawl2model.core.errors import InputError
from crawl2model.core.log import get_logger

log = get_logger("report")

FLOW = ("ingest", "dedup", "filter", "remix", "tokenizer", "tokenize", "train")
# DeepSeek LLM (arXiv 2401.02954), Table 1: documents removed when deduplicating 1 dump and 91 dumps together.
PAPER_DEDUP = ((1, 0.222), (91, 0.898))
MAX_LANGUAGES = 12
RULE_LANGUAGES = 3


@dataclass(frozen=True)
class StageReport:
    folder: Path
    stage: str
    data: dict[str, Any]


def find_reports(run_dir: Path) -> list[StageReport]:
    """Every subfolder's report.json, in flow order; hidden folders are unfinished temporaries."""
    if not run_dir.is_dir():
        raise InputError(f"run folder not found: {run_dir}")
    found = []
    for path in sorted(run_dir.glob("*/report.json")):
        if path.parent.name.startswith((".", "_")):
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise InputError(f"unreadable report {path}: {e}") from None
        if isinstance(data, dict) and isinstance(data.get("stage"), str):
            found.append(StageReport(path.parent, data["stage"], data))
    if not found:
        raise InputError(f"no stage reports in {run_dir}: no subfolder holds a report.json with a 'stage' key")
    rank = {s: i for i, s in enumerate(FLOW)}
    return sorted(found, key=lambda r: (rank.get(r.stage, len(FLOW)), r.folder.name))


# --- formatting --------------------------------------------------------------------------

def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def num(value: Any) -> str:
    """Counts with thousands separators, fractions with 4 significant digits, the rest as text."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def pct(fraction: Any) -> str:
    return f"{100 * fraction:.1f}%" if isinstance(fraction, (int, float)) else "—"


def table(header: Iterable[str], rows: Iterable[Iterable[Any]], numeric_from: int = 1) -> str:
    """An HTML table; cells are escaped, columns from `numeric_from` on are right-aligned."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td{" class=n" if i >= numeric_from else ""}>{esc(c)}</td>' for i, c in enumerate(row))
        + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def img(data: bytes, alt: str, mime: str = "image/png") -> str:
    return f'<img alt="{esc(alt)}" src="data:{mime};base64,{base64.b64encode(data).decode("ascii")}">'


def chart(draw: Callable[[Any], None], alt: str, size: tuple[float, float] = (7, 3.6)) -> str:
    """Draw on a fresh matplotlib axes and inline the PNG; Agg, because a report runs headless."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    try:
        draw(ax)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
    finally:
        plt.close(fig)
    return img(buf.getvalue(), alt)


def bar_chart(labels: list[str], series: dict[str, list[float]], ylabel: str, title: str) -> str:
    """Grouped bars, one group per label, each bar with its value written on it."""
    def draw(ax) -> None:
        width = 0.8 / max(len(series), 1)
        for i, (name, values) in enumerate(series.items()):
            x = [j + (i - (len(series) - 1) / 2) * width for j in range(len(labels))]
            bars = ax.bar(x, values, width, label=name)
            ax.bar_label(bars, labels=[num(v) for v in values], fontsize=7, padding=1)
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8)

    return chart(draw, title)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- sections ----------------------------------------------------------------------------

def overview(reports: list[StageReport]) -> str:
    rows = [(r.folder.name, r.stage, num(r.data.get("docs_in")), num(r.data.get("docs_out")),
             num(r.data.get("seconds"))) for r in reports]
    return table(["folder", "stage", "docs in", "docs out", "seconds"], rows, numeric_from=2)


def funnel(reports: list[StageReport]) -> str:
    counted = [r for r in reports if _count(r.data.get("docs_in")) and _count(r.data.get("docs_out"))]
    if not counted:
        return note("No stage report has document counts (docs_in, docs_out).")
    labels = [r.stage if r.folder.name == r.stage else f"{r.stage}\n{r.folder.name}/" for r in counted]
    parts = [bar_chart(labels, {"in": [r.data["docs_in"] for r in counted],
                                "out": [r.data["docs_out"] for r in counted]},
                       "documents", "Documents in and out per stage"),
             note("ingest counts records in (each becomes a document or is skipped for a reason); "
                  "remix counts distinct documents out (its copies are rows, not documents).")]
    ingest, dedup = _first(reports, "ingest"), _first(reports, "dedup")
    per_dump = dict(ingest.data.get("per_dump") or {}) if ingest else {}
    skipped = dict(ingest.data.get("skipped_per_dump") or {}) if ingest else {}
    dedup_in = dict(dedup.data.get("docs_per_dump") or {}) if dedup else {}
    dedup_removed = dict(dedup.data.get("removed_per_dump") or {}) if dedup else {}
    dumps = sorted(set(per_dump) | set(dedup_in))
    if not dumps:
        parts.append(note("No per-dump numbers (ingest per_dump, dedup docs_per_dump)."))
        return "".join(parts)
    series = {}
    if per_dump:
        series["ingest: documents"] = [per_dump.get(d, 0) for d in dumps]
    if dedup_in:
        series["dedup: kept"] = [dedup_in.get(d, 0) - dedup_removed.get(d, 0) for d in dumps]
    parts.append(bar_chart(dumps, series, "documents", "Documents per dump"))
    rows = []
    for d in dumps:
        docs, removed = dedup_in.get(d), dedup_removed.get(d)
        rows.append((d, num(skipped.get(d)), num(per_dump.get(d)), num(removed),
                     num(docs - removed) if docs is not None and removed is not None else "—",
                     pct(removed / docs) if docs and removed is not None else "—"))
    parts.append(table(["dump", "ingest: records skipped", "ingest: documents", "dedup: removed",
                        "dedup: kept", "dedup: removed %"], rows))
    return "".join(parts)


def reasons(reports: list[StageReport]) -> str:
    parts = []
    for r in reports:
        removed = r.data.get("removed_by_reason")
        if not isinstance(removed, dict):
            continue
        parts.append(f"<h3>{esc(r.stage)} <small>{esc(r.folder.name)}/</small></h3>")
        if not removed:
            parts.append(note("nothing removed"))
            continue
        docs_in = r.data.get("docs_in")
        rows = [(k, num(v), pct(v / docs_in) if _count(docs_in) and docs_in else "—")
                for k, v in sorted(removed.items(), key=lambda kv: -kv[1])]
        rows.append(("total", num(sum(removed.values())),
                     pct(sum(removed.values()) / docs_in) if _count(docs_in) and docs_in else "—"))
        parts.append(table(["reason", "documents", "of docs in"], rows))
    return "".join(parts) or note("No stage report has removed_by_reason.")


def dedup_section(r: StageReport) -> str:
    d = r.data
    parts = []
    points = d.get("rate_by_dumps") or []
    if points:
        def draw(ax) -> None:
            ax.plot([p["dumps"] for p in points], [100 * p["removed_fraction"] for p in points], "o-",
                    label="this run: dumps 1..k together")
            (x0, y0), (x1, y1) = PAPER_DEDUP
            ax.plot([x0, x1], [100 * y0, 100 * y1], "s--", color="gray",
                    label="DeepSeek LLM paper: 1 and 91 dumps (end points only)")
            for x, y in PAPER_DEDUP:
                ax.annotate(f"paper: {100 * y:.1f}%", (x, 100 * y), textcoords="offset points",
                            xytext=(-8, 8) if x > 1 else (-4, 22), ha="right" if x > 1 else "left",
                            fontsize=8, color="dimgray")
            if isinstance(d.get("per_dump_mode_removed_fraction"), (int, float)):
                ax.axhline(100 * d["per_dump_mode_removed_fraction"], color="tab:orange", ls=":",
                           label="this run: each dump alone")
            ax.set_xscale("log")
            ticks = sorted({p["dumps"] for p in points} | {1, 10, PAPER_DEDUP[-1][0]})
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.minorticks_off()
            ax.set_xlabel("dumps deduplicated together (log scale)")
            ax.set_ylabel("documents removed (%)")
            ax.set_ylim(0, 100)
            ax.set_title("Deduplication rate vs. number of dumps")
            ax.legend(fontsize=8)

        parts.append(chart(draw, "deduplication rate by number of dumps"))
        parts.append(table(["dumps together", "documents removed"],
                           [(p["dumps"], pct(p["removed_fraction"])) for p in points]))
    else:
        parts.append(note("The dedup report has no rate_by_dumps (run with --index or per-dump mode, "
                          "or rate_by_dumps switched off)."))
    parts.append(note("The paper deduplicated across 91 Common Crawl dumps: 22.2% of documents were removed "
                      "within 1 dump and 89.8% across all 91, about 4x more, because most duplicates sit "
                      "in other dumps. A run over a few dumps sits at the left of that curve."))
    by_reason = d.get("removed_by_reason") or {}
    lsh = d.get("lsh") or {}
    rows = [("documents in", num(d.get("docs_in"))), ("kept", num(d.get("docs_out"))),
            ("removed", pct(d.get("removed_fraction"))), ("exact duplicates", num(by_reason.get("exact"))),
            ("near duplicates", num(by_reason.get("near"))),
            ("each dump alone: removed", pct(d.get("per_dump_mode_removed_fraction"))),
            ("LSH bands x rows", f"{lsh.get('bands', '?')} x {lsh.get('rows', '?')}" if lsh else "—"),
            ("Jaccard threshold", num(lsh.get("threshold"))),
            ("false positive / negative mass",
             f"{num(lsh.get('false_positive_mass'))} / {num(lsh.get('false_negative_mass'))}" if lsh else "—")]
    parts.append(table(["", "value"], rows))
    return "".join(parts)


def filter_section(r: StageReport) -> str:
    d = r.data
    parts = [note(f"{num(d.get('docs_in'))} documents in, {num(d.get('docs_out'))} kept "
                  f"(pass rate {pct(d.get('pass_rate'))}).")]
    rules = d.get("rules") or {}
    langs = d.get("per_language") or {}
    if rules:
        names = list(rules)
        rates = [100 * (rules[n].get("pass_rate") or 0) for n in names]

        def draw(ax) -> None:
            bars = ax.barh(names[::-1], rates[::-1], color="#4c72b0")
            ax.bar_label(bars, labels=[f"{v:.1f}%" for v in rates[::-1]], fontsize=7, padding=2)
            ax.set_xlim(0, 110)
            ax.set_xlabel("documents passing the rule alone (%)")
            ax.set_title("Pass rate per rule")
            ax.tick_params(axis="y", labelsize=7)

        # the largest languages' own pass rate per rule, beside the rule's rate over all documents
        columns = list(langs)[:RULE_LANGUAGES]
        rows = [(n, pct(v.get("pass_rate")), num(v.get("first_failed")),
                 *(pct((langs[lang].get("rule_pass_rate") or {}).get(n)) for lang in columns))
                for n, v in rules.items()]
        parts.append('<div class="grid">' + chart(draw, "pass rate per rule", size=(4.4, 0.24 * len(names) + 1.2))
                     + table(["rule", "pass rate alone", "first reject", *columns], rows) + "</div>")
        if columns:
            parts.append(note(f"{', '.join(columns)}: the rule's pass rate among that language's documents; "
                              "first reject: documents this rule was the first to reject."))
    if langs:
        shown = list(langs.items())[:MAX_LANGUAGES]
        rows = []
        for lang, v in shown:
            removed = v.get("removed_by_reason") or {}
            top = max(removed.items(), key=lambda kv: kv[1]) if removed else None
            rows.append((lang, num(v.get("docs_in")), num(v.get("docs_out")), pct(v.get("pass_rate")),
                         f"{top[0]} ({num(top[1])})" if top else "—"))
        parts.append("<h3>Per language</h3>" + table(["language", "docs in", "kept", "pass rate", "top reason"], rows))
        if len(langs) > len(shown):
            parts.append(note(f"{len(langs) - len(shown)} more languages, each with fewer documents."))
    plots = d.get("plots") or []
    if plots:
        parts.append("<h3>Signal histograms (dashed: thresholds)</h3><div class=grid>")
        for name in plots:
            path = r.folder / name
            if path.is_file() and path.resolve().is_relative_to(r.folder.resolve()):
                mime = "image/svg+xml" if path.suffix == ".svg" else "image/png"
                parts.append(img(path.read_bytes(), f"filter histogram {name}", mime))
            else:
                parts.append(note(f"{name}: listed in the report but not in {r.folder.name}/"))
        parts.append("</div>")
    return "".join(parts)


def mix_section(r: StageReport) -> str:
    d = r.data
    mix = d.get("mix") or {}
    if not mix:
        return note("The remix report has no mix table.")
    names = list(mix)
    shares = {k: [round(100 * mix[n].get(f"{k}_share", 0.0), 1) for n in names]
              for k in ("input", "target", "achieved")}
    rows = [(n, pct(v.get("input_share")), pct(v.get("target_share")), pct(v.get("achieved_share")),
             num(v.get("error_points")), "yes" if v.get("reachable", True) else "no") for n, v in mix.items()]
    parts = [bar_chart(names, shares, f"share of {d.get('unit', 'bytes')} (%)",
                       f"Domain mixture: max |achieved - target| {num(d.get('max_error_points'))} points"),
             table(["domain", "input", "target", "achieved", "error (points)", "reachable"], rows)]
    for u in d.get("unreachable") or []:
        parts.append(note(f"{u.get('domain')}: target {pct(u.get('target_share'))} unreachable ({u.get('why')})"))
    parts.append(note(f"{num(d.get('docs_out'))} distinct documents written as {num(d.get('rows_out'))} rows "
                      f"(copies histogram: {json.dumps(d.get('copies_histogram') or {})})."))
    return "".join(parts)


def tokenizer_section(tok: StageReport | None, tokenize: StageReport | None) -> str:
    parts = []
    if tok is None:
        parts.append(note("No tokenizer report in this run."))
    else:
        t = tok.data
        ordinary, special, padded = t.get("ordinary_tokens"), t.get("special_tokens"), t.get("padded_vocab_size")
        total = t.get("total_tokens")
        parts.append(table(["vocabulary", "tokens"],
                           [("ordinary", num(ordinary)), ("special", num(special)), ("total", num(total)),
                            ("padded (model embedding rows)", num(padded))]))
        if all(_count(v) for v in (ordinary, special, padded)):
            def draw(ax) -> None:
                left = 0
                for label, n in (("ordinary", ordinary), ("special", special),
                                 ("padding", max(padded - ordinary - special, 0))):
                    ax.barh(["vocab"], [n], left=left, label=f"{label} ({num(n)})")
                    left += n
                ax.set_xlabel("token ids")
                ax.set_yticks([])
                ax.legend(fontsize=8, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)

            parts.append(chart(draw, "vocabulary layout", size=(7, 1.6)))
    if tokenize is None:
        parts.append(note("No tokenize report in this run: no bytes/token."))
        return "".join(parts)
    k = tokenize.data
    parts.append(table(["tokenize", "value"],
                       [("documents", num(k.get("docs_out"))), ("tokens", num(k.get("tokens"))),
                        ("text bytes", num(k.get("bytes"))), ("bytes per token", num(k.get("bytes_per_token"))),
                        ("shards", num(k.get("shards")))]))
    per_lang = k.get("bytes_per_token_by_language")
    if isinstance(per_lang, dict) and per_lang:
        parts.append(table(["language", "bytes per token"], [(lang, num(v)) for lang, v in per_lang.items()]))
    else:
        parts.append(note("The tokenize report has no per-language bytes/token (bytes_per_token_by_language)."))
    return "".join(parts)


def read_metrics(folder: Path) -> list[dict[str, Any]]:
    """metrics.jsonl, one record per step: a resumed run appends, so the last record of a step wins."""
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return []
    by_step: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:  # a run killed mid-write leaves a torn last line
            continue
        if isinstance(rec, dict) and isinstance(rec.get("step"), int):
            by_step[rec["step"]] = rec
    return [by_step[s] for s in sorted(by_step)]


def _curve(ax, records: list[dict], key: str, label: str, **style) -> bool:
    pts = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
    if pts:
        ax.plot(*zip(*pts), label=label, **style)
    return bool(pts)


def train_section(r: StageReport, tokenize: StageReport | None) -> str:
    d = r.data
    records = read_metrics(r.folder)
    rows = [("steps", num(d.get("steps"))), ("engine, ranks", f"{d.get('engine', '?')}, {d.get('world_size', '?')}"),
            ("batch x seq len", f"{num(d.get('batch_size'))} x {num(d.get('seq_len'))}"),
            ("peak lr", num(d.get("peak_lr"))), ("final loss", num(d.get("loss"))),
            ("final val loss / bits per byte", f"{num(d.get('val_loss'))} / {num(d.get('val_bpb'))}"),
            ("tokens seen", num(d.get("tokens"))), ("tokens/s", num(d.get("tokens_per_s"))),
            ("seconds", num(d.get("seconds")))]
    parts = [table(["", "value"], rows)]
    if not records:
        parts.append(note(f"No metrics.jsonl in {r.folder.name}/: no curves."))
        return "".join(parts)

    def loss(ax) -> None:
        _curve(ax, records, "loss", "train loss")
        _curve(ax, records, "val_loss", "val loss", marker="o")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats/token)")
        ax.set_title("Loss")
        ax.legend(fontsize=8)

    has_val_bpb = any("val_bpb" in x for x in records)
    # Without the trainer's measured val_bpb, the train loss over the tokenize stage's bytes/token
    # is the best estimate at hand; beside a measured curve it would only confuse.
    bpt = tokenize.data.get("bytes_per_token") if tokenize and not has_val_bpb else None

    def bpb(ax) -> None:
        if isinstance(bpt, (int, float)) and bpt > 0:
            est = [{"step": x["step"], "bpb": x["loss"] / math.log(2) / bpt}
                   for x in records if isinstance(x.get("loss"), (int, float))]
            _curve(ax, est, "bpb", f"train, estimated (loss / ln 2 / {bpt:.3g} bytes per token)")
        _curve(ax, records, "val_bpb", "val", marker="o")
        ax.set_xlabel("step")
        ax.set_ylabel("bits per byte")
        ax.set_title("Bits per byte")
        ax.legend(fontsize=8)

    def lr(ax) -> None:
        _curve(ax, records, "lr", "lr")
        ax.set_xlabel("step")
        ax.set_ylabel("learning rate")
        ax.set_title("Learning rate schedule")
        ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))

    parts.append('<div class="grid">' + chart(loss, "training loss", (5.5, 3.4)))
    if has_val_bpb or isinstance(bpt, (int, float)):
        parts.append(chart(bpb, "bits per byte", (5.5, 3.4)))
    else:
        parts.append(note("No bits per byte: no val_bpb in the metrics and no tokenize report for bytes/token."))
    parts.append(chart(lr, "learning rate", (5.5, 3.4)) + "</div>")
    return "".join(parts)


def _first(reports: list[StageReport], stage: str) -> StageReport | None:
    return next((r for r in reports if r.stage == stage), None)


def _per_stage(reports: list[StageReport], stage: str, render: Callable[[StageReport], str]) -> str:
    """Each output of `stage` (a run may hold two filter outputs, say), or a note that there is none."""
    matching = [r for r in reports if r.stage == stage]
    if not matching:
        return note(f"No {stage} stage in this run (no subfolder's report.json has \"stage\": \"{stage}\").")
    if len(matching) == 1:
        return render(matching[0])
    return "".join(f"<h3>{esc(r.folder.name)}/</h3>{render(r)}" for r in matching)


# --- the page ----------------------------------------------------------------------------

PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>$title</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 0 1.5em 3em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #4c72b0; padding-bottom: 0.2em; margin-top: 2em; }
h3 small { color: #777; font-weight: normal; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.7em; }
th { background: #f3f5f9; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
.grid { display: flex; flex-wrap: wrap; gap: 0.5em 1em; align-items: flex-start; }
.grid img { max-width: 540px; }
.note { color: #555; font-style: italic; }
.meta { color: #666; }
</style>
</head>
<body>
<h1>$title</h1>
<p class="meta">$meta</p>
<nav>$nav</nav>
$overview
$sections
</body>
</html>
""")


def build_sections(reports: list[StageReport]) -> list[tuple[str, str, str]]:
    """(id, heading, body HTML) in page order."""
    tokenize = _first(reports, "tokenize")
    return [
        ("funnel", "Documents through the pipeline", funnel(reports)),
        ("reasons", "Skip and removal reasons", reasons(reports)),
        ("dedup", "Deduplication", _per_stage(reports, "dedup", dedup_section)),
        ("filter", "Filtering", _per_stage(reports, "filter", filter_section)),
        ("mix", "Domain mix: target vs achieved", _per_stage(reports, "remix", mix_section)),
        ("tokenizer", "Tokenizer", tokenizer_section(_first(reports, "tokenizer"), tokenize)),
        ("training", "Training", _per_stage(reports, "train", lambda r: train_section(r, tokenize))),
    ]


def render(run_dir: Path, reports: list[StageReport]) -> str:
    sections = build_sections(reports)
    return PAGE.substitute(
        title=esc(f"crawl2model run: {run_dir.name or run_dir}"),
        meta=esc(f"{run_dir.resolve()}: {len(reports)} stage outputs"),
        nav="".join(f'<a href="#{sid}">{esc(heading)}</a>' for sid, heading, _ in sections),
        overview=f'<section id="stages"><h2>Stage outputs</h2>{overview(reports)}</section>',
        sections="\n".join(f'<section id="{sid}"><h2>{esc(heading)}</h2>{body}</section>'
                           for sid, heading, body in sections),
    )


def write_report(run_dir: str, output: str | None = None) -> Path:
    """Write the run's HTML page (default RUN_DIR/report.html) and return its path.

    Written to a temporary name and renamed, so a reader never sees half a page."""
    root = Path(run_dir)
    page = render(root, find_reports(root))
    target = Path(output) if output else root / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, target)
    return target


def run(args: argparse.Namespace) -> int:
    path = write_report(args.run_dir, args.output)
    log.info(f"wrote {path} ({path.stat().st_size / 1e3:,.0f} kB)")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="one self-contained HTML page for a run's stage reports",
                              description="Write one self-contained HTML page (charts inline, no other files) "
                                          "from the stage reports under RUN_DIR: documents per stage and dump, "
                                          "removal reasons, dedup rate by dumps, filter pass rates and histograms, "
                                          "domain mix, tokenizer, training curves.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder whose subfolders hold the stages' report.json")
    p.add_argument("--output", metavar="PAGE.html", help="where to write the page (default RUN_DIR/report.html)")
    p.set_defaults(func=run)
