"""``draw_slate``: the one place actions are drawn, with the probability they were drawn with."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from bandits import draw_slate
from bandits.base import GreedySlate

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


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.5, -1.0]), min_size=1, max_size=30),
    policy_epsilon=st.floats(0.0, 1.0),
    mix=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
    limit=st.integers(1, 5),
)
def test_a_greedy_slate_draws_in_closed_form_what_the_running_sum_draws(
    values: list[float], policy_epsilon: float, mix: float, seed: int, limit: int
) -> None:
    """The same uniform draws give the same slate, with the same propensities, whether the
    greedy distribution is walked (any callable) or picked from in closed form."""
    names = [f"offer-{i}" for i in range(len(values))]
    slate = GreedySlate(dict(zip(names, values, strict=True)), lambda k: policy_epsilon / k, mix)
    closed = draw_slate(slate, names, limit, np.random.default_rng(seed))
    walked = draw_slate(
        lambda remaining: slate(remaining), names, limit, np.random.default_rng(seed)
    )
    assert [d.action for d in closed] == [d.action for d in walked]
    for fast, slow in zip(closed, walked, strict=True):
        assert fast.rank == slow.rank
        assert fast.propensity == pytest.approx(slow.propensity, rel=1e-9)


def test_a_greedy_slate_without_exploration_draws_the_best_and_at_the_total_the_last() -> None:
    slate = GreedySlate({"a": 1.0, "b": 3.0, "c": 3.0, "d": 2.0}, lambda _k: 0.0, 0.0)
    assert [slate.pick(["a", "b", "c", "d"], u) for u in (0.0, 0.5, 0.999)] == [("b", 1.0)] * 3
    exploring = GreedySlate({"a": 1.0, "b": 3.0, "c": 0.0}, lambda k: 0.3 / k, 0.0)
    assert exploring.pick(["a", "b", "c"], 1.0) == ("c", pytest.approx(0.1))
    assert exploring.pick(["a", "b", "c"], 0.0) == ("a", pytest.approx(0.1))
