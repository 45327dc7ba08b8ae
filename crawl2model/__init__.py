"""crawl2model: from raw Common Crawl to a pretrained language model (DeepSeek LLM recipe).

The repository's top-level folders are this package's subpackages:
`crawl2model.core`, `.pipeline`, `.quality_models`, `.tokenizer`, `.scaling`,
`.train`, `.jobs` and `.infra` (data files only).
"""
__version__ = "0.2.0"
