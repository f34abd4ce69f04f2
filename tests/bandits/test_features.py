"""Featurizer: fixed length, deterministic across instances, cold start never raises."""

from __future__ import annotations

import numpy as np
import pytest

from bandits import PolicyError
from bandits.features import Featurizer


def test_fixed_length_and_deterministic_across_instances() -> None:
    ctx = {"age": 40.0, "segment": "gold"}
    act = {"rate": 0.05, "kind": "card"}
    a = Featurizer(48).transform_one(ctx, act, "offer-1")
    b = Featurizer(48).transform_one(ctx, act, "offer-1")
    assert a.shape == (48,) and np.array_equal(a, b) and a[0] == 1.0


def test_interactions_and_ids_distinguish_offers() -> None:
    f = Featurizer(256)
    ctx = {"age": 2.0}
    x1 = f.transform_one(ctx, {"rate": 1.0}, "a")
    x2 = f.transform_one(ctx, {"rate": 1.0}, "b")
    assert not np.array_equal(x1, x2)
    plain = Featurizer(256, interactions=False).transform_one(ctx, {"rate": 1.0}, "a")
    assert np.count_nonzero(x1) > np.count_nonzero(plain)


def test_cold_start_and_scaling() -> None:
    f = Featurizer(32, scales={"income": 1000.0})
    x = f.transform_one({"income": 5000.0, "missing": None, "nan": float("nan")}, {}, "new")
    assert np.all(np.isfinite(x)) and 5.0 in x
    assert f.transform_context({}).sum() == 1.0


@pytest.mark.parametrize("dim", [0, 7, 3.5, True])
def test_bad_dim_is_named(dim: object) -> None:
    with pytest.raises(PolicyError, match="dim"):
        Featurizer(dim)  # type: ignore[arg-type]
