"""The conformance check runs over every registered solver (built-ins, entry points) and the
example plugin, so a new solver is checked without editing a list."""

from __future__ import annotations

from pathlib import Path

import pytest

from fgamcd_opt import registry
from fgamcd_opt.testing import assert_conforms

ROOT = Path(__file__).resolve().parents[1]


# qmix's shipped policy is for N = 6 and the fixtures have N = 2-3; maasn's default (the
# generalist) would serve them, but with its planner workers the check is slow: both
# conformance checks run in tests/test_maasn.py and tests/test_qmix.py with small policies
# trained for the fixture size.
OWN_CHECK = {"maasn", "qmix"}


@pytest.mark.parametrize("name", sorted(set(registry.available()) - OWN_CHECK))
def test_registered_solver_conforms(name):
    assert_conforms(registry.get_solver(name))


def test_solvers_with_their_own_check_are_registered():
    assert OWN_CHECK <= set(registry.available())


def test_example_plugin_conforms():
    assert_conforms(registry.load_from_file(f"{ROOT / 'examples' / 'nearest_solver.py'}"
                                            ":NearestSolver"))
