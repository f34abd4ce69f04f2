"""Epsilon-greedy over disjoint per-action ridge regressions.

References
----------
Sutton & Barto (2018), "Reinforcement Learning: An Introduction", Section 2.2 (epsilon-greedy).
"""

from __future__ import annotations

from bandits.base import GreedyPolicy, check_scalar, register
from bandits.linucb import DisjointLinearPolicy


@register
class EpsilonGreedyPolicy(GreedyPolicy, DisjointLinearPolicy):
    """Greedy on ridge estimates with probability 1 - epsilon, uniform otherwise.

    Parameters
    ----------
    epsilon
        Share of uniform exploration, in [0, 1]; ``p_a = epsilon / K + (1 - epsilon) 1[a = best]``.
    dim, l2, floor, seed
        Feature dimension, ridge penalty, probability floor, seed.
    """

    name = "epsilon-greedy"

    def __init__(
        self,
        *,
        seed: int | None = None,
        floor: float = 0.0,
        epsilon: float = 0.1,
        dim: int = 32,
        l2: float = 1.0,
    ) -> None:
        super().__init__(seed=seed, floor=floor, dim=dim, l2=l2)
        self.epsilon = check_scalar(epsilon, "epsilon", low=0.0, high=1.0)

    def explore(self, k: int) -> float:
        k = max(k, 1)
        return max(self.epsilon / k, min(self.floor, 1.0 / k))
