"""Crash recovery: what the last run left unfinished, settled once before the cell moves again.

On start (the PLC and the robot connected, the cell chart not started yet) `recover(store, log_dir, conveyor=...)`
reads the task journal (`CellStore.unfinished`: tasks begun and never reported, each with the last primitive noted
before it started) and the tail of the newest event log (how it ends, its last port call), and settles each task.

**Handed over** is what the conveyor knows (a real PLC's transfer record; the simulated one's `Conveyor.HandedOver`):
an item leaves the conveyor when the cell's grasp takes it off the pick-up point. Acknowledging an arrival
(AcknowledgeItem) does not hand it over: an item acknowledged and not taken is still at the pick-up point, seen by
the photo-eye (`Conveyor.AtPickup`), and announced again. The promise: every item the conveyor handed over gets
exactly one report (stowed in one bin, or a handoff); an interrupted task's item as a handoff with its last known
location. A stow task whose item is still at the pick-up point has nothing to report: the item comes again.

What a SIGKILL leaves, case by case (stow), and what the restarted controller does:

- (a) between tasks (no journal entry): nothing to settle; the cell resets and starts itself. The PLC driver re-reads
  the whole ArrivalLog on its first connect (`resume_after_seq = 0`, so the item waiting at the pick-up point is
  announced again); `Pickup.present` (DriverWorkcell's `present` hook) lets only the arrival AtPickup names through,
  so items taken long ago are not stowed twice and an arrival superseded by its re-announcement is skipped.
- (b) arrival journalled, acknowledgement not sent or not answered (the PLC may have recorded it), and (c)
  acknowledged, not yet grasped: the item is at the pick-up point: the entry is dropped (`CellStore.drop_task`), no
  report; the item is announced again, journalled under a new task, acknowledged again (a PLC that had the first
  answers False, harmless) and stowed: one report.
- (d) grasp in flight, item in the gripper, band open, blade out, any primitive in flight: the robot halts by itself
  (the controller's heartbeat stops); recovery waits until it runs no primitive (run.py), then asks the PLC. The
  grasp took the item (not at the pick-up point): one handoff report, `recovered: true`, `last_known` the last
  primitive begun with its parameters and where that leaves the item. A halted grasp that left it there: as (b).
  A PLC that cannot say (no AtPickup node, not answering): a handoff, the safe side (a human looks).
- (e) report committed, not acknowledged by the FC: the journal entry went with the commit (one transaction), so
  there is nothing to settle; the outbox redelivers it and the FC drops a report id it has: not reported again.
- (f) killed during recovery, or while waiting Aborted: the alarm file beside the store (`<store>.recovery.json`) is
  written (fsync, rename) before any report or drop and removed only once the cell is Idle after Clear and Reset
  (`Recovery.clear`); a restart finds it, waits Aborted again with the same alarm, and settles what was left (a
  handoff committed twice is a duplicate, dropped by the store).

A pick task is reported as a handoff (its item on the cup or in the bin: a human looks); pick requests taken and never
begun go back to the queue. Any interrupted task puts the cell in PackML Aborted with `Recovery.alarm` naming each
task; an operator or the FC must Clear and Reset (the cell never resets itself after a crash).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from drivers.plc import PlcError
from drivers.plc_nodes import SIM_NAMESPACE
from drivers.plc_nodes import ItemArrival as PlcArrival

from .store import CellStore, UnfinishedTask

__all__ = ["AT_PICKUP", "AT_PICKUP_NODE", "Pickup", "Recovery", "alarm_file", "last_log_tail", "recover"]

log = structlog.get_logger("recovery")

AT_PICKUP = "conveyor.at_pickup"
"""The PLC node-map name (`PlcNodeMap.extra`) of the conveyor's pick-up point: the ArrivalLog record there, or ""."""
AT_PICKUP_NODE = f"nsu={SIM_NAMESPACE};s=StowStation.Conveyor.AtPickup"
"""Its NodeId on the simulated PLC (`drivers.sim.plc`), the default."""
READ_TIMEOUT_S = 2.0


class _Reads(Protocol):
    async def read(self, name: str, *, timeout_s: float | None = None) -> Any: ...


class Pickup:
    """The conveyor's pick-up point as the PLC reports it (AtPickup), over `PlcClient.read`."""

    def __init__(self, plc: _Reads, timeout_s: float = READ_TIMEOUT_S) -> None:
        self.plc, self.timeout_s = plc, timeout_s
        self.unknown = 0  # reads that gave no answer (the PLC cannot say)

    async def record(self) -> dict[str, Any] | None:
        """The arrival record at the pick-up point ({} when none); None when the PLC cannot say."""
        try:
            text = await self.plc.read(AT_PICKUP, timeout_s=self.timeout_s)
        except (PlcError, TimeoutError, KeyError) as exc:
            self._unknown(str(exc))
            return None
        if text in ("", None):
            return {}
        try:
            record = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            record = None
        if not isinstance(record, dict):
            self._unknown(f"AtPickup is not an arrival record: {str(text)[:80]!r}")
            return None
        return record

    def _unknown(self, why: str) -> None:
        self.unknown += 1
        if self.unknown == 1:  # once: a PLC without the node says so on every read
            log.warning("the PLC does not say what is at the pick-up point: arrivals are taken unchecked",
                        error=why)

    async def present(self, arrival: PlcArrival) -> bool:
        """Is this the arrival at the pick-up point? (DriverWorkcell's `present` hook; True when the PLC cannot say.)"""
        record = await self.record()
        if record is None:
            return True
        return record.get("seq") == arrival.seq and record.get("item_id") == arrival.item_id

    async def holds(self, item_id: str) -> bool | None:
        """Is `item_id` at the pick-up point (under any arrival)? None when the PLC cannot say."""
        record = await self.record()
        return None if record is None else record.get("item_id") == item_id


@dataclass(frozen=True, slots=True)
class Recovery:
    handoffs: tuple[dict[str, Any], ...] = ()  # handoff reports of interrupted tasks whose item the conveyor gave
    returned: tuple[dict[str, Any], ...] = ()  # interrupted stow tasks whose item is still at the pick-up point
    released: tuple[str, ...] = ()  # pick requests put back in the queue (taken, never begun)
    log_tail: dict[str, Any] = field(default_factory=dict)  # the newest log's file, ending and last call
    alarm_path: Path | None = None  # the alarm file, until Clear and Reset

    @property
    def interrupted(self) -> bool:
        """A task was interrupted: the cell waits in Aborted for Clear and Reset."""
        return bool(self.handoffs or self.returned)

    @property
    def alarm(self) -> str:
        if not self.interrupted:
            return ""
        tasks = [f"{h['task_id']} ({h['task']} of item {h['item_id'] or '?'}, last step {_primitive(h)}: reported "
                 f"as a handoff, {(h.get('last_known') or {}).get('location', 'location uncertain')})"
                 for h in self.handoffs]
        tasks += [f"{r['task_id']} ({r['task']} of item {r['item_id']}, last step {_primitive(r)}: still at the "
                  "conveyor's pick-up point, not reported: it comes again)" for r in self.returned]
        return (f"controller restarted with {len(tasks)} task(s) interrupted: {'; '.join(tasks)}; check the gripper, "
                "the band and the blade, then Clear and Reset")

    def clear(self) -> None:
        """The operator (or the FC) cleared and reset the cell: the alarm file goes."""
        if self.alarm_path is not None:
            _remove(self.alarm_path)


def alarm_file(store: CellStore) -> Path:
    """Where the unacknowledged recovery alarm is kept: beside the store."""
    return store.path.with_name(store.path.name + ".recovery.json")


def _primitive(entry: dict[str, Any]) -> str:
    return str((entry.get("last_known") or {}).get("primitive", "none"))


def _location(u: UnfinishedTask, on_conveyor: bool | None) -> dict[str, Any]:
    """The task's last known step, and where that leaves its item."""
    step = dict(u.last_step)
    primitive = step.get("primitive")
    conveyor = {True: "at the pick-up point", False: "not at the pick-up point",
                None: "unknown (the PLC did not say)"}[on_conveyor]
    if u.kind != "stow":
        where = f"on the suction cup or in bin {u.bin_id or '?'} (last primitive {primitive or 'none'})"
    elif primitive is None:
        where = "taken from the conveyor; no primitive begun"
    elif primitive == "grasp":
        where = "in the gripper (grasped at the conveyor)"
    else:
        where = f"in the gripper or a bin of the pod face (last primitive {primitive}; its target in params)"
    return {**step, "primitive": primitive or "none", "location": where, "conveyor": conveyor}


def _handoff(u: UnfinishedTask, now: float, log_tail: dict[str, Any], on_conveyor: bool | None) -> dict[str, Any]:
    where = u.last_step.get("primitive", "none") if u.last_step else "none"
    return {
        "task_id": u.task_id, "task": u.kind, "outcome": "handoff",
        "reason": f"interrupted: the controller restarted mid-task (last step {where}); item location uncertain",
        "item_id": u.item_id, "bin_id": u.bin_id, "attempts": 0, "started_s": u.started_s, "ended_s": now,
        "last_known": _location(u, on_conveyor), "detail": u.detail, "recovered": True,
        "log": log_tail.get("file", ""),
    }


async def recover(store: CellStore, log_dir: Path, *, exclude: Path | None = None,
                  conveyor: Pickup | None = None) -> Recovery:
    """Settle what the last run left unfinished (see the module docstring); a no-op after a clean stop.

    `conveyor`: the PLC's pick-up point (None: every interrupted task is a handoff). Call it once the robot runs no
    primitive, before the cell chart takes an item."""
    unfinished = store.unfinished()
    begun = {u.task_id for u in unfinished}
    released = []
    for r in store.taken_requests():
        if r.task_id not in begun:
            store.release_request(r.task_id)
            released.append(r.task_id)
    path = alarm_file(store)
    carried = _load(path)
    if not unfinished and not carried:
        return Recovery(released=tuple(released))
    tail = last_log_tail(log_dir, exclude=exclude)
    now = time.time()
    handoffs: dict[str, dict[str, Any]] = {h["task_id"]: h for h in carried.get("handoffs", [])}
    returned: dict[str, dict[str, Any]] = {r["task_id"]: r for r in carried.get("returned", [])}
    settle: list[tuple[UnfinishedTask, dict[str, Any] | None]] = []
    for u in unfinished:
        on_conveyor: bool | None = None
        if conveyor is not None and u.kind == "stow" and u.item_id:
            on_conveyor = await conveyor.holds(u.item_id)
        if on_conveyor:
            returned[u.task_id] = {"task_id": u.task_id, "task": u.kind, "item_id": u.item_id,
                                   "last_known": _location(u, on_conveyor)}
            handoffs.pop(u.task_id, None)
            settle.append((u, None))
        else:
            handoff = _handoff(u, now, tail, on_conveyor)
            handoffs[u.task_id] = handoff
            returned.pop(u.task_id, None)
            settle.append((u, handoff))
    # The alarm first: a crash from here on finds it and waits Aborted again (case f).
    _save(path, {"handoffs": list(handoffs.values()), "returned": list(returned.values())})
    for u, payload in settle:
        if payload is None:
            store.drop_task(u.task_id)
            log.warning("interrupted task's item is still at the pick-up point: not reported, it comes again",
                        task_id=u.task_id, item_id=u.item_id, last_step=u.last_step)
        else:
            store.commit_report(u.task_id, "handoff", payload)  # None: already reported by an earlier recovery
            log.error("interrupted task reported as a handoff", task_id=u.task_id, item_id=u.item_id,
                      last_step=u.last_step)
    return Recovery(tuple(handoffs.values()), tuple(returned.values()), tuple(released), tail, path)


def _load(path: Path) -> dict[str, Any]:
    """The alarm file of a recovery not yet cleared ({} when none; a damaged one is kept aside and said)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.error("recovery alarm file unreadable: an interrupted task may go unnamed", file=str(path),
                  error=str(exc))
        return {"handoffs": [], "returned": [{"task_id": "?", "task": "?", "item_id": "?",
                                              "last_known": {"primitive": f"unknown ({path} unreadable)"}}]}
    ok = isinstance(data, dict) and all(isinstance(data.get(k, []), list) for k in ("handoffs", "returned"))
    return data if ok else {}


def _save(path: Path, data: dict[str, Any]) -> None:
    """Write atomically and durably: a temporary file, fsync, rename, fsync of the directory."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _sync_dir(path.parent)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return
    _sync_dir(path.parent)


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def last_log_tail(log_dir: Path, *, exclude: Path | None = None) -> dict[str, Any]:
    """The newest `cellctl run` log in `log_dir`: its file, how it ends, and the last port call it holds."""
    from cellctl.eventlog import LogFormatError, read_log

    logs = sorted((p for p in log_dir.glob("cellctl-run-*.mcap") if p != exclude),
                  key=lambda p: p.stat().st_mtime)
    if not logs:
        return {}
    newest = logs[-1]
    last_call: dict[str, Any] | None = None
    try:
        records = read_log(newest, topics={"port.call"})
        for r in records:
            last_call = {"t_s": r.t_s, "method": r.payload.get("method"), "args": r.payload.get("args")}
        ending = records.ending.as_dict() if records.ending is not None else None
    except (LogFormatError, OSError) as exc:
        return {"file": str(newest), "error": str(exc)}
    return {"file": str(newest), "ending": ending, "last_call": last_call}
