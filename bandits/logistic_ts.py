"""Logistic Thompson sampling with a Laplace approximation, one disjoint model per action.

Each action keeps a Gaussian posterior N(m, P^-1) over the weights of a logistic model of
P(reward = 1 | context). An event takes one online Newton step: ``P += p(1-p) x x'`` (the Hessian
of the log-likelihood, as in the Laplace update of Chapelle & Li's Algorithm 3, here with the full
matrix) and ``m += P^-1 x (y - p)``; ``P^-1`` is kept by Sherman-Morrison. Choice probabilities
are Monte Carlo estimates over posterior draws from a generator seeded by ``(seed, n_updates)``.
Since sigmoid is monotone, sampling the weights and taking the argmax of ``sigmoid(w.x)`` equals
the argmax of ``w.x ~ N(m.x, x'P^-1 x)``, which is sampled directly.

References
----------
Chapelle & Li (2011), "An empirical evaluation of Thompson sampling", Algorithm 3 (regularized
logistic regression with Laplace approximation); Hazan, Agarwal, Kale (2007), "Logarithmic regret
algorithms for online convex optimization", online Newton step.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit

from bandits.base import (
    Actions,
    Context,
    Payoff,
    Policy,
    apply_floor,
    check_feedback,
    check_scalar,
    payoff_arrays,
    register,
)
from bandits.features import Featurizer

SATURATED_LOGIT = 30.0
"""Beyond this |logit| ``expit`` is within 1e-13 of 0 or 1: payoffs may tie in float."""


@register
class LogisticTSPolicy(Policy):
    """Disjoint logistic Thompson sampling (Laplace approximation, online Newton updates).

    Parameters
    ----------
    prior_precision
        Precision of the N(0, I / prior_precision) prior on the weights (> 0).
    prior_bias
        Prior mean of the intercept (log-odds), e.g. ``log(0.05 / 0.95)`` for a 5 % base rate.
    scale
        Multiplies the posterior standard deviation when sampling (> 0); 1 is plain TS.
    n_draws
        Posterior draws for the choice probabilities (>= 1).
    dim, floor, seed
        Feature dimension, probability floor, seed.
    """

    name = "logistic-ts"

    def __init__(
        self,
        *,
        seed: int | None = None,
        floor: float = 0.01,
        prior_precision: float = 1.0,
        prior_bias: float = -2.0,
        scale: float = 1.0,
        n_draws: int = 256,
        dim: int = 32,
    ) -> None:
        super().__init__(seed=seed, floor=floor)
        self.prior_precision = check_scalar(
            prior_precision, "prior_precision", low=0.0, low_open=True
        )
        self.prior_bias = check_scalar(prior_bias, "prior_bias")
        self.scale = check_scalar(scale, "scale", low=0.0, low_open=True)
        self.n_draws = int(check_scalar(n_draws, "n_draws", low=1))
        self.featurizer = Featurizer(dim, interactions=False)
        self.dim = self.featurizer.dim
        self.index: dict[str, int] = {}
        self.cov = np.zeros((0, self.dim, self.dim))
        self.mean = np.zeros((0, self.dim))
        self.n_updates = 0

    def _prior_mean(self) -> np.ndarray:
        m = np.zeros(self.dim)
        m[0] = self.prior_bias
        return m

    def _slot(self, action: str) -> int:
        i = self.index.get(action)
        if i is None:
            i = len(self.index)
            self.index[action] = i
            eye = np.eye(self.dim) / self.prior_precision
            self.cov = np.concatenate([self.cov, eye[None]])
            self.mean = np.concatenate([self.mean, self._prior_mean()[None]])
        return i

    def _stats(self, x: np.ndarray, action: str) -> tuple[float, float]:
        i = self.index.get(action)
        if i is None:
            return self.prior_bias, float(x @ x) / self.prior_precision
        return float(self.mean[i] @ x), float(x @ self.cov[i] @ x)

    def _stats_many(self, x: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        idx = np.fromiter((self.index.get(a, -1) for a in names), dtype=np.intp, count=len(names))
        known = idx >= 0
        if known.all():  # the usual case: every candidate has been learnt about
            return (self.mean @ x)[idx], ((self.cov @ x) @ x)[idx]
        mu = np.full(len(names), self.prior_bias)
        var = np.full(len(names), float(x @ x) / self.prior_precision)
        if known.any():
            rows = idx[known]
            mu[known] = self.mean[rows] @ x
            var[known] = (self.cov[rows] @ x) @ x
        return mu, var

    def score_one(self, context: Context, actions: Actions) -> dict[str, float]:
        """Posterior-mean probit-corrected P(reward): ``sigmoid(mu / sqrt(1 + pi s2 / 8))``."""
        x = self.featurizer.transform_context(context)
        names = list(actions)
        mu, s2 = self._stats_many(x, names)
        # expit, not 1 / (1 + exp(-z)): no overflow warning for large |z|
        p = expit(mu / np.sqrt(1.0 + np.pi * np.maximum(s2, 0.0) / 8.0))
        return dict(zip(names, p.tolist(), strict=True))

    def predict_proba_one(
        self, context: Context, actions: Actions, payoff: Payoff | None = None
    ) -> dict[str, float]:
        if not actions:
            return {}
        x = self.featurizer.transform_context(context)
        names = list(actions)
        mu, var = self._stats_many(x, names)
        sd = self.scale * np.sqrt(np.maximum(var, 0.0))
        logits = mu + sd * self._posterior_draws(self.n_updates, self.n_draws, len(names))
        if payoff is None:  # the sigmoid is monotone: the largest logit wins
            winners = np.argmax(logits, axis=1)
        else:
            scale, offset = payoff_arrays(payoff, names)
            sampled = scale * expit(logits) + offset
            winners = np.argmax(sampled, axis=1)
            if np.abs(logits).max() > SATURATED_LOGIT:
                # expit rounds to exactly 0 or 1 out there: among equal payoffs the larger
                # logit wins, as it would in exact arithmetic.
                tied = sampled == sampled.max(axis=1, keepdims=True)
                winners = np.argmax(np.where(tied, logits, -np.inf), axis=1)
        wins = np.bincount(winners, minlength=len(names))
        return apply_floor(
            dict(zip(names, (wins / self.n_draws).tolist(), strict=True)), self.floor
        )

    def learn_one(
        self, context: Context, actions: Actions, chosen: str, reward: float, propensity: float
    ) -> None:
        check_feedback(reward, propensity)
        y = min(max(float(reward), 0.0), 1.0)
        x = self.featurizer.transform_context(context)
        i = self._slot(chosen)
        p = 1.0 / (1.0 + math.exp(-float(np.clip(self.mean[i] @ x, -30.0, 30.0))))
        h = max(p * (1.0 - p), 1e-6)
        cx = self.cov[i] @ x
        self.cov[i] -= np.outer(cx, cx) * (h / (1.0 + h * (x @ cx)))
        self.mean[i] += self.cov[i] @ x * (y - p)
        self.n_updates += 1
