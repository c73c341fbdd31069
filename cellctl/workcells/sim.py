"""The Workcell port over the in-process simulated cell, on the event loop's clock (virtual in `cellctl sim`).

Motions play the cell model's physics (`drivers.sim.cell`): the F/T sensor streams at 1 kHz while a
force-guarded motion runs, suction pressure at 200 Hz while the cup is on, 10 Hz depth frames while a
motion is watched; the same guards as the real cell stop the arm (force limit with back-off, vacuum lost,
scene changed, sensor stale). Perception and planning run on rendered depth frames of the world.
Sensor streams go to the recorder (the event log) when one is given; calls and replies are logged by
`cellctl.workcells.recording.RecordingWorkcell` around this.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import numpy as np
from pydantic import BaseModel

from cellctl.eventlog.recorder import Recorder
from cellctl.workcells.planning_perception import PlanningPerception
from cellctl.workcells.sim_perception import SimCameraConfig, WorldPerception, scene_of
from drivers.sim.cell import ROBOT_FAULT_CODE, Physics, SimCell, first_index, force_trace, pressure_trace
from perception.change import depth_change
from statecharts.workcell import (
    Eligibility,
    Interlocks,
    ItemArrival,
    Motion,
    MotionOutcome,
    MotionResult,
    PickOrder,
    PickPlan,
    Primitive,
    StowOption,
    StowPlan,
    TaskReport,
    Verification,
)

FT_HZ = 1000.0
FT_BATCH_S = 0.01  # one log record per 10 ms of F/T samples
FT_STALE_S = 0.02  # no F/T sample for this long during a guarded motion: halt
SUCTION_HZ = 200.0
FRAME_HZ = 10.0
FRAME_STALE_S = 0.5
BACKOFF_MM_S = 50.0
PERCEPTION_S = 0.25  # capture + compute latency, charged to the virtual clock
HALT_S = 0.2


class SimWorkcell:
    """`Workcell` for `SimCell`: `await anyio.sleep` is the only way time passes."""

    def __init__(self, cell: SimCell, *, recorder: Recorder | None = None, camera: SimCameraConfig | None = None,
                 perception: PlanningPerception | None = None):
        self.cell = cell
        self.recorder = recorder
        self.perception = perception if perception is not None else WorldPerception(cell, camera)
        self.camera = self.perception.camera
        self.scene = scene_of(self.perception, cell)  # the 10 Hz depth frames while a motion is watched
        self.rng = self.scene.rng  # one noise stream for every sensor, as before the split
        self._orders: dict[str, int] = {}
        self.reports: list[TaskReport] = []
        self.halts = 0

    # ------------------------------------------------------------------ recording
    def _rec(self, topic: str, payload: BaseModel | dict[str, Any]) -> None:
        if self.recorder is not None:
            self.recorder.record(topic, anyio.current_time(), payload)

    # ------------------------------------------------------------------ conveyor, FC
    async def next_item(self, timeout_s: float) -> ItemArrival | None:
        item, index_s, down_s = self.cell.next_arrival()
        wait = index_s + down_s
        if down_s:
            self._rec("plc.status", {"connected": False, "reason": "link lost", "for_s": down_s})
        if wait > timeout_s:
            await anyio.sleep(timeout_s)
            return None
        await anyio.sleep(wait)
        if down_s:
            self._rec("plc.status", {"connected": True, "reason": "reconnected"})
        w, h, d = item.size_mm
        arrival = ItemArrival(item_id=str(item.item_id), sku=item.product_id, width_mm=round(w, 1),
                              height_mm=round(h, 1), depth_mm=round(d, 1), mass_kg=round(item.mass_kg, 3))
        return arrival

    async def next_order(self, timeout_s: float) -> PickOrder | None:
        order, down_s = self.cell.next_order()
        wait = 0.5 + down_s
        if order is None or wait > timeout_s:
            await anyio.sleep(timeout_s)
            return None
        await anyio.sleep(wait)
        self._orders[order.order_id] = order.item_id
        msg = PickOrder(order_id=order.order_id, item_id=str(order.item_id), bin_id=order.bin_id,
                        product_id=order.product_id)
        return msg

    async def report(self, report: TaskReport) -> None:
        self.reports.append(report)

    def interlocks(self) -> AsyncIterator[Interlocks]:
        return self._interlocks()

    async def _interlocks(self) -> AsyncIterator[Interlocks]:
        yield Interlocks(ok=True, detail="simulated cell: guards closed")
        await anyio.sleep_forever()

    async def halt(self) -> None:
        self.halts += 1
        self._rec("robot.halt", {"reason": "abort"})

    # ------------------------------------------------------------------ motions
    async def set_hook(self, down: bool, timeout_s: float) -> MotionResult:
        primitive = Primitive.OPEN_BAND if down else Primitive.CLOSE_BAND
        return await self.move(Motion(primitive=primitive, timeout_s=timeout_s))

    async def move(self, motion: Motion) -> MotionResult:
        phys = self.cell.physics(motion.primitive.value, motion.params, motion.force_limit_n)
        end, outcome, detail, peak = self._play(motion, phys)
        stopped: float | None = None if outcome is MotionOutcome.DONE else end
        start = anyio.current_time()
        try:
            await anyio.sleep(end)
        except BaseException:
            # Cancelled (hold/stop/abort): the arm is halted where it is.
            self.halts += 1
            phys.commit(anyio.current_time() - start)
            raise
        effect = phys.commit(stopped)
        elapsed = end
        if outcome is not MotionOutcome.DONE:
            self.halts += 1
            await anyio.sleep(HALT_S)
            elapsed += HALT_S
        if outcome is MotionOutcome.FORCE_LIMIT and motion.backoff_mm > 0:
            back = motion.backoff_mm / BACKOFF_MM_S
            await anyio.sleep(back)
            elapsed += back
        result = MotionResult(outcome=outcome, elapsed_s=round(elapsed, 6), peak_force_n=round(peak, 3),
                              fault_code=ROBOT_FAULT_CODE if outcome is MotionOutcome.FAULT else 0,
                              detail="; ".join(x for x in (detail, effect) if x))
        self.perception.motion_result(motion, result)
        return result

    def _play(self, motion: Motion, phys: Physics) -> tuple[float, MotionOutcome, str, float]:
        """When the motion ends and why: the first of completion, timeout and every guard's trip."""
        limit = motion.timeout_s
        if phys.no_answer:
            return limit, MotionOutcome.TIMEOUT, "controller did not answer (Modbus timeout)", 0.0
        events: list[tuple[float, MotionOutcome, str]] = [(phys.duration_s, MotionOutcome.DONE, "")]
        if phys.duration_s > limit:
            events.append((limit, MotionOutcome.TIMEOUT, f"no completion within {limit:.1f} s"))
        if phys.fault_at_s is not None:
            events.append((phys.fault_at_s, MotionOutcome.FAULT, phys.detail or "servo fault"))
        horizon = min(phys.duration_s, limit)
        peak = 0.0
        if motion.force_limit_n is not None or phys.contact_n > 0 or phys.spike is not None:
            t_trip, peak, why = self._stream_ft(motion, phys, horizon)
            if t_trip is not None:
                outcome = MotionOutcome.FORCE_LIMIT if why.startswith("force") else MotionOutcome.FAULT
                events.append((t_trip, outcome, why))
        if phys.vacuum_kpa is not None:
            t_vac, why_vac = self._stream_suction(motion, phys, horizon)
            if t_vac is not None:
                kind = MotionOutcome.NO_VACUUM if motion.primitive is Primitive.ATTACH else MotionOutcome.SUCTION_LOST
                events.append((t_vac, kind, why_vac))
        if motion.max_scene_change is not None:
            t_scene, why_scene, kind = self._stream_frames(motion, phys, horizon)
            if t_scene is not None:
                events.append((t_scene, kind, why_scene))
        end, outcome, detail = min(events, key=lambda e: (e[0], e[1] is MotionOutcome.DONE))
        return end, outcome, detail, peak

    def _stream_ft(self, motion: Motion, phys: Physics, horizon: float) -> tuple[float | None, float, str]:
        """1 kHz F/T over the motion; the guard trips on the first sample over the limit or a stale stream."""
        n = max(1, int(horizon * FT_HZ))
        t = np.arange(1, n + 1) / FT_HZ
        f = force_trace(phys, t, self.rng)
        keep = np.ones(n, dtype=bool)
        if self.cell.faults.ft_packet_loss > 0:
            keep &= self.rng.random(n) >= self.cell.faults.ft_packet_loss
        if phys.ft_stop_at_s is not None:
            keep &= t < phys.ft_stop_at_s
        trip: float | None = None
        why = ""
        if motion.force_limit_n is not None:
            over = first_index(keep & (f > motion.force_limit_n))
            if over is not None:
                trip, why = float(t[over]), f"force {f[over]:.1f} N over the limit {motion.force_limit_n:.1f} N"
            kept_t = np.concatenate(([0.0], t[keep], [horizon]))
            gaps = np.diff(kept_t)
            stale = first_index(gaps > FT_STALE_S)
            if stale is not None:
                t_stale = float(kept_t[stale] + FT_STALE_S)
                if trip is None or t_stale < trip:
                    trip, why = t_stale, f"F/T stream stale for {FT_STALE_S * 1e3:.0f} ms"
        end = trip if trip is not None else horizon
        sent = keep & (t <= end + 1e-12)
        peak = float(f[sent].max()) if sent.any() else 0.0
        if self.recorder is not None:
            self._log_ft(t[sent], f[sent])
        return trip, peak, why

    def _log_ft(self, t: np.ndarray, f: np.ndarray) -> None:
        assert self.recorder is not None
        now = anyio.current_time()
        edges = np.arange(0.0, (t[-1] if t.size else 0.0) + FT_BATCH_S, FT_BATCH_S)
        idx = np.searchsorted(t, edges[1:], side="right")
        start = 0
        for stop in idx:
            if stop > start:
                self.recorder.record_samples("ft.wrench", now + float(t[start]), FT_HZ,
                                             {"t": t[start:stop] - t[start], "fz": f[start:stop]})
            start = stop

    def _stream_suction(self, motion: Motion, phys: Physics, horizon: float) -> tuple[float | None, str]:
        n = max(1, int(horizon * SUCTION_HZ))
        t = np.arange(1, n + 1) / SUCTION_HZ
        p = pressure_trace(phys, t)
        threshold = motion.vacuum_kpa if motion.vacuum_kpa is not None else -40.0
        end: float | None = None
        why = ""
        if motion.primitive is Primitive.ATTACH:
            if not bool((p <= threshold).any()):
                end, why = horizon, f"vacuum {p[-1]:.1f} kPa never reached {threshold:.1f} kPa"
        elif motion.vacuum_kpa is not None:
            settled = t > 0.1  # the cup is already sealed when a held motion starts
            lost = first_index(settled & (p > threshold))
            if lost is not None:
                end, why = float(t[lost]), f"vacuum lost: {p[lost]:.1f} kPa above {threshold:.1f} kPa"
        if self.recorder is not None:
            stop = n if end is None else int(np.searchsorted(t, end, side="right"))
            self.recorder.record_samples("robot.suction", anyio.current_time() + float(t[0]), SUCTION_HZ,
                                         {"t": t[:stop] - t[0], "kpa": p[:stop]})
        return end, why

    def _stream_frames(self, motion: Motion, phys: Physics, horizon: float) -> tuple[float | None, str, MotionOutcome]:
        """10 Hz depth frames of the bin; change detection between successive frames."""
        bin_index = motion.params.get("bin")
        if bin_index is None:
            return None, "", MotionOutcome.DONE
        b = self.cell.bin(bin_index)
        before = self.scene.render(b, band=False)[0]
        after = before
        disturbed = phys.disturb_at_s is not None and phys.disturb_at_s < horizon
        if disturbed and self.cell.disturb(bin_index, int(motion.params.get("item", 0))):
            after = self.scene.render(b, band=False)[0]
        threshold = motion.max_scene_change or 1.0
        prev = self.scene.noisy(before)
        t = 0.0
        while t + 1 / FRAME_HZ <= horizon + 1e-9:
            t += 1 / FRAME_HZ
            if phys.frames_stop_at_s is not None and t > phys.frames_stop_at_s + FRAME_STALE_S:
                self._rec("camera.frame", {"dt_s": round(t, 3), "stale": True})
                return phys.frames_stop_at_s + FRAME_STALE_S, "depth frames stale", MotionOutcome.SCENE_CHANGED
            if phys.frames_stop_at_s is not None and t > phys.frames_stop_at_s:
                continue
            scene = after if (phys.disturb_at_s is not None and t >= phys.disturb_at_s) else before
            cur = self.scene.noisy(scene)
            change = depth_change(prev, cur, noise_k=self.camera.noise_k).fraction
            self._rec("camera.change", {"dt_s": round(t, 3), "fraction": round(change, 5)})
            if change > threshold:
                return t, f"scene changed: {change:.1%} of pixels moved", MotionOutcome.SCENE_CHANGED
            prev = cur
        return None, "", MotionOutcome.DONE

    # ------------------------------------------------------------------ perception (charged to the clock)
    async def plan_stow(self, item: ItemArrival, exclude_bins: tuple[str, ...] = ()) -> StowPlan:
        await anyio.sleep(PERCEPTION_S)
        return self.perception.stow_plan(item, exclude_bins)

    async def verify_stow(self, item: ItemArrival, option: StowOption) -> Verification:
        await anyio.sleep(PERCEPTION_S)
        return self.perception.verify(item, option)

    async def check_pick(self, order: PickOrder) -> Eligibility:
        await anyio.sleep(PERCEPTION_S)
        return self.perception.eligibility(order)

    async def plan_pick(self, order: PickOrder) -> PickPlan:
        await anyio.sleep(PERCEPTION_S)
        return self.perception.pick_plan(order)
