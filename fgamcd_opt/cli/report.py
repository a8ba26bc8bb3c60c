"""``fgamcd-report STORE [-o DIR]``: figures (PNG, PDF, CSV), tables, index.md and a
self-contained index.html from a sweep's results store (a directory or its store.jsonl)."""

from __future__ import annotations

import argparse
import sys

from ..errors import FgamcdError


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="fgamcd-report", description="render a sweep's report")
    ap.add_argument("store", help="results directory (with store.jsonl) or the store file")
    ap.add_argument("-o", "--output", help="report directory (default: the store's directory)")
    ap.add_argument("--title", help="page title (default: the spec's)")
    ap.add_argument("--debug", action="store_true")
    args = ap.parse_args(argv)
    try:
        from ..experiments.report import build_report

        index = build_report(args.store, args.output, args.title)
    except FgamcdError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"wrote {index} and {index.with_suffix('.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
