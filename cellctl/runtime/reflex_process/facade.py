"""The main process's side of the reflex process: start and supervise the child, arm and disarm it, hear trips.

    reflex = ReflexProcess(ReflexConfig.from_drivers(ft_config, robot_config), on_trip=..., on_halting=...)
    await tg.start(reflex.run)                       # child started, its relay port known
    ft = FTSensor(ft_config.model_copy(update={"host": reflex.relay[0], "port": reflex.relay[1]}))
    token = await reflex.arm(limit_n)                # acknowledged, or ReflexError: do not run the motion
    ...                                              # the guarded motion
    trip = await reflex.disarm(token)                # the trip under this arming, if any

The control channel is a SOCK_SEQPACKET socketpair (ordered, reliable, one JSON object per message, EOF when
either side dies); see `cellctl.runtime.reflex_process.child` for the messages. Because the child announces a trip
("halting") *before* its HALT frame leaves, a HALT_ACTIVE seen afterwards by the main process can be attributed:
call `pump()` (synchronous, drains the channel now) before deciding that a halt was set by someone else.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import subprocess
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import structlog
from anyio.abc import TaskStatus
from pydantic import BaseModel, ConfigDict, Field

from . import child as proto

log = structlog.get_logger("reflex_process")

CHILD_SCRIPT = Path(proto.__file__).resolve()
_DEAD: dict[str, Any] = {"ok": False, "error": "reflex process died"}


class ReflexError(RuntimeError):
    """The reflex cannot guard a motion now (the caller must not run it)."""


class ReflexUnavailable(ReflexError):
    """The reflex process is not running (starting, restarting, or dead)."""


class ReflexRefused(ReflexError):
    """The reflex process refused the request (stream not live, robot link down, bad input)."""


class ReflexTimeout(ReflexError):
    """The reflex process did not acknowledge in time."""


class _StartFailed(Exception):
    pass


class ReflexConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    sensor_host: str = Field("127.0.0.1", min_length=1)
    sensor_port: int = Field(49152, ge=1, le=65535)
    ft_bind_host: str = "127.0.0.1"  # the child's sensor-facing socket (a real sensor: the cell's interface)
    ft_bind_port: int = Field(0, ge=0, le=65535)
    relay_host: str = "127.0.0.1"  # where the main FTSensor points
    relay_port: int = Field(0, ge=0, le=65535)  # 0: any; a restarted child binds the port the first one got
    robot_host: str = Field("127.0.0.1", min_length=1)
    robot_port: int = Field(5020, ge=1, le=65535)
    unit_id: int = Field(1, ge=1, le=247)
    counts_per_force: float = Field(1_000_000, gt=0)
    counts_per_torque: float = Field(1_000_000, gt=0)
    force_range_n: float = Field(1000.0, gt=0)  # records beyond it are rejected as FTSensor rejects them
    torque_range_nm: float = Field(100.0, gt=0)
    stale_after_s: float = Field(0.05, gt=0, le=5.0)
    restart_interval_s: float = Field(0.25, gt=0, le=10.0)
    halt_on_stale: bool = True  # armed and the stream goes stale: halt (trip reason "stale")
    relay_sticky: bool = True  # the relay serves only its first client (the main FTSensor): no one can take it over
    heartbeat_period_s: float = Field(0.1, gt=0, le=2.0)
    heartbeat_timeout_s: float = Field(0.5, gt=0, le=10.0)  # no message for this long: the child is killed
    ack_timeout_s: float = Field(0.25, gt=0, le=5.0)
    start_timeout_s: float = Field(5.0, gt=0, le=60.0)
    probe_period_s: float = Field(0.1, gt=0, le=5.0)
    probe_timeout_s: float = Field(0.1, gt=0, le=5.0)
    halt_hedge_s: float = Field(0.05, gt=0, le=2.0)
    halt_timeout_s: float = Field(0.25, gt=0, le=2.0)
    connect_timeout_s: float = Field(1.0, gt=0, le=10.0)
    reconnect_initial_s: float = Field(0.05, gt=0, le=10.0)
    reconnect_max_s: float = Field(2.0, gt=0, le=60.0)
    restart_initial_s: float = Field(0.1, gt=0, le=60.0)  # child restart backoff, doubling ...
    restart_max_s: float = Field(5.0, gt=0, le=300.0)  # ... up to this
    rcvbuf_bytes: int = Field(1 << 20, ge=65536)
    sched_priority: int = Field(50, ge=0, le=99)  # SCHED_FIFO for the child when permitted (0: normal)
    nice: int = Field(0, ge=-20, le=19)  # used when SCHED_FIFO is off or refused
    cpus: tuple[int, ...] | None = None  # CPU affinity of the child

    @classmethod
    def from_drivers(cls, ft: Any, robot: Any, **overrides: Any) -> ReflexConfig:
        """From an `FTConfig` and a `RobotConfig`: the sensor, its scaling and ranges, the robot's address."""
        values: dict[str, Any] = {
            "sensor_host": ft.host, "sensor_port": ft.port, "ft_bind_host": ft.bind_host,
            "counts_per_force": ft.counts_per_force, "counts_per_torque": ft.counts_per_torque,
            "force_range_n": ft.force_range_n, "torque_range_nm": ft.torque_range_nm,
            "stale_after_s": ft.stale_after_s, "restart_interval_s": ft.restart_interval_s,
            "robot_host": robot.host, "robot_port": robot.port, "unit_id": robot.unit_id,
            "halt_hedge_s": robot.halt_hedge_s, "halt_timeout_s": robot.halt_timeout_s,
            "connect_timeout_s": robot.connect_timeout_s,
        }
        values.update(overrides)
        return cls(**values)

    def child_config(self, relay_port: int) -> dict[str, Any]:
        cfg = {k: getattr(self, k) for k in proto.DEFAULTS}
        cfg["relay_port"] = relay_port
        cfg["cpus"] = list(self.cpus) if self.cpus else None
        return cfg


@dataclass(frozen=True, slots=True)
class ForceReading:
    force_magnitude: float


@dataclass(frozen=True, slots=True)
class ReflexTrip:
    """A trip reported by the reflex process. Times are perf_counter values of the child (CLOCK_MONOTONIC,
    system-wide on Linux, so comparable with this process's perf_counter).

    Shaped like `cellctl.runtime.reflex.Trip` (`sample.force_magnitude`, `limit_n`, `detected_at`, `halted_at`).
    """

    token: int
    force_n: float  # the crossing sample's |F| (reason "stale": the last valid sample's, NaN if none)
    limit_n: float
    detected_at: float
    halted_at: float  # the HALT confirmed by the robot (or given up: halt_ok False)
    halt_ok: bool
    sent_at: float = math.nan  # the HALT frame left
    t_recv: float = math.nan  # the crossing datagram was read
    rdt_sequence: int | None = None
    reason: str = "force"  # "force" | "stale"
    error: str = ""

    @property
    def sample(self) -> ForceReading:
        return ForceReading(self.force_n)

    @property
    def reaction_s(self) -> float:
        """Datagram read to HALT confirmed."""
        return self.halted_at - self.t_recv

    @classmethod
    def from_message(cls, m: dict[str, Any]) -> ReflexTrip:
        def f(key: str) -> float:
            v = m.get(key)
            return float(v) if isinstance(v, (int, float)) else math.nan

        return cls(
            token=int(m["token"]), force_n=f("force_n"), limit_n=f("limit_n"), detected_at=f("detected_at"),
            halted_at=f("halted_at"), halt_ok=bool(m.get("halt_ok")), sent_at=f("sent_at"), t_recv=f("t_recv"),
            rdt_sequence=m.get("rdt_sequence"), reason=str(m.get("reason", "force")), error=str(m.get("error") or ""),
        )


class ReflexProcess:
    """The force reflex in a process of its own; see the module docstring."""

    def __init__(
        self,
        config: ReflexConfig | None = None,
        *,
        on_trip: Callable[[ReflexTrip], None] | None = None,
        on_halting: Callable[[int, str], None] | None = None,
        name: str = "reflex",
    ) -> None:
        self.config = config or ReflexConfig()
        self.on_trip = on_trip  # a trip arrived (the HALT is confirmed or given up)
        self.on_halting = on_halting  # (token, reason): the child is about to write HALT
        self.name = name
        self._relay_port = self.config.relay_port
        self._sensor_port = 0
        self._sock: socket.socket | None = None
        self._proc: anyio.abc.Process | None = None
        self._ready_info: dict[str, Any] | None = None
        self._fatal: str | None = None
        self._alive = False
        self._eof = False
        self._changed = anyio.Event()
        self._pending: dict[int, list[Any]] = {}  # request id -> [Event, reply]
        self._rid = 0
        self._next_token = 1
        self._trips: OrderedDict[int, ReflexTrip] = OrderedDict()
        self._halting: set[int] = set()
        self._health: dict[str, Any] = {}
        self._last_msg = 0.0
        self.restarts = 0
        self.unexpected_exits = 0
        self.ack_timeouts = 0
        self.bad_messages = 0

    # --- state ------------------------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """The child is running, ready and heard from (a trip can be relied on)."""
        return self._alive

    @property
    def relay(self) -> tuple[str, int]:
        """Where the main FTSensor points (stable across child restarts)."""
        if not self._relay_port:
            raise RuntimeError(f"{self.name}: not started")
        return (self.config.relay_host, self._relay_port)

    @property
    def sensor_port(self) -> int:
        """The local port of the child's sensor-facing socket (the sensor streams to it)."""
        return self._sensor_port

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._alive else None

    @property
    def sched(self) -> str:
        return str((self._ready_info or {}).get("sched", ""))

    def trip_for(self, token: int) -> ReflexTrip | None:
        return self._trips.get(token)

    def halting(self, token: int | None = None) -> bool:
        """A HALT was announced (for `token`, or any) and its trip has not arrived yet."""
        return bool(self._halting) if token is None else token in self._halting

    def stats(self) -> dict[str, Any]:
        """The child's latest counters (from its heartbeat) and the supervisor's own."""
        h = self._health
        return {
            "alive": self._alive, "stream": h.get("stream"), "robot": h.get("robot"), "armed": h.get("armed"),
            "sched": self.sched, "restarts": self.restarts, "unexpected_exits": self.unexpected_exits,
            "ack_timeouts": self.ack_timeouts, "bad_messages": self.bad_messages, **(h.get("counters") or {}),
        }

    async def query_stats(self) -> dict[str, Any]:
        """The child's counters now (a round trip), merged like `stats()`."""
        reply = await self._request("stats")
        self._health.update({k: reply[k] for k in ("stream", "robot", "armed", "counters") if k in reply})
        return self.stats()

    @property
    def can_guard(self) -> bool:
        """Alive, its F/T stream live and its robot link up (as of its last report): arm() can succeed."""
        h = self._health
        return self._alive and h.get("stream") == proto.LIVE and h.get("robot") == proto.UP

    async def wait_alive(self, alive: bool = True) -> None:
        while self._alive is not alive:
            await self._changed.wait()

    async def wait_can_guard(self) -> None:
        while not self.can_guard:
            await self._changed.wait()

    # --- arming -----------------------------------------------------------------------------------------------

    async def arm(self, limit_n: float) -> int:
        """Arm for one guarded motion; its token once the child acknowledged. ReflexError: do not run it."""
        if isinstance(limit_n, bool) or not isinstance(limit_n, (int, float)) or not (
            math.isfinite(limit_n) and limit_n > 0
        ):
            raise ValueError(f"force limit must be a positive number of newtons, got {limit_n!r}")
        token = self._next_token
        self._next_token += 1
        try:
            reply = await self._request("arm", token=token, limit_n=float(limit_n))
        except ReflexTimeout:
            self._send_quietly("disarm", token=token)  # it may arm late: undo it
            raise
        if not reply.get("ok"):
            raise ReflexRefused(f"{self.name}: arm refused: {reply.get('error')}")
        return token

    async def disarm(self, token: int) -> ReflexTrip | None:
        """End the arming `token`; the trip that happened under it, if any (also when the motion completed as
        the HALT went out). Never raises for a dead or unresponsive child (logged): the arming died with it, or
        the next arm() supersedes it."""
        if not isinstance(token, int) or not 0 < token < self._next_token:
            raise ValueError(f"{self.name}: token {token!r} was never issued")
        if self._alive:
            try:
                reply = await self._request("disarm", token=token)
            except ReflexTimeout:
                log.error("reflex process did not acknowledge a disarm", token=token)
            except ReflexUnavailable:
                pass
            else:
                if reply.get("ok") and reply.get("halting") and token not in self._trips:
                    # tripped, the HALT still on its way: its trip message follows on the same channel
                    with anyio.move_on_after(self.config.halt_timeout_s + self.config.ack_timeout_s):
                        while token not in self._trips and self._alive:
                            await self._changed.wait()
                elif reply.get("ok") and reply.get("trip") and token not in self._trips:
                    self._record_trip(reply["trip"])
        return self._trips.get(token)

    # --- supervision ------------------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Start the child; started() once it is ready; restart it (with backoff) if it dies; until cancelled."""
        cfg = self.config
        delay = cfg.restart_initial_s
        started = False
        while True:
            t0 = time.monotonic()
            try:
                await self._session(task_status if not started else None)
            except (ReflexError, OSError) as exc:
                if not started:
                    raise
                log.error("reflex process failed to start", error=str(exc))
            started = True
            self.unexpected_exits += 1
            if time.monotonic() - t0 > 10 * cfg.restart_max_s:
                delay = cfg.restart_initial_s  # it had been running a good while: restart promptly
            log.warning("reflex process restarting", after_s=delay)
            await anyio.sleep(delay)
            delay = min(delay * 2, cfg.restart_max_s)
            self.restarts += 1

    async def _session(self, task_status: TaskStatus[None] | None) -> None:
        cfg = self.config
        parent, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        parent.setblocking(False)
        cmd = [sys.executable, "-I", "-S", str(CHILD_SCRIPT), str(child_end.fileno()),
               json.dumps(cfg.child_config(self._relay_port))]
        try:
            proc = await anyio.open_process(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=None,
                                            pass_fds=(child_end.fileno(),))
        except BaseException:
            parent.close()
            raise
        finally:
            child_end.close()
        self._sock, self._proc, self._eof, self._ready_info, self._fatal = parent, proc, False, None, None
        self._last_msg = time.monotonic()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._reader, parent)
                with anyio.move_on_after(cfg.start_timeout_s):
                    while self._ready_info is None and not self._eof:
                        await self._changed.wait()
                info = self._ready_info
                if info is None:
                    tg.cancel_scope.cancel()
                    failure = (f"{self.name}: the reflex process did not start"
                               + (f": {self._fatal}" if self._fatal else f" within {cfg.start_timeout_s} s"))
                    raise _StartFailed(failure)
                self._relay_port = int(info["relay_port"])
                self._sensor_port = int(info["sensor_port"])
                self._set_alive(True)
                log.info("reflex process ready", pid=proc.pid, relay_port=self._relay_port,
                         sensor_port=self._sensor_port, sched=info.get("sched"))
                if task_status is not None:
                    task_status.started()
                tg.start_soon(self._watchdog, proc)
                while not self._eof:
                    await self._changed.wait()
                tg.cancel_scope.cancel()
            log.error("reflex process died", pid=proc.pid, returncode=proc.returncode)
        except BaseExceptionGroup as group:
            failed, rest = group.split(_StartFailed)
            if rest is not None:
                raise
            assert failed is not None
            raise ReflexUnavailable(str(failed.exceptions[0])) from None
        finally:
            self._set_alive(False)
            self._sock = None
            for entry in self._pending.values():
                if entry[1] is None:
                    entry[1] = _DEAD
                    entry[0].set()
            self._halting.clear()
            anyio.notify_closing(parent)
            parent.close()  # the child sees EOF and exits (it stops the sensor stream first)
            with anyio.CancelScope(shield=True):
                await _reap(proc)

    async def _watchdog(self, proc: anyio.abc.Process) -> None:
        cfg = self.config
        while True:
            await anyio.sleep(cfg.heartbeat_period_s)
            self.pump()
            if proc.returncode is not None:
                self._eof = True
                self._notify()
                return
            silent = time.monotonic() - self._last_msg
            if silent > cfg.heartbeat_timeout_s:
                log.error("reflex process unresponsive: killing it", pid=proc.pid, silent_s=round(silent, 3))
                self._set_alive(False)
                proc.kill()
                return

    async def _reader(self, sock: socket.socket) -> None:
        while not self._eof:
            await anyio.wait_readable(sock)
            self.pump()

    def pump(self) -> int:
        """Handle every message waiting on the control channel now (synchronous); how many."""
        sock = self._sock
        if sock is None or self._eof:
            return 0
        n = 0
        while True:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self._eof = True
                self._alive = False
                n += 1
                break
            n += 1
            self._last_msg = time.monotonic()
            try:
                msg = json.loads(data)
                self._dispatch(msg)
            except Exception as exc:  # a bad message (or a failing callback) must not stop the reader
                self.bad_messages += 1
                log.error("reflex process message not handled", error=repr(exc), size=len(data))
        if n:
            self._notify()
        return n

    # --- messages ---------------------------------------------------------------------------------------------

    def _dispatch(self, msg: dict[str, Any]) -> None:
        kind = msg["t"]
        if kind == "ack":
            entry = self._pending.get(msg["id"])
            if entry is not None:
                entry[1] = msg
                entry[0].set()
        elif kind == "halting":
            token = int(msg["token"])
            self._halting.add(token)
            if self.on_halting is not None:
                self.on_halting(token, str(msg.get("reason", "force")))
        elif kind == "trip":
            trip = self._record_trip(msg)
            log.warning("reflex tripped: robot halted" if trip.halt_ok else "reflex tripped: HALT FAILED",
                        token=trip.token, reason=trip.reason, force_n=round(trip.force_n, 3), limit_n=trip.limit_n,
                        reaction_ms=round(trip.reaction_s * 1e3, 3), error=trip.error or None)
            if self.on_trip is not None:
                self.on_trip(trip)
        elif kind == "health":
            old = self._health
            self._health = msg
            for key in ("stream", "robot"):
                if old and old.get(key) != msg.get(key):
                    log.info(f"reflex process: {key} {msg.get(key)}")
        elif kind == "log":
            level = msg.pop("level", "info")
            text = msg.pop("msg", "")
            msg.pop("t", None)
            getattr(log, level if level in ("debug", "info", "warning", "error") else "info")(text, **msg)
        elif kind == "ready":
            self._ready_info = msg
        elif kind == "fatal":
            self._fatal = msg.get("error")
        else:
            raise ValueError(f"unknown message {kind!r}")

    def _record_trip(self, msg: dict[str, Any]) -> ReflexTrip:
        trip = ReflexTrip.from_message(msg)
        self._halting.discard(trip.token)
        self._trips[trip.token] = trip
        while len(self._trips) > 64:
            self._trips.popitem(last=False)
        return trip

    async def _request(self, op: str, **fields: Any) -> dict[str, Any]:
        if not self._alive or self._sock is None:
            raise ReflexUnavailable(f"{self.name}: the reflex process is not running")
        self._rid += 1
        rid = self._rid
        entry: list[Any] = [anyio.Event(), None]
        self._pending[rid] = entry
        try:
            try:
                self._sock.send(json.dumps({"op": op, "id": rid, **fields}).encode())
            except OSError as exc:
                raise ReflexUnavailable(f"{self.name}: control channel: {exc}") from exc
            with anyio.move_on_after(self.config.ack_timeout_s):
                await entry[0].wait()
            if entry[1] is None:
                self.pump()  # the answer may be waiting behind a loop that was busy
            if entry[1] is None:
                self.ack_timeouts += 1
                raise ReflexTimeout(f"{self.name}: no answer to {op} within {self.config.ack_timeout_s} s")
        finally:
            del self._pending[rid]
        if entry[1] is _DEAD:
            raise ReflexUnavailable(f"{self.name}: the reflex process died")
        return entry[1]

    def _send_quietly(self, op: str, **fields: Any) -> None:
        if self._sock is not None:
            self._rid += 1
            with contextlib.suppress(OSError):
                self._sock.send(json.dumps({"op": op, "id": self._rid, **fields}).encode())

    def _set_alive(self, alive: bool) -> None:
        if self._alive is not alive:
            self._alive = alive
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


async def _reap(proc: anyio.abc.Process) -> None:
    """Wait for the child to exit (it does on EOF); terminate, then kill it if it lingers."""
    for action in (None, proc.terminate, proc.kill):
        if action is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                action()
        with anyio.move_on_after(1.0):
            await proc.wait()
        if proc.returncode is not None:
            break
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            await stream.aclose()


__all__ = [
    "ForceReading", "ReflexConfig", "ReflexError", "ReflexProcess", "ReflexRefused", "ReflexTimeout", "ReflexTrip",
    "ReflexUnavailable",
]
