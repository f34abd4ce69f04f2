"""The population against its written specification.

Shares are checked against the spec's numbers within 4 binomial standard errors of the sample
size (``4 * sqrt(p (1 - p) / n)``), so a correct generator fails a check with probability of
order 1e-4 per check, and every check uses a fixed seed.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats

from simulations.catalog import CHANNELS, GROUPS, LIFECYCLES, PRODUCTS, TIERS
from simulations.population import (
    AGE_BAND_EDGES,
    DEFAULT_SPEC,
    Population,
    PopulationSpec,
    age_band,
    generate_population,
    main,
)

N = 200_000
SEED = 11
Z = 4.0


@pytest.fixture(scope="module")
def pop() -> Population:
    return generate_population(N, seed=SEED)


def assert_share(mask: NDArray[np.bool_], p: float, what: str) -> None:
    """``mask.mean()`` is within Z binomial standard errors of ``p``."""
    n = mask.shape[0]
    assert n > 0, what
    tolerance = Z * math.sqrt(p * (1 - p) / n) + 1e-12
    observed = float(mask.mean())
    assert abs(observed - p) <= tolerance, f"{what}: {observed:.5f} vs {p:.5f} +- {tolerance:.5f}"


COLUMNS = [f.name for f in dataclasses.fields(Population) if f.name not in ("seed", "spec")]


def test_same_seed_same_population() -> None:
    a, b = generate_population(5_000, seed=3), generate_population(5_000, seed=3)
    for name in COLUMNS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_different_seeds_different_draws() -> None:
    a, b = generate_population(5_000, seed=3), generate_population(5_000, seed=4)
    assert not np.array_equal(a.aum, b.aum)
    assert (a.group != b.group).mean() > 0.3  # independent draws disagree ~70% of the time
    assert (a.age != b.age).mean() > 0.5


def test_columns_are_read_only_and_aligned(pop: Population) -> None:
    for name in COLUMNS:
        column = getattr(pop, name)
        assert column.shape[0] == N, name
        assert not column.flags.writeable, name
    assert pop.products.shape == (N, len(PRODUCTS))
    np.testing.assert_array_equal(pop.customer_id, np.arange(N))


def test_group_and_tier_marginals(pop: Population) -> None:
    for g, share in enumerate(DEFAULT_SPEC.group_shares):
        assert_share(pop.group == g, share, f"group {GROUPS[g]}")
    for t, share in enumerate(DEFAULT_SPEC.tier_shares()):
        assert_share(pop.aum_tier == t, share, f"tier {TIERS[t]}")
    # The written spec itself mixes to the headline 80 / 17 / 3 %.
    np.testing.assert_allclose(DEFAULT_SPEC.tier_shares(), (0.80, 0.17, 0.03), atol=0.005)


def test_tier_given_group(pop: Population) -> None:
    for g in range(len(GROUPS)):
        in_group = pop.group == g
        for t, share in enumerate(DEFAULT_SPEC.tier_given_group[g]):
            assert_share(pop.aum_tier[in_group] == t, share, f"tier {t} | group {g}")


def test_lifecycle_marginals_and_conditionals(pop: Population) -> None:
    for s, share in enumerate(DEFAULT_SPEC.lifecycle_shares()):
        assert_share(pop.lifecycle == s, share, f"lifecycle {LIFECYCLES[s]}")
    for g in range(len(GROUPS)):
        in_group = pop.group == g
        for s, share in enumerate(DEFAULT_SPEC.lifecycle_given_group[g]):
            assert_share(pop.lifecycle[in_group] == s, share, f"lifecycle {s} | group {g}")


def test_tenure_follows_lifecycle(pop: Population) -> None:
    tenure = pop.tenure_months
    assert (tenure[pop.lifecycle == 0] < 3).all()
    growing = tenure[pop.lifecycle == 1]
    assert ((growing >= 3) & (growing < 36)).all()
    assert (tenure[pop.lifecycle == 2] >= 36).all()
    assert (tenure[pop.lifecycle == 3] >= 3).all()


def test_age_by_group(pop: Population) -> None:
    for g, (mean, sd, lo, hi) in enumerate(DEFAULT_SPEC.age_given_group):
        ages = pop.age[pop.group == g]
        assert ages.min() >= math.floor(lo) and ages.max() <= hi
        # floor(age) < k  <=>  age < k for an integer k, so the truncated normal CDF applies.
        k = math.floor(mean)
        a, b = (lo - mean) / sd, (hi - mean) / sd
        expected = float(stats.truncnorm.cdf(k, a, b, loc=mean, scale=sd))
        assert_share(ages < k, expected, f"P(age < {k} | group {GROUPS[g]})")
    pension = GROUPS.index("pension")
    assert pop.age[pop.group == pension].mean() > pop.age[pop.group != pension].mean() + 15


def test_risk_tolerance_given_age_band_and_pension(pop: Population) -> None:
    pension = pop.group == GROUPS.index("pension")
    bands = age_band(pop.age)
    for band_code, row in enumerate(DEFAULT_SPEC.risk_given_age_band):
        cell = ~pension & (bands == band_code)
        for level, share in enumerate(row, start=1):
            assert_share(pop.risk_tolerance[cell] == level, share, f"C{level} | band {band_code}")
    for level, share in enumerate(DEFAULT_SPEC.risk_pension, start=1):
        assert_share(pop.risk_tolerance[pension] == level, share, f"C{level} | pension")
    # Correlations the spec promises: pension customers and older customers are more cautious.
    assert pop.risk_tolerance[pension].mean() < pop.risk_tolerance[~pension].mean() - 0.5
    rho = stats.spearmanr(pop.age, pop.risk_tolerance).statistic
    assert rho < -0.1


def test_aum_within_tiers_and_ordered(pop: Population) -> None:
    lo, mid, high, top = DEFAULT_SPEC.aum_bounds
    mass, affluent, private = (pop.aum[pop.aum_tier == t] for t in range(3))
    assert mass.min() >= lo and mass.max() < mid
    assert affluent.min() >= mid and affluent.max() < high
    assert private.min() >= high and private.max() <= top
    assert np.median(mass) < np.median(affluent) < np.median(private)
    # Mass: truncated log-normal, P(aum < median parameter) = 0.5 / Phi(top of the tier).
    mu, sigma = math.log(DEFAULT_SPEC.mass_aum_median), DEFAULT_SPEC.mass_aum_sigma
    expected = 0.5 / stats.norm.cdf((math.log(mid) - mu) / sigma)
    assert_share(mass < DEFAULT_SPEC.mass_aum_median, expected, "mass below median")
    # Affluent: truncated Pareto, P(aum > 2 * low).
    alpha = DEFAULT_SPEC.pareto_alpha
    expected = (2.0**-alpha - (mid / high) ** alpha) / (1.0 - (mid / high) ** alpha)
    assert_share(affluent > 2 * mid, expected, "affluent above 2x the threshold")


def test_inflows(pop: Population) -> None:
    payroll = pop.group == GROUPS.index("payroll")
    pension = pop.group == GROUPS.index("pension")
    assert pop.regular_inflow[payroll | pension].all()
    assert (pop.monthly_inflow[payroll | pension] > 0).all()
    others = ~(payroll | pension)
    assert_share(pop.regular_inflow[others], DEFAULT_SPEC.other_regular_share, "other regular")
    assert (pop.monthly_inflow[~pop.regular_inflow] == 0).all()
    median, _ = DEFAULT_SPEC.payroll_inflow
    mass_payroll = payroll & (pop.aum_tier == 0)
    assert_share(pop.monthly_inflow[mass_payroll] < median, 0.5, "payroll salary below median")
    # Richer tiers have larger inflows.
    means = [pop.monthly_inflow[payroll & (pop.aum_tier == t)].mean() for t in range(3)]
    assert means[0] < means[1] < means[2]


def test_products_held(pop: Population) -> None:
    assert pop.products[:, PRODUCTS.index("current_account")].all()
    fund = PRODUCTS.index("wealth_fund")
    assert not pop.products[pop.risk_tolerance < 3, fund].any()
    bundle = PRODUCTS.index("payroll_bundle")
    assert not pop.products[pop.group != GROUPS.index("payroll"), bundle].any()
    table = DEFAULT_SPEC.holding_table()
    for p, product in enumerate(PRODUCTS):
        prob = table[p, pop.aum_tier, pop.group, pop.lifecycle]
        if product == "wealth_fund":
            prob = np.where(pop.risk_tolerance >= 3, prob, 0.0)
        expected, sd = prob.sum(), math.sqrt(float((prob * (1 - prob)).sum()))
        observed = int(pop.products[:, p].sum())
        assert abs(observed - expected) <= Z * sd + 1e-9, f"{product}: {observed} vs {expected}"
    # New customers hold fewer products than mature ones; private more than mass.
    held = pop.products.sum(axis=1)
    assert held[pop.lifecycle == 0].mean() < held[pop.lifecycle == 2].mean()
    assert held[pop.aum_tier == 0].mean() < held[pop.aum_tier == 2].mean()


def test_value_grade(pop: Population) -> None:
    for grade, share in enumerate(DEFAULT_SPEC.value_grade_shares, start=1):
        assert_share(pop.value_grade == grade, share, f"value grade {grade}")
    assert stats.spearmanr(pop.aum, pop.value_grade).statistic > 0.5
    means = [pop.value_grade[pop.aum_tier == t].mean() for t in range(3)]
    assert means[0] < means[1] < means[2]


def test_channels_and_app_use(pop: Population) -> None:
    bands = age_band(pop.age)
    for band_code, share in enumerate(DEFAULT_SPEC.app_user_given_age_band):
        assert_share(pop.app_user[bands == band_code], share, f"app user | band {band_code}")
    preferred = pop.preferred_channel
    app_channels = np.isin(preferred, [CHANNELS.index("app_banner"), CHANNELS.index("push")])
    assert not app_channels[~pop.app_user].any()
    rm = preferred == CHANNELS.index("rm_call")
    assert not rm[pop.aum_tier == 0].any()
    assert_share(rm[pop.aum_tier == 2], DEFAULT_SPEC.rm_preference_given_tier[2], "rm | private")
    # Among app users who do not prefer their RM, the app-user table applies.
    mass_app = pop.app_user & (pop.aum_tier == 0)
    for c, share in enumerate(DEFAULT_SPEC.channel_pref_app):
        assert_share(preferred[mass_app] == c, share, f"channel {CHANNELS[c]} | app, mass")


def test_timezones(pop: Population) -> None:
    spec = DEFAULT_SPEC
    for z, share in enumerate(spec.timezone_shares):
        assert_share(pop.timezone == z, share, f"timezone {spec.timezones[z]}")
    np.testing.assert_array_equal(
        pop.tz_offset_hours, np.asarray(spec.timezone_offsets)[pop.timezone]
    )


def test_attributes_are_the_engine_context(pop: Population) -> None:
    for i in (0, 1, N // 2, N - 1):
        attrs = pop.attributes(i)
        assert attrs["segment"] == TIERS[pop.aum_tier[i]]
        assert attrs["group"] == GROUPS[pop.group[i]]
        assert attrs["lifecycle"] in LIFECYCLES
        assert attrs["risk_tolerance"] == f"C{pop.risk_tolerance[i]}"
        assert attrs["products"] == [p for k, p in enumerate(PRODUCTS) if pop.products[i, k]]
        assert attrs["age"] == pop.age[i] and isinstance(attrs["age"], int)
        assert attrs["timezone"] in DEFAULT_SPEC.timezones
        assert attrs["preferred_channel"] in CHANNELS
        assert isinstance(attrs["aum"], float) and isinstance(attrs["value_grade"], int)
    assert pop.customer_key(42) == "C00000042"
    with pytest.raises(IndexError):
        pop.attributes(N)


def test_age_bands_edges() -> None:
    edges = np.array([17, *AGE_BAND_EDGES, 99])
    np.testing.assert_array_equal(age_band(edges - 1)[1:-1], np.arange(len(AGE_BAND_EDGES)))
    np.testing.assert_array_equal(age_band(edges)[1:-1], np.arange(1, len(AGE_BAND_EDGES) + 1))


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="group_shares"):
        PopulationSpec(group_shares=(0.5, 0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="tier_given_group"):
        PopulationSpec(tier_given_group=((1.0, 0.0, 0.0),) * 4)  # mixes to 100 % mass
    with pytest.raises(ValueError, match="risk_given_age_band"):
        PopulationSpec(risk_given_age_band=((1.0, 0.0, 0.0, 0.0, 0.0),) * 3)
    with pytest.raises(ValueError, match="n must be"):
        generate_population(0, seed=1)
    with pytest.raises(ValueError, match="seed must be"):
        generate_population(10, seed=-1)


def test_benchmark_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--customers", "2000", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "customers/s" in out and "2,000" in out
    assert all(label in out for label in TIERS)
