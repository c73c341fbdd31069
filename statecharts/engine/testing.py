"""For the tests of charts: a synchronous host, event sequence drivers and predicates.

Two ways to drive a chart in a test:

- **Synchronously**, through the semantics alone: `start(chart, data)` gives an `Interpreter` on a
  `FakeHost` (external posts, delayed sends, cancels and the states started and stopped are
  recorded; no activity runs) and its trace; `drive(interp, "a", "b")` processes events one
  macrostep each and returns the `Macrostep`s; `advance(interp, 2.0)` lets time pass, firing the
  after() timers and delayed sends that fall due.
- **On the runtime**, with activities, timers and delayed sends: `run_script(chart, ["go", 2.0,
  "stop"])` runs a `ChartRunner` on virtual time, posting each name (and waiting until it was
  processed) and letting each number of seconds pass; it returns the trace and the configuration
  after each step.

Predicates, for `assert` (each is a plain bool; pass a `Macrostep` or several):

    configuration_equals(interp_or_runner, ids)      exactly these states are active
    configuration_contains(interp_or_runner, *ids)   at least these are
    state_entered(steps, id) / state_exited(steps, id)
    transition_taken(steps, source, target=None, event=None)
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from .clock import VirtualClock
from .compiled import Chart, Node
from .context import D
from .events import Event
from .interpreter import Interpreter, Macrostep
from .runtime import ChartRunner
from .trace import TraceRecorder

__all__ = [
    "FakeHost",
    "Run",
    "advance",
    "configuration_contains",
    "configuration_equals",
    "drive",
    "run_script",
    "start",
    "state_entered",
    "state_exited",
    "transition_taken",
]


class FakeHost:
    """A synchronous `Host` that records what the interpreter asks of it; time is `t`, set by hand.

    `external`: the events posted (`ctx.send` without a delay), never processed by themselves;
    `scheduled`: the delayed sends as (event, delay, send id); `cancelled`: the send ids cancelled;
    `started` / `stopped`: the ids of the states the interpreter started (at the end of a macrostep:
    their activities and timers begin) and stopped, in order. No activity runs. Timers and delayed
    sends are kept on a clock of their own that only `advance(interp, seconds)` moves.
    """

    def __init__(self, t: float = 0.0) -> None:
        self.t = t
        self.external: list[Event] = []
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.scheduled: list[tuple[Event, float, str | None]] = []
        self.cancelled: list[str] = []
        # due time, seq, event, the timer's state and generation (None, 0: a delayed send)
        self._due: list[tuple[float, int, Event, Node | None, int]] = []
        self._sends: dict[int, str | None] = {}  # seq -> send id of the delayed sends pending
        self._seq = 0

    def now(self) -> float:
        return self.t

    def post(self, event: Event) -> None:
        self.external.append(event)

    def schedule(self, event: Event, delay: float, send_id: str | None) -> None:
        self.scheduled.append((event, delay, send_id))
        self._seq += 1
        heapq.heappush(self._due, (self.t + delay, self._seq, event, None, 0))
        self._sends[self._seq] = send_id

    def cancel(self, send_id: str) -> None:
        self.cancelled.append(send_id)
        for seq in [seq for seq, sid in self._sends.items() if sid == send_id]:
            del self._sends[seq]

    def state_started(self, node: Node, generation: int) -> None:
        self.started.append(node.id)
        for delay, name in node.timers:
            self._seq += 1
            heapq.heappush(self._due, (self.t + delay, self._seq, Event(name, generation), node, generation))

    def state_stopped(self, node: Node) -> None:
        self.stopped.append(node.id)  # its timers go stale: their generation no longer matches

    def _pop_due(self, interp: Interpreter[Any], until: float) -> tuple[float, Event] | None:
        while self._due and self._due[0][0] <= until:
            due, seq, event, node, gen = heapq.heappop(self._due)
            if node is None:
                if self._sends.pop(seq, False) is not False:
                    return due, event
            elif interp.generation(node) == gen:
                return due, event
        return None


def start(chart: Chart, data: D = None) -> tuple[Interpreter[D], TraceRecorder, FakeHost]:  # type: ignore[assignment]
    """A started interpreter of `chart` on a fresh `FakeHost`, with a `TraceRecorder` as its trace."""
    rec = TraceRecorder()
    host = FakeHost()
    interp: Interpreter[D] = Interpreter(chart, host, data, rec)
    interp.start()
    return interp, rec, host


def drive(interp: Interpreter[Any], *events: str | Event) -> list[Macrostep]:
    """Process `events` in order (names or `Event`s), one macrostep each; what each did."""
    return [interp.process(e if isinstance(e, Event) else Event(e)) for e in events]


def advance(interp: Interpreter[Any], seconds: float) -> list[Macrostep]:
    """Let `seconds` pass on the interpreter's `FakeHost`: each after() timer and delayed send that
    falls due is processed at its due time, in due order (sends due together in send order), as
    `ChartRunner` would; a timer of a state left meanwhile, or a cancelled send, is dropped. The
    host's `external` posts are not processed (drive them). Returns the macrosteps."""
    host = interp.host
    assert isinstance(host, FakeHost), f"advance() needs an interpreter on a FakeHost, not {type(host).__name__}"
    until = host.t + seconds
    steps = []
    while (due := host._pop_due(interp, until)) is not None:
        host.t, event = due
        steps.append(interp.process(event))
    host.t = until
    return steps


class _HasConfiguration(Protocol):
    @property
    def configuration(self) -> frozenset[str]: ...


def configuration_equals(subject: _HasConfiguration, ids: Iterable[str]) -> bool:
    """Exactly the states `ids` are active (all of them: ancestors and the root included)."""
    return subject.configuration == frozenset(ids)


def configuration_contains(subject: _HasConfiguration, *ids: str) -> bool:
    """Every state of `ids` is active."""
    return frozenset(ids) <= subject.configuration


def _steps(steps: Macrostep | Iterable[Macrostep]) -> Iterable[Macrostep]:
    return (steps,) if isinstance(steps, Macrostep) else steps


def state_entered(steps: Macrostep | Iterable[Macrostep], state_id: str) -> bool:
    """`state_id` was entered in one of `steps`."""
    return any(n.id == state_id for s in _steps(steps) for n in s.entered)


def state_exited(steps: Macrostep | Iterable[Macrostep], state_id: str) -> bool:
    """`state_id` was exited in one of `steps`."""
    return any(n.id == state_id for s in _steps(steps) for n in s.exited)


def transition_taken(
    steps: Macrostep | Iterable[Macrostep], source: str, target: str | None = None, event: str | None = None
) -> bool:
    """A transition of state `source` was taken in one of `steps`, to `target` (one of its targets)
    if given and on the descriptor `event` if given (a timer's event for an after() transition)."""
    for step in _steps(steps):
        for edge in step.transitions:
            if edge.source.id != source or (event is not None and edge.event != event):
                continue
            if target is None or any(t.id == target for t in edge.targets):
                return True
    return False


@dataclass(frozen=True, slots=True)
class Run:
    """What `run_script` saw: `configurations[0]` after the start, then one after each step."""

    trace: TraceRecorder
    configurations: list[frozenset[str]]
    final: str | None
    done_data: Any


def run_script(
    chart: Chart, script: Sequence[str | Event | float], *, data: Any = None, start_time: float = 0.0
) -> Run:
    """Run `chart` on a `ChartRunner` on virtual time (activities, timers and delayed sends run):
    each name or `Event` of `script` is posted and waited on until processed, each number lets that
    many (virtual) seconds pass. Stops at the end of the script, or earlier if the chart ends."""
    rec = TraceRecorder()
    configurations: list[frozenset[str]] = []
    runner: ChartRunner[Any] = ChartRunner(chart, data=data, trace=rec)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(runner.run)
            configurations.append(runner.configuration)
            for step in script:
                if runner.finished.is_set():
                    break
                if isinstance(step, (int, float)) and not isinstance(step, bool):
                    await anyio.sleep(step)
                else:
                    runner.post(step if isinstance(step, Event) else Event(str(step)))
                    await runner.wait_idle()
                configurations.append(runner.configuration)
            tg.cancel_scope.cancel()

    VirtualClock(start_time).run(main)
    return Run(rec, configurations, runner.final, runner.done_data)
