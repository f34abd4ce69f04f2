"""Exploration over arbitrated priorities: the distribution ``bandits.draw_slate`` draws from."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence


def epsilon_greedy(
    priorities: Mapping[str, float], epsilon: float
) -> Callable[[Sequence[str]], dict[str, float]]:
    """For any remaining set of offers: 1 - epsilon on the highest priority, epsilon spread evenly.

    Every remaining offer keeps at least ``epsilon / K`` (the floor that off-policy evaluation
    needs); ties go to the first offer in catalogue order, so the draw is reproducible.
    """

    def distribution(remaining: Sequence[str]) -> dict[str, float]:
        k = len(remaining)
        best = max(remaining, key=priorities.__getitem__)
        explore = epsilon / k
        return {o: (1.0 - epsilon + explore if o == best else explore) for o in remaining}

    return distribution
