"""The force reflex: every F/T sample is checked; a crossing halts the robot at once.

The check runs as a synchronous tap on the sensor topic (no queue in between); a
crossing wakes one dedicated task that sends the halt on the robot's stop path and
only then reports the trip (to the chart, as an event). Safety never waits in a
chart's event queue.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import anyio
import structlog
from anyio.abc import TaskStatus

log = structlog.get_logger("reflex")

# CPython hands the GIL between threads every 5 ms by default, so a perception job in
# a worker thread can hold the event loop (and the reflex) for that long.
REFLEX_SWITCH_INTERVAL_S = 0.0005


def tune_interpreter_for_reflex() -> float:
    """Shorten the GIL switch interval for the reflex's latency; returns the old value."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(REFLEX_SWITCH_INTERVAL_S)
    return old


class ForceSample(Protocol):
    @property
    def force_magnitude(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Trip:
    """A limit crossing: the sample, the limit, and when the guard saw it (perf_counter)."""

    sample: ForceSample
    limit_n: float
    detected_at: float
    halted_at: float = math.nan


class ForceGuard:
    """Arm with a limit for each force-guarded motion; disarmed it ignores samples."""

    def __init__(self, halt: Callable[[], Awaitable[object]], on_trip: Callable[[Trip], None] | None = None) -> None:
        self._halt = halt
        self._on_trip = on_trip
        self._limit: float | None = None
        self._pending: Trip | None = None
        self._wake = anyio.Event()
        self._handled: anyio.Event | None = None  # created by run(): set after each trip's halt went out
        self.trips = 0
        self._tripped = 0

    @property
    def armed(self) -> bool:
        return self._limit is not None

    def arm(self, limit_n: float) -> None:
        if not (math.isfinite(limit_n) and limit_n > 0):
            raise ValueError(f"force limit must be a positive number of newtons, got {limit_n!r}")
        self._limit = limit_n

    def disarm(self) -> None:
        self._limit = None

    def tap(self, sample: ForceSample) -> None:
        """Called on every sample (install with `topic.add_tap(guard.tap)`)."""
        limit = self._limit
        if limit is not None and sample.force_magnitude > limit:
            self._limit = None  # one trip per arming: the halt is on its way
            self._pending = Trip(sample, limit, time.perf_counter())
            self._tripped += 1
            self._wake.set()

    async def idle(self) -> None:
        """Wait until every trip so far has had its halt sent (returns at once when none is pending)."""
        while self._tripped > self.trips and self._handled is not None:
            await self._handled.wait()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self._handled = anyio.Event()
        task_status.started()
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            trip = self._pending
            assert trip is not None
            try:
                await self._halt()
            except Exception as exc:  # the halt failed: still report, loudly
                log.error("halt after force limit failed", error=str(exc), limit_n=trip.limit_n)
            trip = Trip(trip.sample, trip.limit_n, trip.detected_at, time.perf_counter())
            self.trips += 1
            log.warning("force limit crossed: robot halted", limit_n=trip.limit_n,
                        force_n=round(trip.sample.force_magnitude, 3),
                        reaction_ms=round((trip.halted_at - trip.detected_at) * 1e3, 3))
            if self._on_trip is not None:
                self._on_trip(trip)
            self._handled.set()
            self._handled = anyio.Event()
