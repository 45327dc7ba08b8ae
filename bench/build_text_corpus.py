"""Build the text corpus bench/tokenizer.py trains on; the builder is crawl2model.corpora.bench_text."""
import sys

from crawl2model.corpora.bench_text import main

sys.exit(main())
