"""The decision's own statements, run as plain SQL on the DBAPI connection of the unit of work.

A decision runs four to eight statements (SQLite reads the profile with the contact counts).
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
from datetime import time as dt_time
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import Engine

from decisioning.contact_policy import ContactCounts, ContactWindows
from decisioning.sql.repositories import BudgetState
from decisioning.sql.session import writer_queue
from decisioning.sql.tables import from_units

SQLITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # what SQLAlchemy's SQLite DateTime stores


@dataclass(frozen=True, slots=True)
class CustomerState:
    """What a decision reads of its customer under the row lock."""

    attributes: dict[str, Any]
    contacts: ContactCounts


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
        # Its caps' windows start whole days before ``now``: the same clock on a few dates.
        self._last_clock: tuple[dt_time | None, str] = (None, "")
        self._dates: dict[int, str] = {}

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
        # SQLITE_TIME_FORMAT, from the date's text and the clock's (isoformat with fixed
        # microseconds, faster than strftime), each kept: the windows of a decision's caps
        # share ``now``'s clock, and its dates recur, so one isoformat serves most calls.
        utc = value if value.tzinfo is UTC else value.astimezone(UTC)
        clock, last_clock = utc.time(), self._last_clock
        if clock != last_clock[0]:
            last_clock = (clock, clock.isoformat("microseconds"))
            self._last_clock = last_clock
        day = utc.toordinal()
        date = self._dates.get(day)
        if date is None:
            date = utc.date().isoformat()
            # A few dates a day are written: the oldest are dropped wholesale, never under a reader.
            dates = self._dates if len(self._dates) < 64 else {}
            dates[day] = date
            self._dates = dates
        text = f"{date} {last_clock[1]}"
        self._last_time = (value, text)
        return text

    def read_json(self, value: Any) -> Any:
        return orjson.loads(value) if isinstance(value, str | bytes) else value


_DIALECTS = {"sqlite": _Dialect("sqlite"), "postgresql": _Dialect("postgresql")}

# One row of the week's counts, one per offer contacted within the offer window, one per offer
# cooling down: the database counts, so reading a long history costs what a short one does.
CONTACT_COUNTS = """
SELECT 'week', CAST(NULL AS VARCHAR),
    SUM(CASE WHEN channel = :channel AND contacted_at >= :day THEN 1 ELSE 0 END),
    SUM(CASE WHEN channel = :channel THEN 1 ELSE 0 END), COUNT(*)
FROM contacts WHERE customer_id = :customer_id AND contacted_at >= :week
UNION ALL
SELECT 'offer', offer_id, COUNT(*), 0, 0 FROM contacts
WHERE customer_id = :customer_id AND contacted_at >= :offer GROUP BY offer_id
UNION ALL
SELECT 'cooling', offer_id, 0, 0, 0 FROM cooldowns WHERE customer_id = :customer_id AND until > :now
"""
# PostgreSQL: the upsert takes the customer's row lock until commit (a no-op update still
# locks), and only then may the counts be read: a statement that waited for the lock would
# still count from the snapshot it started with.
LOCK_CUSTOMER = """
INSERT INTO customers (customer_id, attributes, updated_at) VALUES (:customer_id, '{}', :now)
ON CONFLICT (customer_id) DO UPDATE SET updated_at = customers.updated_at
RETURNING attributes
"""
# SQLite: BEGIN IMMEDIATE already holds the database's one write lock, so the profile is read
# with the counts, as one more row.
CUSTOMER_AND_CONTACT_COUNTS = (
    CONTACT_COUNTS
    + """UNION ALL
SELECT 'customer', attributes, 0, 0, 0 FROM customers WHERE customer_id = :customer_id
"""
)
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
# ``{rows}`` repeats "(:customer_id, :offer<i>, :channel, :decision_id, :contacted_at)".
INSERT_CONTACTS = """
INSERT INTO contacts (customer_id, offer_id, channel, decision_id, contacted_at) VALUES {rows}
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


@lru_cache(maxsize=16)
def _insert_contacts_statement(contacts: int) -> str:
    rows = (
        f"(:customer_id, :offer{i}, :channel, :decision_id, :contacted_at)" for i in range(contacts)
    )
    return INSERT_CONTACTS.format(rows=", ".join(rows))


@lru_cache(maxsize=16)
def _log_decision_statement(contacts: int, sqlite: bool) -> str:
    if not contacts or sqlite:
        return INSERT_DECISION
    return f"WITH contacted AS ({_insert_contacts_statement(contacts)}){INSERT_DECISION}"


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
        """Lock the customer's row for this transaction, then read the profile and count the
        contacts and cool-downs the caps need.

        Concurrent decisions for one customer queue on the lock, so each one sees the contacts
        the one before it recorded, and caps hold across workers.
        """
        d = self._dialect
        parameters = {
            "customer_id": customer_id,
            "channel": channel,
            "day": d.time(windows.day),
            "week": d.time(windows.week),
            "offer": d.time(windows.offer),
            "now": d.time(windows.now),  # last: the decision's later writes reuse its text
        }
        # fetchall, not fetchone: an unfinished SQLite statement would keep its read snapshot
        # open past COMMIT, and the connection's next BEGIN IMMEDIATE would wait on it forever.
        attributes: Any = {}  # SQLite: a customer never upserted has no row
        if d.sqlite:
            rows = self._execute(CUSTOMER_AND_CONTACT_COUNTS, parameters).fetchall()
        else:
            ((attributes,),) = self._execute(  # the upsert always returns the row
                LOCK_CUSTOMER, {"customer_id": customer_id, "now": parameters["now"]}
            ).fetchall()
            rows = self._execute(CONTACT_COUNTS, parameters).fetchall()
        week = (0, 0, 0)
        per_offer: dict[str, int] = {}
        cooling: set[str] = set()
        for kind, key, first, second, third in rows:
            if kind == "week":
                week = (int(first or 0), int(second or 0), int(third))
            elif kind == "offer":
                per_offer[key] = int(first)
            elif kind == "cooling":
                cooling.add(key)
            else:
                attributes = key
        return CustomerState(
            dict(d.read_json(attributes)), ContactCounts(*week, per_offer, frozenset(cooling))
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

    def log_decision(self, row: dict[str, Any], offer_ids: Sequence[str]) -> None:
        """The decision's log row and one contact per offer it made (``row``'s customer, channel
        and time). On PostgreSQL one statement, the contacts inserted in its ``WITH`` (a round
        trip less); SQLite, which has no such ``WITH``, runs two."""
        values = dict(row)
        values["created_at"] = values["contacted_at"] = self._dialect.time(row["created_at"])
        for name in ("context", "candidates", "offers", "memberships"):
            values[name] = orjson.dumps(row[name]).decode()
        values.update({f"offer{i}": offer_id for i, offer_id in enumerate(offer_ids)})
        if offer_ids and self._dialect.sqlite:
            self._execute(_insert_contacts_statement(len(offer_ids)), values)
        self._execute(_log_decision_statement(len(offer_ids), self._dialect.sqlite), values)

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
