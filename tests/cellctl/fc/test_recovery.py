"""cellctl.fc.recovery: an interrupted task whose item the conveyor handed over is one handoff, one whose item is
still at the pick-up point is dropped unreported; the alarm survives a crash until Clear and Reset; stale arrivals
are told apart from the one at the pick-up point; a task cut short before it took its item leaves no entry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from cellctl.fc.recovery import AT_PICKUP, Pickup, alarm_file, recover
from cellctl.fc.reporting import ReportingWorkcell, StowJournal
from cellctl.fc.store import CellStore
from drivers.plc import PlcDisconnected
from drivers.plc_nodes import ItemArrival
from statecharts.workcell import ItemArrival as ItemArrivalPort

pytestmark = pytest.mark.anyio


class FakePlc:
    """`PlcClient.read` of AtPickup: a record, "" (nothing there), or an error."""

    def __init__(self, at: dict[str, Any] | str | Exception) -> None:
        self.at = at
        self.reads = 0

    async def read(self, name: str, *, timeout_s: float | None = None) -> Any:
        assert name == AT_PICKUP
        self.reads += 1
        if isinstance(self.at, Exception):
            raise self.at
        return self.at if isinstance(self.at, str) else json.dumps(self.at)


def arrival(seq: int, item_id: str) -> ItemArrival:
    return ItemArrival(seq=seq, item_id=item_id, length_mm=100, width_mm=80, height_mm=60, weight_kg=0.3)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CellStore]:
    with CellStore.open(tmp_path / "fc.sqlite") as s:
        yield s


def interrupted(store: CellStore) -> None:
    """What a kill leaves: a task in the gripper (handed over), one whose item is still at the pick-up point."""
    store.begin_task("r1-stow-000004", "stow", "41")
    store.note_step("r1-stow-000004", {"primitive": "eject_item", "params": {"x": 120.0}, "t_s": 1.0})
    store.begin_task("r1-stow-000005", "stow", "42")


async def test_a_handed_over_item_is_one_handoff_and_one_still_on_the_conveyor_is_dropped(
        store: CellStore, tmp_path: Path) -> None:
    interrupted(store)
    r = await recover(store, tmp_path, conveyor=Pickup(FakePlc({"seq": 9, "item_id": "42"})))
    assert r.interrupted and [h["task_id"] for h in r.handoffs] == ["r1-stow-000004"]
    (h,) = r.handoffs
    assert h["outcome"] == "handoff" and h["recovered"] is True and h["item_id"] == "41"
    assert h["last_known"]["primitive"] == "eject_item" and h["last_known"]["params"] == {"x": 120.0}
    assert "bin" in h["last_known"]["location"] and h["last_known"]["conveyor"] == "not at the pick-up point"
    assert [x["task_id"] for x in r.returned] == ["r1-stow-000005"]
    assert "r1-stow-000004" in r.alarm and "r1-stow-000005" in r.alarm and "Clear and Reset" in r.alarm
    assert [e.task_id for e in store.pending()] == ["r1-stow-000004"]  # one report: the handoff
    assert store.unfinished() == []  # the returned one dropped, no report


async def test_without_an_answer_from_the_conveyor_every_interrupted_task_is_a_handoff(
        store: CellStore, tmp_path: Path) -> None:
    interrupted(store)
    r = await recover(store, tmp_path, conveyor=Pickup(FakePlc(PlcDisconnected("down"))))
    assert [h["task_id"] for h in r.handoffs] == ["r1-stow-000004", "r1-stow-000005"] and not r.returned
    assert r.handoffs[1]["last_known"]["conveyor"] == "unknown (the PLC did not say)"
    r2 = await recover(store, tmp_path)  # None: no conveyor at all (and nothing left to settle)
    assert len(store.pending()) == 2 and store.duplicates == 0
    assert r2.interrupted  # the alarm is not cleared yet


async def test_the_alarm_survives_a_crash_until_clear_and_reset(store: CellStore, tmp_path: Path) -> None:
    interrupted(store)
    first = await recover(store, tmp_path, conveyor=Pickup(FakePlc({"seq": 9, "item_id": "42"})))
    assert alarm_file(store).exists()
    again = await recover(store, tmp_path, conveyor=Pickup(FakePlc("")))  # killed while Aborted: restarted
    assert again.alarm == first.alarm and again.interrupted
    assert len(store.pending()) == 1  # nothing reported twice
    again.clear()  # Clear and Reset
    assert not alarm_file(store).exists()
    assert not (await recover(store, tmp_path)).interrupted


async def test_a_crash_between_the_alarm_and_the_reports_settles_the_rest_on_restart(
        store: CellStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    interrupted(store)
    calls = 0
    commit = store.commit_report

    def dies(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        raise KeyboardInterrupt("killed")  # stands in for SIGKILL before the first commit lands

    monkeypatch.setattr(store, "commit_report", dies)
    with pytest.raises(KeyboardInterrupt):
        await recover(store, tmp_path, conveyor=Pickup(FakePlc({"seq": 9, "item_id": "42"})))
    assert alarm_file(store).exists() and calls == 1
    monkeypatch.setattr(store, "commit_report", commit)
    r = await recover(store, tmp_path, conveyor=Pickup(FakePlc({"seq": 9, "item_id": "42"})))
    assert {h["task_id"] for h in r.handoffs} == {"r1-stow-000004"} and {x["task_id"] for x in r.returned} == {
        "r1-stow-000005"}
    assert [e.task_id for e in store.pending()] == ["r1-stow-000004"] and store.unfinished() == []


async def test_a_clean_stop_leaves_nothing_to_recover(store: CellStore, tmp_path: Path) -> None:
    plc = FakePlc({"seq": 1, "item_id": "1"})
    r = await recover(store, tmp_path, conveyor=Pickup(plc))
    assert not r.interrupted and r.alarm == "" and plc.reads == 0 and not alarm_file(store).exists()


async def test_only_the_arrival_at_the_pick_up_point_is_present() -> None:
    pickup = Pickup(FakePlc({"seq": 7, "item_id": "42"}))
    assert await pickup.present(arrival(7, "42"))
    assert not await pickup.present(arrival(5, "42"))  # superseded by its re-announcement
    assert not await pickup.present(arrival(6, "40"))  # taken long ago
    assert not await Pickup(FakePlc("")).present(arrival(7, "42"))  # nothing at the pick-up point
    unknown = Pickup(FakePlc(PlcDisconnected("down")))
    assert await unknown.present(arrival(7, "42")) and unknown.unknown == 1  # cannot say: taken unchecked
    assert await Pickup(FakePlc("not json")).holds("42") is None


async def test_a_task_cancelled_in_next_item_leaves_no_journal_entry(store: CellStore) -> None:
    """A hold while the conveyor's item is being journalled: the task ends without it, and a clean stop leaves
    nothing for a restart to call interrupted; the next task's journal takes over any entry left for the item."""
    item = ItemArrivalPort(item_id="42", width_mm=80, height_mm=60, depth_mm=100, mass_kg=0.3)
    journal = StowJournal(store, lambda: "r1-stow-000007")
    journalled = anyio.Event()

    class Inner:
        async def next_item(self, timeout_s: float) -> ItemArrivalPort | None:
            await journal.begin(item)  # DriverWorkcell's on_item, then the PLC's acknowledgement
            journalled.set()
            await anyio.sleep_forever()
            return None

    port = ReportingWorkcell(Inner(), store, current_task=lambda: "r1-stow-000007")  # type: ignore[arg-type]
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(port.next_item, 5.0)
            await journalled.wait()
            assert [u.task_id for u in store.unfinished()] == ["r1-stow-000007"]
            tg.cancel_scope.cancel()
    assert store.unfinished() == []
    store.begin_task("r1-stow-000008", "stow", "42")  # left by a task the chart cut short after next_item
    await StowJournal(store, lambda: "r1-stow-000009").begin(item)
    assert [(u.task_id, u.item_id) for u in store.unfinished()] == [("r1-stow-000009", "42")]
