"""The FC-facing OPC UA server over loopback, with an asyncua client as the FC and the real `cell` chart behind it
(on the scripted workcell, in real time), the real outbox store on a temporary file."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from asyncua import Client, Node, ua

from cellctl.fc.config import FcConfig
from cellctl.fc.control import ChartControl
from cellctl.fc.server import PACKML_NAMESPACE, FcServer, FcServerError, NodesetMissing
from cellctl.fc.store import CellStore
from cellctl.runtime.cell import CellRun, start_cell
from statecharts import cell
from statecharts.engine import ChartRunner
from statecharts.tasks import TaskConfig
from tests.statecharts.fake_workcell import FakeWorkcell

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module scope: the tests that only read the cell share one server (an asyncua server costs ~2 s to build)."""
    return "asyncio"

NS = "urn:cellctl:fc"
EXECUTE_SM = "Cell.BaseStateMachine.MachineState.ExecuteState"
MACHINE_SM = "Cell.BaseStateMachine.MachineState"
BASE_SM = "Cell.BaseStateMachine"
WAIT_S = 10.0  # every wait is bounded


class Stream:
    """asyncua's subscription handler: data changes and events into a memory stream, awaited with a bound."""

    def __init__(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[Any](1000)
        self.seen: list[Any] = []

    def datachange_notification(self, node: Node, value: Any, data: Any) -> None:
        self._send.send_nowait(value)

    def event_notification(self, event: Any) -> None:
        self._send.send_nowait(event)

    def status_change_notification(self, status: Any) -> None:
        pass  # the subscription's end (its client disconnected)

    async def until(self, predicate: Callable[[Any], bool]) -> Any:
        with anyio.fail_after(WAIT_S):
            while True:
                value = await self._receive.receive()
                self.seen.append(value)
                if predicate(value):
                    return value


@dataclass
class Fc:
    """One running FC server, its cell and store, and a connected client."""

    server: FcServer
    store: CellStore
    run: CellRun
    client: Client
    ns: int
    pns: int

    def node(self, path: str) -> Node:
        return self.client.get_node(ua.NodeId(path, self.ns))

    async def read(self, path: str) -> Any:
        return await self.node(path).read_value()

    async def call(self, parent: str, method: str, *args: Any, ns: int | None = None) -> Any:
        return await self.node(parent).call_method(f"{self.pns if ns is None else ns}:{method}", *args)

    async def call_full(self, parent: str, method: str, *args: ua.Variant) -> ua.CallMethodResult:
        """The whole CallMethodResult (per-argument results and diagnostics), not raised on a Bad status."""
        target = await self.node(parent).get_child(f"{self.ns}:{method}")
        request = ua.CallMethodRequest(ObjectId=self.node(parent).nodeid, MethodId=target.nodeid,
                                       InputArguments=list(args))
        return (await self.client.uaclient.call([request]))[0]

    async def subscribe(self, path: str) -> Stream:
        stream = Stream()
        sub = await self.client.create_subscription(20, stream)
        await sub.subscribe_data_change(self.node(path))
        return stream

    async def report_events(self, client: Client | None = None) -> Stream:
        client = client or self.client
        stream = Stream()
        sub = await client.create_subscription(20, stream)
        etype = await client.nodes.base_event_type.get_child(f"{self.ns}:CellReportEventType")
        await sub.subscribe_events(client.nodes.server, etype)
        return stream


async def connect(url: str) -> tuple[Client, int, int]:
    client = Client(url, timeout=10)
    await client.connect()
    return client, await client.get_namespace_index(NS), await client.get_namespace_index(PACKML_NAMESPACE)


@asynccontextmanager
async def fc_cell(tmp_path: Path, *, store: CellStore | None = None, **config: Any) -> AsyncIterator[Fc]:
    """The real cell chart on a scripted workcell with no items (execute waits for one), an FC server before it."""
    store = store or CellStore.open(tmp_path / "fc.sqlite")
    wc = FakeWorkcell(move_s=0.05)
    data = cell.CellData(wc, config=TaskConfig(arrival_timeout_s=60.0))
    try:
        server = FcServer(FcConfig(port=0, store=tmp_path / "fc.sqlite", **config), None, store)
        await server.prepare()  # as `cellctl run` does: the address space first, the cell attached later
        async with anyio.create_task_group() as tg:
            run = await start_cell(tg, ChartRunner(cell.build(), data=data), data)
            server.control = ChartControl.of(run)
            url = await tg.start(server.run)
            client, ns, pns = await connect(url)
            fc = Fc(server, store, run, client, ns, pns)
            try:
                yield fc
            finally:
                with anyio.CancelScope(shield=True):
                    await fc.client.disconnect()  # the test may have replaced it (a reconnect)
                tg.cancel_scope.cancel()
    finally:
        store.close()


@pytest.fixture(scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Fc]:
    """A server whose cell stays Stopped (its store takes one pick request), for the tests that do not drive it."""
    tmp_path = tmp_path_factory.mktemp("fc")
    async with fc_cell(tmp_path, store=CellStore.open(tmp_path / "fc.sqlite", max_requests=1)) as fc:
        yield fc


async def test_the_packml_object_is_the_nodesets_type_and_shows_the_cells_state_in_packtags_numbers(
    shared: Fc,
) -> None:
    fc = shared
    cell_node = fc.node("Cell")
    assert await cell_node.read_type_definition() == ua.NodeId(6, fc.pns)  # PackMLBaseObjectType
    names = {(await c.read_browse_name()).to_string() for c in await cell_node.get_children()}
    assert {f"{fc.pns}:{n}" for n in ("BaseStateMachine", "Status", "Admin", "PackMLVersion", "TagID",
                                      "SetUnitMode")} <= names
    methods = {(await m.read_browse_name()).Name for m in await fc.node(EXECUTE_SM).get_methods()}
    assert methods == {"Start", "Hold", "Unhold", "Suspend", "Unsuspend", "Reset", "ToComplete"}
    assert {(await m.read_browse_name()).Name for m in await fc.node(MACHINE_SM).get_methods()} == {"Stop",
                                                                                                   "Reset"}
    assert {(await m.read_browse_name()).Name for m in await fc.node(BASE_SM).get_methods()} == {"Abort", "Clear"}
    # Stopped: Cleared > Stopped, the execute machine inactive; PackTags 2.
    assert (await fc.read(f"{BASE_SM}.CurrentState")).Text == "Cleared"
    assert (await fc.read(f"{BASE_SM}.CurrentState.Number")) == 19
    assert (await fc.read(f"{BASE_SM}.CurrentState.EffectiveDisplayName")).Text == "Stopped"
    assert (await fc.read(f"{MACHINE_SM}.CurrentState")).Text == "Stopped"
    assert (await fc.read(f"{MACHINE_SM}.CurrentState.Number")) == 2
    assert await fc.read(f"{MACHINE_SM}.CurrentState.Id") == ua.NodeId(53, fc.pns)  # the nodeset's Stopped
    inactive = await fc.node(f"{EXECUTE_SM}.CurrentState").read_data_value(raise_on_bad_status=False)
    assert inactive.StatusCode is not None and inactive.StatusCode.value == ua.StatusCodes.BadStateNotActive
    assert (await fc.read("Cellctl.StateCurrent"), await fc.read("Cellctl.StateName")) == (2, "Stopped")
    assert await fc.read("Cellctl.AllowedCommands") == ["Reset", "Abort"]
    assert await fc.read("Cell.Status.UnitModeCurrent") == 1  # Produce
    times = await fc.read("Cell.Admin.StateCurrentTime")  # [unit mode][PackTags state], seconds
    assert [len(row) for row in times] == [18] * 4 and times[0] == [0] * 18
    processed = await fc.read("Cell.Admin.ProdProcessedCount")
    assert [(c.Name, c.Count, c.AccCount) for c in processed] == [("items", 0, 0)]
    assert (await fc.read("Cell.Admin.StopReason")).Message == ""
    assert await fc.read("Cellctl.Counters.Cycles") == 0


async def test_the_fc_drives_the_cell_reset_start_hold_unhold_stop_and_a_command_not_allowed_is_refused(
    tmp_path: Path,
) -> None:
    async with fc_cell(tmp_path) as fc:
        states = await fc.subscribe("Cellctl.StateCurrent")
        await states.until(lambda v: v == 2)  # Stopped
        await fc.call(MACHINE_SM, "Reset")
        await states.until(lambda v: v == 4)  # Idle
        assert (await fc.read(f"{EXECUTE_SM}.CurrentState")).Text == "Idle"
        await fc.call(EXECUTE_SM, "Start")
        await states.until(lambda v: v == 6)  # Execute
        assert (await fc.read(f"{MACHINE_SM}.CurrentState")).Text == "Running"

        with pytest.raises(ua.UaStatusCodeError) as refused:
            await fc.call(EXECUTE_SM, "Unhold")
        assert refused.value.code == ua.StatusCodes.BadInvalidState
        text = await fc.read("Cellctl.LastCommandResult")
        assert "Unhold" in text and "Execute (6)" in text, text
        assert fc.run.runner.is_active("execute")

        await fc.call(EXECUTE_SM, "Hold")
        await states.until(lambda v: v == 11)  # Held, through Holding (the arm is made safe)
        await fc.call(EXECUTE_SM, "Unhold")
        await states.until(lambda v: v == 6)
        await fc.call(MACHINE_SM, "Stop")
        await states.until(lambda v: v == 2)
        assert [v for v in states.seen if v in (10, 7)] == [10, 7]  # Holding and Stopping were seen on the way
        assert [c.name for c in fc.run.commands] == ["cmd.reset", "cmd.start", "cmd.hold", "cmd.unhold", "cmd.stop"]
        assert await fc.read("Cellctl.LastCommandResult") == "Stop taken in Execute (6)"


async def test_reports_arrive_as_events_wait_in_the_queue_until_acknowledged_and_come_again_after_a_reconnect(
    tmp_path: Path,
) -> None:
    store = CellStore.open(tmp_path / "fc.sqlite")
    payload = {"task": "stow", "outcome": "done", "item_id": "item-1", "bin_id": "A1", "reason": "", "attempts": 1}
    early = store.commit_report("stow-1-000001", "report", payload)  # committed while no server ran
    assert early is not None
    async with fc_cell(tmp_path, store=store, redeliver_after_s=1.0) as fc:
        assert await fc.read("Cellctl.PendingReportCount") == 1  # at once, before any redelivery
        events = await fc.report_events()
        again = await events.until(lambda e: e.ReportId == early.report_id)  # sent at start, then again
        assert (again.TaskId, again.Kind, again.Outcome, again.ItemId, again.BinId, again.Attempts) == (
            "stow-1-000001", "report", "done", "item-1", "A1", 1)
        assert json.loads(again.Payload) == payload

        handoff = store.commit_report("stow-1-000002", "handoff", {**payload, "item_id": "item-2",
                                                                    "outcome": "handoff", "reason": "no_space"})
        assert handoff is not None
        fc.server.notify_report(handoff)
        event = await events.until(lambda e: e.ReportId == handoff.report_id)
        assert (event.Kind, event.Reason, event.Severity) == ("handoff", "no_space", 500)

        acked = await fc.call("Cellctl", "AcknowledgeReports", ua.Variant([early.report_id], ua.VariantType.UInt64),
                              ns=fc.ns)
        assert acked == 1
        pending = [json.loads(text) for text in await fc.read("Cellctl.PendingReports")]
        assert [p["report_id"] for p in pending] == [handoff.report_id] and pending[0]["kind"] == "handoff"

        # The FC goes away without acknowledging the handoff; a new session finds it queued and hears it again.
        await fc.client.disconnect()
        fc.client, _, _ = await connect(fc.server.url)
        assert [json.loads(t)["report_id"] for t in await fc.read("Cellctl.PendingReports")] == [handoff.report_id]
        events = await fc.report_events()
        await events.until(lambda e: e.ReportId == handoff.report_id)
        # The server counts a delivery (in its worker thread) just after it sent the event: wait for the count,
        # bounded. No event marks that write, so it is polled.
        with anyio.fail_after(5):
            while (entry := store.get(handoff.report_id)) is not None and entry.deliveries < 2:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        assert entry is not None and entry.deliveries >= 2
        assert await fc.call("Cellctl", "AcknowledgeReports", ua.Variant([handoff.report_id, 999],
                                                                         ua.VariantType.UInt64), ns=fc.ns) == 1
        assert await fc.read("Cellctl.PendingReportCount") == 0
        assert store.pending() == []


async def test_pick_requests_are_validated_queued_and_refused_when_the_queue_is_full(shared: Fc) -> None:
    fc, store = shared, shared.store
    task_id = await fc.call("Cellctl", "RequestPick", "item-7", "sku-7", "POD-1", "A3", ns=fc.ns)
    assert isinstance(task_id, str) and task_id.startswith("pick-")
    assert [(r.task_id, r.item_id, r.pod, r.bin_id) for r in [store.take_request()] if r] == [
        (task_id, "item-7", "POD-1", "A3")]

    s = ua.VariantType.String
    empty = await fc.call_full("Cellctl", "RequestPick", ua.Variant("", s), ua.Variant("", s),
                               ua.Variant("POD-1", s), ua.Variant("A3", s))
    assert empty.StatusCode.value == ua.StatusCodes.BadInvalidArgument
    assert [r.value for r in empty.InputArgumentResults] == [ua.StatusCodes.BadInvalidArgument, 0, 0, 0]
    assert empty.InputArgumentDiagnosticInfos[0].AdditionalInfo.startswith("ItemId: ")

    wrong_type = await fc.call_full("Cellctl", "RequestPick", ua.Variant("item-8", s), ua.Variant("", s),
                                    ua.Variant(3, ua.VariantType.Int32), ua.Variant("A3", s))
    assert wrong_type.StatusCode.value == ua.StatusCodes.BadInvalidArgument
    assert [r.value for r in wrong_type.InputArgumentResults] == [0, 0, ua.StatusCodes.BadTypeMismatch, 0]
    assert wrong_type.InputArgumentDiagnosticInfos[2].AdditionalInfo == "Pod: a String"

    too_few = await fc.call_full("Cellctl", "RequestPick", ua.Variant("item-8", s))
    assert too_few.StatusCode.value == ua.StatusCodes.BadInvalidArgument

    await fc.call("Cellctl", "RequestPick", "item-8", "", "POD-1", "A4", ns=fc.ns)  # the queue's one place
    with pytest.raises(ua.UaStatusCodeError) as full:
        await fc.call("Cellctl", "RequestPick", "item-9", "", "POD-1", "A5", ns=fc.ns)
    assert full.value.code == ua.StatusCodes.BadResourceUnavailable
    assert store.requests_queued() == 1


async def test_a_port_in_use_raises_the_oserror_without_a_logged_traceback_and_a_missing_nodeset_says_make(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    store = CellStore.open(tmp_path / "fc.sqlite")
    control = ChartControl(ChartRunner(cell.build(), data=cell.CellData(FakeWorkcell())), cell.CellData(FakeWorkcell()),
                           _never)
    try:
        missing = FcServer(FcConfig(port=0, nodeset=tmp_path / "none.xml"), control, store)
        with pytest.raises(NodesetMissing, match=r"none\.xml.*`make`.*fetch-nodesets\.sh"):
            await missing.run()
        with pytest.raises(NodesetMissing):
            await missing.prepare()
        unattached = FcServer(FcConfig(port=0), None, store)
        with pytest.raises(FcServerError, match="no cell attached"):
            await unattached.run()
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = FcServer(FcConfig(port=taken.getsockname()[1]), control, store)
            with caplog.at_level(logging.INFO), pytest.raises(OSError):
                await busy.run()
        tracebacks = [r for r in caplog.records if r.exc_info and r.name.startswith("asyncua.server")]
        assert not tracebacks, [r.getMessage() for r in tracebacks]
    finally:
        store.close()


async def _never(event: str) -> None:
    raise AssertionError(f"nothing is posted here, got {event}")
