"""Policy files: a torch state dict of the actors (``<name>.pt``) plus a JSON card
(``<name>.json``) with everything needed to rebuild and judge it: scenario, N, the observation
layout and padding P, network sizes, environment settings, training command, episodes, seed,
package versions and the final learning-curve numbers (docs/maasn.md).

Loading uses ``torch.load(weights_only=True)``; a policy that does not fit an instance (another
N, more users at a node than its padding) is refused with an error naming both.
"""

from __future__ import annotations

import json
import os
import tempfile
from importlib import resources
from pathlib import Path

from ..errors import ParameterError

SHIPPED = "paper-default"
CARD_VERSION = 1


def shipped_policy_path(name: str = SHIPPED) -> Path:
    return Path(str(resources.files("fgamcd_opt.data").joinpath("policies", f"{name}.pt")))


def card_path(pt_path: str | os.PathLike) -> Path:
    return Path(pt_path).with_suffix(".json")


def _atomic_write_bytes(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_policy(path: str | os.PathLike, actor_state: dict, card: dict) -> Path:
    import torch

    path = Path(path)
    _atomic_write_bytes(path, lambda tmp: torch.save(actor_state, tmp))
    card = {"card_version": CARD_VERSION, **card}
    text = json.dumps(card, indent=1, sort_keys=False, default=str)

    def write_card(tmp):
        Path(tmp).write_text(text + "\n")

    _atomic_write_bytes(card_path(path), write_card)
    return path


class Policy:
    """A trained MAASN-DA actor, ready to act (deterministic: b = 1 where its logit > 0)."""

    def __init__(self, actor, card: dict, path: Path | None = None):
        self.actor = actor
        self.card = card
        self.path = path
        self.n_nodes = int(card["n_nodes"])
        self.padding = int(card["max_users_per_node"])
        envc = card.get("environment", {})
        # the D(k) observation entry (docs/maasn.md section 1); cards before it lack the key
        self.observe_demand = bool(envc.get("observe_demand", False))
        self.layout = _layout(card)
        self.algo = str(card.get("learner", {}).get("algo", "maasn"))
        self._qmix = None
        if self.algo == "qmix":
            from .qmix import QmixPolicy

            self._qmix = QmixPolicy(actor)

    def begin_episode(self) -> None:
        """A recurrent policy (QMIX-DA) starts an episode from a fresh state."""
        if self._qmix is not None:
            self._qmix.begin_episode()

    @property
    def architecture(self) -> str:
        return str(self.card.get("learner", {}).get("architecture", "paper"))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Policy:
        import torch

        from .env import block_dim
        from .learner import LearnerConfig, build_actor

        path = Path(path)
        cpath = card_path(path)
        if not path.is_file():
            raise ParameterError(f"{path}: policy file not found")
        if not cpath.is_file():
            raise ParameterError(f"{cpath}: the policy's JSON card is missing")
        try:
            card = json.loads(cpath.read_text())
            lc = LearnerConfig(**{k: tuple(v) if isinstance(v, list) else v
                                  for k, v in card["learner"].items()})
            n, pad = int(card["n_nodes"]), int(card["max_users_per_node"])
            layout = _layout(card)
            observe_demand = bool(card.get("environment", {}).get("observe_demand", False))
            if lc.algo == "qmix":
                from .qmix import DrqnAgents

                actor = DrqnAgents(n, n * block_dim(pad, observe_demand), int(lc.rnn_hidden))
            else:
                actor = build_actor(lc, n, block_dim(pad, observe_demand), layout)
        except (ValueError, KeyError, TypeError) as exc:
            raise ParameterError(f"{cpath}: not a MAASN-DA policy card ({exc})") from None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            actor.load_state_dict(state)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input error
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ParameterError(f"{path}: cannot load the policy weights ({first[:200]})"
                                 ) from None
        actor.eval()
        return cls(actor, card, path)

    def env_config(self, inst, **options):
        """The environment this policy was trained in (its card), on the fixed instance
        ``inst``; ``options`` (delivery, max_cluster, guard, ...) override the card."""
        from .env import EnvConfig

        envc = self.card.get("environment", {})
        kw = {k: envc[k] for k in ("reward_scale", "r1", "r2", "storage_ref_bytes")
              if k in envc}
        # the guard this policy was trained with (cards before the additive guard: fallback)
        kw["guard_mode"] = envc.get("guard_mode", "fallback")
        # a policy trained without migration bits acts without them (untrained outputs)
        kw["policy_migrations"] = bool(envc.get("policy_migrations", True))
        kw["observe_reserve"] = bool(envc.get("observe_reserve", False))
        if self.layout is not None:
            kw.update(obs_format="graph", graph_n_max=self.layout.n_max,
                      graph_u_max=self.layout.u_max)
        return EnvConfig(instance=inst, max_users_per_node=self.padding,
                         observe_demand=self.observe_demand,
                         **{**kw, **options})

    def check_fits(self, inst) -> None:
        """Refuse, in one line naming the policy and the instance, an instance the policy
        cannot serve."""
        import numpy as np

        where = self.path or "policy"
        if self.layout is not None:
            if inst.n_nodes > self.layout.n_max or inst.n_users > self.layout.u_max:
                raise ParameterError(
                    f"policy {where} serves up to N={self.layout.n_max} nodes and "
                    f"U={self.layout.u_max} users; instance {inst.name} has N={inst.n_nodes}, "
                    f"U={inst.n_users}")
            return
        if inst.n_nodes != self.n_nodes:
            raise ParameterError(f"policy {where} was trained for N={self.n_nodes} nodes; "
                                 f"instance {inst.name} has N={inst.n_nodes} (the shared "
                                 "architecture serves any N: docs/maasn.md section 8)")
        counts = np.bincount(inst.users.node, minlength=inst.n_nodes)
        if counts.max(initial=0) > self.padding:
            n = int(np.argmax(counts))
            raise ParameterError(
                f"policy {where} pads {self.padding} users per node; instance {inst.name} has "
                f"{counts[n]} users at node {inst.nodes.ids[n]}")

    def act(self, obs, mask):
        """Deterministic binary joint action for one step (flat: (N, N); graph: (n_max,
        n_max))."""
        import torch

        from .networks import masked_actions

        if self._qmix is not None:
            return self._qmix(obs, mask)
        with torch.no_grad():
            o = torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0)
            m = torch.as_tensor(mask, dtype=torch.float32).unsqueeze(0)
            temp = float(self.card["learner"].get("temperature", 1.0))
            return masked_actions(self.actor(o), m, temp, hard=True, explore=False)[0].numpy()


def _layout(card: dict):
    """The graph layout of a shared-architecture policy (None for the paper's)."""
    envc = card.get("environment", {})
    if envc.get("obs_format", "flat") != "graph":
        return None
    from .graph import GraphLayout

    return GraphLayout(int(envc["graph_n_max"]), int(envc["graph_u_max"]))
