"""QoS reachability of the scenarios (the calibration table of the README).

    python benchmarks/bench_calibration.py [--seeds 20]

For each scenario variant and seed: the share of requested PBs whose requesters could all meet
QoS if every node held the PB and served it at full power (bounds.qos_reachability, an optimistic
bound), the share of users who could alone, and the share with zero worst-case rate.
Writes benchmarks/results/calibration.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ResultsFile, table  # noqa: E402

from fgamcd_opt.bounds import qos_reachability  # noqa: E402
from fgamcd_opt.generators import generate  # noqa: E402

VARIANTS = [
    ("paper-literal (Table II, random nodes)", "paper-literal", {}),
    ("Table II, grid nodes", "paper-literal", {"node_layout": "grid"}),
    ("random nodes, QoS 1-2 Gbps", "paper-literal", {"qos_gbps": (1.0, 2.0)}),
    ("paper-default (grid nodes, QoS 1-2 Gbps)", "paper-default", {}),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    args = ap.parse_args()
    res = ResultsFile("calibration.json", {"command": "python benchmarks/bench_calibration.py"})
    res.data["rows"] = []
    summary = []
    for label, scenario, over in VARIANTS:
        rs = [qos_reachability(generate(scenario, seed=s, **over)) for s in range(args.seeds)]
        row = {"variant": label,
               "blocks_reachable": float(np.mean([r["blocks_qos_reachable_share"] for r in rs])),
               "users_reachable": float(np.mean([r["users_qos_reachable_share"] for r in rs])),
               "zero_rate_users": float(np.mean([r["users_zero_rate_share"] for r in rs])),
               "instances_with_zero_rate_users": int(sum(r["users_zero_rate_share"] > 0
                                                         for r in rs)),
               "seeds": args.seeds}
        summary.append(row)
        res.add(row)
    print(table(summary, [("variant", "variant", "42s"), ("PBs reachable", "blocks_reachable",
                                                          ".1%"),
                          ("users reachable", "users_reachable", ".1%"),
                          ("zero-rate users", "zero_rate_users", ".2%"),
                          ("instances w/ zero-rate", "instances_with_zero_rate_users", "d")]))


if __name__ == "__main__":
    main()
