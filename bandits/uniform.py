"""Uniform random choice: the logging policy that makes off-policy evaluation easiest.

References
----------
Li, Chu, Langford, Wang (2011), "Unbiased offline evaluation of contextual-bandit-based news
article recommendation algorithms", Section 3 (uniform logging).
"""

from __future__ import annotations

from bandits.base import Actions, Context, Payoff, Policy, check_feedback, register


@register
class UniformPolicy(Policy):
    """Every candidate with probability 1/K; learns nothing."""

    name = "uniform"

    def score_one(self, context: Context, actions: Actions) -> dict[str, float]:
        return dict.fromkeys(actions, 0.0)

    def predict_proba_one(
        self, context: Context, actions: Actions, payoff: Payoff | None = None
    ) -> dict[str, float]:
        """Uniform whatever the payoff."""
        k = len(actions)
        return dict.fromkeys(actions, 1.0 / k) if k else {}

    def learn_one(
        self, context: Context, actions: Actions, chosen: str, reward: float, propensity: float
    ) -> None:
        check_feedback(reward, propensity)
