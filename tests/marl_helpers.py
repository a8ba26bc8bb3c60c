"""Helpers shared by the learner tests (test_maasn.py, test_learner_fixes.py, test_qmix.py)."""

from __future__ import annotations

import pytest

# Appendix C's sizes are the defaults; tests use small networks to stay fast
SMALL = dict(actor_hidden=(32, 16), critic_hidden=(32, 32), flat_actor_hidden=(32, 32),
             mixer_embed=8, mixer_hyper=16)


def resumed_rows(make_trainer, tmp_path, episodes: int = 4, cut: int = 2) -> list[dict]:
    """The curve rows of a run killed after its checkpoint at episode ``cut`` and resumed to
    ``episodes`` (``make_trainer(tmp_path, episodes=...)`` builds the trainer)."""
    first = make_trainer(tmp_path, episodes=episodes)
    first.cfg.episodes = cut
    first.train(progress=False)
    resumed = make_trainer(tmp_path, episodes=episodes)
    assert resumed.load_checkpoint() and resumed.episode == cut
    return resumed.train(progress=False).rows


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Import it into a test module (an autouse fixture): tiny networks run faster on one
    thread, and far faster on a shared, loaded machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
