"""The trainer's greedy evaluation leaves out instances the coverage guard cannot cover, the
learning curve of a scenario mix stays readable, and ``--param episodes=E`` fine-tunes with
the policy card's recipe (docs/maasn.md sections 3 and 5). Tiny instances keep this fast."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from marl_helpers import SMALL, one_torch_thread  # noqa: E402,F401

from fgamcd_opt.generators import generate  # noqa: E402
from fgamcd_opt.marl.env import EnvConfig, FgamcdParallelEnv  # noqa: E402
from fgamcd_opt.marl.learner import LearnerConfig  # noqa: E402
from fgamcd_opt.marl.training import (  # noqa: E402
    CURVE_FIELDS,
    TrainConfig,
    Trainer,
    curve_groups,
    plot_curve,
    run_episode,
)
from fgamcd_opt.oracle import BeamformingOracle  # noqa: E402

ORACLE = BeamformingOracle()




def _idle(env):
    n = len(env.possible_agents)
    return lambda obs, mask: np.zeros((n, n))


@pytest.mark.parametrize("mode", ["reserve", "reserve-local", "additive"])
def test_guard_covers_says_whether_one_copy_of_every_requested_pb_fits(mode):
    for storage_gb, covers in ((0.01, False), (0.04, True)):
        inst = generate("tiny", seed=1, storage_gb=storage_gb, n_users=8)
        env = FgamcdParallelEnv(EnvConfig(instance=inst, max_users_per_node=6, guard=True,
                                          guard_mode=mode), oracle=ORACLE)
        run_episode(env, _idle(env), seed=0)
        assert env.guard_covers is covers
        # an instance the guard cannot cover leaves requested PBs undelivered whatever the
        # policy does; one it covers, none with the policy that asks for nothing
        assert bool(env.undelivered) is not covers
    plain = FgamcdParallelEnv(EnvConfig(instance=inst, max_users_per_node=6), oracle=ORACLE)
    plain.reset(seed=0)
    assert plain.guard_covers is False


def test_greedy_eval_leaves_out_instances_the_guard_cannot_cover(tmp_path, monkeypatch):
    env_cfg = EnvConfig(scenario="tiny", pool=2, max_users_per_node=6, guard=True,
                        guard_mode="reserve-local", policy_migrations=False)
    cfg = TrainConfig(episodes=1, seed=0, batch=16, buffer=500, updates_per_episode=1,
                      reservoir=16, eval_every=0, eval_instances=2)
    tr = Trainer(env_cfg, LearnerConfig(**SMALL), cfg, tmp_path, oracle=ORACLE)
    per = []
    for s in (env_cfg.pool_seed0, env_cfg.pool_seed0 + 1):
        run_episode(tr.env, tr._act_fn(False), seed=0, options={"instance_seed": s})
        per.append(tr.env.total_delay_s)
    both = tr.greedy_eval()
    assert both["eval_skipped"] == 0
    assert both["eval_delay_s"] == pytest.approx(np.mean(per))
    answers = iter([False, True])  # the first instance uncovered, the second covered
    monkeypatch.setattr(FgamcdParallelEnv, "guard_covers", property(lambda self: next(answers)))
    one = tr.greedy_eval()
    assert one["eval_skipped"] == 1 and one["eval_delay_s"] == pytest.approx(per[1])
    monkeypatch.setattr(FgamcdParallelEnv, "guard_covers", property(lambda self: False))
    none = tr.greedy_eval()  # every instance uncovered: all are used
    assert none["eval_skipped"] == 0 and none["eval_delay_s"] == pytest.approx(np.mean(per))


def test_curve_rows_carry_the_reward_beyond_the_idle_policy(tmp_path):
    env_cfg = EnvConfig(scenario="tiny", pool=2, max_users_per_node=6, guard=True,
                        guard_mode="reserve", policy_migrations=False,
                        overrides={"storage_gb": 0.04})
    cfg = TrainConfig(episodes=2, seed=0, batch=16, buffer=500, updates_per_episode=1,
                      reservoir=16, eval_every=0, reward_reference="idle")
    tr = Trainer(env_cfg, LearnerConfig(**SMALL), cfg, tmp_path, oracle=ORACLE)
    rows = tr.train(progress=False).rows
    refs = [float(r.sum()) for r in tr._reference.values()]
    for row in rows:
        assert row["reward_vs_idle"] is not None
        assert any(row["reward"] - r == pytest.approx(row["reward_vs_idle"]) for r in refs)
    with open(tmp_path / "curve.csv") as f:
        written = list(csv.DictReader(f))
    assert list(written[0]) == list(CURVE_FIELDS) and written[0]["reward_vs_idle"] != ""
    # without the reference the column stays empty
    plain = Trainer(env_cfg, LearnerConfig(**SMALL), TrainConfig(
        episodes=1, seed=0, batch=16, buffer=500, updates_per_episode=1, reservoir=16,
        eval_every=0), tmp_path / "plain", oracle=ORACLE)
    assert plain.train(progress=False).rows[0].get("reward_vs_idle") is None


def _curve_csv(path, storages, instances):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CURVE_FIELDS)
        w.writeheader()
        for e, (st, inst) in enumerate(zip(storages, instances, strict=True)):
            w.writerow({"episode": e + 1, "instance": inst, "storage_gb": st, "reward": -1.0,
                        "delay_s": 1.0, "qos_violations": 0, "undelivered_pbs": 0,
                        "reward_vs_idle": 0.01 * e})


def test_curve_of_a_mix_is_one_running_mean_and_of_fixed_storages_one_per_storage(tmp_path):
    rng = np.random.default_rng(0)
    mix = tmp_path / "mix.csv"
    _curve_csv(mix, rng.uniform(0.25, 2.0, 60).tolist(), [f"i{e}" for e in range(60)])
    rows = list(csv.DictReader(open(mix)))
    groups, mixed = curve_groups(rows)
    assert mixed and groups == [None]
    plot_curve(mix, tmp_path / "mix.png", "mix")
    assert (tmp_path / "mix.png").stat().st_size > 10_000
    fixed = tmp_path / "fixed.csv"
    _curve_csv(fixed, [0.25, 0.5, 1.25] * 20, [f"p{e % 4}" for e in range(60)])
    groups, mixed = curve_groups(list(csv.DictReader(open(fixed))))
    assert not mixed and groups == [0.25, 0.5, 1.25]


def test_fine_tuning_takes_the_cards_recipe_with_a_schedule_for_a_trained_actor():
    from fgamcd_solvers.maasn import fine_tune_config

    from fgamcd_opt.marl.policy import shipped_policy_path

    card = json.loads(shipped_policy_path("generalist").with_suffix(".json").read_text())
    tr = card["training"]
    cfg = fine_tune_config({**tr, "a_key_of_a_later_version": 1}, episodes=30, seed=7,
                           workers=2)
    assert (cfg.episodes, cfg.seed, cfg.eval_every, cfg.delivery_workers) == (30, 7, 0, 2)
    # the recipe: reward reference, augmentation, replay and updates as trained
    assert cfg.reward_reference == tr["reward_reference"] == "idle"
    assert cfg.augmentation is tr["augmentation"] is False
    assert (cfg.batch, cfg.buffer, cfg.updates_per_episode, cfg.n_step) == (
        tr["batch"], tr["buffer"], tr["updates_per_episode"], tr["n_step"])
    # not how the policy was made: no teacher, no fresh start, a schedule of its own
    assert cfg.teacher == "" and cfg.init_policy == ""
    assert cfg.actor_delay == 10 and cfg.explore_decay == 30
    assert cfg.explore_noise_final == tr["explore_noise_final"]
    assert cfg.explore_noise0 == pytest.approx(min(1.0, 3 * tr["explore_noise_final"]))
