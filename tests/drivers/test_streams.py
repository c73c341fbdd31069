"""Sample streams: fan-out, overflow policies, close."""

from __future__ import annotations

import anyio
import pytest

from drivers.streams import Topic
from statecharts.engine import VirtualClock


def test_keep_policy_keeps_every_sample_up_to_maxlen_then_counts_drops() -> None:
    topic: Topic[int] = Topic("ft")
    fast = topic.subscribe(maxlen=100)
    small = topic.subscribe(maxlen=3)
    for i in range(10):
        topic.publish(i)
    assert fast.drain() == list(range(10)) and fast.dropped == 0
    assert small.drain() == [7, 8, 9] and small.dropped == 7


def test_newest_policy_conflates() -> None:
    topic: Topic[str] = Topic("frames")
    sub = topic.subscribe(overflow="newest")
    for name in ("f1", "f2", "f3"):
        topic.publish(name)
    assert sub.drain() == ["f3"] and sub.dropped == 2


def test_async_iteration_ends_when_topic_closes() -> None:
    topic: Topic[int] = Topic("p")
    got: list[int] = []

    async def main() -> None:
        sub = topic.subscribe()
        async with anyio.create_task_group() as tg:

            async def consume() -> None:
                async for item in sub:
                    got.append(item)

            tg.start_soon(consume)
            for i in range(5):
                topic.publish(i)
                await anyio.sleep(0.001)
            topic.close()

    VirtualClock().run(main)
    assert got == [0, 1, 2, 3, 4]


def test_closed_subscription_stops_receiving_and_bad_maxlen_is_rejected() -> None:
    topic: Topic[int] = Topic("p")
    with topic.subscription() as sub:
        topic.publish(1)
    topic.publish(2)
    assert sub.drain() == [1] and sub.closed
    with pytest.raises(ValueError, match="maxlen"):
        topic.subscribe(maxlen=0)


def test_taps_see_every_sample_before_subscribers() -> None:
    topic: Topic[int] = Topic("ft")
    seen: list[tuple[str, int]] = []
    sub = topic.subscribe()
    topic.add_tap(lambda x: seen.append(("tap", x)))
    topic.publish(1)
    seen.extend(("sub", x) for x in sub.drain())
    assert seen == [("tap", 1), ("sub", 1)]


def test_a_raising_tap_is_counted_and_does_not_stop_publishing() -> None:
    topic: Topic[int] = Topic("ft")
    sub = topic.subscribe()

    def broken(item: int) -> None:
        raise ZeroDivisionError("bad tap")

    topic.add_tap(broken)
    topic.publish(1)
    topic.publish(2)
    assert sub.drain() == [1, 2] and topic.tap_errors == 2
