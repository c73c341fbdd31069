"""Clocks: which event loop a chart runs on, and so how time passes.

The engine reads time through anyio (the running loop's clock), so a clock here is
"how to run the loop". `RealClock` runs a normal asyncio loop. `VirtualClock` runs a
`looptime` loop: time stands still while any task has work to do and jumps to the
next deadline when all are idle, so an hour of timers passes in milliseconds and a
run repeats exactly (the behaviour of trio's `MockClock(autojump_threshold=0)`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar, TypeVarTuple, Unpack

import anyio
import looptime

from .errors import UnknownClockError

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class Clock(Protocol):
    """Runs an async entry point on an event loop with this clock's notion of time."""

    name: str

    def run(self, fn: Callable[[Unpack[Ts]], Awaitable[T]], *args: *Ts) -> T: ...


def now() -> float:
    """Current time of the running loop (virtual under `VirtualClock`)."""
    return anyio.current_time()


class RealClock:
    """Wall-clock time (a plain asyncio loop)."""

    name = "real"

    def run(self, fn: Callable[[Unpack[Ts]], Awaitable[T]], *args: *Ts) -> T:
        return anyio.run(fn, *args, backend="asyncio")


class VirtualClock:
    """Virtual time starting at `start` seconds; jumps to the next deadline when idle."""

    name = "virtual"

    def __init__(self, start: float = 0.0) -> None:
        self.start = start

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return looptime.new_event_loop(start=self.start)

    def run(self, fn: Callable[[Unpack[Ts]], Awaitable[T]], *args: *Ts) -> T:
        return anyio.run(fn, *args, backend="asyncio", backend_options={"loop_factory": self.new_event_loop})


def clock_named(name: str) -> Clock:
    if name == "real":
        return RealClock()
    if name == "virtual":
        return VirtualClock()
    raise UnknownClockError(f"unknown clock {name!r}: use 'real' or 'virtual'")
