"""MAASN-DA networks (docs/model.md section 9, paper Appendix C / Fig. 19), in torch.

Every agent n has its own parameters (phi_n, theta_n); they are stored stacked along a leading
agent axis and applied with one batched product (:class:`AgentLinear`), which is the same maths
as N separate networks and N times fewer kernel launches.

- :class:`ActionSemanticsActor`: sub-module 1 maps o_n to the embedding e_n (D -> 128 -> 64,
  ReLU) and to a~_n; the other-node sub-module (weights shared over m, one per agent n) maps
  o^oth_{n,m} to e_{n,m} (block -> 128 -> 64, ReLU); b~_{n,m} comes from <e_n, e_{n,m}>. Heads
  are ``logit_scale * tanh(.)``, so the Gumbel-Softmax probabilities can approach 0 and 1.
- :class:`FlatActor`: the "without action semantics" ablation (D -> 256 -> 256 -> N).
- :class:`LocalCritics`: Q_n(o_n, d_n), (D + N) -> 256 -> 256 -> 1 (ReLU).
- :class:`QMixer`: QMIX monotonic mixing (eqs. 19-20) with hypernetworks on the state s(k):
  |W1| (N x 32) and |W2| (32 x 1) from 64-wide hypernetworks, ELU hidden layer.
- :func:`gumbel_sigmoid`: eq. 13, d = Sigmoid((d~ + ln u - ln(1 - u)) / s_temp).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class AgentLinear(nn.Module):
    """N independent linear layers applied at once: x (..., N, [M,] in) -> (..., N, [M,] out)."""

    def __init__(self, n_agents: int, d_in: int, d_out: int):
        super().__init__()
        bound = 1.0 / math.sqrt(d_in)
        self.weight = nn.Parameter(torch.empty(n_agents, d_in, d_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_agents, d_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:  # (B, N, in)
            return torch.einsum("bni,nio->bno", x, self.weight) + self.bias
        # (B, N, M, in): one agent's weights shared over its M other-node inputs
        return torch.einsum("bnmi,nio->bnmo", x, self.weight) + self.bias[:, None, :]


def gumbel_sigmoid(logits: torch.Tensor, temp: float, generator: torch.Generator | None = None,
                   noise: float = 1.0) -> torch.Tensor:
    """Eq. 13: relaxed binary sample; > 0.5 exactly when logits + noise * logistic > 0, so a bit
    is 1 with probability sigmoid(logit / noise). ``temp`` (s_temp) only sharpens the relaxed
    value, never the probability of the binary outcome: exploration is scheduled with
    ``noise`` (1 = eq. 13)."""
    u = torch.rand(logits.shape, generator=generator).clamp_(1e-6, 1 - 1e-6)
    return torch.sigmoid((logits + noise * (torch.log(u) - torch.log1p(-u))) / temp)


class ActionSemanticsActor(nn.Module):
    def __init__(self, n_agents: int, block_dim: int, hidden=(128, 64),
                 logit_scale: float = 5.0):
        super().__init__()
        self.n = n_agents
        self.block_dim = block_dim
        d = n_agents * block_dim
        h1, h2 = hidden
        self.own = nn.ModuleList([AgentLinear(n_agents, d, h1), AgentLinear(n_agents, h1, h2)])
        self.own_a = AgentLinear(n_agents, h2, 1)
        self.oth = nn.ModuleList([AgentLinear(n_agents, block_dim, h1),
                                  AgentLinear(n_agents, h1, h2)])
        self.logit_scale = logit_scale
        self.h2 = h2

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """obs (B, N, D) -> logits (B, N, N): column 0 = a~_n, columns 1.. = b~_{n,m}."""
        e = obs
        for layer in self.own:
            e = torch.relu(layer(e))
        a = self.logit_scale * torch.tanh(self.own_a(e))  # (B, N, 1)
        oth = obs.reshape(*obs.shape[:2], self.n, self.block_dim)[:, :, 1:]  # (B, N, N-1, bd)
        for layer in self.oth:
            oth = torch.relu(layer(oth))
        inner = torch.einsum("bnh,bnmh->bnm", e, oth) / math.sqrt(self.h2)
        b = self.logit_scale * torch.tanh(inner)
        return torch.cat([a, b], dim=-1)


class FlatActor(nn.Module):
    """Ablation: one fully connected actor per agent (two hidden layers of 256, paper V-B)."""

    def __init__(self, n_agents: int, block_dim: int, hidden=(256, 256),
                 logit_scale: float = 5.0):
        super().__init__()
        d = n_agents * block_dim
        sizes = (d, *hidden)
        self.layers = nn.ModuleList([AgentLinear(n_agents, i, o)
                                     for i, o in zip(sizes[:-1], sizes[1:], strict=True)])
        self.head = AgentLinear(n_agents, sizes[-1], n_agents)
        self.logit_scale = logit_scale

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.logit_scale * torch.tanh(self.head(x))


def masked_actions(logits: torch.Tensor, mask: torch.Tensor, temp: float,
                   generator: torch.Generator | None = None, hard: bool = False,
                   explore: bool = True, straight_through: bool = False,
                   noise: float = 1.0) -> torch.Tensor:
    """Actions (B, N, N) from logits with the storage/migration rules applied: a_n = 0 where
    masked, b_{n,m} multiplied by a_n (eq. 2). ``hard``: binary; ``explore``: with GS noise;
    ``straight_through``: binary in the forward pass, the relaxed sample's gradient in the
    backward pass (straight-through Gumbel-Softmax), so a critic trained on executed binary
    actions is queried at binary actions only. ``noise``: scale of the exploration noise
    (gumbel_sigmoid)."""
    if explore:
        soft = gumbel_sigmoid(logits, temp, generator, noise)
    else:
        soft = torch.sigmoid(logits / temp)
    if straight_through:
        soft = (soft > 0.5).to(logits.dtype) + soft - soft.detach()
    elif hard:
        soft = (soft > 0.5).to(logits.dtype)
    soft = soft * mask
    a = soft[..., :1]
    return torch.cat([a, soft[..., 1:] * a], dim=-1)


class LocalCritics(nn.Module):
    def __init__(self, n_agents: int, obs_dim: int, hidden=(256, 256)):
        super().__init__()
        sizes = (obs_dim + n_agents, *hidden)
        self.layers = nn.ModuleList([AgentLinear(n_agents, i, o)
                                     for i, o in zip(sizes[:-1], sizes[1:], strict=True)])
        self.head = AgentLinear(n_agents, sizes[-1], 1)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """obs (B, N, D), act (B, N, N) -> Q_n (B, N)."""
        x = torch.cat([obs, act], dim=-1)
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.head(x).squeeze(-1)


class QMixer(nn.Module):
    """Q_tot = |W2|^T ELU(|W1|^T Q + b1) + b2, weights from hypernetworks of the state."""

    def __init__(self, n_agents: int, state_dim: int, embed: int = 32, hyper: int = 64):
        super().__init__()
        self.n, self.embed = n_agents, embed
        self.w1 = nn.Sequential(nn.Linear(state_dim, hyper), nn.ReLU(),
                                nn.Linear(hyper, n_agents * embed))
        self.b1 = nn.Linear(state_dim, embed)
        self.w2 = nn.Sequential(nn.Linear(state_dim, hyper), nn.ReLU(), nn.Linear(hyper, embed))
        self.b2 = nn.Sequential(nn.Linear(state_dim, embed), nn.ReLU(), nn.Linear(embed, 1))

    def forward(self, q: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """q (B, N), state (B, S) -> Q_tot (B,). dQ_tot/dQ_n >= 0 by the abs (eq. 20)."""
        w1 = torch.abs(self.w1(state)).view(-1, self.n, self.embed)
        h = torch.nn.functional.elu(torch.bmm(q.unsqueeze(1), w1).squeeze(1) + self.b1(state))
        w2 = torch.abs(self.w2(state))
        return (h * w2).sum(-1) + self.b2(state).squeeze(-1)
