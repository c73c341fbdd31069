"""The force guard: trips once per arming, halts before reporting."""

from __future__ import annotations

from dataclasses import dataclass

import anyio
import anyio.lowlevel
import pytest

from cellctl.runtime.reflex import ForceGuard, Trip
from drivers.streams import Topic
from statecharts.engine import VirtualClock


@dataclass
class Sample:
    force_magnitude: float


def test_guard_halts_then_reports_once_per_arming_and_ignores_samples_when_disarmed() -> None:
    order: list[str] = []
    trips: list[Trip] = []

    async def halt() -> None:
        order.append("halt")

    def report(trip: Trip) -> None:
        order.append("report")
        trips.append(trip)

    guard = ForceGuard(halt, report)
    topic: Topic[Sample] = Topic("ft")
    topic.add_tap(guard.tap)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(guard.run)
            topic.publish(Sample(100.0))  # disarmed: ignored
            guard.arm(20.0)
            for f in (5.0, 19.9, 25.0, 30.0):  # trips on 25, not again on 30
                topic.publish(Sample(f))
            await anyio.sleep(0.01)
            assert not guard.armed
            guard.arm(20.0)
            topic.publish(Sample(21.0))
            await anyio.sleep(0.01)
            tg.cancel_scope.cancel()

    VirtualClock().run(main)
    assert order == ["halt", "report", "halt", "report"]
    assert [t.sample.force_magnitude for t in trips] == [25.0, 21.0]
    assert all(t.halted_at >= t.detected_at for t in trips)


def test_guard_rejects_bad_limits() -> None:
    guard = ForceGuard(lambda: anyio.lowlevel.checkpoint())
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="force limit"):
            guard.arm(bad)


def test_a_failing_halt_is_logged_and_the_trip_still_reported() -> None:
    trips: list[Trip] = []

    async def broken_halt() -> None:
        raise ConnectionError("stop path down")

    guard = ForceGuard(broken_halt, trips.append)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(guard.run)
            guard.arm(10.0)
            guard.tap(Sample(11.0))
            await anyio.sleep(0.01)
            tg.cancel_scope.cancel()

    VirtualClock().run(main)
    assert len(trips) == 1 and guard.trips == 1
