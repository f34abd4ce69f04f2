"""The greedy choice probabilities of the epsilon-greedy policies, on the arbitration's payoff."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bandits.base import greedy_probabilities

finite = st.floats(-1e6, 1e6, allow_nan=False)


def test_the_payoff_decides_which_action_is_best() -> None:
    scores = {"a": 0.5, "b": 0.1, "c": 0.3}
    assert greedy_probabilities(scores, 0.1) == pytest.approx({"a": 0.8, "b": 0.1, "c": 0.1})
    # b is worth 0.1 x 100 - 1 = 9 against a's 0.5 x 10 = 5 and c's 0.3 x 10 + 5 = 8
    payoff = {"a": (10.0, 0.0), "b": (100.0, -1.0), "c": (10.0, 5.0), "unused": (1.0, 0.0)}
    assert greedy_probabilities(scores, 0.1, payoff) == pytest.approx(
        {"a": 0.1, "b": 0.8, "c": 0.1}
    )


@given(st.dictionaries(st.sampled_from("abcdefgh"), st.tuples(finite, finite, finite), min_size=1))
def test_with_a_payoff_the_first_of_the_best_values_wins(rows: dict[str, tuple]) -> None:
    scores = {a: s for a, (s, _, _) in rows.items()}
    payoff = {a: (scale, offset) for a, (_, scale, offset) in rows.items()}
    values = {a: scale * s + offset for a, (s, scale, offset) in rows.items()}
    expected = max(values, key=values.__getitem__)  # max keeps the first of equals
    probabilities = greedy_probabilities(scores, 0.0, payoff)
    assert probabilities == {a: float(a == expected) for a in rows}


def test_no_actions_no_probabilities() -> None:
    assert greedy_probabilities({}, 0.1, {}) == {}
