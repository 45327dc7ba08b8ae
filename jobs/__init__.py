"""Thin entry points: one per stage, each runnable as `crawl2model <stage>` and `spark-submit jobs/<stage>.py`."""
