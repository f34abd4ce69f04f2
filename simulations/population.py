"""A seeded synthetic population of retail-bank customers, generated column by column in numpy.

The specification (:class:`PopulationSpec`) is written down as marginal and conditional tables,
and :func:`generate_population` draws from exactly those tables, so a test can hold the draws
against the written numbers. Every share below is a modelling assumption for a mid-sized European
retail bank unless a source is named; what matters is the structure:

* groups: payroll (salary paid into the bank), pension (pension paid in), car owners, county
  (customers of branches in small towns and rural areas);
* age depends on the group (pension customers are older);
* the AUM tier depends on the group and is calibrated so the tiers come out near 80 / 17 / 3 %
  (mass / affluent / private); AUM within a tier is a truncated log-normal (mass) or a truncated
  Pareto (affluent, private: wealth has a Pareto upper tail with alpha around 1.5, cf.
  Vermeulen 2018, "How fat is the top tail of the wealth distribution?", Rev. Income Wealth);
* the tier thresholds EUR 100k and EUR 1M follow the usual wealth-management convention (USD 1M
  of investable assets is the HNWI line of the Capgemini World Wealth Report);
* risk tolerance C1-C5 depends on the age band, and pension customers have their own, more
  cautious table;
* lifecycle depends on the group; tenure follows from the lifecycle (new = first 3 months);
* monthly inflows are regular for payroll and pension customers;
* products held depend on tier, group and lifecycle; nobody holds an R3 fund without C3+;
* app use falls with age, and the preferred channel follows app use and tier;
* the value grade (1 lowest .. 5 highest) is a quantile cut of a value score (AUM, products,
  inflows), so its shares are exact.

Each column draws from its own child of ``numpy.random.SeedSequence(seed)``, so a column's draws
do not shift when another column changes.

Run ``python -m simulations.population --customers 1000000`` for a timing table.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr, ndtri

from simulations.catalog import CHANNELS, GROUPS, LIFECYCLES, PRODUCTS, TIERS

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
CodeArray = NDArray[np.int8]
BoolArray = NDArray[np.bool_]

#: Age bands used by the conditional tables: [18, 35), [35, 50), [50, 65), [65, ...).
AGE_BAND_EDGES: Final[tuple[int, ...]] = (35, 50, 65)
RISK_LABELS: Final[tuple[str, ...]] = ("C1", "C2", "C3", "C4", "C5")
_TOL = 1e-9


def _check_distribution(row: Sequence[float], name: str) -> None:
    if any(not (0.0 <= p <= 1.0) for p in row) or abs(sum(row) - 1.0) > _TOL:
        raise ValueError(f"{name} must be probabilities summing to 1, got {tuple(row)}")


def _check_table(table: Sequence[Sequence[float]], rows: int, cols: int, name: str) -> None:
    if len(table) != rows or any(len(r) != cols for r in table):
        raise ValueError(f"{name} must be a {rows} x {cols} table")
    for i, row in enumerate(table):
        _check_distribution(row, f"{name}[{i}]")


@dataclass(frozen=True, slots=True)
class PopulationSpec:
    """The written specification of the population; all tables are tuples (immutable).

    Row and column orders follow :data:`~simulations.catalog.GROUPS`,
    :data:`~simulations.catalog.TIERS`, :data:`~simulations.catalog.LIFECYCLES`,
    :data:`~simulations.catalog.CHANNELS`, :data:`~simulations.catalog.PRODUCTS`,
    :data:`RISK_LABELS` and the age bands of :data:`AGE_BAND_EDGES`.
    """

    group_shares: tuple[float, ...] = (0.40, 0.20, 0.15, 0.25)
    #: P(tier | group), rows = groups. Mixture: 79.9 / 17.1 / 3.0 %.
    tier_given_group: tuple[tuple[float, ...], ...] = (
        (0.84, 0.14, 0.02),
        (0.72, 0.23, 0.05),
        (0.76, 0.20, 0.04),
        (0.82, 0.155, 0.025),
    )
    #: Tier boundaries of AUM in EUR: mass [0, 100k), affluent [100k, 1M), private [1M, 50M].
    aum_bounds: tuple[float, float, float, float] = (0.0, 100_000.0, 1_000_000.0, 50_000_000.0)
    mass_aum_median: float = 8_000.0
    mass_aum_sigma: float = 1.3
    pareto_alpha: float = 1.5
    #: Age ~ Normal(mean, sd) truncated to [lo, hi], per group: (mean, sd, lo, hi).
    age_given_group: tuple[tuple[float, float, float, float], ...] = (
        (39.0, 10.0, 18.0, 67.0),
        (70.0, 7.0, 55.0, 100.0),
        (42.0, 11.0, 18.0, 85.0),
        (48.0, 16.0, 18.0, 95.0),
    )
    #: P(lifecycle | group), rows = groups. Mixture: 7.9 / 26.8 / 50.1 / 15.3 %.
    lifecycle_given_group: tuple[tuple[float, ...], ...] = (
        (0.10, 0.32, 0.45, 0.13),
        (0.04, 0.16, 0.66, 0.14),
        (0.09, 0.30, 0.46, 0.15),
        (0.07, 0.25, 0.48, 0.20),
    )
    #: Mean tenure in months beyond the stage's minimum (growing: 3-35 uniform).
    mature_extra_tenure_months: float = 60.0
    churn_extra_tenure_months: float = 48.0
    #: P(C1..C5 | age band) for non-pension groups, rows = age bands.
    risk_given_age_band: tuple[tuple[float, ...], ...] = (
        (0.10, 0.25, 0.35, 0.20, 0.10),
        (0.12, 0.28, 0.35, 0.18, 0.07),
        (0.20, 0.35, 0.30, 0.11, 0.04),
        (0.40, 0.35, 0.18, 0.05, 0.02),
    )
    #: P(C1..C5) for the pension group, whatever the age.
    risk_pension: tuple[float, ...] = (0.45, 0.35, 0.15, 0.04, 0.01)
    #: Monthly inflow, EUR: log-normal (median, sigma) for payroll salaries and pensions; other
    #: customers have a regular inflow with probability ``other_regular_share``.
    payroll_inflow: tuple[float, float] = (2_800.0, 0.35)
    pension_inflow: tuple[float, float] = (1_400.0, 0.30)
    other_inflow: tuple[float, float] = (1_800.0, 0.70)
    other_regular_share: float = 0.30
    inflow_tier_factor: tuple[float, float, float] = (1.0, 1.8, 4.0)
    #: P(uses the mobile app | age band).
    app_user_given_age_band: tuple[float, ...] = (0.90, 0.80, 0.60, 0.30)
    #: Preferred channel over CHANNELS, for app users and others, before the RM override.
    channel_pref_app: tuple[float, ...] = (0.35, 0.25, 0.10, 0.20, 0.10, 0.0)
    channel_pref_no_app: tuple[float, ...] = (0.0, 0.0, 0.45, 0.25, 0.30, 0.0)
    #: P(prefers their relationship manager | tier).
    rm_preference_given_tier: tuple[float, float, float] = (0.0, 0.25, 0.60)
    #: P(holds product | tier) over PRODUCTS (rows) x TIERS (columns), before the factors.
    holding_given_tier: tuple[tuple[float, float, float], ...] = (
        (1.00, 1.00, 1.00),  # current_account
        (0.25, 0.45, 0.60),  # credit_card
        (0.04, 0.25, 0.50),  # wealth_fund (only with risk tolerance C3+)
        (0.12, 0.30, 0.35),  # time_deposit
        (0.08, 0.06, 0.02),  # consumer_loan
        (0.10, 0.25, 0.40),  # pension_account
        (0.02, 0.02, 0.01),  # car_loan
        (0.30, 0.40, 0.40),  # payroll_bundle (payroll group only)
        (0.10, 0.20, 0.30),  # insurance
    )
    #: Multiplier of the holding probability, PRODUCTS (rows) x GROUPS (columns).
    holding_group_factor: tuple[tuple[float, float, float, float], ...] = (
        (1.0, 1.0, 1.0, 1.0),
        (1.2, 0.6, 1.1, 0.8),
        (1.0, 1.0, 1.0, 0.8),
        (1.0, 1.8, 1.0, 1.3),
        (1.3, 0.3, 1.0, 1.0),
        (1.3, 0.2, 1.0, 0.8),
        (0.3, 0.2, 12.0, 0.5),
        (1.0, 0.0, 0.0, 0.0),
        (1.0, 1.0, 1.5, 1.0),
    )
    #: Multiplier of the holding probability by LIFECYCLES (not applied to the current account).
    holding_lifecycle_factor: tuple[float, float, float, float] = (0.3, 0.8, 1.2, 0.9)
    holding_cap: float = 0.95
    #: Shares of value grades 1 (lowest) .. 5 (highest).
    value_grade_shares: tuple[float, ...] = (0.40, 0.30, 0.18, 0.09, 0.03)
    value_score_noise: float = 0.5
    #: IANA time zones, their shares, and their standard-time UTC offsets in hours.
    timezones: tuple[str, ...] = (
        "Europe/Berlin",
        "Europe/Madrid",
        "Europe/London",
        "Europe/Athens",
        "Atlantic/Canary",
    )
    timezone_shares: tuple[float, ...] = (0.60, 0.15, 0.10, 0.10, 0.05)
    timezone_offsets: tuple[float, ...] = (1.0, 1.0, 0.0, 2.0, 0.0)
    #: Headline tier shares the conditional table is calibrated to (checked to 0.5 pp).
    target_tier_shares: tuple[float, float, float] = (0.80, 0.17, 0.03)

    def __post_init__(self) -> None:
        ng, nt, nl, nc, nr = len(GROUPS), len(TIERS), len(LIFECYCLES), len(CHANNELS), 5
        nb = len(AGE_BAND_EDGES) + 1
        _check_distribution(self.group_shares, "group_shares")
        if len(self.group_shares) != ng:
            raise ValueError(f"group_shares must have {ng} entries")
        _check_table(self.tier_given_group, ng, nt, "tier_given_group")
        _check_table(self.lifecycle_given_group, ng, nl, "lifecycle_given_group")
        _check_table(self.risk_given_age_band, nb, nr, "risk_given_age_band")
        _check_table((self.risk_pension,), 1, nr, "risk_pension")
        _check_table((self.channel_pref_app, self.channel_pref_no_app), 2, nc, "channel_pref")
        _check_table((self.value_grade_shares,), 1, 5, "value_grade_shares")
        _check_table((self.timezone_shares,), 1, len(self.timezones), "timezone_shares")
        if len(self.timezone_offsets) != len(self.timezones):
            raise ValueError("timezone_offsets must have one entry per timezone")
        if len(self.age_given_group) != ng or any(
            sd <= 0 or lo >= hi for _, sd, lo, hi in self.age_given_group
        ):
            raise ValueError("age_given_group must be (mean, sd > 0, lo < hi) per group")
        b = self.aum_bounds
        if not 0.0 <= b[0] < b[1] < b[2] < b[3]:
            raise ValueError(f"aum_bounds must increase, got {b}")
        if self.pareto_alpha <= 0 or self.mass_aum_sigma <= 0 or self.mass_aum_median <= 0:
            raise ValueError("pareto_alpha, mass_aum_sigma and mass_aum_median must be > 0")
        for name in ("app_user_given_age_band", "rm_preference_given_tier"):
            values = getattr(self, name)
            if any(not 0.0 <= p <= 1.0 for p in values):
                raise ValueError(f"{name} must be probabilities")
        if len(self.app_user_given_age_band) != nb:
            raise ValueError(f"app_user_given_age_band must have {nb} entries")
        if not 0.0 <= self.other_regular_share <= 1.0:
            raise ValueError("other_regular_share must be within [0, 1]")
        if len(self.holding_given_tier) != len(PRODUCTS) or any(
            len(r) != nt or not all(0 <= p <= 1 for p in r) for r in self.holding_given_tier
        ):
            raise ValueError(f"holding_given_tier must be {len(PRODUCTS)} x {nt} probabilities")
        if len(self.holding_group_factor) != len(PRODUCTS) or any(
            len(r) != ng or min(r) < 0 for r in self.holding_group_factor
        ):
            raise ValueError(f"holding_group_factor must be {len(PRODUCTS)} x {ng}, >= 0")
        if len(self.holding_lifecycle_factor) != nl or min(self.holding_lifecycle_factor) < 0:
            raise ValueError(f"holding_lifecycle_factor must have {nl} entries >= 0")
        if not 0.0 < self.holding_cap <= 1.0:
            raise ValueError("holding_cap must be within (0, 1]")
        shares = zip(self.tier_shares(), self.target_tier_shares, strict=True)
        if max(abs(a - t) for a, t in shares) > 0.005:
            raise ValueError(
                f"tier_given_group mixes to {self.tier_shares()}, "
                f"not within 0.5 pp of target_tier_shares {self.target_tier_shares}"
            )

    # Derived marginals (what a test compares the draws with).
    def tier_shares(self) -> tuple[float, ...]:
        """Marginal P(tier) = sum over groups of P(group) P(tier | group)."""
        return tuple(
            float(v) for v in np.asarray(self.group_shares) @ np.asarray(self.tier_given_group)
        )

    def lifecycle_shares(self) -> tuple[float, ...]:
        """Marginal P(lifecycle) = sum over groups of P(group) P(lifecycle | group)."""
        return tuple(
            float(v) for v in np.asarray(self.group_shares) @ np.asarray(self.lifecycle_given_group)
        )

    def holding_probability(self, product: str, tier: int, group: int, lifecycle: int) -> float:
        """P(holds ``product``) for a cell of tier, group and lifecycle codes.

        Before the suitability rule (no ``wealth_fund`` below C3) is applied.
        """
        p = PRODUCTS.index(product)
        if product == "current_account":
            return self.holding_given_tier[p][tier]
        raw = (
            self.holding_given_tier[p][tier]
            * self.holding_group_factor[p][group]
            * self.holding_lifecycle_factor[lifecycle]
        )
        return min(raw, self.holding_cap)

    def holding_table(self) -> FloatArray:
        """P(holds) of shape (n_products, n_tiers, n_groups, n_lifecycles)."""
        table = np.empty((len(PRODUCTS), len(TIERS), len(GROUPS), len(LIFECYCLES)))
        for p, product in enumerate(PRODUCTS):
            for t in range(len(TIERS)):
                for g in range(len(GROUPS)):
                    for lc in range(len(LIFECYCLES)):
                        table[p, t, g, lc] = self.holding_probability(product, t, g, lc)
        return table


DEFAULT_SPEC: Final[PopulationSpec] = PopulationSpec()


@dataclass(frozen=True, slots=True, eq=False)
class Population:
    """Customers as read-only numpy columns, one row per customer, all of length ``n``.

    Categorical columns hold small integer codes into the label tuples of
    :mod:`simulations.catalog` (``group`` into ``GROUPS``, ``aum_tier`` into ``TIERS``,
    ``lifecycle`` into ``LIFECYCLES``, ``preferred_channel`` into ``CHANNELS``, ``timezone`` into
    ``spec.timezones``). ``risk_tolerance`` is 1..5 (C1..C5), ``value_grade`` 1..5 (highest 5),
    ``aum`` and ``monthly_inflow`` are EUR, ``products`` has shape (n, len(PRODUCTS)).
    """

    seed: int
    spec: PopulationSpec
    customer_id: IntArray
    age: IntArray
    group: CodeArray
    aum: FloatArray
    aum_tier: CodeArray
    value_grade: CodeArray
    lifecycle: CodeArray
    tenure_months: IntArray
    risk_tolerance: CodeArray
    monthly_inflow: FloatArray
    regular_inflow: BoolArray
    app_user: BoolArray
    preferred_channel: CodeArray
    timezone: CodeArray
    tz_offset_hours: FloatArray
    products: BoolArray

    def __len__(self) -> int:
        return int(self.customer_id.shape[0])

    @property
    def product_codes(self) -> tuple[str, ...]:
        return PRODUCTS

    def customer_key(self, i: int) -> str:
        """A stable string id for customer ``i`` (e.g. ``"C00000042"``)."""
        return f"C{int(self.customer_id[i]):08d}"

    def attributes(self, i: int) -> dict[str, Any]:
        """The engine's context mapping for customer ``i`` (plain Python values)."""
        if not 0 <= i < len(self):
            raise IndexError(f"customer index {i} outside [0, {len(self)})")
        held = np.flatnonzero(self.products[i])
        return {
            "segment": TIERS[self.aum_tier[i]],
            "aum": round(float(self.aum[i]), 2),
            "value_grade": int(self.value_grade[i]),
            "group": GROUPS[self.group[i]],
            "lifecycle": LIFECYCLES[self.lifecycle[i]],
            "risk_tolerance": RISK_LABELS[self.risk_tolerance[i] - 1],
            "products": [PRODUCTS[k] for k in held],
            "age": int(self.age[i]),
            "timezone": self.spec.timezones[self.timezone[i]],
            "preferred_channel": CHANNELS[self.preferred_channel[i]],
            "tenure_months": int(self.tenure_months[i]),
            "monthly_inflow": round(float(self.monthly_inflow[i]), 2),
            "app_user": bool(self.app_user[i]),
        }


def age_band(age: NDArray[Any]) -> IntArray:
    """Age band codes 0..3 for the edges of :data:`AGE_BAND_EDGES`."""
    return np.searchsorted(np.asarray(AGE_BAND_EDGES), age, side="right").astype(np.int64)


def _categorical(
    rng: np.random.Generator, condition: NDArray[Any], table: Sequence[Sequence[float]]
) -> CodeArray:
    """One categorical draw per row from ``table[condition[row]]`` by inverse CDF."""
    cdf = np.cumsum(np.asarray(table, dtype=np.float64), axis=1)
    cdf[:, -1] = 1.0 + 1e-12  # guard against rounding so every draw lands in a category
    u = rng.random(condition.shape[0])
    rows = cdf[condition]
    codes = np.zeros(condition.shape[0], dtype=np.int8)
    for k in range(cdf.shape[1] - 1):
        codes += u >= rows[:, k]
    return codes


def _truncated_normal(
    rng: np.random.Generator,
    mean: FloatArray,
    sd: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
) -> FloatArray:
    """Exact truncated normal draws by inverse CDF (no rejection loop)."""
    a, b = ndtr((lo - mean) / sd), ndtr((hi - mean) / sd)
    u = a + rng.random(mean.shape[0]) * (b - a)
    u = np.clip(u, 1e-15, 1 - 1e-15)
    return np.asarray(np.clip(mean + sd * ndtri(u), lo, hi), dtype=np.float64)


def _truncated_pareto(
    rng: np.random.Generator, n: int, low: float, high: float, alpha: float
) -> FloatArray:
    """Pareto(alpha) on [low, high] by inverse CDF."""
    u = rng.random(n)
    tail = 1.0 - (low / high) ** alpha
    return np.asarray(low * (1.0 - u * tail) ** (-1.0 / alpha), dtype=np.float64)


def _lognormal_inflow(
    rng: np.random.Generator, n: int, median_sigma: tuple[float, float]
) -> FloatArray:
    median, sigma = median_sigma
    return median * np.exp(sigma * rng.standard_normal(n))


_STREAMS: Final[tuple[str, ...]] = (
    "group",
    "age",
    "tier",
    "aum",
    "lifecycle",
    "tenure",
    "risk",
    "inflow",
    "app",
    "channel",
    "rm",
    "products",
    "value",
    "timezone",
)


def generate_population(n: int, seed: int, spec: PopulationSpec = DEFAULT_SPEC) -> Population:
    """Draw ``n`` customers from ``spec``; the same ``(n, seed, spec)`` gives the same population.

    Parameters
    ----------
    n : int
        Number of customers, >= 1.
    seed : int
        Non-negative seed of the ``SeedSequence`` whose children drive each column.
    spec : PopulationSpec
        Marginal and conditional tables.

    Returns
    -------
    Population

    Examples
    --------
    >>> pop = generate_population(1_000, seed=7)
    >>> len(pop), pop.attributes(0)["segment"] in ("mass", "affluent", "private")
    (1000, True)
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    children = np.random.SeedSequence(int(seed)).spawn(len(_STREAMS))
    rng = {name: np.random.default_rng(s) for name, s in zip(_STREAMS, children, strict=True)}
    n = int(n)

    zeros = np.zeros(n, dtype=np.int64)
    group = _categorical(rng["group"], zeros, (spec.group_shares,))

    age_params = np.asarray(spec.age_given_group)[group]
    age_f = _truncated_normal(
        rng["age"], age_params[:, 0], age_params[:, 1], age_params[:, 2], age_params[:, 3]
    )
    age = np.floor(age_f).astype(np.int64)
    band = age_band(age)

    tier = _categorical(rng["tier"], group, spec.tier_given_group)
    aum = _draw_aum(rng["aum"], tier, spec)

    lifecycle = _categorical(rng["lifecycle"], group, spec.lifecycle_given_group)
    tenure = _draw_tenure(rng["tenure"], lifecycle, age, spec)

    risk_table = (*spec.risk_given_age_band, spec.risk_pension)
    pension_code = GROUPS.index("pension")
    risk_row = np.where(group == pension_code, len(spec.risk_given_age_band), band)
    risk = (_categorical(rng["risk"], risk_row, risk_table) + 1).astype(np.int8)

    inflow, regular = _draw_inflow(rng["inflow"], group, tier, spec)

    app_user = rng["app"].random(n) < np.asarray(spec.app_user_given_age_band)[band]
    channel_tables = (spec.channel_pref_app, spec.channel_pref_no_app)
    channel = _categorical(rng["channel"], (~app_user).astype(np.int64), channel_tables)
    prefers_rm = rng["rm"].random(n) < np.asarray(spec.rm_preference_given_tier)[tier]
    channel[prefers_rm] = CHANNELS.index("rm_call")

    p_hold = spec.holding_table()[:, tier, group, lifecycle].T  # (n, n_products)
    products = rng["products"].random((n, len(PRODUCTS))) < p_hold
    products[risk < 3, PRODUCTS.index("wealth_fund")] = False

    score = (
        np.log1p(aum)
        + 0.25 * products.sum(axis=1)
        + 0.3 * regular
        + spec.value_score_noise * rng["value"].standard_normal(n)
    )
    cuts = np.quantile(score, np.cumsum(spec.value_grade_shares)[:-1])
    value_grade = (np.searchsorted(cuts, score, side="right") + 1).astype(np.int8)

    timezone = _categorical(rng["timezone"], zeros, (spec.timezone_shares,))
    tz_offset = np.asarray(spec.timezone_offsets, dtype=np.float64)[timezone]

    columns: dict[str, NDArray[Any]] = {
        "customer_id": np.arange(n, dtype=np.int64),
        "age": age,
        "group": group,
        "aum": aum,
        "aum_tier": tier,
        "value_grade": value_grade,
        "lifecycle": lifecycle,
        "tenure_months": tenure,
        "risk_tolerance": risk,
        "monthly_inflow": inflow,
        "regular_inflow": regular,
        "app_user": app_user,
        "preferred_channel": channel,
        "timezone": timezone,
        "tz_offset_hours": tz_offset,
        "products": products,
    }
    for array in columns.values():
        array.flags.writeable = False
    return Population(seed=int(seed), spec=spec, **columns)


def _draw_aum(rng: np.random.Generator, tier: CodeArray, spec: PopulationSpec) -> FloatArray:
    n = tier.shape[0]
    aum = np.empty(n)
    b = spec.aum_bounds
    mass = tier == 0
    # Mass: log-normal truncated to [b0, b1) by inverse CDF on the truncated range.
    mu, sigma = np.log(spec.mass_aum_median), spec.mass_aum_sigma
    top = float(ndtr((np.log(b[1]) - mu) / sigma))
    u = np.clip(rng.random(int(mass.sum())) * top, 1e-15, top * (1 - 1e-12))
    aum[mass] = np.clip(np.exp(mu + sigma * ndtri(u)), b[0], np.nextafter(b[1], 0.0))
    for code in (1, 2):
        sel = tier == code
        aum[sel] = _truncated_pareto(rng, int(sel.sum()), b[code], b[code + 1], spec.pareto_alpha)
    return np.round(aum, 2)


def _draw_tenure(
    rng: np.random.Generator, lifecycle: CodeArray, age: IntArray, spec: PopulationSpec
) -> IntArray:
    n = lifecycle.shape[0]
    u = rng.random(n)
    extra = rng.exponential(1.0, n)
    tenure = np.where(
        lifecycle == 0,
        np.floor(u * 3),
        np.where(
            lifecycle == 1,
            3 + np.floor(u * 33),
            np.where(
                lifecycle == 2,
                36 + np.floor(extra * spec.mature_extra_tenure_months),
                3 + np.floor(extra * spec.churn_extra_tenure_months),
            ),
        ),
    ).astype(np.int64)
    # Nobody has been a customer since before turning 16 (a youth account), except the 3-36
    # month floors of the growing and mature stages, which take precedence.
    floor = np.where(lifecycle == 2, 36, np.where(lifecycle == 0, 0, 3))
    capped = np.maximum(np.minimum(tenure, np.maximum((age - 16) * 12, 0)), floor)
    return np.asarray(capped, dtype=np.int64)


def _draw_inflow(
    rng: np.random.Generator, group: CodeArray, tier: CodeArray, spec: PopulationSpec
) -> tuple[FloatArray, BoolArray]:
    n = group.shape[0]
    payroll = _lognormal_inflow(rng, n, spec.payroll_inflow)
    pension = _lognormal_inflow(rng, n, spec.pension_inflow)
    other = _lognormal_inflow(rng, n, spec.other_inflow)
    other_regular = rng.random(n) < spec.other_regular_share
    g_payroll, g_pension = GROUPS.index("payroll"), GROUPS.index("pension")
    regular = (group == g_payroll) | (group == g_pension) | other_regular
    base = np.where(group == g_payroll, payroll, np.where(group == g_pension, pension, other))
    inflow = np.where(regular, base, 0.0) * np.asarray(spec.inflow_tier_factor)[tier]
    return np.round(inflow, 2), regular


def benchmark(sizes: Sequence[int], seed: int = 0, repeats: int = 3) -> list[dict[str, float]]:
    """Best-of-``repeats`` wall time to generate populations of the given sizes.

    Returns one row per size with ``customers``, ``seconds`` and ``customers_per_second``.
    """
    rows = []
    for n in sizes:
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            generate_population(n, seed=seed)
            best = min(best, time.perf_counter() - start)
        rows.append({"customers": float(n), "seconds": best, "customers_per_second": n / best})
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    """Print a timing table and the headline marginals of one population."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    sizes = sorted({min(10_000, args.customers), min(100_000, args.customers), args.customers})
    print(f"{'customers':>12} {'seconds':>9} {'customers/s':>13}")
    for row in benchmark(sizes, seed=args.seed, repeats=args.repeats):
        print(
            f"{int(row['customers']):>12,} {row['seconds']:>9.3f} "
            f"{row['customers_per_second']:>13,.0f}"
        )
    pop = generate_population(args.customers, seed=args.seed)
    n = len(pop)
    print()
    print(f"{'column':<12} {'level':<16} {'observed':>9} {'spec':>9}")
    for name, labels, codes, expected in (
        ("aum_tier", TIERS, pop.aum_tier, DEFAULT_SPEC.tier_shares()),
        ("group", GROUPS, pop.group, DEFAULT_SPEC.group_shares),
        ("lifecycle", LIFECYCLES, pop.lifecycle, DEFAULT_SPEC.lifecycle_shares()),
    ):
        counts = np.bincount(codes, minlength=len(labels))
        for label, count, share in zip(labels, counts, expected, strict=True):
            print(f"{name:<12} {label:<16} {count / n:>9.4f} {share:>9.4f}")


if __name__ == "__main__":
    main()
