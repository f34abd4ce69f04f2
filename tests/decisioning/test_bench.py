"""The report benchmark writes exposure and statistics rows in SQL: they must fit the schema."""

from __future__ import annotations

import pytest

from decisioning.bench import bench_report


def test_report_benchmark_builds_its_rows_on_the_current_schema(
    capsys: pytest.CaptureFixture[str],
) -> None:
    [row] = bench_report(600)
    assert row.requests == 20 and row.per_second > 0
    assert "600 exposure rows generated" in capsys.readouterr().out
