"""The policy interface every decision policy implements, its registry, and the one slate sampler.

A policy answers two questions about a set of candidate actions for one context:

* ``score_one``: the expected reward of each action (for the engine: P(accept)), which the
  engine's arbitration multiplies by value and weight;
* ``predict_proba_one``: the probability with which the policy itself would choose each action.

Neither changes the policy's state. ``learn_one`` is the only method that does. Probabilities are
what off-policy evaluation and honest learning need, so a policy never returns a choice without
the exact probability it was drawn with: ``draw_slate`` is the single place where actions are
drawn, and it logs the probability it drew with.

References
----------
River's ``bandit/base.py`` for the ``*_one`` naming; VW's conditional contextual bandit (CCB)
for slot probabilities conditional on the slots above.
"""

from __future__ import annotations

import math
import pickle
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, TypeVar

import numpy as np

FeatureValue = float | int | str | bool | None
Context = Mapping[str, FeatureValue]
"""Feature name -> number or string. Missing features are allowed (cold start)."""
Actions = Mapping[str, Context]
"""Candidate action id -> the action's own features."""


class PolicyError(ValueError):
    """A policy was built or fed with an invalid argument; ``parameter`` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


def check_scalar(
    value: float,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a float if it is finite and within the bounds, else raise PolicyError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PolicyError(name, f"must be a finite number, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise PolicyError(name, f"must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value >= high if high_open else value > high):
        raise PolicyError(name, f"must be {'<' if high_open else '<='} {high}, got {value}")
    return float(value)


def check_feedback(reward: float, propensity: float) -> None:
    """Reject NaN/infinite rewards and propensities outside (0, 1]."""
    check_scalar(reward, "reward")
    check_scalar(propensity, "propensity", low=0.0, high=1.0, low_open=True)


Payoff = Mapping[str, tuple[float, float]]
"""Per action ``(scale, offset)``: the arbitration's payoff ``scale * P(accept) + offset``."""


def payoff_arrays(payoff: Payoff | None, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, offset)`` arrays in the order of ``names``; ``(1, 0)`` without a payoff."""
    if payoff is None:
        return np.ones(len(names)), np.zeros(len(names))
    return (
        np.array([payoff[a][0] for a in names], dtype=float),
        np.array([payoff[a][1] for a in names], dtype=float),
    )


def with_payoff(values: Mapping[str, float], payoff: Payoff | None) -> dict[str, float]:
    """``scale * value + offset`` per action (the values themselves without a payoff)."""
    if payoff is None:
        return dict(values)
    return {a: (p := payoff[a])[0] * v + p[1] for a, v in values.items()}


def greedy_probabilities(
    scores: Mapping[str, float], explore: float, payoff: Payoff | None = None
) -> dict[str, float]:
    """The action best on ``scale * score + offset`` (the score itself without a payoff) gets
    ``1 - explore (K - 1)``, every other one ``explore``; the first of equals wins."""
    return greedy_over(with_payoff(scores, payoff), list(scores), explore)


def greedy_over(
    values: Mapping[str, float], actions: Sequence[str], explore: float, epsilon: float = 0.0
) -> dict[str, float]:
    """``greedy_probabilities`` over ``actions`` from their ``values`` already paid out: a slate
    computes the values once and asks rank by rank over the actions not yet drawn. With
    ``epsilon``, mixed as ``mix_uniform`` mixes, in closed form: the actions but the best keep
    one probability, so the mix costs no pass over them."""
    if not actions:
        return {}
    best = max(actions, key=values.__getitem__)  # the first of equals, as ``max`` keeps it
    other, top = _greedy_split(len(actions), explore, epsilon)
    probabilities = dict.fromkeys(actions, other)
    probabilities[best] = top
    return probabilities


def _greedy_split(k: int, explore: float, epsilon: float) -> tuple[float, float]:
    """``(each other action, the best)``: the greedy probabilities among ``k`` actions, mixed
    with ``epsilon`` uniform exploration."""
    keep, spread = 1.0 - epsilon, epsilon / k
    return keep * explore + spread, keep * (1.0 - explore * (k - 1)) + spread


def mix_uniform(probabilities: Mapping[str, float], epsilon: float) -> dict[str, float]:
    """``(1 - epsilon) p + epsilon / K``: every action keeps at least ``epsilon / K``."""
    if not probabilities:
        return {}
    if not epsilon:
        return dict(probabilities)
    keep, spread = 1.0 - epsilon, epsilon / len(probabilities)
    return {a: keep * p + spread for a, p in probabilities.items()}


class PosteriorDraws:
    """The standard normal draws of a Thompson sampler's choice probabilities, shape
    ``(n_draws, k)``, from a generator seeded by ``(seed, n_updates)``: the same draws until the
    policy learns again, so they are made once per snapshot and candidate count (a slate asks
    for K, then K - 1, ... candidates), not per call. A cache, not state: it pickles empty."""

    MAX_ENTRIES = 16

    def __init__(self) -> None:
        self._entries: dict[tuple[int, int, int, int], np.ndarray] = {}

    def draws(self, seed: int | None, n_updates: int, n_draws: int, k: int) -> np.ndarray:
        key = (seed or 0, n_updates, n_draws, k)
        z = self._entries.get(key)
        if z is None:
            z = np.random.default_rng([seed or 0, n_updates]).standard_normal((n_draws, k))
            entries = self._entries if len(self._entries) < self.MAX_ENTRIES else {}
            entries[key] = z
            self._entries = entries  # replaced whole, never cleared under a reader
        return z

    def __reduce__(self) -> tuple[type[PosteriorDraws], tuple[()]]:
        return (PosteriorDraws, ())


def apply_floor(probabilities: Mapping[str, float], floor: float) -> dict[str, float]:
    """Mix ``probabilities`` with the uniform distribution so every action gets at least ``floor``.

    ``p' = floor + (1 - K * floor) * p`` keeps the order of the actions and sums to 1. When
    ``K * floor >= 1`` the floor cannot be met by anything but the uniform distribution.
    """
    k = len(probabilities)
    if k == 0 or floor <= 0.0:
        return dict(probabilities)
    if k * floor >= 1.0:
        return dict.fromkeys(probabilities, 1.0 / k)
    scale = 1.0 - k * floor
    return {a: floor + scale * p for a, p in probabilities.items()}


class Policy(ABC):
    """A contextual decision policy over a changing set of candidate actions.

    Parameters
    ----------
    seed
        Seeds the policy's own generator (used only where the policy's probabilities are
        themselves estimated by sampling, e.g. Thompson sampling).
    floor
        Minimum probability of every candidate action in ``predict_proba_one``, in [0, 1).
    """

    name: ClassVar[str]

    def __init__(self, *, seed: int | None = None, floor: float = 0.0) -> None:
        self.seed = seed
        self.floor = check_scalar(floor, "floor", low=0.0, high=1.0, high_open=True)

    @abstractmethod
    def score_one(self, context: Context, actions: Actions) -> dict[str, float]:
        """Expected reward of each action (point estimate); no side effects."""

    @abstractmethod
    def predict_proba_one(
        self, context: Context, actions: Actions, payoff: Payoff | None = None
    ) -> dict[str, float]:
        """Probability of choosing each action; sums to 1, each >= ``floor``; no side effects.

        ``payoff`` maps each action (it may hold others) to ``(scale, offset)``: the policy then
        explores over ``scale * P(accept) + offset`` instead of P(accept) (the engine passes
        value x weight x incrementality and minus the cost, so Thompson draws and confidence
        bounds are judged in money); None is ``(1, 0)`` for every action.
        """

    def slate_distribution(
        self,
        context: Context,
        actions: Actions,
        payoff: Payoff | None = None,
        priorities: Mapping[str, float] | None = None,
        epsilon: float = 0.0,
    ) -> Callable[[Sequence[str]], dict[str, float]]:
        """``predict_proba_one`` over any subset of ``actions``, mixed with ``epsilon`` uniform
        exploration (``mix_uniform``): what ``draw_slate`` asks rank by rank. A policy whose
        probabilities rest on per-action scores overrides it to score each action once per
        slate rather than once per rank. ``priorities`` is the payoff of ``score_one``'s answer
        for ``actions`` (``with_payoff``) where the caller has it already (the engine
        arbitrates on it): a policy that draws on its point estimates takes it instead of
        scoring again."""

        def over(remaining: Sequence[str]) -> dict[str, float]:
            subset = (
                actions if len(remaining) == len(actions) else {a: actions[a] for a in remaining}
            )
            return mix_uniform(self.predict_proba_one(context, subset, payoff), epsilon)

        return over

    @abstractmethod
    def learn_one(
        self,
        context: Context,
        actions: Actions,
        chosen: str,
        reward: float,
        propensity: float,
    ) -> None:
        """Learn one logged round: ``chosen`` was drawn with ``propensity``, earned ``reward``."""

    def _posterior_draws(self, n_updates: int, n_draws: int, k: int) -> np.ndarray:
        """Thompson samplers' standard normal draws (``PosteriorDraws``); the cache is made on
        first use, so snapshots pickled before it existed load too."""
        cache = vars(self).get("_normals")
        if cache is None:
            cache = PosteriorDraws()
            self._normals = cache
        return cache.draws(self.seed, n_updates, n_draws, k)

    def to_bytes(self) -> bytes:
        """The full state, for a versioned snapshot."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, data: bytes) -> Policy:
        """Rebuild a policy from ``to_bytes`` output (trusted: snapshots are our own)."""
        policy = pickle.loads(data)  # only our own snapshots: pickle is not for untrusted bytes
        if not isinstance(policy, cls):
            raise PolicyError("data", f"holds a {type(policy).__name__}, not a {cls.__name__}")
        return policy


class GreedyPolicy(Policy):
    """A policy that plays its best-scored action and spreads ``explore(K)`` on each other one."""

    @abstractmethod
    def explore(self, k: int) -> float:
        """The probability of each action but the best among ``k`` candidates."""

    def predict_proba_one(
        self, context: Context, actions: Actions, payoff: Payoff | None = None
    ) -> dict[str, float]:
        return greedy_probabilities(
            self.score_one(context, actions), self.explore(len(actions)), payoff
        )

    def slate_distribution(
        self,
        context: Context,
        actions: Actions,
        payoff: Payoff | None = None,
        priorities: Mapping[str, float] | None = None,
        epsilon: float = 0.0,
    ) -> Callable[[Sequence[str]], dict[str, float]]:
        # An action's score does not depend on the other candidates: scored once per slate.
        values = (
            with_payoff(self.score_one(context, actions), payoff)
            if priorities is None
            else priorities
        )
        return GreedySlate(values, self.explore, epsilon)


class GreedySlate:
    """A greedy policy's slate distribution: over the actions still to draw, the best on
    ``values`` gets ``1 - explore (K - 1)``, every other one ``explore`` (``greedy_over``),
    mixed with ``epsilon`` uniform exploration.

    Every action but the best has one probability, so ``pick`` finds the action a uniform draw
    lands on in closed form, as ``draw_slate``'s running sum over the same order would, instead
    of building the K probabilities and walking them (a decision draws from dozens of offers).
    """

    __slots__ = ("_epsilon", "_explore", "_values")

    def __init__(
        self, values: Mapping[str, float], explore: Callable[[int], float], epsilon: float
    ) -> None:
        self._values = values
        self._explore = explore
        self._epsilon = epsilon

    def __call__(self, remaining: Sequence[str]) -> dict[str, float]:
        return greedy_over(self._values, remaining, self._explore(len(remaining)), self._epsilon)

    def pick(self, remaining: Sequence[str], uniform: float) -> tuple[str, float]:
        """The action of ``remaining`` that ``uniform`` in [0, 1) draws, with its probability."""
        k = len(remaining)
        other, top = _greedy_split(k, self._explore(k), self._epsilon)
        best = remaining.index(max(remaining, key=self._values.__getitem__))  # first of equals
        total = top + other * (k - 1)
        threshold = uniform * total
        before = other * best  # the mass of the actions ahead of the best
        if threshold < before:
            index = int(threshold / other)
        elif threshold < before + top or other <= 0.0:
            index = best
        else:
            index = best + 1 + int((threshold - before - top) / other)
        index = min(index, k - 1)  # rounding: the last action, drawable as ``other`` > 0
        return remaining[index], (top if index == best else other) / total


_REGISTRY: dict[str, type[Policy]] = {}
P = TypeVar("P", bound=type[Policy])


def register(cls: P) -> P:
    """Class decorator adding a policy to the registry under its ``name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"policy name {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def available_policies() -> list[str]:
    """Names accepted by ``make_policy``, sorted."""
    return sorted(_REGISTRY)


def make_policy(name: str, *, seed: int | None = None, **params: Any) -> Policy:
    """Build a registered policy; unknown names or parameters raise ``PolicyError``."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise PolicyError(
            "name", f"unknown policy {name!r}; available: {', '.join(available_policies())}"
        ) from None
    try:
        return cls(seed=seed, **params)
    except TypeError as exc:  # an unexpected keyword: name it instead of a bare TypeError
        raise PolicyError("params", str(exc)) from None


@dataclass(frozen=True, slots=True)
class Draw:
    """One drawn action: its 1-based ``rank`` and the probability it was drawn with there."""

    action: str
    rank: int
    propensity: float


def draw_slate(
    distribution: Callable[[Sequence[str]], Mapping[str, float]],
    candidates: Sequence[str],
    limit: int,
    rng: np.random.Generator,
) -> list[Draw]:
    """Draw up to ``limit`` distinct actions, rank by rank.

    At rank ``r`` the sampler asks ``distribution`` for the probabilities over the candidates not
    yet drawn and draws one. The logged ``propensity`` is that probability: the chance of this
    action at this rank given the actions above it (as slots are logged in VW's conditional
    contextual bandits). At rank 1 it is the policy's own probability. The probability of the
    whole slate is the product of the propensities.
    """
    pick = (
        distribution.pick
        if isinstance(distribution, GreedySlate)
        else partial(_pick_on_running_sum, distribution)
    )
    remaining = list(candidates)
    drawn: list[Draw] = []
    for rank in range(1, min(limit, len(remaining)) + 1):
        action, propensity = pick(remaining, float(rng.random()))
        drawn.append(Draw(action=action, rank=rank, propensity=propensity))
        remaining.remove(action)
    return drawn


def _pick_on_running_sum(
    distribution: Callable[[Sequence[str]], Mapping[str, float]],
    remaining: Sequence[str],
    uniform: float,
) -> tuple[str, float]:
    """The action of ``remaining`` that ``uniform`` in [0, 1) draws, with its probability."""
    probabilities = distribution(remaining)
    total = sum(probabilities.values())
    # One uniform draw against the running sum: exact, and faster than numpy for K <= 100.
    threshold = uniform * total
    running = 0.0
    for candidate, p in probabilities.items():
        running += p
        if threshold < running:
            return candidate, p / total
    # Rounding left the threshold at the total: the last action that can be drawn.
    action = next(a for a in reversed(list(probabilities)) if probabilities[a] > 0.0)
    return action, probabilities[action] / total
