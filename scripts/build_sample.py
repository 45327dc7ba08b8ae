"""Rebuild the bundled sample crawl (jobs/sample/); the builder is crawl2model.corpora.sample."""
import sys

from crawl2model.corpora.sample import main

sys.exit(main())
