"""Augmentation ablations of section V-C (docs/maasn.md section 10):
the same (s(k), d(k)) -> (r(k), s(k+1)) predictor role as the ESN (esn.py), with every weight
trained by gradient descent, in torch.

- ``RnnAugmenter`` (``fgamcd-train --augmentation rnn``): a GRU over the episode's sequence
  v(k) = (s(k), d(k)) with a linear read-out, input, recurrent and output weights all trained
  (the ESN trains only its read-out eta_out and keeps a fixed random reservoir).
- ``CganAugmenter`` (``--augmentation cgan``): a conditional GAN: a generator
  G(z, s, d) -> (r^, s^') from Gaussian noise z conditioned on the state and the action, a
  discriminator D(s, d, r, s') scoring real against synthetic tuples, trained adversarially
  (non-saturating losses); no recurrence (a tuple is conditioned on (s, d) only).

Both follow Algorithm 1 lines 10-19 as the ESN does: each episode they first predict every step
with the weights trained on *earlier* episodes (the out-of-sample check of eq. 17), then train on
this episode's real tuples together with the ``history - 1`` episodes before it (a replay of
whole sequences: gradient descent, unlike the ESN's ridge regression, cannot fold all past tuples
into running sums), then keep at most tau_e predictions whose error is at most xi (the same
``esn.filter_predictions``, errors in standard deviations of the real targets so far). Targets
are standardised with the running mean and standard deviation of the real targets, so the
training loss and eq. 17's error measure the same thing.

Every random choice (initial weights, mini-batch order, noise z) comes from a torch generator
seeded by the training seed; the weights, optimiser states, generator state and the stored
sequences are in ``state_dict`` (the trainer's checkpoint), so a resumed run repeats an
uninterrupted one.
"""

from __future__ import annotations

import numpy as np

from .esn import EchoStateNetwork, filter_predictions, running_std, standardised_errors

AUGMENTERS = ("esn", "rnn", "cgan")


class _TrainedAugmenter:
    """What the RNN and cGAN augmenters share: running target statistics, the stored recent
    sequences, the out-of-sample filter and checkpointing; subclasses build ``self.nets``
    (torch modules), ``self.opts`` (optimisers) and implement ``_predict`` and ``_train``."""

    def __init__(self, in_dim: int, out_dim: int, seed: int, history: int, epochs: int,
                 lr: float, salt: int):
        import torch

        self.in_dim, self.out_dim = int(in_dim), int(out_dim)
        self.history, self.epochs, self.lr = max(int(history), 1), max(int(epochs), 0), lr
        self.gen = torch.Generator().manual_seed(
            int(np.random.SeedSequence([seed, salt]).generate_state(1)[0]))
        self._y1 = np.zeros(out_dim)
        self._y2 = np.zeros(out_dim)
        self.n_fitted = 0
        self._seqs: list[tuple[np.ndarray, np.ndarray]] = []  # the last `history` episodes

    def _init_weights(self) -> None:
        """Re-draw every parameter from ``self.gen`` (torch's default initialisers use the
        global generator, which the learner owns)."""
        import torch

        with torch.no_grad():
            for net in self.nets.values():
                for p in net.parameters():
                    if p.dim() >= 2:
                        bound = (6.0 / (p.shape[0] + p.shape[1])) ** 0.5  # Glorot uniform
                        p.copy_((torch.rand(p.shape, generator=self.gen) * 2 - 1) * bound)
                    else:
                        p.zero_()

    # ---- target standardisation -------------------------------------------------------
    def target_mean(self) -> np.ndarray:
        return self._y1 / max(self.n_fitted, 1)

    def target_std(self) -> np.ndarray:
        return running_std(self._y1, self._y2, self.n_fitted)

    def errors(self, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
        return standardised_errors(pred, y, self.target_std())

    # ---- Algorithm 1 lines 10-19 ------------------------------------------------------
    def predict(self, v: np.ndarray) -> np.ndarray:
        """Targets (T, out) predicted for one episode's inputs (T, in), in the targets' units."""
        z = self._predict(np.asarray(v, np.float32))
        return self.target_mean() + self.target_std() * z.astype(np.float64)

    def augment(self, v: np.ndarray, y: np.ndarray, tau: int, xi: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
        """As ``EchoStateNetwork.augment``: predict out of sample, train on this episode (and
        the stored earlier ones), keep at most ``tau`` steps with error at most ``xi``."""
        fitted_before = self.n_fitted > 0
        pred = self.predict(v) if fitted_before else np.zeros((len(v), self.out_dim))
        err = self.errors(pred, y) if fitted_before else np.full(len(v), np.inf)
        self._y1 += y.sum(axis=0)
        self._y2 += (y * y).sum(axis=0)
        self.n_fitted += len(y)
        self._seqs = [*self._seqs, (np.asarray(v, np.float32), np.asarray(y, np.float32))][
            -self.history:]
        if self.epochs:
            self._train()
        return filter_predictions(pred, y, err, fitted_before, tau, xi, rng)

    def _standardised(self, y: np.ndarray) -> np.ndarray:
        return ((y - self.target_mean()) / self.target_std()).astype(np.float32)

    # ---- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict:
        lens = np.array([len(v) for v, _ in self._seqs], dtype=np.int64)
        empty_v = np.zeros((0, self.in_dim), np.float32)
        empty_y = np.zeros((0, self.out_dim), np.float32)
        import copy

        # copies: the live tensors keep changing after the checkpoint is taken
        return {"nets": {k: copy.deepcopy(n.state_dict()) for k, n in self.nets.items()},
                "opts": {k: copy.deepcopy(o.state_dict()) for k, o in self.opts.items()},
                "gen": self.gen.get_state(), "y1": self._y1.copy(), "y2": self._y2.copy(),
                "n_fitted": self.n_fitted, "seq_len": lens,
                "seq_v": np.concatenate([v for v, _ in self._seqs]) if self._seqs else empty_v,
                "seq_y": np.concatenate([y for _, y in self._seqs]) if self._seqs else empty_y}

    def load_state_dict(self, d: dict) -> None:
        # the trainer's checkpoint hands torch tensors back as numpy arrays (training.py)
        d = _as_torch(d)
        for k, net in self.nets.items():
            net.load_state_dict(d["nets"][k])
        for k, opt in self.opts.items():
            opt.load_state_dict(d["opts"][k])
        self.gen.set_state(d["gen"])
        self._y1, self._y2 = _np(d["y1"]).copy(), _np(d["y2"]).copy()
        self.n_fitted = int(d["n_fitted"])
        cuts = np.cumsum(_np(d["seq_len"]).astype(int))[:-1]
        sv, sy = _np(d["seq_v"]), _np(d["seq_y"])
        self._seqs = [] if not len(sv) else list(zip(np.split(sv, cuts), np.split(sy, cuts),
                                                     strict=True))


def _np(x) -> np.ndarray:
    import torch

    return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _as_torch(d):
    import torch

    if isinstance(d, dict):
        return {k: _as_torch(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_as_torch(v) for v in d]
    if isinstance(d, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(d))
    return d


class RnnAugmenter(_TrainedAugmenter):
    """GRU(in -> hidden) + linear read-out (hidden -> out), all trained with Adam on the mean
    squared error of the standardised targets, ``epochs`` steps per episode, each over the
    stored sequences as one zero-padded batch (the padding is masked out of the loss)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 64, history: int = 4,
                 epochs: int = 8, lr: float = 1e-3, seed: int = 0):
        import torch

        super().__init__(in_dim, out_dim, seed, history, epochs, lr, salt=16)
        self.gru = torch.nn.GRU(in_dim, hidden, batch_first=True)
        self.head = torch.nn.Linear(hidden, out_dim)
        self.nets = {"gru": self.gru, "head": self.head}
        self._init_weights()
        params = [p for n in self.nets.values() for p in n.parameters()]
        self.opts = {"adam": torch.optim.Adam(params, lr=lr)}

    def _forward(self, v):
        out, _ = self.gru(v)
        return self.head(out)

    def _predict(self, v: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self._forward(torch.from_numpy(v)[None])[0].numpy()

    def _train(self) -> None:
        import torch

        t_max = max(len(v) for v, _ in self._seqs)
        b = len(self._seqs)
        vb = torch.zeros(b, t_max, self.in_dim)
        yb = torch.zeros(b, t_max, self.out_dim)
        mask = torch.zeros(b, t_max, 1)
        for i, (v, y) in enumerate(self._seqs):
            vb[i, : len(v)] = torch.from_numpy(v)
            yb[i, : len(y)] = torch.from_numpy(self._standardised(y))
            mask[i, : len(v)] = 1.0
        opt = self.opts["adam"]
        for _ in range(self.epochs):
            loss = (((self._forward(vb) - yb) ** 2) * mask).sum() / (mask.sum() * self.out_dim)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.gru.parameters(), 10.0)
            opt.step()


class CganAugmenter(_TrainedAugmenter):
    """Conditional GAN: G(z, v) and D(v, y), MLPs with ``hidden`` units (two ReLU layers),
    Adam (beta1 = 0.5), non-saturating losses; ``epochs`` passes over the stored tuples in
    mini-batches of ``batch`` per episode. The prediction of a step is one generator sample."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 256, noise_dim: int = 16,
                 history: int = 4, epochs: int = 8, lr: float = 2e-4, batch: int = 128,
                 seed: int = 0):
        import torch
        from torch import nn

        super().__init__(in_dim, out_dim, seed, history, epochs, lr, salt=17)
        self.noise_dim, self.batch = int(noise_dim), int(batch)

        def mlp(i, o):
            return nn.Sequential(nn.Linear(i, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, o))

        self.g = mlp(noise_dim + in_dim, out_dim)
        self.d = mlp(in_dim + out_dim, 1)
        self.nets = {"generator": self.g, "discriminator": self.d}
        self._init_weights()
        self.opts = {"generator": torch.optim.Adam(self.g.parameters(), lr=lr,
                                                   betas=(0.5, 0.999)),
                     "discriminator": torch.optim.Adam(self.d.parameters(), lr=lr,
                                                       betas=(0.5, 0.999))}

    def _sample(self, v):
        import torch

        z = torch.randn(len(v), self.noise_dim, generator=self.gen)
        return self.g(torch.cat([z, v], dim=1))

    def _predict(self, v: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self._sample(torch.from_numpy(v)).numpy()

    def _train(self) -> None:
        import torch
        from torch.nn.functional import binary_cross_entropy_with_logits as bce

        v_all = torch.from_numpy(np.concatenate([v for v, _ in self._seqs]))
        y_all = torch.from_numpy(np.concatenate([self._standardised(y) for _, y in self._seqs]))
        n = len(v_all)
        for _ in range(self.epochs):
            order = torch.randperm(n, generator=self.gen)
            for lo in range(0, n, self.batch):
                idx = order[lo: lo + self.batch]
                v, y = v_all[idx], y_all[idx]
                fake = self._sample(v)
                # discriminator: real tuples -> 1, synthetic -> 0
                d_real = self.d(torch.cat([v, y], dim=1))
                d_fake = self.d(torch.cat([v, fake.detach()], dim=1))
                loss_d = bce(d_real, torch.ones_like(d_real)) + \
                    bce(d_fake, torch.zeros_like(d_fake))
                self.opts["discriminator"].zero_grad()
                loss_d.backward()
                self.opts["discriminator"].step()
                # generator (non-saturating): make D call the synthetic tuples real
                d_gen = self.d(torch.cat([v, fake], dim=1))
                loss_g = bce(d_gen, torch.ones_like(d_gen))
                self.opts["generator"].zero_grad()
                loss_g.backward()
                self.opts["generator"].step()


def make_augmenter(cfg, in_dim: int, out_dim: int):
    """The augmenter ``cfg.augmenter`` of a TrainConfig (esn, rnn or cgan)."""
    kind = getattr(cfg, "augmenter", "esn")
    if kind == "esn":
        return EchoStateNetwork(in_dim, out_dim, cfg.reservoir, cfg.spectral_norm,
                                cfg.esn_input_scale, cfg.esn_ridge, seed=cfg.seed)
    if kind == "rnn":
        return RnnAugmenter(in_dim, out_dim, hidden=cfg.aug_hidden, history=cfg.aug_history,
                            epochs=cfg.aug_epochs, lr=cfg.aug_lr, seed=cfg.seed)
    if kind == "cgan":
        return CganAugmenter(in_dim, out_dim, history=cfg.aug_history, epochs=cfg.aug_epochs,
                             seed=cfg.seed)
    raise ValueError(f"unknown augmenter {kind!r} (known: {', '.join(AUGMENTERS)})")
