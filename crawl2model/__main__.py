"""`python -m crawl2model ...` is the `crawl2model` command (what the launchers start)."""
import sys

from crawl2model.jobs.cli import main

sys.exit(main())
