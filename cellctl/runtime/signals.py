"""SIGINT and SIGTERM for `cellctl run`: who sent them decides whether a second one aborts.

`timeout -s TERM` signals the child and then its process group: one stop arrives twice, 0.4 ms apart, from
the same sender. A terminal's Ctrl-C comes from the kernel, once per key press. So the first signal is a
PackML stop; a later one aborts only if it is a terminal's Ctrl-C or comes after `grace_s`; otherwise it is
the same stop again and is ignored (and logged).

Python's signal handlers do not see who sent a signal, so `SignalListener.install()` blocks SIGINT and
SIGTERM in the calling thread (call it first, before any other thread starts: threads inherit the mask) and
a thread takes them with `sigwaitinfo`, which gives the sender. Signals that come before the controller
listens wait in the queue; none kills the process before its log is closed.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})
SI_KERNEL = 0x80  # si_code of a signal the kernel sent (the tty driver for Ctrl-C)
Decision = Literal["stop", "abort", "ignore"]


@dataclass(frozen=True, slots=True)
class StopSignal:
    signo: int
    code: int  # si_code: SI_USER (0) for kill(), SI_KERNEL for a terminal's Ctrl-C
    pid: int  # the sender (0 for the kernel)
    t: float  # time.monotonic() when taken

    @property
    def name(self) -> str:
        return signal.Signals(self.signo).name

    @property
    def from_terminal(self) -> bool:
        return self.signo == signal.SIGINT and self.code == SI_KERNEL

    def describe(self) -> str:
        return f"{self.name} from {'the terminal' if self.from_terminal else f'pid {self.pid}'}"


class StopPolicy:
    """The first signal stops; a second aborts if it is a terminal's Ctrl-C or comes `grace_s` after the first."""

    def __init__(self, grace_s: float = 1.0) -> None:
        self.grace_s = grace_s
        self.first: StopSignal | None = None

    def decide(self, sig: StopSignal) -> Decision:
        if self.first is None:
            self.first = sig
            return "stop"
        if (sig.from_terminal and self.first.from_terminal) or sig.t - self.first.t >= self.grace_s:
            return "abort"
        return "ignore"


class SignalListener:
    """Takes SIGINT/SIGTERM in a thread of its own and hands each to `deliver` (on the event loop, once attached)."""

    def __init__(self) -> None:
        self._pending: list[StopSignal] = []
        self._lock = threading.Lock()
        self._deliver: Callable[[StopSignal], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._take, name="stop-signals", daemon=True)

    @classmethod
    def install(cls) -> SignalListener:
        """Block the signals in this thread (first thing in main, before other threads exist) and listen."""
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        listener = cls()
        listener._thread.start()
        return listener

    def attach(self, deliver: Callable[[StopSignal], None]) -> None:
        """From the event loop's thread: deliver signals (those that came already first) to `deliver` there."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._deliver, self._loop = deliver, loop
            pending, self._pending = self._pending, []
        for sig in pending:
            deliver(sig)

    def detach(self) -> None:
        with self._lock:
            self._deliver = self._loop = None

    def _take(self) -> None:
        while True:  # a daemon thread: it ends with the process
            info = signal.sigwaitinfo(SIGNALS)
            sig = StopSignal(info.si_signo, info.si_code, info.si_pid, time.monotonic())
            with self._lock:
                if self._loop is None or self._deliver is None:
                    self._pending.append(sig)
                    continue
                loop, deliver = self._loop, self._deliver
            try:
                loop.call_soon_threadsafe(deliver, sig)
            except RuntimeError:  # the loop closed meanwhile
                with self._lock:
                    self._pending.append(sig)


_process_listener: SignalListener | None = None


def install_for_process() -> SignalListener:
    """`cellctl run`'s entry: install the process's listener (first thing, before imports start threads)."""
    global _process_listener
    if _process_listener is None:
        _process_listener = SignalListener.install()
    return _process_listener


def process_listener() -> SignalListener | None:
    return _process_listener
