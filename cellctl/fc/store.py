"""The cell's durable store: the outbox of task reports, the FC's pick-request queue, the task journal.

One SQLite file (stdlib `sqlite3`), WAL journal, `synchronous=FULL`. Every method that changes state runs one
`BEGIN IMMEDIATE` transaction and returns only once it is committed, so what it wrote survives a crash or a power
cut from then on. That is what makes stow/pick reports exactly-once: the controller commits a report here
(`commit_report`) before the FC or the event log hears of it; a second report for the same task id is dropped
(`duplicates`), however long ago the first was acknowledged or pruned; the FC takes reports from `pending`,
acknowledges them (`ack`) and is handed the unacknowledged ones again after a reconnect or a restart.

Two writes skip their own fsync (`synchronous=NORMAL` for that transaction): `ack` and `mark_delivered`. They
survive a crash of the process (WAL: the write is in the OS's cache); a power cut loses at most those that no
durable commit followed, and what that costs is a report sent again, which the FC drops by its id as it must drop
any redelivery. The fsync they save is one the next report's commit would wait for (the store's lock).

- Outbox: reports numbered 1, 2, 3 … (`report_id`, never reused). Soft `capacity`: at `full` the controller starts
  no new task; the reports of tasks already running are still accepted up to `capacity + HEADROOM`, beyond that
  `OutboxFull`. Acknowledged reports stay until `prune_acked`; the task ids of pruned ones move to a table of
  their own (one short row each, kept for ever) so a pruned task id is still a duplicate.
- Pick requests: the FC's queue, oldest first; `take_request` marks one taken, `release_request` puts it back,
  the report for its task id (`commit_report`) removes it.
- Task journal (crash recovery): `begin_task`, then `note_step` as it goes; the report removes the entry, so
  `unfinished` lists what a crash left: tasks begun and never reported, with the last step each noted.
  `drop_task` removes an entry with nothing to report (recovery found its item still on the conveyor).
- Task ids: `new_task_id(kind)` and `add_request` draw `f"{kind}-{boot}-{n:06d}"` from one durable counter;
  `boot` (+1 at every open) keeps them unique across restarts.

The file belongs to this module: a file that is not such a store, is corrupt, has a newer schema or stays
locked by another process for over `BUSY_TIMEOUT_S` raises `StoreError`, naming the file. Methods may be called
from any thread (one connection, guarded by a lock).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BUSY_TIMEOUT_S",
    "HEADROOM",
    "KINDS",
    "SCHEMA_VERSION",
    "CellStore",
    "OutboxEntry",
    "OutboxFull",
    "PickRequest",
    "RequestQueueFull",
    "StoreError",
    "UnfinishedTask",
]

HEADROOM = 16
"""Reports accepted beyond `capacity`: those of the tasks already running when the outbox became full."""
SCHEMA_VERSION = 1
"""`PRAGMA user_version` of the store this module writes; a file with a newer one is refused."""
BUSY_TIMEOUT_S = 1.0
"""How long an operation waits for another process's write lock before raising `StoreError`."""
KINDS = frozenset({"report", "handoff"})
"""Outbox entry kinds: a stow/pick TaskReport, or an item handed over to a human."""

FIELD_MAX = 64
TASK_ID_MAX = 128
_TASK_KIND = re.compile(r"[A-Za-z0-9_]{1,32}")

# The partial indexes name the column they filter on, so counting through them never reads a row.
_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    "INSERT INTO meta (key, value) VALUES ('boot', 0), ('task_seq', 0)",
    """CREATE TABLE outbox (
        report_id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_s REAL NOT NULL,
        deliveries INTEGER NOT NULL DEFAULT 0,
        delivered_s REAL,
        acked_s REAL)""",
    "CREATE INDEX outbox_pending ON outbox (report_id, acked_s) WHERE acked_s IS NULL",
    "CREATE INDEX outbox_acked ON outbox (report_id, acked_s) WHERE acked_s IS NOT NULL",
    "CREATE TABLE pruned_tasks (task_id TEXT PRIMARY KEY) WITHOUT ROWID",
    """CREATE TABLE requests (
        seq INTEGER PRIMARY KEY,
        task_id TEXT NOT NULL UNIQUE,
        item_id TEXT NOT NULL,
        product_id TEXT NOT NULL,
        pod TEXT NOT NULL,
        bin_id TEXT NOT NULL,
        reference_image_ids TEXT NOT NULL,
        created_s REAL NOT NULL,
        taken_s REAL)""",
    "CREATE INDEX requests_queued ON requests (seq, taken_s) WHERE taken_s IS NULL",
    """CREATE TABLE journal (
        seq INTEGER PRIMARY KEY,
        task_id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        item_id TEXT NOT NULL,
        bin_id TEXT NOT NULL,
        started_s REAL NOT NULL,
        detail TEXT NOT NULL,
        last_step TEXT NOT NULL DEFAULT '{}',
        step_s REAL)""",
)
_TABLES = frozenset({"meta", "outbox", "pruned_tasks", "requests", "journal"})
_ENTRY_COLUMNS = "report_id, task_id, kind, payload, created_s, deliveries"
_REQUEST_COLUMNS = "task_id, item_id, product_id, pod, bin_id, reference_image_ids, created_s"


class StoreError(Exception):
    """The store file is unusable (not a store, corrupt, locked, newer schema, disk error) or closed."""


class OutboxFull(StoreError):
    """`capacity + HEADROOM` reports are unacknowledged: the FC has not acknowledged for too long."""


class RequestQueueFull(StoreError):
    """`max_requests` pick requests are queued."""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    report_id: int
    task_id: str
    kind: str
    payload: dict[str, Any]
    created_s: float
    deliveries: int


@dataclass(frozen=True, slots=True)
class PickRequest:
    task_id: str
    item_id: str
    product_id: str
    pod: str
    bin_id: str
    reference_image_ids: tuple[str, ...]
    created_s: float


@dataclass(frozen=True, slots=True)
class UnfinishedTask:
    """A task begun and never reported: what a crash left."""

    task_id: str
    kind: str
    item_id: str
    bin_id: str
    started_s: float
    last_step: dict[str, Any]
    detail: dict[str, Any] = field(default_factory=dict)


class CellStore:
    """The durable store; see the module docstring. Open with `CellStore.open(path)`."""

    def __init__(self, conn: sqlite3.Connection, path: Path, boot: int, capacity: int, max_requests: int) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.Lock()
        self.path = path
        self.boot = boot
        self.capacity = capacity
        self.max_requests = max_requests
        self.duplicates = 0

    @classmethod
    def open(cls, path: Path, *, capacity: int = 10_000, max_requests: int = 10_000) -> CellStore:
        """Open (creating it and its parent directories if need be) the store at `path`; counts a boot."""
        path = Path(path)
        for name, value in (("capacity", capacity), ("max_requests", max_requests)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{path}: cannot create its directory: {exc}") from exc
        if path.is_dir():
            raise StoreError(f"{path}: is a directory, not a store file")
        try:
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open: {exc}") from exc
        try:
            boot = _prepare(conn, path)
        except sqlite3.Error as exc:
            conn.close()
            raise _store_error(path, exc) from exc
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, boot, capacity, max_requests)

    def close(self) -> None:
        """Close the file (idempotent); every later call raises `StoreError`."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> CellStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CellStore({str(self.path)!r}, boot={self.boot})"

    # --- outbox

    def commit_report(self, task_id: str, kind: str, payload: dict[str, Any]) -> OutboxEntry | None:
        """Commit a report durably; None (dropped, counted in `duplicates`) if its task id was reported before.

        The same transaction removes the task's journal entry and the pick request with its task id.
        """
        _check_task_id(task_id)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
        text = _to_json(payload, f"payload of report {task_id!r}")
        with self._write() as conn:
            if _reported(conn, task_id):
                self.duplicates += 1
                return None
            pending = conn.execute("SELECT count(*) FROM outbox WHERE acked_s IS NULL").fetchone()[0]
            if pending >= self.capacity + HEADROOM:
                raise OutboxFull(self._full_message(conn, pending, task_id))
            now = time.time()
            (report_id,) = conn.execute(
                "INSERT INTO outbox (task_id, kind, payload, created_s) VALUES (?, ?, ?, ?) RETURNING report_id",
                (task_id, kind, text, now),
            ).fetchone()
            conn.execute("DELETE FROM journal WHERE task_id = ?", (task_id,))
            conn.execute("DELETE FROM requests WHERE task_id = ?", (task_id,))
        return OutboxEntry(report_id, task_id, kind, json.loads(text), now, 0)

    @property
    def full(self) -> bool:
        """At least `capacity` reports unacknowledged: start no new task (and raise an alarm)."""
        return self.pending_count() >= self.capacity

    def pending(self, limit: int | None = None) -> list[OutboxEntry]:
        """The unacknowledged reports in `report_id` order (the first `limit` of them)."""
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be None or an int >= 0, got {limit!r}")
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM outbox WHERE acked_s IS NULL ORDER BY report_id LIMIT ?",
                (-1 if limit is None else limit,),
            ).fetchall()
        return [_entry(row) for row in rows]

    def pending_count(self) -> int:
        with self._read() as conn:
            return int(conn.execute("SELECT count(*) FROM outbox WHERE acked_s IS NULL").fetchone()[0])

    def oldest_pending_age_s(self) -> float | None:
        """Seconds since the oldest unacknowledged report was committed (None if none; never negative)."""
        with self._read() as conn:
            created = _oldest_pending_created(conn)
        return None if created is None else max(0.0, time.time() - created)

    def ack(self, report_ids: Iterable[int]) -> int:
        """Acknowledge reports; returns how many were newly acknowledged (unknown and acked ids are ignored)."""
        ids = set()
        for report_id in report_ids:
            if not isinstance(report_id, int) or isinstance(report_id, bool):
                raise TypeError(f"report ids are ints, got {report_id!r}")
            ids.add(report_id)
        if not ids:
            return 0
        with self._write(durable=False) as conn:
            before = conn.total_changes
            now = time.time()
            conn.executemany(
                "UPDATE outbox SET acked_s = ? WHERE report_id = ? AND acked_s IS NULL",
                ((now, report_id) for report_id in sorted(ids)),
            )
            return conn.total_changes - before

    def mark_delivered(self, report_id: int) -> None:
        """Count one more delivery of the report to the FC, and when (an unknown id is ignored)."""
        with self._write(durable=False) as conn:
            conn.execute(
                "UPDATE outbox SET deliveries = deliveries + 1, delivered_s = ? WHERE report_id = ?",
                (time.time(), report_id),
            )

    def get(self, report_id: int) -> OutboxEntry | None:
        """The report, acknowledged or not; None if unknown or pruned."""
        with self._read() as conn:
            row = conn.execute(f"SELECT {_ENTRY_COLUMNS} FROM outbox WHERE report_id = ?", (report_id,)).fetchone()
        return None if row is None else _entry(row)

    def prune_acked(self, keep: int = 100_000) -> int:
        """Delete the oldest acknowledged reports beyond the newest `keep`; returns how many.

        Their task ids stay remembered (table `pruned_tasks`, kept for ever), so a late duplicate is still dropped.
        """
        if not isinstance(keep, int) or isinstance(keep, bool) or keep < 0:
            raise ValueError(f"keep must be an int >= 0, got {keep!r}")
        with self._write() as conn:
            row = conn.execute(
                "SELECT report_id FROM outbox WHERE acked_s IS NOT NULL ORDER BY report_id DESC LIMIT 1 OFFSET ?",
                (keep,),
            ).fetchone()
            if row is None:
                return 0
            conn.execute(
                "INSERT OR IGNORE INTO pruned_tasks (task_id) "
                "SELECT task_id FROM outbox WHERE acked_s IS NOT NULL AND report_id <= ?",
                row,
            )
            return conn.execute("DELETE FROM outbox WHERE acked_s IS NOT NULL AND report_id <= ?", row).rowcount

    # --- pick requests

    def add_request(
        self, item_id: str, product_id: str, pod: str, bin_id: str, *, reference_image_ids: Sequence[str] = ()
    ) -> str:
        """Queue a pick request from the FC; returns its task id `pick-{boot}-{n:06d}`."""
        _check_field("item_id", item_id)
        _check_field("product_id", product_id, empty_ok=True)
        _check_field("pod", pod)
        _check_field("bin_id", bin_id)
        if isinstance(reference_image_ids, str | bytes) or not isinstance(reference_image_ids, Sequence):
            raise ValueError(f"reference_image_ids must be a sequence of strings, got {reference_image_ids!r:.80}")
        refs = tuple(reference_image_ids)
        if len(refs) > FIELD_MAX:
            raise ValueError(f"reference_image_ids: at most {FIELD_MAX} ids, got {len(refs)}")
        for i, ref in enumerate(refs):
            _check_field(f"reference_image_ids[{i}]", ref)
        with self._write() as conn:
            queued = conn.execute("SELECT count(*) FROM requests WHERE taken_s IS NULL").fetchone()[0]
            if queued >= self.max_requests:
                raise RequestQueueFull(f"{self.path}: pick request queue full: {queued} requests queued "
                                       f"(max_requests {self.max_requests}); request for item {item_id!r} refused")
            task_id = f"pick-{self.boot}-{_next_seq(conn):06d}"
            conn.execute(
                f"INSERT INTO requests ({_REQUEST_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (task_id, item_id, product_id, pod, bin_id, json.dumps(refs), time.time()),
            )
        return task_id

    def take_request(self) -> PickRequest | None:
        """The oldest queued request, now marked taken; None if none is queued."""
        with self._write() as conn:
            row = conn.execute(
                f"SELECT seq, {_REQUEST_COLUMNS} FROM requests WHERE taken_s IS NULL ORDER BY seq LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE requests SET taken_s = ? WHERE seq = ?", (time.time(), row[0]))
        return _request(row[1:])

    def requests_queued(self) -> int:
        with self._read() as conn:
            return int(conn.execute("SELECT count(*) FROM requests WHERE taken_s IS NULL").fetchone()[0])

    def taken_requests(self) -> list[PickRequest]:
        """The requests taken and not yet reported, oldest first (after a crash: release or report each)."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE taken_s IS NOT NULL ORDER BY seq"
            ).fetchall()
        return [_request(row) for row in rows]

    def release_request(self, task_id: str) -> None:
        """Put a taken request back in the queue, in its old place (its task was cancelled before it touched
        the item); the task's journal entry, if any, goes. A request still queued is left as it is; an unknown
        or reported one raises ValueError."""
        with self._write() as conn:
            row = conn.execute("SELECT taken_s FROM requests WHERE task_id = ?", (task_id,)).fetchone()
            if row is None:
                raise ValueError(f"no pick request with task id {task_id!r} (unknown, or already reported)")
            if row[0] is not None:
                conn.execute("UPDATE requests SET taken_s = NULL WHERE task_id = ?", (task_id,))
                conn.execute("DELETE FROM journal WHERE task_id = ?", (task_id,))

    # --- task journal

    def new_task_id(self, kind: str) -> str:
        """A new task id `f"{kind}-{boot}-{n:06d}"` (`n` from the store's one durable counter)."""
        _check_task_kind(kind)
        with self._write() as conn:
            return f"{kind}-{self.boot}-{_next_seq(conn):06d}"

    def begin_task(
        self, task_id: str, kind: str, item_id: str, bin_id: str = "", detail: dict[str, Any] | None = None
    ) -> None:
        """Journal a task as begun. Beginning it again (a retry after a restart) updates its kind, item, bin
        and detail and keeps its start time, place and last step; a task already reported raises ValueError."""
        _check_task_id(task_id)
        _check_task_kind(kind)
        _check_field("item_id", item_id, empty_ok=True, limit=TASK_ID_MAX)
        _check_field("bin_id", bin_id, empty_ok=True, limit=TASK_ID_MAX)
        text = _to_json({} if detail is None else detail, f"detail of task {task_id!r}")
        with self._write() as conn:
            if _reported(conn, task_id):
                raise ValueError(f"task {task_id!r} was already reported")
            conn.execute(
                "INSERT INTO journal (task_id, kind, item_id, bin_id, started_s, detail) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (task_id) DO UPDATE SET kind = excluded.kind, item_id = excluded.item_id, "
                "bin_id = excluded.bin_id, detail = excluded.detail",
                (task_id, kind, item_id, bin_id, time.time(), text),
            )

    def note_step(self, task_id: str, step: dict[str, Any]) -> None:
        """Record the task's latest step (last known location, primitive in flight); replaces the previous one.

        Raises ValueError for a task not begun (or already reported).
        """
        text = _to_json(step, f"step of task {task_id!r}")
        with self._write() as conn:
            changed = conn.execute(
                "UPDATE journal SET last_step = ?, step_s = ? WHERE task_id = ?", (text, time.time(), task_id)
            ).rowcount
            if changed == 0:
                raise ValueError(f"task {task_id!r} is not begun (or was already reported)")

    def drop_task(self, task_id: str) -> bool:
        """Remove a task's journal entry without a report: recovery found that its item never left where it came
        from (still at the conveyor's pick-up point), so there is nothing to report; the item comes again under a
        new task. True if there was an entry."""
        with self._write() as conn:
            return conn.execute("DELETE FROM journal WHERE task_id = ?", (task_id,)).rowcount > 0

    def unfinished(self) -> list[UnfinishedTask]:
        """The tasks begun and not reported, in the order they began."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT task_id, kind, item_id, bin_id, started_s, last_step, detail FROM journal ORDER BY seq"
            ).fetchall()
        return [
            UnfinishedTask(task_id, kind, item_id, bin_id, started_s, json.loads(step), json.loads(detail))
            for task_id, kind, item_id, bin_id, started_s, step, detail in rows
        ]

    def counts(self) -> dict[str, int]:
        """pending, acked, requests_queued, requests_taken, unfinished: one consistent snapshot."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM outbox WHERE acked_s IS NULL), "
                "(SELECT count(*) FROM outbox WHERE acked_s IS NOT NULL), "
                "(SELECT count(*) FROM requests WHERE taken_s IS NULL), "
                "(SELECT count(*) FROM requests WHERE taken_s IS NOT NULL), "
                "(SELECT count(*) FROM journal)"
            ).fetchone()
        keys = ("pending", "acked", "requests_queued", "requests_taken", "unfinished")
        return dict(zip(keys, (int(n) for n in row), strict=True))

    # --- internals

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._live()
            try:
                yield conn
            except sqlite3.Error as exc:
                raise _store_error(self.path, exc) from exc

    @contextmanager
    def _write(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction, committed when the block ends, rolled back if it raises. `durable=False`:
        committed without an fsync of its own (see the module docstring for which writes may)."""
        with self._lock:
            conn = self._live()
            try:
                if not durable:
                    conn.execute("PRAGMA synchronous=NORMAL")  # outside a transaction, as SQLite requires
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield conn
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            with suppress(sqlite3.Error):  # the error that brought us here is the one to raise
                                conn.execute("ROLLBACK")
                        raise
                finally:
                    if not durable:
                        conn.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as exc:
                raise _store_error(self.path, exc) from exc

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: store is closed")
        return self._conn

    def _full_message(self, conn: sqlite3.Connection, pending: int, task_id: str) -> str:
        created = _oldest_pending_created(conn)
        age = 0.0 if created is None else max(0.0, time.time() - created)
        since = "" if created is None else time.strftime(" (since %Y-%m-%d %H:%M:%S)", time.localtime(created))
        return (f"{self.path}: outbox full: {pending} reports unacknowledged, the oldest for {age:.1f} s{since} "
                f"(capacity {self.capacity} + headroom {HEADROOM}); report for task {task_id!r} refused")


def _prepare(conn: sqlite3.Connection, path: Path) -> int:
    """WAL, FULL sync, integrity, schema (created or checked); counts a boot and returns it."""
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreError(f"{path}: cannot use WAL journal mode here (got {mode!r})")
    conn.execute("PRAGMA synchronous=FULL")
    problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check(5)")]
    if problems != ["ok"]:
        raise StoreError(f"{path}: corrupt store: {'; '.join(problems)}".replace("\n", "; "))
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version > SCHEMA_VERSION:
            raise StoreError(f"{path}: store schema version {version} is newer than this controller's "
                             f"({SCHEMA_VERSION}); refusing to touch it")
        if version == 0:
            if tables:
                raise StoreError(f"{path}: not a cellctl store (an SQLite file with tables {sorted(tables)})")
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif missing := _TABLES - tables:
            raise StoreError(f"{path}: damaged store: tables {sorted(missing)} missing")
        (boot,) = conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'boot' RETURNING value").fetchone()
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return int(boot)


def _store_error(path: Path, exc: sqlite3.Error) -> StoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StoreError(f"{path}: locked by another process (waited {BUSY_TIMEOUT_S:g} s): {text}")
    if "not a database" in text:
        return StoreError(f"{path}: not a cellctl store (not an SQLite database): {text}")
    if "malformed" in text or "corrupt" in text:
        return StoreError(f"{path}: corrupt store: {text}")
    return StoreError(f"{path}: {text}")


def _reported(conn: sqlite3.Connection, task_id: str) -> bool:
    return conn.execute(
        "SELECT 1 FROM outbox WHERE task_id = ? UNION ALL SELECT 1 FROM pruned_tasks WHERE task_id = ? LIMIT 1",
        (task_id, task_id),
    ).fetchone() is not None


def _next_seq(conn: sqlite3.Connection) -> int:
    (n,) = conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'task_seq' RETURNING value").fetchone()
    return int(n)


def _oldest_pending_created(conn: sqlite3.Connection) -> float | None:
    row = conn.execute("SELECT created_s FROM outbox WHERE acked_s IS NULL ORDER BY report_id LIMIT 1").fetchone()
    return None if row is None else float(row[0])


def _entry(row: tuple[Any, ...]) -> OutboxEntry:
    report_id, task_id, kind, payload, created_s, deliveries = row
    return OutboxEntry(report_id, task_id, kind, json.loads(payload), created_s, deliveries)


def _request(row: tuple[Any, ...]) -> PickRequest:
    task_id, item_id, product_id, pod, bin_id, refs, created_s = row
    return PickRequest(task_id, item_id, product_id, pod, bin_id, tuple(json.loads(refs)), created_s)


def _to_json(value: Any, what: str) -> str:
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a dict, got {type(value).__name__}")
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False, separators=(",", ":"))
    except TypeError as exc:
        raise TypeError(f"{what} is not JSON-able: {exc}") from exc
    except ValueError as exc:
        raise ValueError(f"{what} is not JSON-able: {exc}") from exc


def _check_task_id(task_id: str) -> None:
    if not isinstance(task_id, str) or not 0 < len(task_id) <= TASK_ID_MAX or not task_id.isprintable():
        raise ValueError(f"task_id must be 1..{TASK_ID_MAX} printable characters, got {task_id!r:.80}")


def _check_task_kind(kind: str) -> None:
    if not isinstance(kind, str) or not _TASK_KIND.fullmatch(kind):
        raise ValueError(f"task kind must be 1..32 letters, digits or '_' (e.g. 'stow'), got {kind!r:.80}")


def _check_field(name: str, value: str, *, empty_ok: bool = False, limit: int = FIELD_MAX) -> None:
    low = 0 if empty_ok else 1
    if not isinstance(value, str) or not low <= len(value) <= limit or not value.isprintable():
        raise ValueError(f"{name} must be {low}..{limit} printable characters (no NUL), got {value!r:.80}")
