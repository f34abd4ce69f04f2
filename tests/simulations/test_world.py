"""The ground truth: uplift signs, fatigue, ignoring, capacity, drift, delays and seeded draws.

Statistical checks compare counts of draws with the sum of the true probabilities within 4
standard deviations of a sum of independent Bernoulli draws.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from numpy.typing import NDArray

from simulations.catalog import DEFAULT_CATALOG, GROUPS, LIFECYCLES, PRODUCTS, TIERS
from simulations.population import Population, generate_population
from simulations.world import DEFAULT_RESPONSE, Drift, ResponseSpec, World

N = 100_000
Z = 4.0


@pytest.fixture(scope="module")
def pop() -> Population:
    return generate_population(N, seed=5)


@pytest.fixture
def world(pop: Population) -> World:
    return World(pop, DEFAULT_CATALOG, seed=6)


def everyone() -> NDArray[np.int64]:
    return np.arange(N, dtype=np.int64)


def assert_draws_match(draws: NDArray[np.bool_], p: NDArray[np.float64], what: str) -> None:
    expected = float(p.sum())
    sd = math.sqrt(float((p * (1 - p)).sum()))
    observed = int(draws.sum())
    assert abs(observed - expected) <= Z * sd + 1e-9, f"{what}: {observed} vs {expected:.1f}"


def test_same_seed_same_draws_and_reset(pop: Population) -> None:
    a, b = World(pop, seed=1), World(pop, seed=1)
    idx = everyone()[:20_000]
    ra = a.respond(idx, "credit_card_cashback", "sms", day=0)
    rb = b.respond(idx, "credit_card_cashback", "sms", day=0)
    for field in ("impression", "click", "accept", "refuse", "converted", "delay_days"):
        np.testing.assert_array_equal(getattr(ra, field), getattr(rb, field), err_msg=field)
    a.reset()
    again = a.respond(idx, "credit_card_cashback", "sms", day=0)
    np.testing.assert_array_equal(again.converted, ra.converted)
    np.testing.assert_array_equal(again.p_contacted, ra.p_contacted)


def test_different_seeds_different_draws(pop: Population) -> None:
    idx = everyone()[:20_000]
    ra = World(pop, seed=1).respond(idx, "credit_card_cashback", "sms", day=0)
    rb = World(pop, seed=2).respond(idx, "credit_card_cashback", "sms", day=0)
    assert not np.array_equal(ra.impression, rb.impression)
    assert not np.array_equal(ra.p_contacted, rb.p_contacted)  # hidden traits differ too


def test_probabilities_are_valid_and_zero_when_no_sale_is_possible(world: World) -> None:
    idx = everyone()
    pop = world.population
    for offer in DEFAULT_CATALOG.offers:
        for channel in offer.channels:
            p1 = world.conversion_probability(idx, offer.offer_id, channel)
            p0 = world.conversion_probability(idx, offer.offer_id, channel, contacted=False)
            assert ((p0 >= 0) & (p0 <= 1) & (p1 >= 0) & (p1 <= 1)).all()
            impossible = ~world.eligible(idx, offer.offer_id)
            assert (p0[impossible] == 0).all() and (p1[impossible] == 0).all()
    # Suitability: the R3 fund is never sold to C1/C2; holders cannot buy again.
    fund = world.eligible(idx, "wealth_fund_r3")
    assert not fund[pop.risk_tolerance < 3].any()
    assert not fund[pop.products[:, PRODUCTS.index("wealth_fund")]].any()
    assert fund.any()
    bundle = world.eligible(idx, "payroll_bundle")
    assert not bundle[pop.group != GROUPS.index("payroll")].any()


def test_uplift_is_positive_zero_and_negative(world: World) -> None:
    idx = everyone()
    pop = world.population
    positive = world.uplift(idx, "credit_card_cashback", "call_centre")
    eligible = world.eligible(idx, "credit_card_cashback")
    assert (positive[eligible] > 0).all()
    # Private-tier customers: the deposit's treatment effect multiplier is 0.
    private = world.eligible(idx, "time_deposit_12m") & (pop.aum_tier == 2)
    assert private.sum() > 100
    zero = world.uplift(idx[private], "time_deposit_12m", "rm_call")
    np.testing.assert_array_equal(zero, 0.0)
    affluent = world.eligible(idx, "time_deposit_12m") & (pop.aum_tier == 1)
    assert (world.uplift(idx[affluent], "time_deposit_12m", "rm_call") > 0).all()
    # Sleeping dogs: a win-back offer lowers a mature customer's conversion, raises a churner's.
    winback = world.eligible(idx, "winback_bonus")
    mature = winback & (pop.lifecycle == LIFECYCLES.index("mature"))
    churn = winback & (pop.lifecycle == LIFECYCLES.index("churn_risk"))
    assert (world.uplift(idx[mature], "winback_bonus", "sms") < 0).all()
    assert (world.uplift(idx[churn], "winback_bonus", "sms") > 0).all()


def test_drawn_conversions_match_the_truth_and_show_negative_uplift(world: World) -> None:
    pop = world.population
    winback = world.eligible(everyone(), "winback_bonus")
    mature = np.flatnonzero(winback & (pop.lifecycle == LIFECYCLES.index("mature")))
    half = mature.shape[0] // 2
    treated, control = mature[:half], mature[half:]
    # The design has the power it needs: the true uplift is at least 6 standard errors.
    true_uplift = world.uplift(treated, "winback_bonus", "sms").mean()
    p0 = world.conversion_probability(control, "winback_bonus", "sms", contacted=False).mean()
    assert true_uplift / math.sqrt(2 * p0 * (1 - p0) / half) < -6
    rt = world.respond(treated, "winback_bonus", "sms", day=0)
    rc = world.respond(control, "winback_bonus", "sms", day=0, contacted=False)
    assert_draws_match(rt.converted, rt.p_contacted, "treated conversions")
    assert_draws_match(rc.converted, rc.p_not_contacted, "control conversions")
    assert not rc.delivered.any() and not rc.impression.any()
    # Observed uplift is negative beyond 3 standard errors of the difference of two means.
    pt, pc = rt.converted.mean(), rc.converted.mean()
    se = math.sqrt(pt * (1 - pt) / treated.shape[0] + pc * (1 - pc) / control.shape[0])
    assert pt - pc + 3 * se < 0, (pt, pc, se)


def test_funnel_is_consistent(world: World) -> None:
    idx = everyone()
    r = world.respond(idx, "credit_card_cashback", "push", day=0)
    assert not (r.impression & ~r.delivered).any()
    assert not (r.click & ~r.impression).any()
    assert not (r.accept & ~r.click).any() and not (r.accept & ~r.converted).any()
    assert not (r.refuse & (r.accept | r.converted)).any()
    assert not r.delivered[~world.population.app_user].any()  # push needs the app
    np.testing.assert_array_equal(r.delay_days >= 0, r.converted)
    assert r.delay_days.max() < DEFAULT_RESPONSE.window_days
    offer_value = DEFAULT_CATALOG.offer("credit_card_cashback").value
    np.testing.assert_array_equal(r.value, np.where(r.converted, offer_value, 0.0))


def test_delays_follow_each_offers_mean(world: World) -> None:
    idx = everyone()
    window = DEFAULT_RESPONSE.window_days
    u = np.linspace(0.0005, 0.9995, 2_000)
    for offer_id in ("time_deposit_12m", "pension_account"):
        mean = DEFAULT_RESPONSE.offer(offer_id).mean_delay_days
        k = world.offer_indices(offer_id, u.shape[0])
        delays = world._delays(k, u)
        assert delays.min() >= 0 and delays.max() <= window - 1
        # The median of a truncated exponential: -mean * log(1 - (1 - exp(-W / mean)) / 2).
        median = -mean * math.log(1 - (1 - math.exp(-window / mean)) / 2)
        assert abs(np.median(delays) - median) <= 1.0
    quick = world.respond(idx, "time_deposit_12m", "sms", day=0)
    slow = world.respond(idx, "pension_account", "email", day=0)
    assert quick.delay_days[quick.converted].mean() < slow.delay_days[slow.converted].mean()


def test_fatigue_reduces_response(world: World) -> None:
    idx = everyone()
    eligible = idx[world.eligible(idx, "credit_card_cashback")]
    fresh = world.conversion_probability(eligible, "credit_card_cashback", "sms")
    tired = world.conversion_probability(
        eligible, "credit_card_cashback", "sms", contacts_so_far=np.full(eligible.shape, 3.0)
    )
    assert (tired < fresh).all()
    # Contacting the same customers again and again raises their state and lowers p1.
    sample = eligible[:5_000]
    first = world.respond(sample, "credit_card_cashback", "sms", day=0)
    for _ in range(4):
        world.respond(sample, "credit_card_cashback", "sms", day=0)
    recent, _ = world.channel_state(sample, "sms", day=0)
    np.testing.assert_allclose(recent, 5.0)
    later = world.conversion_probability(sample, "credit_card_cashback", "sms", day=0)
    assert (later < first.p_contacted).all()
    # Fatigue decays with the half-life, and other channels are not affected.
    half_life = DEFAULT_RESPONSE.fatigue_half_life_days
    decayed, _ = world.channel_state(sample, "sms", day=int(half_life))
    np.testing.assert_allclose(decayed, 2.5, rtol=1e-5)
    assert (world.channel_state(sample, "email", day=0)[0] == 0).all()


def test_ignored_channel_gets_ignored_more(world: World) -> None:
    idx = everyone()
    eligible = idx[world.eligible(idx, "credit_card_cashback")]
    seen_fresh = world.conversion_probability(eligible, "credit_card_cashback", "email")
    seen_ignored = world.conversion_probability(
        eligible, "credit_card_cashback", "email", ignored_by_channel=5
    )
    uplift_fresh = seen_fresh - world.conversion_probability(
        eligible, "credit_card_cashback", "email", contacted=False
    )
    uplift_ignored = seen_ignored - world.conversion_probability(
        eligible, "credit_card_cashback", "email", contacted=False
    )
    np.testing.assert_allclose(uplift_ignored, uplift_fresh * DEFAULT_RESPONSE.ignore_decay**5)
    # The streak counts contacts without engagement and resets on a click.
    sample = eligible[:20_000]
    clicks = np.zeros(sample.shape[0], dtype=np.int64)
    last_click = np.full(sample.shape[0], -1)
    rounds = 6
    for day in range(rounds):
        r = world.respond(sample, "credit_card_cashback", "email", day=day)
        clicks += r.click
        last_click[r.click] = day
    _, streak = world.channel_state(sample, "email", day=rounds)
    np.testing.assert_array_equal(streak, rounds - 1 - last_click)
    assert (clicks == 0).any() and (clicks > 0).any()
    # Impressions fall as the streak grows: a customer who ignored 5 sees less than one who
    # ignored none (both drawn fresh on the same day, same channel).
    r = world.respond(sample, "credit_card_cashback", "email", day=rounds)
    never = streak >= 5
    assert r.impression[never].mean() < r.impression[streak == 0].mean()


def test_customers_who_ignore_every_channel_are_disengaged(world: World) -> None:
    idx = everyone()
    sample = idx[world.eligible(idx, "credit_card_cashback") & ~world.population.app_user][:5_000]
    assert not world.disengaged(sample).any()
    for day in range(3):
        world.respond(sample, "credit_card_cashback", "sms", day=day)
        world.respond(sample, "credit_card_cashback", "email", day=day)
    _, sms_streak = world.channel_state(sample, "sms", day=3)
    _, email_streak = world.channel_state(sample, "email", day=3)
    expected = (sms_streak >= 3) & (email_streak >= 3)
    np.testing.assert_array_equal(world.disengaged(sample), expected)
    assert expected.any() and not expected.all()
    # One channel alone is not enough to call a customer disengaged.
    fresh = World(world.population, seed=6)
    for day in range(4):
        fresh.respond(sample, "credit_card_cashback", "sms", day=day)
    assert not fresh.disengaged(sample).any()


def test_rm_calls_have_a_daily_capacity_and_serve_only_affluent_and_private(
    world: World,
) -> None:
    pop = world.population
    idx = everyone()
    capacity = DEFAULT_CATALOG.channel("rm_call").daily_capacity
    assert capacity is not None
    wealthy = idx[(pop.aum_tier > 0) & world.eligible(idx, "wealth_fund_r3")]
    assert wealthy.shape[0] > capacity
    r = world.respond(wealthy, "wealth_fund_r3", "rm_call", day=3)
    assert r.delivered.sum() == capacity and r.delivered[:capacity].all()
    assert not world.respond(wealthy[:10], "wealth_fund_r3", "rm_call", day=3).delivered.any()
    assert world.respond(wealthy[:10], "wealth_fund_r3", "rm_call", day=4).delivered.all()
    mass = idx[(pop.aum_tier == 0) & world.eligible(idx, "wealth_fund_r3")][:100]
    r_mass = world.respond(mass, "wealth_fund_r3", "rm_call", day=5)
    assert not r_mass.delivered.any()
    np.testing.assert_array_equal(r_mass.p_contacted, r_mass.p_not_contacted)


def test_drift_changes_one_offers_appeal_from_its_day(pop: Population) -> None:
    drift = Drift("credit_card_cashback", day=10, logit_shift=-1.0)
    plain, drifting = World(pop, seed=6), World(pop, seed=6, drift=drift)
    idx = everyone()[:20_000]
    for offer_id, channel in (("credit_card_cashback", "sms"), ("consumer_loan", "sms")):
        before = drifting.conversion_probability(idx, offer_id, channel, day=9)
        np.testing.assert_array_equal(
            before, plain.conversion_probability(idx, offer_id, channel, day=9)
        )
    after = drifting.conversion_probability(idx, "credit_card_cashback", "sms", day=10)
    base = plain.conversion_probability(idx, "credit_card_cashback", "sms", day=10)
    positive = base > 0
    assert (after[positive] < base[positive]).all()
    other = drifting.conversion_probability(idx, "consumer_loan", "sms", day=10)
    np.testing.assert_array_equal(
        other, plain.conversion_probability(idx, "consumer_loan", "sms", day=10)
    )


def test_scoring_does_not_change_state(world: World) -> None:
    idx = everyone()[:1_000]
    first = world.conversion_probability(idx, "credit_card_cashback", "sms")
    world.uplift(idx, "credit_card_cashback", "sms")
    np.testing.assert_array_equal(
        world.conversion_probability(idx, "credit_card_cashback", "sms"), first
    )
    world.respond(idx, "credit_card_cashback", "sms", day=0, contacted=False)
    assert (world.channel_state(idx, "sms", day=0)[0] == 0).all()


def test_mixed_offers_in_one_batch(world: World) -> None:
    idx = np.array([0, 1, 2, 3])
    offers = ["credit_card_cashback", "consumer_loan", "credit_card_cashback", "home_insurance"]
    mixed = world.conversion_probability(idx, offers, "sms")
    for i, offer_id in enumerate(offers):
        single = world.conversion_probability(idx[i : i + 1], offer_id, "sms")
        assert mixed[i] == single[0]
    positions = np.array([DEFAULT_CATALOG.offer_index(o) for o in offers])
    np.testing.assert_array_equal(world.conversion_probability(idx, positions, "sms"), mixed)
    with pytest.raises(ValueError, match="positions"):
        world.conversion_probability(idx, positions + len(DEFAULT_CATALOG.offers), "sms")


def test_catalogue_documents_load_into_the_engine() -> None:
    from decisioning.catalog import offer_from_document

    for spec in DEFAULT_CATALOG.offers:
        for channel in spec.channels:
            offer = offer_from_document(spec.to_document(channel))
            assert offer.offer_id == spec.offer_id and offer.risk_level == spec.risk_level
            assert offer.cost == pytest.approx(DEFAULT_CATALOG.contact_cost(spec.offer_id, channel))
            assert offer.lifecycle_stages == spec.hint.lifecycle_stages


def test_bad_arguments_are_named(world: World, pop: Population) -> None:
    with pytest.raises(ValueError, match="not allowed for offer 'wealth_fund_r3'"):
        world.conversion_probability([0], "wealth_fund_r3", "push")
    with pytest.raises(ValueError, match="'no_such_offer'"):
        world.respond([0], "no_such_offer", "sms", day=0)
    with pytest.raises(ValueError, match="channel"):
        world.respond([0], "credit_card_cashback", "pigeon", day=0)
    with pytest.raises(ValueError, match="customer_idx"):
        world.respond([N], "credit_card_cashback", "sms", day=0)
    world.respond([0], "credit_card_cashback", "sms", day=2)
    with pytest.raises(ValueError, match="day"):
        world.respond([0], "credit_card_cashback", "sms", day=1)
    with pytest.raises(ValueError, match="seed"):
        World(pop, seed=-1)
    missing = dataclasses.replace(DEFAULT_RESPONSE, offers=DEFAULT_RESPONSE.offers[:-1])
    with pytest.raises(ValueError, match="winback_bonus"):
        World(pop, response=missing)
    with pytest.raises(ValueError, match="ignore_decay"):
        ResponseSpec(offers=(), channels=DEFAULT_RESPONSE.channels, ignore_decay=0.0)
    with pytest.raises(ValueError, match="in the catalogue"):
        World(pop, drift=Drift("nope", day=1, logit_shift=1.0))


def test_tiers_and_groups_shift_appeal(world: World) -> None:
    """Spot checks that the written signs reach the probabilities (organic take-up)."""
    pop = world.population
    idx = everyone()
    car = world.conversion_probability(idx, "car_loan", "email", contacted=False)
    eligible = world.eligible(idx, "car_loan")
    owners = eligible & (pop.group == GROUPS.index("car_owner"))
    assert car[owners].mean() > 3 * car[eligible & ~owners].mean()
    fund = world.conversion_probability(idx, "wealth_fund_r3", "email", contacted=False)
    ok = world.eligible(idx, "wealth_fund_r3")
    assert (
        fund[ok & (pop.aum_tier == TIERS.index("affluent"))].mean()
        > fund[ok & (pop.aum_tier == TIERS.index("mass"))].mean()
    )
