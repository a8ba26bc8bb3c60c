"""Theorem 1 of the paper (section IV-A, eqs. 34-35; proof in Appendix A, eqs. 38-47): the upper
bound on the critic's Q-value approximation error E_Xi[|Q^{pi_E} - Q*|] as a function of the two
data-augmentation knobs tau0 (most synthetic samples per episode, as a share of the K real ones)
and xi (the ESN filter threshold, eq. 17), and the grid search of section V-C that picks them
(Fig. 6). docs/theorem1.md has the reconstruction of the equations from the garbled text, the
source of every constant and what the search finds.

    K'     = K (1 + tau0 - (tau0 / xi) M),                                               (47)
    M      = psi_out psi_in sqrt(B_s^2 + B_d^2) (1 - psi_re^K) / (1 - psi_re)
             + sqrt(B_r^2 + B_s^2)            (bound on E||ESN output|| + E||(r, s')||)
    V      = B_r / (1 - gamma)
    nu_max <= 4 max(V - vs L, 0)^2                                    estimation bias     (35)
              + D1 V^2 ln(U) / K' + D2 V^2 vs                         estimation variance
    D1     = 8 sqrt(2 K') + 256 / V,   D2 = 4 sqrt(2 K') + 52
    bound  = 4 gamma^(E+1) B_r / (1 - gamma)^2                        algorithmic error   (34)
             + theta 2 gamma / (1 - gamma)^2 (sqrt(nu_max) + xi (1 + gamma phi_out phi_in))
                                                                      statistical error

(vs = the paper's varsigma, L and U = the lower and upper bounds of the DRQN's exterior
vs-covering number, theta = the concentration coefficient.) Everything is dimensionless (the
paper normalises states, actions and rewards). Where K' <= 0 the bound is undefined (the Markov
step of eq. 43 gives no sample count): those cells are NaN and flagged invalid, never a minimum.

Pure numpy, vectorised over any broadcastable arrays of tau0 and xi; no torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from ..errors import ParameterError
from ..params import Param

#: The paper's choice (section V-C, Table II) and its "non-optimal" ablation (section V-C 7).
PAPER_POINT = (0.8, 1.12)
ABLATION_POINT = (0.9, 1.2)
#: Largest grid minimise() evaluates (about 10 arrays of 8-byte floats per cell).
MAX_GRID_CELLS = 2_000_000


@dataclass(frozen=True)
class Theorem1Constants:
    """The constants of Theorem 1 with the values of section V-C (the paragraph before Fig. 6)
    and Table II. All dimensionless; ``episodes`` and ``steps`` are counts."""

    gamma: float = 0.95  # discount factor gamma, Table II
    episodes: int = 600  # E, training episodes, Table II
    steps: int = 450  # K, time steps (= PBs) per episode, Table II
    b_r: float = 1.0  # B_r >= |r(k)| (Assumption 1); section V-C: 1 by normalisation
    b_s: float = 1.0  # B_s >= ||s(k)||; section V-C
    b_d: float = 1.0  # B_d >= ||d(k)||; section V-C
    psi_in: float = 0.5  # psi_in^max >= ||eta_in|| (ESN input, Assumption 2); section V-C
    psi_re: float = 0.5  # psi_re^max >= ||eta_re||, < 1 (echo-state property); section V-C
    psi_out: float = 0.5  # psi_out^max >= ||eta_out||; section V-C
    phi_in: float = 0.5  # phi_in^max >= ||omega_in|| (DRQN, Assumption 3); section V-C
    phi_out: float = 10.0  # phi_out^max >= ||omega_out||; section V-C
    varsigma: float = 0.1  # the positive constant vs of eq. 35 (covering radius); section V-C
    u_drqn: float = 201.0  # U_vs^DRQN, upper bound of the exterior covering number; V-C
    l_drqn: float = 46.2  # L_vs^DRQN, lower bound of the exterior covering number; V-C
    # theta_{Xi,Omega}: NOT given by the paper (an assumption). It multiplies the statistical
    # error only, so it scales the surface but never moves the minimiser.
    concentration: float = 1.0

    def check(self) -> Theorem1Constants:
        """Raise ParameterError (one line, naming the constant) for a value the theorem excludes."""
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ParameterError(f"theorem1: constant {f.name}: expected a finite number, "
                                     f"got {v!r}")
        rules = [
            ("gamma", 0 < self.gamma < 1, "must lie in (0, 1)"),
            ("episodes", self.episodes >= 0 and float(self.episodes).is_integer(),
             "must be a whole number >= 0"),
            ("steps", self.steps >= 1 and float(self.steps).is_integer(),
             "must be a whole number >= 1"),
            ("psi_re", 0 <= self.psi_re < 1, "must lie in [0, 1) (echo-state property)"),
            ("varsigma", self.varsigma > 0, "must be > 0"),
            ("u_drqn", self.u_drqn >= 1, "must be >= 1 (a covering number)"),
            ("concentration", self.concentration > 0, "must be > 0"),
        ]
        rules += [(n, getattr(self, n) >= 0, "must be >= 0")
                  for n in ("b_r", "b_s", "b_d", "psi_in", "psi_out", "phi_in", "phi_out",
                            "l_drqn")]
        for name, ok, why in rules:
            if not ok:
                raise ParameterError(f"theorem1: constant {name} = {getattr(self, name)!r} {why}")
        return self

    def with_values(self, **values) -> Theorem1Constants:
        return replace(self, **values).check()

    def as_dict(self) -> dict:
        return asdict(self)


#: Help text per constant (CLI ``--set`` listing, docs table).
CONSTANT_HELP = {
    "gamma": "discount factor (Table II)",
    "episodes": "E, training episodes (Table II)",
    "steps": "K, time steps per episode (Table II)",
    "b_r": "B_r, reward bound (Assumption 1; V-C)",
    "b_s": "B_s, state-norm bound (V-C)",
    "b_d": "B_d, action-norm bound (V-C)",
    "psi_in": "bound on ||eta_in|| of the ESN (Assumption 2; V-C)",
    "psi_re": "bound on ||eta_re|| of the ESN, < 1 (V-C)",
    "psi_out": "bound on ||eta_out|| of the ESN (V-C)",
    "phi_in": "bound on ||omega_in|| of the DRQN critic (Assumption 3; V-C)",
    "phi_out": "bound on ||omega_out|| of the DRQN critic (V-C)",
    "varsigma": "the constant varsigma of eq. 35 (V-C)",
    "u_drqn": "U, upper bound of the DRQN's exterior varsigma-covering number (V-C)",
    "l_drqn": "L, lower bound of the DRQN's exterior varsigma-covering number (V-C)",
    "concentration": "concentration coefficient theta (not in the paper: assumed 1; "
                     "scales the statistical error only)",
}


def constant_params(base: Theorem1Constants | None = None) -> list[Param]:
    """The constants as declared parameters (for ``--set NAME=VALUE``)."""
    base = base or Theorem1Constants()
    return [Param(f.name, int if f.type in (int, "int") else float, getattr(base, f.name),
                  CONSTANT_HELP[f.name]) for f in fields(base)]


@dataclass(frozen=True)
class BoundParts:
    """The bound and its parts on a (broadcast) array of (tau0, xi); NaN where K' <= 0."""

    tau0: np.ndarray
    xi: np.ndarray
    k_prime: np.ndarray  # K', real + accepted synthetic samples per episode (eq. 47)
    nu_bias: np.ndarray  # estimation bias of nu_max (eq. 35, first term; constant)
    nu_variance: np.ndarray  # estimation variance of nu_max (eq. 35, the K' terms)
    nu_max: np.ndarray  # the bound on the maximum one-step error (eq. 35)
    algorithmic: np.ndarray  # 4 gamma^(E+1) B_r / (1 - gamma)^2 (eq. 34; constant)
    statistical: np.ndarray  # theta 2 gamma / (1-gamma)^2 (sqrt(nu_max) + xi (1 + ...))
    total: np.ndarray  # algorithmic + statistical: the right-hand side of eq. 34
    valid: np.ndarray  # K' > 0 (elsewhere every part but K' is NaN)


def output_norm_bound(c: Theorem1Constants) -> float:
    """M: the bound on E||(r^(k), s^(k+1))|| + E||(r(k), s(k+1))|| used in eq. 43 (eqs. 46 and
    Assumption 1): psi_out psi_in sqrt(B_s^2 + B_d^2) (1 - psi_re^K)/(1 - psi_re) + sqrt(B_r^2 +
    B_s^2)."""
    geometric = (1.0 - c.psi_re ** c.steps) / (1.0 - c.psi_re)
    return (c.psi_out * c.psi_in * math.hypot(c.b_s, c.b_d) * geometric
            + math.hypot(c.b_r, c.b_s))


def effective_samples(tau0, xi, c: Theorem1Constants, clip_markov: bool = False) -> np.ndarray:
    """K' of eq. 47: K (1 + tau0 (1 - M / xi)).

    The paper applies Markov's inequality Pr{err <= xi} >= 1 - E[err]/xi as printed, also where
    the right-hand side is negative (xi < M: with the V-C constants M = 2.12, so at xi = 1.12 the
    "probability" is -0.89 and K' < K). ``clip_markov=True`` uses the valid bound max(0, 1 -
    M/xi) instead, so that K <= K' <= K (1 + tau0)."""
    tau0 = np.asarray(tau0, float)
    xi = np.asarray(xi, float)
    accept = 1.0 - output_norm_bound(c) / xi
    if clip_markov:
        accept = np.maximum(accept, 0.0)
    return c.steps * (1.0 + tau0 * accept)


def value_scale(c: Theorem1Constants) -> float:
    """V = B_r / (1 - gamma), the largest |Q| (eq. 35)."""
    return c.b_r / (1.0 - c.gamma)


def nu_max_parts(k_prime, c: Theorem1Constants) -> tuple[np.ndarray, np.ndarray]:
    """(estimation bias, estimation variance) of eq. 35 for K' > 0; NaN where K' <= 0."""
    kp = np.asarray(k_prime, float)
    ok = kp > 0
    kp_safe = np.where(ok, kp, 1.0)
    v = value_scale(c)
    d1 = 8.0 * np.sqrt(2.0 * kp_safe) + 256.0 / v
    d2 = 4.0 * np.sqrt(2.0 * kp_safe) + 52.0
    variance = d1 * v ** 2 * math.log(c.u_drqn) / kp_safe + d2 * v ** 2 * c.varsigma
    bias = 4.0 * max(v - c.varsigma * c.l_drqn, 0.0) ** 2
    nan = np.full(kp.shape, np.nan)
    return np.where(ok, bias, nan), np.where(ok, variance, nan)


def bound_parts(tau0, xi, c: Theorem1Constants | None = None, clip_markov: bool = False,
                proof_form: bool = False) -> BoundParts:
    """Eq. 34 and its parts for arrays of tau0 and xi (broadcast against each other).

    ``proof_form=True`` adds the ESN term xi (1 + gamma phi_out phi_in) as eqs. 39-40 derive it,
    outside the factor theta 2 gamma / (1 - gamma)^2 that eq. 41 (and so eq. 34) puts in front
    of it; eq. 34 is the looser of the two whenever that factor is >= 1."""
    c = (c or Theorem1Constants()).check()
    tau0, xi = np.broadcast_arrays(np.asarray(tau0, float), np.asarray(xi, float))
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = effective_samples(tau0, xi, c, clip_markov)
    valid = np.isfinite(kp) & (kp > 0)
    bias, variance = nu_max_parts(np.where(valid, kp, np.nan), c)
    nu = bias + variance
    g = c.gamma
    algorithmic = 4.0 * g ** (c.episodes + 1) * c.b_r / (1.0 - g) ** 2
    factor = c.concentration * 2.0 * g / (1.0 - g) ** 2
    esn_term = xi * (1.0 + g * c.phi_out * c.phi_in)
    statistical = factor * np.sqrt(nu) + (1.0 if proof_form else factor) * esn_term
    return BoundParts(tau0=tau0, xi=xi, k_prime=kp, nu_bias=bias, nu_variance=variance,
                      nu_max=nu, algorithmic=np.where(valid, algorithmic, np.nan),
                      statistical=statistical, total=algorithmic + statistical, valid=valid)


def optimal_k_prime(c: Theorem1Constants | None = None) -> float:
    """K*: the K' > 0 that minimises nu_max (eq. 35), hence sqrt(nu_max) too.

    With y = sqrt(K'), d nu/dK' = 0 is the cubic 2 sqrt2 V^2 vs y^3 - 4 sqrt2 V^2 ln(U) y -
    256 V ln(U) = 0, which has exactly one positive root (one sign change). 0 when U = 1."""
    c = (c or Theorem1Constants()).check()
    v, ln_u = value_scale(c), math.log(c.u_drqn)
    if ln_u == 0.0:
        return 0.0
    roots = np.roots([2 * math.sqrt(2) * v ** 2 * c.varsigma, 0.0,
                      -4 * math.sqrt(2) * v ** 2 * ln_u, -256 * v * ln_u])
    y = max(r.real for r in roots if abs(r.imag) < 1e-9 * max(1.0, abs(r)) and r.real > 0)
    return float(y * y)


def valley_xi(tau0, c: Theorem1Constants | None = None, clip_markov: bool = False) -> np.ndarray:
    """The xi that puts K'(tau0, xi) at K* (the floor of the bound's valley), per tau0; NaN where
    no xi > 0 does. Along this curve the bound changes only through its xi term."""
    c = (c or Theorem1Constants()).check()
    tau0 = np.asarray(tau0, float)
    target = optimal_k_prime(c) / c.steps  # K*/K = 1 + tau0 (1 - M / xi)
    m = output_norm_bound(c)
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = tau0 * m / (1.0 + tau0 - target)
    ok = (tau0 > 0) & (1.0 + tau0 - target > 0)
    if clip_markov:  # accepted share is >= 0: K' >= K, so the valley exists only if K* >= K
        ok &= target >= 1.0
    return np.where(ok, xi, np.nan)


@dataclass(frozen=True)
class GridMinimum:
    """The grid search of section V-C: the parts on the grid and its minimiser."""

    tau0_values: np.ndarray
    xi_values: np.ndarray
    parts: BoundParts  # arrays of shape (len(tau0_values), len(xi_values))
    index: tuple[int, int]
    tau0: float
    xi: float
    bound: float
    k_prime: float
    edges: tuple[str, ...]  # grid edges the minimiser lies on ("tau0 min", "xi min", ...)

    @property
    def n_valid(self) -> int:
        return int(self.parts.valid.sum())


def minimise(tau0_values, xi_values, c: Theorem1Constants | None = None,
             clip_markov: bool = False, proof_form: bool = False) -> GridMinimum:
    """Evaluate eq. 34 on the grid tau0_values x xi_values and return its minimiser (the first in
    row-major order on ties). Raises ParameterError when the grid has no valid cell."""
    c = (c or Theorem1Constants()).check()
    t = np.asarray(tau0_values, float).ravel()
    x = np.asarray(xi_values, float).ravel()
    if t.size == 0 or x.size == 0:
        raise ParameterError("theorem1: the grid is empty")
    if t.size * x.size > MAX_GRID_CELLS:
        raise ParameterError(f"theorem1: the grid has {t.size * x.size:,} cells; at most "
                             f"{MAX_GRID_CELLS:,}")
    parts = bound_parts(t[:, None], x[None, :], c, clip_markov, proof_form)
    if not parts.valid.any():
        raise ParameterError("theorem1: no grid cell has K' > 0 (the bound is undefined "
                             "everywhere on this grid; raise xi or lower tau0)")
    total = np.where(parts.valid, parts.total, np.inf)
    i, j = np.unravel_index(int(np.argmin(total)), total.shape)
    edges = []
    if t.size > 1 and i == 0:
        edges.append("tau0 min")
    if t.size > 1 and i == t.size - 1:
        edges.append("tau0 max")
    if x.size > 1 and j == 0:
        edges.append("xi min")
    if x.size > 1 and j == x.size - 1:
        edges.append("xi max")
    return GridMinimum(tau0_values=t, xi_values=x, parts=parts, index=(int(i), int(j)),
                       tau0=float(t[i]), xi=float(x[j]), bound=float(total[i, j]),
                       k_prime=float(parts.k_prime[i, j]), edges=tuple(edges))


def sensitivity(c: Theorem1Constants | None = None, factors=(0.5, 2.0),
                tau0: float = PAPER_POINT[0], clip_markov: bool = False) -> list[dict]:
    """Per constant and factor: K* and the valley's xi at ``tau0`` with that constant scaled
    (``steps`` and ``episodes`` rounded; a scaled value the theorem excludes is skipped)."""
    c = (c or Theorem1Constants()).check()
    rows = [{"constant": "(paper values)", "value": None, "k_star": optimal_k_prime(c),
             "valley_xi": float(valley_xi(tau0, c, clip_markov))}]
    for f in fields(c):
        for fac in factors:
            v = getattr(c, f.name) * fac
            if f.name in ("steps", "episodes"):
                v = round(v)
            try:
                cc = c.with_values(**{f.name: v})
            except ParameterError:
                continue
            rows.append({"constant": f.name, "value": v, "k_star": optimal_k_prime(cc),
                         "valley_xi": float(valley_xi(tau0, cc, clip_markov))})
    return rows


def parse_axis(text: str, name: str) -> np.ndarray:
    """'lo:hi:n' -> n evenly spaced values from lo to hi inclusive (n = 1 needs lo = hi)."""
    parts = text.split(":")
    try:
        if len(parts) != 3:
            raise ValueError
        lo, hi, n = float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        raise ParameterError(f"theorem1: --{name} {text!r}: expected lo:hi:n (e.g. 0:1:21)") \
            from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or n < 1 or hi < lo or (n == 1 and hi != lo):
        raise ParameterError(f"theorem1: --{name} {text!r}: need finite lo <= hi and n >= 1 "
                             "(n = 1 only with lo = hi)")
    if n > 100_000:
        raise ParameterError(f"theorem1: --{name} {text!r}: at most 100000 points per axis")
    values = np.linspace(lo, hi, n)
    if name == "tau0" and (lo < 0 or hi > 1):
        raise ParameterError(f"theorem1: --tau0 {text!r}: tau0 is a share in [0, 1] (eq. 18)")
    if name == "xi" and lo <= 0:
        raise ParameterError(f"theorem1: --xi {text!r}: the threshold xi must be > 0")
    return values
