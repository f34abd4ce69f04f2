"""Beta-Bernoulli accept rates per action with epsilon-greedy exploration: the engine's default.

Not contextual: each action keeps a Beta(alpha, beta) posterior of its reward (reward > 0 counts
as a success). It is the simple learning default the engine starts with until a contextual policy
is configured.
"""

from __future__ import annotations

from bandits.base import (
    Actions,
    Context,
    GreedyPolicy,
    check_feedback,
    check_scalar,
    register,
)


@register
class BetaBernoulliPolicy(GreedyPolicy):
    """Posterior-mean accept rate per action; epsilon-greedy choice probabilities.

    Parameters
    ----------
    epsilon
        Share of choices spread uniformly over the candidates, in [0, 1].
    prior_alpha, prior_beta
        Beta prior pseudo-counts of successes and failures (> 0).
    """

    name = "beta-bernoulli"

    def __init__(
        self,
        *,
        seed: int | None = None,
        floor: float = 0.0,
        epsilon: float = 0.1,
        prior_alpha: float = 1.0,
        prior_beta: float = 19.0,
    ) -> None:
        super().__init__(seed=seed, floor=floor)
        self.epsilon = check_scalar(epsilon, "epsilon", low=0.0, high=1.0)
        self.prior_alpha = check_scalar(prior_alpha, "prior_alpha", low=0.0, low_open=True)
        self.prior_beta = check_scalar(prior_beta, "prior_beta", low=0.0, low_open=True)
        self.successes: dict[str, float] = {}
        self.trials: dict[str, float] = {}
        self._means: dict[str, float] | None = None
        """Posterior mean of each action with trials (a cache of ``successes``/``trials``)."""

    def score_one(self, context: Context, actions: Actions) -> dict[str, float]:
        means = vars(self).get("_means")  # snapshots pickled before the cache have none
        if means is None:
            a, b = self.prior_alpha, self.prior_beta
            means = {
                x: (a + self.successes.get(x, 0.0)) / (a + b + n) for x, n in self.trials.items()
            }
            self._means = means
        prior = self.prior_alpha / (self.prior_alpha + self.prior_beta)
        return {action: means.get(action, prior) for action in actions}

    def explore(self, k: int) -> float:
        return max(self.epsilon / max(k, 1), self.floor)

    def learn_one(
        self, context: Context, actions: Actions, chosen: str, reward: float, propensity: float
    ) -> None:
        check_feedback(reward, propensity)
        self._means = None  # the posterior means, made again on the next score
        self.trials[chosen] = self.trials.get(chosen, 0.0) + 1.0
        if reward > 0:
            self.successes[chosen] = self.successes.get(chosen, 0.0) + 1.0
