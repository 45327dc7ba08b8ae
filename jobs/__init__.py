"""Thin entry points: one per stage, each runnable as `crawl2model <stage>` and `spark-submit jobs/<stage>.py`.

Run as a script (spark-submit), a stage file's folder comes first on sys.path,
and jobs/tokenize.py would shadow the standard library's tokenize (imported
later by inspect, linecache, ...). Importing this package, which every stage
file does before anything that needs tokenize, drops that folder again.
"""
import os as _os
import sys as _sys

_HERE = _os.path.dirname(_os.path.abspath(__file__))
_sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or ".") != _HERE]
