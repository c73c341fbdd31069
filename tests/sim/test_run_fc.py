"""`cellctl run` as the FC sees it: PackML methods over OPC UA, pick requests, reports exactly once.

The controller runs in-process against the built-in simulated cell (its devices behind OPC UA, Modbus TCP and UDP
on 127.0.0.1); the FC is an asyncua client over loopback.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from asyncua import Client, Node, ua

from cellctl.commands.run import run_cell
from cellctl.config import RunConfig, load_config
from cellctl.eventlog import read_log
from cellctl.fc.simclient import SimFc
from cellctl.runtime.cell import CellRun, Command
from drivers.sim.cell import SimCell
from drivers.sim.faults import profile
from drivers.sim.world import ground_truth_eligibility
from statecharts.workcell import PickOrder

pytestmark = pytest.mark.anyio

FAST = 0.05
PACKML = "http://opcfoundation.org/UA/PackML/"
OURS = "urn:cellctl:fc"


def _config(tmp_path: Path, *, task: str = "stow", cycles: int = 0, fc_port: int = 0, fc_client: bool = True,
            extra: str = "") -> RunConfig:
    path = tmp_path / "cell.toml"
    path.write_text(f'[cell]\ntask = "{task}"\ncycles = {cycles}\nstatus_period_s = 0.2\n[log]\ndir = "{tmp_path}"\n'
                    f'[sim]\ntime_scale = {FAST}\nseed = 5\nfc_client = {str(fc_client).lower()}\n'
                    f'[fc]\nport = {fc_port}\nredeliver_after_s = 1.0\n{extra}')
    return load_config(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Fc:
    """An FC's view of the cell: PackML state, the command methods."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def setup(self) -> Fc:
        c = self.client
        self.p, self.o = await c.get_namespace_index(PACKML), await c.get_namespace_index(OURS)
        cell = await c.nodes.objects.get_child(f"{self.o}:Cell")
        self.base = await cell.get_child(f"{self.p}:BaseStateMachine")
        self.machine = await self.base.get_child(f"{self.p}:MachineState")
        self.execute = await self.machine.get_child(f"{self.p}:ExecuteState")
        return self

    async def wait_state(self, number: int, timeout_s: float = 60.0) -> None:
        await self.wait_value("StateCurrent", lambda v: v == number, timeout_s)

    async def wait_value(self, name: str, predicate: Callable[[Any], bool], timeout_s: float = 60.0) -> None:
        """Until `Cellctl.<name>` satisfies `predicate` (a data-change subscription: every value published)."""
        node = await self.client.nodes.objects.get_child([f"{self.o}:Cellctl", *(f"{self.o}:{n}" for n in
                                                                                  name.split("."))])
        send, receive = anyio.create_memory_object_stream[Any](100)

        class Changes:
            def datachange_notification(self, node: Node, value: Any, data: Any) -> None:
                send.send_nowait(value)

        sub = await self.client.create_subscription(20, Changes())
        try:
            await sub.subscribe_data_change(node)
            with anyio.fail_after(timeout_s):
                async for value in receive:
                    if predicate(value):
                        return
        finally:
            await sub.delete()

    async def call(self, machine: Node, method: str) -> None:
        node = await machine.get_child(f"{self.p}:{method}")
        await machine.call_method(node.nodeid)


async def _with_run(cfg: RunConfig, fc: Callable[[str], Awaitable[None]]) -> dict[str, Any]:
    """Run the cell; once its FC endpoint is up, run `fc(url)` beside it."""
    summary: dict[str, Any] = {}
    url: list[str] = []
    ready = anyio.Event()

    def on_fc(u: str) -> None:
        url.append(u)
        ready.set()

    fc_done = False

    async def controller() -> None:
        summary.update(await run_cell(cfg, out=io.StringIO(), on_fc=on_fc))
        if not fc_done:  # the run ended on its own (an abort): say so now, not at the FC's timeout
            tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(controller)
        with anyio.fail_after(60):
            await ready.wait()
        await fc(url[0])
        fc_done = True
    if not fc_done:
        raise AssertionError(f"the run ended {summary.get('end_state')} before the FC was done: "
                             f"{summary.get('stop_reason')}")
    return summary


async def test_an_fc_client_drives_the_cell_through_the_packml_methods(tmp_path: Path) -> None:
    async def fc(url: str) -> None:
        async with Client(url, timeout=10) as client:
            f = await Fc(client).setup()
            await f.wait_state(6)  # Execute (the built-in cell resets and starts itself)
            with pytest.raises(ua.UaStatusCodeError) as refused:
                await f.call(f.execute, "Unhold")  # not in Held
            assert refused.value.code == ua.StatusCodes.BadInvalidState
            result = await client.nodes.objects.get_child([f"{f.o}:Cellctl", f"{f.o}:LastCommandResult"])
            assert "Execute" in await result.read_value()
            await f.call(f.execute, "Hold")
            await f.wait_state(11)  # Held
            await f.call(f.execute, "Unhold")
            await f.wait_state(6)
            await f.call(f.machine, "Stop")  # the run ends once the cell is Stopped (its summary says so)

    with anyio.fail_after(120):
        summary = await _with_run(_config(tmp_path), fc)
    assert summary["end_state"] == "stopped"
    commands = [r.payload["command"] for r in read_log(Path(summary["log"])) if r.topic == "cell.command"]
    assert commands == ["cmd.reset", "cmd.start", "cmd.hold", "cmd.unhold", "cmd.stop"]


class SeededOrders:
    """The FC's orders: free items a copy of the simulated world (same seed) holds at the start (this FC knows what
    the cell can pick: the test is of the request path, not of the cell's refusals)."""

    def __init__(self, seed: int) -> None:
        self.cell = SimCell(seed, profile("none"))

    async def next_order(self, timeout_s: float) -> PickOrder | None:
        await anyio.lowlevel.checkpoint()
        for _ in range(1000):
            order, _ = self.cell.next_order()
            if order is None:
                return None
            if ground_truth_eligibility(self.cell.pod.bin(order.bin_id))[order.item_id] == "free":
                return PickOrder(order_id=order.order_id, item_id=str(order.item_id), bin_id=order.bin_id,
                                 product_id=order.product_id)
        return None


async def _stop(url: str) -> None:
    """The FC stops the cell (MachineState.Stop); the run ends once it is Stopped."""
    async with Client(url, timeout=10) as client:
        f = await Fc(client).setup()
        await f.call(f.machine, "Stop")


async def test_pick_requests_made_over_opc_ua_are_picked_and_reported(tmp_path: Path) -> None:
    port = _free_port()
    fc = SimFc(f"opc.tcp://127.0.0.1:{port}/cellctl/fc", orders=SeededOrders(5), reconnect_s=0.2)

    async def picks(url: str) -> None:
        with anyio.fail_after(120):
            await fc.ledger.wait_for(lambda ledger: len(ledger.reports) >= 3)
        await _stop(url)

    async with anyio.create_task_group() as tg:
        tg.start_soon(fc.run)  # connects once the controller serves
        with anyio.fail_after(180):
            cfg = _config(tmp_path, task="pick", fc_port=port, fc_client=False,
                          extra='[perception]\nmode = "oracle"\n')  # the request path, not the models
            summary = await _with_run(cfg, picks)
        tg.cancel_scope.cancel()
    assert summary["end_state"] == "stopped" and summary["cycles"] >= 3
    reports = fc.ledger.reports
    assert not fc.ledger.conflicts and set(fc.requested[:3]) <= set(reports)
    for task_id in fc.requested[:3]:
        r = reports[task_id]
        assert task_id.startswith("pick-1-")  # the id RequestPick returned
        assert r["task"] == "pick" and r["chart_task_id"].startswith("r1-pick-") and r["item_id"] and r["bin_id"]
    assert sum(r["outcome"] == "done" for r in reports.values()) >= 1  # the world held what the FC asked for


async def test_reports_arrive_exactly_once_across_a_disconnect_late_acks_and_a_restart(tmp_path: Path) -> None:
    port = _free_port()
    fc = SimFc(f"opc.tcp://127.0.0.1:{port}/cellctl/fc", ack_delay_s=0.5, reconnect_s=0.2)

    async def first(url: str) -> None:
        with anyio.fail_after(60):
            await fc.ledger.wait_for(lambda ledger: len(ledger.reports) >= 1)
        await fc.disconnect()  # forced: it reconnects and finds what it missed in PendingReports
        fc.pause()  # and acknowledges nothing more this run: the restart must deliver those again
        async with Client(url, timeout=10) as client:  # two more reports, then the FC stops the cell
            await (await Fc(client).setup()).wait_value("Counters.Reports", lambda n: n >= 3, 60)
        await _stop(url)

    async with anyio.create_task_group() as tg:
        tg.start_soon(fc.run)
        with anyio.fail_after(240):
            first_run = await _with_run(_config(tmp_path, fc_port=port, fc_client=False), first)
            committed = _committed(first_run)

            async def restarted(url: str) -> None:  # a restart redelivers what is unacknowledged
                fc.resume()
                await fc.ledger.wait_for(lambda ledger: set(committed) <= set(ledger.reports))
                await _stop(url)

            second_run = await _with_run(_config(tmp_path, fc_port=port, fc_client=False), restarted)
        tg.cancel_scope.cancel()
    assert len(committed) == len(set(committed)) == first_run["reports"]
    assert set(committed) <= set(fc.ledger.reports) and not fc.ledger.conflicts
    assert first_run["fc"]["pending"] >= 1  # the reports after the pause, left for the restart
    assert second_run["end_state"] == "stopped"
    assert fc.connections >= 3  # the first, after the forced disconnect, after the restart
    assert [first_run["fc"]["boot"], second_run["fc"]["boot"]] == [1, 2]


def _committed(summary: dict[str, Any]) -> list[str]:
    """The task ids a run committed to the outbox (its log's fc.report records)."""
    return [r.payload["task_id"] for r in read_log(Path(summary["log"])) if r.topic == "fc.report"]


async def test_an_fc_that_stops_acknowledging_holds_the_cell_with_an_alarm_and_loses_no_report(
        tmp_path: Path) -> None:
    cfg = _config(tmp_path, fc_client=False, extra="outbox_capacity = 2\n")  # nobody acknowledges
    alarmed, ready = anyio.Event(), anyio.Event()
    runs: list[CellRun] = []

    def on_ready(run: CellRun) -> None:
        runs.append(run)
        ready.set()

    async def watch() -> None:
        with anyio.fail_after(120):
            await ready.wait()
            await runs[0].runner.wait_for("held")
        alarmed.set()
        await runs[0].command(Command("cmd.stop"))

    summary: dict[str, Any] = {}

    async def controller() -> None:
        summary.update(await run_cell(cfg, out=io.StringIO(), on_ready=on_ready))

    with anyio.fail_after(180):
        async with anyio.create_task_group() as tg:
            tg.start_soon(controller)
            tg.start_soon(watch)
    assert alarmed.is_set() and summary["end_state"] == "stopped"
    assert "outbox full: 2 reports unacknowledged" in summary["alarm"]
    assert summary["fc"]["pending"] == summary["reports"] >= 2  # every report kept, none acknowledged
    assert summary["fc"]["unfinished"] == 0
