"""Build the WARC corpus bench/ingest.py and bench/dedup.py time; the builder is crawl2model.corpora.bench_crawl."""
import sys

from crawl2model.corpora.bench_crawl import main

sys.exit(main())
