"""The force reflex's own process: F/T stream in, limit check, HALT out, all without the controller's interpreter.

Run as `python -I -S child.py <control fd> <config json>` by `cellctl.runtime.reflex_process.ReflexProcess`; it imports
the standard library only (no anyio, pydantic, numpy), so it starts in tens of milliseconds and has its own GIL.

Sockets it owns, served by one `select.poll` loop on one thread:

- sensor: UDP, sends the RDT start request to the F/T sensor and receives its stream. Only datagrams from the
  configured sensor address are accepted (others are counted as foreign and dropped). Each record is checked
  against the armed limit *before* it is relayed.
- relay: UDP on `relay_host:relay_port`, an RDT "sensor" for the main process's unchanged `FTSensor`: the
  client that sent a start request there gets every sensor datagram, byte for byte, from this socket (with
  `relay_sticky`, only the first client ever: the main FTSensor; start requests from others are refused). Its start
  request is passed on to the sensor (always as "stream forever": the sensor renumbers from 1, as the
  FTSensor expects), a bias request is passed on, a stop request only stops the relaying (the sensor keeps
  streaming for the reflex).
- robot: Modbus TCP (TCP_NODELAY), used only for HALT: a prebuilt FC6 "HR19 := 1" frame, the echo validated.
  Idle, it is probed (FC3 read of HR19) every probe_period_s and rebuilt on a miss or a drop; a HALT that is
  not confirmed within halt_hedge_s also goes out on a fresh connection, the first confirmation wins.
- control: the SOCK_SEQPACKET socketpair end passed by the parent: one JSON object per message. Parent to
  child: {"op": "arm"|"disarm"|"stats"|"exit", "id": n, ...}, each answered by {"t": "ack", "id": n, "ok": ...}.
  Child to parent: "ready" (once), "ack", "halting" (sent just *before* the HALT frame: a HALT_ACTIVE that the
  main process reads later is ours), "trip" (after the HALT was confirmed or given up), "health" (every
  heartbeat_period_s and on every state change), "log". EOF on it means the parent is gone: the child stops
  the sensor stream and exits.

One trip per arming; a token (strictly increasing, chosen by the parent) names each arming so that a late
message from an earlier motion cannot arm or disarm the current one.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import math
import os
import select
import signal
import socket
import struct
import sys
from time import perf_counter

TYPE_CHECKING = False  # `typing` would add ~15 ms to this process's start: its names are for the type checker only
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypedDict

    Handler = Callable[[int, float], None]  # a poll handler: (events, now)
    FrameFn = Callable[[int, int], bytes]  # a Modbus request: (transaction id, unit id) -> frame

    class Config(TypedDict):
        """`DEFAULTS` updated from the JSON on the command line (the fields of cellctl's ReflexConfig)."""

        sensor_host: str
        sensor_port: int
        ft_bind_host: str
        ft_bind_port: int
        relay_host: str
        relay_port: int
        robot_host: str
        robot_port: int
        unit_id: int
        counts_per_force: float
        counts_per_torque: float
        force_range_n: float
        torque_range_nm: float
        stale_after_s: float
        restart_interval_s: float
        heartbeat_period_s: float
        probe_period_s: float
        probe_timeout_s: float
        halt_hedge_s: float
        halt_timeout_s: float
        connect_timeout_s: float
        reconnect_initial_s: float
        reconnect_max_s: float
        rcvbuf_bytes: int
        sched_priority: int
        nice: int
        cpus: list[int] | None
        halt_on_stale: bool
        relay_sticky: bool

# --- wire formats (drivers/ft.py and drivers/robot_map.py; duplicated to keep this process light, a test checks
# that they agree) -----------------------------------------------------------------------------------------------
RDT_HEADER = 0x1234
CMD_STOP, CMD_START, CMD_BIAS = 0x0000, 0x0002, 0x0042
RDT_COMMANDS = (CMD_STOP, CMD_START, CMD_BIAS)
REQUEST = struct.Struct(">HHI")
RECORD = struct.Struct(">IIIiiiiii")
SEQ_MOD = 1 << 32
HALT_ADDRESS = 19  # holding register 19, written with FC6
FC_READ_HOLDING, FC_WRITE_SINGLE = 3, 6
MBAP = struct.Struct(">HHHB")  # transaction id, protocol id (0), length (unit id + PDU), unit id

PROTOCOL_VERSION = 1
MAX_FRESH = 3  # fresh connections tried for one HALT
MAX_OUTBOX = 1000  # messages queued for a parent that does not read; beyond it health and log are dropped
LIVE, STALE, WAITING = "live", "stale", "waiting"
UP, DOWN, CONNECTING = "up", "down", "connecting"

DEFAULTS: Config = {
    "sensor_host": "127.0.0.1",
    "sensor_port": 49152,
    "ft_bind_host": "127.0.0.1",
    "ft_bind_port": 0,
    "relay_host": "127.0.0.1",
    "relay_port": 0,
    "robot_host": "127.0.0.1",
    "robot_port": 5020,
    "unit_id": 1,
    "counts_per_force": 1_000_000.0,
    "counts_per_torque": 1_000_000.0,
    "force_range_n": 1000.0,
    "torque_range_nm": 100.0,
    "stale_after_s": 0.05,
    "restart_interval_s": 0.25,
    "heartbeat_period_s": 0.1,
    "probe_period_s": 0.1,
    "probe_timeout_s": 0.1,
    "halt_hedge_s": 0.05,
    "halt_timeout_s": 0.25,
    "connect_timeout_s": 1.0,
    "reconnect_initial_s": 0.05,
    "reconnect_max_s": 2.0,
    "rcvbuf_bytes": 1 << 20,
    "sched_priority": 0,
    "nice": 0,
    "cpus": None,
    "halt_on_stale": True,
    "relay_sticky": True,
}


def encode_request(command: int, count: int = 0) -> bytes:
    return REQUEST.pack(RDT_HEADER, command, count)


def decode_request(data: bytes) -> tuple[int, int] | None:
    """(command, sample_count), or None for anything that is not a well-formed RDT request."""
    if len(data) != REQUEST.size:
        return None
    header, command, count = REQUEST.unpack(data)
    if header != RDT_HEADER or command not in RDT_COMMANDS:
        return None
    return command, count


def halt_frame(tid: int, unit_id: int) -> bytes:
    """Modbus TCP FC6 write of HALT (HR19) := 1; the robot answers with the same 12 bytes."""
    return MBAP.pack(tid, 0, 6, unit_id) + bytes((FC_WRITE_SINGLE, 0, HALT_ADDRESS, 0, 1))


def probe_frame(tid: int, unit_id: int) -> bytes:
    """Modbus TCP FC3 read of HR19 (one register): keeps the link known to be alive."""
    return MBAP.pack(tid, 0, 6, unit_id) + bytes((FC_READ_HOLDING, 0, HALT_ADDRESS, 0, 1))


def force_magnitude(fx: int, fy: int, fz: int, counts_per_force: float) -> float:
    """|F| in newtons from counts, computed exactly as drivers.ft.Wrench.force_magnitude does."""
    x, y, z = fx / counts_per_force, fy / counts_per_force, fz / counts_per_force
    return math.sqrt(x * x + y * y + z * z)


def tune_scheduling(priority: int, nice: int, cpus: list[int] | None) -> str:
    """Best effort: CPU affinity, SCHED_FIFO at `priority` (else `nice`); silently keeps what is not permitted."""
    parts = []
    if cpus:
        try:
            os.sched_setaffinity(0, cpus)
            parts.append(f"cpus={','.join(map(str, sorted(cpus)))}")
        except (OSError, ValueError):
            parts.append("cpus=refused")
    if priority > 0:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            parts.insert(0, f"fifo:{priority}")
            return " ".join(parts)
        except (OSError, AttributeError):
            parts.append("fifo=refused")
    if nice:
        try:
            os.nice(nice)
        except OSError:
            parts.append("nice=refused")
    parts.insert(0, f"other:nice{os.getpriority(os.PRIO_PROCESS, 0)}")
    return " ".join(parts)


class _Attempt:
    """One HALT write on one connection."""

    __slots__ = ("link", "sent_at", "tid")

    def __init__(self, link: RobotLink) -> None:
        self.link = link
        self.tid: int | None = None  # None until the frame is out (a fresh link is still connecting)
        self.sent_at = math.nan


class RobotLink:
    """One Modbus TCP connection to the robot, non-blocking, driven by the child's poll loop."""

    def __init__(self, reflex: Reflex, name: str) -> None:
        self.reflex = reflex
        self.name = name
        self.state = DOWN
        self.sock: socket.socket | None = None
        self.deadline = 0.0  # connect deadline
        self.rx = bytearray()
        self.pending: dict[int, tuple[str, float]] = {}  # tid -> (kind, sent_at)
        self.on_up: list[_Attempt] = []  # halt attempts waiting for this (fresh) link to connect

    def fileno(self) -> int:
        return self.sock.fileno() if self.sock is not None else -1

    def connect(self, now: float) -> bool:
        r = self.reflex
        try:
            sock = socket.socket(r.robot_family, socket.SOCK_STREAM)
        except OSError as exc:
            r.count("robot_connect_failed", f"robot {self.name} link: no socket ({exc})")
            return False
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _set_priority(sock)
        err = sock.connect_ex(r.robot_addr)
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            r.count("robot_connect_failed", f"robot {self.name} link: cannot connect ({os.strerror(err)})")
            return False
        self.sock, self.state, self.deadline = sock, CONNECTING, now + r.cfg["connect_timeout_s"]
        self.rx.clear()
        self.pending.clear()
        r.poller_update(self)
        return True

    def close(self, reason: str | None = None) -> None:
        r = self.reflex
        if self.sock is not None:
            r.poller_forget(self.sock)
            self.sock.close()
        was_up = self.state == UP
        self.sock, self.state = None, DOWN
        self.pending.clear()
        self.on_up.clear()
        if reason is not None:
            r.count("robot_link_lost" if was_up else "robot_connect_failed", f"robot {self.name} link: {reason}")
        r.link_closed(self)

    def on_event(self, ev: int, now: float) -> None:
        if self.state == CONNECTING:
            if ev & (select.POLLOUT | select.POLLERR | select.POLLHUP):
                assert self.sock is not None
                err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    self.close(f"cannot connect ({os.strerror(err)})")
                    return
                self.state = UP
                self.reflex.poller_update(self)
                self.reflex.link_up(self)
                waiting, self.on_up = self.on_up, []
                for attempt in waiting:
                    self.reflex.send_attempt(attempt, perf_counter())
            return
        if ev & (select.POLLIN | select.POLLERR | select.POLLHUP):
            self.read(now)

    def send(self, frame_fn: FrameFn, kind: str, now: float) -> int | None:
        """Send one request; its transaction id, or None (the link is then closed) if it did not go out whole."""
        r = self.reflex
        tid = r.next_tid()
        frame = frame_fn(tid, r.unit_id)
        assert self.sock is not None
        try:
            n = self.sock.send(frame)
        except OSError as exc:
            self.close(f"send failed ({exc})")
            return None
        if n != len(frame):
            self.close("send buffer full")
            return None
        self.pending[tid] = (kind, now)
        return tid

    def read(self, now: float) -> None:
        assert self.sock is not None
        try:
            data = self.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError as exc:
            self.close(f"receive failed ({exc})")
            return
        if not data:
            self.close("closed by the robot")
            return
        rx = self.rx
        rx += data
        while len(rx) >= 7:
            tid, proto, length, unit = MBAP.unpack_from(rx)
            if proto != 0 or not 2 <= length <= 254:
                self.close(f"bad Modbus frame (protocol {proto}, length {length})")
                return
            end = 6 + length
            if len(rx) < end:
                return
            pdu = bytes(rx[7:end])
            del rx[:end]
            entry = self.pending.pop(tid, None)
            if entry is None or unit != self.reflex.unit_id:
                self.reflex.count("robot_unexpected_response", f"robot {self.name} link: unexpected response",
                                  tid=tid, unit=unit)
                continue
            self.reflex.response(self, tid, entry[0], pdu, entry[1], now)
            if self.sock is None:
                return


def _set_priority(sock: socket.socket) -> None:
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, 6)  # TC_PRIO_INTERACTIVE: ahead in the qdisc


class Reflex:
    def __init__(self, cfg: Config, ctl: socket.socket) -> None:
        self.cfg = cfg
        self.ctl = ctl
        self.unit_id = int(cfg["unit_id"])
        self.cpf = float(cfg["counts_per_force"])
        self.fmax = int(float(cfg["force_range_n"]) * self.cpf)
        self.tmax = int(float(cfg["torque_range_nm"]) * float(cfg["counts_per_torque"]))
        self.poller = select.poll()
        self.handlers: dict[int, Handler] = {}
        self.outbox: list[bytes] = []
        self._tid = 0
        # arming
        self.limit: float | None = None
        self.token = 0  # last armed token (0: none yet)
        self.trip: dict[str, object] | None = None  # the trip of `token`'s arming
        self.attempts: list[_Attempt] = []
        self.halt_started = 0.0
        self.halt_hedged = False
        self.fresh_attempts = 0
        self.halt_trip: dict[str, object] | None = None
        # stream
        self.state = WAITING
        self.last_rx = perf_counter()
        self.next_start = 0.0
        self.last_seq: int | None = None
        self.last_force = math.nan
        self.client: tuple[str, int] | None = None
        self.owner: tuple[str, int] | None = None  # the first client (the main FTSensor); relay_sticky: the only one
        self.client_left = 0  # records still to relay to a client that asked for a count (0: forever)
        # robot
        self.link = RobotLink(self, "halt")
        self.next_connect = 0.0
        self.backoff = float(cfg["reconnect_initial_s"])
        self.next_probe = 0.0
        self.probe_deadline = math.inf
        self.next_health = 0.0
        self.counters: dict[str, int] = {
            "received": 0, "relayed": 0, "checked": 0, "foreign": 0, "bad_length": 0, "out_of_range": 0,
            "lost": 0, "status_errors": 0, "relay_bad_requests": 0, "relay_refused": 0, "relay_starts": 0,
            "relay_stops": 0, "relay_send_errors": 0, "restart_requests": 0, "stale": 0, "arms": 0, "disarms": 0,
            "trips": 0,
            "halts_failed": 0, "halt_hedges": 0, "refused": 0, "bad_control": 0, "robot_connect_failed": 0,
            "robot_link_lost": 0, "robot_probe_missed": 0, "robot_unexpected_response": 0,
            "robot_exception": 0, "socket_errors": 0,
        }
        self.sched = "other"
        self._open_sockets()

    # --- setup -------------------------------------------------------------------------------------------------

    def _open_sockets(self) -> None:
        c = self.cfg
        fam, _, _, _, addr = socket.getaddrinfo(c["sensor_host"], c["sensor_port"], type=socket.SOCK_DGRAM)[0]
        self.sensor = (str(addr[0]), int(addr[1]))
        self.sensor_addr = addr
        ft = socket.socket(fam, socket.SOCK_DGRAM)
        ft.setblocking(False)
        ft.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, int(c["rcvbuf_bytes"]))
        _set_priority(ft)
        ft.bind((c["ft_bind_host"], c["ft_bind_port"]))
        self.ft = ft
        rfam, _, _, _, raddr = socket.getaddrinfo(c["relay_host"], c["relay_port"], type=socket.SOCK_DGRAM)[0]
        relay = socket.socket(rfam, socket.SOCK_DGRAM)
        relay.setblocking(False)
        relay.bind(raddr)
        self.relay = relay
        gfam, _, _, _, gaddr = socket.getaddrinfo(c["robot_host"], c["robot_port"], type=socket.SOCK_STREAM)[0]
        self.robot_family, self.robot_addr = gfam, gaddr
        self.ctl.setblocking(False)
        self._register(ft, select.POLLIN, self._on_ft)
        self._register(relay, select.POLLIN, self._on_relay)
        self._register(self.ctl, select.POLLIN, self._on_ctl)

    def _register(self, sock: socket.socket, events: int, handler: Handler) -> None:
        self.poller.register(sock, events)
        self.handlers[sock.fileno()] = handler

    def poller_update(self, link: RobotLink) -> None:
        assert link.sock is not None
        events = select.POLLOUT if link.state == CONNECTING else select.POLLIN
        fd = link.sock.fileno()
        if fd in self.handlers:
            self.poller.modify(fd, events)
        else:
            self.poller.register(fd, events)
        self.handlers[fd] = link.on_event

    def poller_forget(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if self.handlers.pop(fd, None) is not None:
            self.poller.unregister(fd)

    def next_tid(self) -> int:
        self._tid = self._tid % 0xFFFF + 1
        return self._tid

    # --- messages to the parent --------------------------------------------------------------------------------

    def send(self, msg: dict[str, object]) -> None:
        data = json.dumps(msg, separators=(",", ":")).encode()
        if self.outbox:
            if len(self.outbox) < MAX_OUTBOX or msg["t"] not in ("health", "log"):
                self.outbox.append(data)
            return
        try:
            self.ctl.send(data)
        except BlockingIOError:
            self.outbox.append(data)
            self.poller.modify(self.ctl, select.POLLIN | select.POLLOUT)
        except OSError:
            raise SystemExit(0) from None  # the parent is gone

    def _flush(self) -> None:
        while self.outbox:
            try:
                self.ctl.send(self.outbox[0])
            except BlockingIOError:
                return
            except OSError:
                raise SystemExit(0) from None
            self.outbox.pop(0)
        self.poller.modify(self.ctl, select.POLLIN)

    def count(self, key: str, message: str | None = None, level: str = "warning", **fields: object) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1
        if message is not None and (self.counters[key] <= 10 or self.counters[key] % 1000 == 0):
            self.send({"t": "log", "level": level, "msg": message, "kind": key, "n": self.counters[key], **fields})

    def health(self, now: float) -> None:
        self.next_health = now + float(self.cfg["heartbeat_period_s"])
        self.send({
            "t": "health", "at": now, "stream": self.state, "robot": self.link.state, "armed": self.limit is not None,
            "token": self.token, "client": list(self.client) if self.client else None,
            "last_force_n": self.last_force if math.isfinite(self.last_force) else None,
            "outbox": len(self.outbox), "counters": self.counters,
        })

    # --- the F/T stream (hot path) ------------------------------------------------------------------------------

    def _on_ft(self, ev: int, now: float) -> None:
        recvfrom = self.ft.recvfrom
        sensor_ip, sensor_port = self.sensor
        counters = self.counters
        while True:
            try:
                data, addr = recvfrom(2048)
            except BlockingIOError:
                return
            except OSError as exc:  # e.g. ICMP port unreachable from a sensor that is not (yet) there
                self.count("socket_errors", f"sensor socket: {exc}", level="info")
                return
            t = perf_counter()
            if addr[1] != sensor_port or addr[0] != sensor_ip:
                self.count("foreign", "datagram from someone other than the sensor dropped",
                           source=f"{addr[0]}:{addr[1]}", size=len(data))
                continue
            counters["received"] += 1
            if len(data) == 36:
                seq, _ft_seq, status, fx, fy, fz, tx, ty, tz = RECORD.unpack(data)
                fmax, tmax = self.fmax, self.tmax
                if (
                    fx > fmax or fx < -fmax or fy > fmax or fy < -fmax or fz > fmax or fz < -fmax
                    or tx > tmax or tx < -tmax or ty > tmax or ty < -tmax or tz > tmax or tz < -tmax
                ):
                    counters["out_of_range"] += 1  # rejected as FTSensor rejects it; still relayed
                else:
                    cpf = self.cpf
                    x, y, z = fx / cpf, fy / cpf, fz / cpf
                    f = math.sqrt(x * x + y * y + z * z)
                    limit = self.limit
                    if limit is not None:
                        counters["checked"] += 1
                        if f > limit:
                            self._trip(f, limit, t, seq, "force")
                    self.last_force = f
                    self.last_rx = t
                    last = self.last_seq
                    if last is not None:
                        d = (seq - last) % SEQ_MOD
                        if 1 < d < 1 << 16 and seq > 1:
                            counters["lost"] += d - 1
                    self.last_seq = seq
                    if status:
                        counters["status_errors"] += 1
                    if self.state != LIVE:
                        self.state = LIVE
                        self.send({"t": "log", "level": "info", "msg": "F/T stream live", "kind": "live"})
                        self.health(t)
            else:
                counters["bad_length"] += 1
            client = self.client
            if client is not None:
                try:
                    self.relay.sendto(data, client)
                    counters["relayed"] += 1
                except OSError:
                    counters["relay_send_errors"] += 1
                if self.client_left:
                    self.client_left -= 1
                    if not self.client_left:
                        self.client = None

    # --- the trip: HALT out first, then tell the parent ----------------------------------------------------------

    def _trip(self, force: float, limit: float, t_recv: float, seq: int | None, reason: str) -> None:
        now = perf_counter()
        self.limit = None  # one trip per arming
        token = self.token
        self.counters["trips"] += 1
        trip: dict[str, object] = {
            "t": "trip", "token": token, "force_n": force if math.isfinite(force) else None, "limit_n": limit,
            "reason": reason, "rdt_sequence": seq, "t_recv": t_recv, "detected_at": now,
        }
        # Announce before the frame leaves: by the time the robot's latch can be seen, the parent has this message.
        self.send({"t": "halting", "token": token, "reason": reason, "detected_at": now})
        self.halt_trip = trip
        self.halt_started = now
        self.halt_hedged = False
        self.fresh_attempts = 0
        self.attempts = []
        self._attempt(self.link if self.link.state == UP else None, now)

    def _attempt(self, link: RobotLink | None, now: float) -> None:
        """A HALT write on `link`, or on a fresh connection when None."""
        if link is None:
            link = RobotLink(self, "fresh")
            if not link.connect(now):
                self._hedge(now)
                return
        attempt = _Attempt(link)
        self.attempts.append(attempt)
        if link.state == UP:
            self.send_attempt(attempt, now)
        else:
            link.on_up.append(attempt)

    def send_attempt(self, attempt: _Attempt, now: float) -> None:
        tid = attempt.link.send(halt_frame, "halt", now)  # on failure the link's close() fails the attempt
        if tid is not None:
            attempt.tid, attempt.sent_at = tid, now
            trip = self.halt_trip
            if trip is not None and "sent_at" not in trip:
                trip["sent_at"] = now

    def link_closed(self, link: RobotLink) -> None:
        """A connection closed: its HALT attempts failed; the halt link is rebuilt after the backoff."""
        now = perf_counter()
        if link is self.link:
            self.probe_deadline = math.inf
            self._backoff(now)
            if link.name == "halt":
                self.health(now)
        before = len(self.attempts)
        self.attempts = [a for a in self.attempts if a.link is not link]
        if self.halt_trip is not None and before and not self.attempts:
            self._hedge(now)

    def _hedge(self, now: float) -> None:
        """Also send the HALT on a fresh connection (bounded: at most MAX_FRESH per trip, within halt_timeout_s)."""
        if self.halt_trip is None or now >= self.halt_started + float(self.cfg["halt_timeout_s"]):
            return
        self.halt_hedged = True
        if self.fresh_attempts >= MAX_FRESH:
            if not self.attempts:  # nothing left on the way: say so now, the parent may still halt by itself
                self._halt_done(False, now, f"HALT not delivered: {MAX_FRESH} fresh connections failed")
            return
        self.fresh_attempts += 1
        self.counters["halt_hedges"] += 1
        self._attempt(None, now)

    def _halt_done(self, ok: bool, now: float, error: str = "", link: RobotLink | None = None) -> None:
        trip = self.halt_trip
        if trip is None:
            return
        self.halt_trip = None
        for a in self.attempts:
            if a.link is not self.link and a.link is not link:
                a.link.close()
        self.attempts = []
        if link is not None and link is not self.link:  # a fresh connection confirmed: it is the halt link now
            old, self.link = self.link, link
            old.close()
            link.name = "halt"
            self.next_probe, self.probe_deadline = now + float(self.cfg["probe_period_s"]), math.inf
        trip.update(halted_at=now, halt_ok=ok, error=error)
        trip.setdefault("sent_at", None)
        if not ok:
            self.counters["halts_failed"] += 1
        self.trip = trip
        self.send(trip)
        self.health(now)

    def response(self, link: RobotLink, tid: int, kind: str, pdu: bytes, sent_at: float, now: float) -> None:
        if kind == "probe":
            if link is self.link:
                self.probe_deadline = math.inf
            if pdu[0] & 0x80:
                self.count("robot_exception", "robot answered the halt link probe with an exception", code=pdu[-1])
            return
        attempt = next((a for a in self.attempts if a.link is link and a.tid == tid), None)
        if attempt is None:
            return  # a late answer to an attempt given up
        if pdu == bytes((FC_WRITE_SINGLE, 0, HALT_ADDRESS, 0, 1)):
            self._halt_done(True, now, link=link)
            return
        self.count("robot_exception", "robot refused the HALT write", pdu=pdu.hex())
        self.attempts.remove(attempt)
        if link is not self.link:
            link.close()
        if not self.attempts:
            self._hedge(now)

    def link_up(self, link: RobotLink) -> None:
        if link is self.link:
            self.backoff = float(self.cfg["reconnect_initial_s"])
            self.next_probe = perf_counter() + float(self.cfg["probe_period_s"])
            self.probe_deadline = math.inf
            self.send({"t": "log", "level": "info", "msg": "robot halt link up", "kind": "robot_up"})
            self.health(perf_counter())

    # --- the relay ---------------------------------------------------------------------------------------------

    def _on_relay(self, ev: int, now: float) -> None:
        while True:
            try:
                data, addr = self.relay.recvfrom(64)
            except BlockingIOError:
                return
            except OSError as exc:
                self.count("socket_errors", f"relay socket: {exc}", level="info")
                return
            req = decode_request(data)
            if req is None:
                self.count("relay_bad_requests", "malformed request to the relay ignored", size=len(data))
                continue
            command, n = req
            source = (str(addr[0]), int(addr[1]))
            if command == CMD_START:
                if self.cfg["relay_sticky"] and self.owner not in (None, source):
                    self.count("relay_refused", "start request from someone other than the relay's client refused",
                               source=f"{source[0]}:{source[1]}")
                    continue
                self.owner = source
                self.client, self.client_left = source, n
                self.counters["relay_starts"] += 1
                self._request_sensor(CMD_START)  # the sensor renumbers from 1, as the client expects
            elif command == CMD_STOP:
                self.counters["relay_stops"] += 1
                if source == self.client:
                    self.client = None  # only the relaying stops: the reflex keeps its stream
            elif source == self.client:  # bias
                self._request_sensor(command)
            else:
                self.count("relay_bad_requests", "bias request from someone not streaming ignored",
                           source=f"{source[0]}:{source[1]}")

    def _request_sensor(self, command: int) -> None:
        try:
            self.ft.sendto(encode_request(command, 0), self.sensor_addr)
        except OSError as exc:
            self.count("socket_errors", f"sensor request failed: {exc}", level="info")

    # --- control -----------------------------------------------------------------------------------------------

    def _on_ctl(self, ev: int, now: float) -> None:
        if ev & select.POLLOUT:
            self._flush()
        while True:
            try:
                data = self.ctl.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                raise SystemExit(0) from None
            if not data:
                raise SystemExit(0)  # EOF: the parent closed its end or died
            try:
                msg = json.loads(data)
                op, rid = msg["op"], msg["id"]
                if not isinstance(rid, int):
                    raise TypeError("id")
            except (ValueError, KeyError, TypeError):
                self.count("bad_control", "malformed control message ignored", size=len(data))
                continue
            handler = getattr(self, f"_op_{op}", None) if isinstance(op, str) else None
            if handler is None:
                self._nack(rid, f"unknown op {op!r}")
                continue
            handler(rid, msg)

    def _ack(self, rid: int, **fields: object) -> None:
        self.send({"t": "ack", "id": rid, "ok": True, **fields})

    def _nack(self, rid: int, error: str) -> None:
        self.counters["refused"] += 1
        self.send({"t": "ack", "id": rid, "ok": False, "error": error, "stream": self.state, "robot": self.link.state})

    def _op_arm(self, rid: int, msg: dict[str, object]) -> None:
        token, limit = msg.get("token"), msg.get("limit_n")
        if type(token) is not int or token <= 0:
            return self._nack(rid, f"token must be a positive integer, got {token!r}")
        if not (type(limit) is int or type(limit) is float) or not (math.isfinite(limit) and limit > 0):
            return self._nack(rid, f"force limit must be a finite positive number of newtons, got {limit!r}")
        if token <= self.token:
            return self._nack(rid, f"stale token {token} (last armed {self.token})")
        if self.state != LIVE:
            return self._nack(rid, f"F/T stream {self.state}: not armed")
        if self.link.state != UP:
            return self._nack(rid, f"robot halt link {self.link.state}: not armed")
        if self.halt_trip is not None:
            return self._nack(rid, "a halt is still being delivered: not armed")
        self.token, self.limit, self.trip = token, float(limit), None
        self.counters["arms"] += 1
        self._ack(rid, token=token, last_force_n=self.last_force)

    def _op_disarm(self, rid: int, msg: dict[str, object]) -> None:
        token = msg.get("token")
        if type(token) is not int or token <= 0 or token != self.token:
            return self._nack(rid, f"unknown token {token!r} (current {self.token})")
        self.limit = None
        self.counters["disarms"] += 1
        self._ack(rid, token=token, trip=self.trip, halting=self.halt_trip is not None)

    def _op_stats(self, rid: int, msg: dict[str, object]) -> None:
        self._ack(rid, stream=self.state, robot=self.link.state, armed=self.limit is not None, token=self.token,
                  counters=self.counters)

    def _op_exit(self, rid: int, msg: dict[str, object]) -> None:
        self._ack(rid)
        raise SystemExit(0)

    # --- timers ------------------------------------------------------------------------------------------------

    def _timers(self, now: float) -> float:
        """Run what is due; the next deadline."""
        c = self.cfg
        stale_after = float(c["stale_after_s"])
        if self.state == LIVE and now - self.last_rx > stale_after:
            self.state = STALE
            self.count("stale", "F/T stream stale: no valid record", silent_s=round(now - self.last_rx, 4))
            self.next_start = now
            self.health(now)
            if self.limit is not None and c["halt_on_stale"]:
                self._trip(self.last_force, self.limit, self.last_rx, self.last_seq, "stale")
        if self.state != LIVE and now >= self.next_start:
            self.counters["restart_requests"] += 1
            self._request_sensor(CMD_START)
            self.next_start = now + float(c["restart_interval_s"])
        link = self.link
        if link.state == DOWN and now >= self.next_connect:
            if not link.connect(now):
                self._backoff(now)
        elif link.state == CONNECTING and now >= link.deadline:
            link.close("connect timed out")  # (backs off)
        elif link.state == UP:
            if now >= self.probe_deadline:
                self.count("robot_probe_missed", "robot halt link probe not answered: rebuilding the halt link")
                link.close()
                self.next_connect = now
            elif self.probe_deadline == math.inf and now >= self.next_probe and self.halt_trip is None:
                if link.send(probe_frame, "probe", now) is not None:
                    self.probe_deadline = now + float(c["probe_timeout_s"])
                self.next_probe = now + float(c["probe_period_s"])
        for a in self.attempts:
            if a.link is not self.link and a.link.state == CONNECTING and now >= a.link.deadline:
                a.link.close("fresh connection for HALT timed out")
                break
        if self.halt_trip is not None:
            if now >= self.halt_started + float(c["halt_timeout_s"]):
                self._halt_done(False, now, "no confirmation within halt_timeout_s")
            elif not self.halt_hedged and now >= self.halt_started + float(c["halt_hedge_s"]):
                self._hedge(now)
        if now >= self.next_health:
            self.health(now)
        deadlines = [self.next_health]
        if self.state == LIVE:
            deadlines.append(self.last_rx + stale_after)
        else:
            deadlines.append(self.next_start)
        link = self.link  # (a confirmed fresh connection may have replaced it above)
        if link.state == DOWN:
            deadlines.append(self.next_connect)
        elif link.state == CONNECTING:
            deadlines.append(link.deadline)
        else:
            deadlines.append(self.probe_deadline)
            if self.probe_deadline == math.inf and self.halt_trip is None:
                deadlines.append(self.next_probe)
        if self.halt_trip is not None:
            if not self.halt_hedged:
                deadlines.append(self.halt_started + float(c["halt_hedge_s"]))
            deadlines.append(self.halt_started + float(c["halt_timeout_s"]))
            deadlines.extend(a.link.deadline for a in self.attempts if a.link.state == CONNECTING)
        return max(min(deadlines), now)

    def _backoff(self, now: float) -> None:
        self.next_connect = now + self.backoff
        self.backoff = min(self.backoff * 2, float(self.cfg["reconnect_max_s"]))

    # --- main loop ---------------------------------------------------------------------------------------------

    def run(self) -> None:
        self.send({
            "t": "ready", "version": PROTOCOL_VERSION, "pid": os.getpid(), "sched": self.sched,
            "relay_port": self.relay.getsockname()[1], "sensor_port": self.ft.getsockname()[1],
        })
        self._request_sensor(CMD_START)
        self.next_start = perf_counter() + float(self.cfg["restart_interval_s"])
        gc.collect()
        gc.freeze()  # nothing allocated so far is ever collected: keep the collector's passes short
        poll = self.poller.poll
        handlers = self.handlers
        try:
            while True:
                now = perf_counter()
                wait_ms = max(0.0, (self._timers(now) - now) * 1e3)
                for fd, ev in poll(math.ceil(wait_ms)):
                    handler = handlers.get(fd)
                    if handler is not None:
                        handler(ev, perf_counter())
        finally:
            self._request_sensor(CMD_STOP)  # exiting: the sensor need not stream to a closed port


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which stops us by closing the channel
    ctl = socket.socket(fileno=int(argv[1]))
    cfg = DEFAULTS.copy()
    cfg.update(json.loads(argv[2]))
    sched = tune_scheduling(int(cfg["sched_priority"]), int(cfg["nice"]), cfg["cpus"])
    try:
        reflex = Reflex(cfg, ctl)
    except OSError as exc:  # a port in use, an unresolvable host: the parent reports it
        ctl.send(json.dumps({"t": "fatal", "error": f"{type(exc).__name__}: {exc}"}).encode())
        return 2
    reflex.sched = sched
    try:
        reflex.run()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
