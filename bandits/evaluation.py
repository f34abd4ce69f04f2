"""Off-policy evaluation of any registered policy against a log written by any system.

Estimators over arrays (shapes documented per function) and ``evaluate_policy``, which runs a
``Policy`` over a list of ``LoggedRound`` and cross-fits the reward model that doubly robust
needs. Confidence intervals are normal (CLT) intervals of the per-round terms; SNIPS uses the
delta method. Degenerate input (no rounds) returns a result with ``error`` set instead of raising.

References
----------
Horvitz & Thompson (1952) (IPS); Swaminathan & Joachims (2015), "The self-normalized estimator
for counterfactual learning", eq. 5 (SNIPS); Dudik, Langford, Li (2011), "Doubly robust policy
evaluation and learning", eq. 2 (DR); Chernozhukov et al. (2018), cross-fitting; Kish (1965)
effective sample size ``(sum w)^2 / sum w^2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from bandits.base import Actions, Context, Policy, PolicyError, check_scalar
from bandits.features import Featurizer
from bandits.linucb import RidgeArms


@dataclass(frozen=True, slots=True)
class LoggedRound:
    """One logged decision: the candidates, the chosen action, its reward and propensity."""

    context: Context
    actions: Actions
    chosen: str
    reward: float
    propensity: float


@dataclass(frozen=True, slots=True)
class Estimate:
    """A policy-value estimate with a (1 - alpha) confidence interval and effective sample size."""

    estimator: str
    value: float
    stderr: float
    ci_low: float
    ci_high: float
    ess: float
    n: int
    error: str | None = None


def _check(reward: np.ndarray, propensity: np.ndarray, target: np.ndarray) -> None:
    if not (reward.shape == propensity.shape == target.shape) or reward.ndim != 1:
        raise PolicyError("reward", "reward, propensity and target must be 1-d of equal length")
    if not np.all(np.isfinite(reward)):
        raise PolicyError("reward", "must be finite (no NaN)")
    if not np.all((propensity > 0) & (propensity <= 1)):
        raise PolicyError("propensity", "must lie in (0, 1]")
    if not np.all((target >= 0) & (target <= 1)):
        raise PolicyError("target", "must lie in [0, 1]")


def _result(name: str, terms: np.ndarray, w: np.ndarray, alpha: float) -> Estimate:
    n = len(terms)
    if n == 0:
        nan = float("nan")
        return Estimate(name, nan, nan, nan, nan, 0.0, 0, error="empty log")
    value = float(terms.mean())
    se = float(terms.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
    z = float(stats.norm.ppf(1 - alpha / 2))
    ess = float(w.sum() ** 2 / (w**2).sum()) if (w**2).sum() > 0 else 0.0
    return Estimate(name, value, se, value - z * se, value + z * se, ess, n)


def ips(
    reward: np.ndarray, propensity: np.ndarray, target: np.ndarray, *, alpha: float = 0.05
) -> Estimate:
    """Inverse propensity scoring: ``V = mean(pi(a_i|x_i) / p_i * r_i)``.

    Parameters
    ----------
    reward, propensity, target
        Shape ``(n,)``: logged reward, logging probability of the chosen action, and the
        evaluated policy's probability of that same action.
    """
    reward, propensity, target = (np.asarray(v, float) for v in (reward, propensity, target))
    _check(reward, propensity, target)
    w = target / propensity
    return _result("ips", w * reward, w, alpha)


def snips(
    reward: np.ndarray, propensity: np.ndarray, target: np.ndarray, *, alpha: float = 0.05
) -> Estimate:
    """Self-normalised IPS: ``V = sum(w r) / sum(w)`` (Swaminathan & Joachims 2015, eq. 5).

    The standard error is the delta-method one: the terms are ``w (r - V) / mean(w)``.
    """
    reward, propensity, target = (np.asarray(v, float) for v in (reward, propensity, target))
    _check(reward, propensity, target)
    w = target / propensity
    if len(w) == 0 or w.sum() <= 0:
        return (
            _result("snips", np.zeros(0), w, alpha)
            if len(w) == 0
            else Estimate(
                "snips",
                float("nan"),
                float("nan"),
                float("nan"),
                float("nan"),
                0.0,
                len(w),
                error="target puts no weight on any logged action",
            )
        )
    value = float((w * reward).sum() / w.sum())
    influence = w * (reward - value) / w.mean()
    res = _result("snips", influence + value, w, alpha)
    return res


def doubly_robust(
    reward: np.ndarray,
    propensity: np.ndarray,
    target: np.ndarray,
    direct: np.ndarray,
    predicted_chosen: np.ndarray,
    *,
    alpha: float = 0.05,
) -> Estimate:
    """Doubly robust: ``V = mean(sum_a pi(a|x) q(x,a) + w (r - q(x,a_i)))`` (Dudik et al., eq. 2).

    Parameters
    ----------
    reward, propensity, target
        Shape ``(n,)`` as in ``ips``.
    direct
        Shape ``(n,)``: ``sum_a pi(a|x_i) q(x_i, a)``, the direct-method term of each round.
    predicted_chosen
        Shape ``(n,)``: ``q(x_i, a_i)``, the reward model at the logged action.
    """
    reward, propensity, target = (np.asarray(v, float) for v in (reward, propensity, target))
    direct, predicted_chosen = np.asarray(direct, float), np.asarray(predicted_chosen, float)
    _check(reward, propensity, target)
    w = target / propensity
    return _result("dr", direct + w * (reward - predicted_chosen), w, alpha)


def evaluate_policy(
    policy: Policy,
    log: Sequence[LoggedRound],
    *,
    n_folds: int = 2,
    seed: int = 0,
    l2: float = 1.0,
    dim: int = 32,
    alpha: float = 0.05,
) -> dict[str, Estimate]:
    """IPS, SNIPS and DR of ``policy`` (frozen: it does not learn) on ``log``.

    The DR reward model is a per-action ridge regression on hashed context features, cross-fitted:
    the log is split into ``n_folds`` random folds and each fold is scored by a model fitted on
    the others, so no round's own reward enters its prediction.
    """
    n_folds = int(check_scalar(n_folds, "n_folds", low=2))
    check_scalar(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True)
    n = len(log)
    reward = np.array([r.reward for r in log], float)
    propensity = np.array([r.propensity for r in log], float)
    target = np.zeros(n)
    direct = np.zeros(n)
    q_chosen = np.zeros(n)
    featurizer = Featurizer(dim, interactions=False)
    xs = [featurizer.transform_context(r.context) for r in log]
    fold = np.random.default_rng(seed).integers(0, n_folds, size=n)
    for k in range(n_folds):
        model = RidgeArms(featurizer.dim, check_scalar(l2, "l2", low=0.0, low_open=True))
        for i in np.flatnonzero(fold != k).tolist():
            model.update(xs[i], log[i].chosen, log[i].reward)
        for i in np.flatnonzero(fold == k).tolist():
            r = log[i]
            probs = policy.predict_proba_one(r.context, r.actions)
            target[i] = probs.get(r.chosen, 0.0)
            q = {a: model.mean_var(xs[i], a)[0] for a in r.actions}
            direct[i] = sum(probs[a] * q[a] for a in probs)
            q_chosen[i] = q.get(r.chosen, 0.0)
    return {
        "ips": ips(reward, propensity, target, alpha=alpha),
        "snips": snips(reward, propensity, target, alpha=alpha),
        "dr": doubly_robust(reward, propensity, target, direct, q_chosen, alpha=alpha),
    }
