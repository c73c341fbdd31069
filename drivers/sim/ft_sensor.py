"""A simulated ATI Net F/T sensor speaking RDT over UDP, with a drivable contact model and fault injection.

    sensor = SimFTSensor(SimFTConfig(port=0))
    port = await tg.start(sensor.serve)
    sensor.contact.set(fz=-12.0)                 # or sensor.contact.wrench_fn = lambda t: (...6 floats)
    sensor.faults.drop_seqs.update({5, 6})       # lose specific records; drop_fraction for random loss
    sensor.faults.garbage_every = 2              # a garbage datagram after every 2nd record ...
    sensor.faults.garbage_budget = 1000          # ... 1000 of them in all
    sensor.stall(0.3)                            # go silent for 0.3 s
    sensor.on_send = lambda seq, t_send, wrench: ...   # latency benchmarks

Like the real sensor it streams to whoever sent the last start request, restarts rdt_sequence at 1 for
each start request, honours sample_count, stop and bias, and ignores (and counts) malformed requests.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from time import perf_counter

import anyio
import anyio.abc
import anyio.lowlevel
from pydantic import BaseModel, ConfigDict, Field

from ..ft import HEADER, INT32_MAX, RDT_PORT, RECORD, REQUEST, SEQ_MOD, Command, decode_request
from ..health import Incidents

Wrench6 = tuple[float, float, float, float, float, float]
OnSend = Callable[[int, float, Wrench6], None]
GARBAGE_KINDS = ("empty", "short", "long", "random", "request", "out_of_range")
FT_INTERNAL_HZ = 7000  # ft_sequence counts the sensor's internal samples


class SimFTConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=RDT_PORT, ge=0, le=65535)
    rate_hz: float = Field(default=1000.0, gt=0, le=100_000)
    counts_per_force: float = Field(default=1_000_000, gt=0)
    counts_per_torque: float = Field(default=1_000_000, gt=0)
    max_burst: int = Field(default=100, ge=1)  # catch-up records per wake; further behind skips ahead
    seed: int = 0  # for random drops and garbage


class ContactModel:
    """The wrench the sensor feels: a static value from set(), or wrench_fn(t) if given (t = s since serve)."""

    def __init__(self) -> None:
        self.value: list[float] = [0.0] * 6
        self.wrench_fn: Callable[[float], Sequence[float]] | None = None

    def set(
        self,
        fx: float | None = None,
        fy: float | None = None,
        fz: float | None = None,
        tx: float | None = None,
        ty: float | None = None,
        tz: float | None = None,
    ) -> None:
        """Set the given components (N, Nm); the others keep their value."""
        for i, v in enumerate((fx, fy, fz, tx, ty, tz)):
            if v is not None:
                self.value[i] = float(v)

    def clear(self) -> None:
        self.value = [0.0] * 6
        self.wrench_fn = None

    def wrench(self, t: float) -> Wrench6:
        if self.wrench_fn is not None:
            fx, fy, fz, tx, ty, tz = self.wrench_fn(t)
            return (float(fx), float(fy), float(fz), float(tx), float(ty), float(tz))
        fx, fy, fz, tx, ty, tz = self.value
        return (fx, fy, fz, tx, ty, tz)


@dataclass
class SimFaults:
    """Faults the simulation or a test can switch on at any time."""

    drop_fraction: float = 0.0  # probability each record is lost
    drop_seqs: set[int] = field(default_factory=set)  # rdt_sequence numbers to lose
    garbage_every: int = 0  # after every n-th record send one garbage datagram (0 = off)
    garbage_budget: int | None = None  # stop interleaving garbage after this many (None = no limit)
    garbage_kinds: tuple[str, ...] = GARBAGE_KINDS


class SimFTSensor:
    def __init__(self, config: SimFTConfig | None = None, name: str = "ft_sim") -> None:
        self.config = config or SimFTConfig()
        self.contact = ContactModel()
        self.faults = SimFaults()
        self.incidents = Incidents(name)
        self.on_send: OnSend | None = None
        self.status_word = 0  # reported in every record (non-zero = sensor error)
        self.port = 0
        self.client: tuple[str, int] | None = None
        self.streaming = False
        # Counters.
        self.sent = 0  # records sent
        self.dropped: list[int] = []  # rdt_sequence of records lost on purpose
        self.garbage_sent = 0
        self.slips = 0  # times the schedule fell more than max_burst behind and skipped ahead
        self.requests: dict[str, int] = {c.name: 0 for c in Command}
        self.last_sequence = 0
        self._seq = 0
        self._remaining = 0  # records left in this stream, 0 = forever
        self._bias: Wrench6 = (0.0,) * 6
        self._stalled_until = 0.0
        self._t0 = perf_counter()
        self._rng = random.Random(self.config.seed)
        self._sock: socket.socket | None = None
        self._kick = anyio.Event()

    # -- control from the simulation / tests ------------------------------------------------

    def stall(self, duration_s: float) -> None:
        """Send nothing for duration_s (the schedule restarts afterwards, without a catch-up burst)."""
        self._stalled_until = perf_counter() + duration_s
        self._kick.set()

    def resume(self) -> None:
        self._stalled_until = 0.0
        self._kick.set()

    def stop_streaming(self) -> None:
        self.streaming = False
        self._kick.set()

    def send_raw(self, data: bytes, addr: tuple[str, int] | None = None) -> None:
        """Send any datagram from the sensor's own socket (to the streaming client by default)."""
        target = addr or self.client
        if self._sock is None or target is None:
            raise RuntimeError("sensor not serving or no client")
        self._sock.sendto(data, target)

    def inject_garbage(self, count: int = 1, kind: str | None = None) -> None:
        """Send count garbage datagrams to the client now, from the sensor's socket."""
        for _ in range(count):
            self._send_garbage(kind)

    # -- protocol -----------------------------------------------------------------------------

    async def serve(self, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        c = self.config
        infos = await anyio.getaddrinfo(c.host, c.port, type=socket.SOCK_DGRAM)
        family, _, _, _, sockaddr = infos[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            sock.bind(sockaddr)
            self.port = sock.getsockname()[1]
            self._sock = sock
            self._t0 = perf_counter()
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._stream)
                task_status.started(self.port)
                await self._serve_requests(sock)
        finally:
            self._sock = None
            self.streaming = False
            anyio.notify_closing(sock)
            sock.close()

    async def _serve_requests(self, sock: socket.socket) -> None:
        while True:
            await anyio.wait_readable(sock)
            while True:
                try:
                    data, addr = sock.recvfrom(2048)
                except BlockingIOError:
                    break
                except OSError as exc:
                    self.incidents.count("socket_error", "receive failed", error=repr(exc))
                    break
                self._handle_request(data, (str(addr[0]), int(addr[1])))

    def _handle_request(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            command, count = decode_request(data)
        except ValueError as exc:
            self.incidents.count("bad_request", f"malformed request ignored: {exc}",
                                 source=f"{addr[0]}:{addr[1]}", size=len(data))
            return
        cmd = Command(command)
        self.requests[cmd.name] += 1
        if cmd is Command.START:
            self.client = addr
            self._seq = 0  # like the Net F/T: each stream numbers its records from 1
            self._remaining = count
            self.streaming = True
            self._kick.set()
        elif cmd is Command.STOP:
            self.stop_streaming()
        else:
            self._bias = self.contact.wrench(perf_counter() - self._t0)

    async def _wait_kick(self, limit_s: float | None) -> None:
        self._kick = anyio.Event()
        with anyio.move_on_after(limit_s):
            await self._kick.wait()

    async def _stream(self) -> None:
        """Absolute schedule: next += period; a late wake sends the records due in a burst."""
        period = 1.0 / self.config.rate_hz
        max_burst = self.config.max_burst
        next_t = perf_counter()
        while True:
            if not self.streaming:
                await self._wait_kick(None)
                next_t = perf_counter()
                continue
            now = perf_counter()
            if now < self._stalled_until:
                await self._wait_kick(self._stalled_until - now)
                next_t = perf_counter()
                continue
            if now < next_t:
                await anyio.sleep(next_t - now)
                continue
            burst = 0
            while next_t <= now and self.streaming and burst < max_burst:
                self._emit()
                next_t += period
                burst += 1
            if next_t <= now and self.streaming:
                self.slips += 1
                next_t = now + period
            await anyio.lowlevel.checkpoint()

    def _emit(self) -> None:
        if self._remaining:
            self._remaining -= 1
            if self._remaining == 0:
                self.streaming = False
        seq = self._seq = (self._seq + 1) % SEQ_MOD
        self.last_sequence = seq
        now = perf_counter()
        raw = self.contact.wrench(now - self._t0)
        b = self._bias
        w: Wrench6 = (raw[0] - b[0], raw[1] - b[1], raw[2] - b[2], raw[3] - b[3], raw[4] - b[4], raw[5] - b[5])
        faults = self.faults
        if seq in faults.drop_seqs or (faults.drop_fraction > 0 and self._rng.random() < faults.drop_fraction):
            self.dropped.append(seq)
        else:
            cf = self.config.counts_per_force
            ct = self.config.counts_per_torque
            counts = (_i32(w[0] * cf), _i32(w[1] * cf), _i32(w[2] * cf),
                      _i32(w[3] * ct), _i32(w[4] * ct), _i32(w[5] * ct))
            ft_seq = int((now - self._t0) * FT_INTERNAL_HZ) % SEQ_MOD
            if self._send(RECORD.pack(seq, ft_seq, self.status_word, *counts)):
                self.sent += 1
                if self.on_send is not None:
                    self.on_send(seq, now, w)  # taken before packing: latencies err long
        every = faults.garbage_every
        if every and seq % every == 0 and (faults.garbage_budget is None or self.garbage_sent < faults.garbage_budget):
            self._send_garbage(None)

    def _send(self, data: bytes, target: tuple[str, int] | None = None) -> bool:
        target = target or self.client
        if self._sock is None or target is None:
            return False
        try:
            self._sock.sendto(data, target)
        except OSError as exc:  # BlockingIOError/ENOBUFS: the record is lost like on a real network
            self.incidents.count("send_error", "could not send", error=repr(exc))
            return False
        return True

    def _send_garbage(self, kind: str | None) -> None:
        rng = self._rng
        kind = kind or rng.choice(self.faults.garbage_kinds)
        if kind == "empty":
            data = b""
        elif kind == "short":
            data = rng.randbytes(rng.randint(1, RECORD.size - 1))
        elif kind == "long":
            data = rng.randbytes(rng.randint(RECORD.size + 1, 1400))
        elif kind == "random":
            data = rng.randbytes(RECORD.size)
        elif kind == "request":  # a request echoed back: right header, wrong size
            data = REQUEST.pack(HEADER, Command.START, 0)
        elif kind == "out_of_range":  # well-formed, next sequence number, absurd force
            data = RECORD.pack((self._seq + 1) % SEQ_MOD, 0, 0, INT32_MAX, -INT32_MAX, 0, 0, 0, 0)
        else:
            raise ValueError(f"unknown garbage kind {kind!r}; known: {GARBAGE_KINDS}")
        if self._send(data):
            self.garbage_sent += 1


def _i32(x: float) -> int:
    """Round to counts, saturating at the int32 range like the sensor's ADC."""
    v = round(x)
    return INT32_MAX if v > INT32_MAX else -INT32_MAX - 1 if v < -INT32_MAX - 1 else v
