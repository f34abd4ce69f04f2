"""DecisionGroups: the requests queued in one turn of the loop are decided as one group, in
arrival order; each gets its own decision or error, and a failed commit fails them all."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import httpx
import pytest

from api.app import create_app
from api.groups import DecisionGroups
from api.security import create_key
from decisioning.domain import ChannelCaps, ContactPolicy, Decision, DecisionRequest
from decisioning.engine import DecisionEngine
from decisioning.errors import InvalidInput
from tests.conftest import open_engine
from tests.support import configure, logged_decisions, offer, recorded_contacts

T = TypeVar("T")
ADULT = {"age": 40, "risk_tolerance": "C3", "lifecycle": "mature"}


class RecordingEngine:
    """Records which requests each group decided (a decision outside a group is a group of
    its own); a customer named ``bad`` fails its decision, and ``fail_commit`` makes a group's
    commit fail."""

    def __init__(self, fail_commit: bool = False) -> None:
        self.groups: list[list[str]] = []
        self.committed: list[str] = []
        self._open: list[str] | None = None
        self._fail_commit = fail_commit

    @contextmanager
    def group(self) -> Iterator[None]:
        assert self._open is None, "groups overlapped"
        self._open = []
        self.groups.append(self._open)
        yield
        if self._fail_commit:
            self._open = None
            raise OSError("disk I/O error")
        self.committed += self._open
        self._open = None

    def decide(self, request: DecisionRequest) -> Decision:
        if self._open is None:  # a decision alone: its own transaction
            self.groups.append([request.customer_id])
            self.committed.append(request.customer_id)
        else:
            self._open.append(request.customer_id)
        if request.customer_id == "bad":
            raise InvalidInput("unknown time zone 'Mars/Olympus'", field="context.timezone")
        return cast(Decision, f"decision for {request.customer_id}")


def run(scenario: Coroutine[Any, Any, T]) -> T:
    """A request never answered fails the test instead of hanging it."""
    return asyncio.run(asyncio.wait_for(scenario, timeout=5))


def request(customer_id: str) -> DecisionRequest:
    return DecisionRequest(customer_id, "app_banner")


def groups_of(engine: RecordingEngine, max_group: int = 32) -> DecisionGroups:
    return DecisionGroups(cast(DecisionEngine, engine), max_group)


def test_requests_queued_in_one_turn_are_one_group_in_arrival_order() -> None:
    engine = RecordingEngine()

    async def scenario() -> list[Any]:
        groups = groups_of(engine)
        return await asyncio.gather(*(groups.decide(request(f"c{i}")) for i in range(5)))

    answers = run(scenario())
    assert engine.groups == [["c0", "c1", "c2", "c3", "c4"]]
    assert answers == [f"decision for c{i}" for i in range(5)]


def test_requests_queued_after_a_group_has_run_form_the_next_group() -> None:
    engine = RecordingEngine()

    async def scenario() -> None:
        groups = groups_of(engine)
        first = [asyncio.create_task(groups.decide(request(f"a{i}"))) for i in range(3)]
        await asyncio.sleep(0)  # the three queue; their group runs in the next iteration
        await asyncio.sleep(0)
        late = asyncio.create_task(groups.decide(request("late")))
        await asyncio.gather(*first, late)

    run(scenario())
    assert engine.groups == [["a0", "a1", "a2"], ["late"]]


def test_a_long_queue_is_cut_into_groups_of_at_most_max_group_in_order() -> None:
    engine = RecordingEngine()

    async def scenario() -> None:
        groups = groups_of(engine, max_group=4)
        await asyncio.gather(*(groups.decide(request(f"c{i}")) for i in range(10)))

    run(scenario())
    assert [len(group) for group in engine.groups] == [4, 4, 2]
    assert [c for group in engine.groups for c in group] == [f"c{i}" for i in range(10)]


def test_a_failed_decision_answers_its_own_request_and_the_rest_commit() -> None:
    engine = RecordingEngine()

    async def scenario() -> list[Any]:
        groups = groups_of(engine)
        names = ("c0", "bad", "c2")
        return await asyncio.gather(
            *(groups.decide(request(n)) for n in names), return_exceptions=True
        )

    first, failed, last = run(scenario())
    assert (first, last) == ("decision for c0", "decision for c2")
    assert isinstance(failed, InvalidInput) and failed.field == "context.timezone"
    assert engine.committed == ["c0", "bad", "c2"]  # the group committed (its savepoints)


def test_a_failed_commit_fails_every_request_of_the_group() -> None:
    engine = RecordingEngine(fail_commit=True)

    async def scenario() -> list[Any]:
        groups = groups_of(engine)
        return await asyncio.gather(
            *(groups.decide(request(f"c{i}")) for i in range(3)), return_exceptions=True
        )

    answers = run(scenario())
    assert all(isinstance(a, OSError) for a in answers), answers
    assert engine.committed == []


def test_a_request_cancelled_while_it_queued_is_not_decided() -> None:
    engine = RecordingEngine()

    async def scenario() -> str:
        groups = groups_of(engine)
        gone = asyncio.create_task(groups.decide(request("gone")))
        kept = asyncio.create_task(groups.decide(request("kept")))
        await asyncio.sleep(0)  # both queued
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return cast(str, await kept)

    assert run(scenario()) == "decision for kept"
    assert engine.groups == [["kept"]]


def test_concurrent_requests_through_the_service_are_grouped_and_keep_the_cap(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six requests for one customer at once, over HTTP: they are decided in groups, and the
    customer's cap of 2 contacts a day still binds across the group's savepoints."""
    engine = open_engine(sqlite_url)
    configure(
        engine,
        [offer("card"), offer("loan")],
        policy=ContactPolicy(channel_caps={"app_banner": ChannelCaps(per_day=2)}),
    )
    key = create_key(engine.db, "channel")
    app = create_app(engine.settings, engine)
    group_sizes: list[int] = []
    open_group = engine.group

    @contextmanager
    def counted_group() -> Iterator[None]:
        before = len(logged_decisions(engine))
        with open_group():
            yield
        group_sizes.append(len(logged_decisions(engine)) - before)

    monkeypatch.setattr(engine, "group", counted_group)
    body = {"customer_id": "c-1", "channel": "app_banner", "context": ADULT, "limit": 1}

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            headers = {"Authorization": f"Bearer {key}"}
            return await asyncio.gather(
                *(client.post("/v1/decisions", json=body, headers=headers) for _ in range(6))
            )

    responses = run(scenario())
    assert [r.status_code for r in responses] == [200] * 6
    assert sum(len(r.json()["offers"]) for r in responses) == 2
    assert group_sizes and max(group_sizes) > 1  # some decisions did commit together
    assert len(logged_decisions(engine)) == 6 and len(recorded_contacts(engine)) == 2
    engine.db.dispose()
