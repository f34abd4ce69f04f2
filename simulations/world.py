"""Ground truth of the simulated bank: who converts, with and without a contact, and when.

For a customer ``i``, an offer ``k`` and a channel ``c`` the world knows two probabilities of
conversion within the attribution window (``window_days``):

* not contacted, the organic take-up ``p0 = sigmoid(b)`` with the appeal logit (eq. 1)
  ``b = base_k + tier_k[t_i] + group_k[g_i] + lifecycle_k[l_i]
  + age_weight_k * exp(-((age_i - peak_k) / width_k)^2) + a_i + drift_k(day)``,
  where ``a_i ~ Normal(0, affinity_sd^2)`` is a hidden per-customer propensity;
* contacted, ``p1 = p0 + s * (sigmoid(b + tau) - p0)`` (eq. 2): the contact is *seen* with
  probability ``s`` and then shifts the logit by the treatment effect (eq. 3)
  ``tau = effect_k * effect_by_lifecycle_k[l_i] * effect_by_tier_k[t_i] * persuasion_c * q_i
  - wearout * n_ic``, with ``q_i`` a hidden log-normal persuadability (mean 1) and ``n_ic`` the
  customer's recent contacts on the channel. Unseen contacts change nothing.

The chance of being seen (eq. 4) is
``s = reach_c * boost(preferred) * reachable_ic * exp(-fatigue_c * n_ic) * ignore_decay ** m_ic``:
``reachable`` is 0 for app channels without the app and for RM calls to mass customers;
``n_ic`` decays with a half-life of ``fatigue_half_life_days``; ``m_ic`` counts the contacts on
the channel the customer has ignored in a row, so a channel ignored again and again is ignored
more (it resets when the customer engages).

So the uplift ``p1 - p0`` is positive for most offers, exactly zero where the effect multiplier is
zero (the 12-month deposit for private-tier customers, whose adviser already places their cash:
an assumption) and negative where the multiplier is negative: a win-back offer sent to a mature,
loyal customer reminds them to shop around ("sleeping dogs", Radcliffe & Surry 2011, "Real-world
uplift modelling with significance-based uplift trees"). Where a sale is impossible both
probabilities are 0: the product's risk level exceeds the customer's tolerance (suitability),
the customer already holds it, or the bank's eligibility hint refuses it. Wear-out makes
over-contact costly: enough recent contacts turn any uplift negative.

"Conversion" means taking the product up; for the win-back offer it means renewed qualifying
activity (the bonus claimed), which loyal customers show organically too.

Structure and signs are the modelling choices; all numbers in :data:`DEFAULT_RESPONSE` are
assumptions chosen to give organic 30-day take-up of about 0.3-1.5 % among eligible customers
and contacted take-up up to two or three times that on the most persuasive channels.
Optional drift shifts one offer's appeal logit from a given day on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit

from simulations.catalog import (
    CHANNELS,
    DEFAULT_CATALOG,
    GROUPS,
    LIFECYCLES,
    PRODUCTS,
    TIERS,
    Catalog,
)
from simulations.population import Population

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class OfferResponse:
    """Hidden response parameters of one offer (logit scale unless stated).

    Parameters
    ----------
    base_logit : float
        Organic take-up logit of a neutral customer within the window.
    tier_appeal, group_appeal, lifecycle_appeal : tuple of float
        Additive logit terms by TIERS, GROUPS and LIFECYCLES.
    age_peak, age_width, age_weight : float
        A Gaussian bump in age (years) added to the logit with height ``age_weight``.
    effect : float
        Treatment effect ``tau`` of a seen contact on a channel of persuasion 1 (eq. 3).
    effect_by_lifecycle, effect_by_tier : tuple of float
        Multipliers of ``effect``; 0 gives zero uplift, negative values negative uplift.
    mean_delay_days : float
        Mean of the (truncated exponential) delay from contact to conversion, days.
    """

    base_logit: float
    effect: float
    tier_appeal: tuple[float, float, float] = (0.0, 0.0, 0.0)
    group_appeal: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    lifecycle_appeal: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    age_peak: float = 45.0
    age_width: float = 15.0
    age_weight: float = 0.0
    effect_by_lifecycle: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    effect_by_tier: tuple[float, float, float] = (1.0, 1.0, 1.0)
    mean_delay_days: float = 5.0

    def __post_init__(self) -> None:
        sizes = {
            "tier_appeal": (self.tier_appeal, len(TIERS)),
            "group_appeal": (self.group_appeal, len(GROUPS)),
            "lifecycle_appeal": (self.lifecycle_appeal, len(LIFECYCLES)),
            "effect_by_lifecycle": (self.effect_by_lifecycle, len(LIFECYCLES)),
            "effect_by_tier": (self.effect_by_tier, len(TIERS)),
        }
        for name, (values, size) in sizes.items():
            if len(values) != size or not all(math.isfinite(v) for v in values):
                raise ValueError(f"{name} must have {size} finite entries, got {values}")
        if self.age_width <= 0:
            raise ValueError(f"age_width must be > 0, got {self.age_width}")
        if self.mean_delay_days <= 0:
            raise ValueError(f"mean_delay_days must be > 0, got {self.mean_delay_days}")


@dataclass(frozen=True, slots=True)
class ChannelResponse:
    """Hidden response parameters of one channel.

    ``persuasion`` multiplies the treatment effect; ``curious_click`` is P(click | seen, does
    not convert) (1 for calls: an answered call is an engagement); ``refuse_given_click`` is
    P(explicit refusal | clicked, does not convert) (1 for calls: the customer says no).
    """

    persuasion: float
    curious_click: float
    refuse_given_click: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.persuasion) and self.persuasion >= 0):
            raise ValueError(f"persuasion must be >= 0, got {self.persuasion}")
        for name in ("curious_click", "refuse_given_click"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True, slots=True)
class ResponseSpec:
    """All hidden response parameters: per offer id, per channel (in CHANNELS order), global.

    Parameters
    ----------
    offers : tuple of (offer_id, OfferResponse)
    channels : tuple of ChannelResponse
        One per channel of :data:`~simulations.catalog.CHANNELS`, in that order.
    preferred_boost : float
        Multiplier of ``s`` on the customer's preferred channel (capped so ``s <= 1``).
    ignore_decay : float
        Factor on ``s`` per ignored contact in a row on the channel (eq. 4).
    wearout : float
        Logit lost from ``tau`` per recent contact on the channel (eq. 3).
    fatigue_half_life_days : float
        Half-life of the recent-contact count.
    window_days : int
        Attribution window: conversions happen within ``[0, window_days)`` days of the contact.
    affinity_sd, persuadability_sigma : float
        Spread of the hidden customer traits ``a_i`` and ``log q_i``.
    """

    offers: tuple[tuple[str, OfferResponse], ...]
    channels: tuple[ChannelResponse, ...]
    preferred_boost: float = 1.3
    ignore_decay: float = 0.8
    wearout: float = 0.1
    fatigue_half_life_days: float = 7.0
    window_days: int = 30
    affinity_sd: float = 0.5
    persuadability_sigma: float = 0.3

    def __post_init__(self) -> None:
        if len(self.channels) != len(CHANNELS):
            raise ValueError(f"channels must have one entry per channel of {CHANNELS}")
        ids = [offer_id for offer_id, _ in self.offers]
        if len(set(ids)) != len(ids):
            raise ValueError("offers must have unique offer ids")
        if self.preferred_boost < 1.0:
            raise ValueError(f"preferred_boost must be >= 1, got {self.preferred_boost}")
        if not 0.0 < self.ignore_decay <= 1.0:
            raise ValueError(f"ignore_decay must be within (0, 1], got {self.ignore_decay}")
        if self.wearout < 0 or self.fatigue_half_life_days <= 0 or self.window_days < 1:
            raise ValueError("need wearout >= 0, fatigue_half_life_days > 0, window_days >= 1")
        if self.affinity_sd < 0 or self.persuadability_sigma < 0:
            raise ValueError("affinity_sd and persuadability_sigma must be >= 0")

    def offer(self, offer_id: str) -> OfferResponse:
        for known, response in self.offers:
            if known == offer_id:
                return response
        raise ValueError(f"no response parameters for offer_id {offer_id!r}")


#: Hidden truth for :data:`~simulations.catalog.DEFAULT_CATALOG` (all numbers are assumptions;
#: see the module docstring). Group order: payroll, pension, car_owner, county; lifecycle order:
#: new, growing, mature, churn_risk; tier order: mass, affluent, private.
DEFAULT_RESPONSE: Final[ResponseSpec] = ResponseSpec(
    offers=(
        (
            "credit_card_cashback",
            OfferResponse(
                base_logit=-5.3,
                effect=1.0,
                tier_appeal=(0.0, 0.2, -0.3),
                group_appeal=(0.3, -0.8, 0.2, -0.2),
                lifecycle_appeal=(0.5, 0.3, 0.0, -0.5),
                age_peak=32.0,
                age_width=15.0,
                age_weight=0.6,
                mean_delay_days=4.0,
            ),
        ),
        (
            "wealth_fund_r3",
            OfferResponse(
                base_logit=-5.9,
                effect=0.9,
                tier_appeal=(-0.5, 0.8, 1.0),
                group_appeal=(0.0, 0.2, 0.0, -0.3),
                lifecycle_appeal=(-0.5, 0.2, 0.3, -0.8),
                age_peak=55.0,
                age_width=15.0,
                age_weight=0.5,
                effect_by_tier=(0.8, 1.0, 1.2),
                mean_delay_days=7.0,
            ),
        ),
        (
            "time_deposit_12m",
            OfferResponse(
                base_logit=-5.0,
                effect=0.7,
                tier_appeal=(0.0, 0.4, 0.2),
                group_appeal=(-0.2, 0.8, 0.0, 0.5),
                lifecycle_appeal=(0.0, 0.0, 0.2, 0.3),
                age_peak=65.0,
                age_width=20.0,
                age_weight=0.5,
                effect_by_tier=(1.0, 0.5, 0.0),
                mean_delay_days=2.0,
            ),
        ),
        (
            "consumer_loan",
            OfferResponse(
                base_logit=-5.7,
                effect=0.8,
                tier_appeal=(0.2, -0.3, -1.5),
                group_appeal=(0.3, -1.0, 0.2, 0.0),
                lifecycle_appeal=(0.2, 0.3, 0.0, 0.2),
                age_peak=35.0,
                age_width=12.0,
                age_weight=0.6,
                mean_delay_days=5.0,
            ),
        ),
        (
            "pension_account",
            OfferResponse(
                base_logit=-6.3,
                effect=0.8,
                tier_appeal=(-0.2, 0.4, 0.5),
                group_appeal=(0.4, -1.5, 0.0, -0.2),
                lifecycle_appeal=(0.3, 0.3, 0.0, -0.5),
                age_peak=45.0,
                age_width=10.0,
                age_weight=0.8,
                mean_delay_days=12.0,
            ),
        ),
        (
            "car_loan",
            OfferResponse(
                base_logit=-6.9,
                effect=0.9,
                group_appeal=(-0.5, -1.2, 2.0, 0.3),
                age_peak=38.0,
                age_width=14.0,
                age_weight=0.4,
                mean_delay_days=9.0,
            ),
        ),
        (
            "payroll_bundle",
            OfferResponse(
                base_logit=-5.5,
                effect=1.1,
                tier_appeal=(0.0, 0.2, -0.5),
                lifecycle_appeal=(0.8, 0.4, -0.2, -0.3),
                mean_delay_days=10.0,
            ),
        ),
        (
            "home_insurance",
            OfferResponse(
                base_logit=-6.0,
                effect=0.6,
                tier_appeal=(0.0, 0.3, 0.3),
                group_appeal=(0.0, 0.0, 0.5, 0.3),
                lifecycle_appeal=(0.3, 0.0, 0.0, -0.3),
                age_peak=45.0,
                age_width=20.0,
                age_weight=0.3,
                mean_delay_days=6.0,
            ),
        ),
        (
            "winback_bonus",
            OfferResponse(
                base_logit=-4.0,
                effect=1.6,
                lifecycle_appeal=(0.0, -0.3, -0.5, 0.5),
                effect_by_lifecycle=(0.0, 0.3, -1.0, 1.0),
                mean_delay_days=3.0,
            ),
        ),
    ),
    channels=(
        ChannelResponse(persuasion=0.6, curious_click=0.02, refuse_given_click=0.3),  # app_banner
        ChannelResponse(persuasion=0.7, curious_click=0.05, refuse_given_click=0.3),  # push
        ChannelResponse(persuasion=0.8, curious_click=0.02, refuse_given_click=0.2),  # sms
        ChannelResponse(persuasion=0.7, curious_click=0.06, refuse_given_click=0.3),  # email
        ChannelResponse(persuasion=1.2, curious_click=1.0, refuse_given_click=1.0),  # call_centre
        ChannelResponse(persuasion=1.6, curious_click=1.0, refuse_given_click=1.0),  # rm_call
    ),
)


@dataclass(frozen=True, slots=True)
class Drift:
    """From ``day`` on, add ``logit_shift`` to the appeal of ``offer_id`` (both p0 and p1)."""

    offer_id: str
    day: int
    logit_shift: float

    def __post_init__(self) -> None:
        if self.day < 0:
            raise ValueError(f"day must be >= 0, got {self.day}")
        if not math.isfinite(self.logit_shift):
            raise ValueError(f"logit_shift must be finite, got {self.logit_shift}")


@dataclass(frozen=True, slots=True, eq=False)
class Responses:
    """Outcomes of one batch of contacts, one entry per (customer, offer) pair, shape (m,).

    ``delivered``: the contact was made (False when not contacted, over capacity, or the
    channel cannot reach the customer); ``impression``: it was seen; ``click``: the customer
    engaged; ``accept``/``refuse``: an explicit answer; ``converted``: the product was taken up
    within the window, ``delay_days`` after the contact (-1 if not), worth ``value`` EUR.
    ``p_contacted`` and ``p_not_contacted`` are the true probabilities the draws used.
    """

    customer_idx: IntArray
    offer_idx: IntArray
    channel: str
    day: int
    contacted: bool
    delivered: BoolArray
    impression: BoolArray
    click: BoolArray
    accept: BoolArray
    refuse: BoolArray
    converted: BoolArray
    delay_days: IntArray
    value: FloatArray
    p_contacted: FloatArray
    p_not_contacted: FloatArray

    def __len__(self) -> int:
        return int(self.customer_idx.shape[0])


class World:
    """The simulated bank's customers as they really behave.

    Parameters
    ----------
    population : Population
    catalog : Catalog
    seed : int
        Seeds the hidden customer traits and the generator that draws outcomes.
    drift : Drift, sequence of Drift or None
        Changes of appeal over time.
    response : ResponseSpec
        Hidden parameters; must cover every offer of ``catalog``.

    Notes
    -----
    Scoring (:meth:`conversion_probability`, :meth:`uplift`, :meth:`channel_state`) never
    changes state; :meth:`respond` draws outcomes and updates fatigue, ignoring and the RM
    capacity. Days are integers and may not go backwards across calls to :meth:`respond`.
    Within one batch every contact is scored with the state before the batch.

    Examples
    --------
    >>> from simulations.population import generate_population
    >>> world = World(generate_population(1_000, seed=1), DEFAULT_CATALOG, seed=2)
    >>> out = world.respond([0, 1], ["credit_card_cashback"] * 2, "sms", day=0)
    >>> out.converted.shape
    (2,)
    """

    def __init__(
        self,
        population: Population,
        catalog: Catalog = DEFAULT_CATALOG,
        seed: int = 0,
        drift: Drift | Sequence[Drift] | None = None,
        response: ResponseSpec = DEFAULT_RESPONSE,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        drifts = () if drift is None else (drift,) if isinstance(drift, Drift) else tuple(drift)
        for d in drifts:
            catalog.offer_index(d.offer_id)  # raises naming the unknown offer
        self.population = population
        self.catalog = catalog
        self.seed = seed
        self.drifts: tuple[Drift, ...] = drifts
        self.response = response
        self._offer_lookup = {offer_id: k for k, offer_id in enumerate(catalog.offer_ids)}
        self._build_offer_tables()
        self.reset()

    # ------------------------------------------------------------------ set-up
    def _build_offer_tables(self) -> None:
        offers = self.catalog.offers
        params = [self.response.offer(o.offer_id) for o in offers]
        self._base = np.array([p.base_logit for p in params])
        self._effect = np.array([p.effect for p in params])
        self._tier_appeal = np.array([p.tier_appeal for p in params])
        self._group_appeal = np.array([p.group_appeal for p in params])
        self._life_appeal = np.array([p.lifecycle_appeal for p in params])
        self._age = np.array([(p.age_peak, p.age_width, p.age_weight) for p in params])
        self._effect_life = np.array([p.effect_by_lifecycle for p in params])
        self._effect_tier = np.array([p.effect_by_tier for p in params])
        self._mean_delay = np.array([p.mean_delay_days for p in params])
        self._value = np.array([o.value for o in offers])
        self._risk = np.array([o.risk for o in offers])
        self._product = np.array(
            [PRODUCTS.index(o.product) if o.product in PRODUCTS else -1 for o in offers]
        )
        self._min_age = np.array([o.hint.min_age for o in offers])
        self._max_age = np.array([o.hint.max_age for o in offers])
        self._min_aum = np.array([o.hint.min_aum for o in offers])
        self._needs_inflow = np.array([o.hint.needs_regular_inflow for o in offers])
        self._group_ok = np.array(
            [[not o.hint.groups or g in o.hint.groups for g in GROUPS] for o in offers]
        )
        self._life_ok = np.array(
            [
                [not o.hint.lifecycle_stages or s in o.hint.lifecycle_stages for s in LIFECYCLES]
                for o in offers
            ]
        )
        self._channel_ok = np.array([[c in o.channels for c in CHANNELS] for o in offers])

    def reset(self) -> None:
        """Forget all contacts and restart the outcome generator from the seed."""
        traits, outcomes = np.random.SeedSequence(self.seed).spawn(2)
        n = len(self.population)
        trait_rng = np.random.default_rng(traits)
        self._affinity = self.response.affinity_sd * trait_rng.standard_normal(n)
        sigma = self.response.persuadability_sigma
        # log-normal with mean 1: exp(sigma * z - sigma^2 / 2)
        self._persuadability = np.exp(sigma * trait_rng.standard_normal(n) - sigma**2 / 2)
        self._rng = np.random.default_rng(outcomes)
        self._recent = np.zeros((n, len(CHANNELS)), dtype=np.float32)
        self._recent_day = np.zeros((n, len(CHANNELS)), dtype=np.int32)
        self._ignored = np.zeros((n, len(CHANNELS)), dtype=np.int16)
        self._day = 0
        self._capacity_day = 0
        self._capacity_used = 0

    # ------------------------------------------------------------------ inputs
    def _customers(self, customer_idx: ArrayLike) -> IntArray:
        idx = np.atleast_1d(np.asarray(customer_idx))
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError("customer_idx must be a 1-d array of integer customer indices")
        n = len(self.population)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"customer_idx must be within [0, {n})")
        return idx.astype(np.int64, copy=False)

    def offer_indices(self, offer_ids: str | Sequence[str] | NDArray[Any], m: int) -> IntArray:
        """Offer positions in the catalogue, shape (m,).

        ``offer_ids`` is one id (broadcast to ``m``), ``m`` ids, or ``m`` integer positions in
        ``catalog.offers`` (the fast path for large mixed batches).
        """
        if isinstance(offer_ids, str):
            return np.full(m, self._index_of(offer_ids), dtype=np.int64)
        ids = np.asarray(offer_ids)
        if ids.shape != (m,):
            raise ValueError(f"offer_ids must have shape ({m},) like customer_idx, got {ids.shape}")
        if np.issubdtype(ids.dtype, np.integer):
            k = len(self.catalog.offers)
            if m and (ids.min() < 0 or ids.max() >= k):
                raise ValueError(f"offer_ids given as positions must be within [0, {k})")
            return ids.astype(np.int64, copy=False)
        unique, inverse = np.unique(ids, return_inverse=True)
        codes = np.array([self._index_of(str(u)) for u in unique], dtype=np.int64)
        return codes[inverse.reshape(-1)]

    def _index_of(self, offer_id: str) -> int:
        try:
            return self._offer_lookup[offer_id]
        except KeyError:
            raise ValueError(f"offer_ids: {offer_id!r} is not in the catalogue") from None

    def _channel(self, channel: str, offers: IntArray) -> int:
        ch = self.catalog.channel_index(channel)
        bad = ~self._channel_ok[offers, ch]
        if bad.any():
            offer_id = self.catalog.offers[int(offers[np.argmax(bad)])].offer_id
            raise ValueError(f"channel {channel!r} is not allowed for offer {offer_id!r}")
        return ch

    # ------------------------------------------------------------------ scoring (pure)
    def channel_state(
        self, customer_idx: ArrayLike, channel: str, day: int
    ) -> tuple[FloatArray, IntArray]:
        """Recent contacts on ``channel`` (decayed to ``day``) and ignored contacts in a row."""
        c = self._customers(customer_idx)
        ch = self.catalog.channel_index(channel)
        elapsed = np.maximum(day - self._recent_day[c, ch], 0)
        decay = 0.5 ** (elapsed / self.response.fatigue_half_life_days)
        recent = self._recent[c, ch].astype(np.float64) * decay
        return recent, self._ignored[c, ch].astype(np.int64)

    def eligible(
        self, customer_idx: ArrayLike, offer_ids: str | Sequence[str] | NDArray[Any]
    ) -> BoolArray:
        """Whether a sale is possible at all: suitable, not held, allowed by the hint."""
        c = self._customers(customer_idx)
        return self._eligible(c, self.offer_indices(offer_ids, c.shape[0]))

    def _eligible(self, c: IntArray, o: IntArray) -> BoolArray:
        pop = self.population
        product = self._product[o]
        held = np.where(product >= 0, pop.products[c, np.maximum(product, 0)], False)
        age = pop.age[c]
        ok: BoolArray = (
            (self._risk[o] <= pop.risk_tolerance[c])
            & ~held
            & (age >= self._min_age[o])
            & (age <= self._max_age[o])
            & (pop.aum[c] >= self._min_aum[o])
            & (pop.regular_inflow[c] | ~self._needs_inflow[o])
            & self._group_ok[o, pop.group[c]]
            & self._life_ok[o, pop.lifecycle[c]]
        )
        return ok

    def _appeal(self, c: IntArray, o: IntArray, day: int) -> FloatArray:
        """Appeal logit ``b`` of eq. 1."""
        pop = self.population
        peak, width, weight = self._age[o, 0], self._age[o, 1], self._age[o, 2]
        b = (
            self._base[o]
            + self._tier_appeal[o, pop.aum_tier[c]]
            + self._group_appeal[o, pop.group[c]]
            + self._life_appeal[o, pop.lifecycle[c]]
            + weight * np.exp(-(((pop.age[c] - peak) / width) ** 2))
            + self._affinity[c]
        )
        for d in self.drifts:
            if day >= d.day:
                b = b + d.logit_shift * (o == self._offer_lookup[d.offer_id])
        return np.asarray(b, dtype=np.float64)

    def _reachable(self, c: IntArray, ch: int) -> BoolArray:
        spec = self.catalog.channels[ch]
        pop = self.population
        ok = np.ones(c.shape[0], dtype=bool)
        if spec.needs_app:
            ok &= pop.app_user[c]
        if len(spec.tiers) < len(TIERS):
            allowed = np.array([t in spec.tiers for t in TIERS])
            ok &= allowed[pop.aum_tier[c]]
        return ok

    def _probabilities(
        self,
        c: IntArray,
        o: IntArray,
        ch: int,
        recent: FloatArray,
        ignored: IntArray,
        day: int,
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """(p0, p1, seen, p_seen) of eqs. 1-4, zero where a sale is impossible."""
        pop = self.population
        spec = self.response
        channel = self.catalog.channels[ch]
        b = self._appeal(c, o, day)
        eligible = self._eligible(c, o)
        tau = (
            self._effect[o]
            * self._effect_life[o, pop.lifecycle[c]]
            * self._effect_tier[o, pop.aum_tier[c]]
            * spec.channels[ch].persuasion
            * self._persuadability[c]
            - spec.wearout * recent
        )
        boost = np.where(pop.preferred_channel[c] == ch, spec.preferred_boost, 1.0)
        seen = (
            np.minimum(channel.reach * boost, 1.0)
            * self._reachable(c, ch)
            * np.exp(-channel.fatigue_rate * recent)
            * spec.ignore_decay ** ignored.astype(np.float64)
        )
        p0 = np.where(eligible, expit(b), 0.0)
        p_seen = np.where(eligible, expit(b + tau), 0.0)
        p1 = p0 + seen * (p_seen - p0)  # eq. 2, written so that tau = 0 gives p1 == p0 exactly
        return p0, p1, seen, p_seen

    def conversion_probability(
        self,
        customer_idx: ArrayLike,
        offer_ids: str | Sequence[str] | NDArray[Any],
        channel: str,
        contacted: bool = True,
        contacts_so_far: ArrayLike | None = None,
        ignored_by_channel: ArrayLike | None = None,
        day: int = 0,
    ) -> FloatArray:
        """True P(conversion within the window) for each (customer, offer) pair, shape (m,).

        Parameters
        ----------
        customer_idx : array of int, shape (m,)
        offer_ids : str or sequence of str, shape (m,)
            One id is broadcast to every customer.
        channel : str
            The channel of the contact (validated even when ``contacted`` is False).
        contacted : bool
            True gives ``p1`` (eq. 2), False the organic ``p0`` (eq. 1).
        contacts_so_far, ignored_by_channel : array, shape (m,), optional
            Recent contacts and ignored contacts in a row on ``channel``; by default the
            world's current state at ``day`` (:meth:`channel_state`).
        day : int
            Day of the contact, for drift and fatigue decay.
        """
        c = self._customers(customer_idx)
        o = self.offer_indices(offer_ids, c.shape[0])
        ch = self._channel(channel, o)
        recent, ignored = self._state_or_given(c, channel, day, contacts_so_far, ignored_by_channel)
        p0, p1, _, _ = self._probabilities(c, o, ch, recent, ignored, day)
        return p1 if contacted else p0

    def uplift(
        self,
        customer_idx: ArrayLike,
        offer_ids: str | Sequence[str] | NDArray[Any],
        channel: str,
        contacts_so_far: ArrayLike | None = None,
        ignored_by_channel: ArrayLike | None = None,
        day: int = 0,
    ) -> FloatArray:
        """True uplift ``p1 - p0`` for each pair, shape (m,); negative for sleeping dogs."""
        c = self._customers(customer_idx)
        o = self.offer_indices(offer_ids, c.shape[0])
        ch = self._channel(channel, o)
        recent, ignored = self._state_or_given(c, channel, day, contacts_so_far, ignored_by_channel)
        p0, p1, _, _ = self._probabilities(c, o, ch, recent, ignored, day)
        return p1 - p0

    def disengaged(self, customer_idx: ArrayLike, min_streak: int = 3) -> BoolArray:
        """Customers who ignored every channel they were tried on, ``min_streak`` times in a row.

        At least two channels must have been tried. Such a customer is drifting away and calls
        for a win-back offer (DESIGN.md, "The bank behind the simulations"); the runner may move
        them to ``churn_risk`` in the context it sends. The truth itself does not change.
        """
        if min_streak < 1:
            raise ValueError(f"min_streak must be >= 1, got {min_streak}")
        c = self._customers(customer_idx)
        tried = self._recent[c] > 0
        ignoring = (self._ignored[c] >= min_streak) | ~tried
        result: BoolArray = ignoring.all(axis=1) & (tried.sum(axis=1) >= 2)
        return result

    def _state_or_given(
        self,
        c: IntArray,
        channel: str,
        day: int,
        contacts_so_far: ArrayLike | None,
        ignored_by_channel: ArrayLike | None,
    ) -> tuple[FloatArray, IntArray]:
        recent, ignored = self.channel_state(c, channel, day)
        m = c.shape[0]
        if contacts_so_far is not None:
            recent = np.broadcast_to(np.asarray(contacts_so_far, dtype=np.float64), (m,))
            if (recent < 0).any():
                raise ValueError("contacts_so_far must be >= 0")
        if ignored_by_channel is not None:
            ignored = np.broadcast_to(np.asarray(ignored_by_channel, dtype=np.int64), (m,))
            if (ignored < 0).any():
                raise ValueError("ignored_by_channel must be >= 0")
        return recent, ignored

    # ------------------------------------------------------------------ drawing (mutates)
    def respond(
        self,
        customer_idx: ArrayLike,
        offer_ids: str | Sequence[str] | NDArray[Any],
        channel: str,
        day: int,
        contacted: bool = True,
    ) -> Responses:
        """Draw what happens to each (customer, offer) pair and update the contact state.

        With ``contacted=False`` (a holdout) only organic conversions are drawn and no state
        changes. Contacts beyond the channel's daily capacity (in batch order) or to customers
        the channel cannot reach are not delivered and leave only organic conversion.
        """
        if isinstance(day, bool) or not isinstance(day, int | np.integer) or day < self._day:
            raise ValueError(f"day must be an integer >= the last day used, {self._day}; got {day}")
        day = int(day)
        c = self._customers(customer_idx)
        m = c.shape[0]
        o = self.offer_indices(offer_ids, m)
        ch = self._channel(channel, o)
        recent, ignored = self.channel_state(c, channel, day)
        p0, p1, seen, p_seen = self._probabilities(c, o, ch, recent, ignored, day)
        self._day = day

        if contacted:
            delivered = self._reachable(c, ch) & self._within_capacity(m, ch, day)
        else:
            delivered = np.zeros(m, dtype=bool)
        rng = self._rng
        u_seen, u_convert, u_click, u_refuse, u_delay = rng.random((5, m))
        # ``seen`` is already 0 for customers the channel cannot reach (eq. 4).
        impression = delivered & (u_seen < seen)
        p_convert = np.where(impression, p_seen, p0)
        converted = u_convert < p_convert
        persuaded = impression & converted
        responses = self.response.channels[ch]
        click = persuaded | (impression & (u_click < responses.curious_click))
        refuse = click & ~converted & (u_refuse < responses.refuse_given_click)
        delay = self._delays(o, u_delay)

        if contacted:
            self._record(c[delivered], ch, day, engaged=click[delivered])
        return Responses(
            customer_idx=c,
            offer_idx=o,
            channel=channel,
            day=day,
            contacted=contacted,
            delivered=delivered,
            impression=impression,
            click=click,
            accept=persuaded,
            refuse=refuse,
            converted=converted,
            delay_days=np.where(converted, delay, -1),
            value=np.where(converted, self._value[o], 0.0),
            p_contacted=p1,
            p_not_contacted=p0,
        )

    def _within_capacity(self, m: int, ch: int, day: int) -> BoolArray:
        capacity = self.catalog.channels[ch].daily_capacity
        if capacity is None:
            return np.ones(m, dtype=bool)
        if day != self._capacity_day:
            self._capacity_day, self._capacity_used = day, 0
        left = max(capacity - self._capacity_used, 0)
        ok = np.arange(m) < left
        self._capacity_used += int(min(m, left))
        return ok

    def _delays(self, o: IntArray, u: FloatArray) -> IntArray:
        """Exponential delay with the offer's mean, truncated to the window, in whole days."""
        mean = self._mean_delay[o]
        window = self.response.window_days
        tail = 1.0 - np.exp(-window / mean)
        delay = np.floor(-mean * np.log1p(-u * tail))
        return np.asarray(np.minimum(delay, window - 1), dtype=np.int64)

    def _record(self, c: IntArray, ch: int, day: int, engaged: BoolArray) -> None:
        """Add one decayed contact per delivered contact; count or reset the ignore streak."""
        if c.size == 0:
            return
        recent, _ = self.channel_state(c, self.catalog.channels[ch].channel_id, day)
        self._recent[c, ch] = recent.astype(np.float32)
        self._recent_day[c, ch] = day
        contacted, contacts = np.unique(c, return_counts=True)
        self._recent[contacted, ch] += contacts.astype(np.float32)
        ignorers, ignores = np.unique(c[~engaged], return_counts=True)
        streak = self._ignored[ignorers, ch].astype(np.int64) + ignores
        self._ignored[ignorers, ch] = np.minimum(streak, 999).astype(np.int16)
        self._ignored[c[engaged], ch] = 0
