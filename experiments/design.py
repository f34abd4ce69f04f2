"""Experiment designs: cells, experiments, layers, the universal holdout and their lifecycle.

Values are frozen dataclasses that check their invariants when built and raise
``decisioning.errors.InvalidInput`` naming the offending field, so the API, the CLI and the
simulator share one set of checks. Assignment (who is in which cell) lives in
``experiments.assignment``; this module only says what a valid design is.

Layers and buckets
------------------
Every layer hashes each unit to one of ``BUCKETS`` (10 000) buckets. An experiment reserves the
half-open slice ``layer_range = (start, end)`` of its layer's buckets and takes the first
``traffic`` share of that slice, so experiments of one layer whose slices do not overlap never
share a unit, and raising ``traffic`` only adds units. Experiments in different layers overlap
freely; each layer should own its own parameters (the policy, arbitration, the offer set), which
``validate_experiments`` enforces, so that the settings of a unit's cells never contradict.

Lifecycle
---------
``draft -> running -> stopped | concluded`` and ``stopped -> concluded``. A draft may be edited
freely; once running the design is frozen except for raising ``traffic`` and changing ``status``
(``apply_change``).

References
----------
Tang, D., Agarwal, A., O'Brien, D., Meyer, M. (2010). "Overlapping experiment infrastructure:
more, better, faster experimentation". KDD '10, 17-26 (layers, domains, bucket ranges, ramping).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from itertools import pairwise
from typing import Any, Final, Literal, TypeAlias, get_args

from decisioning.domain import check_aware, check_id
from decisioning.errors import InvalidInput
from decisioning.rules import Rule, RuleError, parse_rule

__all__ = [
    "ALLOCATIONS",
    "ANALYSES",
    "BUCKETS",
    "FEEDBACK_MODES",
    "METRICS",
    "STATUSES",
    "Allocation",
    "Analysis",
    "Cell",
    "Experiment",
    "FeedbackMode",
    "Holdout",
    "Metric",
    "Status",
    "apply_change",
    "validate_experiments",
    "validate_layer",
]

BUCKETS: Final = 10_000
"""Buckets per layer; ``layer_range`` bounds are bucket numbers in ``[0, BUCKETS]``."""

Metric: TypeAlias = Literal["conversion", "value", "accepts", "clicks", "contacts"]
METRICS: Final[tuple[str, ...]] = get_args(Metric)
Analysis: TypeAlias = Literal["sequential", "fixed", "group_sequential"]
ANALYSES: Final[tuple[str, ...]] = get_args(Analysis)
Status: TypeAlias = Literal["draft", "running", "stopped", "concluded"]
STATUSES: Final[tuple[str, ...]] = get_args(Status)
FeedbackMode: TypeAlias = Literal["off", "auto", "approval"]
FEEDBACK_MODES: Final[tuple[str, ...]] = get_args(FeedbackMode)
Allocation: TypeAlias = Literal["fixed", "bandit"]
ALLOCATIONS: Final[tuple[str, ...]] = get_args(Allocation)

RESERVED_ID_CHARACTERS: Final = (":", "#")
WEIGHT_TOLERANCE: Final = 1e-9
"""Cell weights must sum to 1 within this absolute tolerance."""
MAX_HOLDOUT_SHARE: Final = 0.5

# Which status may follow which (a status may always stay as it is).
_TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "draft": frozenset({"draft", "running"}),
    "running": frozenset({"running", "stopped", "concluded"}),
    "stopped": frozenset({"stopped", "concluded"}),
    "concluded": frozenset({"concluded"}),
}
# Statuses whose experiments hold their slice of the layer.
_HOLDS_RANGE: Final = frozenset({"draft", "running"})


def _check_fraction(value: object, field_name: str, *, low: float, high: float) -> float:
    """A finite number in ``[low, high]`` (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"must be a finite number, got {value!r}", field=field_name)
    if not low <= value <= high:
        raise InvalidInput(f"must be in [{low}, {high}], got {value}", field=field_name)
    return float(value)


def _check_offer_ids(offers: object, field_name: str) -> tuple[str, ...]:
    if not isinstance(offers, tuple):
        raise InvalidInput(f"must be a tuple of offer ids, got {type(offers).__name__}",
                           field=field_name)  # fmt: skip
    seen: set[str] = set()
    for i, offer_id in enumerate(offers):
        if not isinstance(offer_id, str):
            raise InvalidInput("must be an offer id (a string)", field=f"{field_name}[{i}]")
        check_id(offer_id, f"{field_name}[{i}]")
        if offer_id in seen:
            raise InvalidInput(f"duplicate offer {offer_id!r}", field=f"{field_name}[{i}]")
        seen.add(offer_id)
    return offers


@dataclass(frozen=True, slots=True)
class Cell:
    """One arm of an experiment and what it changes for its units.

    ``weight`` is the cell's share of the experiment's units, in ``(0, 1]``. ``policy`` names the
    bandit policy to score with and ``epsilon`` the exploration rate of arbitration (None: the
    engine's default). ``force_offers`` are always candidates, ``exclude_offers`` never are;
    ``no_offer`` makes the cell a no-contact control (it may set nothing else). A cell that sets
    nothing is the business-as-usual control.
    """

    name: str
    weight: float
    policy: str | None = None
    epsilon: float | None = None
    force_offers: tuple[str, ...] = ()
    exclude_offers: tuple[str, ...] = ()
    no_offer: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise InvalidInput("must be a string", field="name")
        check_id(self.name, "name")
        weight = _check_fraction(self.weight, "weight", low=0.0, high=1.0)
        if weight == 0.0:
            raise InvalidInput("must be > 0 (drop the cell instead)", field="weight")
        object.__setattr__(self, "weight", weight)
        if self.policy is not None:
            if not isinstance(self.policy, str):
                raise InvalidInput("must be a policy name (a string)", field="policy")
            check_id(self.policy, "policy")
        if self.epsilon is not None:
            eps = _check_fraction(self.epsilon, "epsilon", low=0.0, high=1.0)
            object.__setattr__(self, "epsilon", eps)
        _check_offer_ids(self.force_offers, "force_offers")
        _check_offer_ids(self.exclude_offers, "exclude_offers")
        for i, offer_id in enumerate(self.force_offers):
            if offer_id in self.exclude_offers:
                raise InvalidInput(
                    f"offer {offer_id!r} is both forced and excluded", field=f"force_offers[{i}]"
                )
        if not isinstance(self.no_offer, bool):
            raise InvalidInput("must be true or false", field="no_offer")
        if self.no_offer and (
            self.policy is not None
            or self.epsilon is not None
            or self.force_offers
            or self.exclude_offers
        ):
            raise InvalidInput(
                "a no-offer cell may not also set policy, epsilon, force_offers or exclude_offers",
                field="no_offer",
            )

    @property
    def parameters(self) -> frozenset[str]:
        """The parameter groups this cell changes: ``policy``, ``arbitration``, ``offers``."""
        groups: set[str] = set()
        if self.policy is not None:
            groups.add("policy")
        if self.epsilon is not None:
            groups.add("arbitration")
        if self.force_offers or self.exclude_offers or self.no_offer:
            groups.add("offers")
        return frozenset(groups)


@dataclass(frozen=True, slots=True)
class Experiment:
    """A randomised experiment on customers (the unit is the customer id).

    Parameters
    ----------
    experiment_id, name
        Identity; ``experiment_id`` never changes.
    layer
        The layer whose buckets the experiment draws from; experiments of one layer are mutually
        exclusive.
    placement
        The placement the experiment runs on, or None for every placement.
    cells
        At least two cells with unique names and weights summing to 1.
    traffic
        Share of the experiment's ``layer_range`` that is in the experiment, in ``[0, 1]``.
    layer_range
        ``(start, end)``: the half-open range of the layer's buckets reserved for the experiment,
        ``0 <= start < end <= BUCKETS``. At ``traffic = t`` the experiment holds
        ``t x (end - start) / BUCKETS`` of the layer's units (before targeting).
    targeting
        A rule in the eligibility rule language (``decisioning.rules``), or None for everyone.
        A unit that fails it is in no experiment of this layer for that decision.
    primary_metric, guardrail_metrics
        From the closed set ``METRICS``; a guardrail may not repeat the primary metric.
    alpha
        Type I error rate of the primary comparison, in ``(0, 0.5)``.
    analysis
        ``"sequential"`` (always-valid), ``"fixed"`` or ``"group_sequential"``; the last two need
        ``planned_units_per_cell``.
    planned_units_per_cell, end_date
        The planned size per cell and/or a time-zone-aware end; at least one is required.
    looks
        ``"group_sequential"`` only: the pre-registered looks, equally spaced up to the planned
        size (Lan-DeMets O'Brien-Fleming-type spending, ``experiments.group_sequential``).
    status
        ``"draft"``, ``"running"``, ``"stopped"`` or ``"concluded"``.
    salt
        Seeds the cell hash; empty means the ``experiment_id``. Two experiments must not share a
        salt, or their cell assignments would be identical.
    promote
        What a decisive primary comparison does (``decisioning.feedback``): ``"off"`` reports
        only; ``"auto"`` makes the winning cell's policy the default of ``placement`` and
        concludes the experiment; ``"approval"`` proposes the same and waits for a marketer.
        Needs a ``placement`` and at least one cell that sets a policy.
    allocation, bandit_min_units, bandit_period_hours
        ``"fixed"``: the cells' weights throughout. ``"bandit"``: the weights follow the
        evidence (``experiments.bandit_allocation``): the cells' weights until every cell has
        ``bandit_min_units`` units, then, every ``bandit_period_hours``, each cell's posterior
        probability of being best on the primary metric. Units keep their cell; the analysis
        is stratified by period.
    """

    experiment_id: str
    name: str
    layer: str
    cells: tuple[Cell, ...]
    primary_metric: Metric
    placement: str | None = None
    traffic: float = 1.0
    layer_range: tuple[int, int] = (0, BUCKETS)
    targeting: dict[str, Any] | None = None
    guardrail_metrics: tuple[Metric, ...] = ()
    alpha: float = 0.05
    analysis: Analysis = "sequential"
    planned_units_per_cell: int | None = None
    looks: int = 5
    end_date: datetime | None = None
    status: Status = "draft"
    salt: str = ""
    promote: FeedbackMode = "off"
    allocation: Allocation = "fixed"
    bandit_min_units: int = 100
    bandit_period_hours: float = 24.0
    # Derived once here so assignment reads it instead of parsing per decision.
    rule: Rule | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("experiment_id", "layer"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise InvalidInput("must be a string", field=name)
            check_id(value, name)
        if any(reserved in self.experiment_id for reserved in RESERVED_ID_CHARACTERS):
            raise InvalidInput(
                "may not contain ':' or '#' (they name holdouts, offers' measures and a "
                "bandit's periods)",
                field="experiment_id",
            )
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidInput("must not be empty", field="name")
        if self.placement is not None:
            if not isinstance(self.placement, str):
                raise InvalidInput("must be a placement id (a string) or null", field="placement")
            check_id(self.placement, "placement")
        self._check_cells()
        traffic = _check_fraction(self.traffic, "traffic", low=0.0, high=1.0)
        object.__setattr__(self, "traffic", traffic)
        self._check_layer_range()
        if self.targeting is not None:
            try:
                rule = parse_rule(self.targeting, path="targeting")
            except RuleError as exc:
                raise InvalidInput(exc.message, field=exc.path) from None
            object.__setattr__(self, "rule", rule)
        self._check_metrics()
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float):
            raise InvalidInput(f"must be a number, got {self.alpha!r}", field="alpha")
        if not 0.0 < self.alpha < 0.5:  # NaN fails this too
            raise InvalidInput(f"must be in (0, 0.5), got {self.alpha}", field="alpha")
        object.__setattr__(self, "alpha", float(self.alpha))
        if self.analysis not in ANALYSES:
            raise InvalidInput(
                f"must be one of {', '.join(ANALYSES)}, got {self.analysis!r}", field="analysis"
            )
        self._check_horizon()
        if (
            isinstance(self.looks, bool)
            or not isinstance(self.looks, int)
            or not 1 <= self.looks <= 50
        ):
            raise InvalidInput(f"must be an integer in [1, 50], got {self.looks!r}", field="looks")
        if self.status not in STATUSES:
            raise InvalidInput(
                f"must be one of {', '.join(STATUSES)}, got {self.status!r}", field="status"
            )
        if not isinstance(self.salt, str):
            raise InvalidInput("must be a string", field="salt")
        if self.salt == "":
            object.__setattr__(self, "salt", self.experiment_id)
        check_id(self.salt, "salt")
        self._check_promote()
        if self.allocation not in ALLOCATIONS:
            raise InvalidInput(
                f"must be one of {', '.join(ALLOCATIONS)}, got {self.allocation!r}",
                field="allocation",
            )
        units = self.bandit_min_units
        if isinstance(units, bool) or not isinstance(units, int) or units < 2:
            raise InvalidInput(f"must be an integer >= 2, got {units!r}", field="bandit_min_units")
        hours = self.bandit_period_hours
        if isinstance(hours, bool) or not isinstance(hours, int | float) or not hours > 0:
            raise InvalidInput(f"must be a number > 0, got {hours!r}", field="bandit_period_hours")
        object.__setattr__(self, "bandit_period_hours", float(hours))

    def _check_promote(self) -> None:
        if self.promote not in FEEDBACK_MODES:
            raise InvalidInput(
                f"must be one of {', '.join(FEEDBACK_MODES)}, got {self.promote!r}",
                field="promote",
            )
        if self.promote == "off":
            return
        if self.placement is None:
            raise InvalidInput(
                "needs a placement: the winning policy becomes that placement's default",
                field="promote",
            )
        if all(cell.policy is None for cell in self.cells):
            raise InvalidInput("needs at least one cell that sets a policy", field="promote")

    def _check_cells(self) -> None:
        if not isinstance(self.cells, tuple) or len(self.cells) < 2:
            raise InvalidInput("must be a tuple of at least two cells", field="cells")
        names: set[str] = set()
        for i, cell in enumerate(self.cells):
            if not isinstance(cell, Cell):
                raise InvalidInput(
                    f"must be a Cell, got {type(cell).__name__}", field=f"cells[{i}]"
                )
            if cell.name in names:
                raise InvalidInput(f"duplicate cell name {cell.name!r}", field=f"cells[{i}].name")
            names.add(cell.name)
        total = math.fsum(cell.weight for cell in self.cells)
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            raise InvalidInput(f"cell weights must sum to 1, got {total:.12g}", field="cells")

    def _check_layer_range(self) -> None:
        bounds = self.layer_range
        if (
            not isinstance(bounds, tuple)
            or len(bounds) != 2
            or not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
        ):
            raise InvalidInput("must be a pair of integer buckets (start, end)",
                               field="layer_range")  # fmt: skip
        start, end = bounds
        if not 0 <= start < end <= BUCKETS:
            raise InvalidInput(
                f"must satisfy 0 <= start < end <= {BUCKETS}, got ({start}, {end})",
                field="layer_range",
            )

    def _check_metrics(self) -> None:
        if self.primary_metric not in METRICS:
            raise InvalidInput(
                f"unknown metric {self.primary_metric!r}; one of {', '.join(METRICS)}",
                field="primary_metric",
            )
        if not isinstance(self.guardrail_metrics, tuple):
            raise InvalidInput("must be a tuple of metrics", field="guardrail_metrics")
        seen = {self.primary_metric}
        for i, metric in enumerate(self.guardrail_metrics):
            where = f"guardrail_metrics[{i}]"
            if metric not in METRICS:
                raise InvalidInput(
                    f"unknown metric {metric!r}; one of {', '.join(METRICS)}", field=where
                )
            if metric in seen:
                raise InvalidInput(
                    f"metric {metric!r} is already the primary metric or a guardrail", field=where
                )
            seen.add(metric)

    def _check_horizon(self) -> None:
        planned = self.planned_units_per_cell
        if planned is not None and (
            isinstance(planned, bool) or not isinstance(planned, int) or planned < 1
        ):
            raise InvalidInput(f"must be a positive integer, got {planned!r}",
                               field="planned_units_per_cell")  # fmt: skip
        if self.end_date is not None:
            if not isinstance(self.end_date, datetime):
                raise InvalidInput("must be a date-time", field="end_date")
            check_aware(self.end_date, "end_date")
        if planned is None and self.end_date is None:
            raise InvalidInput("give planned_units_per_cell or end_date (or both)",
                               field="planned_units_per_cell")  # fmt: skip
        if planned is None and self.analysis != "sequential":
            raise InvalidInput(
                f"is required for {self.analysis!r} analysis (the plan fixes the horizon)",
                field="planned_units_per_cell",
            )

    @property
    def parameters(self) -> frozenset[str]:
        """The parameter groups any of the cells changes (see ``Cell.parameters``)."""
        return frozenset().union(*(cell.parameters for cell in self.cells))

    @property
    def share_of_layer(self) -> float:
        """Share of the layer's units in the experiment before targeting."""
        start, end = self.layer_range
        return self.traffic * (end - start) / BUCKETS


@dataclass(frozen=True, slots=True)
class Holdout:
    """A universal holdout: ``share`` of customers who get no campaign offers.

    ``placement`` None holds customers out on every placement; a placement id only there. Units
    are drawn with their own hash (``salt``), independent of every layer and cell, so raising
    ``share`` only adds customers. Holdouts with the same salt nest: a 2 % bank-wide and a 5 %
    placement holdout with one salt put the same 2 % in both. ``retire`` (bank-wide holdout
    only) is what an offer whose measured incremental value does not cover its contacts gets
    (``decisioning.feedback``): nothing (``off``), retired at once (``auto``) or a proposal to
    approve (``approval``). ``revalue`` likewise sets each offer's measured incrementality, which
    arbitration then uses.
    """

    share: float
    placement: str | None = None
    salt: str = "holdout"
    retire: FeedbackMode = "off"
    revalue: FeedbackMode = "off"

    def __post_init__(self) -> None:
        share = _check_fraction(self.share, "share", low=0.0, high=MAX_HOLDOUT_SHARE)
        object.__setattr__(self, "share", share)
        if self.placement is not None:
            if not isinstance(self.placement, str):
                raise InvalidInput("must be a placement id (a string) or null", field="placement")
            check_id(self.placement, "placement")
        if not isinstance(self.salt, str):
            raise InvalidInput("must be a string", field="salt")
        check_id(self.salt, "salt")
        for name in ("retire", "revalue"):
            mode = getattr(self, name)
            if mode not in FEEDBACK_MODES:
                raise InvalidInput(
                    f"must be one of {', '.join(FEEDBACK_MODES)}, got {mode!r}", field=name
                )
            if mode != "off" and self.placement is not None:
                raise InvalidInput(
                    "offers are measured against the bank-wide holdout only", field=name
                )


# --- sets of experiments ----------------------------------------------------------------------


def validate_layer(experiments: Sequence[Experiment]) -> None:
    """Raise ``InvalidInput`` unless the experiments of one layer can run side by side.

    Drafts and running experiments hold their ``layer_range``; stopped and concluded ones have
    released it. Held ranges may not overlap: together they never exceed the layer's 100 %.
    Errors name ``layer`` (experiments from different layers) or ``layer_range`` (an overlap).
    """
    if not experiments:
        return
    layer = experiments[0].layer
    for experiment in experiments:
        if experiment.layer != layer:
            raise InvalidInput(
                f"experiment {experiment.experiment_id!r} is in layer {experiment.layer!r}, "
                f"not {layer!r}",
                field="layer",
            )
    holding = sorted(
        (e for e in experiments if e.status in _HOLDS_RANGE), key=lambda e: e.layer_range
    )
    for before, after in pairwise(holding):
        if after.layer_range[0] < before.layer_range[1]:
            raise InvalidInput(
                f"experiments {before.experiment_id!r} {before.layer_range} and "
                f"{after.experiment_id!r} {after.layer_range} overlap in layer {layer!r}; "
                f"their buckets would exceed 100 % of the layer",
                field="layer_range",
            )


def validate_experiments(experiments: Iterable[Experiment]) -> None:
    """Raise ``InvalidInput`` unless a set of experiments (any layers) can run together.

    Checks each layer (``validate_layer``), unique ``experiment_id`` and unique ``salt``, and
    that every parameter group (policy, arbitration, offers) is varied by experiments of at most
    one layer on any placement (Tang et al. 2010, sec. 4: a parameter belongs to one layer), so
    the cells a unit is in never set the same parameter twice.
    """
    live = list(experiments)
    ids: set[str] = set()
    salts: dict[str, str] = {}
    layers: dict[str, list[Experiment]] = {}
    for experiment in live:
        if experiment.experiment_id in ids:
            raise InvalidInput(f"duplicate experiment {experiment.experiment_id!r}",
                               field="experiment_id")  # fmt: skip
        ids.add(experiment.experiment_id)
        if experiment.salt in salts:
            raise InvalidInput(
                f"salt {experiment.salt!r} is already used by {salts[experiment.salt]!r}; "
                "cell assignments would be identical",
                field="salt",
            )
        salts[experiment.salt] = experiment.experiment_id
        layers.setdefault(experiment.layer, []).append(experiment)
    for members in layers.values():
        validate_layer(members)
    holding = [e for e in live if e.status in _HOLDS_RANGE]
    for i, first in enumerate(holding):
        for second in holding[i + 1 :]:
            if first.layer == second.layer:
                continue
            if first.placement is not None and second.placement not in (None, first.placement):
                continue
            shared = first.parameters & second.parameters
            if shared:
                raise InvalidInput(
                    f"experiments {first.experiment_id!r} (layer {first.layer!r}) and "
                    f"{second.experiment_id!r} (layer {second.layer!r}) both vary "
                    f"{', '.join(sorted(shared))}; a parameter belongs to one layer",
                    field="layer",
                )


# --- lifecycle --------------------------------------------------------------------------------

_EDITABLE_WHILE_RUNNING: Final = frozenset({"traffic", "status"})


def apply_change(current: Experiment, proposed: Experiment) -> Experiment:
    """Return ``proposed`` if it is an allowed successor of ``current``, else raise.

    * ``experiment_id`` never changes.
    * ``status`` follows ``draft -> running -> stopped | concluded`` and ``stopped -> concluded``.
    * A draft may change anything else.
    * Once running the design is frozen: only ``traffic`` may change, and only upwards (ramping
      down would drop units that were already exposed), and ``status`` may move on.
    * A stopped or concluded experiment changes nothing but its status (stopped -> concluded).

    The ``InvalidInput`` names the first offending field in declaration order.
    """
    if proposed.experiment_id != current.experiment_id:
        raise InvalidInput(
            f"may not change ({current.experiment_id!r} -> {proposed.experiment_id!r})",
            field="experiment_id",
        )
    if proposed.status not in _TRANSITIONS[current.status]:
        raise InvalidInput(
            f"may not go from {current.status!r} to {proposed.status!r}", field="status"
        )
    if current.status == "draft":
        return proposed
    for f in fields(Experiment):
        if not f.init or f.name in _EDITABLE_WHILE_RUNNING:
            continue
        if getattr(proposed, f.name) != getattr(current, f.name):
            raise InvalidInput(
                f"the design of a {current.status} experiment is frozen", field=f.name
            )
    if proposed.traffic != current.traffic:
        if current.status != "running":
            raise InvalidInput(f"a {current.status} experiment takes no traffic changes",
                               field="traffic")  # fmt: skip
        if proposed.traffic < current.traffic:
            raise InvalidInput(
                f"may only go up while running ({current.traffic} -> {proposed.traffic})",
                field="traffic",
            )
    return proposed
