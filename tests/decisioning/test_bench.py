"""The benchmarks' own machinery: the report's rows fit the schema, groups, PostgreSQL scratch
schemas, and the server CPU the HTTP benchmark reads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, text

from decisioning.bench import bench_decide, bench_report, server_cpu_seconds
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
