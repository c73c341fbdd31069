"""The FC-facing OPC UA server: the cell as a PackML unit (OPC 30050), its reports, the FC's pick requests.

    FcServer(config, control, store)          `url = await tg.start(fc.run)`; cancel the task to stop it
     │  `await fc.prepare()` first builds the address space (~2 s of CPU on the loop: asyncua's standard nodes,
     │  the nodeset) while nothing time-critical runs; `control` may be attached after that, before `run`
     │  asyncua Server at opc.tcp://host:port/cellctl/fc (NoSecurity), namespace `urn:cellctl:fc`
     ├─ PackML types from Opc.Ua.PackML.NodeSet2.xml (`import_xml`, ~0.3 s)
     ├─ refresh task, every refresh_s: control.state() / counters() -> the variables below
     ├─ delivery task: notify_report(entry), pending at start, unacknowledged after redeliver_after_s
     │     -> CellReportEventType events; store.mark_delivered; PendingReports / PendingReportCount
     └─ methods: PackML commands -> control.allowed / control.post; AcknowledgeReports, RequestPick -> store

The address space. String NodeIds in our namespace spell the browse path (`ns=<ours>;s=Cell.Status.UnitModeCurrent`);
browse names marked P: are in the PackML namespace http://opcfoundation.org/UA/PackML/, the others in ours
unless 0: (OPC UA's own):

    Objects
    ├─ Cell                                   P:PackMLBaseObjectType (the nodeset's, completed from its types)
    │  ├─ P:BaseStateMachine                  0:CurrentState (+ 0:Id, 0:Number, 0:EffectiveDisplayName):
    │  │  │                                     Aborting 8 | Aborted 9 | Cleared 19; 0:AvailableStates/Transitions
    │  │  ├─ P:Abort()  P:Clear()
    │  │  └─ P:MachineState                   0:CurrentState (+ 0:Id, 0:Number), in Cleared:
    │  │     │                                  Stopped 2 | Stopping 7 | Clearing 1 | Running 18
    │  │     ├─ P:Stop()  P:Reset()
    │  │     └─ P:ExecuteState                0:CurrentState (+ 0:Id, 0:Number), in Running: Idle 4 | Starting 3 |
    │  │        │                               Execute 6 | Holding 10 | Held 11 | ... | Complete 17
    │  │        └─ P:Start(Parameter[], ignored)  P:Hold()  P:Unhold()  P:Suspend()  P:Unsuspend()  P:Reset()
    │  │           P:ToComplete()
    │  ├─ P:Status     P:UnitModeCurrent (1 = Produce), P:UnitSupportedModes, P:CurMachSpeed (reports/min over
    │  │               the last minute), P:MachSpeed (0: no setpoint), P:EquipmentBlocked, P:EquipmentStarved
    │  ├─ P:Admin      P:ProdProcessedCount, P:ProdDefectiveCount (PackMLCountDataType[]), P:StopReason,
    │  │               P:Alarm, P:AlarmHistory, P:Warning (PackMLAlarmDataType[]) and their P:*Extent,
    │  │               P:StateCurrentTime, P:StateCumulativeTime (Int32[mode][state], s), P:ModeCurrentTime,
    │  │               P:ModeCumulativeTime (Int32[mode], s)
    │  ├─ P:PackMLVersion  P:TagID
    │  └─ P:SetUnitMode(1 only)  P:SetMachSpeed()  P:SetProduct()  P:SetParameter()  (the last three: BadNotSupported)
    └─ Cellctl                                ours
       ├─ StateCurrent (Int32, PackTags 0..17)  StateName  ChartState  AllowedCommands (String[])
       │  LastCommandResult (why the last command was taken or refused)
       ├─ Counters     Cycles Reports Stows Picks Done Handoffs Faults Interrupted (UInt32),
       │               HandoffsByReason FaultsByReason (String: a JSON object reason -> count)
       ├─ CurrentTask  TaskId Kind ItemId BinId
       ├─ Alarm  StopReason
       ├─ PendingReports (String[]: the oldest `pending_shown` unacknowledged, one JSON object each)
       │  PendingReportCount (UInt32: all of them)
       ├─ AcknowledgeReports(ReportIds: UInt64[]) -> Acknowledged: UInt32
       └─ RequestPick(ItemId, ProductId, Pod, Bin: String) -> TaskId: String
    Types/EventTypes/BaseEventType/CellReportEventType   ours (s=CellReportEventType): ReportId (UInt64), TaskId,
        Kind (report | handoff), Outcome, ItemId, BinId, Reason (String), Attempts (UInt32), Payload (String: the
        report as JSON); emitted by the Server object (i=2253), SourceNode Cellctl, Severity 100 (500: a handoff)

How it behaves:
- The three CurrentStates follow OPC 30050's nesting: a machine that is not active (ExecuteState while Stopped,
  MachineState while Aborted) reads BadStateNotActive. The effective PackTags state is BaseStateMachine's
  CurrentState.EffectiveDisplayName and, as a number, Cellctl.StateCurrent.
- A command method posts its event when `control.allowed(event)`; otherwise it answers BadInvalidState. An OPC UA
  status code carries no text, and asyncua fills no DiagnosticInfos for a Call, so the text naming the state and
  the command ("Unhold refused: the cell is in Execute (6) ...") is in Cellctl.LastCommandResult and the log.
  A Good answer means the command was posted, not that the state was reached: watch the state variables.
- Reports are delivered at least once as events, and exactly once by id: the FC acknowledges the ReportIds it has
  recorded (AcknowledgeReports); an unacknowledged report is sent again every redeliver_after_s, after a restart
  all pending ones at once, and a reconnecting FC finds them in PendingReports.
- RequestPick validates its arguments (BadInvalidArgument; InputArgumentResults and InputArgumentDiagnosticInfos
  name the argument) and queues the request durably in the store (a full queue: BadResourceUnavailable).
- Store calls run in a worker thread (`anyio.to_thread`): they commit with synchronous=FULL, an fsync that takes
  milliseconds on a real disk, and the loop they would block also runs the cell. `CellStore` is thread-safe.

The PackML nodeset is OPC Foundation's (UA-Nodeset, OPC Foundation MIT License 1.00), taken from the npm package
node-opcua-nodesets@2.185.0 by `scripts/fetch-nodesets.sh` (sha256-pinned; `make test` and `make run` run it).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast

import anyio
import structlog
from anyio.abc import TaskStatus
from asyncua import Node, Server, ua
from asyncua.common.instantiate_util import _instantiate_node  # asyncua's one-node step (see _instantiate_packml)
from asyncua.common.ua_utils import get_node_supertypes

from cellctl.fc.config import FcConfig
from cellctl.fc.control import CellControl, CellCounters
from cellctl.fc.packml import COMMANDS, METHOD_EVENTS, PackMLState, levels, packml_state
from cellctl.fc.store import OutboxEntry, RequestQueueFull
from drivers.opcua_server import quiet_start, stop_quickly

__all__ = ["PACKML_NAMESPACE", "FcServer", "FcServerError", "NodesetMissing", "ReportStore"]

log = structlog.get_logger("fc")

PACKML_NAMESPACE = "http://opcfoundation.org/UA/PackML/"
VT = ua.VariantType
SC = ua.StatusCodes
REDELIVER_BATCH = 1000  # reports looked at per redelivery pass (the oldest first)
ALARM_HISTORY = 10  # alarms kept in Admin.AlarmHistory
MODES = 4  # ProductionMaintenanceModeEnum: Invalid 0, Produce 1, Maintenance 2, Manual 3
PRODUCE = 1
# PackML type ids in the nodeset (ns=PackML;i=...).
_BASE_OBJECT, _BASE_SM, _MACHINE_SM, _EXECUTE_SM, _STATUS, _ADMIN, _MODE_ENUM = 6, 3, 2, 1, 4, 5, 11
_NO_TIME = datetime(1601, 1, 1, tzinfo=UTC)  # OPC UA's "no date"
# Admin members we serve; the nodeset's other optional ones are removed rather than left empty.
_ADMIN_SERVED = frozenset({
    "ProdProcessedCount", "ProdDefectiveCount", "StopReason", "StopReasonExtent", "Alarm", "AlarmExtent",
    "AlarmHistory", "AlarmHistoryExtent", "Warning", "WarningExtent", "StateCurrentTime", "StateCumulativeTime",
    "ModeCurrentTime", "ModeCumulativeTime",
})  # fmt: skip
_PIECE = ua.EUInformation(  # UNECE Rec. 20 "H87" (piece), as OPC UA encodes unit ids
    NamespaceUri="http://www.opcfoundation.org/UA/units/un/cefact",
    UnitId=(ord("H") << 16) | (ord("8") << 8) | ord("7"),
    DisplayName=ua.LocalizedText("pc"),
    Description=ua.LocalizedText("piece"),
)
_PICK_ARGS = ("ItemId", "ProductId", "Pod", "Bin")
_STORE_FIELDS = {"item_id": 0, "product_id": 1, "pod": 2, "bin_id": 3}


# asyncua annotates NodeId's, StatusCode's and DataValue's fields with its encoding markers (ua.String, ua.Int16,
# ua.UInt32, ua.DateTime: bare subclasses that only name the wire type), yet takes plain values: the casts only tell
# mypy so (as drivers/sim/plc.py does).
def _nid(identifier: str | int, namespace_index: int = 0) -> ua.NodeId:
    return ua.NodeId(cast("ua.Int32 | ua.String", identifier), cast(ua.Int16, namespace_index))


def _status(code: int) -> ua.StatusCode:
    return ua.StatusCode(cast(ua.UInt32, code))


def _child_id(parent: ua.NodeId, name: str) -> ua.NodeId:
    """`Cell.Status` + `UnitModeCurrent`: string NodeIds that spell the browse path."""
    assert isinstance(parent.Identifier, str), parent
    return _nid(f"{parent.Identifier}.{name}", parent.NamespaceIndex)


_STATE_TYPES = (_nid(ua.ObjectIds.StateType), _nid(ua.ObjectIds.InitialStateType))


class FcServerError(Exception):
    """The FC server cannot be built (its nodeset is missing or unusable)."""


class NodesetMissing(FcServerError, FileNotFoundError):
    """The PackML nodeset file is not there: `make` (or scripts/fetch-nodesets.sh) fetches it."""


class ReportStore(Protocol):
    """What the server uses of `cellctl.fc.store.CellStore`."""

    def pending(self, limit: int | None = None) -> list[OutboxEntry]: ...

    def pending_count(self) -> int: ...

    def ack(self, report_ids: Iterable[int]) -> int: ...

    def mark_delivered(self, report_id: int) -> None: ...

    def add_request(
        self, item_id: str, product_id: str, pod: str, bin_id: str, *, reference_image_ids: Sequence[str] = ()
    ) -> str: ...


@dataclass(frozen=True, slots=True)
class _Machine:
    """One of the three PackML state machines: its CurrentState nodes and its states' NodeIds in the nodeset."""

    current: ua.NodeId
    state_id: ua.NodeId
    number: ua.NodeId
    states: dict[str, ua.NodeId]


class _Values:
    """Writes values server-side, skipping a write that would not change what clients see."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._last: dict[ua.NodeId, tuple[object, object]] = {}

    async def put(self, nodeid: ua.NodeId, value: Any, vtype: ua.VariantType) -> None:
        key = (value, vtype)
        if self._last.get(nodeid) == key:
            return
        self._last[nodeid] = key
        now = datetime.now(UTC)
        await self._server.write_attribute_value(
            nodeid, ua.DataValue(ua.Variant(value, vtype), SourceTimestamp=cast(ua.DateTime, now),
                                  ServerTimestamp=cast(ua.DateTime, now))
        )

    async def inactive(self, nodeid: ua.NodeId) -> None:
        """A variable of a state machine that is not active: no value, BadStateNotActive."""
        key = (None, SC.BadStateNotActive)
        if self._last.get(nodeid) == key:
            return
        self._last[nodeid] = key
        await self._server.write_attribute_value(
            nodeid, ua.DataValue(ua.Variant(), StatusCode=_status(SC.BadStateNotActive))
        )


class _StateClock:
    """Seconds in the current PackTags state and in each state so far (Admin.StateCurrentTime / ...Cumulative)."""

    def __init__(self, now: float) -> None:
        self.started = now
        self.state = PackMLState.UNDEFINED
        self.since = now
        self.total = [0.0] * len(PackMLState)

    def update(self, state: PackMLState, now: float) -> None:
        if state is not self.state:
            self.total[self.state] += now - self.since
            self.state, self.since = state, now

    def current(self, now: float) -> list[list[int]]:
        rows = [[0] * len(PackMLState) for _ in range(MODES)]
        rows[PRODUCE][self.state] = int(now - self.since)
        return rows

    def cumulative(self, now: float) -> list[list[int]]:
        rows = [[0] * len(PackMLState) for _ in range(MODES)]
        for state, seconds in enumerate(self.total):
            rows[PRODUCE][state] = int(seconds + (now - self.since if state == self.state else 0.0))
        return rows


class _AlarmBook:
    """When the cell's alarm and stop reason appeared, and the alarms it had (Admin.Alarm, AlarmHistory, ...)."""

    def __init__(self) -> None:
        self.alarm = ""
        self.alarm_at = _NO_TIME
        self.history: deque[tuple[str, datetime, datetime]] = deque(maxlen=ALARM_HISTORY)  # text, raised, cleared
        self.stop_reason = ""
        self.stop_at = _NO_TIME

    def update(self, alarm: str, stop_reason: str) -> None:
        now = datetime.now(UTC)
        if alarm != self.alarm:
            if self.alarm:
                self.history.append((self.alarm, self.alarm_at, now))
            self.alarm, self.alarm_at = alarm, now
        if stop_reason != self.stop_reason:
            self.stop_reason, self.stop_at = stop_reason, now


class _Speed:
    """Reports per minute over the last minute, from (time, total) samples once a second."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque(maxlen=62)

    def update(self, now: float, total: int) -> float:
        if not self._samples or now - self._samples[-1][0] >= 1.0:
            self._samples.append((now, total))
        while len(self._samples) > 1 and now - self._samples[0][0] > 60.0:
            self._samples.popleft()
        t0, n0 = self._samples[0]
        return 0.0 if now - t0 < 1.0 else (total - n0) * 60.0 / (now - t0)


class FcServer:
    """The FC's OPC UA server (see the module docstring): `url = await tg.start(FcServer(...).run)`."""

    def __init__(self, config: FcConfig, control: CellControl | None, store: ReportStore) -> None:
        self.config = config
        self._control = control
        self.store = store
        self._prepared: Server | None = None
        self._port: int | None = None
        self._inbox_send, self._inbox = anyio.create_memory_object_stream[OutboxEntry](max_buffer_size=1000)
        self._sent: dict[int, float] = {}  # report id -> monotonic time of its last event
        self._queue_lock = anyio.Lock()
        self._server: Server | None = None
        self._ids: dict[str, ua.NodeId] = {}
        self._machines: tuple[_Machine, _Machine, _Machine] | None = None
        self._effective: ua.NodeId | None = None
        self._values: _Values | None = None
        self._event: Any = None  # asyncua EventGenerator of CellReportEventType
        self._clock = _StateClock(time.monotonic())
        self._alarms = _AlarmBook()
        self._speed = _Speed()
        self._last_command = ""
        self._oldest_pending: OutboxEntry | None = None
        self._pending_count = 0
        self._cellctl: ua.NodeId | None = None

    @property
    def control(self) -> CellControl:
        """The cell this server shows and commands (attach it before `run`)."""
        if self._control is None:
            raise FcServerError("the FC server has no cell attached")
        return self._control

    @control.setter
    def control(self, control: CellControl) -> None:
        self._control = control

    async def prepare(self) -> None:
        """Build the address space now (asyncua's standard nodes and the PackML nodeset: seconds of CPU that
        block the event loop) rather than in `run`, which would block a loop that already runs device links."""
        if self._prepared is None:
            self._prepared = await self._build()

    @property
    def url(self) -> str:
        """The endpoint URL; once serving, with the port it got (the configured one may be 0)."""
        return self.config.url(self._port)

    def notify_report(self, entry: OutboxEntry) -> None:
        """A report was committed to the outbox: send its event now (never blocks; while the server is down or
        behind, the redelivery pass sends it instead)."""
        with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._inbox_send.send_nowait(entry)

    async def run(self, *, task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; `task_status.started(url)` once clients can connect. A port in use raises the
        OSError (without asyncua's logged traceback)."""
        if self._control is None:
            raise FcServerError("the FC server has no cell attached")
        server = self._prepared if self._prepared is not None else await self._build()
        self._prepared = None  # one run per build: a stopped asyncua server is not started again
        with quiet_start():
            await server.start()
        try:
            assert server.bserver is not None
            self._port = server.bserver.port
            self._server = server
            await self._publish()
            await self._refresh_queue()
            log.info("FC OPC UA server listening", url=self.url, namespace=self.config.namespace)
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._refresh_loop)
                tg.start_soon(self._deliver_loop)
                task_status.started(self.url)
        finally:
            self._server = None
            with anyio.CancelScope(shield=True):
                await stop_quickly(server)

    # -- building the address space --------------------------------------------------------------------------

    async def _build(self) -> Server:
        path = Path(self.config.nodeset)
        if not await anyio.Path(path).is_file():
            raise NodesetMissing(f"{path}: the PackML nodeset (Opc.Ua.PackML.NodeSet2.xml) is missing; `make` fetches "
                                 "it (or run `sh scripts/fetch-nodesets.sh`)")
        server = Server()
        await server.init()
        server.set_endpoint(self.config.url())
        server.set_server_name(self.config.server_name)
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace(self.config.namespace)
        try:
            await server.import_xml(str(path))
        except Exception as exc:  # asyncua raises what its XML parser or address space raised
            raise FcServerError(f"{path}: cannot load the PackML nodeset: {type(exc).__name__}: {exc}") from exc
        pidx = await server.get_namespace_index(PACKML_NAMESPACE)
        for name in ("PackMLCountDataType", "PackMLAlarmDataType"):
            if not hasattr(ua, name):  # import_xml makes the nodeset's structures ua.<name> classes
                raise FcServerError(f"{path}: the nodeset defines no {name}: not OPC 30050's PackML nodeset")
        self._values = _Values(server)
        await self._build_packml(server, idx, pidx)
        await self._build_cellctl(server, idx)
        return server

    async def _build_packml(self, server: Server, idx: int, pidx: int) -> None:
        def ptype(i: int) -> Node:
            return server.get_node(_nid(i, pidx))

        cell = await _instantiate_packml(server, ptype(_BASE_OBJECT), _nid("Cell", idx),
                                         ua.QualifiedName("Cell", idx), pidx)
        admin = await cell.get_child(ua.QualifiedName("Admin", pidx))
        status = await cell.get_child(ua.QualifiedName("Status", pidx))
        base = await cell.get_child(ua.QualifiedName("BaseStateMachine", pidx))
        machine = await base.get_child(ua.QualifiedName("MachineState", pidx))
        execute = await machine.get_child(ua.QualifiedName("ExecuteState", pidx))
        machines = []
        for sm, type_id in ((base, _BASE_SM), (machine, _MACHINE_SM), (execute, _EXECUTE_SM)):
            machines.append(await self._machine(server, sm, ptype(type_id)))
            for child in await sm.get_methods():
                server.link_method(child, self._command_handler((await child.read_browse_name()).Name))
        self._machines = (machines[0], machines[1], machines[2])
        current = server.get_node(machines[0].current)
        effective = _nid("Cell.BaseStateMachine.CurrentState.EffectiveDisplayName", idx)
        await current.add_property(effective, ua.QualifiedName("EffectiveDisplayName", 0), ua.LocalizedText(""),
                                   VT.LocalizedText)
        self._effective = effective
        for name, handler in (("SetUnitMode", self._set_unit_mode), ("SetMachSpeed", _not_supported),
                              ("SetProduct", _not_supported), ("SetParameter", _not_supported)):
            server.link_method(await cell.get_child(ua.QualifiedName(name, pidx)), handler)
        tag = await cell.get_child(ua.QualifiedName("TagID", pidx))
        await tag.write_value(ua.Variant(self.config.server_name, VT.String))
        self._ids.update({
            f"Status.{name}": (await status.get_child(ua.QualifiedName(name, pidx))).nodeid
            for name in ("UnitModeCurrent", "UnitSupportedModes", "CurMachSpeed", "MachSpeed", "EquipmentBlocked",
                         "EquipmentStarved")
        } | {f"Admin.{name}": (await admin.get_child(ua.QualifiedName(name, pidx))).nodeid for name in _ADMIN_SERVED})
        values = self._require_values()
        await values.put(self._ids["Status.UnitModeCurrent"], PRODUCE, VT.Int32)
        await values.put(self._ids["Status.UnitSupportedModes"], _nid(_MODE_ENUM, pidx), VT.NodeId)
        await values.put(self._ids["Status.MachSpeed"], 0.0, VT.Float)
        await values.put(self._ids["Status.EquipmentBlocked"], False, VT.Boolean)
        for speed in ("CurMachSpeed", "MachSpeed"):
            eu = await server.get_node(self._ids[f"Status.{speed}"]).get_child("0:EURange")
            await eu.write_value(ua.Variant(ua.Range(Low=0.0, High=60.0), VT.ExtensionObject))
        for name, extent in (("StopReasonExtent", 1), ("AlarmExtent", 1), ("AlarmHistoryExtent", ALARM_HISTORY),
                             ("WarningExtent", 1)):
            await values.put(self._ids[f"Admin.{name}"], extent, VT.Int32)

    async def _machine(self, server: Server, sm: Node, type_node: Node) -> _Machine:
        """The state machine's CurrentState (with a Number property added) and the NodeIds of its states."""
        current = await sm.get_child("0:CurrentState")
        state_id = await current.get_child("0:Id")
        number = _child_id(current.nodeid, "Number")
        await current.add_property(number, ua.QualifiedName("Number", 0), ua.UInt32(0), VT.UInt32)
        states: dict[str, ua.NodeId] = {}
        transitions: list[ua.NodeId] = []
        for child in await type_node.get_children():
            definition = await child.read_type_definition()
            if definition in _STATE_TYPES:
                states[(await child.read_browse_name()).Name] = child.nodeid
                await self._check_number(child)
            elif definition == _nid(ua.ObjectIds.TransitionType):
                transitions.append(child.nodeid)
        values = self._require_values()
        await values.put((await sm.get_child("0:AvailableStates")).nodeid, list(states.values()), VT.NodeId)
        await values.put((await sm.get_child("0:AvailableTransitions")).nodeid, transitions, VT.NodeId)
        return _Machine(current.nodeid, state_id.nodeid, number, states)

    @staticmethod
    async def _check_number(state: Node) -> None:
        name = (await state.read_browse_name()).Name
        number = await (await state.get_child("0:StateNumber")).read_value()
        known = {s.display: int(s) for s in PackMLState} | {"Running": 18, "Cleared": 19}
        if known.get(name) != number:
            raise FcServerError(f"PackML nodeset: state {name} has StateNumber {number}, PackTags says "
                                f"{known.get(name)}: not OPC 30050's PackML nodeset")

    async def _build_cellctl(self, server: Server, idx: int) -> None:
        obj = await server.nodes.objects.add_object(_nid("Cellctl", idx), ua.QualifiedName("Cellctl", idx))
        await _describe(obj, "The cell's own figures, its reports to the FC and the FC's pick requests (cellctl)")
        counters = await obj.add_object(_nid("Cellctl.Counters", idx), ua.QualifiedName("Counters", idx))
        task = await obj.add_object(_nid("Cellctl.CurrentTask", idx), ua.QualifiedName("CurrentTask", idx))
        specs: list[tuple[Node, str, Any, ua.VariantType, str]] = [
            (obj, "StateCurrent", 0, VT.Int32, "PackTags state number (0..17) of the cell"),
            (obj, "StateName", "Undefined", VT.String, "PackTags state name"),
            (obj, "ChartState", "", VT.String, "the cell chart's innermost state id"),
            (obj, "AllowedCommands", [], VT.String, "the PackML commands the cell takes in its current state"),
            (obj, "LastCommandResult", "", VT.String, "the last PackML command called, and whether it was taken"),
            (obj, "Alarm", "", VT.String, "why the cell holds (cleared by Unhold)"),
            (obj, "StopReason", "", VT.String, "why the cell last aborted or failed to make itself safe"),
            (obj, "PendingReports", [], VT.String, "the oldest unacknowledged reports, one JSON object each"),
            (obj, "PendingReportCount", 0, VT.UInt32, "how many reports are unacknowledged"),
            *((counters, name, 0, VT.UInt32, text) for name, text in (
                ("Cycles", "tasks reported since the last Reset"), ("Reports", "tasks reported"),
                ("Stows", "stow tasks reported"), ("Picks", "pick tasks reported"), ("Done", "tasks done"),
                ("Handoffs", "items handed to a human"), ("Faults", "tasks ended by a fault"),
                ("Interrupted", "faults from a hold, suspend, stop or abort, since the last Reset"))),
            (counters, "HandoffsByReason", "{}", VT.String, "handoffs by reason (JSON object)"),
            (counters, "FaultsByReason", "{}", VT.String, "faults by reason (JSON object)"),
            *((task, name, "", VT.String, text) for name, text in (
                ("TaskId", "the running task's id"), ("Kind", "stow | pick"), ("ItemId", "its item"),
                ("BinId", "its bin"))),
        ]
        for parent, name, value, vtype, text in specs:
            path = f"{(await parent.read_browse_name()).Name}.{name}".removeprefix("Cellctl.")
            nodeid = _nid(f"Cellctl.{path}", idx)
            node = await parent.add_variable(nodeid, ua.QualifiedName(name, idx), ua.Variant(value, vtype))
            if isinstance(value, list):
                await node.write_value_rank(1)
                await node.write_attribute(ua.AttributeIds.ArrayDimensions, ua.DataValue(ua.Variant([0], VT.UInt32)))
            await _describe(node, text)
            self._ids[path] = nodeid
        ack = await obj.add_method(
            _nid("Cellctl.AcknowledgeReports", idx), ua.QualifiedName("AcknowledgeReports", idx),
            self._acknowledge,
            [_argument("ReportIds", VT.UInt64, "the ids of the reports the FC has recorded", array=True)],
            [_argument("Acknowledged", VT.UInt32, "how many of them were newly acknowledged")],
        )
        await _describe(ack, "The FC has recorded these reports: they are not sent again")
        pick = await obj.add_method(
            _nid("Cellctl.RequestPick", idx), ua.QualifiedName("RequestPick", idx), self._request_pick,
            [_argument("ItemId", VT.String, "the item to pick"),
             _argument("ProductId", VT.String, "its product (may be empty)"),
             _argument("Pod", VT.String, "the pod holding it"),
             _argument("Bin", VT.String, "the bin holding it")],
            [_argument("TaskId", VT.String, "the pick task's id; its report carries it")],
        )
        await _describe(pick, "Queue a pick request (durably); returns the task id")
        # As server.create_custom_event_type does, with string NodeIds (ns=<ours>;s=CellReportEventType.ReportId).
        etype = await server.get_node(_nid(ua.ObjectIds.BaseEventType)).add_object_type(
            _nid("CellReportEventType", idx), ua.QualifiedName("CellReportEventType", idx))
        for name, vtype in (("ReportId", VT.UInt64), ("TaskId", VT.String), ("Kind", VT.String),
                            ("Outcome", VT.String), ("ItemId", VT.String), ("BinId", VT.String), ("Reason", VT.String),
                            ("Attempts", VT.UInt32), ("Payload", VT.String)):
            await etype.add_property(_child_id(etype.nodeid, name), ua.QualifiedName(name, idx),
                                     ua.get_default_value(vtype), varianttype=vtype)
        await _describe(etype, "A stow/pick report or handoff request from the outbox; acknowledge it by ReportId")
        self._event = await server.get_event_generator(etype, ua.ObjectIds.Server)
        self._event.event.SourceNode = obj.nodeid
        self._event.event.SourceName = "Cellctl"
        self._cellctl = obj.nodeid

    # -- the refresh: state and counters ------------------------------------------------------------------------

    async def _refresh_loop(self) -> None:
        while True:
            await anyio.sleep(self.config.refresh_s)
            await self._publish()

    async def _publish(self) -> None:
        values, machines = self._require_values(), self._machines
        assert machines is not None and self._effective is not None
        chart_state = self.control.state()
        counters = self.control.counters()
        state = packml_state(chart_state)
        now = time.monotonic()
        self._clock.update(state, now)
        for machine, shown in zip(machines, levels(state), strict=True):
            if shown is None:
                for nodeid in (machine.current, machine.state_id, machine.number):
                    await values.inactive(nodeid)
                continue
            name, number = shown
            await values.put(machine.current, ua.LocalizedText(name), VT.LocalizedText)
            await values.put(machine.state_id, machine.states[name], VT.NodeId)
            await values.put(machine.number, number, VT.UInt32)
        await values.put(self._effective, ua.LocalizedText(state.display), VT.LocalizedText)
        ids = self._ids
        await values.put(ids["StateCurrent"], int(state), VT.Int32)
        await values.put(ids["StateName"], state.display, VT.String)
        await values.put(ids["ChartState"], chart_state, VT.String)
        allowed = [name for name, event in COMMANDS.items() if self.control.allowed(event)]
        await values.put(ids["AllowedCommands"], allowed, VT.String)
        await values.put(ids["LastCommandResult"], self._last_command, VT.String)
        await self._publish_counters(counters)
        await self._publish_status(counters, state, now)

    async def _publish_counters(self, c: CellCounters) -> None:
        values, ids = self._require_values(), self._ids
        for name, value in (("Cycles", c.cycles), ("Reports", c.reports), ("Stows", c.stows), ("Picks", c.picks),
                            ("Done", c.done), ("Handoffs", c.handoffs), ("Faults", c.faults),
                            ("Interrupted", c.interrupted)):
            await values.put(ids[f"Counters.{name}"], value, VT.UInt32)
        await values.put(ids["Counters.HandoffsByReason"], _json(dict(c.handoffs_by_reason)), VT.String)
        await values.put(ids["Counters.FaultsByReason"], _json(dict(c.faults_by_reason)), VT.String)
        for name, text in (("TaskId", c.task.task_id), ("Kind", c.task.kind), ("ItemId", c.task.item_id),
                           ("BinId", c.task.bin_id)):
            await values.put(ids[f"CurrentTask.{name}"], text, VT.String)
        await values.put(ids["Alarm"], c.alarm, VT.String)
        await values.put(ids["StopReason"], c.stop_reason, VT.String)

    async def _publish_status(self, c: CellCounters, state: PackMLState, now: float) -> None:
        values, ids = self._require_values(), self._ids
        count, alarm = _ua_type("PackMLCountDataType"), _ua_type("PackMLAlarmDataType")
        await values.put(ids["Status.CurMachSpeed"], self._speed.update(now, c.reports), VT.Float)
        await values.put(ids["Status.EquipmentStarved"], c.starved, VT.Boolean)
        await values.put(ids["Admin.ProdProcessedCount"], [
            count(ID=1, Name="items", Unit=_PIECE, Count=c.cycles, AccCount=c.reports)], VT.ExtensionObject)
        await values.put(ids["Admin.ProdDefectiveCount"], [
            count(ID=1, Name="handoff", Unit=_PIECE, Count=c.handoffs, AccCount=c.handoffs),
            count(ID=2, Name="fault", Unit=_PIECE, Count=c.faults, AccCount=c.faults)], VT.ExtensionObject)
        book = self._alarms
        book.update(c.alarm, c.stop_reason)
        stopped = state in (PackMLState.ABORTING, PackMLState.ABORTED)
        await values.put(ids["Admin.StopReason"], alarm(
            ID=1 if book.stop_reason else 0, Value=0, Message=book.stop_reason, Category=0, DateTime=book.stop_at,
            AckDateTime=_NO_TIME, Trigger=stopped and bool(book.stop_reason)), VT.ExtensionObject)
        active = [alarm(ID=1, Value=0, Message=book.alarm, Category=0, DateTime=book.alarm_at, AckDateTime=_NO_TIME,
                        Trigger=True)] if book.alarm else []
        await values.put(ids["Admin.Alarm"], active, VT.ExtensionObject)
        await values.put(ids["Admin.AlarmHistory"], [
            alarm(ID=1, Value=0, Message=text, Category=0, DateTime=raised, AckDateTime=cleared, Trigger=False)
            for text, raised, cleared in book.history], VT.ExtensionObject)
        await values.put(ids["Admin.Warning"], self._warnings(alarm), VT.ExtensionObject)
        await values.put(ids["Admin.StateCurrentTime"], self._clock.current(now), VT.Int32)
        await values.put(ids["Admin.StateCumulativeTime"], self._clock.cumulative(now), VT.Int32)
        uptime = [0] * MODES
        uptime[PRODUCE] = int(now - self._clock.started)
        await values.put(ids["Admin.ModeCurrentTime"], uptime, VT.Int32)
        await values.put(ids["Admin.ModeCumulativeTime"], uptime, VT.Int32)

    def _warnings(self, alarm: Callable[..., Any]) -> list[Any]:
        """One warning while reports wait for the FC's acknowledgement longer than redeliver_after_s."""
        oldest = self._oldest_pending
        if oldest is None or time.time() - oldest.created_s < self.config.redeliver_after_s:
            return []
        since = datetime.fromtimestamp(oldest.created_s, UTC)
        text = (f"{self._pending_count} report(s) unacknowledged by the FC, the oldest (report {oldest.report_id}, "
                f"task {oldest.task_id}) since {since:%Y-%m-%d %H:%M:%S} UTC")
        return [alarm(ID=1, Value=self._pending_count, Message=text, Category=0, DateTime=since,
                      AckDateTime=_NO_TIME, Trigger=True)]

    # -- reports ------------------------------------------------------------------------------------------------

    async def _deliver_loop(self) -> None:
        period = min(1.0, self.config.redeliver_after_s / 4)
        next_pass = 0.0
        while True:
            if time.monotonic() >= next_pass:
                await self._redeliver()
                await self._refresh_queue()
                next_pass = time.monotonic() + period
            with anyio.move_on_after(max(0.0, next_pass - time.monotonic())):
                entry = await self._inbox.receive()
                fresh = [entry]
                while True:  # what else came meanwhile, in one go
                    try:
                        fresh.append(self._inbox.receive_nowait())
                    except anyio.WouldBlock:
                        break
                for item in fresh:
                    if item.report_id not in self._sent:  # a redelivery pass may have been first
                        await self._emit(item)
                await self._refresh_queue()

    async def _redeliver(self) -> None:
        """Send the events of pending reports never sent by this server, or not for redeliver_after_s."""
        pending = await anyio.to_thread.run_sync(self.store.pending, REDELIVER_BATCH)
        ids = {entry.report_id for entry in pending}
        last = pending[-1].report_id if len(pending) == REDELIVER_BATCH else None
        for report_id in [r for r in self._sent if r not in ids and (last is None or r < last)]:
            del self._sent[report_id]  # acknowledged
        now = time.monotonic()
        for entry in pending:
            sent = self._sent.get(entry.report_id)
            if sent is None or now - sent >= self.config.redeliver_after_s:
                await self._emit(entry)

    async def _emit(self, entry: OutboxEntry) -> None:
        p = entry.payload
        attempts = p.get("attempts", 0)
        event = self._event.event
        event.ReportId = entry.report_id
        event.TaskId = entry.task_id
        event.Kind = entry.kind
        event.Outcome = str(p.get("outcome", ""))
        event.ItemId = str(p.get("item_id", ""))
        event.BinId = str(p.get("bin_id", ""))
        event.Reason = str(p.get("reason", ""))
        event.Attempts = attempts if isinstance(attempts, int) and 0 <= attempts < 1 << 32 else 0
        event.Payload = _json(p)
        event.Severity = 500 if entry.kind == "handoff" else 100  # a handoff needs a person
        resent = " (again)" if entry.report_id in self._sent else ""
        message = f"report {entry.report_id}{resent}: {entry.kind} {entry.task_id} {event.Outcome} {event.ItemId}"
        await self._event.trigger(message=message.rstrip())
        self._sent[entry.report_id] = time.monotonic()
        # counted once it is out: the count's commit (an fsync) does not delay the event
        await anyio.to_thread.run_sync(self.store.mark_delivered, entry.report_id)

    async def _refresh_queue(self) -> None:
        values = self._require_values()
        async with self._queue_lock:  # one refresh at a time, so the newest read is the last written
            pending = await anyio.to_thread.run_sync(self.store.pending, self.config.pending_shown)
            count = await anyio.to_thread.run_sync(self.store.pending_count)
            self._oldest_pending = pending[0] if pending else None
            self._pending_count = count
            await values.put(self._ids["PendingReports"], [_entry_json(e) for e in pending], VT.String)
            await values.put(self._ids["PendingReportCount"], count, VT.UInt32)

    # -- methods ------------------------------------------------------------------------------------------------

    def _command_handler(self, method: str) -> Callable[..., Awaitable[ua.StatusCode]]:
        event = METHOD_EVENTS[method]
        command = "Complete" if method == "ToComplete" else method

        async def handler(parent: ua.NodeId, *args: ua.Variant) -> ua.StatusCode:
            chart_state = self.control.state()
            state = packml_state(chart_state)
            if not self.control.allowed(event):
                allowed = [n for n, e in COMMANDS.items() if self.control.allowed(e)]
                self._last_command = (f"{command} refused: the cell is in {state.display} ({int(state)}), where "
                                      f"{command} is not allowed; allowed: {', '.join(allowed) or 'none'}")
                log.warning("FC command refused", command=command, state=state.display, chart_state=chart_state)
                await self._require_values().put(self._ids["LastCommandResult"], self._last_command, VT.String)
                return _status(SC.BadInvalidState)
            self._last_command = f"{command} taken in {state.display} ({int(state)})"
            log.info("FC command", command=command, state=state.display, chart_state=chart_state)
            await self._require_values().put(self._ids["LastCommandResult"], self._last_command, VT.String)
            await self.control.post(event)
            return _status(SC.Good)

        return handler

    async def _set_unit_mode(self, parent: ua.NodeId, *args: ua.Variant) -> ua.StatusCode:
        if len(args) == 1 and args[0].Value == PRODUCE:
            return _status(SC.Good)
        return _status(SC.BadNotSupported)  # the cell has one mode: Produce (1)

    async def _acknowledge(self, parent: ua.NodeId, *args: ua.Variant) -> ua.CallMethodResult:
        if len(args) != 1:
            return _bad_args(len(args), {}, f"AcknowledgeReports takes 1 argument (ReportIds), got {len(args)}")
        arg = args[0]
        ids = arg.Value if arg.Value is not None else []
        if not isinstance(ids, list) or any(not isinstance(i, int) or isinstance(i, bool) or i < 0 for i in ids):
            return _bad_args(1, {0: "ReportIds: an array of UInt64 report ids"}, "", SC.BadTypeMismatch)
        acknowledged = await anyio.to_thread.run_sync(self.store.ack, ids)
        log.info("FC acknowledged reports", ids=len(ids), acknowledged=acknowledged)
        await self._refresh_queue()
        return ua.CallMethodResult(StatusCode=_status(SC.Good), InputArgumentResults=[_status(SC.Good)],
                                   OutputArguments=[ua.Variant(acknowledged, VT.UInt32)])

    async def _request_pick(self, parent: ua.NodeId, *args: ua.Variant) -> ua.CallMethodResult:
        if len(args) != len(_PICK_ARGS):
            return _bad_args(len(args), {}, f"RequestPick takes {len(_PICK_ARGS)} arguments "
                                             f"({', '.join(_PICK_ARGS)}), got {len(args)}")
        wrong = {i: f"{name}: a String" for i, (name, arg) in enumerate(zip(_PICK_ARGS, args, strict=True))
                 if arg.VariantType is not VT.String or arg.is_array or arg.Value is None}
        if wrong:
            return _bad_args(len(args), wrong, "", SC.BadTypeMismatch)
        item_id, product_id, pod, bin_id = (str(arg.Value) for arg in args)
        try:
            task_id = await anyio.to_thread.run_sync(lambda: self.store.add_request(item_id, product_id, pod, bin_id))
        except RequestQueueFull as exc:
            log.warning("FC pick request refused: queue full", item_id=item_id, error=str(exc))
            return ua.CallMethodResult(StatusCode=_status(SC.BadResourceUnavailable),
                                       InputArgumentResults=[_status(SC.Good)] * len(args))
        except ValueError as exc:
            message = str(exc)
            index = _STORE_FIELDS.get(message.split(" ", 1)[0], 0)
            text = f"{_PICK_ARGS[index]}: {message}"
            log.warning("FC pick request refused", error=text)
            return _bad_args(len(args), {index: text}, "")
        log.info("FC pick request queued", task_id=task_id, item_id=item_id, pod=pod, bin_id=bin_id)
        return ua.CallMethodResult(StatusCode=_status(SC.Good),
                                   InputArgumentResults=[_status(SC.Good)] * len(args),
                                   OutputArguments=[ua.Variant(task_id, VT.String)])

    def _require_values(self) -> _Values:
        assert self._values is not None, "the address space is built in run()"
        return self._values


# -- helpers -------------------------------------------------------------------------------------------------


async def _instantiate_packml(server: Server, type_node: Node, nodeid: ua.NodeId, bname: ua.QualifiedName,
                             pidx: int) -> Node:
    """Instantiate PackMLBaseObjectType, completed from the nodeset's types.

    The nodeset's instance declarations under PackMLBaseObjectType are bare (an Admin without members, state
    machines without their methods or sub-machines), so asyncua's `instantiate` alone would copy them bare: here a
    child whose type is a PackML type takes its members from that type instead. Mandatory members are always
    made; optional ones only where we serve them (`_optional_served`). Built node by node with asyncua's own step
    (`_instantiate_node(recursive=False)`): deleting and re-instantiating costs ~60 ms a node (asyncua's delete
    scans the whole address space), building it right costs nothing extra.
    """
    session = server.nodes.objects.session
    rdesc = ua.ReferenceDescription(
        ReferenceTypeId=_nid(ua.ObjectIds.Organizes), NodeId=type_node.nodeid, BrowseName=bname,
        DisplayName=ua.LocalizedText(bname.Name), NodeClass=ua.NodeClass.ObjectType, TypeDefinition=type_node.nodeid,
    )
    mandatory = _nid(ua.ObjectIds.ModellingRule_Mandatory)
    optional = _nid(ua.ObjectIds.ModellingRule_Optional)

    async def make(source: Node, parent: ua.NodeId, rdesc: ua.ReferenceDescription, nodeid: ua.NodeId,
                   path: str) -> None:
        # The root is named as asked (not after its type); the members keep the nodeset's display names.
        dname = None if path else ua.LocalizedText(bname.Name)
        await _instantiate_node(session, source, parent, rdesc, nodeid, rdesc.BrowseName, dname=dname,
                                recursive=False)
        typedef = rdesc.TypeDefinition
        members = server.get_node(typedef) if typedef.NamespaceIndex == pidx else source
        done: set[str] = set()
        for level in await get_node_supertypes(members, includeitself=True):
            for child in await level.get_children_descriptions():
                name = child.BrowseName.Name
                child_path = f"{path}.{name}".removeprefix(".")
                rules = await server.get_node(child.NodeId).get_referenced_nodes(refs=ua.ObjectIds.HasModellingRule)
                rule = rules[0].nodeid if rules else None
                if name in done or not (rule == mandatory or (rule == optional and _optional_served(child_path))):
                    continue  # states and transitions belong to the type; unserved options are left out
                done.add(name)
                child_id = _child_id(nodeid, name)
                await make(server.get_node(child.NodeId), nodeid, child, child_id, child_path)

    await make(type_node, server.nodes.objects.nodeid, rdesc, nodeid, "")
    return server.get_node(nodeid)


def _optional_served(path: str) -> bool:
    """The nodeset's optional members we serve (`path` from the PackML object: `Admin.Alarm`, ...)."""
    parent, _, name = path.rpartition(".")
    if parent == "Admin":
        return name in _ADMIN_SERVED
    if parent.endswith(("BaseStateMachine", "MachineState", "ExecuteState")):
        return name in METHOD_EVENTS  # the commands; not LastTransition, not the Cleared state
    return path in ("PackMLVersion", "TagID")  # not RemoteCommand, SetInterlock


def _ua_type(name: str) -> Callable[..., Any]:
    """A structure class `import_xml` made from the nodeset (`ua.PackMLAlarmDataType`, ...)."""
    return getattr(ua, name)  # type: ignore[no-any-return]


async def _describe(node: Node, text: str) -> None:
    await node.write_attribute(ua.AttributeIds.Description, ua.DataValue(ua.Variant(ua.LocalizedText(text))))


def _argument(name: str, vtype: ua.VariantType, text: str, *, array: bool = False) -> ua.Argument:
    return ua.Argument(Name=name, DataType=_nid(vtype.value), ValueRank=1 if array else -1,
                       ArrayDimensions=[0] if array else [], Description=ua.LocalizedText(text))


def _bad_args(count: int, bad: dict[int, str], text: str, code: int = SC.BadInvalidArgument) -> ua.CallMethodResult:
    """BadInvalidArgument, the bad arguments marked (`code`) with a DiagnosticInfo naming them."""
    if text:
        log.warning("FC method call refused", error=text)
    diagnostics = [ua.DiagnosticInfo(AdditionalInfo=cast(ua.String, bad.get(i))) for i in range(count)]
    return ua.CallMethodResult(
        StatusCode=_status(SC.BadInvalidArgument),
        InputArgumentResults=[_status(code if i in bad else SC.Good) for i in range(count)],
        InputArgumentDiagnosticInfos=diagnostics if bad else [],
    )


async def _not_supported(parent: ua.NodeId, *args: ua.Variant) -> ua.StatusCode:
    return _status(SC.BadNotSupported)


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _entry_json(entry: OutboxEntry) -> str:
    return _json({"report_id": entry.report_id, "task_id": entry.task_id, "kind": entry.kind,
                  "created_s": entry.created_s, "deliveries": entry.deliveries, "payload": entry.payload})


