"""The report benchmark writes exposure and statistics rows in SQL: they must fit the schema."""

from __future__ import annotations

import pytest

from decisioning.bench import bench_decide, bench_report


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
