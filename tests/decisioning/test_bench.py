"""The benchmarks' own machinery: the report's rows fit the schema, groups, PostgreSQL scratch
schemas, and the server CPU the HTTP benchmark reads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, text

from decisioning.bench import (
    HttpComparison,
    Row,
    bench_decide,
    bench_http,
    bench_report,
    server_cpu_seconds,
)
from decisioning.errors import InvalidInput


def test_report_benchmark_builds_its_rows_on_the_current_schema(
    capsys: pytest.CaptureFixture[str],
) -> None:
    [row] = bench_report(600)
    assert row.requests == 20 and row.per_second > 0
    assert "600 exposure rows generated" in capsys.readouterr().out


def test_decide_benchmark_commits_in_groups_including_a_last_shorter_one() -> None:
    [single] = bench_decide([3], 20)
    [grouped] = bench_decide([3], 20, group=8)  # groups of 8, 8 and 4
    assert (single.label, grouped.label) == (
        "in-process, 3 offers",
        "in-process, 3 offers, groups of 8",
    )
    assert single.requests == grouped.requests == 20


def test_decide_benchmark_on_postgres_leaves_no_schema_behind(postgres_server_url: str) -> None:
    admin = create_engine(postgres_server_url)
    scratch = text("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'scratch%'")
    with admin.connect() as connection:
        before = connection.execute(scratch).scalar()
    [row] = bench_decide([3], 20, database_url=postgres_server_url)
    with admin.connect() as connection:
        after = connection.execute(scratch).scalar()
    admin.dispose()
    assert (row.label, row.requests) == ("in-process, 3 offers, PostgreSQL", 20)
    assert after == before


def test_a_benchmark_database_url_must_be_postgres() -> None:
    with pytest.raises(InvalidInput) as raised:
        bench_decide([3], 20, database_url="sqlite:///somewhere.db")
    assert raised.value.field == "database_url"


BURN = """import sys, time
while time.process_time() < 0.35:
    pass
print("done", flush=True)
sys.stdin.read()
"""


def test_server_cpu_counts_the_workers_of_the_server() -> None:
    own = server_cpu_seconds(os.getpid())  # Linux, as the service and CI run on
    assert own is not None
    worker = subprocess.Popen(
        [sys.executable, "-c", BURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline() == "done\n"
        with_worker = server_cpu_seconds(os.getpid())  # the worker has used 0.35 s of CPU
    finally:
        worker.communicate("")
    assert with_worker is not None and with_worker - own >= 0.3


def test_http_comparison_pairs_each_round_and_takes_medians() -> None:
    rounds = [  # the machine slows down in the second round: both endpoints feel it
        (Row("", 100, 1000.0, 1.0, 4.0, 1100.0), Row("", 400, 4000.0, 0.2, 1.0, 4400.0)),
        (Row("", 50, 500.0, 2.0, 9.0, 550.0), Row("", 200, 2000.0, 0.5, 3.0, 2750.0)),
        (Row("", 90, 900.0, 1.2, 5.0, 990.0), Row("", 300, 3000.0, 0.3, 2.0, 3300.0)),
    ]
    comparison = HttpComparison(8, rounds)
    assert comparison.ratios() == pytest.approx([0.25, 0.25, 0.3])
    assert comparison.cpu_ratios() == pytest.approx([0.25, 0.2, 0.3])
    decisions = comparison.decisions
    assert decisions.label == "POST /v1/decisions, 8 conn"
    assert (decisions.requests, decisions.per_second) == (240, 900.0)
    assert (decisions.p50_ms, decisions.p99_ms, decisions.per_cpu_second) == (1.2, 5.0, 990.0)
    assert comparison.empty.label == "GET /healthz (empty), 8 conn"
    assert comparison.empty.requests == 900


def test_http_comparison_has_no_cpu_ratio_where_the_cpu_was_not_read() -> None:
    rounds = [(Row("", 1, 10.0, 1.0, 1.0, None), Row("", 4, 40.0, 1.0, 1.0, 40.0))]
    assert HttpComparison(1, rounds).cpu_ratios() is None
    assert HttpComparison(1, rounds).decisions.per_cpu_second is None


def test_http_benchmark_serves_decisions_and_the_empty_endpoint_in_paired_rounds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    comparisons = bench_http(3, seconds=2.0, workers=1, rounds=2)
    assert [c.connections for c in comparisons] == [1, 8]
    for comparison in comparisons:
        assert len(comparison.rounds) == 2
        for decisions, empty in comparison.rounds:
            assert decisions.requests > 0 and empty.requests > 0
        assert all(0 < ratio < 10 for ratio in comparison.ratios())
    assert "2 rounds of 1 s each" in capsys.readouterr().out


def test_an_http_benchmark_needs_at_least_one_round() -> None:
    with pytest.raises(InvalidInput) as raised:
        bench_http(3, seconds=2.0, workers=1, rounds=0)
    assert raised.value.field == "rounds"
