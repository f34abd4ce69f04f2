"""Linear Thompson sampling over disjoint per-action ridge posteriors.

Choice probabilities are computed by Monte Carlo over posterior draws from a generator seeded
by ``(seed, n_updates)``, so ``predict_proba_one`` is reproducible and has no side effects.

References
----------
Agrawal & Goyal (2013), "Thompson sampling for contextual bandits with linear payoffs",
Algorithm 1 (posterior N(theta_hat, v^2 B^-1)); Chapelle & Li (2011), Section 2.
"""

from __future__ import annotations

import numpy as np

from bandits.base import (
    Actions,
    Context,
    Payoff,
    apply_floor,
    check_scalar,
    payoff_arrays,
    register,
)
from bandits.linucb import DisjointLinearPolicy


@register
class LinearTSPolicy(DisjointLinearPolicy):
    """Disjoint linear Thompson sampling with Monte Carlo choice probabilities.

    Parameters
    ----------
    v
        Posterior scale v > 0 (Agrawal & Goyal 2013, Alg. 1).
    n_draws
        Posterior draws used to estimate the choice probabilities (>= 1).
    dim, l2, floor, seed
        Feature dimension, ridge penalty, probability floor, seed.
    """

    name = "linear-ts"

    def __init__(
        self,
        *,
        seed: int | None = None,
        floor: float = 0.01,
        v: float = 0.3,
        n_draws: int = 256,
        dim: int = 32,
        l2: float = 1.0,
    ) -> None:
        super().__init__(seed=seed, floor=floor, dim=dim, l2=l2)
        self.v = check_scalar(v, "v", low=0.0, low_open=True)
        self.n_draws = int(check_scalar(n_draws, "n_draws", low=1))

    def predict_proba_one(
        self, context: Context, actions: Actions, payoff: Payoff | None = None
    ) -> dict[str, float]:
        if not actions:
            return {}
        x = self._x(context)
        names = list(actions)
        mean, var = self.arms.mean_var_many(x, names)
        sd = self.v * np.sqrt(np.maximum(var, 0.0))
        scale, offset = payoff_arrays(payoff, names)
        # Per action the sampled score theta~.x is N(mean, v^2 x'A^-1x): sample it directly.
        z = self._posterior_draws(self.arms.n_updates, self.n_draws, len(names))
        sampled = scale * (mean + sd * z) + offset
        wins = np.bincount(np.argmax(sampled, axis=1), minlength=len(names))
        p = wins / self.n_draws
        return apply_floor(dict(zip(names, p.tolist(), strict=True)), self.floor)
