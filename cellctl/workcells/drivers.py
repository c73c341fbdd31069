"""The Workcell port over the real drivers: PLC (OPC UA), robot and tool I/O (Modbus TCP), F/T (UDP).

Motions become robot primitives at pod-frame targets (`drivers.pod_frame`, from the pod the PLC presents).
While a primitive runs, guards watch the sensors and halt the robot on the robot's stop path:
- force: the reflex `ForceGuard` taps every F/T sample (no queue in between); a stale F/T stream also halts;
- vacuum: suction pressure above the threshold while an item is held;
- scene: 10 Hz depth frames of the bin changing more than the motion allows.
After a halt the latch is released and a force trip backs off (retract). Device trouble comes back as a
`MotionOutcome`; nothing here raises into the charts. Perception runs in a worker thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import anyio.lowlevel
import numpy as np
import structlog
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from pydantic import ValidationError

from cellctl.eventlog.recorder import Recorder
from cellctl.runtime.reflex import ForceGuard, Trip
from cellctl.runtime.reflex_process import ReflexError, ReflexProcess, ReflexTrip
from drivers import robot_map as rm
from drivers.ft import FTSensor, StreamState, StreamStatus, Wrench
from drivers.plc import PlcClient, PlcError, PlcStatus
from drivers.plc_nodes import InterlockState
from drivers.plc_nodes import ItemArrival as PlcArrival
from drivers.pod_frame import PodFrame
from drivers.robot import EventKind, Outcome, PrimitiveResult, RobotCommError, RobotDriver, RobotEvent
from drivers.robot_map import FaultCode
from drivers.streams import Subscription
from perception.change import depth_change
from statecharts.workcell import (
    Eligibility,
    EligibilityClass,
    Interlocks,
    ItemArrival,
    Motion,
    MotionOutcome,
    MotionResult,
    PickOrder,
    PickPlan,
    StowOption,
    StowPlan,
    TaskReport,
    Verification,
)

log = structlog.get_logger("drivercell")

_NOT_STARTED = {FaultCode.NOT_CONNECTED, FaultCode.PEER_HEARTBEAT_LOST, FaultCode.DRIVER_BUSY}
# One cause text per device trouble (the cell chart compares faults by it): the variable detail goes to the log.
NO_FT = "no live F/T stream: no force-guarded motion without it"
NO_REFLEX = "force reflex not ready: no force-guarded motion without it"
EXTERNAL_HALT_TEXT = "halted externally: HALT latched by someone else (operator panel, safety PLC, another master)"

class Perception(Protocol):
    """Perception and planning on the EOAT camera's frames (synchronous: run in a worker thread)."""

    def stow_plan(self, item: ItemArrival, exclude_bins: tuple[str, ...] = ()) -> StowPlan: ...
    def verify(self, item: ItemArrival, option: StowOption) -> Verification: ...
    def eligibility(self, order: PickOrder) -> Eligibility: ...
    def pick_plan(self, order: PickOrder) -> PickPlan: ...
    def motion_result(self, motion: Motion, result: MotionResult) -> None: ...  # on the loop, after each motion

class FrameSource(Protocol):
    """Depth frames (m) of one bin for change detection while a motion is watched."""

    noise_k: float

    def frame(self, bin_index: int) -> np.ndarray: ...

class OrderSource(Protocol):
    async def next_order(self, timeout_s: float) -> PickOrder | None: ...

@dataclass(frozen=True)
class DriverCellConfig:
    tote_xyz_mm: tuple[float, float, float] = (-400.0, 300.0, 300.0)
    speed_scale: float = 0.5
    vacuum_settle_s: float = 0.1  # a held move starts with the cup sealed; ignore the first samples
    frame_period_s: float = 0.1
    ack_timeout_s: float = 2.0
    # A guarded motion whose F/T stream is not live waits this long for it (a stalled loop, a burst of lost
    # datagrams) before it is refused: it waits, it never starts blind.
    ft_live_wait_s: float = 1.0

class DriverWorkcell:
    """`Workcell` over `PlcClient`, `RobotDriver`, `FTSensor` and a perception stack."""

    def __init__(
        self,
        *,
        plc: PlcClient,
        robot: RobotDriver,
        ft: FTSensor,
        perception: Perception,
        frames: FrameSource,
        orders: OrderSource | None = None,
        recorder: Recorder | None = None,
        config: DriverCellConfig | None = None,
        reflex: ReflexProcess | None = None,
        on_item: Callable[[ItemArrival], Awaitable[None]] | None = None,
    ) -> None:
        self.plc, self.robot, self.ft = plc, robot, ft
        self.perception, self.frames, self.orders = perception, frames, orders
        self.recorder = recorder
        self.on_item = on_item  # an arrival taken, before the PLC hears it: the task journal (cellctl.fc)
        # Is the arrival still at the pick-up point (the PLC's AtPickup, `cellctl.fc.recovery.Pickup`)? False: a
        # record the item has left (a restarted controller re-reads the ArrivalLog), skipped: neither journalled
        # nor acknowledged. None: every arrival is taken.
        self.present: Callable[[PlcArrival], Awaitable[bool]] | None = None
        self._held_back: PlcArrival | None = None  # journalled and acknowledged, not yet in the chart's hands
        self.config = config or DriverCellConfig()
        # The force reflex: a process of its own (`reflex`, what `cellctl run` uses) or, without one, the in-loop
        # guard tapping every sample. Either halts the robot itself, then tells this port.
        self.reflex = reflex
        self.guard = ForceGuard(robot.halt, on_trip=self._on_trip)
        if reflex is not None:
            reflex.on_trip = self._on_reflex_trip
            reflex.on_halting = lambda _token, _reason: robot.claim_halt()  # its HALT is ours
        self._arrivals = plc.arrivals.subscribe()  # from construction on: no arrival is missed
        self._peak = 0.0
        self._stop: tuple[MotionOutcome, str] | None = None
        self.reports = 0
        self._interlock_events: tuple[MemoryObjectSendStream[Interlocks], MemoryObjectReceiveStream[Interlocks]] = (
            anyio.create_memory_object_stream[Interlocks](256))
        plc.interlocks.add_tap(self._on_interlocks)
        plc.status.add_tap(self._on_plc_status)
        robot.events.add_tap(self._on_robot_event)
        self._motion_lock = anyio.Lock()
        self._halted = False  # HALT may be latched on the robot: release it before the next primitive
        if reflex is None:
            ft.samples.add_tap(self.guard.tap)
        ft.samples.add_tap(self._track_peak)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The reflex task; runs until cancelled."""
        await self.guard.run(task_status=task_status)

    # ------------------------------------------------------------------ helpers
    def _rec(self, topic: str, payload: dict[str, Any]) -> None:
        if self.recorder is not None:
            self.recorder.record(topic, anyio.current_time(), payload)

    def _track_peak(self, w: Wrench) -> None:
        f = w.force_magnitude
        if f > self._peak:
            self._peak = f

    def _on_trip(self, trip: Trip) -> None:
        self._rec("reflex.trip", {"force_n": round(trip.sample.force_magnitude, 3), "limit_n": trip.limit_n,
                                  "reaction_ms": round((trip.halted_at - trip.detected_at) * 1e3, 3)})

    def _on_reflex_trip(self, trip: ReflexTrip) -> None:
        self._rec("reflex.trip", {"force_n": round(trip.force_n, 3) if trip.force_n == trip.force_n else None,
                                  "limit_n": trip.limit_n, "reason": trip.reason, "halt_ok": trip.halt_ok,
                                  "reaction_ms": round(trip.reaction_s * 1e3, 3) if trip.halt_ok else None,
                                  "process": True})

    def _frame(self) -> PodFrame:
        pod = self.plc.last_pod
        if pod is None:
            raise ValueError("no pod presented at the station (PLC)")
        return PodFrame(pod.layout)

    # ------------------------------------------------------------------ conveyor, FC
    async def next_item(self, timeout_s: float) -> ItemArrival | None:
        deadline = anyio.current_time() + timeout_s
        while True:
            a: PlcArrival | None = self._held_back
            self._held_back = None
            if a is None:
                with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
                    a = await self._arrivals.receive()
            if a is None:
                return None
            try:
                item = ItemArrival(item_id=a.item_id, width_mm=a.width_mm, height_mm=a.height_mm,
                                   depth_mm=a.length_mm, mass_kg=max(a.weight_kg, 0.001))
            except ValidationError as exc:  # beyond what the cell handles: leave it to the conveyor's reject path
                log.error("arrival refused: outside the cell's item limits", item_id=a.item_id,
                          error=str(exc).replace("\n", "; "))
                self._rec("plc.refused", {"item_id": a.item_id, "error": str(exc)[:500]})
                item = None
            # Taken off the queue: if it is still there, journal it (the cell's, from now on), then acknowledge it,
            # whatever happens to this call (shielded, bounded).
            with anyio.CancelScope(shield=True):
                live = self.present is None or await self.present(a)
                if live:
                    if item is not None and self.on_item is not None:
                        await self.on_item(item)
                    await self._acknowledge(a.item_id)
            if not live:
                log.info("arrival skipped: the item is not at the pick-up point (PLC)", item_id=a.item_id, seq=a.seq)
            elif item is not None:
                # A cancellation that waited out the shield strikes here: the item stays the cell's, for the next
                # call (the next task journals it again, taking over the entry, and acknowledges it again).
                self._held_back = a
                await anyio.lowlevel.checkpoint()
                self._held_back = None
                return item

    async def _acknowledge(self, item_id: str) -> None:
        for attempt in range(3):
            try:
                await self.plc.call("acknowledge_item", item_id, timeout_s=self.config.ack_timeout_s)
                return
            except (PlcError, TimeoutError) as exc:
                log.warning("item not acknowledged to the PLC", item_id=item_id, attempt=attempt + 1, error=str(exc))

    async def next_order(self, timeout_s: float) -> PickOrder | None:
        if self.orders is None:
            await anyio.sleep(timeout_s)
            return None
        return await self.orders.next_order(timeout_s)

    async def report(self, report: TaskReport) -> None:
        self.reports += 1  # the report itself is in the event log (port.call)
        log.info("task report", task_id=report.task_id, outcome=report.outcome.value, reason=report.reason)

    def interlocks(self) -> AsyncIterator[Interlocks]:
        return self._interlocks()

    def _on_interlocks(self, state: InterlockState) -> None:
        self._push_interlocks(self._current_interlocks(state))

    def _on_plc_status(self, status: PlcStatus) -> None:
        if not status.connected:  # the last values say nothing about now: not safe to move
            self._push_interlocks(Interlocks(ok=False, detail=f"PLC disconnected, interlocks unknown: {status.detail}"))

    def _on_robot_event(self, event: RobotEvent) -> None:
        # A HALT someone else latched is a safety input like the PLC's: the cell stops until they release it.
        if event.kind in (EventKind.EXTERNAL_HALT, EventKind.EXTERNAL_HALT_RELEASED):
            self._push_interlocks(self._current_interlocks(self.plc.last_interlocks))

    def _current_interlocks(self, state: InterlockState | None) -> Interlocks:
        if self.robot.external_halt:
            return Interlocks(ok=False, detail=EXTERNAL_HALT_TEXT)
        if state is None or not self.plc.connected:
            return Interlocks(ok=False, detail="interlocks unknown (no value from the PLC yet)")
        return Interlocks(ok=state.clear, detail=_interlock_text(state))

    def _push_interlocks(self, value: Interlocks) -> None:
        with contextlib.suppress(anyio.WouldBlock):  # full: nobody reads (chart not live); start reads the latest
            self._interlock_events[0].send_nowait(value)

    async def _interlocks(self) -> AsyncIterator[Interlocks]:
        receive = self._interlock_events[1]
        while True:  # drop what queued before this subscription: start from the current state
            try:
                receive.receive_nowait()
            except anyio.WouldBlock:
                break
        yield self._current_interlocks(self.plc.last_interlocks)
        while True:
            yield await receive.receive()

    async def halt(self) -> None:
        self._halted = True
        await self.robot.halt()

    # ------------------------------------------------------------------ perception (worker thread)
    # A perception failure is a plan with a reason (the chart hands off), never an exception into the chart.
    async def _perceive(self, fn: Callable[..., Any], *args: Any) -> tuple[Any, str]:
        try:
            return await anyio.to_thread.run_sync(fn, *args), ""
        except Exception as exc:
            log.error("perception failed", call=getattr(fn, "__name__", "?"), error=repr(exc))
            return None, f"perception failed: {type(exc).__name__}: {exc}"

    async def plan_stow(self, item: ItemArrival, exclude_bins: tuple[str, ...] = ()) -> StowPlan:
        plan, why = await self._perceive(self.perception.stow_plan, item, exclude_bins)
        return plan if plan is not None else StowPlan(reason=why)

    async def verify_stow(self, item: ItemArrival, option: StowOption) -> Verification:
        v, why = await self._perceive(self.perception.verify, item, option)
        return v if v is not None else Verification(ok=False, detail=why)

    async def check_pick(self, order: PickOrder) -> Eligibility:
        e, why = await self._perceive(self.perception.eligibility, order)
        return e if e is not None else Eligibility(eligible=False, cls=EligibilityClass.NOT_FOUND, detail=why)

    async def plan_pick(self, order: PickOrder) -> PickPlan:
        plan, why = await self._perceive(self.perception.pick_plan, order)
        return plan if plan is not None else PickPlan(reason=why)

    # ------------------------------------------------------------------ motions
    async def set_hook(self, down: bool, timeout_s: float) -> MotionResult:
        """The second arm's hook is tool I/O (HOOK_SP, closed = band up): it moves while the main arm moves."""
        closed = not down
        t0 = anyio.current_time()

        def result(outcome: MotionOutcome, detail: str = "") -> MotionResult:
            return MotionResult(outcome=outcome, elapsed_s=round(anyio.current_time() - t0, 6), detail=detail)

        try:
            with anyio.fail_after(timeout_s):
                await self.robot.set_hook(closed)
                while (await self.robot.read_tool()).hook_closed is not closed:
                    pass  # read_tool waits for the next poll of the input image
        except TimeoutError:
            return result(MotionOutcome.TIMEOUT, f"hook not {'up' if closed else 'down'} within {timeout_s:.1f} s")
        except RobotCommError as exc:
            return result(MotionOutcome.FAULT, f"hook: {exc}")
        return result(MotionOutcome.DONE)

    def command(self, motion: Motion) -> tuple[rm.Primitive, dict[str, float]]:
        """The robot primitive and its register parameters for `motion` (ValueError when it cannot be sent)."""
        p, c = motion.params, self.config
        prim = rm.Primitive.parse(motion.primitive.value)
        out: dict[str, float] = {}
        if prim is rm.Primitive.APPROACH:
            x, y = self._frame().to_pod(_index(p), p["x"], p["y"])
            # z: 0 at the pod face; a camera view stands off in front of it (negative)
            out = {"x": x, "y": y, "z": float(p.get("z", 0.0)), "yaw": 90.0 if p.get("rotated", 0.0) >= 0.5 else 0.0,
                   "speed_scale": c.speed_scale}
        elif prim is rm.Primitive.SWEEP:
            frame, i = self._frame(), _index(p)
            x, y_lo = frame.to_pod(i, p["x"], p["y_lo"])
            _, y_hi = frame.to_pod(i, p["x"], p["y_hi"])
            out = {"distance": p["distance"], "x": x, "y_lo": y_lo, "y_hi": y_hi,
                   "direction": 1.0 if p["direction"] > 0 else -1.0}
        elif prim is rm.Primitive.ATTACH:
            out = {"vacuum": min(-5.0, max(-95.0, motion.vacuum_kpa if motion.vacuum_kpa is not None else -40.0))}
        elif prim is rm.Primitive.PLACE:
            x, y, z = c.tote_xyz_mm
            out = {"x": x, "y": y, "z": z, "speed_scale": c.speed_scale}
        rm.resolve_params(prim, out)  # range check before anything moves
        return prim, out

    async def move(self, motion: Motion) -> MotionResult:
        try:
            prim, params = self.command(motion)
        except (ValueError, KeyError) as exc:
            return MotionResult(outcome=MotionOutcome.FAULT, elapsed_s=0.0, fault_code=int(FaultCode.BAD_PARAMETER),
                                detail=f"{motion.primitive.value} not sent: {exc}")
        # One primitive at a time: a cancelled move still halts its primitive (shielded) before the next starts.
        async with self._motion_lock:
            result = await self._move(motion, prim, params)
        self.perception.motion_result(motion, result)  # e.g. a blocked eject: less free depth there
        return result

    async def _move(self, motion: Motion, prim: rm.Primitive, params: dict[str, float]) -> MotionResult:
        if self.robot.external_halt:  # never released here: whoever latched it releases it
            return MotionResult(outcome=MotionOutcome.UNAVAILABLE, elapsed_s=0.0, fault_code=int(FaultCode.HALTED),
                                detail=EXTERNAL_HALT_TEXT)
        st = self.robot.state
        if self._halted or (st is not None and st.halt_active):
            # A stop (hold, abort, a guard, a timeout) latched HALT; the input image may not show it yet.
            self._halted = not await self.robot.clear_halt()
            if self._halted:
                return MotionResult(outcome=MotionOutcome.UNAVAILABLE, elapsed_s=0.0,
                                    detail="the robot's halt latch could not be released")
        with self.ft.status.subscription() as ft_status:  # before the check: no stale transition slips by
            return await self._guarded(motion, prim, params, ft_status)

    async def _guarded(self, motion: Motion, prim: rm.Primitive, params: dict[str, float],
                       ft_status: Subscription[StreamStatus]) -> MotionResult:
        limit = motion.force_limit_n
        if limit is not None and self.ft.state is not StreamState.LIVE:
            await self._await_live(ft_status)
        if limit is not None and self.ft.state is not StreamState.LIVE:
            log.warning("guarded motion refused: F/T stream not live", stream=self.ft.state.value,
                        waited_s=self.config.ft_live_wait_s)
            return MotionResult(outcome=MotionOutcome.UNAVAILABLE, elapsed_s=0.0, detail=NO_FT)
        self._peak, self._stop = 0.0, None
        tripped = False
        token: int | None = None
        trip: ReflexTrip | None = None
        if limit is not None and self.reflex is not None:
            self.robot.expect_halt(True)  # a HALT latched while armed is judged by the disarm below
            try:
                token = await self.reflex.arm(limit)
            except ReflexError as exc:
                self.robot.expect_halt(False)
                stream = self.reflex.stats().get("stream")
                log.warning("guarded motion refused: the force reflex did not arm", error=str(exc), stream=stream)
                why = NO_FT if self.reflex.alive and stream != "live" else NO_REFLEX
                return MotionResult(outcome=MotionOutcome.UNAVAILABLE, elapsed_s=0.0, detail=why)
        elif limit is not None:
            self.guard.arm(limit)
        try:
            async with anyio.create_task_group() as tg:
                if limit is not None and self.reflex is None:  # the reflex process halts on its own stale stream
                    tg.start_soon(self._watch_ft, ft_status)
                if motion.vacuum_kpa is not None and prim is not rm.Primitive.ATTACH:
                    tg.start_soon(self._watch_suction, motion.vacuum_kpa)
                if motion.max_scene_change is not None and "bin" in motion.params:
                    tg.start_soon(self._watch_frames, _index(motion.params), motion.max_scene_change)
                result = await self.robot.execute(prim, params, timeout=motion.timeout_s)
                tg.cancel_scope.cancel()
        except BaseException:
            self._halted = True  # cancelled: the driver halted the running primitive
            raise
        finally:
            if token is not None and self.reflex is not None:
                with anyio.CancelScope(shield=True):
                    trip = await self.reflex.disarm(token)  # waits for a trip whose HALT is on its way
                    if trip is not None and not trip.halt_ok:  # the reflex could not deliver it: halt from here
                        self._halted = True
                        await self.robot.halt()
                self.robot.expect_halt(False)
                tripped = trip is not None and trip.reason == "force"
                if trip is not None and trip.reason != "force":  # its own stream went stale while armed
                    self._halted = True
                    self._stop = self._stop or (MotionOutcome.FAULT, NO_FT)
            else:
                tripped = limit is not None and not self.guard.armed
                self.guard.disarm()
        if tripped:
            self._halted = True  # the reflex sent HALT, even if the primitive completed just before it landed
        elif self._stop is None and result.outcome is Outcome.FAULT and result.fault_code == FaultCode.HALTED:
            # Stopped by a HALT nobody here sent (an operator panel, a safety PLC, another Modbus master).
            self.robot.mark_external_halt(f"{prim.name.lower()} stopped by a HALT this controller did not send")
        if self.robot.external_halt:
            return MotionResult(outcome=MotionOutcome.FAULT, elapsed_s=round(result.duration_s, 6),
                                peak_force_n=round(self._peak, 3), fault_code=int(FaultCode.HALTED),
                                detail=f"{prim.name.lower()}: {EXTERNAL_HALT_TEXT}")
        outcome, detail = self._outcome(result, tripped, limit)
        elapsed = result.duration_s
        if outcome is not MotionOutcome.DONE and outcome is not MotionOutcome.UNAVAILABLE:
            self._halted = True
            try:
                with anyio.move_on_after(1.0):  # the reflex's halt is on the wire before the latch is released
                    await self.guard.idle()
                self._halted = not await self.robot.clear_halt()
                if outcome is MotionOutcome.FORCE_LIMIT and motion.backoff_mm > 0 and not self._halted:
                    back = await self.robot.execute(rm.Primitive.RETRACT, {"speed_scale": self.config.speed_scale},
                                                    timeout=max(motion.timeout_s, 5.0))
                    elapsed += back.duration_s
                    detail += "; backed off" if back.ok else f"; back-off failed: {back.fault_text or back.outcome}"
                    self._halted = not back.ok
            except BaseException:
                self._halted = True
                raise
        code = result.fault_code if outcome in (MotionOutcome.FAULT, MotionOutcome.UNAVAILABLE) else 0
        return MotionResult(outcome=outcome, elapsed_s=round(elapsed, 6), peak_force_n=round(self._peak, 3),
                            fault_code=int(code) if code < 0x10000 else 0, detail=detail)

    def _outcome(self, r: PrimitiveResult, tripped: bool, limit: float | None) -> tuple[MotionOutcome, str]:
        if tripped:  # also when the primitive completed as the halt went out: the contact was there
            return MotionOutcome.FORCE_LIMIT, f"force over the limit {limit:.1f} N: robot halted"
        if r.outcome is Outcome.DONE:
            return MotionOutcome.DONE, ""
        if self._stop is not None:
            return self._stop
        if r.outcome is Outcome.TIMEOUT:
            return MotionOutcome.TIMEOUT, r.fault_text
        if r.seq == 0 and r.fault_code in _NOT_STARTED:
            return MotionOutcome.UNAVAILABLE, r.fault_text
        if r.fault_code == FaultCode.SUCTION_NOT_REACHED:
            return MotionOutcome.NO_VACUUM, r.fault_text
        return MotionOutcome.FAULT, r.fault_text or f"fault {r.fault_code}"

    async def _stop_motion(self, outcome: MotionOutcome, detail: str) -> None:
        if self._stop is None:
            self._stop = (outcome, detail)
            await self.robot.halt()

    async def _await_live(self, sub: Subscription[StreamStatus]) -> None:
        """Wait up to `ft_live_wait_s` for the F/T stream to be live again; then drop the statuses seen while
        waiting, so the motion's watch starts from the state as it is now (a later change is still queued)."""
        log.info("guarded motion waits for the F/T stream", stream=self.ft.state.value,
                 wait_s=self.config.ft_live_wait_s)
        with anyio.move_on_after(self.config.ft_live_wait_s):
            while self.ft.state is not StreamState.LIVE:
                await sub.receive()
        sub.drain()

    async def _watch_ft(self, sub: Subscription[StreamStatus]) -> None:
        while True:
            s = await sub.receive()
            if s.state is StreamState.STALE:
                await self._stop_motion(MotionOutcome.FAULT, NO_FT)
                return

    async def _watch_suction(self, threshold_kpa: float) -> None:
        try:
            await self._suction_watch(threshold_kpa)
        except Exception as exc:  # a watch that fails stops the motion: it is no longer watched
            await self._stop_motion(MotionOutcome.FAULT, f"suction watch failed: {exc!r}")

    async def _suction_watch(self, threshold_kpa: float) -> None:
        start = anyio.current_time()
        with self.robot.suction.subscription(overflow="newest") as sub:
            while True:
                s = await sub.receive()
                if s.t - start >= self.config.vacuum_settle_s and s.kpa > threshold_kpa:
                    await self._stop_motion(MotionOutcome.SUCTION_LOST,
                                            f"vacuum lost: {s.kpa:.1f} kPa above {threshold_kpa:.1f} kPa")
                    return

    async def _watch_frames(self, bin_index: int, threshold: float) -> None:
        try:
            await self._frame_watch(bin_index, threshold)
        except Exception as exc:
            await self._stop_motion(MotionOutcome.FAULT, f"depth frame watch failed: {exc!r}")

    async def _frame_watch(self, bin_index: int, threshold: float) -> None:
        prev = await anyio.to_thread.run_sync(self.frames.frame, bin_index)
        t0 = anyio.current_time()
        while True:
            await anyio.sleep(self.config.frame_period_s)
            cur = await anyio.to_thread.run_sync(self.frames.frame, bin_index)
            change = depth_change(prev, cur, noise_k=self.frames.noise_k).fraction
            self._rec("camera.change", {"dt_s": round(anyio.current_time() - t0, 3), "fraction": round(change, 5)})
            if change > threshold:
                await self._stop_motion(MotionOutcome.SCENE_CHANGED, f"scene changed: {change:.1%} of pixels moved")
                return
            prev = cur

def _index(params: dict[str, float]) -> int:
    b = params["bin"]
    if b != int(b) or b < 0:
        raise ValueError(f"bin must be a bin index, got {b}")
    return int(b)

def _interlock_text(state: Any) -> str:
    tripped = [n for n in ("estop_active", "light_curtain_broken", "door_open") if getattr(state, n)]
    return "guards closed" if not tripped else "tripped: " + ", ".join(tripped)
