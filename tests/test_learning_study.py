"""The augmentation ablations (RNN, cGAN: fgamcd_opt/marl/augment.py), their CLI, checkpoints
and resume, and the learning-study pipeline (spec kind ``learning``: train, held-out
evaluation, report; fgamcd_opt/experiments/learning.py) on tiny instances."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from marl_helpers import one_torch_thread  # noqa: E402,F401 (autouse fixture)

from fgamcd_opt.marl.augment import CganAugmenter, RnnAugmenter  # noqa: E402
from fgamcd_opt.marl.env import EnvConfig  # noqa: E402
from fgamcd_opt.marl.learner import LearnerConfig  # noqa: E402
from fgamcd_opt.marl.training import TrainConfig, Trainer, _np_tensors, _tensors_np  # noqa: E402
from fgamcd_opt.oracle import BeamformingOracle  # noqa: E402

ORACLE = BeamformingOracle()
SMALL = dict(actor_hidden=(32, 16), critic_hidden=(32, 32), flat_actor_hidden=(32, 32),
             mixer_embed=8, mixer_hyper=16)
TIMING = ("env_s", "oracle_s", "act_s", "esn_s", "update_s", "wall_s")




def _episode(rng, t=40, d_in=6, d_out=4):
    """A sequence whose targets follow from the inputs (a learnable map) plus small noise."""
    v = rng.uniform(0, 1, (t, d_in))
    w = np.linspace(-1, 1, d_in * d_out).reshape(d_in, d_out)
    return v, v @ w + 0.01 * rng.standard_normal((t, d_out))


@pytest.mark.parametrize("cls", [RnnAugmenter, CganAugmenter], ids=["rnn", "cgan"])
def test_trained_augmenters_filter_out_of_sample_and_learn(cls):
    rng = np.random.default_rng(0)
    kw = dict(hidden=32, history=3, seed=0)
    aug = cls(6, 4, epochs=40, **kw)
    v, y = _episode(rng)
    keep, pred, stats = aug.augment(v, y, tau=40, xi=1e9, rng=rng)
    assert len(keep) == 0 and stats["synthetic_kept"] == 0  # no predictor before episode 1
    errs = []
    for _ in range(6):
        v, y = _episode(rng)
        before = aug.errors(aug.predict(v), y) if cls is RnnAugmenter else None
        keep, pred, stats = aug.augment(v, y, tau=10, xi=1e9, rng=rng)
        assert len(keep) == 10 == stats["synthetic_kept"]  # at most tau, all within xi
        errs.append(stats["esn_error_mean"])
        if before is not None:  # the filter judges the prediction made before this episode
            assert stats["esn_error_mean"] == pytest.approx(float(before.mean()), rel=1e-5)
        assert pred.shape == (10, 4)
    if cls is RnnAugmenter:  # every weight trained: the out-of-sample error falls
        assert errs[-1] < 0.5 * errs[0]
    keep, _, stats = aug.augment(*_episode(rng), tau=40, xi=0.0, rng=rng)
    assert len(keep) == 0 and stats["synthetic_candidates"] == 0


@pytest.mark.parametrize("cls", [RnnAugmenter, CganAugmenter], ids=["rnn", "cgan"])
def test_trained_augmenter_checkpoint_round_trip_continues_identically(cls):
    rng = np.random.default_rng(1)
    episodes = [_episode(rng) for _ in range(4)]
    a = cls(6, 4, hidden=16, epochs=3, history=2, seed=3)
    for v, y in episodes[:2]:
        a.augment(v, y, 5, 1e9, np.random.default_rng(0))
    # through the trainer's checkpoint conversion (numpy <-> torch) and torch.save/load
    state = _tensors_np(_np_tensors(a.state_dict()))
    b = cls(6, 4, hidden=16, epochs=3, history=2, seed=99)  # other initial weights
    b.load_state_dict(state)
    for v, y in episodes[2:]:
        ka, pa, _ = a.augment(v, y, 5, 1e9, np.random.default_rng(5))
        kb, pb, _ = b.augment(v, y, 5, 1e9, np.random.default_rng(5))
        assert np.array_equal(ka, kb) and np.allclose(pa, pb, rtol=0, atol=1e-6)


def _trainer(tmp, episodes, augmenter):
    env = EnvConfig(scenario="tiny", pool=2, max_users_per_node=6)
    cfg = TrainConfig(episodes=episodes, seed=0, batch=32, buffer=2000, updates_per_episode=2,
                      checkpoint_every=1, eval_every=0, augmenter=augmenter, aug_hidden=16,
                      aug_epochs=2)
    return Trainer(env, LearnerConfig(**SMALL), cfg, tmp, oracle=ORACLE)


@pytest.mark.parametrize("augmenter", ["rnn", "cgan"])
def test_training_with_a_trained_augmenter_resumes_to_the_same_curve(tmp_path, augmenter):
    def strip(rows):
        return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]

    full = _trainer(None, 3, augmenter).train(progress=False).rows
    assert any(r["synthetic_kept"] > 0 for r in full)  # the augmenter is used
    first = _trainer(tmp_path, 3, augmenter)
    first.cfg.episodes = 2
    first.train(progress=False)
    resumed = _trainer(tmp_path, 3, augmenter)
    assert resumed.load_checkpoint() and resumed.episode == 2
    assert strip(resumed.train(progress=False).rows) == strip(full)
    card = json.loads((tmp_path / "policy.json").read_text())
    assert card["training"]["augmenter"] == augmenter and card["training"]["augmentation"]


def test_fgamcd_train_augmentation_flag_card_and_resume_refusal(tmp_path, capsys):
    from fgamcd_opt.cli.train import main

    out = tmp_path / "run"
    base = ["tiny", "-o", str(out), "--episodes", "1", "--reservoir", "16", "--batch", "16",
            "--updates-per-episode", "1", "--max-users-per-node", "6", "--quiet", "--pool", "2",
            "--aug-hidden", "8", "--aug-epochs", "1"]
    assert main(base + ["--augmentation", "cgan"]) == 0
    card = json.loads((out / "policy.json").read_text())
    assert card["training"]["augmenter"] == "cgan" and card["training"]["augmentation"] is True
    capsys.readouterr()
    # resume refuses another augmenter, naming the setting
    assert main(base + ["--augmentation", "rnn", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "train.augmenter: 'cgan' -> 'rnn'" in err
    # --no-augmentation is --augmentation none; contradicting flags are refused
    assert main(base + ["--no-augmentation", "--augmentation", "rnn"]) == 2
    for flags, name in ((["--no-augmentation"], "a"), (["--augmentation", "none"], "b")):
        args = [*base[:2], str(tmp_path / name), *base[3:], *flags]
        assert main(args) == 0
        card = json.loads((tmp_path / name / "policy.json").read_text())
        assert card["training"]["augmentation"] is False
    # a checkpoint written before the augmenter settings existed resumes (they are at default)
    from fgamcd_opt.marl.training import _TRAIN_DEFAULTS

    tr = _trainer(None, 1, "esn")
    stored = tr.config_dict()
    for key in ("augmenter", "aug_hidden", "aug_epochs", "aug_history", "aug_lr"):
        stored["train"].pop(key)
    tr.cfg.aug_hidden, tr.cfg.aug_epochs = _TRAIN_DEFAULTS["aug_hidden"], \
        _TRAIN_DEFAULTS["aug_epochs"]
    assert tr.config_differences(stored) == []
    tr.cfg.augmenter = "rnn"
    assert tr.config_differences(stored) == ["train.augmenter: '<absent>' -> 'rnn'"]


SPEC = """name = "tinylearn"
kind = "learning"
title = "tiny learning study"
scenario = "tiny"

[options]
train_args = ["--pool", "2", "--delivery-effort", "quick", "--eval-every", "0",
              "--updates-per-episode", "1", "--batch", "16", "--reservoir", "16",
              "--max-users-per-node", "6", "--checkpoint-every", "1"]
heldout_seeds = [0]
smooth = 2

[[options.storages]]
gb = 0.2
figure = "7b"
episodes = 2
seeds = [0]

[[options.variants]]
name = "maasn"
label = "MAASN-DA"
reference = true

[[options.variants]]
name = "noaug"
label = "w/o augmentation"
args = ["--augmentation", "none"]

[[options.orderings]]
better = "maasn"
worse = "noaug"
"""


def test_learning_study_trains_evaluates_reports_and_resumes(tmp_path, capsys):
    from fgamcd_opt.cli.bench import main

    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    assert main([str(spec), "-o", str(out), "--inline", "--no-progress"]) == 0
    for name in ("index.md", "index.html", "curves.csv", "final.csv", "figures/fig07b.png"):
        assert (out / name).is_file(), name
    with open(out / "final.csv") as fh:
        final = list(csv.DictReader(fh))
    assert [r["variant"] for r in final] == ["maasn", "noaug"]
    for r in final:  # the held-out evaluation scored a plan per held-out seed
        assert r["heldout_plans"] == "1" and float(r["heldout_delay_s_mean"]) > 0
    with open(out / "curves.csv") as fh:
        curves = list(csv.DictReader(fh))
    assert len(curves) == 4 and {r["seeds"] for r in curves} == {"1"}
    run = out / "runs" / "0.2gb" / "noaug" / "seed0"
    card = json.loads((run / "policy.json").read_text())
    assert card["training"]["augmentation"] is False and card["training"]["seed"] == 0
    assert card["environment"]["storage_gb_choices"] == [0.2]
    held = json.loads((run / "heldout.json").read_text())
    assert held["seeds"] == [0] and held["rows"][0]["complete"] in (True, False)
    md = (out / "index.md").read_text()
    assert "w/o augmentation" in md and "s per episode" in md and "inline" in md
    # a rerun trains nothing; a longer run resumes the finished ones from their checkpoints
    assert main([str(spec), "-o", str(out), "--inline", "--no-progress"]) == 0
    log = [json.loads(x) for x in (out / "study-log.jsonl").read_text().splitlines()]
    assert log[-1]["counts"]["skipped"] == 2 and log[-1]["counts"]["done"] == 0
    spec.write_text(SPEC.replace("episodes = 2", "episodes = 3"))
    assert main([str(spec), "-o", str(out), "--inline", "--no-progress"]) == 0
    rec = [json.loads(x) for x in (run / "runs.jsonl").read_text().splitlines()]
    assert [r["resumed"] for r in rec] == [False, True]
    with open(run / "curve.csv") as fh:
        assert [int(r["episode"]) for r in csv.DictReader(fh)] == [1, 2, 3]


@pytest.mark.parametrize("body,key", [
    ('[[options.variants]]\nname = "a b"\n', "options.variants[0].name"),
    ('[[options.storages]]\ngb = 0.2\nepisodes = 0\nseeds = [0]\n', "options.storages[0].episodes"),
    ('heldout_seeds = [1000]\n', "options.heldout_seeds"),
    ('train_args = ["--seed", "3"]\n', "options.train_args"),
])
def test_bad_learning_specs_name_the_key(tmp_path, capsys, body, key):
    from fgamcd_opt.cli.bench import main

    good_st = '[[options.storages]]\ngb = 0.2\nepisodes = 1\nseeds = [0]\n'
    good_v = '[[options.variants]]\nname = "m"\n'
    text = 'name = "x"\nkind = "learning"\nscenario = "tiny"\n[options]\n'
    if body.startswith("[[options.variants"):
        text += good_st + body
    elif body.startswith("[[options.storages"):
        text += good_v + body
    else:
        text += body + good_st + good_v
    spec = tmp_path / "bad.toml"
    spec.write_text(text)
    assert main([str(spec), "-o", str(tmp_path / "o"), "--inline"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and key in err and "bad.toml" in err
