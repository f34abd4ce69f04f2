"""Scenarios that read the engine's own experiment reports back against the simulator's truth.

``holdout-uplift``: a universal bank holdout; the campaign runs with the engine's default policy
and the report ``holdout:bank`` estimates the campaign's uplift over the holdout.
``aa-test``: an A/A experiment (two identical cells of the default policy) read back the same way;
every difference it finds is a false positive.
``policy-experiment``: the engine's non-contextual default (``beta-bernoulli``) against a
contextual challenger (``linucb``) on one placement with ``promote = "auto"``, in a bank whose
offers each work for one lifecycle stage only (``lifecycle_world``); the run ends when the engine
promotes a cell, and the truth says whether it was the cell with the higher true incremental value
per unit.
``holdout-uplift --plant``: two planted offers that look attractive to a propensity model but add
nothing (uplift 0) or harm (negative uplift), and cost EUR 15 a contact; the bank holdout runs
with automatic retirement, once with propensity-based arbitration and once re-valued, on the
same seed (``run_planted``).

Each customer visits at most once in a run (its first visit is its first exposure), so a unit's
outcome is settled by one decision. The world draws, for every exposed customer and every offer,
whether the customer takes the product up within the world's window (``window_days``): with
``p1`` (eq. 2 of ``simulations.world``) for the offers the engine made, with the organic ``p0``
for all the others and for every offer to a held-out customer. Every conversion reaches the
engine as a customer outcome (``POST /v1/events`` with ``customer_id`` and no decision), as a
bank's core systems would report it; the engine's attribution window is the world's, and the run
goes on for that window after the last visit, so every conversion is counted.

The truth is known per unit from the same probabilities. For a unit of the treated side
(``campaign``, or cell ``b`` of the A/A) with offers ``S`` made,
``truth_conversion = [1 - prod_k (1 - q_k)] - [1 - prod_k (1 - p0_k)]`` with ``q_k = p1_k`` for
``k`` in ``S`` and ``p0_k`` otherwise (draws are independent per offer), and
``truth_value = sum_{k in S} value_k (p1_k - p0_k)``. The true uplift of a run is the mean over
its treated units (the effect on the treated, which random assignment makes the target of the
difference of means); the A/A's is 0; a policy experiment's is the difference between the
two cells' means (both make offers). Coverage is the share of runs whose interval contains it.
"""

from __future__ import annotations

import math
import tempfile
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from decisioning.catalog import put_experiment, put_holdout
from decisioning.domain import Event
from decisioning.engine import OFFER_PREFIX, DecisionEngine
from decisioning.learning import run_periodic_jobs
from decisioning.reports import experiment_report
from decisioning.sql.repositories import feedback_actions_of
from decisioning.sql.session import unit_of_work
from experiments.design import Cell, Experiment, Holdout
from simulations.catalog import (
    DEFAULT_CATALOG,
    DEFAULT_CHANNELS,
    LIFECYCLES,
    Catalog,
    OfferSpec,
)
from simulations.population import generate_population
from simulations.runner import (
    DAY,
    EVENT_OFFSETS,
    REWARD,
    START,
    InProcessClient,
    ProgressCallback,
    draw_visits,
    open_engine,
)
from simulations.scenarios import SimulationSpec
from simulations.world import DEFAULT_RESPONSE, OfferResponse, Responses, ResponseSpec, World

AA_EXPERIMENT = "aa"
POLICY_EXPERIMENT = "policies"
POLICY_CELLS = ("beta-bernoulli", "linucb")
"""The two policies of ``policy-experiment`` (each cell is named after its policy): the engine's
default, which learns one accept rate per offer, and a challenger that learns them per context
(one ridge regression per offer, Li et al. 2010)."""
WINDOW_DAYS = DEFAULT_RESPONSE.window_days
"""The world's conversion window (``ResponseSpec.window_days``), the engine's attribution window."""
METRICS = ("conversion", "value")


@dataclass(slots=True)
class MetricReading:
    """One metric of one run: the engine's estimate and intervals, and the truth."""

    estimate: float | None
    ci: tuple[float, float] | None
    sequential_ci: tuple[float, float] | None
    p_value: float | None
    sequential_p_value: float | None
    truth: float

    def covers(self, interval: tuple[float, float] | None) -> bool:
        return interval is not None and interval[0] <= self.truth <= interval[1]


@dataclass(slots=True)
class StudyRun:
    """One seeded run: per metric the final reading, units per side, the daily lift series."""

    seed: int
    experiment_id: str
    units: dict[str, int]
    readings: dict[str, MetricReading]
    srm_p_value: float | None
    daily: list[tuple[int, float | None, tuple[float, float] | None]] = field(default_factory=list)
    """(day, lift, anytime-valid interval) of the conversion metric after each day."""
    true_value: dict[str, float] = field(default_factory=dict)
    """Per side, the mean true incremental value per unit (against no offer at all)."""
    promoted: str | None = None
    """The cell the engine promoted (policy experiments), None if it promoted none."""
    net_value: dict[str, float] = field(default_factory=dict)
    """Per side, the true incremental value of the offers made minus what they cost, EUR."""
    retired: dict[str, int] = field(default_factory=dict)
    """Offers the engine retired, with the day it did."""

    @property
    def best_side(self) -> str | None:
        """The side with the highest true incremental value per unit."""
        return max(self.true_value, key=self.true_value.__getitem__) if self.true_value else None


def unit_truth(
    p_made: np.ndarray, p_organic: np.ndarray, values: np.ndarray
) -> tuple[float, float]:
    """A treated unit's true uplift in P(any conversion) and in expected value, from the
    probability of each offer's conversion with the offers it got and with none, shape (K,)."""
    conversion = np.prod(1.0 - p_organic) - np.prod(1.0 - p_made)
    return float(conversion), float(values @ (p_made - p_organic))


def _arm_setup(spec: SimulationSpec, expected_units: int) -> tuple[str, str | None, Any]:
    """(report id, the treated side or None for an A/A, a function that configures the engine)
    for the scenario."""
    scenario = spec.scenario
    if scenario.study == "policy":
        policies = Experiment(
            POLICY_EXPERIMENT,
            "two policies on one placement",
            "policies",
            tuple(Cell(name, 0.5, policy=name) for name in POLICY_CELLS),
            "value",
            guardrail_metrics=("conversion",),
            planned_units_per_cell=max(1, expected_units // 2),
            status="running",
            placement="default",
            promote="auto",
        )

        def with_policies(connection: Any) -> None:
            put_experiment(connection, policies, START)

        return POLICY_EXPERIMENT, POLICY_CELLS[1], with_policies
    if scenario.study == "holdout":
        feedback = spec.extra.get("feedback", {})
        holdout = Holdout(share=scenario.holdout_share, **feedback)

        def with_holdout(connection: Any) -> None:
            put_holdout(connection, holdout, START)

        return "holdout:bank", "campaign", with_holdout
    experiment = Experiment(
        AA_EXPERIMENT,
        "A/A: two identical cells",
        "aa",
        (Cell("a", 0.5), Cell("b", 0.5)),
        "conversion",
        guardrail_metrics=("value",),
        planned_units_per_cell=max(1, expected_units // 2),
        status="running",
    )

    def with_experiment(connection: Any) -> None:
        put_experiment(connection, experiment, START)

    return AA_EXPERIMENT, None, with_experiment


PLANTED_NO_UPLIFT = "planted_no_uplift"
PLANTED_NEGATIVE = "planted_negative"


def planted_world() -> tuple[Catalog, ResponseSpec]:
    """The default bank plus two planted offers that look attractive and add nothing.

    Both are popular products bought anyway (organic take-up 15 % within the window, value EUR
    400) whose contact carries a EUR 15 gift: arbitration on propensity favours them
    (``0.15 x 400`` far above the others' expected value), yet one has no effect of contact at
    all (uplift 0) and the other puts customers off (effect -1.5 on the logit: a sleeping dog).
    Their true incremental value per contact is -15 and about -45 EUR.
    """
    planted = [
        OfferSpec(PLANTED_NO_UPLIFT, "Gift with a savings plan (planted: no uplift)",
                  "gift_savings", "planted", ("app_banner", "email"), value=400.0,
                  contact_cost=15.0, risk_level="R1"),
        OfferSpec(PLANTED_NEGATIVE, "Gift with a bond (planted: negative uplift)",
                  "gift_bond", "planted", ("app_banner", "email"), value=400.0,
                  contact_cost=15.0, risk_level="R1"),
    ]  # fmt: skip
    organic = math.log(0.15 / 0.85)
    responses = (
        (PLANTED_NO_UPLIFT, OfferResponse(base_logit=organic, effect=0.0)),
        (PLANTED_NEGATIVE, OfferResponse(base_logit=organic, effect=-1.5)),
    )
    catalog = Catalog(offers=(*DEFAULT_CATALOG.offers, *planted), channels=DEFAULT_CHANNELS)
    return catalog, replace(DEFAULT_RESPONSE, offers=(*DEFAULT_RESPONSE.offers, *responses))


LIFECYCLE_OFFERS = {
    "new": "welcome_pack",
    "growing": "savings_plan",
    "mature": "premium_card",
    "churn_risk": "loyalty_bonus",
}
"""``lifecycle_world``: the offer that works for each lifecycle stage (and only there)."""


def lifecycle_world() -> tuple[Catalog, ResponseSpec]:
    """A bank whose four app-banner offers each persuade one lifecycle stage and no other.

    Equal values (EUR 200) and a low organic take-up (1 % within the window) everywhere, so an
    offer's accept rate is mostly its uplift; a seen contact moves the logit by 4 x the banner's
    persuasion 0.6 in its own stage (about 10 % take-up) and not at all elsewhere. Every visit
    is a session on the placement, so the banner reaches every visitor (seen with probability
    0.8), app or not. A policy that learns one rate per offer makes the best offer on average
    (the mature customers' one) to everybody; a policy that learns per context can make each
    stage its own. The two differ by several EUR of true incremental value per unit, which a few
    thousand units per cell resolve. (In the default bank the registered policies differ by
    cents per unit against a standard deviation of about EUR 60 per unit: no experiment of a
    feasible size tells them apart.)
    """
    offers = tuple(
        OfferSpec(offer_id, offer_id.replace("_", " ").capitalize(), offer_id, "lifecycle",
                  ("app_banner",), value=200.0, contact_cost=1.0, risk_level="R1")
        for offer_id in LIFECYCLE_OFFERS.values()
    )  # fmt: skip
    organic = math.log(0.01 / 0.99)
    responses = tuple(
        (
            offer_id,
            OfferResponse(
                base_logit=organic,
                effect=4.0,
                effect_by_lifecycle=tuple(  # type: ignore[arg-type]
                    1.0 if stage == own else 0.0 for stage in LIFECYCLES
                ),
            ),
        )
        for own, offer_id in LIFECYCLE_OFFERS.items()
    )
    channels = tuple(
        replace(c, reach=0.8, needs_app=False) if c.channel_id == "app_banner" else c
        for c in DEFAULT_CHANNELS
    )
    return Catalog(offers=offers, channels=channels), replace(DEFAULT_RESPONSE, offers=responses)


def _world(spec: SimulationSpec) -> tuple[Catalog, ResponseSpec | None]:
    """The catalogue and hidden responses a study runs in (None: the default responses)."""
    if spec.scenario.study == "policy":
        return lifecycle_world()
    if spec.extra.get("planted"):
        return planted_world()
    return DEFAULT_CATALOG, None


def run_study(spec: SimulationSpec, progress: ProgressCallback | None = None) -> StudyRun:
    """One run of ``spec`` (an ``aa-test``, ``holdout-uplift`` or ``policy-experiment`` scenario);
    see the module doc. ``spec.extra["planted"]`` adds the planted offers (``planted_world``);
    ``spec.extra["feedback"]`` sets the bank holdout's ``retire`` and ``revalue``."""
    expected = min(spec.customers, spec.visits_per_day * spec.days)
    report_id, treated, configure = _arm_setup(spec, expected)
    catalog, response = _world(spec)
    with tempfile.TemporaryDirectory() as folder:
        engine = open_engine(
            spec,
            spec.policies[0],
            f"sqlite:///{Path(folder) / 'study.db'}",
            attribution_window=WINDOW_DAYS * DAY,
            catalog=catalog,
        )
        with unit_of_work(engine.db) as connection:
            configure(connection)
        engine.catalog.invalidate()
        try:
            return _Study(spec, engine, treated, catalog, response).run(report_id, progress)
        finally:
            engine.db.dispose()


class _Study:
    """The state of one run: who has visited, the units per side, the truth per treated unit,
    and the conversions waiting for their day."""

    def __init__(
        self,
        spec: SimulationSpec,
        engine: DecisionEngine,
        treated: str | None,
        catalog: Catalog,
        response: ResponseSpec | None,
    ) -> None:
        self.spec = spec
        self.engine = engine
        self.treated = treated
        self.catalog = catalog
        self.population = generate_population(spec.customers, seed=spec.seed)
        self.world = World(
            self.population, catalog, seed=spec.seed, response=response or DEFAULT_RESPONSE
        )
        self.client = InProcessClient(engine)
        self.offers = [o.offer_id for o in catalog.offers]
        self.values = np.array([o.value for o in catalog.offers])
        self.home = [o.channels[0] for o in catalog.offers]  # p0 ignores the channel
        self.contact_costs: dict[str, float] = defaultdict(float)  # side -> EUR of contacts made
        self.seen: set[int] = set()
        self.units: dict[str, int] = defaultdict(int)
        self.truth: dict[str, dict[str, list[float]]] = defaultdict(
            lambda: {m: [] for m in METRICS}
        )  # side -> metric -> per-unit truth
        self.pending: dict[int, list[Event]] = defaultdict(list)

    def run(self, report_id: str, progress: ProgressCallback | None) -> StudyRun:
        daily: list[tuple[int, float | None, tuple[float, float] | None]] = []
        report: dict[str, Any] = {}
        promoted = None
        for day in range(self.spec.days + WINDOW_DAYS):
            events = self.visit_day(day) if day < self.spec.days else []
            day_end = START + (day + 1) * DAY - timedelta(microseconds=1)
            events += self.pending.pop(day, [])
            if events:
                self.client.send_events(events, day_end)
            # Learn every policy in use and act on decisive results, also while the last
            # visits' conversions arrive: a result may become decisive only then.
            run_periodic_jobs(self.engine, default_reward=REWARD, now=day_end)
            self.engine.policies.invalidate()
            with self.engine.db.connect() as connection:
                report = experiment_report(connection, report_id)
            comparison = _comparison(report, "conversion")
            daily.append((day, comparison.get("lift"), _pair(comparison.get("sequential_ci"))))
            if progress is not None:
                progress(1)
            promoted = next(
                (
                    a["details"]["winning_cell"]
                    for a in report["actions"]
                    if a["kind"] == "promote" and a["status"] == "applied"
                ),
                None,
            )
            if promoted is not None:  # the experiment has concluded: its decision is made
                break
        readings = {}
        for metric in METRICS:
            c = _comparison(report, metric)
            readings[metric] = MetricReading(
                estimate=c.get("lift"),
                ci=_pair(c.get("ci")),
                sequential_ci=_pair(c.get("sequential_ci")),
                p_value=c.get("p_value"),
                sequential_p_value=c.get("sequential_p_value"),
                truth=self._true_difference(metric),
            )
        return StudyRun(
            seed=self.spec.seed,
            experiment_id=report_id,
            units=dict(self.units),
            readings=readings,
            srm_p_value=report["sample_ratio"]["p_value"],
            daily=daily,
            true_value={
                side: float(np.mean(truth["value"]))
                for side, truth in self.truth.items()
                if truth["value"] and side in POLICY_CELLS
            },
            promoted=promoted,
            net_value={
                side: float(np.sum(truth["value"])) - self.contact_costs[side]
                for side, truth in self.truth.items()
            },
            retired={
                o.offer_id: self._retired_on(o.offer_id)
                for o in self.engine.catalog.current().offers.values()
                if o.retired
            },
        )

    def _true_difference(self, metric: str) -> float:
        """What the report's comparison estimates: the treated side's mean true uplift against
        no offer, minus the control cell's where the control makes offers too (policies)."""

        def mean(side: str) -> float:
            values = self.truth[side][metric]
            return float(np.mean(values)) if values else 0.0

        control = mean(POLICY_CELLS[0]) if self.spec.scenario.study == "policy" else 0.0
        return mean(self.treated or "") - control

    def _retired_on(self, offer_id: str) -> int:
        """The day (from 0) the engine's audit log says ``offer_id`` was retired."""
        with self.engine.db.connect() as connection:
            actions = feedback_actions_of(connection, OFFER_PREFIX + offer_id)
        at = min(a["decided_at"] for a in actions if a["kind"] == "retire")
        return int((at - START) / DAY)

    def visit_day(self, day: int) -> list[Event]:
        """Decide each first-time visitor of ``day``, draw every (visitor, offer) outcome, keep
        the truth of the treated visitors; returns the day's response events."""
        visits = draw_visits(self.spec, self.population, day)
        made: dict[str, list[tuple[int, str, str]]] = defaultdict(list)  # channel -> offers made
        exposed: list[tuple[int, str]] = []  # (customer, side)
        at_of: dict[int, datetime] = {}
        for customer, channel, at in zip(
            visits.customers, visits.channels, visits.times, strict=True
        ):
            i = int(customer)
            if i in self.seen:
                continue
            self.seen.add(i)
            answer = self.client.decide(
                self.population.customer_key(i), channel, self.population.attributes(i), at
            )
            side = answer.cell or "none"
            self.units[side] += 1
            exposed.append((i, side))
            at_of[i] = at
            made[channel] += [(i, offer_id, answer.decision_id) for offer_id in answer.chosen]
            self.contact_costs[side] += sum(
                self.catalog.contact_cost(offer_id, channel) for offer_id in answer.chosen
            )
        row_of = {i: r for r, (i, _) in enumerate(exposed)}
        k_of = {o: k for k, o in enumerate(self.offers)}
        p_made = np.zeros((len(exposed), len(self.offers)))
        p_organic = np.zeros((len(exposed), len(self.offers)))
        events: list[Event] = []
        for channel, pairs in made.items():  # the offers made: p1, and the response events
            customers = np.array([i for i, _, _ in pairs], dtype=np.int64)
            responses = self.world.respond(customers, [o for _, o, _ in pairs], channel, day)
            for j, (i, offer_id, decision_id) in enumerate(pairs):
                p_made[row_of[i], k_of[offer_id]] = responses.p_contacted[j]
                p_organic[row_of[i], k_of[offer_id]] = responses.p_not_contacted[j]
                for kind in ("impression", "click", "accept", "refuse"):
                    if getattr(responses, kind)[j]:
                        occurred = at_of[i] + timedelta(seconds=EVENT_OFFSETS[kind])
                        events.append(Event(f"{decision_id}-{kind}", decision_id, offer_id,
                                            kind, occurred))  # fmt: skip
                if responses.converted[j]:
                    self._queue_conversion(i, offer_id, at_of[i], day, responses, j)
        made_pairs = {(i, o) for pairs in made.values() for i, o, _ in pairs}
        organic: dict[str, list[tuple[int, int]]] = defaultdict(list)  # channel -> (who, offer)
        for i, _ in exposed:
            for k, offer_id in enumerate(self.offers):
                if (i, offer_id) not in made_pairs:
                    organic[self.home[k]].append((i, k))
        for channel, cells in organic.items():  # everything else: organic take-up only
            customers = np.array([i for i, _ in cells], dtype=np.int64)
            offer_ids = [self.offers[k] for _, k in cells]
            responses = self.world.respond(customers, offer_ids, channel, day, contacted=False)
            for j, (i, k) in enumerate(cells):
                p_made[row_of[i], k] = p_organic[row_of[i], k] = responses.p_not_contacted[j]
                if responses.converted[j]:
                    self._queue_conversion(i, self.offers[k], at_of[i], day, responses, j)
        for r, (_, side) in enumerate(exposed):
            conversion, value = unit_truth(p_made[r], p_organic[r], self.values)
            self.truth[side]["conversion"].append(conversion)
            self.truth[side]["value"].append(value)
        return events

    def _queue_conversion(
        self, i: int, offer_id: str, at: datetime, day: int, responses: Responses, j: int
    ) -> None:
        """A conversion, as the bank's systems report it: a customer outcome on its day."""
        delay = int(responses.delay_days[j])
        customer = self.population.customer_key(i)
        self.pending[day + delay].append(
            Event(
                f"{customer}-{offer_id}-convert",
                None,
                None,
                "convert",
                at + delay * DAY + timedelta(minutes=5),
                float(responses.value[j]),
                customer_id=customer,
                product=self.catalog.offer(offer_id).product,
            )
        )


def _comparison(report: dict[str, Any], metric: str) -> dict[str, Any]:
    comparisons = report["metrics"][metric]["comparisons"]
    return dict(comparisons[0]) if comparisons else {}


def _pair(values: Any) -> tuple[float, float] | None:
    return None if values is None else (float(values[0]), float(values[1]))


# --- many runs --------------------------------------------------------------------------------


def _run_seed(spec: SimulationSpec, seed: int) -> StudyRun:
    return run_study(replace(spec, seed=seed))


FEEDBACK_ARMS = {
    "propensity": {"retire": "auto", "revalue": "off"},
    "re-valued": {"retire": "auto", "revalue": "auto"},
}
"""The arms of ``run_planted``: arbitration on the policy's propensity, or on the re-valued one;
both retire offers whose incremental value is significantly below their cost."""


def run_planted(spec: SimulationSpec, workers: int = 1) -> dict[str, StudyRun]:
    """The bank holdout with the planted offers (``planted_world``), once per arm of
    ``FEEDBACK_ARMS``, on the same seed: the same customers, visits and world."""
    specs = {
        arm: replace(spec, extra={**spec.extra, "planted": True, "feedback": feedback})
        for arm, feedback in FEEDBACK_ARMS.items()
    }
    if workers <= 1:
        return {arm: run_study(s) for arm, s in specs.items()}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {arm: pool.submit(run_study, s) for arm, s in specs.items()}
        return {arm: future.result() for arm, future in futures.items()}


def format_planted(spec: SimulationSpec, runs: dict[str, StudyRun]) -> str:
    """Per arm: what the engine retired and when, and the campaign's net incremental value."""
    catalog, _ = planted_world()
    planted = {PLANTED_NO_UPLIFT: "no uplift", PLANTED_NEGATIVE: "negative uplift"}
    lines = [
        f"{spec.scenario.name} with planted offers: {spec.customers:,} customers, {spec.days} "
        f"days (+{WINDOW_DAYS} for conversions), seed {spec.seed}; planted: "
        + ", ".join(
            f"{o} ({truth}, contact EUR {catalog.offer(o).contact_cost:g})"
            for o, truth in planted.items()
        ),
        "net value = true incremental value of the offers made to campaign units minus their "
        "contact costs, EUR",
        f"{'arm':<11} {'campaign units':>14} {'net value':>11}  retired (day)",
    ]
    for arm, run in runs.items():
        retired = ", ".join(f"{o} ({day})" for o, day in sorted(run.retired.items()))
        lines.append(
            f"{arm:<11} {run.units.get('campaign', 0):>14,} "
            f"{run.net_value.get('campaign', 0.0):>11,.0f}  {retired or '-'}"
        )
    return "\n".join(lines)


def run_studies(
    spec: SimulationSpec, runs: int, workers: int = 1, progress: ProgressCallback | None = None
) -> list[StudyRun]:
    """``runs`` runs with seeds ``spec.seed``, ``spec.seed + 1``, ...; results in seed order."""
    seeds = [spec.seed + r for r in range(runs)]
    if workers <= 1 or runs == 1:
        results = []
        for seed in seeds:
            results.append(_run_seed(spec, seed))
            if progress is not None:
                progress(1)
        return results
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_run_seed, spec, seed) for seed in seeds]
        results = []
        for future in futures:
            results.append(future.result())
            if progress is not None:
                progress(1)
        return results


def summarise(runs: list[StudyRun], alpha: float = 0.05) -> dict[str, dict[str, float]]:
    """Per metric over the runs: coverage of both intervals, rejection rates, mean estimate,
    mean truth, mean interval widths; plus the SRM alarm rate."""
    summary: dict[str, dict[str, float]] = {}
    for metric in METRICS:
        readings = [run.readings[metric] for run in runs]
        valid = [r for r in readings if r.ci is not None and r.sequential_ci is not None]
        n = max(len(valid), 1)
        summary[metric] = {
            "runs": float(len(valid)),
            "coverage_fixed": sum(r.covers(r.ci) for r in valid) / n,
            "coverage_anytime": sum(r.covers(r.sequential_ci) for r in valid) / n,
            "reject_fixed": sum((r.p_value or 1.0) < alpha for r in valid) / n,
            "reject_anytime": sum((r.sequential_p_value or 1.0) < alpha for r in valid) / n,
            "mean_estimate": float(np.mean([r.estimate for r in valid])) if valid else 0.0,
            "mean_truth": float(np.mean([r.truth for r in valid])) if valid else 0.0,
            "mean_width_fixed": float(np.mean([r.ci[1] - r.ci[0] for r in valid if r.ci]))
            if valid
            else 0.0,
            "mean_width_anytime": float(
                np.mean([r.sequential_ci[1] - r.sequential_ci[0] for r in valid if r.sequential_ci])
            )
            if valid
            else 0.0,
        }
    alarms = [run.srm_p_value for run in runs if run.srm_p_value is not None]
    summary["srm"] = {"alarm_rate": sum(p < 0.001 for p in alarms) / max(len(alarms), 1)}
    if any(run.true_value for run in runs):
        summary["promotion"] = {
            "best": sum(r.promoted is not None and r.promoted == r.best_side for r in runs)
            / len(runs),
            "other": sum(r.promoted is not None and r.promoted != r.best_side for r in runs)
            / len(runs),
            "none": sum(r.promoted is None for r in runs) / len(runs),
        }
    return summary


def format_study(spec: SimulationSpec, runs: list[StudyRun]) -> str:
    """The first run's readings, then (for several runs) the summary over all of them."""
    first = runs[0]
    lines = [
        f"{spec.scenario.name}: {spec.customers:,} customers, {spec.days} days of visits "
        f"(+{WINDOW_DAYS} for conversions), policy {spec.policies[0]}, seed {first.seed}; "
        f"report {first.experiment_id}; units "
        + ", ".join(f"{side} {n:,}" for side, n in sorted(first.units.items())),
        f"{'metric':<11} {'estimate':>10} {'95% CI (fixed)':>24} {'anytime-valid CI':>24} "
        f"{'truth':>10} {'covered':>8}",
    ]
    for metric, r in first.readings.items():
        lines.append(
            f"{metric:<11} {_num(r.estimate):>10} {_interval(r.ci):>24} "
            f"{_interval(r.sequential_ci):>24} {r.truth:>10.4g} "
            f"{'yes' if r.covers(r.sequential_ci) else 'no':>8}"
        )
    if first.true_value:
        lines.append(
            "true incremental value per unit: "
            + ", ".join(f"{side} {v:.4g}" for side, v in sorted(first.true_value.items()))
            + f"; promoted: {first.promoted or 'none'} on day {len(first.daily) - 1}"
        )
    if len(runs) > 1:
        summary = summarise(runs)
        lines += [
            "",
            f"over {len(runs)} seeded runs (seeds {runs[0].seed}..{runs[-1].seed}):",
            f"{'metric':<11} {'covered (fixed)':>15} {'covered (anytime)':>17} "
            f"{'p<.05 fixed':>11} {'p<.05 anytime':>13} {'mean est.':>10} {'mean truth':>10}",
        ]
        for metric in METRICS:
            s = summary[metric]
            lines.append(
                f"{metric:<11} {s['coverage_fixed']:>15.1%} {s['coverage_anytime']:>17.1%} "
                f"{s['reject_fixed']:>11.1%} {s['reject_anytime']:>13.1%} "
                f"{s['mean_estimate']:>10.4g} {s['mean_truth']:>10.4g}"
            )
        lines.append(f"SRM alarms (p < 0.001): {summary['srm']['alarm_rate']:.1%}")
        if "promotion" in summary:
            promotion = summary["promotion"]
            lines.append(
                f"promoted the truly better cell in {promotion['best']:.1%} of runs, the other "
                f"in {promotion['other']:.1%}, neither in {promotion['none']:.1%}"
            )
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _interval(bounds: tuple[float, float] | None) -> str:
    return "-" if bounds is None else f"[{bounds[0]:.4g}, {bounds[1]:.4g}]"


def plot_study(run: StudyRun, path: str | Path) -> Path:
    """Lift of conversion with its anytime-valid band after each day, and the true uplift."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [d for d, lift, band in run.daily if lift is not None and band is not None]
    lifts = [lift for _, lift, band in run.daily if lift is not None and band is not None]
    lows = [band[0] for _, lift, band in run.daily if lift is not None and band is not None]
    highs = [band[1] for _, lift, band in run.daily if lift is not None and band is not None]
    figure, axes = plt.subplots(figsize=(9, 5))
    scale = 100.0  # percentage points
    axes.fill_between(
        days, [v * scale for v in lows], [v * scale for v in highs], alpha=0.3,
        label="anytime-valid 95% interval",
    )  # fmt: skip
    axes.plot(days, [v * scale for v in lifts], label="engine's estimate")
    axes.axhline(run.readings["conversion"].truth * scale, color="black", linestyle="--",
                 label="true uplift (simulator)")  # fmt: skip
    axes.axhline(0.0, color="grey", linewidth=0.8)
    axes.set_xlabel("simulated day")
    axes.set_ylabel("uplift in conversion rate (percentage points)")
    axes.set_title(f"{run.experiment_id}: conversion uplift over time (seed {run.seed})")
    axes.legend()
    figure.tight_layout()
    out = Path(path)
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out
