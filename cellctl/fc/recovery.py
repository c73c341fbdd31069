"""Crash recovery: what the last run left unfinished, reported once as handoffs before the cell moves again.

On start `recover(store, log_dir)` reads the task journal (`CellStore.unfinished`: tasks begun and never reported,
each with the last primitive noted before it started) and the tail of the newest event log (how it ends, its last
port call). Each unfinished task becomes one handoff report in the outbox, with its item's last known location;
requests the FC made that were taken but never begun go back to the queue. A report committed again after a second
crash is a duplicate and dropped by the store, so recovery can itself be interrupted and rerun.

The returned `Recovery.alarm` names the tasks: the cell then waits in PackML Aborted until an operator or the FC
calls Clear and Reset (it never resets itself after a crash).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from .store import CellStore, UnfinishedTask

__all__ = ["Recovery", "last_log_tail", "recover"]

log = structlog.get_logger("recovery")


@dataclass(frozen=True, slots=True)
class Recovery:
    handoffs: tuple[dict[str, Any], ...] = ()  # the reports committed for the unfinished tasks
    released: tuple[str, ...] = ()  # pick requests put back in the queue (taken, never begun)
    log_tail: dict[str, Any] = field(default_factory=dict)  # the newest log's file, ending and last call

    @property
    def alarm(self) -> str:
        if not self.handoffs:
            return ""
        tasks = "; ".join(f"{h['task_id']} ({h['task']} of item {h['item_id'] or '?'}, last step "
                          f"{(h.get('last_known') or {}).get('primitive', 'none')})" for h in self.handoffs)
        return (f"controller restarted with {len(self.handoffs)} task(s) interrupted: {tasks}; each reported as a "
                "handoff: check the gripper, the band and the blade, then Clear and Reset")


def _handoff(u: UnfinishedTask, now: float, log_tail: dict[str, Any]) -> dict[str, Any]:
    where = u.last_step.get("primitive", "none") if u.last_step else "none"
    return {
        "task_id": u.task_id, "task": u.kind, "outcome": "handoff",
        "reason": f"interrupted: the controller restarted mid-task (last step {where}); item location uncertain",
        "item_id": u.item_id, "bin_id": u.bin_id, "attempts": 0, "started_s": u.started_s, "ended_s": now,
        "last_known": u.last_step, "detail": u.detail, "recovered": True,
        "log": log_tail.get("file", ""),
    }


def recover(store: CellStore, log_dir: Path, *, exclude: Path | None = None) -> Recovery:
    """Report what the last run left unfinished (see the module docstring); a no-op after a clean stop."""
    unfinished = store.unfinished()
    begun = {u.task_id for u in unfinished}
    released = []
    for r in store.taken_requests():
        if r.task_id not in begun:
            store.release_request(r.task_id)
            released.append(r.task_id)
    if not unfinished:
        return Recovery(released=tuple(released))
    tail = last_log_tail(log_dir, exclude=exclude)
    now = time.time()
    handoffs = []
    for u in unfinished:
        payload = _handoff(u, now, tail)
        store.commit_report(u.task_id, "handoff", payload)  # None: already reported by an earlier recovery
        handoffs.append(payload)
        log.error("interrupted task reported as a handoff", task_id=u.task_id, item_id=u.item_id,
                  last_step=u.last_step)
    return Recovery(tuple(handoffs), tuple(released), tail)


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
