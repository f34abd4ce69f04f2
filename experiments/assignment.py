"""Deterministic assignment of units (customer ids) to the holdout, experiments and cells.

Assignment is a pure function of (salts, unit id, traffic settings): the same answer in every
process and on every machine, with no lookup and no stored state.

Hashing scheme
--------------
``unit_hash(kind, salt, unit)`` is the first 8 bytes, read big-endian, of
``BLAKE2b(kind + "\\x1f" + salt + "\\x1f" + unit, digest_size=8)`` over the UTF-8 encoding: a
64-bit integer ``h``, uniform on ``[0, 2**64)``. ``kind`` separates the three uses, so they are
independent of one another; ids cannot contain ``"\\x1f"`` (it is not printable), so distinct
(kind, salt, unit) give distinct messages. Python's ``hash()`` is never used (it is salted per
process).

1. **Holdout** (``kind="holdout"``, the holdout's salt): the unit is held out when
   ``h < floor(share * 2**64)``. Checked first; a held-out unit is in no experiment.
2. **Layer** (``kind="layer"``, the layer name as salt): ``bucket = (h * BUCKETS) >> 64`` in
   ``[0, BUCKETS)``. An experiment owns the buckets ``[start, end)`` of its ``layer_range`` and
   takes the units whose position from ``start`` is below ``traffic`` of the range, at full
   64-bit resolution: ``lo <= h < lo + floor(traffic * (hi - lo))`` with ``lo``, ``hi`` the
   first hash values of buckets ``start`` and ``end``. Ranges of one layer do not overlap, so
   its experiments never share a unit; a larger ``traffic`` only moves the upper cut up, so a
   ramp only adds units.
3. **Cell** (``kind="cell"``, the experiment's salt): the first cell whose cumulative weight
   ``floor(W_k * 2**64)`` exceeds ``h``. This hash ignores the layer and the traffic, so a ramp
   never moves a unit between cells, and targeting that changes with the customer's attributes
   moves them in or out of the experiment, never to another cell.

To reshuffle a layer (say, to shed carry-over from an earlier experiment), start a new layer;
to reshuffle cells, give the experiment a new salt (only while a draft).

References
----------
Tang, D., Agarwal, A., O'Brien, D., Meyer, M. (2010). "Overlapping experiment infrastructure:
more, better, faster experimentation". KDD '10, 17-26.
Aumasson, J.-P., Neves, S., Wilcox-O'Hearn, Z., Winnerlein, C. (2013). "BLAKE2: simpler,
smaller, fast as MD5" (RFC 7693).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from decisioning.errors import InvalidInput
from decisioning.rules import RuleCheck, compile_rule
from experiments.design import BUCKETS, Cell, Experiment, Holdout, validate_experiments

__all__ = [
    "HASH_SPACE",
    "Assigner",
    "Assignment",
    "HashKind",
    "Membership",
    "assign",
    "bucket_of",
    "unit_hash",
]

HASH_SPACE: Final = 1 << 64
HashKind = Literal["holdout", "layer", "cell"]
_SEP: Final = "\x1f"
_EMPTY: Final[Mapping[str, Any]] = {}


def unit_hash(kind: HashKind, salt: str, unit: str) -> int:
    """The unit's 64-bit hash for one use; uniform on ``[0, HASH_SPACE)``."""
    message = f"{kind}{_SEP}{salt}{_SEP}{unit}".encode()
    return int.from_bytes(hashlib.blake2b(message, digest_size=8).digest(), "big")


def bucket_of(layer: str, unit: str) -> int:
    """The unit's bucket in ``layer``, in ``[0, BUCKETS)`` (for audits and reports)."""
    return (unit_hash("layer", layer, unit) * BUCKETS) >> 64


def _bucket_start(bucket: int) -> int:
    """The smallest hash in ``bucket``: ``ceil(bucket * 2**64 / BUCKETS)``."""
    return -(-bucket * HASH_SPACE // BUCKETS)


def _cut(share: float, width: int) -> int:
    """``floor(share * width)``, clamped to ``[0, width]``; monotone in ``share``."""
    return min(width, max(0, int(share * width)))


@dataclass(frozen=True, slots=True)
class Membership:
    """A unit's place in one experiment: the experiment, its layer and the cell."""

    experiment_id: str
    layer: str
    cell: Cell


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where a unit is for one decision.

    ``holdout`` True means no campaign offers and no experiment. ``memberships`` holds at most
    one experiment per layer, ordered by layer name; their cells vary disjoint parameters (see
    ``experiments.design.validate_experiments``), so the merged settings below never conflict.
    """

    holdout: bool = False
    memberships: tuple[Membership, ...] = ()

    @property
    def experiment_id(self) -> str | None:
        """The first experiment (by layer name), for a log with one experiment column."""
        return self.memberships[0].experiment_id if self.memberships else None

    @property
    def cell(self) -> str | None:
        """The name of the first experiment's cell."""
        return self.memberships[0].cell.name if self.memberships else None

    @property
    def no_offer(self) -> bool:
        """True when held out or in a no-offer control cell."""
        return self.holdout or any(m.cell.no_offer for m in self.memberships)

    @property
    def policy(self) -> str | None:
        """The policy a cell sets, or None for the engine's default."""
        return next((m.cell.policy for m in self.memberships if m.cell.policy is not None), None)

    @property
    def epsilon(self) -> float | None:
        """The exploration rate a cell sets, or None for the engine's default."""
        return next((m.cell.epsilon for m in self.memberships if m.cell.epsilon is not None), None)

    @property
    def force_offers(self) -> tuple[str, ...]:
        return tuple(o for m in self.memberships for o in m.cell.force_offers)

    @property
    def exclude_offers(self) -> tuple[str, ...]:
        return tuple(o for m in self.memberships for o in m.cell.exclude_offers)


NOT_ASSIGNED: Final = Assignment()
HELD_OUT: Final = Assignment(holdout=True)


@dataclass(frozen=True, slots=True)
class _Compiled:
    """An experiment reduced to what the hot path reads."""

    experiment_id: str
    layer: str
    placement: str | None
    lo: int  # first hash of the range
    cut: int  # first hash past the traffic share of the range
    hi: int  # first hash past the range
    rule: RuleCheck | None
    cell_prefix: bytes
    cell_cuts: tuple[int, ...]
    memberships: tuple[Membership, ...]


def _compile(experiment: Experiment) -> _Compiled:
    start, end = experiment.layer_range
    lo, hi = _bucket_start(start), _bucket_start(end)
    cuts: list[int] = []
    running = 0.0
    for cell in experiment.cells[:-1]:
        running += cell.weight
        cuts.append(_cut(running, HASH_SPACE))
    cuts.append(HASH_SPACE)  # the last cell takes the rest, whatever the rounding
    return _Compiled(
        experiment_id=experiment.experiment_id,
        layer=experiment.layer,
        placement=experiment.placement,
        lo=lo,
        cut=lo + _cut(experiment.traffic, hi - lo),
        hi=hi,
        rule=compile_rule(experiment.rule) if experiment.rule is not None else None,
        cell_prefix=f"cell{_SEP}{experiment.salt}{_SEP}".encode(),
        cell_cuts=tuple(cuts),
        memberships=tuple(
            Membership(experiment.experiment_id, experiment.layer, c) for c in experiment.cells
        ),
    )


class _Layer:
    """The running experiments of one layer, sorted by range, for a bisect on the hash."""

    __slots__ = ("experiments", "prefix", "starts")

    def __init__(self, name: str, experiments: list[_Compiled]) -> None:
        self.prefix = f"layer{_SEP}{name}{_SEP}".encode()
        self.experiments = sorted(experiments, key=lambda e: e.lo)
        self.starts = [e.lo for e in self.experiments]


def _hash(prefix: bytes, unit: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(prefix + unit, digest_size=8).digest(), "big")


class Assigner:
    """Assigns units for a fixed set of experiments and holdouts; build once, call per decision.

    Only ``running`` experiments assign units; drafts, stopped and concluded experiments are
    ignored (but still validated with the rest, see ``validate_experiments``). Targeting rules
    are compiled here, once. ``assign_one`` costs one hash per applicable holdout, one per layer
    and one per experiment the unit falls in, plus the targeting rules: a few microseconds.

    Raises ``InvalidInput`` for an invalid set: overlapping ranges in a layer (``layer_range``),
    duplicate ids or salts, a parameter varied in two layers (``layer``), or two holdouts for
    one placement (``placement``).

    Examples
    --------
    >>> from experiments.design import Cell, Experiment
    >>> e = Experiment("e1", "banner copy", "offers", (Cell("a", 0.5), Cell("b", 0.5)),
    ...                "conversion", status="running", end_date=None,
    ...                planned_units_per_cell=1000)
    >>> Assigner([e]).assign_one("c-42") == Assigner([e]).assign_one("c-42")
    True
    """

    __slots__ = ("_holdouts", "_layers")

    def __init__(self, experiments: Iterable[Experiment], holdouts: Sequence[Holdout] = ()) -> None:
        experiments = list(experiments)
        validate_experiments(experiments)
        placements: set[str | None] = set()
        for i, holdout in enumerate(holdouts):
            if not isinstance(holdout, Holdout):
                raise InvalidInput(f"must be a Holdout, got {type(holdout).__name__}",
                                   field=f"holdouts[{i}]")  # fmt: skip
            if holdout.placement in placements:
                raise InvalidInput(
                    f"a second holdout for placement {holdout.placement!r}", field="placement"
                )
            placements.add(holdout.placement)
        self._holdouts: tuple[tuple[str | None, bytes, int], ...] = tuple(
            (h.placement, f"holdout{_SEP}{h.salt}{_SEP}".encode(), _cut(h.share, HASH_SPACE))
            for h in holdouts
            if h.share > 0.0
        )
        by_layer: dict[str, list[_Compiled]] = {}
        for experiment in experiments:
            if experiment.status == "running":
                by_layer.setdefault(experiment.layer, []).append(_compile(experiment))
        self._layers = tuple(_Layer(name, by_layer[name]) for name in sorted(by_layer))

    def held_out(self, unit_id: str, placement: str | None = None) -> bool:
        """True when the unit is in a holdout that applies on ``placement``."""
        unit = unit_id.encode()
        for where, prefix, cut in self._holdouts:
            if (where is None or where == placement) and _hash(prefix, unit) < cut:
                return True
        return False

    def assign_one(
        self,
        unit_id: str,
        placement: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Assignment:
        """Where ``unit_id`` is for a decision on ``placement`` given its ``attributes``.

        ``placement`` None matches only experiments and holdouts for every placement.
        ``attributes`` are what targeting rules read (the decision context).
        """
        unit = unit_id.encode()
        for where, prefix, cut in self._holdouts:
            if (where is None or where == placement) and _hash(prefix, unit) < cut:
                return HELD_OUT
        found: list[Membership] = []
        for layer in self._layers:
            h = _hash(layer.prefix, unit)
            i = bisect_right(layer.starts, h) - 1
            if i < 0:
                continue
            e = layer.experiments[i]
            if h >= e.cut:  # past the ramp (or past the range: cut <= hi)
                continue
            if e.placement is not None and e.placement != placement:
                continue
            if e.rule is not None and e.rule(attributes or _EMPTY) is not None:
                continue
            k = bisect_right(e.cell_cuts, _hash(e.cell_prefix, unit))
            found.append(e.memberships[k])
        if not found:
            return NOT_ASSIGNED
        return Assignment(holdout=False, memberships=tuple(found))


def assign(
    unit_id: str,
    experiments: Iterable[Experiment],
    holdouts: Sequence[Holdout] = (),
    placement: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Assignment:
    """One-off ``Assigner(experiments, holdouts).assign_one(...)``; build an ``Assigner`` to
    assign many units."""
    return Assigner(experiments, holdouts).assign_one(unit_id, placement, attributes)
