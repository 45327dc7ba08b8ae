"""The incremental dedup index: signatures of every document kept so far.

Deduplicating a new dump against it computes only the new dump's signatures
and never rewrites older outputs: old documents keep their node numbers
(ranked by dump, so they are always "earliest"), new ones are numbered after
them, and only new documents can be removed. The index folder is replaced
atomically after each run: `entries/` (node, doc_id, dump, dump_idx, n_chars,
exact, sig, bands) and `index.json` (dumps, next node, MinHash parameters).
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from crawl2model.core.errors import ConfigError
from crawl2model.core.fs import exists, filesystem, read_json, write_json
from crawl2model.core.outputs import StageOutput

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ENTRIES_DDL = ("node long, doc_id string, dump string, dump_idx int, n_chars long, "
               "exact string, sig binary, bands array<long>")


@dataclass
class DedupIndex:
    spark: "SparkSession"
    path: str
    params: dict
    meta: dict = field(default_factory=dict)

    @classmethod
    def open(cls, spark: "SparkSession", cfg, bands: int, rows: int) -> "DedupIndex":
        if cfg.url_dedup:
            raise ConfigError("dedup: --url-dedup is not supported with --index")
        params = {"num_perm": cfg.num_perm, "ngram": cfg.ngram, "seed": cfg.seed, "scheme": cfg.scheme,
                  "bands": bands, "rows": rows, "threshold": cfg.threshold, "max_shingles": cfg.max_shingles}
        fs, p = filesystem(cfg.index)
        meta = {"dumps": [], "next_node": 0, "params": params}
        if exists(fs, posixpath.join(p, "index.json")):
            meta = read_json(posixpath.join(cfg.index, "index.json"))
            if meta["params"] != params:
                raise ConfigError(f"dedup: index {cfg.index} was built with {meta['params']}, "
                                  f"this run uses {params}; signatures would not be comparable")
        return cls(spark, cfg.index, params, meta)

    @property
    def dumps(self) -> list[str]:
        return list(self.meta["dumps"])

    @property
    def next_node(self) -> int:
        return int(self.meta["next_node"])

    def check_newer(self, new_dumps: list[str]) -> None:
        """New dumps must sort after indexed ones, so that old copies stay the earliest."""
        if self.dumps and new_dumps and min(new_dumps) <= max(self.dumps):
            raise ConfigError(f"dedup: dump {min(new_dumps)} is not newer than the indexed dumps "
                              f"(latest {max(self.dumps)}); incremental mode only appends later dumps")

    def entries(self) -> "DataFrame":
        if not self.dumps:
            return self.spark.createDataFrame([], ENTRIES_DDL)
        return self.spark.read.parquet(posixpath.join(self.path, "entries"))

    def signatures(self) -> "DataFrame":
        return self.entries().select("node", "exact", "sig", "bands", "dump_idx")

    def attributes(self) -> "DataFrame":
        return self.entries().select("node", "doc_id", "dump", "dump_idx", "n_chars")

    def append(self, new_entries: "DataFrame", dumps: list[str], next_node: int) -> dict:
        """Write old + new entries as the next version of the index; returns a summary."""
        from crawl2model.pipeline.parquet_out import write_parquet

        out = StageOutput(self.path, overwrite=True)
        out.claim()
        columns = [c.split()[0] for c in ENTRIES_DDL.split(", ")]
        entries = self.entries().select(*columns).unionByName(new_entries.select(*columns))
        n = sum(rows for _, rows in write_parquet(entries, f"{out.tmp_uri}/entries", sort_by=["node"],
                                                  num_files=4))
        self.meta = {"dumps": dumps, "next_node": next_node, "params": self.params, "entries": n}
        write_json(out.fs, out.path("index.json"), self.meta)
        out.commit("dedup-index")
        return {"path": self.path, "dumps": dumps, "entries": n}
