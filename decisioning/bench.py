"""``decisioning bench decide|http``: throughput and latency tables (benchmarks, not tests).

* ``decide``: in-process ``DecisionEngine.decide`` on a fresh SQLite file, for catalogues of
  several sizes, one thread, with the write-ahead log checkpointed in the background as the
  service does (``WalCheckpointer``): decisions per second of wall time and per second of the
  process's CPU time (every thread's, the checkpointer's included: decisions per core), and
  p50/p99 latency.
* ``http``: the real app under uvicorn in a subprocess; a client with 1 and 8 keep-alive
  connections posts decisions, then calls ``/healthz`` of the same app in the same run. The ratio
  of the two throughputs says what deciding costs over the bare HTTP stack, whatever the machine.

Both run on PostgreSQL instead with ``database_url`` (``--database-url``), in a schema of their
own that is dropped afterwards (``scratch_schema``); the database server's CPU time is not in
"per CPU s".
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from statistics import median

import numpy as np

from decisioning.catalog import put_budget, put_contact_policy, put_offer
from decisioning.domain import CHANNELS, Budget, ChannelCaps, ContactPolicy, DecisionRequest, Offer
from decisioning.engine import DecisionEngine
from decisioning.errors import InvalidInput
from decisioning.settings import Settings
from decisioning.sql.hot_path import METRICS
from decisioning.sql.session import WalCheckpointer, scratch_schema, unit_of_work

SEGMENTS = ("mass", "affluent", "private")
LIFECYCLES = ("new", "growing", "mature", "churn_risk")


def synthetic_offers(count: int, seed: int = 0) -> list[Offer]:
    """``count`` offers on every channel with a mix of rules, risk levels and budgets' targets."""
    rng = np.random.default_rng(seed)
    offers = []
    for i in range(count):
        rule = [
            None,
            {"attr": "age", "op": ">=", "value": int(rng.integers(18, 40))},
            {"attr": "segment", "op": "in", "value": list(SEGMENTS[: 1 + i % 3])},
            {
                "all": [
                    {"attr": "age", "op": "between", "value": [21, 75]},
                    {"not": {"attr": "lifecycle", "op": "==", "value": "churn_risk"}},
                ]
            },
        ][i % 4]
        offers.append(
            Offer(
                offer_id=f"offer-{i:03d}",
                name=f"Offer {i}",
                product=f"product-{i % 40}",
                category=f"category-{i % 6}",
                channels=CHANNELS,
                value=float(rng.uniform(20, 500)),
                cost=float(rng.uniform(0.01, 0.2)),
                risk_level=f"R{1 + i % 4}",
                eligibility=rule,
            )
        )
    return offers


def synthetic_context(rng: np.random.Generator) -> dict[str, object]:
    return {
        "age": int(rng.integers(18, 90)),
        "segment": SEGMENTS[int(rng.integers(0, 3))],
        "lifecycle": LIFECYCLES[int(rng.integers(0, 4))],
        "risk_tolerance": f"C{int(rng.integers(1, 6))}",
        "products": [f"product-{int(p)}" for p in rng.integers(0, 40, size=2)],
    }


def prepare(url: str, offer_count: int) -> DecisionEngine:
    """A migrated engine holding ``offer_count`` offers, a budget on every fifth, caps that bind."""
    engine = DecisionEngine.open(Settings(database_url=url, seed=0))
    now = datetime.now(UTC)
    with unit_of_work(engine.db) as connection:
        for offer in synthetic_offers(offer_count):
            put_offer(connection, offer, now)
            if int(offer.offer_id[-3:]) % 5 == 0:
                put_budget(
                    connection,
                    Budget(
                        f"budget-{offer.offer_id}",
                        "offer",
                        offer.offer_id,
                        "money",
                        1e9,
                        now - timedelta(days=1),
                        now + timedelta(days=30),
                    ),
                    now,
                )
        put_contact_policy(
            connection,
            ContactPolicy(
                channel_caps={"app_banner": ChannelCaps(per_day=50)},
                total_per_week=200,
                offer_max_contacts=20,
                refusal_cooldown_days=30,
            ),
            now,
        )
    return engine


@dataclass(frozen=True)
class Row:
    label: str
    requests: int
    per_second: float
    p50_ms: float
    p99_ms: float
    per_cpu_second: float | None = None
    """Requests per second of CPU time: the process's in-process, the server's (every worker's)
    over HTTP, where ``/proc`` tells it."""


@dataclass(frozen=True, slots=True)
class HttpComparison:
    """Decisions against the empty endpoint at one number of connections, run in paired rounds.

    This machine's speed drifts by a third within minutes: a ratio of two runs taken a minute
    apart measures the drift as much as the decision. Each round's ratio compares two runs
    taken back to back, and their median discards the rounds a burst of noise fell on.
    """

    connections: int
    rounds: list[tuple[Row, Row]]
    """Each round's run of decisions and of the empty endpoint."""

    @property
    def decisions(self) -> Row:
        label = f"POST /v1/decisions, {self.connections} conn"
        return _median_row(label, [decisions for decisions, _ in self.rounds])

    @property
    def empty(self) -> Row:
        label = f"GET /healthz (empty), {self.connections} conn"
        return _median_row(label, [empty for _, empty in self.rounds])

    def ratios(self) -> list[float]:
        """Each round's throughput of decisions over that of the empty endpoint."""
        return [decisions.per_second / empty.per_second for decisions, empty in self.rounds]

    def cpu_ratios(self) -> list[float] | None:
        """The same per second of the server's CPU; None where ``/proc`` does not tell it."""
        ratios = []
        for decisions, empty in self.rounds:
            if not (decisions.per_cpu_second and empty.per_cpu_second):
                return None
            ratios.append(decisions.per_cpu_second / empty.per_cpu_second)
        return ratios


def _median_row(label: str, rounds: list[Row]) -> Row:
    """One endpoint's rounds as one row: requests summed, rates and latencies their medians."""
    per_cpu = [r.per_cpu_second for r in rounds if r.per_cpu_second]
    return Row(
        label,
        sum(r.requests for r in rounds),
        median(r.per_second for r in rounds),
        median(r.p50_ms for r in rounds),
        median(r.p99_ms for r in rounds),
        median(per_cpu) if len(per_cpu) == len(rounds) else None,
    )


@contextmanager
def scratch_database(database_url: str | None, name: str) -> Iterator[str]:
    """The URL of an empty database for one run: a SQLite file ``name`` in a temporary folder,
    or, with ``database_url`` (PostgreSQL), a schema of that database; removed afterwards."""
    if database_url is None:
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / name}"
        return
    if not database_url.startswith("postgresql"):
        raise InvalidInput(
            "must be a PostgreSQL URL (SQLite runs on a temporary file without it)",
            field="database_url",
        )
    with scratch_schema(database_url) as url:
        yield url


def percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples), q)) * 1000.0


def bench_decide(
    offer_counts: list[int], decisions: int, group: int = 1, database_url: str | None = None
) -> list[Row]:
    """``decisions`` decisions a catalogue size, one after another; with ``group`` > 1, that
    many at a time commit together (``engine.group()``, as the service groups the requests one
    turn of its event loop has read; on PostgreSQL each keeps its own transaction), and a
    decision's latency is its group's."""
    rows = []
    for count in offer_counts:
        with scratch_database(database_url, "bench.db") as url:
            engine = prepare(url, count)
            rng = np.random.default_rng(1)
            requests = [
                DecisionRequest(
                    f"customer-{int(rng.integers(0, 5000))}",
                    "app_banner",
                    context=synthetic_context(rng),
                    limit=2,
                )
                for _ in range(decisions)
            ]
            sqlite = engine.db.dialect.name == "sqlite"
            checkpointer = WalCheckpointer(engine.db) if sqlite else None
            if checkpointer is not None:
                checkpointer.start()
            for request in requests[:200]:  # warm caches and the SQLite page cache
                engine.decide(request)
            latencies = []
            started, cpu_started = time.perf_counter(), time.process_time()
            for first in range(0, decisions, group):
                t0 = time.perf_counter()
                batch = requests[first : first + group]
                with engine.group() if group > 1 else nullcontext():
                    for request in batch:
                        engine.decide(request)
                latencies += [time.perf_counter() - t0] * len(batch)
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            if checkpointer is not None:
                checkpointer.stop()
            engine.db.dispose()
        label = f"in-process, {count} offers" + (f", groups of {group}" if group > 1 else "")
        label += "" if sqlite else ", PostgreSQL"
        rows.append(
            Row(
                label,
                decisions,
                decisions / elapsed,
                percentile(latencies, 50),
                percentile(latencies, 99),
                decisions / cpu,
            )
        )
    return rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load(
    port: int,
    connections: int,
    seconds: float,
    make: Callable[[int], tuple[str, str, bytes, dict[str, str]]],
) -> Row:
    """``connections`` threads, each with one keep-alive connection, for ``seconds``."""
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors: list[str] = []
    stop = time.perf_counter() + seconds

    def client(slot: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        i = 0
        while time.perf_counter() < stop:
            method, path, body, headers = make(slot * 1_000_000 + i)
            t0 = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            latencies[slot].append(time.perf_counter() - t0)
            if response.status != 200:
                errors.append(f"{response.status}")
            i += 1
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(s,)) for s in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. status {errors[0]}")
    samples = [x for slot in latencies for x in slot]
    return Row(
        "", len(samples), len(samples) / elapsed, percentile(samples, 50), percentile(samples, 99)
    )


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer KEY"
counter = 0
request = function()
  counter = counter + 1
  local body = '{"customer_id": "customer-' .. (counter % 5000) .. '", "channel": "app_banner", '
    .. '"context": {"age": ' .. (18 + counter % 70) .. ', "segment": "mass", "lifecycle": '
    .. '"mature", "risk_tolerance": "C3", "products": ["product-1"]}, "limit": 2}'
  return wrk.format(nil, "/v1/decisions", nil, body)
end
"""


def _wrk(port: int, connections: int, seconds: float, script: Path | None) -> Row:
    """Load from ``wrk`` (a C client: it leaves the cores to the server under test)."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    command += (
        ["-s", str(script), f"http://127.0.0.1:{port}"]
        if script
        else [f"http://127.0.0.1:{port}/healthz"]
    )
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in output:
        raise RuntimeError(f"failed requests:\n{output}")

    def latency(label: str) -> float:
        value = next(
            line.split()[1] for line in output.splitlines() if line.strip().startswith(label)
        )
        unit = 1e-3 if value.endswith("ms") else 1e-6 if value.endswith("us") else 1.0
        return float(value.rstrip("mus")) * unit * 1000.0

    per_second = float(
        next(line.split()[1] for line in output.splitlines() if "Requests/sec" in line)
    )
    total = int(next(line.split()[0] for line in output.splitlines() if "requests in" in line))
    return Row("", total, per_second, latency("50%"), latency("99%"))


def server_cpu_seconds(pid: int) -> float | None:
    """User and system CPU time of process ``pid`` and of its descendants alive (uvicorn's
    workers), from Linux's ``/proc``; None without it."""
    if not Path("/proc/self/stat").exists():
        return None
    total, pending = 0.0, [pid]
    while pending:
        process = Path(f"/proc/{pending.pop()}")
        try:
            fields = (process / "stat").read_text().rsplit(")", 1)[1].split()
            tasks = list((process / "task").iterdir())
        except OSError:  # it exited meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in tasks:
            with suppress(OSError):  # a kernel without the children lists: the process alone
                pending += [int(child) for child in (task / "children").read_text().split()]
    return total


def bench_http(
    offer_count: int,
    seconds: float,
    workers: int,
    database_url: str | None = None,
    rounds: int = 5,
) -> list[HttpComparison]:
    """Decisions against the empty endpoint of the same app, in one run, at 1 and 8 connections:
    ``seconds`` of each, in ``rounds`` paired runs that alternate which goes first."""
    from api.security import create_key

    if rounds < 1:
        raise InvalidInput("must be at least 1", field="rounds")
    use_wrk = shutil.which("wrk") is not None
    with tempfile.TemporaryDirectory() as folder, scratch_database(database_url, "bench.db") as url:
        engine = prepare(url, offer_count)
        key = create_key(engine.db, "channel")
        database = "SQLite" if engine.db.dialect.name == "sqlite" else "PostgreSQL"
        engine.db.dispose()
        script = Path(folder) / "decide.lua"
        script.write_text(WRK_SCRIPT.replace("KEY", key))
        port = _free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.app:create_app",
                "--factory",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env={
                **os.environ,
                "DECISIONING_DATABASE_URL": url,
                "DECISIONING_EMBEDDED_LEARNER": "0",
            },
        )
        try:
            _wait_healthy(port)
            rng = np.random.default_rng(2)
            contexts = [synthetic_context(rng) for _ in range(1000)]
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

            def decision(i: int) -> tuple[str, str, bytes, dict[str, str]]:
                body = {
                    "customer_id": f"customer-{i % 5000}",
                    "channel": "app_banner",
                    "context": contexts[i % 1000],
                    "limit": 2,
                }
                return "POST", "/v1/decisions", json.dumps(body).encode(), headers

            def empty(_i: int) -> tuple[str, str, bytes, dict[str, str]]:
                return "GET", "/healthz", b"", {}

            comparisons = []
            for connections in (1, 8):
                rounds_run: list[tuple[Row, Row]] = []
                loads = {
                    name: (
                        partial(_wrk, port, connections, script=lua)
                        if use_wrk
                        else partial(_load, port, connections, make=make)
                    )
                    for name, make, lua in (
                        ("decisions", decision, script),
                        ("empty", empty, None),
                    )
                }
                for load in loads.values():
                    load(1.0)  # warm-up
                for round_ in range(rounds):
                    # ABBA: a drift of the machine's speed within two rounds favours neither.
                    run: dict[str, Row] = {}
                    for name in ("decisions", "empty")[:: 1 if round_ % 2 == 0 else -1]:
                        run[name] = _with_server_cpu(server.pid, loads[name], seconds / rounds)
                    rounds_run.append((run["decisions"], run["empty"]))
                comparisons.append(HttpComparison(connections, rounds_run))
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(
        f"client: {'wrk' if use_wrk else 'python threads (install wrk for a lighter client)'}; "
        f"server: uvicorn, {workers} worker(s), {database}; {rounds} rounds of "
        f"{seconds / rounds:g} s each"
    )
    return comparisons


def _with_server_cpu(pid: int, load: Callable[[float], Row], seconds: float) -> Row:
    """``load`` run for ``seconds``, with its requests per second of server ``pid``'s CPU."""
    cpu_before = server_cpu_seconds(pid)
    row = load(seconds)
    cpu_after = server_cpu_seconds(pid)
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return replace(row, per_cpu_second=row.requests / cpu if cpu else None)


def _wait_healthy(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not come up within 30 s")


def bench_report(exposures: int) -> list[Row]:
    """A report over an experiment with ``exposures`` stored exposure rows (three cells).

    The rows are generated in SQL; the cell statistics are then aggregated from them, as the
    engine would have kept them, and the report is timed: it reads O(cells) rows, not the units.
    """
    from sqlalchemy import text

    from decisioning.catalog import put_experiment
    from decisioning.reports import experiment_report
    from experiments.design import Cell, Experiment

    with tempfile.TemporaryDirectory() as folder:
        engine = prepare(f"sqlite:///{Path(folder) / 'report.db'}", 5)
        now = datetime.now(UTC)
        with unit_of_work(engine.db) as connection:
            put_experiment(
                connection,
                Experiment(
                    "big",
                    "big",
                    "layer",
                    (Cell("a", 1 / 3), Cell("b", 1 / 3), Cell("c", 1 - 2 / 3)),
                    "conversion",
                    guardrail_metrics=("value",),
                    planned_units_per_cell=exposures // 3,
                    status="running",
                ),
                now,
            )
        started = time.perf_counter()
        with unit_of_work(engine.db) as connection:
            connection.execute(
                text(
                    "WITH RECURSIVE units(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM units "
                    "WHERE i + 1 < :n) INSERT INTO exposures (experiment_id, unit_id, cell, "
                    "first_exposed_at, covariate, conversion, value, accepts, clicks, contacts, "
                    "segments) SELECT 'big', 'u' || i, "
                    "CHAR(97 + i % 3), '2026-01-01 00:00:00.000000', (i % 97) * 1.0, "
                    "CASE WHEN abs(random()) % 100 < 10 + i % 3 THEN 1.0 ELSE 0.0 END, "
                    "(abs(random()) % 1000) / 10.0, 0, 0, 1, "
                    "'[\"group=g' || (i % 5) || '\"]' FROM units"
                ),
                {"n": exposures},
            )
            for metric, segment in itertools.product(METRICS, ("''", "segments ->> '$[0]'")):
                connection.execute(
                    text(
                        "INSERT INTO cell_stats (experiment_id, cell, metric, segment, n, sum, "
                        "sum_squares, sum_x, sum_x2, sum_xy) "
                        f"SELECT experiment_id, cell, '{metric}', "
                        f"{segment}, COUNT(*), SUM({metric}), SUM({metric} * {metric}), "
                        f"SUM(covariate), SUM(covariate * covariate), SUM(covariate * {metric}) "
                        "FROM exposures GROUP BY 1, 2, 3, 4"
                    )
                )
        built = time.perf_counter() - started
        samples = []
        for _ in range(20):
            t0 = time.perf_counter()
            with engine.db.connect() as connection:
                experiment_report(connection, "big")
            samples.append(time.perf_counter() - t0)
        engine.db.dispose()
    print(f"{exposures:,} exposure rows generated and aggregated in {built:.1f} s")
    return [
        Row(
            f"report, {exposures:,} exposures",
            len(samples),
            len(samples) / sum(samples),
            percentile(samples, 50),
            percentile(samples, 99),
        )
    ]


def format_table(rows: list[Row]) -> str:
    lines = [
        f"{'run':<34} {'requests':>9} {'per second':>11} {'per CPU s':>10} {'p50 ms':>8} "
        f"{'p99 ms':>8}"
    ]
    lines += [
        f"{r.label:<34} {r.requests:>9} {r.per_second:>11.0f} "
        f"{'-' if r.per_cpu_second is None else f'{r.per_cpu_second:.0f}':>10} "
        f"{r.p50_ms:>8.2f} {r.p99_ms:>8.2f}"
        for r in rows
    ]
    return "\n".join(lines)


def main(args: argparse.Namespace, _settings: Settings) -> int:
    if args.target == "decide":
        print(
            format_table(bench_decide(args.offers, args.decisions, args.group, args.database_url))
        )
        return 0
    if args.target == "report":
        print(format_table(bench_report(args.exposures)))
        return 0
    offers = args.offers[0] if len(args.offers) == 1 else 50
    comparisons = bench_http(offers, args.seconds, args.workers, args.database_url, args.rounds)
    print(format_table([row for c in comparisons for row in (c.decisions, c.empty)]))
    for comparison in comparisons:
        ratios, cpu_ratios = comparison.ratios(), comparison.cpu_ratios()
        per_cpu = f" (per server CPU s {median(cpu_ratios):.2f})" if cpu_ratios else ""
        print(
            f"at {comparison.connections} conn: ratio decisions/empty {median(ratios):.2f}"
            f"{per_cpu}, rounds {min(ratios):.2f}-{max(ratios):.2f}; "
            f"p99 of decisions {comparison.decisions.p99_ms:.2f} ms"
        )
    return 0
