"""cellctl.fc.store: exactly-once reports, durability across reopen and SIGKILL, capacity, the request queue,
the task journal, and the files it refuses (garbage, corrupt, locked, newer schema)."""

from __future__ import annotations

import importlib.util
import json
import math
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from cellctl.fc.store import (
    HEADROOM,
    CellStore,
    OutboxEntry,
    OutboxFull,
    PickRequest,
    RequestQueueFull,
    StoreError,
    UnfinishedTask,
)

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "cell.db"


@pytest.fixture
def store(db: Path) -> Iterator[CellStore]:
    with CellStore.open(db) as opened:
        yield opened


def run_child(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


# --- outbox: exactly-once


def test_reports_are_numbered_and_pending_in_order(store: CellStore) -> None:
    first = store.commit_report("stow-1-000001", "report", {"item_id": "a", "nested": {"z": 1, "a": [1, 2]}})
    second = store.commit_report("stow-1-000002", "handoff", {"item_id": "b"})
    assert first is not None and second is not None
    assert (first.report_id, second.report_id) == (1, 2)
    assert first.payload == {"item_id": "a", "nested": {"z": 1, "a": [1, 2]}}
    assert first.deliveries == 0 and first.created_s > 0
    assert store.pending() == [first, second]
    assert store.pending(limit=1) == [first]
    assert store.pending(limit=0) == []
    assert store.get(2) == second
    assert store.get(3) is None
    assert store.pending_count() == 2
    age = store.oldest_pending_age_s()
    assert age is not None and age >= 0.0


def test_duplicate_task_id_is_dropped_and_counted(store: CellStore) -> None:
    entry = store.commit_report("pick-1-000001", "report", {"n": 1})
    assert entry is not None
    assert store.commit_report("pick-1-000001", "report", {"n": 2}) is None
    assert store.commit_report("pick-1-000001", "handoff", {"n": 3}) is None
    assert store.duplicates == 2
    assert store.pending() == [entry]  # the first report, untouched
    later = store.commit_report("pick-1-000002", "report", {})
    assert later is not None and later.report_id == 2  # the dropped ones took no number


def test_acked_task_stays_deduplicated_after_reopen_and_prune(db: Path) -> None:
    with CellStore.open(db) as store:
        entry = store.commit_report("stow-1-000001", "report", {})
        assert entry is not None
        assert store.ack([entry.report_id]) == 1
        assert store.commit_report("stow-1-000001", "report", {}) is None
    with CellStore.open(db) as store:
        assert store.duplicates == 0  # counted per process
        assert store.commit_report("stow-1-000001", "report", {}) is None
        assert store.duplicates == 1
        assert store.prune_acked(keep=0) == 1
        assert store.get(entry.report_id) is None
        assert store.commit_report("stow-1-000001", "report", {}) is None
    with CellStore.open(db) as store:
        assert store.commit_report("stow-1-000001", "report", {}) is None
        fresh = store.commit_report("stow-3-000002", "report", {})
        assert fresh is not None and fresh.report_id == 2  # ids are never reused, even after the pruning


def test_ack_counts_only_newly_acknowledged(store: CellStore) -> None:
    for n in range(3):
        store.commit_report(f"t{n}", "report", {})
    assert store.ack([]) == 0
    assert store.ack([999, 1, 1, -4]) == 1
    assert store.ack([1]) == 0
    assert store.ack(iter([1, 2, 3])) == 2
    assert store.pending() == []
    assert store.oldest_pending_age_s() is None
    with pytest.raises(TypeError, match="ints"):
        store.ack([True])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="ints"):
        store.ack(["1"])  # type: ignore[list-item]


def test_mark_delivered_counts_deliveries(store: CellStore) -> None:
    entry = store.commit_report("t1", "report", {})
    assert entry is not None
    store.mark_delivered(entry.report_id)
    store.mark_delivered(entry.report_id)
    store.mark_delivered(12345)  # unknown: ignored
    got = store.get(entry.report_id)
    assert got is not None and got.deliveries == 2
    assert store.pending()[0].deliveries == 2


def test_only_ack_and_mark_delivered_skip_the_fsync_and_full_sync_is_back_after_them(db: Path) -> None:
    store = CellStore.open(db)
    try:
        conn = store._conn  # the store's own connection: what synchronous mode each write ran under
        assert conn is not None
        entry = store.commit_report("t1", "report", {})
        assert entry is not None
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        store.mark_delivered(entry.report_id)
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        store.ack([entry.report_id])
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        store.mark_delivered(entry.report_id)
        store.ack([entry.report_id])
        store.commit_report("t2", "report", {})
        conn.set_trace_callback(None)
        pragmas = [sql for sql in statements if sql.startswith("PRAGMA synchronous")]
        # mark_delivered and ack each switch to NORMAL and back; commit_report, last, runs under FULL
        assert pragmas == ["PRAGMA synchronous=NORMAL", "PRAGMA synchronous=FULL"] * 2
        last = len(statements) - 1 - statements[::-1].index("PRAGMA synchronous=FULL")
        assert "BEGIN IMMEDIATE" in statements[last:] and statements[-1] == "COMMIT"
    finally:
        store.close()


def test_prune_keeps_the_newest_acked_and_every_pending(store: CellStore) -> None:
    for n in range(6):
        store.commit_report(f"t{n}", "report", {"n": n})
    store.ack([1, 2, 3, 5])
    assert store.prune_acked(keep=10) == 0
    assert store.prune_acked(keep=2) == 2  # 1 and 2 go; 3 and 5 stay
    assert [store.get(i) is not None for i in range(1, 7)] == [False, False, True, True, True, True]
    assert [e.report_id for e in store.pending()] == [4, 6]
    assert store.counts()["acked"] == 2
    with pytest.raises(ValueError, match="keep"):
        store.prune_acked(keep=-1)


@pytest.mark.parametrize(
    ("task_id", "kind", "payload", "error", "match"),
    [
        ("", "report", {}, ValueError, "task_id"),
        ("t\x00", "report", {}, ValueError, "task_id"),
        (7, "report", {}, ValueError, "task_id"),
        ("t", "stow", {}, ValueError, "kind"),
        ("t", "report", [1], TypeError, "must be a dict"),
        ("t", "report", {"when": object()}, TypeError, "not JSON-able"),
        ("t", "report", {"x": math.nan}, ValueError, "not JSON-able"),
    ],
)
def test_commit_report_validates(store: CellStore, task_id: object, kind: str, payload: object,
                                 error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        store.commit_report(task_id, kind, payload)  # type: ignore[arg-type]
    assert store.counts()["pending"] == 0


# --- capacity


def test_capacity_full_headroom_then_outbox_full(tmp_path: Path) -> None:
    path = tmp_path / "cell.db"
    with CellStore.open(path, capacity=3) as store:
        for n in range(3):
            assert store.commit_report(f"t{n}", "report", {}) is not None
            assert store.full == (n == 2)
        for n in range(3, 3 + HEADROOM):  # tasks already running still report
            assert store.commit_report(f"t{n}", "report", {}) is not None
        assert store.pending_count() == 3 + HEADROOM
        with pytest.raises(OutboxFull) as refused:
            store.commit_report("late", "report", {})
        message = str(refused.value)
        assert f"{3 + HEADROOM} reports unacknowledged" in message and "the oldest for" in message
        assert str(path) in message and "'late'" in message
        assert isinstance(refused.value, StoreError)
        assert store.commit_report("t0", "report", {}) is None  # a duplicate is still just dropped
        assert store.pending_count() == 3 + HEADROOM
        store.ack(range(1, 3 + HEADROOM))  # all but the last
        assert not store.full
        assert store.commit_report("late", "report", {}) is not None


# --- durability


def test_everything_survives_close_and_reopen(db: Path) -> None:
    with CellStore.open(db) as store:
        assert store.boot == 1
        stow = store.new_task_id("stow")
        assert stow == "stow-1-000001"
        store.begin_task(stow, "stow", "item-1", "A1", {"grasp": "suction"})
        store.note_step(stow, {"at": "gripper", "primitive": "insert"})
        reported = store.commit_report(store.new_task_id("stow"), "report", {"ok": True})
        assert reported is not None
        store.mark_delivered(reported.report_id)
        acked = store.commit_report("stow-1-000099", "report", {})
        assert acked is not None and store.ack([acked.report_id]) == 1
        queued = store.add_request("item-2", "prod-2", "P1", "B3", reference_image_ids=["img-1", "img-2"])
        taken = store.add_request("item-3", "", "P1", "B4")
        took = [store.take_request(), store.take_request()]
        assert [r.task_id for r in took if r is not None] == [queued, taken]
        store.release_request(queued)  # leaves `queued` queued, `taken` taken
        before = store.counts()
    with CellStore.open(db) as store:
        assert store.boot == 2
        assert store.counts() == before == {"pending": 1, "acked": 1, "requests_queued": 1, "requests_taken": 1,
                                            "unfinished": 1}
        (entry,) = store.pending()
        assert entry == OutboxEntry(reported.report_id, reported.task_id, "report", {"ok": True},
                                    reported.created_s, 1)
        (task,) = store.unfinished()
        assert (task.task_id, task.kind, task.item_id, task.bin_id) == (stow, "stow", "item-1", "A1")
        assert task.last_step == {"at": "gripper", "primitive": "insert"}
        assert task.detail == {"grasp": "suction"}
        request = store.take_request()
        assert request == PickRequest(queued, "item-2", "prod-2", "P1", "B3", ("img-1", "img-2"),
                                      request.created_s if request else 0.0)
        assert [r.task_id for r in store.taken_requests()] == [queued, taken]
        assert store.new_task_id("stow") == "stow-2-000005"  # the one counter went on from 4
    with CellStore.open(db) as store:
        assert store.boot == 3


CRASHING_WRITER = """
import os, sys
from pathlib import Path
from cellctl.fc.store import CellStore
store = CellStore.open(Path(sys.argv[1]))
left = store.new_task_id("stow")
store.begin_task(left, "stow", "item-left", "C1")
store.note_step(left, {"at": "bin", "primitive": "push"})
done = store.new_task_id("stow")
store.begin_task(done, "stow", "item-done", "C2")
entry = store.commit_report(done, "report", {"item_id": "item-done"})
print(f"committed {entry.report_id} {done} {left}", flush=True)
os.kill(os.getpid(), 9)
"""


def test_report_survives_sigkill_right_after_commit(db: Path) -> None:
    child = run_child(CRASHING_WRITER, str(db))
    out, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, err
    word, report_id, done, left = out.split()
    assert word == "committed"
    with CellStore.open(db) as store:
        assert store.boot == 2
        (entry,) = store.pending()
        assert (entry.report_id, entry.task_id, entry.payload) == (int(report_id), done, {"item_id": "item-done"})
        assert store.commit_report(done, "report", {}) is None
        (task,) = store.unfinished()
        assert (task.task_id, task.item_id, task.last_step) == (left, "item-left", {"at": "bin", "primitive": "push"})


def test_usable_from_worker_threads(store: CellStore) -> None:
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for n in range(25):
                task_id = store.new_task_id("stow")
                store.begin_task(task_id, "stow", f"item-{worker}-{n}")
                store.commit_report(task_id, "report", {"worker": worker})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [e.report_id for e in store.pending()] == list(range(1, 101))
    assert store.counts()["unfinished"] == 0


# --- pick requests


def test_take_and_release_keep_the_queue_order(store: CellStore) -> None:
    ids = [store.add_request(f"item-{n}", f"prod-{n}", "P1", f"A{n}") for n in range(3)]
    assert ids == ["pick-1-000001", "pick-1-000002", "pick-1-000003"]
    assert store.new_task_id("stow") == "stow-1-000004"  # one counter: ids never collide
    assert store.requests_queued() == 3
    first, second = store.take_request(), store.take_request()
    assert first is not None and second is not None
    assert (first.task_id, second.task_id) == (ids[0], ids[1])
    assert (first.item_id, first.product_id, first.pod, first.bin_id) == ("item-0", "prod-0", "P1", "A0")
    assert store.requests_queued() == 1
    store.begin_task(first.task_id, "pick", first.item_id, first.bin_id)
    store.release_request(first.task_id)  # back in its old place, its journal entry gone
    store.release_request(first.task_id)  # queued already: nothing to do
    assert store.unfinished() == []
    again = store.take_request()
    assert again is not None and again.task_id == ids[0]
    store.commit_report(second.task_id, "report", {})  # the report removes its request
    with pytest.raises(ValueError, match="no pick request"):
        store.release_request(second.task_id)
    with pytest.raises(ValueError, match="no pick request"):
        store.release_request("pick-9-999999")
    third = store.take_request()
    assert third is not None and third.task_id == ids[2]
    assert store.take_request() is None
    assert [r.task_id for r in store.taken_requests()] == [ids[0], ids[2]]
    assert store.counts()["requests_taken"] == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"item_id": ""}, "item_id"),
        ({"item_id": "x" * 65}, "item_id"),
        ({"item_id": "a\x00b"}, "item_id"),
        ({"item_id": 5}, "item_id"),
        ({"product_id": "p\n"}, "product_id"),
        ({"product_id": "p" * 65}, "product_id"),
        ({"pod": ""}, "pod"),
        ({"bin_id": "\x07"}, "bin_id"),
        ({"bin_id": None}, "bin_id"),
        ({"reference_image_ids": "img-1"}, "reference_image_ids"),
        ({"reference_image_ids": ["ok", ""]}, r"reference_image_ids\[1\]"),
        ({"reference_image_ids": ["x"] * 65}, "reference_image_ids"),
    ],
)
def test_add_request_names_the_bad_field(store: CellStore, kwargs: dict[str, object], field: str) -> None:
    good: dict[str, object] = {"item_id": "item-1", "product_id": "prod-1", "pod": "P1", "bin_id": "A1"}
    args = {**good, **kwargs}
    refs = args.pop("reference_image_ids", ())
    with pytest.raises(ValueError, match=field):
        store.add_request(**args, reference_image_ids=refs)  # type: ignore[arg-type]
    assert store.requests_queued() == 0


def test_add_request_accepts_the_limits(store: CellStore) -> None:
    task_id = store.add_request("i" * 64, "", "pod 1", "A1", reference_image_ids=("r" * 64,) * 64)
    request = store.take_request()
    assert request is not None and request.task_id == task_id
    assert request.item_id == "i" * 64 and request.product_id == "" and len(request.reference_image_ids) == 64


def test_request_queue_full(tmp_path: Path) -> None:
    with CellStore.open(tmp_path / "cell.db", max_requests=2) as store:
        store.add_request("a", "", "P1", "A1")
        store.add_request("b", "", "P1", "A1")
        with pytest.raises(RequestQueueFull, match="2 requests queued"):
            store.add_request("c", "", "P1", "A1")
        assert store.take_request() is not None  # a taken one no longer counts as queued
        store.add_request("c", "", "P1", "A1")


# --- task journal


def test_unfinished_lists_begun_tasks_until_reported(store: CellStore) -> None:
    a, b = store.new_task_id("stow"), store.new_task_id("pick")
    store.begin_task(a, "stow", "item-a", "A1")
    store.begin_task(b, "pick", "item-b")
    (first, second) = store.unfinished()
    assert first == UnfinishedTask(a, "stow", "item-a", "A1", first.started_s, {}, {})
    assert (second.task_id, second.bin_id, second.last_step) == (b, "", {})
    store.note_step(b, {"at": "tote"})
    store.note_step(b, {"at": "gripper"})
    store.begin_task(a, "stow", "item-a", "A2", {"retry": 1})  # begun again: updated, keeps its place and time
    again = store.unfinished()
    assert [t.task_id for t in again] == [a, b]
    assert (again[0].bin_id, again[0].detail, again[0].started_s) == ("A2", {"retry": 1}, first.started_s)
    assert again[1].last_step == {"at": "gripper"}
    store.commit_report(b, "report", {})
    assert [t.task_id for t in store.unfinished()] == [a]
    store.commit_report(a, "handoff", {})
    assert store.unfinished() == []
    with pytest.raises(ValueError, match="not begun"):
        store.note_step(a, {"at": "bin"})
    with pytest.raises(ValueError, match="already reported"):
        store.begin_task(a, "stow", "item-a")
    assert store.counts() == {"pending": 2, "acked": 0, "requests_queued": 0, "requests_taken": 0, "unfinished": 0}


def test_journal_validates(store: CellStore) -> None:
    with pytest.raises(ValueError, match="task kind"):
        store.new_task_id("stow-x")
    with pytest.raises(ValueError, match="task kind"):
        store.begin_task("t1", "", "item")
    with pytest.raises(ValueError, match="task_id"):
        store.begin_task("", "stow", "item")
    with pytest.raises(TypeError, match="not JSON-able"):
        store.begin_task("t1", "stow", "item", detail={"x": {1, 2}})
    store.begin_task("t1", "stow", "item")
    with pytest.raises(TypeError, match="must be a dict"):
        store.note_step("t1", "at bin")  # type: ignore[arg-type]
    assert store.unfinished()[0].last_step == {}


# --- files it refuses


def test_garbage_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "cell.db"
    path.write_bytes(b"this is not a database, just bytes " * 200)
    with pytest.raises(StoreError, match="not a cellctl store") as refused:
        CellStore.open(path)
    assert str(path) in str(refused.value)


def test_corrupt_pages_are_refused(db: Path) -> None:
    with CellStore.open(db) as store:
        for n in range(200):
            store.commit_report(f"t{n}", "report", {"pad": "x" * 500})
    data = bytearray(db.read_bytes())
    for page in (3, 10):
        data[page * 4096:(page + 1) * 4096] = b"\xab" * 4096
    db.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupt") as refused:
        CellStore.open(db)
    assert str(db) in str(refused.value)


def test_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE things (x)")
    conn.close()
    with pytest.raises(StoreError, match=r"not a cellctl store.*things"):
        CellStore.open(path)


def test_newer_schema_is_refused(db: Path) -> None:
    CellStore.open(db).close()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="version 99 is newer") as refused:
        CellStore.open(db)
    assert str(db) in str(refused.value)


def test_directory_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="directory"):
        CellStore.open(tmp_path)


LOCK_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@pytest.mark.timeout(60)
def test_a_write_lock_held_elsewhere_is_an_error_not_a_hang(db: Path) -> None:
    store = CellStore.open(db)
    store.commit_report("t0", "report", {})
    holder = run_child(LOCK_HOLDER, str(db))
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreError, match="locked by another process") as refused:
            CellStore.open(db)
        assert str(db) in str(refused.value)
        with pytest.raises(StoreError, match="locked by another process"):
            store.commit_report("t1", "report", {})
        assert store.pending_count() == 1  # readers are not blocked
    finally:
        holder.communicate("\n", timeout=30)
    assert store.commit_report("t1", "report", {}) is not None  # the lock gone, the store goes on
    store.close()
    with CellStore.open(db) as reopened:
        assert reopened.boot == 2  # the refused open counted no boot


def test_closed_store_raises(db: Path) -> None:
    store = CellStore.open(db)
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.pending_count()
    with pytest.raises(StoreError, match="closed"):
        store.commit_report("t", "report", {})


def test_open_validates_its_limits(db: Path) -> None:
    with pytest.raises(ValueError, match="capacity"):
        CellStore.open(db, capacity=0)
    with pytest.raises(ValueError, match="max_requests"):
        CellStore.open(db, max_requests=-1)


# --- bench/outbox.py


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_outbox", REPO / "bench" / "outbox.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_prints_one_json_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert load_bench().main(["--reports", "30", "--ack-every", "10", "--dir", str(tmp_path), "--json"]) == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    result = json.loads(line)
    assert result["reports"] == 30
    for key in ("commit_ms", "ack_ms", "fsync_ms"):
        assert set(result[key]) == {"p50", "p99", "max"}
        assert all(math.isfinite(v) and v >= 0 for v in result[key].values())
