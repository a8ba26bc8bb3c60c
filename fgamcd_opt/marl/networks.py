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

import numpy as np
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


def set_cache_prior(actor: nn.Module, logit: float) -> None:
    """Start the actor near a fixed caching logit for every input: the caching head's bias
    gives ``logit`` and its weights are shrunk 10x, so the first policy caches with
    probability sigmoid(logit) everywhere (e.g. -3: 5%, near the coverage guard alone) and
    exploration adds copies around it."""
    head = {ActionSemanticsActor: "own_a", FlatActor: "head"}.get(type(actor), "own_a")
    layer = getattr(actor, head)
    scale = getattr(actor, "logit_scale", 5.0)
    target = float(np.arctanh(np.clip(logit / scale, -0.999, 0.999)))
    with torch.no_grad():
        w = layer.weight
        b = layer.bias
        if isinstance(layer, AgentLinear):  # weight (N, in, out), bias (N, out)
            w[..., 0] *= 0.1
            b[..., 0] = target
        else:  # nn.Linear: weight (out, in), bias (out,)
            w[0] *= 0.1
            b[0] = target


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


# ---- the shared architecture: any N, any users per node (docs/maasn.md section 8) ---------
def _mlp(sizes, last_act: bool = True) -> nn.Sequential:
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if last_act or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _others_index(n: int) -> torch.Tensor:
    """(n, n - 1): agent i's other nodes in ascending order (the action layout of eq. 11)."""
    return torch.tensor([[m for m in range(n) if m != i] for i in range(n)], dtype=torch.long)


class GraphEncoder(nn.Module):
    """Node features z_m = [C~_m, D_m, S(k) / S_max, sum over the users u of m of phi(x_u)]
    (phi: a small MLP of the user's request indicator, summed: permutation-invariant and
    independent of the number of users), and agent n's view of node m
    v_{n,m} = [varpi_{n,m} z_m, varpi_{n,m} R^bac_{n,m}, 1{m = n}, varpi_{n,m}]."""

    def __init__(self, layout, user_hidden: int = 16):
        super().__init__()
        self.layout = layout
        self.user = _mlp((1, user_hidden, user_hidden))
        self.node_dim = 3 + user_hidden
        self.view_dim = self.node_dim + 3

    def nodes(self, g: dict) -> torch.Tensor:
        b, n = g["node"].shape[:2]
        x = self.user(g["req"].unsqueeze(-1))  # (B, U, H)
        valid = (g["unode"] >= 0).to(x.dtype).unsqueeze(-1)
        idx = g["unode"].clamp(min=0).unsqueeze(-1).expand(-1, -1, x.shape[-1])
        pooled = torch.zeros(b, n, x.shape[-1], dtype=x.dtype).scatter_add_(1, idx, x * valid)
        return torch.cat([g["node"], g["glob"].unsqueeze(1).expand(b, n, 1), pooled], dim=-1)

    def views(self, g: dict, z: torch.Tensor) -> torch.Tensor:
        b, n, f = z.shape
        vis = g["vis"].unsqueeze(-1)  # (B, N, N, 1)
        eye = torch.eye(n, dtype=z.dtype).expand(b, n, n).unsqueeze(-1)
        zm = z.unsqueeze(1).expand(b, n, n, f)
        return torch.cat([zm * vis, g["bh"].unsqueeze(-1) * vis, eye, vis], dim=-1)

    def forward(self, obs: torch.Tensor):
        """obs (B, 1, dim) or (B, dim) packed graphs -> (graph dict, z (B, N, F), views
        (B, N, N, F'), others mask (B, N, N): visible real nodes other than the agent)."""
        g = self.layout.unpack(obs.reshape(obs.shape[0], -1))
        z = self.nodes(g)
        v = self.views(g, z)
        n = z.shape[1]
        real = g["agents"]
        others = g["vis"] * real.unsqueeze(1) * (1 - torch.eye(n, dtype=z.dtype))
        return g, z, v, others


def _pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over the third axis: x (B, N, M, H), mask (B, N, M) -> (B, N, H)."""
    w = mask.unsqueeze(-1)
    return (x * w).sum(2) / w.sum(2).clamp(min=1.0)


class SharedActor(nn.Module):
    """The action-semantics actor with parameters shared by every agent (Fig. 19 (a) made
    independent of N and of the users per node): sub-module 1 maps the agent's own view and the
    mean of its other-node views to e_n (-> 128 -> 64) and a~_n; the other-node sub-module
    (the same for every pair) maps v_{n,m} to e_{n,m}; b~_{n,m} = logit_scale tanh(<e_n,
    e_{n,m}> / sqrt(64))."""

    def __init__(self, layout, hidden=(128, 64), logit_scale: float = 5.0,
                 user_hidden: int = 16):
        super().__init__()
        self.enc = GraphEncoder(layout, user_hidden)
        h1, h2 = hidden
        f = self.enc.view_dim
        self.ctx = _mlp((f, h1, h2))
        self.own = _mlp((f + h2, h1, h2))
        self.own_a = nn.Linear(h2, 1)
        self.oth = _mlp((f, h1, h2))
        self.logit_scale = logit_scale
        self.h2 = h2
        self.register_buffer("others_idx", _others_index(layout.n_max), persistent=False)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """-> logits (B, n_max, n_max) in the action layout (column 0 a~_n, then b~_{n,m} for
        the other nodes ascending)."""
        g, z, v, others = self.enc(obs)
        b, n = z.shape[:2]
        own_v = torch.diagonal(v, dim1=1, dim2=2).transpose(1, 2)  # (B, N, F)
        e = self.own(torch.cat([own_v, _pool(self.ctx(v), others)], dim=-1))
        a = self.logit_scale * torch.tanh(self.own_a(e))
        inner = torch.einsum("bnh,bnmh->bnm", e, self.oth(v)) / math.sqrt(self.h2)
        bmat = self.logit_scale * torch.tanh(inner)
        idx = self.others_idx.unsqueeze(0).expand(b, n, n - 1)
        return torch.cat([a, bmat.gather(2, idx)], dim=-1)


class SharedCritics(nn.Module):
    """Local critics Q_n(o_n, d_n) with shared parameters: the agent's own view, the mean over
    its other nodes of (view, b_{n,m}) embeddings, and a_n -> 256 -> 256 -> 1."""

    def __init__(self, layout, hidden=(256, 256), pair: int = 64, user_hidden: int = 16):
        super().__init__()
        self.enc = GraphEncoder(layout, user_hidden)
        f = self.enc.view_dim
        self.pair = _mlp((f + 1, pair, pair))
        self.q = _mlp((f + pair + 1, *hidden, 1), last_act=False)
        self.register_buffer("others_idx", _others_index(layout.n_max), persistent=False)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """obs packed graphs, act (B, n_max, n_max) action layout -> Q_n (B, n_max)."""
        g, z, v, others = self.enc(obs)
        b, n = z.shape[:2]
        bmat = torch.zeros(b, n, n, dtype=act.dtype)
        bmat = bmat.scatter(2, self.others_idx.unsqueeze(0).expand(b, n, n - 1), act[..., 1:])
        own_v = torch.diagonal(v, dim1=1, dim2=2).transpose(1, 2)
        p = _pool(self.pair(torch.cat([v, bmat.unsqueeze(-1)], dim=-1)), others)
        return self.q(torch.cat([own_v, p, act[..., :1]], dim=-1)).squeeze(-1)


class SharedMixer(nn.Module):
    """Monotonic mixing for any number of agents (eqs. 19-20 with hypernetworks of a pooled
    state): Q_tot = |w2(s)|^T ELU(sum_n |W1(s, z_n)| Q_n + b1(s)) + b2(s), s the mean of the
    real nodes' embeddings; dQ_tot / dQ_n >= 0 by the abs."""

    def __init__(self, layout, embed: int = 32, hyper: int = 64, user_hidden: int = 16):
        super().__init__()
        self.enc = GraphEncoder(layout, user_hidden)
        f = self.enc.node_dim
        self.embed = embed
        self.node = _mlp((f, hyper))
        self.w1 = _mlp((2 * hyper, hyper, embed), last_act=False)
        self.b1 = nn.Linear(hyper, embed)
        self.w2 = _mlp((hyper, hyper, embed), last_act=False)
        self.b2 = _mlp((hyper, embed, 1), last_act=False)

    def forward(self, q: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        g = self.enc.layout.unpack(state.reshape(state.shape[0], -1))
        real = g["agents"]
        hz = self.node(self.enc.nodes(g))  # (B, N, H)
        s = (hz * real.unsqueeze(-1)).sum(1) / real.sum(1, keepdim=True).clamp(min=1.0)
        w1 = torch.abs(self.w1(torch.cat([hz, s.unsqueeze(1).expand_as(hz)], dim=-1)))
        h = torch.nn.functional.elu(((q * real).unsqueeze(-1) * w1).sum(1) + self.b1(s))
        return (h * torch.abs(self.w2(s))).sum(-1) + self.b2(s).squeeze(-1)
