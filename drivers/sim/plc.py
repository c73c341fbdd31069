"""Simulated stow-station PLC: an asyncua OPC UA server with a conveyor, a pod and interlocks.

The simulation (or a test) drives it through a Python API: `arrive`, `present_pod`,
`set_interlock`, plus `inject` for faults (Bad status, wrong variant type) and `hold_reads`
for a PLC that is slow to answer a read. Station state
lives in this object, not in the server, so `serve()` can be cancelled and started again
(same port): the restarted server comes back with the same arrivals, pod and interlocks,
and changes made while it was down show up when it returns.

Address space (namespace `urn:cellctl:sim:plc`, string NodeIds `StowStation.<path>`):
Conveyor.{ArrivalSeq, ArrivalLog, IndexCount, SpeedSetpoint, AtPickup, HandedOver, HandedOverCount}, methods
Conveyor.AcknowledgeItem(item_id: String) -> Boolean and Conveyor.IndexConveyor() -> Boolean;
Pod.{PodSeq, PodId, Face, BinLayout}; Interlocks.{EStopActive, LightCurtainBroken, DoorOpen}.
See `drivers/plc_nodes.py` for the data contract.

The conveyor's transfer record (read-only, what the PLC's photo-eye and tracking know):
- `Conveyor.AtPickup` (String): the ArrivalLog record of the item now at the pick-up point, "" when none. Written
  before the record enters the ArrivalLog (`arrive(..., at_pickup=True)`), so a client that sees an arrival finds
  it there; cleared when the cell takes the item (`hand_over`).
- `Conveyor.HandedOver` (String[]): the latest `history` items the cell took off the conveyor (a grasp lifted
  them from the pick-up point), oldest first, one JSON object each: `n` (1, 2, 3 ...), `seq` (the arrival's),
  `item_id`. `Conveyor.HandedOverCount` (UInt32) is the newest `n`, written after the log (a trigger, as
  ArrivalSeq is). An item the cell acknowledged but did not take (a grasp that failed, a controller that died
  first) is not handed over: it stays at the pick-up point and is announced again.

It is as strict as a real PLC, since integrators point their tools at it:

- a method called with the wrong number of arguments, a wrong-typed or array argument, or an invalid value
  (an empty or overlong item id) answers BadInvalidArgument (per argument: BadTypeMismatch or
  BadInvalidArgument in InputArgumentResults), without a traceback in the log;
- a client write to SpeedSetpoint must be a scalar Double (else BadTypeMismatch), finite and within
  `SPEED_RANGE_MM_S` (else BadOutOfRange), with a Good status (else BadWriteNotSupported); a refused write
  leaves the value as it was. The range is published as the variable's EURange property;
- only the controller's session may call AcknowledgeItem; any other session gets BadUserAccessDenied. There is
  no authentication on this endpoint, so "the controller" is the client that introduces itself with the
  application name `drivers.plc.PlcClient` sets (`CONTROLLER_APPLICATION_NAME`; `controller_name=None` lets
  every session acknowledge). Server-side calls (the Python API, tests) are always allowed;
- the user name "admin" does not get asyncua's remote admin rights (which would make read-only tags writable);
- a port in use makes `serve()` raise the OSError without asyncua's logged traceback.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import anyio
from anyio.abc import TaskStatus
from asyncua import Server, ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.address_space import AddressSpace, AttributeService
from asyncua.server.internal_server import InternalServer
from asyncua.server.internal_session import InternalSession

from drivers.opcua_server import quiet_start, stop_quickly
from drivers.plc_nodes import INTERLOCK_NAMES, SIM_NAMESPACE, BinLayout

_log = logging.getLogger(__name__)

VT = ua.VariantType
SC = ua.StatusCodes


# asyncua annotates NodeId's and StatusCode's fields with its encoding markers (ua.String, ua.Int16, ua.UInt32: bare
# str/int subclasses that only name the wire type), yet takes plain str/int, as it passes them itself: the casts only
# tell mypy so; the values are unchanged.
def _node_id(identifier: str, namespace_index: int) -> ua.NodeId:
    return ua.NodeId(cast(ua.String, identifier), cast(ua.Int16, namespace_index))


def _status_code(code: int) -> ua.StatusCode:
    return ua.StatusCode(cast(ua.UInt32, code))

# The application name `drivers.plc.PlcClient` connects with (its `client.name`): the controller's session.
CONTROLLER_APPLICATION_NAME = "cellctl PLC driver"
SPEED_RANGE_MM_S = (0.0, 1000.0)  # what the conveyor drive accepts as SpeedSetpoint
MAX_ITEM_ID_LEN = 128

# driver-side variable name -> (browse path under StowStation, variant type, writable by clients)
_VARIABLES: dict[str, tuple[str, ua.VariantType, bool]] = {
    "conveyor.arrival_seq": ("Conveyor.ArrivalSeq", VT.UInt32, False),
    "conveyor.arrival_log": ("Conveyor.ArrivalLog", VT.String, False),
    "conveyor.index_count": ("Conveyor.IndexCount", VT.UInt32, False),
    "conveyor.speed_setpoint": ("Conveyor.SpeedSetpoint", VT.Double, True),
    "conveyor.at_pickup": ("Conveyor.AtPickup", VT.String, False),
    "conveyor.handed_over": ("Conveyor.HandedOver", VT.String, False),
    "conveyor.handed_over_count": ("Conveyor.HandedOverCount", VT.UInt32, False),
    "pod.pod_seq": ("Pod.PodSeq", VT.UInt32, False),
    "pod.pod_id": ("Pod.PodId", VT.String, False),
    "pod.face": ("Pod.Face", VT.String, False),
    "pod.bin_layout": ("Pod.BinLayout", VT.String, False),
    "interlocks.estop_active": ("Interlocks.EStopActive", VT.Boolean, False),
    "interlocks.light_curtain_broken": ("Interlocks.LightCurtainBroken", VT.Boolean, False),
    "interlocks.door_open": ("Interlocks.DoorOpen", VT.Boolean, False),
}


@dataclass(frozen=True)
class SimItem:
    """An item put on the conveyor. Not validated: tests post bad dimensions on purpose."""

    item_id: str
    length_mm: float
    width_mm: float
    height_mm: float
    weight_kg: float


class ReadHold:
    """Client reads of one variable that the simulated PLC keeps unanswered until `release()`.

    The server answers a connection's requests in order, so requests sent after a held read
    wait too; notifications for a Publish request it already holds still go out.
    """

    def __init__(self) -> None:
        self.parked = 0  # client reads that reached the hold so far
        self._first = anyio.Event()
        self._released = anyio.Event()

    async def wait_parked(self) -> None:
        """Wait until a client read is being held."""
        await self._first.wait()

    def release(self) -> None:
        """Answer the held reads (and every later one) normally."""
        self._released.set()

    @property
    def released(self) -> bool:
        return self._released.is_set()

    async def _park(self) -> None:
        self.parked += 1
        self._first.set()
        await self._released.wait()


@dataclass(frozen=True)
class SimPod:
    """A pod face presented at the station; `layout` may be a raw string to post bad JSON."""

    pod_id: str
    face: str
    layout: BinLayout | str


class PlcSim:
    """The simulated PLC. `serve()` runs the OPC UA server; the other methods change station state."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        path: str = "/cellctl/plc",
        history: int = 64,
        controller_name: str | None = CONTROLLER_APPLICATION_NAME,
    ) -> None:
        self.host = host
        self.port = port  # 0 until first bound; restarts reuse the bound port
        self.path = path
        self.controller_name = controller_name  # None: any session may acknowledge
        self.arrival_seq = 0
        self._log: deque[str] = deque(maxlen=history)  # JSON records, oldest first
        self.acknowledged: deque[str] = deque(maxlen=history)  # no more than the arrivals it may refer to
        self.at_pickup = ""  # the ArrivalLog record of the item at the pick-up point ("" none)
        self._handed: deque[str] = deque(maxlen=history)  # JSON hand-over records, oldest first
        self.handed_over_count = 0
        self.index_count = 0
        self.speed_setpoint = 500.0
        self.pod_seq = 0
        self._pod: SimPod | None = None
        self.interlocks: dict[str, bool] = dict.fromkeys(INTERLOCK_NAMES, False)
        self._server: Server | None = None
        self._ids: dict[str, ua.NodeId] = {}
        self._holds: dict[str, ReadHold] = {}
        self._up = anyio.Event()

    @property
    def url(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}{self.path}"

    @property
    def serving(self) -> bool:
        return self._server is not None

    # ------------------------------------------------------------------ server

    async def serve(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the OPC UA server until cancelled; reports the bound port via `task_status`."""
        server = Server(iserver=_StrictInternalServer(self._check_write))
        await server.init()
        server.set_endpoint(f"opc.tcp://{self.host}:{self.port}{self.path}")
        server.set_server_name("cellctl simulated stow-station PLC")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace(SIM_NAMESPACE)
        await self._build(server, idx)
        server.subscribe_server_callback(CallbackType.PreRead, self._before_read)
        with quiet_start():  # a port in use: the OSError goes up, without asyncua's traceback in the log
            await server.start()
        try:
            assert server.bserver is not None
            self.port = server.bserver.port
            self._server = server
            for name in _VARIABLES:  # catch up with changes made while the address space was being built
                await self._write(name, self._current(name))
            self._up.set()
            _log.info("simulated PLC listening on %s", self.url)
            task_status.started(self.port)
            await anyio.sleep_forever()
        finally:
            self._server = None
            self._up = anyio.Event()
            with anyio.CancelScope(shield=True):
                # setpoints written by clients are retained across a restart, like PLC retain memory
                with contextlib.suppress(Exception):
                    speed = await server.get_node(self._ids["conveyor.speed_setpoint"]).read_value()
                    self.speed_setpoint = float(speed)
                await stop_quickly(server)

    async def wait_serving(self) -> None:
        await self._up.wait()

    async def _build(self, server: Server, idx: int) -> None:
        station = await server.nodes.objects.add_object(_node_id("StowStation", idx), "StowStation")
        folders = {}
        for group in ("Conveyor", "Pod", "Interlocks"):
            folders[group] = await station.add_object(_node_id(f"StowStation.{group}", idx), group)
        self._ids = {}
        for name, (path, vtype, writable) in _VARIABLES.items():
            group, leaf = path.split(".")
            nodeid = _node_id(f"StowStation.{path}", idx)
            value = self._current(name)
            var = await folders[group].add_variable(nodeid, leaf, ua.Variant(value, vtype), vtype)
            if writable:
                await var.set_writable()
            self._ids[name] = nodeid
            if name == "conveyor.speed_setpoint":
                lo, hi = SPEED_RANGE_MM_S
                await var.add_property(_node_id(f"StowStation.{path}.EURange", idx), "0:EURange", ua.Range(lo, hi))
        conveyor = folders["Conveyor"]
        await conveyor.add_method(
            _node_id("StowStation.Conveyor.AcknowledgeItem", idx),
            "AcknowledgeItem",
            _strict_method(self._acknowledge_item, [VT.String], VT.Boolean),
            [VT.String],
            [VT.Boolean],
        )
        await conveyor.add_method(
            _node_id("StowStation.Conveyor.IndexConveyor", idx),
            "IndexConveyor",
            _strict_method(self._index_conveyor, [], VT.Boolean),
            [],
            [VT.Boolean],
        )

    def _current(self, name: str) -> Any:
        """The state value behind a variable (used to (re)build the address space)."""
        pod = self._pod
        match name:
            case "conveyor.arrival_seq":
                return self.arrival_seq
            case "conveyor.arrival_log":
                return list(self._log)
            case "conveyor.index_count":
                return self.index_count
            case "conveyor.speed_setpoint":
                return self.speed_setpoint
            case "conveyor.at_pickup":
                return self.at_pickup
            case "conveyor.handed_over":
                return list(self._handed)
            case "conveyor.handed_over_count":
                return self.handed_over_count
            case "pod.pod_seq":
                return self.pod_seq
            case "pod.pod_id":
                return pod.pod_id if pod else ""
            case "pod.face":
                return pod.face if pod else ""
            case "pod.bin_layout":
                return _layout_text(pod.layout) if pod else ""
            case _:
                return self.interlocks[name.split(".", 1)[1]]

    async def _write(self, name: str, value: Any, *, vtype: ua.VariantType | None = None, status: int = 0) -> None:
        """Write a tag as the PLC program would; a no-op while the server is down (state is kept here)."""
        server = self._server
        if server is None:
            return
        nodeid = self._ids[name]
        if status and _status_code(status).is_bad():
            dv = ua.DataValue(ua.Variant(None, VT.Null), StatusCode=_status_code(status))
        else:
            dv = ua.DataValue(ua.Variant(value, vtype or _VARIABLES[name][1]), StatusCode=_status_code(status))
        # The address space refuses a variant type other than the current one. A PLC program may
        # write anything (that is what `inject` simulates), so clear the old value first; no await
        # in between, so no client request can observe the null.
        node = server.iserver.aspace.get(nodeid)
        if node is not None:
            node.attributes[ua.AttributeIds.Value].value = None
        await server.write_attribute_value(nodeid, dv)

    # ------------------------------------------------------------------ station API

    async def arrive(self, item: SimItem, *, at_pickup: bool = False) -> int:
        """An item arrives on the conveyor; returns its arrival sequence number.

        `at_pickup`: it stops at the pick-up point (AtPickup names it before the ArrivalLog has it)."""
        self.arrival_seq += 1
        text = json.dumps({"seq": self.arrival_seq, **dataclasses.asdict(item)}, allow_nan=True)
        if at_pickup:
            self.at_pickup = text
            await self._write("conveyor.at_pickup", text)
        await self._append_record(text)
        return self.arrival_seq

    async def hand_over(self, seq: int) -> int:
        """The cell took the item of arrival `seq` off the conveyor: record it (HandedOver, then its count) and
        clear the pick-up point if it held that arrival; returns the hand-over's number `n`."""
        record = next((r for r in (self.at_pickup, *reversed(self._log)) if r and _record_seq(r) == seq), None)
        item_id = _record_item_id(record) if record is not None else None
        if item_id is None:
            raise ValueError(f"no arrival with seq {seq} in the ArrivalLog: nothing to hand over")
        if self.at_pickup == record:
            self.at_pickup = ""
            await self._write("conveyor.at_pickup", "")
        self.handed_over_count += 1
        self._handed.append(json.dumps({"n": self.handed_over_count, "seq": seq, "item_id": item_id}))
        await self._write("conveyor.handed_over", list(self._handed))
        await self._write("conveyor.handed_over_count", self.handed_over_count)
        return self.handed_over_count

    @property
    def handed_over(self) -> list[str]:
        """The HandedOver records (JSON), oldest first."""
        return list(self._handed)

    async def arrive_raw(self, record: str) -> None:
        """Append a verbatim ArrivalLog record (fault injection: garbage, bad fields)."""
        await self._append_record(record)

    async def _append_record(self, record: str) -> None:
        self._log.append(record)
        # log first, then the trigger: a client reading the log after seeing the seq has the record
        await self._write("conveyor.arrival_log", list(self._log))
        await self._write("conveyor.arrival_seq", self.arrival_seq)

    async def present_pod(self, pod: SimPod) -> int:
        """Present a pod face at the station; returns its generation (PodSeq)."""
        self._pod = pod
        self.pod_seq += 1
        await self._write("pod.pod_seq", 0)  # 0 = "updating": clients ignore the fields meanwhile
        await self._write("pod.pod_id", pod.pod_id)
        await self._write("pod.face", pod.face)
        await self._write("pod.bin_layout", _layout_text(pod.layout))
        await self._write("pod.pod_seq", self.pod_seq)
        return self.pod_seq

    async def set_interlock(self, name: str, value: bool) -> None:
        """Set an interlock (`estop_active`, `light_curtain_broken`, `door_open`); True = tripped."""
        if name not in self.interlocks:
            raise KeyError(f"unknown interlock {name!r}; known: {list(self.interlocks)}")
        self.interlocks[name] = value
        await self._write(f"interlocks.{name}", value)

    async def inject(
        self, name: str, value: Any = None, *, vtype: ua.VariantType | None = None, status: int = 0
    ) -> None:
        """Fault injection: write `value` with an arbitrary variant type and/or a (Bad) status code.

        Station state is not changed; the next regular write restores a good value.
        """
        if name not in _VARIABLES:
            raise KeyError(f"unknown variable {name!r}; known: {list(_VARIABLES)}")
        if self._server is None:
            raise RuntimeError("the simulated PLC is not serving")
        await self._write(name, value, vtype=vtype, status=status)

    def hold_reads(self, name: str) -> ReadHold:
        """Fault injection: leave client reads of `name` unanswered until the hold is released."""
        if name not in _VARIABLES:
            raise KeyError(f"unknown variable {name!r}; known: {list(_VARIABLES)}")
        old = self._holds.get(name)
        if old is not None:
            old.release()
        hold = self._holds[name] = ReadHold()
        return hold

    async def _before_read(self, event: ServerItemCallback, _dispatcher: Any) -> None:
        if not event.is_external or not self._holds:
            return
        wanted = {rv.NodeId for rv in event.request_params.NodesToRead}
        for name, hold in list(self._holds.items()):
            if hold.released:
                del self._holds[name]
            elif self._ids.get(name) in wanted:
                await hold._park()

    async def read(self, name: str) -> Any:
        """Current server-side value of a variable (e.g. what a client wrote)."""
        if self._server is None:
            raise RuntimeError("the simulated PLC is not serving")
        return await self._server.get_node(self._ids[name]).read_value()

    def _check_write(self, wv: ua.WriteValue) -> int | None:
        """The Bad status a client write gets (the value is left unchanged), or None to let it through."""
        if wv.AttributeId != ua.AttributeIds.Value or wv.NodeId != self._ids.get("conveyor.speed_setpoint"):
            return None
        dv = wv.Value
        if wv.IndexRange:
            return SC.BadIndexRangeInvalid  # a scalar has no index range
        if dv.StatusCode is not None and not dv.StatusCode.is_good():
            return SC.BadWriteNotSupported  # the drive takes a setpoint, not a quality
        variant = dv.Value
        if (
            variant is None
            or variant.VariantType != VT.Double
            or variant.is_array
            or not isinstance(variant.Value, float)
        ):
            return SC.BadTypeMismatch
        lo, hi = SPEED_RANGE_MM_S
        if not (math.isfinite(variant.Value) and lo <= variant.Value <= hi):
            return SC.BadOutOfRange
        return None

    # ------------------------------------------------------------------ methods

    async def _acknowledge_item(self, item_id: str) -> bool:
        if not 0 < len(item_id) <= MAX_ITEM_ID_LEN:
            raise _Refused(SC.BadInvalidArgument, [SC.BadInvalidArgument])
        caller = _caller.get()
        if caller is not None and self.controller_name is not None and caller.application_name != self.controller_name:
            _log.info("AcknowledgeItem refused: %r is not the controller's session", caller.application_name)
            raise _Refused(SC.BadUserAccessDenied)
        known = any(_record_item_id(rec) == item_id for rec in self._log)
        if not known or item_id in self.acknowledged:
            return False
        self.acknowledged.append(item_id)
        return True

    async def _index_conveyor(self) -> bool:
        if any(self.interlocks.values()):
            return False  # no motion while an interlock is tripped
        self.index_count += 1
        await self._write("conveyor.index_count", self.index_count)
        return True


# ---------------------------------------------------------------------- strictness


class _Refused(Exception):
    """Raised by a method handler: answer the call with `status` (and per-argument results)."""

    def __init__(self, status: int, arguments: list[int] | None = None) -> None:
        super().__init__(_status_code(status).name)
        self.status = status
        self.arguments = arguments or []


def _call_result(status: int, arguments: list[int]) -> ua.CallMethodResult:
    return ua.CallMethodResult(
        StatusCode=_status_code(status), InputArgumentResults=[_status_code(a) for a in arguments]
    )


def _argument_status(arg: Any, vtype: ua.VariantType) -> int:
    if not isinstance(arg, ua.Variant) or arg.VariantType != vtype or arg.is_array or arg.Value is None:
        return SC.BadTypeMismatch
    return SC.Good


def _strict_method(
    handler: Callable[..., Awaitable[Any]], inputs: list[ua.VariantType], output: ua.VariantType
) -> Callable[..., Awaitable[Any]]:
    """An asyncua method callback that checks the arguments before `handler` sees their values.

    Bad arguments are answered with a CallMethodResult (BadInvalidArgument), never an exception: asyncua's
    MethodService turns any exception into BadUnexpectedError and logs its traceback.
    """

    async def call(_parent: ua.NodeId, *args: Any) -> Any:
        if len(args) != len(inputs):  # each missing or surplus argument is invalid, the others checked
            checked = [_argument_status(a, t) for a, t in zip(args, inputs, strict=False)]
            surplus = [SC.BadInvalidArgument] * (len(args) - len(checked))
            return _call_result(SC.BadInvalidArgument, checked + surplus)
        statuses = [_argument_status(a, t) for a, t in zip(args, inputs, strict=True)]
        if any(st != SC.Good for st in statuses):
            return _call_result(SC.BadInvalidArgument, statuses)
        try:
            result = await handler(*(a.Value for a in args))
        except _Refused as refused:
            return _call_result(refused.status, refused.arguments or [SC.Good] * len(args))
        return [ua.Variant(result, output)]

    return call


# the client session whose request is being served (None: a server-side call through the Python API)
_caller: contextvars.ContextVar[_SimSession | None] = contextvars.ContextVar("plc_sim_caller", default=None)


class _SimSession(InternalSession):
    """A client session that remembers the application name the client gave and serves calls as itself."""

    application_name: str | None = None

    async def create_session(self, params: ua.CreateSessionParameters, sockname: Any = None) -> Any:
        desc = params.ClientDescription
        self.application_name = desc.ApplicationName.Text if desc is not None and desc.ApplicationName else None
        return await super().create_session(params, sockname=sockname)

    async def call(self, params: list[ua.CallMethodRequest]) -> list[ua.CallMethodResult]:
        token = _caller.set(self)
        try:
            return await super().call(params)
        finally:
            _caller.reset(token)


_ADMIN = User(role=UserRole.Admin)  # asyncua's defaults for these parameters
_ANONYMOUS = User(role=UserRole.Anonymous)


class _StrictAttributeService(AttributeService):
    """Client writes pass `check` first; a write it refuses gets its status and changes nothing."""

    def __init__(self, aspace: AddressSpace, check: Callable[[ua.WriteValue], int | None]) -> None:
        super().__init__(aspace)
        self._check = check

    async def write(self, params: ua.WriteParameters, user: User = _ADMIN) -> list[ua.StatusCode]:
        results: list[ua.StatusCode] = []
        for wv in params.NodesToWrite:
            refused = self._check(wv)
            if refused is not None:
                results.append(_status_code(refused))
            else:
                results.extend(await super().write(ua.WriteParameters(NodesToWrite=[wv]), user=user))
        return results


class _StrictInternalServer(InternalServer):
    def __init__(self, check: Callable[[ua.WriteValue], int | None]) -> None:
        super().__init__()
        self.allow_remote_admin = False  # asyncua gives any client calling itself "admin" write access to everything
        self.attribute_service = _StrictAttributeService(self.aspace, check)

    def create_session(self, name: str, user: User = _ANONYMOUS, external: bool = False) -> InternalSession:
        return _SimSession(self, self.aspace, self.subscription_service, name, user=user, external=external)


def _layout_text(layout: BinLayout | str) -> str:
    return layout if isinstance(layout, str) else layout.model_dump_json()


def _record_seq(record: str) -> int | None:
    try:
        data = json.loads(record)
    except ValueError:
        return None
    seq = data.get("seq") if isinstance(data, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def _record_item_id(record: str) -> str | None:
    try:
        data = json.loads(record)
    except ValueError:
        return None
    item_id = data.get("item_id") if isinstance(data, dict) else None
    return item_id if isinstance(item_id, str) else None
