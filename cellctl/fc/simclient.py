"""The simulated FC: a real OPC UA client of the cell's FC server, as a fulfilment centre's system would be.

    SimFc(url, orders=...)   `await tg.start(fc.run)`: connects, subscribes to CellReportEventType, reads
     │                       PendingReports (what it missed while away), acknowledges every report it recorded
     ├─ Ledger               every report by task id, once: `duplicates` counts redeliveries of one already
     │                       recorded, `conflicts` a task id reported twice with different content
     └─ orders (optional)    one pick request at a time (RequestPick), the next once its report came in

It reconnects after a lost connection (and finds what it missed in PendingReports). `ack_delay_s` makes it an FC
that acknowledges late; `pause()`/`resume()` one that stops acknowledging.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import structlog
from anyio.abc import TaskStatus
from asyncua import Client, Node, ua

from statecharts.workcell import PickOrder

__all__ = ["Ledger", "OrderFeed", "SimFc"]

log = structlog.get_logger("simfc")
NAMESPACE = "urn:cellctl:fc"


class OrderFeed(Protocol):
    """Where the simulated FC's pick orders come from (the simulated world: an item it knows is in a bin)."""

    async def next_order(self, timeout_s: float) -> PickOrder | None: ...


@dataclass
class Ledger:
    """The FC's record of reports: one per task id."""

    reports: dict[str, dict[str, Any]] = field(default_factory=dict)  # task id -> the report (payload + ids)
    report_ids: dict[int, str] = field(default_factory=dict)  # report id -> task id
    duplicates: int = 0  # a report id seen again (a redelivery): not recorded twice
    conflicts: list[str] = field(default_factory=list)  # task ids reported twice under different report ids
    changed: anyio.Event = field(default_factory=anyio.Event)

    def record(self, report_id: int, task_id: str, kind: str, payload: dict[str, Any]) -> bool:
        """True when new; a redelivery of a recorded report id is counted and dropped."""
        if report_id in self.report_ids:
            self.duplicates += 1
            return False
        if task_id in self.reports:
            self.conflicts.append(task_id)
            return False
        self.report_ids[report_id] = task_id
        self.reports[task_id] = {"report_id": report_id, "kind": kind, **payload}
        self.changed.set()
        self.changed = anyio.Event()
        return True

    async def wait_for(self, predicate: Callable[[Ledger], bool]) -> None:
        while not predicate(self):
            await self.changed.wait()


class _Events:
    """asyncua's subscription handler: report events into a memory stream (never blocks the client)."""

    def __init__(self, send: Any) -> None:
        self.send = send

    def event_notification(self, event: Any) -> None:
        fields = event.get_event_props_as_fields_dict()
        try:
            self.send.send_nowait(_from_fields({k: v.Value for k, v in fields.items()}))
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError, ValueError, KeyError):
            log.warning("report event dropped by the simulated FC (it reads PendingReports instead)")


def _from_fields(fields: dict[str, Any]) -> tuple[int, str, str, dict[str, Any]]:
    payload = json.loads(fields["Payload"])
    return int(fields["ReportId"]), str(fields["TaskId"]), str(fields["Kind"]), payload


class SimFc:
    """A simulated FC: records and acknowledges the cell's reports, and requests picks."""

    def __init__(self, url: str, *, orders: OrderFeed | None = None, ack_delay_s: float = 0.0,
                 order_timeout_s: float = 600.0, reconnect_s: float = 0.5, acknowledge: bool = True) -> None:
        self.url, self.orders, self.ack_delay_s, self.acknowledge = url, orders, ack_delay_s, acknowledge
        self.order_timeout_s, self.reconnect_s = order_timeout_s, reconnect_s
        self.ledger = Ledger()
        self.requested: list[str] = []  # task ids the FC server gave for our pick requests
        self.connections = 0
        self.connected = anyio.Event()
        self._acking = anyio.Event()
        self._acking.set()
        self._client: Client | None = None

    def pause(self) -> None:
        """Stop acknowledging (an FC whose MES is down)."""
        self._acking = anyio.Event()

    def resume(self) -> None:
        self._acking.set()

    async def disconnect(self) -> None:
        """Drop the connection now, as a network fault would (it reconnects)."""
        client = self._client
        transport = getattr(getattr(client.uaclient, "protocol", None), "transport", None) if client else None
        if transport is not None:
            transport.abort()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self._task_status: TaskStatus[None] | None = task_status
        while True:
            client = Client(self.url, timeout=5)
            try:
                await client.connect()
                self._client = client
                await self._session(client)
            except* (OSError, TimeoutError, ua.UaError, ConnectionError) as group:
                exc = group.exceptions[0]
                log.info("simulated FC: connection lost, reconnecting", error=str(exc) or type(exc).__name__)
            finally:
                self._client = None
                self.connected = anyio.Event()
                with anyio.move_on_after(2.0, shield=True), contextlib.suppress(Exception):
                    await client.disconnect()  # bounded: a dead server answers nothing
            await anyio.sleep(self.reconnect_s)

    async def _session(self, client: Client) -> None:
        idx = await client.get_namespace_index(NAMESPACE)
        cellctl = await client.nodes.objects.get_child(f"{idx}:Cellctl")
        etype = await client.nodes.base_event_type.get_child(f"{idx}:CellReportEventType")
        send, receive = anyio.create_memory_object_stream[tuple[int, str, str, dict[str, Any]]](10_000)
        sub = await client.create_subscription(50, _Events(send))
        await sub.subscribe_events(client.nodes.server, etype)
        self.connections += 1
        pending = await cellctl.get_child(f"{idx}:PendingReports")
        for text in await pending.read_value() or []:  # what came while we were away
            r = json.loads(text)
            await send.send(_from_pending(r))
        self.connected.set()
        if self._task_status is not None:  # the first session only
            self._task_status.started()
            self._task_status = None
        ack = await cellctl.get_child(f"{idx}:AcknowledgeReports")
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch, client)
            if self.orders is not None:
                tg.start_soon(self._request_picks, cellctl, idx)
            async with receive:
                async for report_id, task_id, kind, payload in receive:
                    self.ledger.record(report_id, task_id, kind, payload)
                    if self.acknowledge:
                        await self._ack(cellctl, ack, report_id)

    async def _watch(self, client: Client) -> None:
        while True:  # asyncua notices a dead server on its own keep-alive; a read fails fast here
            await anyio.sleep(1.0)
            await client.nodes.server_state.read_value()

    async def _ack(self, cellctl: Node, ack: Node, report_id: int) -> None:
        await self._acking.wait()
        if self.ack_delay_s > 0:
            await anyio.sleep(self.ack_delay_s)
        await cellctl.call_method(ack.nodeid, ua.Variant([report_id], ua.VariantType.UInt64))

    async def _request_picks(self, cellctl: Node, idx: int) -> None:
        assert self.orders is not None
        request = await cellctl.get_child(f"{idx}:RequestPick")
        while True:
            order = await self.orders.next_order(30.0)
            if order is None:
                continue
            pod = order.bin_id.split("-")[0]
            task_id = await cellctl.call_method(request.nodeid, order.item_id, order.product_id, pod, order.bin_id)
            self.requested.append(str(task_id))
            with anyio.move_on_after(self.order_timeout_s):
                await self.ledger.wait_for(lambda ledger: task_id in ledger.reports)  # noqa: B023 - awaited here


def _from_pending(r: dict[str, Any]) -> tuple[int, str, str, dict[str, Any]]:
    payload = r.get("payload", r)
    return int(r["report_id"]), str(r["task_id"]), str(r["kind"]), payload if isinstance(payload, dict) else {}

