"""The runner: drives the real engine with the simulated bank's customers and measures it.

One run per policy, all with common random numbers (the same population, the same world seed,
the same visits). Each simulated day:

1. the day's visits (customer, channel, time) are drawn from a generator seeded by the seed and
   the day only, so every policy sees the same visits;
2. for each visit, in time order, the engine decides (in-process, or ``POST /v1/decisions`` with
   ``--http``) with the customer's attributes as the context, and logs the decision;
3. the world scores every offer the engine's rules allowed (true uplift, state before the day),
   which gives the oracle, then draws the responses to the offers made;
4. the responses become events (impression, click, accept, refuse at the decision's time; the
   conversion with its value after the drawn delay, on the day it happens) and are sent to the
   engine (in-process ``record_events``, or ``POST /v1/events``);
5. the learner replays the day's closed decisions and publishes a snapshot, which the engine
   picks up for the next day.

What is measured, per day and in total, for each policy (EUR throughout):

* incremental value: the expected value the contacts added, ``sum (p1 - p0) x value - cost``
  over the offers made, with the true probabilities (low-variance: no outcome noise);
* the oracle: per visit, the offer with the highest true incremental value among those the
  engine's rules allowed at that moment (same caps, budgets, eligibility), so its value is what
  a perfect myopic scorer would have captured; regret is oracle minus captured;
* realised conversions and value (the drawn outcomes of the offers made, organic included),
  expected incremental conversions of the policy and of the oracle;
* spend (contact costs charged) against the budget, read from the engine's database;
* cap violations: an independent audit of every contact against the contact policy (caps per
  channel per rolling day and week, per week in total, per offer, refusal cool-downs, quiet
  hours in the customer's time zone); the engine must keep it at 0.

The simulated calendar starts on :data:`START`, a Monday in the past, so the HTTP API (which
stamps events with the wall clock) accepts the simulated event times.
"""

from __future__ import annotations

import math
import multiprocessing
import queue as queue_module
import socket
import tempfile
import threading
import time as monotonic
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

import numpy as np
from scipy import optimize
from sqlalchemy import select

from bandits import Policy
from decisioning.budgets import BUDGET_REASONS
from decisioning.catalog import (
    offer_from_document,
    put_budget,
    put_campaign,
    put_contact_policy,
    put_offer,
)
from decisioning.domain import Budget, ContactPolicy, Decision, DecisionRequest, Event, Pacing
from decisioning.engine import DecisionEngine
from decisioning.events import MAX_BATCH, record_events
from decisioning.learning import Learner, RewardDefinition, step_prices
from decisioning.settings import DEFAULT_ATTRIBUTION_HOURS, Settings
from decisioning.sql.session import make_engine, migrate, unit_of_work
from decisioning.sql.tables import budgets, from_units
from simulations.catalog import DEFAULT_CATALOG, Catalog
from simulations.population import Population, generate_population
from simulations.scenarios import (
    ORACLE,
    RANDOM,
    SEGMENT_RULES,
    SegmentRulesPolicy,
    SimulationSpec,
    TruthPolicy,
    offer_documents,
)
from simulations.world import Responses, World

START: Final = datetime(2025, 1, 6, tzinfo=UTC)
DAY: Final = timedelta(days=1)
CAMPAIGN: Final = "simulation"
BUDGET_ID: Final = "simulation-budget"
#: The learner's reward: an explicit accept within an hour of the decision (the world answers
#: at once; the conversion itself may come weeks later).
REWARD: Final = RewardDefinition("accept", timedelta(hours=1))
ENGINE_EPSILON: Final = 0.05
#: Seconds after the decision at which each response event happens.
EVENT_OFFSETS: Final[dict[str, int]] = {"impression": 1, "click": 20, "accept": 60, "refuse": 60}

ProgressCallback = Callable[[int], None]


# --- results ----------------------------------------------------------------------------------


@dataclass(slots=True)
class DayMetrics:
    """One policy's day. Money in EUR; ``*_value`` expected from the true probabilities."""

    day: int
    visits: int = 0
    contacts: int = 0
    value: float = 0.0
    oracle_value: float = 0.0
    incremental_conversions: float = 0.0
    oracle_conversions: float = 0.0
    conversions: int = 0
    realised_value: float = 0.0
    spend: float = 0.0
    budget_spent: float = 0.0
    cap_violations: int = 0

    @property
    def regret(self) -> float:
        return self.oracle_value - self.value


@dataclass(slots=True)
class RunResult:
    """One policy's run: its days, the budget read back from the engine, and timings."""

    policy: str
    days: list[DayMetrics]
    budget: float | None
    budget_spent: float
    overspend: float
    violations_by_kind: dict[str, int]
    decide_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    pacing: Pacing = "even"
    lp_bound: float | None = None

    def total(self, name: str) -> float:
        return float(sum(getattr(d, name) for d in self.days))

    @property
    def cap_violations(self) -> int:
        return int(self.total("cap_violations"))

    @property
    def share(self) -> float:
        """Incremental value captured as a share of the oracle's (NaN when the oracle's is 0)."""
        oracle = self.total("oracle_value")
        return self.total("value") / oracle if oracle > 0 else float("nan")

    def share_between(self, first: int, last: int) -> float:
        days = [d for d in self.days if first <= d.day < last]
        oracle = sum(d.oracle_value for d in days)
        return sum(d.value for d in days) / oracle if oracle > 0 else float("nan")

    def summary(self) -> dict[str, Any]:
        """Totals as plain values (JSON output)."""
        names = (
            "visits",
            "contacts",
            "value",
            "oracle_value",
            "regret",
            "incremental_conversions",
            "oracle_conversions",
            "conversions",
            "realised_value",
            "spend",
            "cap_violations",
        )
        totals: dict[str, Any] = {name: self.total(name) for name in names}
        share = self.share
        totals.update(
            policy=self.policy,
            share_of_oracle=None if math.isnan(share) else share,
            budget=self.budget,
            budget_spent=self.budget_spent,
            overspend=self.overspend,
            violations_by_kind=self.violations_by_kind,
            pacing=self.pacing,
            lp_bound=self.lp_bound,
        )
        return totals


# --- visits -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Visits:
    """One day's visits in time order, shape (m,) each: customer index, channel, time."""

    customers: np.ndarray[Any, np.dtype[np.int64]]
    channels: tuple[str, ...]
    times: tuple[datetime, ...]


def reachable(population: Population, channel: str, catalog: Catalog = DEFAULT_CATALOG) -> Any:
    """Indices of the customers ``channel`` can reach (app users, the RM's tiers)."""
    spec = catalog.channel(channel)
    ok = np.ones(len(population), dtype=bool)
    if spec.needs_app:
        ok &= population.app_user
    tiers = np.array([t in spec.tiers for t in ("mass", "affluent", "private")])
    ok &= tiers[population.aum_tier]
    return np.flatnonzero(ok)


def draw_visits(spec: SimulationSpec, population: Population, day: int) -> Visits:
    """The visits of ``day``: distinct customers per channel, at uniform times within the
    scenario's hours; a function of ``(seed, day)`` only, so every policy gets the same."""
    rng = np.random.default_rng([spec.seed, 0x5EED, day])
    channels = spec.scenario.channels
    base, extra = divmod(spec.visits_per_day, len(channels))
    customers: list[Any] = []
    names: list[str] = []
    for k, channel in enumerate(channels):
        pool = reachable(population, channel)
        n = min(base + (k < extra), len(pool))
        customers.append(rng.choice(pool, size=n, replace=False))
        names.extend([channel] * n)
    everyone = np.concatenate(customers).astype(np.int64)
    start, end = spec.scenario.hours
    span_us = int((end - start) * 3600e6) - everyone.size
    offsets = np.sort(rng.integers(0, max(span_us, 1), size=everyone.size)) + np.arange(
        everyone.size
    )
    order = rng.permutation(everyone.size)  # which visit gets which time slot
    day_start = START + day * DAY + timedelta(hours=start)
    times = tuple(day_start + timedelta(microseconds=int(us)) for us in offsets)
    return Visits(everyone[order], tuple(names[i] for i in order), times)


# --- the cap audit ----------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


class CapAudit:
    """Checks every contact against the contact policy independently of the engine.

    Windows are rolling, as the engine defines them: a day is the 24 hours up to the contact,
    a week the 7 days; a refusal blocks its offer until its time plus the cool-down, once the
    refusal event has reached the engine (events are sent at the end of each day).
    """

    def __init__(self, policy: ContactPolicy) -> None:
        self.policy = policy
        self.keep = timedelta(days=max(7, policy.offer_window_days))
        self._contacts: dict[int, deque[tuple[datetime, str, str]]] = defaultdict(deque)
        self._cooling: dict[tuple[int, str], datetime] = {}
        self.violations: dict[str, int] = defaultdict(int)

    def check(self, customer: int, channel: str, offer_id: str, at: datetime, zone: str) -> int:
        """Count the violations of one contact, then record it; returns the count."""
        policy = self.policy
        history = self._contacts[customer]
        while history and history[0][0] < at - self.keep:
            history.popleft()
        found: list[str] = []
        day_ago, week_ago = at - DAY, at - timedelta(days=7)
        offer_since = at - timedelta(days=policy.offer_window_days)
        channel_day = sum(1 for t, c, _ in history if c == channel and t >= day_ago)
        channel_week = sum(1 for t, c, _ in history if c == channel and t >= week_ago)
        total_week = sum(1 for t, _, _ in history if t >= week_ago)
        per_offer = sum(1 for t, _, o in history if o == offer_id and t >= offer_since)
        caps = policy.channel_caps.get(channel)
        if caps is not None and caps.per_day is not None and channel_day + 1 > caps.per_day:
            found.append("channel_per_day")
        if caps is not None and caps.per_week is not None and channel_week + 1 > caps.per_week:
            found.append("channel_per_week")
        if policy.total_per_week is not None and total_week + 1 > policy.total_per_week:
            found.append("total_per_week")
        if policy.offer_max_contacts is not None and per_offer + 1 > policy.offer_max_contacts:
            found.append("offer_cap")
        until = self._cooling.get((customer, offer_id))
        if until is not None and at < until:
            found.append("refusal_cooldown")
        quiet = policy.quiet_hours.get(channel)
        if quiet is not None and quiet.contains(at.astimezone(_zone(zone)).time()):
            found.append("quiet_hours")
        for kind in found:
            self.violations[kind] += 1
        history.append((at, channel, offer_id))
        return len(found)

    def refused(self, customer: int, offer_id: str, at: datetime) -> None:
        """A refusal that happened at ``at`` reached the engine (after the day's contacts were
        checked): the offer cools down until ``at`` plus the cool-down."""
        if self.policy.refusal_cooldown_days > 0:
            until = at + timedelta(days=self.policy.refusal_cooldown_days)
            key = (customer, offer_id)
            self._cooling[key] = max(until, self._cooling.get(key, until))


# --- talking to the engine --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """What the runner needs of a decision: its id, the offers made, the offers allowed, and
    the experiment cell (or holdout side) it ran in."""

    decision_id: str
    chosen: tuple[str, ...]
    allowed: tuple[str, ...]
    cell: str | None = None
    budget_blocked: tuple[str, ...] = ()


class EngineClient(Protocol):
    """The two calls a channel makes: decide, and report outcomes."""

    def decide(
        self, customer_id: str, channel: str, context: dict[str, Any], at: datetime
    ) -> Answer: ...

    def send_events(self, events: Sequence[Event], now: datetime) -> None: ...

    def close(self) -> None: ...


def _answer(decision: Decision) -> Answer:
    return Answer(
        decision.decision_id,
        tuple(o.offer_id for o in decision.offers),
        tuple(o for o, logged in decision.explanation.items() if not isinstance(logged, str)),
        decision.cell,
        tuple(o for o, logged in decision.explanation.items() if logged in BUDGET_REASONS),
    )


class InProcessClient:
    """Calls ``DecisionEngine.decide`` and ``record_events`` directly, with the simulated clock."""

    def __init__(self, engine: DecisionEngine) -> None:
        self.engine = engine

    def decide(
        self, customer_id: str, channel: str, context: dict[str, Any], at: datetime
    ) -> Answer:
        return _answer(
            self.engine.decide(DecisionRequest(customer_id, channel, context=context), at)
        )

    def send_events(self, events: Sequence[Event], now: datetime) -> None:
        catalog = self.engine.catalog.current()
        window = timedelta(hours=self.engine.settings.attribution_window_hours)
        for k in range(0, len(events), MAX_BATCH):
            with unit_of_work(self.engine.db, durable=True) as connection:
                record_events(
                    connection,
                    events[k : k + MAX_BATCH],
                    catalog.contact_policy,
                    now,
                    window,
                    catalog.offers,
                )

    def close(self) -> None:
        return None


class ClockedEngine(DecisionEngine):
    """An engine whose decisions without an explicit ``now`` happen at the simulated ``clock``
    (the HTTP route calls ``decide`` without one)."""

    clock: datetime | None = None

    def decide(self, request: DecisionRequest, now: datetime | None = None) -> Decision:
        return super().decide(request, now or self.clock)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HttpClient:
    """The real app under uvicorn on a local port (in a thread of this process, so the runner
    can set the simulated clock); decisions and events go over HTTP with a channel key."""

    def __init__(self, engine: ClockedEngine) -> None:
        import httpx
        import uvicorn

        from api.app import create_app
        from api.security import create_key

        self.engine = engine
        port = _free_port()
        config = uvicorn.Config(
            create_app(engine.settings, engine), host="127.0.0.1", port=port, log_level="warning"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="simulate-http", daemon=True)
        self._thread.start()
        deadline = monotonic.monotonic() + 30
        while not self._server.started:
            if monotonic.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the HTTP server did not start")
            monotonic.sleep(0.01)
        key = create_key(engine.db, "channel", "simulation")
        self._http = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=60.0,
        )

    def decide(
        self, customer_id: str, channel: str, context: dict[str, Any], at: datetime
    ) -> Answer:
        self.engine.clock = at
        response = self._http.post(
            "/v1/decisions",
            json={
                "customer_id": customer_id,
                "channel": channel,
                "context": context,
                "explain": True,
            },
        )
        response.raise_for_status()
        body = response.json()
        return Answer(
            body["decision_id"],
            tuple(o["offer_id"] for o in body["offers"]),
            tuple(c["offer_id"] for c in body["candidates"] if c["reason"] is None),
            body["cell"],
            tuple(c["offer_id"] for c in body["candidates"] if c["reason"] in BUDGET_REASONS),
        )

    def send_events(self, events: Sequence[Event], now: datetime) -> None:
        for k in range(0, len(events), MAX_BATCH):
            batch = [
                {
                    "event_id": e.event_id,
                    "decision_id": e.decision_id,
                    "offer_id": e.offer_id,
                    "customer_id": e.customer_id,
                    "product": e.product,
                    "type": e.type,
                    "value": e.value,
                    "occurred_at": e.occurred_at.isoformat(),
                }
                for e in events[k : k + MAX_BATCH]
            ]
            self._http.post("/v1/events", json={"events": batch}).raise_for_status()

    def close(self) -> None:
        self._http.close()
        self._server.should_exit = True
        self._thread.join(timeout=10)


class FixedPolicies:
    """Stands in for the engine's policy cache for a baseline that is not in the registry."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def current(self, name: str) -> tuple[Policy, int]:
        return self.policy, 0

    def invalidate(self) -> None:
        return None


# --- one run ------------------------------------------------------------------------------------


def open_engine(
    spec: SimulationSpec,
    policy: str,
    url: str,
    attribution_window: timedelta = timedelta(hours=DEFAULT_ATTRIBUTION_HOURS),
    pacing: Pacing = "even",
    catalog: Catalog = DEFAULT_CATALOG,
) -> ClockedEngine:
    """A migrated engine for one run, with the scenario's catalogue, budget and caps loaded."""
    settings = Settings(
        database_url=url,
        seed=spec.seed,
        default_policy="beta-bernoulli" if policy == RANDOM else policy,
        epsilon={RANDOM: 1.0, SEGMENT_RULES: 0.0, ORACLE: 0.0}.get(policy, ENGINE_EPSILON),
        refresh_seconds=60.0,
        embedded_learner=False,
        attribution_window_hours=attribution_window / timedelta(hours=1),
    )
    db = make_engine(url)
    migrate(db)
    engine = ClockedEngine(settings, db)
    if policy == SEGMENT_RULES:
        engine.policies = FixedPolicies(SegmentRulesPolicy())  # type: ignore[assignment]
    scenario = spec.scenario
    with unit_of_work(engine.db) as connection:
        if spec.budget is not None:
            put_campaign(connection, CAMPAIGN, "Simulated campaign", START)
        for document in offer_documents(scenario.channels, catalog):
            if spec.budget is not None:
                document["campaign_id"] = CAMPAIGN
            put_offer(connection, offer_from_document(document), START)
        if spec.budget is not None:
            budget = Budget(
                BUDGET_ID,
                "campaign",
                CAMPAIGN,
                "money",
                spec.budget,
                flight_start=START,
                flight_end=START + spec.days * DAY,
                pacing=pacing,
            )
            put_budget(connection, budget, START)
        put_contact_policy(connection, scenario.contact_policy, START)
    engine.catalog.invalidate()
    return engine


def budget_spent(engine: DecisionEngine) -> float:
    with engine.db.connect() as connection:
        row = connection.execute(
            select(budgets.c.spent_units).where(budgets.c.budget_id == BUDGET_ID)
        ).first()
    return 0.0 if row is None else from_units(int(row[0]))


def run_policy(
    spec: SimulationSpec,
    policy: str,
    progress: ProgressCallback | None = None,
    folder: Path | None = None,
    pacing: Pacing = "even",
) -> RunResult:
    """Simulate ``spec.days`` days of ``policy`` on a fresh SQLite file; see the module doc.

    Parameters
    ----------
    spec : SimulationSpec
        Scenario, sizes, seed; ``spec.http`` sends decisions and events over HTTP.
    policy : str
        A registered policy name, ``"random"`` or ``"segment-rules"``.
    progress : callable, optional
        Called with 1 after each simulated day.
    folder : Path, optional
        Where the temporary SQLite file goes (default: the system's temp folder).
    pacing : str
        The budget's pacing (``even``, ``asap`` or ``dual``).

    Returns
    -------
    RunResult
        One :class:`DayMetrics` per day, the budget read back from the engine, the audit's
        violations by kind, and the wall-clock time of every decision.
    """
    started = monotonic.perf_counter()
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        url = f"sqlite:///{Path(tmp) / 'simulation.db'}"
        engine = open_engine(spec, policy, url, pacing=pacing)
        client: EngineClient = HttpClient(engine) if spec.http else InProcessClient(engine)
        try:
            result = _simulate(spec, policy, engine, client, progress)
            result.pacing = pacing
        finally:
            client.close()
            engine.db.dispose()
    result.seconds = monotonic.perf_counter() - started
    return result


def _simulate(
    spec: SimulationSpec,
    policy: str,
    engine: DecisionEngine,
    client: EngineClient,
    progress: ProgressCallback | None,
) -> RunResult:
    catalog = DEFAULT_CATALOG
    population = generate_population(spec.customers, seed=spec.seed)
    world = World(population, catalog, seed=spec.seed, drift=spec.scenario.drifts(spec.days))
    learner = (
        Learner(engine, engine.settings.default_policy, default_reward=REWARD)
        if policy not in (RANDOM, SEGMENT_RULES, ORACLE)
        else None
    )
    truth = TruthPolicy(world) if policy == ORACLE else None
    if truth is not None:
        engine.policies = FixedPolicies(truth)  # type: ignore[assignment]
    # Every (visit, offer) the rules or only the budget allowed, with its true worth and cost:
    # the fluid LP's columns.
    lp_visit: list[int] = []
    lp_worth: list[float] = []
    lp_cost: list[float] = []
    audit = CapAudit(spec.scenario.contact_policy)
    offer_index = {o.offer_id: k for k, o in enumerate(catalog.offers)}
    values = np.array([o.value for o in catalog.offers])
    costs = {
        c: np.array(
            [
                catalog.contact_cost(o.offer_id, c) if c in o.channels else 0.0
                for o in catalog.offers
            ]
        )
        for c in spec.scenario.channels
    }
    pending: dict[int, list[Event]] = defaultdict(list)  # day -> conversion events
    days: list[DayMetrics] = []
    decide_ms: list[float] = []
    seen = 0  # visits of the days before
    for day in range(spec.days):
        metrics = DayMetrics(day=day)
        visits = draw_visits(spec, population, day)
        metrics.visits = len(visits.times)
        if truth is not None:
            truth.day = day
        answers: list[Answer] = []
        for customer, channel, at in zip(
            visits.customers, visits.channels, visits.times, strict=True
        ):
            i = int(customer)
            context = population.attributes(i)
            if truth is not None:
                context.update(customer_index=i, channel=channel)
            t0 = monotonic.perf_counter()
            answer = client.decide(population.customer_key(i), channel, context, at)
            decide_ms.append((monotonic.perf_counter() - t0) * 1000.0)
            answers.append(answer)
            zone = population.spec.timezones[population.timezone[i]]
            for offer_id in answer.chosen:
                metrics.cap_violations += audit.check(i, channel, offer_id, at, zone)

        events: list[Event] = []
        for channel in spec.scenario.channels:
            rows = [k for k, c in enumerate(visits.channels) if c == channel]
            # The oracle: the true incremental value of every allowed offer, state before the day.
            pair_visit = [k for k in rows for _ in answers[k].allowed + answers[k].budget_blocked]
            pair_offer = [
                offer_index[o] for k in rows for o in answers[k].allowed + answers[k].budget_blocked
            ]
            allowed = {(k, offer_index[o]) for k in rows for o in answers[k].allowed}
            by_pair: dict[tuple[int, int], tuple[float, float]] = {}
            if pair_visit:
                customers = visits.customers[pair_visit]
                offers = np.asarray(pair_offer, dtype=np.int64)
                uplift = world.uplift(customers, offers, channel, day=day)
                worth = uplift * values[offers] - costs[channel][offers]
                best: dict[int, tuple[float, float]] = {}
                for k, o, u, w in zip(pair_visit, pair_offer, uplift, worth, strict=True):
                    by_pair[(k, o)] = (float(u), float(w))
                    if w > 0:
                        lp_visit.append(seen + k)
                        lp_worth.append(float(w))
                        lp_cost.append(float(costs[channel][o]))
                    if (k, o) in allowed and (k not in best or w > best[k][1]):
                        best[k] = (float(u), float(w))
                for u, w in best.values():
                    metrics.oracle_value += w
                    metrics.oracle_conversions += u
            contacted = [(k, o) for k in rows for o in answers[k].chosen]
            if not contacted:
                continue
            for k, offer_id in contacted:
                u, w = by_pair[(k, offer_index[offer_id])]
                metrics.value += w
                metrics.incremental_conversions += u
                metrics.spend += float(costs[channel][offer_index[offer_id]])
            responses = world.respond(
                visits.customers[[k for k, _ in contacted]],
                np.array([offer_index[o] for _, o in contacted], dtype=np.int64),
                channel,
                day,
            )
            metrics.contacts += len(contacted)
            metrics.conversions += int(responses.converted.sum())
            metrics.realised_value += float(responses.value.sum())
            events += _events(contacted, answers, visits, responses, pending, audit, day)

        day_end = START + (day + 1) * DAY - timedelta(microseconds=1)
        events += pending.pop(day, [])
        if events:
            client.send_events(events, day_end)
        if learner is not None:
            learner.run_once(now=day_end)
            engine.policies.invalidate()
        step_prices(engine, START + (day + 1) * DAY)  # the periodic job's price step
        seen += len(visits.times)
        metrics.budget_spent = budget_spent(engine)
        days.append(metrics)
        if progress is not None:
            progress(1)

    spent = budget_spent(engine)
    return RunResult(
        policy=policy,
        days=days,
        budget=spec.budget,
        budget_spent=spent,
        overspend=max(0.0, spent - spec.budget) if spec.budget is not None else 0.0,
        violations_by_kind=dict(audit.violations),
        decide_ms=decide_ms,
        lp_bound=(
            None
            if spec.budget is None
            else fluid_bound(np.array(lp_visit), np.array(lp_worth), np.array(lp_cost), spec.budget)
        ),
    )


def fluid_bound(visit: np.ndarray, worth: np.ndarray, cost: np.ndarray, budget: float) -> float:
    """The fluid LP's optimum: most value any pacing could capture from these visits.

    ``max sum x_j worth_j`` subject to ``sum x_j cost_j <= budget`` and, per visit, ``sum x_j
    <= 1`` over its offers, ``x >= 0``. By LP duality it equals ``min over lambda >= 0`` of
    ``lambda budget + sum_visits max(0, max_j (worth_j - lambda cost_j))``, a convex function of
    one variable whose kinks lie at the ratios ``worth / cost`` and at the crossings of two
    offers of one visit; a bounded scalar search finds it to 1e-9 relative.
    """
    if visit.size == 0:
        return 0.0
    order = np.argsort(visit, kind="stable")
    visit, worth, cost = visit[order], worth[order], cost[order]
    starts = np.flatnonzero(np.r_[True, visit[1:] != visit[:-1]])

    def dual(price: float) -> float:
        best = np.maximum.reduceat(worth - price * cost, starts)
        return float(price * budget + np.maximum(best, 0.0).sum())

    top = float(np.max(worth / cost))
    found = optimize.minimize_scalar(
        dual, bounds=(0.0, top), method="bounded", options={"xatol": top * 1e-12}
    )
    return min(dual(0.0), float(found.fun))


def _events(
    contacted: Sequence[tuple[int, str]],
    answers: Sequence[Answer],
    visits: Visits,
    responses: Responses,
    pending: dict[int, list[Event]],
    audit: CapAudit,
    day: int,
) -> list[Event]:
    """The day's response events; conversions are queued for the day they happen on."""
    events: list[Event] = []
    for j, (k, offer_id) in enumerate(contacted):
        decision_id, at = answers[k].decision_id, visits.times[k]
        for kind, happened in (
            ("impression", responses.impression[j]),
            ("click", responses.click[j]),
            ("accept", responses.accept[j]),
            ("refuse", responses.refuse[j]),
        ):
            if happened:
                occurred = at + timedelta(seconds=EVENT_OFFSETS[kind])
                events.append(Event(f"{decision_id}-{kind}", decision_id, offer_id, kind, occurred))  # type: ignore[arg-type]
                if kind == "refuse":
                    audit.refused(int(visits.customers[k]), offer_id, occurred)
        if responses.converted[j]:
            delay = int(responses.delay_days[j])
            pending[day + delay].append(
                Event(
                    f"{decision_id}-convert",
                    decision_id,
                    offer_id,
                    "convert",
                    at + delay * DAY + timedelta(minutes=5),
                    float(responses.value[j]),
                )
            )
    return events


# --- many runs ----------------------------------------------------------------------------------


@dataclass(slots=True)
class SimulationResult:
    spec: SimulationSpec
    runs: list[RunResult]
    seconds: float


def _run_in_worker(spec: SimulationSpec, policy: str, pacing: Pacing, updates: Any) -> RunResult:
    def report(days: int) -> None:
        updates.put(days)

    return run_policy(spec, policy, report, pacing=pacing)


def run_simulation(
    spec: SimulationSpec, workers: int = 1, progress: ProgressCallback | None = None
) -> SimulationResult:
    """Run every policy of ``spec`` under each of its scenario's pacings; results in the order
    of ``spec.policies``, then of the pacings.

    Parameters
    ----------
    spec : SimulationSpec
    workers : int
        Processes to run the policies in (each run has its own SQLite file); 1 runs them here.
        Runs share nothing, so the results do not depend on ``workers``.
    progress : callable, optional
        Called with the number of simulated days just finished (across all runs).
    """
    started = monotonic.perf_counter()
    plan = [(p, pacing) for p in spec.policies for pacing in spec.scenario.pacings]
    workers = max(1, min(workers, len(plan)))
    if workers == 1:
        runs = [run_policy(spec, p, progress, pacing=pacing) for p, pacing in plan]
    else:
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager:
            updates = manager.Queue()
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = [
                    pool.submit(_run_in_worker, spec, p, pacing, updates) for p, pacing in plan
                ]
                while not all(f.done() for f in futures):
                    try:
                        advanced = updates.get(timeout=0.2)
                    except queue_module.Empty:
                        continue
                    if progress is not None:
                        progress(int(advanced))
                runs = [f.result() for f in futures]
            while progress is not None:
                try:
                    progress(int(updates.get_nowait()))
                except queue_module.Empty:
                    break
    return SimulationResult(spec, runs, monotonic.perf_counter() - started)


# --- the table --------------------------------------------------------------------------------


def _money(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def format_table(result: SimulationResult) -> str:
    """The printed table: a header stating the set-up, one row per policy. Deterministic for a
    given spec (no timings in it)."""
    spec = result.spec
    scenario = spec.scenario
    visits = sum(d.visits for d in result.runs[0].days) if result.runs else 0
    lines = [
        f"scenario {scenario.name}: {spec.customers:,} customers, {spec.days} days, "
        f"{spec.visits_per_day:,} visits/day sampled on {', '.join(scenario.channels)} "
        f"({visits:,} visits per policy), seed {spec.seed}" + (", over HTTP" if spec.http else ""),
        "value = expected incremental value of the offers made, sum (p1 - p0) x value - cost, "
        "EUR; oracle = the allowed offer with the highest true incremental value per visit",
        "conv. / value real. = conversions drawn from the offers made (organic included) and "
        "their value; incr. conv = expected incremental conversions, sum (p1 - p0)",
    ]
    if spec.budget is not None:
        lines.append(
            f"budget EUR {spec.budget:,.2f} for the catalogue; pacing asap = greedy until spent, "
            "even = never ahead of the flight's share + 5 %, dual = dual prices; LP bound = the "
            "fluid LP's optimum over the visits' offers (true worth), of LP = value / LP bound"
        )
    drift_day = None
    if scenario.drift_offer is not None:
        drift_day = scenario.drifts(spec.days)[0].day
        lines.append(
            f"drift: {scenario.drift_offer} appeal logit {scenario.drift_shift:+g} from day "
            f"{drift_day}"
        )
    columns = [
        ("policy", 16),
        ("contacts", 9),
        ("conv.", 6),
        ("value real.", 11),
        ("incr. conv", 10),
        ("oracle conv", 11),
        ("incr. value", 11),
        ("oracle value", 12),
        ("share", 7),
        ("regret", 9),
        ("spend", 9),
        ("budget spent", 12),
        ("cap viol.", 9),
        ("overspend", 9),
    ]
    if drift_day is not None:
        columns[9:9] = [("share pre", 9), ("share post", 10)]
    if spec.budget is not None:
        columns[1:1] = [("pacing", 6)]
        columns += [("LP bound", 11), ("of LP", 7)]
    header = " ".join(
        f"{name:>{width}}" if i else f"{name:<{width}}" for i, (name, width) in enumerate(columns)
    )
    lines += [header, "-" * len(header)]
    for run in result.runs:
        cells = [
            run.policy,
            f"{int(run.total('contacts')):,}",
            f"{int(run.total('conversions')):,}",
            _money(run.total("realised_value")),
            f"{run.total('incremental_conversions'):,.1f}",
            f"{run.total('oracle_conversions'):,.1f}",
            _money(run.total("value")),
            _money(run.total("oracle_value")),
            f"{run.share:.1%}",
            _money(run.total("oracle_value") - run.total("value")),
            _money(run.total("spend")),
            _money(run.budget_spent) if run.budget is not None else "-",
            f"{run.cap_violations}",
            _money(run.overspend) if run.budget is not None else "-",
        ]
        if drift_day is not None:
            cells[9:9] = [
                f"{run.share_between(0, drift_day):.1%}",
                f"{run.share_between(drift_day, spec.days):.1%}",
            ]
        if spec.budget is not None:
            bound = run.lp_bound or 0.0
            cells[1:1] = [run.pacing]
            cells += [
                _money(bound),
                f"{run.total('value') / bound:.1%}" if bound > 0 else "-",
            ]
        lines.append(
            " ".join(
                f"{cell:>{width}}" if i else f"{cell:<{width}}"
                for i, (cell, (_, width)) in enumerate(zip(cells, columns, strict=True))
            )
        )
    return "\n".join(lines)


def format_timing(result: SimulationResult) -> str:
    """Wall-clock timings (not part of the table: they vary from run to run)."""
    lines = [f"run time {result.seconds:.1f} s"]
    for run in result.runs:
        ms = np.asarray(run.decide_ms) if run.decide_ms else np.zeros(1)
        lines.append(
            f"  {run.policy:<16} {run.seconds:7.1f} s, {len(run.decide_ms):,} decisions, "
            f"decide p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms, "
            f"{len(run.decide_ms) / max(ms.sum() / 1000.0, 1e-9):,.0f} decisions/s"
        )
    return "\n".join(lines)


def to_json(result: SimulationResult) -> dict[str, Any]:
    """Everything the run measured, as plain values."""
    spec = result.spec
    return {
        "scenario": spec.scenario.name,
        "customers": spec.customers,
        "days": spec.days,
        "seed": spec.seed,
        "visits_per_day": spec.visits_per_day,
        "channels": list(spec.scenario.channels),
        "budget": spec.budget,
        "http": spec.http,
        "policies": list(spec.policies),
        "table": format_table(result),
        "runs": [
            {**run.summary(), "days": [{**asdict(d), "regret": d.regret} for d in run.days]}
            for run in result.runs
        ],
        "timing": {
            "seconds": result.seconds,
            "runs": {
                run.policy: {
                    "seconds": run.seconds,
                    "decisions": len(run.decide_ms),
                    "decide_p50_ms": float(np.percentile(run.decide_ms, 50))
                    if run.decide_ms
                    else None,
                    "decide_p99_ms": float(np.percentile(run.decide_ms, 99))
                    if run.decide_ms
                    else None,
                }
                for run in result.runs
            },
        },
    }
