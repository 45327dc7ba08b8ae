"""Domain labels for documents: URL/host rules first, a fastText topic classifier for the rest.

A rule table is a TOML file (the default is `infra/remix/domains.toml`):

    [suffix]                      # host suffix -> domain; the longest match wins
    "wikipedia.org" = "encyclopedia"
    "gov" = "government"          # any host ending in .gov

    [[regex]]                     # URL regex -> domain; tried first, in table order
    pattern = '^https?://(forums?|bbs)\\.'
    domain = "forum"

A URL pattern says more than a host, so regex rules win over suffixes; among
suffixes the longest one is the most specific ("ncbi.nlm.nih.gov" before
"gov"), which a dictionary lookup per host label finds without scanning the
table. Documents that no rule matches go to the classifier when one is given
(a `filters.models.Labeller`, such as the fastText topic model `jobs/remix.py`
builds), otherwise to `other`. Each label records its source, so the report
can say how much of a domain rests on rules and how much on a model.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

from crawl2model.core.config import load_toml
from crawl2model.core.errors import ConfigError
from crawl2model.core.resources import resource
from crawl2model.pipeline.filters.models import Labeller

DEFAULT_RULES = str(resource("crawl2model.infra", "remix", "domains.toml"))
OTHER = "other"


@dataclass(frozen=True)
class DomainRules:
    suffixes: dict[str, str]
    regexes: tuple[tuple[re.Pattern, str], ...] = ()

    @classmethod
    def load(cls, path: str) -> "DomainRules":
        table = load_toml(path)
        unknown = set(table) - {"suffix", "regex"}
        if unknown:
            raise ConfigError(f"{path}: unknown table(s) {', '.join(sorted(unknown))} (known: suffix, regex)")
        suffixes = table.get("suffix", {})
        if not isinstance(suffixes, dict) or not all(isinstance(v, str) for v in suffixes.values()):
            raise ConfigError(f"{path}: [suffix] must map host suffixes to domain names")
        regexes = []
        for i, rule in enumerate(table.get("regex", [])):
            if not isinstance(rule, dict) or set(rule) != {"pattern", "domain"}:
                raise ConfigError(f"{path}: [[regex]] #{i + 1} needs exactly 'pattern' and 'domain'")
            try:
                regexes.append((re.compile(rule["pattern"]), rule["domain"]))
            except re.error as e:
                raise ConfigError(f"{path}: [[regex]] #{i + 1}: bad pattern {rule['pattern']!r}: {e}") from None
        return cls({k.lower().strip("."): v for k, v in suffixes.items()}, tuple(regexes))

    @property
    def domains(self) -> set[str]:
        return set(self.suffixes.values()) | {d for _, d in self.regexes}

    def match(self, url: str | None, host: str | None) -> str | None:
        """The rule domain of a URL, or None when no rule applies."""
        if url:
            for pattern, domain in self.regexes:
                if pattern.search(url):
                    return domain
        if host:
            labels = host.lower().rstrip(".").split(".")
            for i in range(len(labels)):
                domain = self.suffixes.get(".".join(labels[i:]))
                if domain is not None:
                    return domain
        return None


def label_batch(batch: pa.RecordBatch, rules: DomainRules, classifier: Labeller | None = None,
                min_probability: float = 0.0, given: str | None = None) -> tuple[pa.Array, pa.Array]:
    """(domain, domain_source) arrays for a batch of documents.

    `given` names a column that already holds labels (kept where not null);
    classifier predictions below `min_probability` fall back to `other`.
    """
    from crawl2model.pipeline.schema import host_of

    names = batch.schema.names
    n = batch.num_rows
    urls = batch.column("url").to_pylist() if "url" in names else [None] * n
    hosts = batch.column("host").to_pylist() if "host" in names else [host_of(u) for u in urls]
    labels = batch.column(given).to_pylist() if given else [None] * n
    domains: list[str | None] = [None] * n
    sources: list[str | None] = [None] * n
    unmatched = []
    for i in range(n):
        if labels[i]:
            domains[i], sources[i] = labels[i], "input"
        elif (d := rules.match(urls[i], hosts[i] or host_of(urls[i]))) is not None:
            domains[i], sources[i] = d, "rule"
        else:
            unmatched.append(i)
    if unmatched and classifier is not None:
        texts = batch.column("text").take(pa.array(unmatched, pa.int64())).to_pylist()
        predicted, probs = classifier([t or "" for t in texts])
        for i, label, p in zip(unmatched, predicted, probs):
            if label and p >= min_probability:
                domains[i], sources[i] = label, "classifier"
    for i in unmatched:
        if domains[i] is None:
            domains[i], sources[i] = OTHER, "default"
    return pa.array(domains, pa.string()), pa.array(sources, pa.string())
