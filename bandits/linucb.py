"""Disjoint LinUCB (Li et al. 2010) with a softmax layer and a probability floor.

References
----------
Li, Chu, Langford, Schapire (2010), "A contextual-bandit approach to personalized news article
recommendation", Algorithm 1 (disjoint model), eq. 4 (UCB); Sherman & Morrison (1950) rank-1
inverse update.
"""

from __future__ import annotations

import numpy as np

from bandits.base import (
    Actions,
    Context,
    Payoff,
    Policy,
    apply_floor,
    check_feedback,
    check_scalar,
    register,
    with_payoff,
)
from bandits.features import Featurizer


class RidgeArms:
    """Per-action ridge regression state: inverse covariance ``A^-1`` and ``b`` in numpy arrays.

    Parameters
    ----------
    dim
        Feature dimension d.
    l2
        Prior precision (ridge penalty) lambda > 0: ``A_0 = lambda I``.
    """

    def __init__(self, dim: int, l2: float) -> None:
        self.dim = dim
        self.l2 = l2
        self.index: dict[str, int] = {}
        self.a_inv = np.zeros((0, dim, dim))
        self.b = np.zeros((0, dim))
        self.theta = np.zeros((0, dim))
        self.n_updates = 0

    def slot(self, action: str) -> int:
        """Index of ``action``, creating a prior-only arm for a new action (cold start)."""
        i = self.index.get(action)
        if i is None:
            i = len(self.index)
            self.index[action] = i
            eye = np.eye(self.dim) / self.l2
            self.a_inv = np.concatenate([self.a_inv, eye[None]])
            self.b = np.concatenate([self.b, np.zeros((1, self.dim))])
            self.theta = np.concatenate([self.theta, np.zeros((1, self.dim))])
        return i

    def mean_var(self, x: np.ndarray, action: str) -> tuple[float, float]:
        """Posterior mean ``theta.x`` and ``x' A^-1 x`` (prior if the action is unseen)."""
        i = self.index.get(action)
        if i is None:
            return 0.0, float(x @ x) / self.l2
        return float(self.theta[i] @ x), float(x @ self.a_inv[i] @ x)

    def _rows(self, actions: list[str]) -> np.ndarray:
        """Each action's arm index, -1 for an action never learnt about (its prior applies)."""
        return np.fromiter(
            (self.index.get(a, -1) for a in actions), dtype=np.intp, count=len(actions)
        )

    def means(self, x: np.ndarray, actions: list[str]) -> np.ndarray:
        """Posterior means ``theta.x`` of ``actions`` (0 for an unseen action), shape ``(K,)``."""
        rows = self._rows(actions)
        if not len(self.index):
            return np.zeros(len(actions))
        return np.where(rows >= 0, (self.theta @ x)[rows], 0.0)

    def mean_var_many(self, x: np.ndarray, actions: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised ``mean_var`` over ``actions``: two arrays of shape ``(len(actions),)``."""
        rows = self._rows(actions)
        known = rows >= 0
        if len(self.index) and known.all():  # the usual case; all arms at once, then pick
            return (self.theta @ x)[rows], ((self.a_inv @ x) @ x)[rows]
        mean = np.zeros(len(actions))
        var = np.full(len(actions), float(x @ x) / self.l2)
        if known.any():
            picked = rows[known]
            mean[known] = self.theta[picked] @ x
            var[known] = (self.a_inv[picked] @ x) @ x
        return mean, var

    def update(self, x: np.ndarray, action: str, target: float) -> None:
        """Sherman-Morrison: ``(A + x x')^-1 = A^-1 - A^-1 x x' A^-1 / (1 + x' A^-1 x)``."""
        i = self.slot(action)
        ax = self.a_inv[i] @ x
        self.a_inv[i] -= np.outer(ax, ax) / (1.0 + x @ ax)
        self.b[i] += target * x
        self.theta[i] = self.a_inv[i] @ self.b[i]
        self.n_updates += 1


class DisjointLinearPolicy(Policy):
    """Shared set-up of the disjoint linear policies: featurizer and per-action ridge state."""

    def __init__(
        self,
        *,
        seed: int | None = None,
        floor: float = 0.0,
        dim: int = 32,
        l2: float = 1.0,
        interactions: bool = False,
    ) -> None:
        super().__init__(seed=seed, floor=floor)
        self.l2 = check_scalar(l2, "l2", low=0.0, low_open=True)
        self.featurizer = Featurizer(dim, interactions=interactions)
        self.arms = RidgeArms(dim, self.l2)

    def _x(self, context: Context) -> np.ndarray:
        return self.featurizer.transform_context(context)

    def score_one(self, context: Context, actions: Actions) -> dict[str, float]:
        names = list(actions)
        return dict(zip(names, self.arms.means(self._x(context), names).tolist(), strict=True))

    def learn_one(
        self, context: Context, actions: Actions, chosen: str, reward: float, propensity: float
    ) -> None:
        check_feedback(reward, propensity)
        self.arms.update(self._x(context), chosen, float(reward))


def softmax(values: dict[str, float], temperature: float) -> dict[str, float]:
    """``p_a = exp(v_a / T) / sum_b exp(v_b / T)``, numerically stable."""
    if not values:
        return {}
    v = np.fromiter(values.values(), float) / temperature
    e = np.exp(v - v.max())
    e /= e.sum()
    return dict(zip(values, e.tolist(), strict=True))


@register
class LinUCBPolicy(DisjointLinearPolicy):
    """Disjoint LinUCB; the UCBs go through a softmax so every action has a known probability.

    Parameters
    ----------
    alpha
        Width of the confidence bonus (Li et al. 2010, eq. 4: ``theta.x + alpha sqrt(x'A^-1x)``).
    temperature
        Softmax temperature over UCB values (> 0); small means nearly greedy.
    dim, l2, floor, seed
        Feature dimension, ridge penalty, probability floor, seed.
    """

    name = "linucb"

    def __init__(
        self,
        *,
        seed: int | None = None,
        floor: float = 0.01,
        alpha: float = 1.0,
        temperature: float = 0.01,
        dim: int = 32,
        l2: float = 1.0,
    ) -> None:
        super().__init__(seed=seed, floor=floor, dim=dim, l2=l2)
        self.alpha = check_scalar(alpha, "alpha", low=0.0)
        self.temperature = check_scalar(temperature, "temperature", low=0.0, low_open=True)

    def ucb_one(self, context: Context, actions: Actions) -> dict[str, float]:
        """Upper confidence bound of each action (eq. 4)."""
        names = list(actions)
        mean, var = self.arms.mean_var_many(self._x(context), names)
        ucb = mean + self.alpha * np.sqrt(np.maximum(var, 0.0))
        return dict(zip(names, ucb.tolist(), strict=True))

    def predict_proba_one(
        self, context: Context, actions: Actions, payoff: Payoff | None = None
    ) -> dict[str, float]:
        """Softmax over the (payoff of the) upper confidence bounds; ``temperature`` is in the
        payoff's units."""
        bounds = with_payoff(self.ucb_one(context, actions), payoff)
        return apply_floor(softmax(bounds, self.temperature), self.floor)
