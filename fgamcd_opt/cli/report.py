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
    ap.add_argument("--compare", metavar="OTHER",
                    help="instead: check that OTHER (a store of the same spec, e.g. from another "
                    "executor or other code) has the same rows, timings and code identity "
                    "aside; exit 1 if not")
    ap.add_argument("--rtol", type=float, default=1e-9,
                    help="with --compare: numbers are equal when |a - b| <= RTOL max(|a|, |b|) "
                    "(default 1e-9; 0 for exact)")
    ap.add_argument("--debug", action="store_true")
    args = ap.parse_args(argv)
    try:
        if args.compare:
            from ..experiments.sweep import compare_stores

            if not args.rtol >= 0:
                raise FgamcdError("fgamcd-report: --rtol must be >= 0")
            res = compare_stores(args.store, args.compare, args.rtol)
            same = res["same_spec"] and not res["differing"] and \
                res["cells_a"] == res["cells_b"] == res["common"]
            print(f"{args.store} vs {args.compare}: {res['common']} common cells "
                  f"({res['cells_a']} and {res['cells_b']}), {len(res['differing'])} differ"
                  + ("" if res["same_spec"] else "; DIFFERENT specs"))
            for cell, fields in list(res["differing"].items())[:10]:
                print(f"  cell {cell}: {', '.join(fields)}")
            print(f"same rows (timings aside, numbers within rtol {args.rtol:g})" if same
                  else f"rows differ (numbers compared with rtol {args.rtol:g})")
            return 0 if same else 1
        from ..experiments.reporting import build_report

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
