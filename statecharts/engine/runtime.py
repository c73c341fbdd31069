"""`ChartRunner`: a chart as an anyio task, with activities, timers and a trace."""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup, TaskStatus

from .compiled import Chart, Node
from .context import ActivityContext, D
from .errors import ChartFinishedError, UnknownStateError
from .events import ERROR_ACTIVITY, ActivityFailure, Event
from .interpreter import Interpreter
from .model import Activity
from .trace import TraceHook, TraceKind, TraceRecord


class _Running:
    """One started activity: its cancel scope and context."""

    __slots__ = ("ctx", "scope")

    def __init__(self, scope: anyio.CancelScope, ctx: ActivityContext) -> None:
        self.scope = scope
        self.ctx = ctx


class ChartRunner(Generic[D]):
    """Runs one chart: `await tg.start(runner.run)`, then `runner.post(...)`.

    External events are processed one macrostep at a time in posting order; timers
    (`after`) and delayed sends (`ctx.send(..., delay=...)`) fire on the event loop's clock,
    which is virtual under `VirtualClock`. A timer dies with its state, a delayed send with
    the chart (when `run` returns). The runner is the interpreter's `Host`: it starts a state's
    activities and arms its timers when the interpreter says the state started, and cancels them
    when it stops (the lifecycle is told in `model.State` and `model.Activity`).
    """

    def __init__(
        self,
        chart: Chart,
        *,
        data: D = None,  # type: ignore[assignment]
        trace: TraceHook | Sequence[TraceHook] = (),
        burst: int = 64,
    ) -> None:
        hooks = (trace,) if callable(trace) else tuple(trace)
        self.chart = chart
        self._hooks = hooks
        self.interpreter: Interpreter[D] = Interpreter(chart, self, data, self._dispatch if hooks else None)
        self._queue: deque[Event] = deque()
        self._wakeup: anyio.Event | None = None
        self._idle: anyio.Event | None = None
        # deadline, seq, state, generation, timer event; state -1: the delayed send `seq` in _sends
        self._timers: list[tuple[float, int, int, int, str]] = []
        self._timer_seq = 0
        self._dead_timers = 0  # heap entries of timers disarmed or sends cancelled, not yet due
        self._sends: dict[int, tuple[str | None, Event]] = {}  # seq -> (send id, event), while pending
        self._send_ids: dict[str, list[int]] = {}  # send id -> seqs, for cancel
        self._activities: dict[int, list[_Running]] = {}
        self._state_waiters: list[tuple[str, anyio.Event]] = []
        self._tg: TaskGroup | None = None
        self._burst = burst
        self.finished = anyio.Event()

    # -- public ---------------------------------------------------------------------------

    @property
    def configuration(self) -> frozenset[str]:
        return self.interpreter.configuration

    @property
    def final(self) -> str | None:
        """The top-level final state reached, if the chart has terminated."""
        return self.interpreter.final

    @property
    def done_data(self) -> Any:
        """The top-level final state's `donedata` value, once the chart has terminated."""
        return self.interpreter.done_data

    @property
    def pending_sends(self) -> list[tuple[float, str | None, Event]]:
        """Delayed sends not yet due: (due time, send id, event), in the order they will go."""
        due = sorted((t, seq) for t, seq, index, _, _ in self._timers if index < 0 and seq in self._sends)
        return [(t, *self._sends[seq]) for t, seq in due]

    def is_active(self, state_id: str) -> bool:
        return self.interpreter.is_active(state_id)

    def post(self, name: str | Event, data: Any = None) -> None:
        """Queue an external event (never blocks)."""
        self._queue.append(name if isinstance(name, Event) else Event(name, data))
        if self._wakeup is not None:
            self._wakeup.set()

    async def wait_idle(self) -> None:
        """Wait until every posted event has been processed."""
        while self._queue and not self.finished.is_set():
            if self._idle is None:
                self._idle = anyio.Event()
            await self._idle.wait()

    async def wait_for(self, state_id: str) -> None:
        """Wait until `state_id` is active (returns at once if it is)."""
        if state_id not in self.chart.by_id:
            raise UnknownStateError(f"chart {self.chart.name!r} has no state {state_id!r}")
        if not self.is_active(state_id) and not self.finished.is_set():
            done = anyio.Event()
            self._state_waiters.append((state_id, done))
            await done.wait()
        if not self.is_active(state_id):
            raise ChartFinishedError(f"chart {self.chart.name!r} ended in {self.final!r} before {state_id!r}")

    def _wake_state_waiters(self) -> None:
        keep = []
        for state_id, done in self._state_waiters:
            if self.interpreter.is_active(state_id):
                done.set()
            else:
                keep.append((state_id, done))
        self._state_waiters = keep

    async def run(self, *, task_status: TaskStatus[ChartRunner[D]] = anyio.TASK_STATUS_IGNORED) -> str | None:
        """Enter the chart and process events until it reaches a top-level final state."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                self.interpreter.start()
                task_status.started(self)
                await self._loop()
                tg.cancel_scope.cancel()
        finally:
            if self.interpreter.running:
                self.interpreter.stop()
            self._sends.clear()  # pending delayed sends die with the chart (SCXML 6.2)
            self._send_ids.clear()
            self._tg = None
            self.finished.set()
            for _, done in self._state_waiters:
                done.set()
            self._state_waiters.clear()
            if self._idle is not None:
                self._idle.set()
        return self.interpreter.final

    # -- event loop -----------------------------------------------------------------------

    async def _loop(self) -> None:
        interp = self.interpreter
        queue = self._queue
        while interp.running:
            burst = self._burst
            while queue and interp.running:
                interp.process(queue.popleft())
                if self._state_waiters:
                    self._wake_state_waiters()
                burst -= 1
                if not burst:  # let activities and producers run; timers take their turn
                    burst = self._burst
                    await anyio.lowlevel.checkpoint()
                    self._fire_due_timers()
            if not interp.running:
                break
            if self._fire_due_timers():
                continue
            if self._idle is not None:
                self._idle.set()
                self._idle = None
            wakeup = self._wakeup = anyio.Event()
            if self._timers:
                with anyio.CancelScope(deadline=self._timers[0][0]):
                    await wakeup.wait()
            else:
                await wakeup.wait()
            self._wakeup = None

    def _fire_due_timers(self) -> bool:
        timers = self._timers
        now = anyio.current_time()
        fired = False
        while timers and timers[0][0] <= now:
            _, seq, index, gen, name = heapq.heappop(timers)
            if index < 0:
                fired = self._deliver(seq) or fired
            elif self.interpreter.generation(self.chart.states[index]) == gen:
                self._queue.append(Event(name, gen))
                fired = True
        return fired

    def _deliver(self, seq: int) -> bool:
        pending = self._sends.pop(seq, None)
        if pending is None:  # cancelled
            return False
        send_id, event = pending
        if send_id is not None:
            seqs = self._send_ids[send_id]
            seqs.remove(seq)
            if not seqs:
                del self._send_ids[send_id]
        self._queue.append(event)
        return True

    # -- Host -------------------------------------------------------------------------------

    def now(self) -> float:
        return anyio.current_time()

    def schedule(self, event: Event, delay: float, send_id: str | None) -> None:
        self._timer_seq += 1
        seq = self._timer_seq
        heapq.heappush(self._timers, (anyio.current_time() + delay, seq, -1, 0, ""))
        self._sends[seq] = (send_id, event)
        if send_id is not None:
            self._send_ids.setdefault(send_id, []).append(seq)
        if self._wakeup is not None:
            self._wakeup.set()

    def cancel(self, send_id: str) -> None:
        # Its heap entry stays and is skipped when due, as stale timers are, until there are many.
        for seq in self._send_ids.pop(send_id, ()):
            del self._sends[seq]
            self._count_dead(1)

    def _count_dead(self, n: int) -> None:
        """Dead entries are skipped when due; once they are most of the heap (a long after() in a state
        entered often, sends cancelled before they fire), the heap is rebuilt from the live ones."""
        self._dead_timers += n
        if self._dead_timers > 64 and self._dead_timers * 2 > len(self._timers):
            interp, states = self.interpreter, self.chart.states
            self._timers = [
                t for t in self._timers
                if (t[1] in self._sends if t[2] < 0 else interp.generation(states[t[2]]) == t[3])
            ]  # fmt: skip
            heapq.heapify(self._timers)
            self._dead_timers = 0

    def state_started(self, node: Node, generation: int) -> None:
        if node.timers:
            now = anyio.current_time()
            for delay, name in node.timers:
                self._timer_seq += 1
                heapq.heappush(self._timers, (now + delay, self._timer_seq, node.index, generation, name))
            if self._wakeup is not None:
                self._wakeup.set()
        if node.activities:
            assert self._tg is not None
            running = self._activities[node.index] = []
            for act in node.activities:
                ctx = ActivityContext(self.interpreter, act, node.id, self.interpreter.ctx.data)
                handle = _Running(anyio.CancelScope(), ctx)
                running.append(handle)
                if self._hooks:
                    self._record("activity.start", node.id, act.label)
                self._tg.start_soon(self._run_activity, act, node.id, handle, name=f"{node.id}:{act.label}")

    def state_stopped(self, node: Node) -> None:
        # Stale timers are dropped lazily: their generation no longer matches.
        if node.timers:
            self._count_dead(len(node.timers))
        for handle in self._activities.pop(node.index, ()):
            if handle.ctx.live:
                handle.ctx._live = False
                handle.scope.cancel()
                if self._hooks:
                    self._record("activity.stop", node.id, handle.ctx.activity.label, "cancelled")

    async def _run_activity(self, act: Activity, state: str, handle: _Running) -> None:
        if not handle.ctx.live:  # its state was left before this task first ran
            return
        outcome = "done"
        with handle.scope:
            try:
                await act.fn(handle.ctx)
            except Exception as exc:
                outcome = f"error: {type(exc).__name__}: {exc}"
                if handle.ctx.live:
                    self.post(Event(ERROR_ACTIVITY, ActivityFailure(state, act.label, exc)))
        if handle.ctx.live:  # ended by itself (not cancelled by an exit)
            handle.ctx._live = False
            if self._hooks:
                self._record("activity.stop", state, act.label, outcome)

    # -- trace ------------------------------------------------------------------------------

    def _dispatch(self, record: TraceRecord) -> None:
        for hook in self._hooks:
            hook(record)

    def _record(self, kind: TraceKind, state: str, label: str, outcome: str = "") -> None:
        detail = f"{label} ({outcome})" if outcome else label
        self._dispatch(TraceRecord(anyio.current_time(), self.chart.name, kind, state=state, detail=detail))


@asynccontextmanager
async def running(
    chart: Chart, *, data: D = None, trace: TraceHook | Sequence[TraceHook] = ()  # type: ignore[assignment]
) -> AsyncIterator[ChartRunner[D]]:
    """`async with running(chart) as runner:` runs the chart for the block's duration."""
    runner: ChartRunner[D] = ChartRunner(chart, data=data, trace=trace)
    async with anyio.create_task_group() as tg:
        await tg.start(runner.run)
        try:
            yield runner
        finally:
            tg.cancel_scope.cancel()
