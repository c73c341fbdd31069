"""Sample streams: one producer (a driver), any number of subscribers.

Each subscriber has its own bounded buffer with an explicit overflow policy:
`keep` (keep every sample up to `maxlen`, then drop the oldest and count it) for F/T
and suction pressure, `newest` (conflate to the latest) for depth frames. `publish`
never blocks the driver; a slow consumer only loses its own oldest samples.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Generic, Literal, TypeVar

import anyio
import structlog

T = TypeVar("T")
log = structlog.get_logger("streams")
Overflow = Literal["keep", "newest"]


class Subscription(Generic[T]):
    """An async iterator over the samples published after it was created."""

    def __init__(self, topic: Topic[T], maxlen: int, overflow: Overflow) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be >= 1, got {maxlen}")
        self.topic = topic
        self.overflow = overflow
        self._buf: deque[T] = deque(maxlen=1 if overflow == "newest" else maxlen)
        self._ready = anyio.Event()
        self.dropped = 0
        self.closed = False

    def _push(self, item: T) -> None:
        if len(self._buf) == self._buf.maxlen:
            self.dropped += 1
        self._buf.append(item)
        self._ready.set()

    def pending(self) -> int:
        return len(self._buf)

    def drain(self) -> list[T]:
        """Every sample waiting, oldest first, without blocking."""
        items = list(self._buf)
        self._buf.clear()
        return items

    async def receive(self) -> T:
        """The next sample; `anyio.EndOfStream` once the topic is closed and drained."""
        while not self._buf:
            if self.closed:
                raise anyio.EndOfStream
            self._ready = anyio.Event()
            await self._ready.wait()
        return self._buf.popleft()

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    def close(self) -> None:
        self.topic._unsubscribe(self)
        self._end()

    def _end(self) -> None:
        self.closed = True
        self._ready.set()


class Topic(Generic[T]):
    """A named stream of samples fanned out to subscribers."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._subs: list[Subscription[T]] = []
        self._taps: list[Callable[[T], None]] = []
        self.published = 0
        self.tap_errors = 0
        self.closed = False

    def subscribe(self, maxlen: int = 4096, overflow: Overflow = "keep") -> Subscription[T]:
        sub = Subscription(self, maxlen, overflow)
        if self.closed:
            sub._end()
        else:
            self._subs.append(sub)
        return sub

    @contextmanager
    def subscription(self, maxlen: int = 4096, overflow: Overflow = "keep") -> Iterator[Subscription[T]]:
        sub = self.subscribe(maxlen, overflow)
        try:
            yield sub
        finally:
            sub.close()

    def add_tap(self, tap: Callable[[T], None]) -> None:
        """Call `tap(item)` synchronously on every publish, before any subscriber wakes.

        For reflexes (the force guard) that must not wait for a task switch; a tap must
        be quick and must not raise.
        """
        self._taps.append(tap)

    def remove_tap(self, tap: Callable[[T], None]) -> None:
        if tap in self._taps:
            self._taps.remove(tap)

    def publish(self, item: T) -> None:
        self.published += 1
        for tap in self._taps:
            try:
                tap(item)
            except Exception as exc:  # a broken tap must not kill the driver that publishes
                self.tap_errors += 1
                log.error("stream tap raised", topic=self.name, tap=getattr(tap, "__qualname__", repr(tap)),
                          error=f"{type(exc).__name__}: {exc}", total=self.tap_errors)
        for sub in self._subs:
            sub._push(item)

    def close(self) -> None:
        """End every subscription (after they drain what they hold)."""
        self.closed = True
        for sub in self._subs:
            sub._end()
        self._subs.clear()

    def _unsubscribe(self, sub: Subscription[T]) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
