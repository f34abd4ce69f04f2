"""Blocking work on the event loop, one request at a time, in the order the requests arrived."""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType


class ArrivalOrder:
    """An async lock that is released only once the loop has polled its sockets again.

    The decision route runs ``engine.decide`` on the event loop: it blocks for a fraction of a
    millisecond, and the decisions of one process queue on the GIL and on the database's write
    lock anyway. The loop runs back to back every request it read in one poll, so a request
    that arrives meanwhile waits for all of them, and then for all of those it is polled with:
    at 8 connections a few requests waited twice the mean (the p99 was twice the p50).
    ``asyncio.Lock`` does not help: it is free again before the next of those requests runs.
    This lock passes itself on with ``call_soon``, after the loop's next poll, so each request
    read in one poll takes its turn in a later iteration of the loop, the new arrivals queue
    behind them, and the queue is first come, first served.
    """

    def __init__(self) -> None:
        self._busy = False
        self._waiting: deque[asyncio.Future[None]] = deque()

    async def __aenter__(self) -> None:
        if not self._busy:
            self._busy = True
            return
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            # A waiter cancelled in the queue is skipped by ``_hand_over``; one cancelled after
            # it was given the lock passes it on.
            if not turn.cancelled():
                self._hand_over()
            raise

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        asyncio.get_running_loop().call_soon(self._hand_over)

    def _hand_over(self) -> None:
        while self._waiting:  # the lock stays taken while it passes to the next waiter
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self._busy = False
