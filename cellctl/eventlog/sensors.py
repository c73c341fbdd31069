"""Sensor streams of a real-time run into the event log: taps collect samples, a task writes 10 ms batches.

The taps run synchronously on each driver topic (nothing is dropped or queued unboundedly: a batch is written
every `batch_s`); sample times are put on the event loop's clock (`anyio.current_time()`, monotonic).
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import numpy as np
from anyio.abc import TaskStatus

from cellctl.eventlog.recorder import Recorder
from drivers.ft import FTSensor, Wrench
from drivers.plc import PlcClient, PlcStatus
from drivers.robot import RobotDriver, RobotEvent, SuctionSample

BATCH_S = 0.01
FT_COLUMNS = ("fx", "fy", "fz", "tx", "ty", "tz")


class _Columns:
    """Samples (time on the loop clock + values) waiting for the next batch."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.t: list[float] = []
        self.values: list[tuple[float, ...]] = []

    def add(self, t: float, values: tuple[float, ...]) -> None:
        self.t.append(t)
        self.values.append(values)

    def take(self) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.t:
            return None
        t, v = np.asarray(self.t), np.asarray(self.values, dtype=np.float64)
        self.t, self.values = [], []
        return t, v


class SensorLog:
    """Logs F/T (1 kHz, all six axes), suction pressure, robot events and PLC link status."""

    def __init__(self, recorder: Recorder, *, ft: FTSensor, robot: RobotDriver, plc: PlcClient,
                 ft_rate_hz: float = 1000.0) -> None:
        self.recorder = recorder
        self.ft_rate_hz = ft_rate_hz
        self._perf_to_loop = 0.0
        self._ft = _Columns(FT_COLUMNS)
        self._suction = _Columns(("kpa",))
        self.samples = 0
        ft.samples.add_tap(self._on_wrench)
        robot.suction.add_tap(self._on_suction)
        robot.events.add_tap(self._on_robot_event)
        plc.status.add_tap(self._on_plc_status)

    def _on_wrench(self, w: Wrench) -> None:
        self._ft.add(w.t_recv + self._perf_to_loop, (w.fx, w.fy, w.fz, w.tx, w.ty, w.tz))

    def _on_suction(self, s: SuctionSample) -> None:
        self._suction.add(s.t, (s.kpa,))  # SuctionSample.t is time.monotonic(): the loop clock

    def _on_robot_event(self, e: RobotEvent) -> None:
        payload: dict[str, Any] = {"kind": str(e.kind), "message": e.message, "fault_code": e.fault_code}
        self.recorder.record("robot.event", anyio.current_time(), payload)

    def _on_plc_status(self, s: PlcStatus) -> None:
        self.recorder.record("plc.status", anyio.current_time(), {"connected": s.connected, "detail": s.detail})

    def flush(self) -> None:
        for topic, cols, rate in (("ft.wrench", self._ft, self.ft_rate_hz), ("robot.suction", self._suction, 200.0)):
            got = cols.take()
            if got is None:
                continue
            t, v = got
            self.samples += len(t)
            columns = {"t": t - t[0], **{name: v[:, i] for i, name in enumerate(cols.names)}}
            self.recorder.record_samples(topic, float(t[0]), rate, columns)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self._perf_to_loop = anyio.current_time() - time.perf_counter()
        task_status.started()
        try:
            while True:
                await anyio.sleep(BATCH_S)
                self.flush()
        finally:
            self.flush()
