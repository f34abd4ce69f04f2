"""``draw_slate``: the one place actions are drawn, with the probability they were drawn with."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pytest
from scipy import stats

from bandits import draw_slate

WEIGHTS = {"a": 0.5, "b": 0.3, "never": 0.0, "c": 0.2}


def _distribution(remaining: Sequence[str]) -> dict[str, float]:
    total = sum(WEIGHTS[a] for a in remaining)
    return {a: WEIGHTS[a] / total for a in remaining}


def test_first_rank_frequencies_are_the_distribution_and_propensities_are_exact() -> None:
    rng = np.random.default_rng(11)
    draws = [draw_slate(_distribution, list(WEIGHTS), 2, rng) for _ in range(20_000)]
    first = Counter(slate[0].action for slate in draws)
    assert first["never"] == 0
    observed = [first[a] for a in ("a", "b", "c")]
    expected = [20_000 * WEIGHTS[a] for a in ("a", "b", "c")]
    assert stats.chisquare(observed, expected).pvalue > 0.001
    for slate in draws[:200]:
        top, second = slate
        assert top.rank == 1 and second.rank == 2 and top.action != second.action
        assert top.propensity == pytest.approx(WEIGHTS[top.action])
        assert second.propensity == pytest.approx(
            WEIGHTS[second.action] / (1.0 - WEIGHTS[top.action])
        )


class _AtTheTotal:
    """A generator whose uniform draw lands on 1: where rounding can put ``u x total``."""

    def random(self) -> float:
        return 1.0


def test_a_draw_at_the_total_takes_the_last_action_that_can_be_drawn() -> None:
    distribution = {"a": 0.5, "b": 0.5, "zero": 0.0}
    (draw,) = draw_slate(lambda _r: distribution, list(distribution), 1, _AtTheTotal())  # type: ignore[arg-type]
    assert draw.action == "b" and draw.propensity == 0.5
