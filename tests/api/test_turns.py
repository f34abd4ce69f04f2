"""ArrivalOrder: one holder at a time, first come first served, released after the loop polls."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from api.turns import ArrivalOrder

T = TypeVar("T")


def run(scenario: Coroutine[Any, Any, T]) -> T:
    """A lock that never passes on fails the test instead of hanging it."""
    return asyncio.run(asyncio.wait_for(scenario, timeout=5))


async def _hold(turns: ArrivalOrder, name: str, log: list[str], inside: list[str]) -> None:
    async with turns:
        inside.append(name)
        log.append(f"enter {name}")
        assert inside == [name], f"{inside} held the lock together"
        await asyncio.sleep(0)  # a holder that yields keeps the lock
        inside.remove(name)


async def _holder_and_waiters(
    turns: ArrivalOrder, log: list[str], inside: list[str], *names: str
) -> list[asyncio.Task[None]]:
    """A task holding ``turns``, then one queued behind it for each of ``names``, in order."""
    holder = asyncio.create_task(_hold(turns, "holder", log, inside))
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(_hold(turns, name, log, inside)) for name in names]
    await asyncio.sleep(0)
    return [holder, *waiters]


def test_requests_ready_together_take_turns_in_later_iterations_of_the_loop() -> None:
    """What a request read in the holder's poll is served only after the loop's next poll
    (here: a callback the holder schedules), which asyncio.Lock would not do."""

    async def scenario() -> list[str]:
        turns = ArrivalOrder()
        log: list[str] = []

        async def first() -> None:
            async with turns:
                log.append("enter first")
                asyncio.get_running_loop().call_soon(log.append, "next poll")

        async def second() -> None:
            async with turns:
                log.append("enter second")

        await asyncio.gather(first(), second())
        return log

    assert run(scenario()) == ["enter first", "next poll", "enter second"]


def test_waiters_are_served_in_arrival_order_one_at_a_time() -> None:
    async def scenario() -> list[str]:
        turns = ArrivalOrder()
        log: list[str] = []
        inside: list[str] = []
        tasks = []
        for i in range(6):
            tasks.append(asyncio.create_task(_hold(turns, f"w{i}", log, inside)))
            await asyncio.sleep(0)  # w0 holds; the others queue in this order
        late = asyncio.create_task(_hold(turns, "late", log, inside))
        await asyncio.gather(*tasks, late)
        return log

    assert run(scenario()) == [f"enter w{i}" for i in range(6)] + ["enter late"]


def test_a_cancelled_waiter_neither_blocks_nor_takes_a_turn() -> None:
    async def scenario() -> tuple[list[str], bool]:
        turns = ArrivalOrder()
        log: list[str] = []
        inside: list[str] = []
        holder, cancelled, after = await _holder_and_waiters(
            turns, log, inside, "cancelled", "after"
        )
        cancelled.cancel()
        await asyncio.gather(holder, after)
        async with turns:  # free again: taken at once
            log.append("enter again")
        return log, cancelled.cancelled()

    log, was_cancelled = run(scenario())
    assert was_cancelled
    assert log == ["enter holder", "enter after", "enter again"]


def test_a_waiter_cancelled_after_it_was_given_the_lock_passes_it_on() -> None:
    async def scenario() -> list[str]:
        turns = ArrivalOrder()
        log: list[str] = []
        inside: list[str] = []
        holder, given, after = await _holder_and_waiters(turns, log, inside, "given", "after")
        await holder
        await asyncio.sleep(0)  # the hand-over has run: "given" holds the lock, not yet woken
        given.cancel()
        await after
        return log

    assert run(scenario()) == ["enter holder", "enter after"]
