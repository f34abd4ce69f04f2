"""The decision's own statements, run as plain SQL on the DBAPI connection of the unit of work.

A decision runs four to eight statements (SQLite reads the profile with the cool-downs).
Through SQLAlchemy Core each costs 25-40 us of Python before the database sees it, which alone
would cap a core at about 3,000 decisions per second; on the driver's cursor the same statement
costs under 10 us. So this one path speaks SQL directly, in a dialect-neutral subset
(``INSERT .. ON CONFLICT .. RETURNING``, ``CASE``), inside the same transaction SQLAlchemy
opened and commits. Everything else uses ``repositories`` (Core). Values are written exactly as
the Core column types write them (UTC timestamps, JSON text), so both paths read each other's
rows.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import Engine

from decisioning.contact_policy import ContactCounts, ContactHistory, ContactWindows
from decisioning.sql.repositories import BudgetState
from decisioning.sql.session import writer_queue
from decisioning.sql.tables import from_units

SQLITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # what SQLAlchemy's SQLite DateTime stores


@dataclass(frozen=True, slots=True)
class CustomerState:
    """What a decision reads of its customer under the row lock."""

    attributes: dict[str, Any]
    contacts: ContactCounts
    history: ContactHistory
    """What the decision's own contacts are added to (``ContactHistory.with_contacts``)."""


class _ThreadState(threading.local):
    """A thread's driver connection and open group. Class defaults, not ``getattr`` with a
    default: a missing attribute raises and formats an AttributeError on every decision."""

    pooled: Any = None
    group: _Group | None = None


class HotConnections:
    """The decision path's driver connections, one per thread, each kept for the thread's life.

    Each is made by the engine's pool (so with its connect-time settings) and then detached
    from it: a checkout and a return, with the pool's reset, cost about as much as one of the
    decision's statements. A connection the driver reports as broken is closed, and the thread's
    next decision makes a new one.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._local = _ThreadState()
        self._writers = writer_queue(engine)

    def _connection(self) -> Any:
        pooled = self._local.pooled
        if pooled is None:
            pooled = self._engine.raw_connection()
            pooled.detach()
            if self._engine.dialect.name != "sqlite":
                # Like SQLite's synchronous=NORMAL: a crash may lose the last few milliseconds
                # of decisions, each whole with its reservations and contacts. Set for the
                # session, as the connection only ever decides (events stay synchronous): a
                # statement less per decision than SET LOCAL.
                raw: Any = pooled.dbapi_connection
                raw.execute("SET synchronous_commit = off")
                raw.commit()
            self._local.pooled = pooled
        return pooled

    @contextmanager
    def transaction(self) -> Iterator[HotPath]:
        """One decision's transaction: commits once, rolls back on any exception.

        SQLite takes its write lock up front (``BEGIN IMMEDIATE``); psycopg opens the transaction
        with the first statement. Inside ``group()`` the decision is a savepoint of the group's
        transaction instead, and its ``on_commit`` callbacks wait for the group's commit.
        """
        group = self._local.group
        if group is not None:
            with group.savepoint() as hot:
                yield hot
            return
        with self._open() as (raw, callbacks):
            hot = HotPath(raw, self._engine.dialect.name)
            yield hot
            callbacks.extend(hot.on_commit)

    @contextmanager
    def group(self) -> Iterator[None]:
        """The decisions this thread makes inside share one SQLite transaction (group commit).

        A decision's cost is mostly fixed: the write lock, ``BEGIN`` and ``COMMIT``, the log's
        first page and the interior pages it rewrites. Decisions that arrive together (the
        requests one turn of the service's event loop has read) pay it once (``decisioning
        bench decide --group 8`` measures it). Each decision is a savepoint: one that fails
        rolls back alone, the others commit. None is durable, nor may be answered, before the
        group commits; if the commit fails, every decision of the group is lost with it.

        On PostgreSQL decisions keep a transaction each: its commit is cheap there
        (``synchronous_commit = off``), and one long transaction would hold every customer's
        and budget's row lock of the group, deadlocking against other workers.
        """
        if self._engine.dialect.name != "sqlite" or self._local.group is not None:
            yield
            return
        with self._open() as (raw, callbacks):
            self._local.group = _Group(raw, callbacks)
            try:
                yield
            finally:
                self._local.group = None

    @contextmanager
    def _open(self) -> Iterator[tuple[Any, list[Callable[[], None]]]]:
        """The thread's driver connection in a transaction, with the writers' queue held, that
        commits when the block ends without an exception and rolls back otherwise; the
        callbacks collected meanwhile run after the commit."""
        with self._writers:
            pooled = self._connection()
            raw: Any = pooled.dbapi_connection  # the driver's own: these dialects wrap none
            sqlite = self._engine.dialect.name == "sqlite"
            callbacks: list[Callable[[], None]] = []
            try:
                if sqlite:
                    raw.execute("BEGIN IMMEDIATE")
                # psycopg opens the transaction with the first statement.
                yield raw, callbacks
                if sqlite:
                    raw.execute("COMMIT")
                else:
                    raw.commit()
            except BaseException as exc:
                try:
                    if not sqlite:
                        raw.rollback()
                    elif raw.in_transaction:
                        raw.execute("ROLLBACK")
                except Exception:
                    self._discard(pooled)
                    raise exc from None
                dialect = self._engine.dialect
                if isinstance(exc, dialect.loaded_dbapi.Error) and dialect.is_disconnect(
                    exc, raw, None
                ):
                    self._discard(pooled)
                raise
        for callback in callbacks:  # the transaction is over, committed
            callback()

    def _discard(self, pooled: Any) -> None:
        self._local.pooled = None
        pooled.invalidate()


@dataclass(slots=True)
class _Group:
    """A group commit's open SQLite transaction and what its decisions left to run after it."""

    raw: Any
    on_commit: list[Callable[[], None]]

    @contextmanager
    def savepoint(self) -> Iterator[HotPath]:
        if not self.raw.in_transaction:
            # An earlier decision's error made SQLite roll the whole group back: the group is
            # lost (its commit fails), and no decision may run outside a transaction meanwhile.
            raise RuntimeError("the group's transaction was rolled back")
        self.raw.execute("SAVEPOINT decision")
        hot = HotPath(self.raw, "sqlite")
        try:
            yield hot
        except BaseException:
            if self.raw.in_transaction:  # SQLite rolls a failed transaction back whole itself
                self.raw.execute("ROLLBACK TO decision")
                self.raw.execute("RELEASE decision")
            raise
        self.raw.execute("RELEASE decision")
        self.on_commit.extend(hot.on_commit)


class _Dialect:
    """Parameter style and value conversions of one driver."""

    def __init__(self, name: str) -> None:
        self.sqlite = name == "sqlite"
        # A decision writes the same ``now`` several times: its text is kept for the next call.
        self._last_time: tuple[datetime | None, str] = (None, "")

    @lru_cache(maxsize=64)  # noqa: B019 - two instances for the life of the process
    def sql(self, statement: str) -> str:
        """``:name`` parameters, as sqlite3 takes them, or ``%(name)s`` for psycopg."""
        return statement if self.sqlite else re.sub(r"(?<!:):(\w+)", r"%(\1)s", statement)

    def time(self, value: datetime) -> Any:
        if not self.sqlite:
            return value
        last = self._last_time  # one read: another thread may replace it (whole) meanwhile
        if last[0] is value:
            return last[1]
        utc = value if value.tzinfo is UTC else value.astimezone(UTC)
        # SQLITE_TIME_FORMAT: the ISO text less its "+00:00" (no naive copy made for it).
        text = utc.isoformat(" ", "microseconds")[:26]
        self._last_time = (value, text)
        return text

    def read_json(self, value: Any) -> Any:
        return orjson.loads(value) if isinstance(value, str | bytes) else value


_DIALECTS = {"sqlite": _Dialect("sqlite"), "postgresql": _Dialect("postgresql")}

COOLING = "SELECT offer_id FROM cooldowns WHERE customer_id = :customer_id AND until > :now"
# PostgreSQL: the upsert takes the customer's row lock until commit (a no-op update still
# locks) and returns the row as the last decision to commit left it, history included.
LOCK_CUSTOMER = """
INSERT INTO customers (customer_id, attributes, updated_at) VALUES (:customer_id, '{}', :now)
ON CONFLICT (customer_id) DO UPDATE SET updated_at = customers.updated_at
RETURNING attributes, contact_history
"""
# SQLite: BEGIN IMMEDIATE already holds the database's one write lock, so the profile is read
# with the cool-downs, in one statement.
CUSTOMER_AND_COOLING = """
SELECT 'customer', attributes, contact_history FROM customers WHERE customer_id = :customer_id
UNION ALL
SELECT 'cooling', offer_id, NULL FROM cooldowns WHERE customer_id = :customer_id AND until > :now
"""
# On SQLite a customer never upserted has no row yet: the history makes it, profile empty.
SET_CONTACT_HISTORY = """
INSERT INTO customers (customer_id, attributes, updated_at, contact_history)
VALUES (:customer_id, '{}', :created_at, :contact_history)
ON CONFLICT (customer_id) DO UPDATE SET contact_history = excluded.contact_history
"""
BUDGET_STATES = """
SELECT budget_id, amount_units, daily_limit_units, spent_units, day, day_spent_units, price
FROM budgets WHERE budget_id IN ({placeholders})
"""
SPENT_TODAY = "(CASE WHEN day = :today THEN day_spent_units ELSE 0 END)"
RESERVE_BUDGET = f"""
UPDATE budgets SET
    spent_units = spent_units + :charge,
    day_spent_units = {SPENT_TODAY} + :charge,
    day = :today
WHERE budget_id = :budget_id
    AND spent_units + :charge <= amount_units
    AND spent_units + :charge <= :cap
    AND (daily_limit_units IS NULL OR {SPENT_TODAY} + :charge <= daily_limit_units)
"""
RELEASE_BUDGET = """
UPDATE budgets SET spent_units = spent_units - :charge, day_spent_units = day_spent_units - :charge
WHERE budget_id = :budget_id
"""
INSERT_DECISION = """
INSERT INTO decisions (decision_id, created_at, customer_id, channel, placement, policy_name,
    policy_version, experiment_id, cell, memberships, latency_ms, context, candidates, offers)
VALUES (:decision_id, :created_at, :customer_id, :channel, :placement, :policy_name,
    :policy_version, :experiment_id, :cell, :memberships, :latency_ms, :context, :candidates,
    :offers)
"""


RECORD_EXPOSURE = """
INSERT INTO exposures (experiment_id, unit_id, cell, first_exposed_at, covariate, conversion,
    value, accepts, clicks, contacts, segments)
VALUES (:experiment_id, :unit_id, :cell, :now, :covariate, 0, 0, 0, 0, 0, :segments)
ON CONFLICT (experiment_id, unit_id) DO NOTHING
"""
EXPOSED = "SELECT 1 FROM exposures WHERE experiment_id = :experiment_id AND unit_id = :unit_id"
UNIT_CELLS = "SELECT experiment_id, cell FROM exposures WHERE unit_id = :unit_id"
PRE_EXPOSURE_VALUE = """
SELECT COALESCE(SUM(value_units), 0) FROM events
WHERE customer_id = :unit_id AND type = 'convert' AND occurred_at >= :since AND occurred_at < :now
"""
# One row per (metric, segment) of the unit, in one statement: ``{rows}`` repeats ROW_OF_UNIT.
ADD_UNIT = """
INSERT INTO cell_stats (experiment_id, cell, metric, segment, n, sum, sum_squares, sum_x, sum_x2,
    sum_xy)
VALUES {rows}
ON CONFLICT (experiment_id, cell, metric, segment) DO UPDATE SET
    n = cell_stats.n + 1, sum_x = cell_stats.sum_x + :x, sum_x2 = cell_stats.sum_x2 + :x2
"""
ROW_OF_UNIT = "(:experiment_id, :cell, :metric{m}, :segment{s}, 1, 0, 0, :x, :x2, 0)"
# The metric column name comes from the closed set METRICS, never from input.
ADD_TO_METRIC = """
UPDATE exposures SET {metric} = {metric} + :increment
WHERE experiment_id = :experiment_id AND unit_id = :unit_id AND first_exposed_at >= :earliest
RETURNING {metric}, covariate, cell, segments
"""
CONVERT_UNIT = """
UPDATE exposures SET conversion = 1
WHERE experiment_id = :experiment_id AND unit_id = :unit_id AND first_exposed_at >= :earliest
    AND conversion = 0
RETURNING conversion, covariate, cell, segments
"""
# ``{segments}`` lists :segment0, :segment1, ...: the overall row ('') and the unit's segments.
ADD_TO_STATS = """
UPDATE cell_stats SET sum = sum + :d, sum_squares = sum_squares + :d_squares,
    sum_xy = sum_xy + :d_xy
WHERE experiment_id = :experiment_id AND cell = :cell AND metric = :metric
    AND segment IN ({segments})
"""
METRICS = ("conversion", "value", "accepts", "clicks", "contacts")


# PostgreSQL: the history is written in the log statement's WITH (a round trip less).
LOG_DECISION_AND_CONTACTS = f"WITH contacted AS ({SET_CONTACT_HISTORY}){INSERT_DECISION}"


@lru_cache(maxsize=16)
def _add_unit_statement(segments: int) -> str:
    rows = (ROW_OF_UNIT.format(m=m, s=s) for s in range(segments) for m in range(len(METRICS)))
    return ADD_UNIT.format(rows=", ".join(rows))


@lru_cache(maxsize=16)
def _add_to_stats_statement(segments: int) -> str:
    return ADD_TO_STATS.format(segments=", ".join(f":segment{s}" for s in range(segments)))


class HotPath:
    """The decision statements on one driver connection, inside ``HotConnections.transaction``."""

    def __init__(self, raw: Any, dialect_name: str) -> None:
        self._dialect = _DIALECTS[dialect_name]
        # psycopg builds a cursor, with its adapters, per ``Connection.execute``: one cursor
        # serves the whole transaction (each result is read before the next statement). On
        # sqlite3 a new cursor per statement measured faster than a reused one.
        self._run = raw.execute if self._dialect.sqlite else raw.cursor().execute
        self.on_commit: list[Callable[[], None]] = []
        """Run once the transaction has committed (not after a rollback)."""

    def _execute(self, statement: str, parameters: dict[str, Any]) -> Any:
        return self._run(self._dialect.sql(statement), parameters)

    def lock_customer(
        self, customer_id: str, channel: str, windows: ContactWindows
    ) -> CustomerState:
        """Lock the customer's row for this transaction, then read the profile, the contact
        history and the cool-downs, and count the contacts the caps need.

        Concurrent decisions for one customer queue on the lock, so each one sees the contacts
        the one before it recorded, and caps hold across workers.
        """
        d = self._dialect
        parameters = {"customer_id": customer_id, "now": d.time(windows.now)}
        # fetchall, not fetchone: an unfinished SQLite statement would keep its read snapshot
        # open past COMMIT, and the connection's next BEGIN IMMEDIATE would wait on it forever.
        attributes: Any = {}  # SQLite: a customer never upserted or contacted has no row
        history = None
        cooling = []
        if d.sqlite:
            for kind, value, stored_history in self._execute(
                CUSTOMER_AND_COOLING, parameters
            ).fetchall():
                if kind == "customer":
                    attributes, history = value, stored_history
                else:
                    cooling.append(value)
        else:
            ((attributes, history),) = self._execute(LOCK_CUSTOMER, parameters).fetchall()
            cooling = [offer_id for (offer_id,) in self._execute(COOLING, parameters).fetchall()]
        contact_history = ContactHistory.from_json(history)
        return CustomerState(
            dict(d.read_json(attributes)),
            contact_history.counts(channel, windows, frozenset(cooling)),
            contact_history,
        )

    def budget_states(self, budget_ids: Iterable[str]) -> dict[str, BudgetState]:
        ids = sorted(budget_ids)
        placeholders = ", ".join(f":b{i}" for i in range(len(ids)))
        rows = self._execute(
            BUDGET_STATES.format(placeholders=placeholders), {f"b{i}": b for i, b in enumerate(ids)}
        ).fetchall()
        return {row[0]: BudgetState(*row) for row in rows}

    def reserve_budget(self, budget_id: str, charge_units: int, cap_units: int, today: str) -> bool:
        """Spend ``charge_units`` if the total, the paced cap and today's limit allow it.

        Check and increment are one conditional ``UPDATE``: the database re-evaluates the
        ``WHERE`` on the locked row, so no number of workers can overspend.
        """
        cursor = self._execute(
            RESERVE_BUDGET,
            {"budget_id": budget_id, "charge": charge_units, "cap": cap_units, "today": today},
        )
        return bool(cursor.rowcount == 1)

    def release_budget(self, budget_id: str, charge_units: int) -> None:
        """Undo a reservation made earlier in this transaction (its row is still locked)."""
        self._execute(RELEASE_BUDGET, {"budget_id": budget_id, "charge": charge_units})

    def log_decision(self, row: dict[str, Any], contact_history: ContactHistory | None) -> None:
        """The decision's log row and, when it made contacts, the customer's history with them
        (``row``'s customer; on PostgreSQL one statement, SQLite has no such ``WITH``)."""
        values = dict(row)
        values["created_at"] = self._dialect.time(row["created_at"])
        for name in ("context", "candidates", "offers", "memberships"):
            values[name] = orjson.dumps(row[name]).decode()
        if contact_history is None:
            self._execute(INSERT_DECISION, values)
            return
        values["contact_history"] = contact_history.to_json()
        if self._dialect.sqlite:
            self._execute(SET_CONTACT_HISTORY, values)
            self._execute(INSERT_DECISION, values)
        else:
            self._execute(LOG_DECISION_AND_CONTACTS, values)

    # --- experiments: first exposures and per-cell sufficient statistics --------------------

    def unit_cells(self, unit_id: str) -> dict[str, str]:
        """experiment id -> the unit's cell, for every experiment it was exposed in."""
        rows = self._execute(UNIT_CELLS, {"unit_id": unit_id}).fetchall()
        return {experiment_id: cell for experiment_id, cell in rows}

    def record_exposure(
        self,
        experiment_id: str,
        unit_id: str,
        cell: str,
        now: datetime,
        covariate_days: int,
        segments: Sequence[str] = (),
    ) -> bool:
        """Record the unit's first exposure; returns False when it was exposed before.

        The covariate is the unit's converted value in the ``covariate_days`` before exposure
        (for CUPED). A new unit adds 1 to ``n`` of every metric of its cell, overall and in each
        of its ``segments`` (``attribute=value``), which its later outcomes move as well.
        """
        d = self._dialect
        unit = {"experiment_id": experiment_id, "unit_id": unit_id}
        # A primary-key lookup first: the covariate's scan of past events is paid once per unit,
        # not on every decision (the insert's ON CONFLICT stays the guard).
        if self._execute(EXPOSED, unit).fetchall():
            return False
        since = now - timedelta(days=covariate_days)
        covariate = from_units(
            self._execute(
                PRE_EXPOSURE_VALUE,
                {"unit_id": unit_id, "since": d.time(since), "now": d.time(now)},
            ).fetchall()[0][0]
        )
        inserted = self._execute(
            RECORD_EXPOSURE,
            {
                "experiment_id": experiment_id,
                "unit_id": unit_id,
                "cell": cell,
                "now": d.time(now),
                "covariate": covariate,
                "segments": orjson.dumps(list(segments)).decode(),
            },
        ).rowcount
        if inserted != 1:
            return False
        keys = ["", *segments]
        parameters: dict[str, Any] = {
            "experiment_id": experiment_id,
            "cell": cell,
            "x": covariate,
            "x2": covariate * covariate,
        }
        parameters.update({f"metric{m}": metric for m, metric in enumerate(METRICS)})
        parameters.update({f"segment{s}": key for s, key in enumerate(keys)})
        self._execute(_add_unit_statement(len(keys)), parameters)
        return True

    def add_to_metric(
        self, experiment_id: str, unit_id: str, metric: str, increment: float, earliest: datetime
    ) -> None:
        """Add ``increment`` to the unit's ``metric`` if it was first exposed at or after
        ``earliest`` (the attribution window), and the change to its cell's statistics.

        ``conversion`` is binary: it becomes 1 once. The statistics move by the exact change of
        the unit's value, so sums of squares stay exact however many events a unit has.
        """
        parameters = {
            "experiment_id": experiment_id,
            "unit_id": unit_id,
            "increment": increment,
            "earliest": self._dialect.time(earliest),
        }
        statement = CONVERT_UNIT if metric == "conversion" else ADD_TO_METRIC.format(metric=metric)
        rows = self._execute(statement, parameters).fetchall()
        if not rows:
            return
        new, covariate, cell, segments = rows[0]
        change = new if metric == "conversion" else increment
        old = new - change
        keys = ["", *self._dialect.read_json(segments)]
        self._execute(
            _add_to_stats_statement(len(keys)),
            {
                "experiment_id": experiment_id,
                "cell": cell,
                "metric": metric,
                "d": change,
                "d_squares": new * new - old * old,
                "d_xy": covariate * change,
                **{f"segment{s}": key for s, key in enumerate(keys)},
            },
        )
