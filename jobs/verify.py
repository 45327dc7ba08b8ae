"""`crawl2model verify OUTPUT...`: are a stage output's bytes the ones its run committed?

Reads every file `_SUCCESS` lists and compares size and sha256, so a copy to
another bucket, a restore from backup or a suspect disk can be checked before
the next stage reads it. Exit code 0 when all match, 2 naming the first
differences otherwise.
"""
from __future__ import annotations

import argparse
import sys

from crawl2model.core.errors import InputError
from crawl2model.core.log import get_logger
from crawl2model.core.outputs import verify

SHOWN = 10  # differences named on stderr before "... and N more"


def register(subparsers) -> None:
    p = subparsers.add_parser("verify", help="check a stage output's files against the sizes and sha256 in _SUCCESS",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("outputs", nargs="+", metavar="OUTPUT", help="stage output folders (local or URI)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    log = get_logger("verify")
    bad = []
    for output in args.outputs:
        checked, problems = verify(output)
        if problems:
            bad.append(output)
            for line in problems[:SHOWN]:
                print(f"{output}: {line}", file=sys.stderr)
            if len(problems) > SHOWN:
                print(f"{output}: ... and {len(problems) - SHOWN} more", file=sys.stderr)
        else:
            log.info("%s: %d files match _SUCCESS", output, checked)
    if bad:
        raise InputError(f"{len(bad)} of {len(args.outputs)} outputs differ from their _SUCCESS: {', '.join(bad)}")
    return 0
