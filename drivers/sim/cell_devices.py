"""The simulated cell behind real protocols: `SimCell` physics bound to the Modbus robot, UDP F/T sensor and OPC UA PLC.

`SimCellDevices` runs the three protocol servers of `drivers.sim` over one seeded `SimCell`:

- the robot (`SimRobot`) asks `CellRobotModel` how each primitive runs: its register parameters are turned
  into the cell's physics parameters through the pod frame (`drivers.pod_frame`, the contract), the motion's
  duration, fault and stall come from `SimCell.physics`, and when it ends its effect is committed to the world
  (all of it when it completed, `commit(stopped_at_s)` when it was stopped);
- the F/T sensor feels the motion's contact force (fz = -force) while it runs, zero otherwise;
- the suction cup leaks when the cell says the seal failed (attach) or broke (extract);
- the PLC presents the cell's pod (and every new one) and posts each conveyor item once, the next only after
  the previous was acknowledged and grasped; the item at the pick-up point is its AtPickup, and each item a grasp
  takes off the conveyor is handed over (its HandedOver record: what the conveyor gave the cell).

Times: the robot runs primitives `time_scale` times their cell duration; cell time = wall time / time_scale.

The robot does not know the controller's force limit (it is a guard of the controller, not a robot
parameter), so the physics gets a nominal per-primitive limit (`NOMINAL_FORCE_LIMIT_N`): it sets how hard
a sweep pushes before the world stalls it, and the size of the spike a blocked eject or an unseen obstacle
produces. A controller with a different limit sees the same forces and decides with its own.
"""

from __future__ import annotations

import errno
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import numpy as np
import structlog
from anyio.abc import TaskGroup, TaskStatus
from pydantic import BaseModel, ConfigDict, Field

from ..plc_nodes import BinLayout, BinSpec
from ..pod_frame import PodFrame
from ..robot_map import FaultCode, Primitive
from .cell import CELL_DURATIONS_S, LEAK_KPA, ROBOT_FAULT_CODE, Physics, SimCell, force_trace
from .faults import FaultProfileName, profile
from .ft_sensor import SimFTConfig, SimFTSensor, Wrench6
from .plc import PlcSim, SimItem, SimPod
from .robot import DEFAULT_DURATIONS_S, PrimitivePlan, SimRobot, SimRobotConfig
from .world import Item, Pod, WorldError, item_under

__all__ = [
    "NOMINAL_FORCE_LIMIT_N",
    "CellRobotModel",
    "DeviceStartError",
    "Endpoints",
    "SimCellConfig",
    "SimCellDevices",
    "pod_layout",
    "start_device",
]

# The force limit handed to the physics per primitive (N); None: unguarded. See the module docstring.
NOMINAL_FORCE_LIMIT_N: dict[Primitive, float] = {
    Primitive.APPROACH: 25.0,
    Primitive.EXTEND_BLADE: 25.0,
    Primitive.SWEEP: 60.0,
    Primitive.EJECT_ITEM: 35.0,
    Primitive.ATTACH: 20.0,
    Primitive.EXTRACT: 40.0,
}
SWEEP_NUDGE_MM = 0.5  # the sweep's bin is the one the blade pushes into from its entry x
POLL_S = 0.01  # the conveyor's poll of the world and the PLC's acknowledged list
KEPT_IDS = 1024  # item ids remembered: an item is announced again only while it is still at the pick-up point


class DeviceStartError(RuntimeError):
    """A simulated device could not start listening."""

    def __init__(self, device: str, host: str, port: int, cause: BaseException) -> None:
        if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
            text = f"{device}: cannot listen on {host}:{port}: the port is in use"
        else:
            text = f"{device}: cannot listen on {host}:{port} ({cause}); is the port in use?"
        super().__init__(text)
        self.device = device


@dataclass(frozen=True)
class Endpoints:
    opcua_url: str
    modbus: tuple[str, int]
    ft: tuple[str, int]
    ft_rate_hz: float

    def lines(self) -> list[str]:
        return [
            f"  PLC     OPC UA       {self.opcua_url}   conveyor, pod, interlocks",
            f"  robot   Modbus TCP   {self.modbus[0]}:{self.modbus[1]} unit 1   primitives, tool I/O, suction "
            "(docs/register-map.md)",
            f"  F/T     UDP (RDT)    {self.ft[0]}:{self.ft[1]}   ATI Net F/T RDT at {self.ft_rate_hz:g} Hz",
        ]


async def start_device(
    tg: TaskGroup, device: str, serve: Callable[..., Coroutine[Any, Any, None]], host: str, port: int
) -> Any:
    """`tg.start(serve)`, a failure to listen raised as DeviceStartError naming the device and port."""
    try:
        return await tg.start(serve)
    except (OSError, RuntimeError) as exc:
        raise DeviceStartError(device, host, port, exc) from exc


class SimCellConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    opcua_port: int = Field(default=4840, ge=0, le=65535)  # 0: ephemeral
    modbus_port: int = Field(default=5020, ge=0, le=65535)
    ft_port: int = Field(default=49152, ge=0, le=65535)
    ft_rate_hz: float = Field(default=1000.0, gt=0, le=10_000)
    seed: int = 0
    faults: FaultProfileName = "none"
    time_scale: float = Field(default=1.0, gt=0, le=1.0)  # 1.0: real durations
    rows: int = Field(default=4, ge=1, le=64)
    cols: int = Field(default=3, ge=1, le=64)


def pod_layout(pod: Pod, rows: int, cols: int) -> BinLayout:
    """The PLC's BinLayout of a world pod: bins in `pod.bins` order, row-major (row 0 at the bottom)."""
    bins = tuple(
        BinSpec(row=i // cols, column=i % cols, width_mm=b.width_mm, height_mm=b.height_mm, depth_mm=b.depth_mm)
        for i, b in enumerate(pod.bins)
    )
    return BinLayout(rows=rows, columns=cols, bins=bins)


@dataclass(frozen=True, slots=True)
class ToolPoint:
    """Where the last approach sent the tool: pod frame, and the bin it is on (None: on no bin)."""

    x_mm: float
    y_mm: float
    yaw_deg: float
    located: tuple[int, float, float] | None  # (bin index, bin-relative x, y)
    z_mm: float = 0.0  # into the pod: 0 at the face, negative in front of it (a camera view's standoff)

    @property
    def rotated(self) -> bool:
        """Yaw about +-90 degrees: the item goes in turned (width and height swapped)."""
        return abs(abs(self.yaw_deg) - 90.0) < 45.0


@dataclass(slots=True)
class _Motion:
    """The primitive now running on the robot, as the cell plays it."""

    primitive: Primitive
    phys: Physics
    start: float  # robot clock (anyio.current_time)
    start_mono: float  # time.monotonic(), for the F/T sensor's samples
    bin: int | None = None
    item: int = 0
    disturbed: bool = False
    leaking: bool = False
    ft_stopped: bool = False


class CellRobotModel:
    """`PrimitiveModel` for `SimRobot`: each primitive plays `SimCell.physics` and commits its effect."""

    def __init__(
        self,
        cell: SimCell,
        frame: Callable[[], PodFrame],
        ft: SimFTSensor,
        robot: SimRobot,
        time_scale: float,
        *,
        seed: int = 0,
    ) -> None:
        if not (math.isfinite(time_scale) and time_scale > 0):
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        self.cell = cell
        self.frame = frame
        self.ft = ft
        self.robot = robot
        self.time_scale = time_scale
        self.log = structlog.get_logger("sim.cell")
        self.rng = np.random.default_rng(seed)  # F/T noise only: the cell's generator stays the cell's
        self.tool: ToolPoint | None = None
        self.params: dict[str, float] | None = None  # physics params of the last begun primitive
        # (primitive, completed, effect text) of the last ended primitives
        self.effects: deque[tuple[str, bool, str]] = deque(maxlen=256)
        self.ended: Counter[str] = Counter()  # ended primitives by name
        self._run: _Motion | None = None

    # --- PrimitiveModel ----------------------------------------------------------------------------------------

    def begin(self, primitive: Primitive, params: list[float], now: float) -> PrimitivePlan | None:
        self._run = None
        if primitive is Primitive.HALT:
            return None  # stops the tool where it is: nothing for the world to do
        name = primitive.name.lower()
        try:
            phys_params = self.translate(primitive, params)
            phys = self.cell.physics(name, phys_params, NOMINAL_FORCE_LIMIT_N.get(primitive))
        except Exception as exc:  # a bad point or a model bug faults the primitive, never the server
            self.log.warning("cell model refused the primitive", primitive=name, error=f"{type(exc).__name__}: {exc}")
            self.params = None
            return PrimitivePlan(0.0, fault_at_s=0.0, fault_code=FaultCode.BAD_PARAMETER)
        self.params = phys_params
        run = _Motion(primitive, phys, now, time.monotonic())
        if "bin" in phys_params:
            run.bin, run.item = int(phys_params["bin"]), int(phys_params.get("item", 0.0))
        self._run = run
        # suction: the robot models the pressure; the cell says whether the cup seals
        if primitive is Primitive.ATTACH:
            self.robot.set_suction_leak(phys.vacuum_kpa == LEAK_KPA)
        elif primitive is Primitive.EXTRACT and phys.vacuum_kpa == LEAK_KPA:
            self.robot.set_suction_leak(True)
        elif primitive in (Primitive.PLACE, Primitive.RELEASE):
            self.robot.set_suction_leak(False)
        self.ft.contact.wrench_fn = self._wrench_fn(run)
        fault_code = ROBOT_FAULT_CODE if phys.fault_at_s is not None else 0
        self.log.debug(
            "primitive begins",
            primitive=name,
            params=phys_params,
            duration_s=round(phys.duration_s, 3),
            fault_at_s=phys.fault_at_s,
            stall=phys.no_answer,
            detail=phys.detail,
        )
        return PrimitivePlan(phys.duration_s, fault_at_s=phys.fault_at_s, fault_code=fault_code, stall=phys.no_answer)

    def tick(self, now: float) -> None:
        run = self._run
        if run is None:
            return
        phys, t = run.phys, self._cell_s(run, now)
        if phys.disturb_at_s is not None and not run.disturbed and t >= phys.disturb_at_s and run.bin is not None:
            run.disturbed = True
            moved = self.cell.disturb(run.bin, run.item)
            self.log.info("bin contents disturbed", bin=run.bin, item=run.item, moved=moved)
        leak_at = phys.leak_at_s if run.primitive is Primitive.EXTRACT else None
        if leak_at is not None and not run.leaking and t >= leak_at:
            run.leaking = True  # the seal breaks: the pressure rises toward the leak level
            self.robot.set_suction_leak(True)
        if phys.ft_stop_at_s is not None and not run.ft_stopped and t >= phys.ft_stop_at_s:
            run.ft_stopped = True  # the F/T stream drops out for the rest of the motion
            self.ft.stall(max(0.0, phys.duration_s - t) * self.time_scale)

    def end(self, completed: bool, now: float) -> None:
        run, self._run = self._run, None
        if run is None:
            return
        self.ft.contact.clear()
        if run.ft_stopped:
            self.ft.resume()
        stopped = None if completed else self._cell_s(run, now)
        name = run.primitive.name.lower()
        try:
            effect = run.phys.commit(stopped)
        except Exception as exc:  # the world refused the effect: log it, keep serving
            effect = f"effect not applied: {type(exc).__name__}: {exc}"
            self.log.exception("cell model failed to commit", primitive=name)
        self.effects.append((name, completed, effect))
        self.ended[name] += 1
        self.log.debug(
            "primitive ended",
            primitive=name,
            completed=completed,
            stopped_at_s=None if stopped is None else round(stopped, 3),
            effect=effect,
        )

    # --- register params -> physics params ---------------------------------------------------------------------

    def translate(self, primitive: Primitive, p: list[float]) -> dict[str, float]:
        """Register params (PRIMITIVE_PARAMS order, pod frame) -> the params `SimCell.physics` takes."""
        if primitive is Primitive.APPROACH:
            x, y, z, yaw = p[0], p[1], p[2], p[3]
            self.tool = tool = ToolPoint(x, y, yaw, self.frame().locate(x, y), z)
            if tool.located is None:
                return {"x": x, "y": y, "rotated": float(tool.rotated)}  # off the pod: fine for a move
            i, bx, by = tool.located
            return {"bin": float(i), "x": bx, "y": by, "rotated": float(tool.rotated)}
        if primitive is Primitive.EJECT_ITEM:
            i, bx, by = self._tool_on_bin("eject_item")
            assert self.tool is not None
            return {"bin": float(i), "x": bx, "y": by, "rotated": float(self.tool.rotated)}
        if primitive in (Primitive.ATTACH, Primitive.EXTRACT):
            i, bx, by = self._tool_on_bin(primitive.name.lower())
            item = self.item_at(i, bx, by)
            # no item under the cup: an id that is not there (0), so the cup leaks
            return {"bin": float(i), "item": float(item or 0), "x": bx, "y": by}
        if primitive is Primitive.SWEEP:
            distance, _speed, x, y_lo, y_hi, direction = p[:6]
            d = 1 if direction > 0 else -1 if direction < 0 else 0
            if d == 0:
                raise WorldError(f"sweep direction must be -1 or +1, got {direction}")
            frame = self.frame()
            located = frame.locate(x + d * SWEEP_NUDGE_MM, (y_lo + y_hi) / 2)
            if located is None:
                raise WorldError(f"sweep entry ({x:.1f}, {y_lo:.1f}..{y_hi:.1f}) mm lies on no bin of the pod face")
            place = frame.bin(located[0])
            return {
                "bin": float(place.index),
                "x": x - place.x0_mm,
                "direction": float(d),
                "distance": distance,
                "y_lo": y_lo - place.y0_mm,
                "y_hi": y_hi - place.y0_mm,
            }
        return {}  # grasp, retract, place, release, extend_blade, open/close_band: no point of their own

    def item_at(self, bin_index: int, x: float, y: float) -> int | None:
        """The frontmost item of the bin whose front face (x, y extent) contains the bin-relative point."""
        hit = item_under(self.cell.bin(bin_index), x, y)
        return hit.item_id if hit is not None else None

    def _tool_on_bin(self, what: str) -> tuple[int, float, float]:
        if self.tool is None:
            raise WorldError(f"{what} before any approach: the tool is at no bin")
        if self.tool.located is None:
            raise WorldError(f"{what} at ({self.tool.x_mm:.1f}, {self.tool.y_mm:.1f}) mm: no bin there")
        return self.tool.located

    # --- sensors -----------------------------------------------------------------------------------------------

    def _cell_s(self, run: _Motion, now: float) -> float:
        return (now - run.start) / self.time_scale

    def _wrench_fn(self, run: _Motion) -> Callable[[float], Wrench6]:
        phys, rng, scale = run.phys, self.rng, self.time_scale

        def wrench(_t: float) -> Wrench6:
            t = np.array([(time.monotonic() - run.start_mono) / scale])
            f = float(force_trace(phys, t, rng)[0])
            return (0.0, 0.0, -f, 0.0, 0.0, 0.0)

        return wrench


class SimCellDevices:
    """The simulated cell's PLC, robot and F/T sensor, each behind its real protocol, over one `SimCell`."""

    def __init__(self, config: SimCellConfig | None = None) -> None:
        self.config = cfg = config or SimCellConfig()
        self.log = structlog.get_logger("sim.cell")
        self.cell = SimCell(cfg.seed, profile(cfg.faults), rows=cfg.rows, cols=cfg.cols)
        self.plc = PlcSim(cfg.host, cfg.opcua_port)
        self.ft = SimFTSensor(SimFTConfig(host=cfg.host, port=cfg.ft_port, rate_hz=cfg.ft_rate_hz, seed=cfg.seed))
        self.ft.faults.drop_fraction = self.cell.faults.ft_packet_loss
        durations = {k: v for k, v in CELL_DURATIONS_S.items() if k in DEFAULT_DURATIONS_S}
        self.robot = SimRobot(
            SimRobotConfig(host=cfg.host, port=cfg.modbus_port, time_scale=cfg.time_scale, durations_s=durations)
        )
        self.model = CellRobotModel(self.cell, self.frame, self.ft, self.robot, cfg.time_scale, seed=cfg.seed)
        self.robot.model = self.model
        self._frame = PodFrame(pod_layout(self.cell.pod, self.cell.rows, self.cell.cols))
        self._presented = 0  # cell.pods generation last presented at the PLC (0: none yet)
        self.posted: deque[int] = deque(maxlen=KEPT_IDS)  # the latest conveyor item ids posted to the PLC

    def frame(self) -> PodFrame:
        """The pod frame of the pod presented at the station."""
        return self._frame

    async def serve(self, *, task_status: TaskStatus[Endpoints] = anyio.TASK_STATUS_IGNORED) -> None:
        """Start the three servers, present the pod, report the endpoints, then run the conveyor."""
        cfg = self.config
        async with anyio.create_task_group() as tg:
            await start_device(tg, "PLC (OPC UA)", self.plc.serve, cfg.host, cfg.opcua_port)
            modbus_port = await start_device(tg, "robot (Modbus TCP)", self.robot.serve, cfg.host, cfg.modbus_port)
            ft_port = await start_device(tg, "F/T sensor (UDP)", self.ft.serve, cfg.host, cfg.ft_port)
            await self.present_pod(force=True)
            task_status.started(Endpoints(self.plc.url, (cfg.host, modbus_port), (cfg.host, ft_port), cfg.ft_rate_hz))
            await self._conveyor()

    async def present_pod(self, *, force: bool = False) -> bool:
        """Present the cell's pod at the PLC if it is not the one presented (the FC rotated it); True if it was."""
        if not force and self.cell.pods == self._presented:
            return False
        pod = self.cell.pod
        layout = pod_layout(pod, self.cell.rows, self.cell.cols)
        self._frame = PodFrame(layout)  # before the await: the robot acts on the new face from now on
        self._presented = self.cell.pods
        await self.plc.present_pod(SimPod(pod.pod_id, "A", layout))
        self.log.info("pod presented", pod=pod.pod_id, bins=len(pod.bins))
        return True

    async def _conveyor(self) -> None:
        """Post each item; the next one comes after it was acknowledged and a grasp took it (handed over).

        An item a grasp failed to take is still at the pick-up point: the PLC announces it again (its
        photo-eye still sees it), and the controller acknowledges it again. Only a grasp that takes it hands it
        over: an acknowledged item stays the conveyor's until then (a controller that died after its
        acknowledgement finds it there, announced again, when it restarts).
        """
        cell, scale = self.cell, self.config.time_scale
        while True:
            item, index_s, _down_s = cell.next_arrival()  # may rotate the pod when it is full
            again = item.item_id in self.posted
            await self.present_pod()
            await anyio.sleep((0.0 if again else index_s) * scale)
            if again and str(item.item_id) in self.plc.acknowledged:
                self.plc.acknowledged.remove(str(item.item_id))
            w, h, d = item.size_mm
            seq = await self.plc.arrive(
                SimItem(
                    str(item.item_id),
                    length_mm=round(d, 1),
                    width_mm=round(w, 1),
                    height_mm=round(h, 1),
                    weight_kg=round(item.mass_kg, 3),
                ),
                at_pickup=True,
            )
            if not again:
                self.posted.append(item.item_id)
            await _until(partial(self._acknowledged, str(item.item_id)))
            await _until(partial(self._taken_or_missed, item, self.model.ended["grasp"]))
            if cell.arriving is not item:  # a grasp took it: the conveyor handed it over to the cell
                await self.plc.hand_over(seq)

    def _taken_or_missed(self, item: Item, grasps_before: int) -> bool:
        """A grasp took the item off the conveyor, or one ended without taking it."""
        return self.cell.arriving is not item or self.model.ended["grasp"] > grasps_before

    def _acknowledged(self, item_id: str) -> bool:
        return item_id in self.plc.acknowledged


async def _until(condition: Callable[[], bool]) -> None:
    """Wait for a condition on in-process state that has no event of its own (a short poll)."""
    while not condition():  # noqa: ASYNC110 -- world and PLC state are plain attributes
        await anyio.sleep(POLL_S)
