"""Linguistic and semantic filtering: every signal computed once and stored as a column.

`langid`, `heuristics`, `quality` and `perplexity` turn Arrow batches of
documents into signal columns; `rules` decides from those columns alone, so a
new rule set is applied to stored signals without recomputing them;
`filter_stage` is the Spark body of `crawl2model filter`.
"""
