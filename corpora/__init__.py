"""Corpus builders: real text from Debian packages, made into the bundled sample crawl, the
shipped quality models and their fixtures, the benchmark corpora and the sample's token shards.

They build inputs for the project rather than run in it, so they may import any library
package (pipeline, quality_models, tokenizer); nothing but jobs, tests and benches imports them.
"""
