"""Force/torque sensor over UDP in the ATI Net F/T RDT (raw data transfer) format.

Request (8 bytes, big-endian): uint16 header 0x1234, uint16 command, uint32 sample_count (0 = forever).
Record (36 bytes, big-endian): uint32 rdt_sequence, uint32 ft_sequence, uint32 status, int32 Fx Fy Fz Tx Ty Tz
in counts. The sensor restarts rdt_sequence at 1 for each start request; a gap is a lost packet. rdt_sequence
is a uint32: after 2**32-1 comes 0.

`FTSensor` streams `Wrench` samples on `samples` and `StreamStatus` changes on `status`. Every datagram
that is not the next valid record is counted in `incidents` (see the `K_*` kinds) and never published,
so garbage cannot displace a valid sample. The receive path drains the (large) kernel buffer in batches
with one precompiled `struct.Struct`: it feeds a force reflex at 1 kHz.
"""

from __future__ import annotations

import enum
import math
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from time import perf_counter

import anyio
import anyio.abc
import anyio.lowlevel
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .health import Incidents
from .streams import Topic

HEADER = 0x1234
RDT_PORT = 49152
REQUEST = struct.Struct(">HHI")
RECORD = struct.Struct(">IIIiiiiii")
REQUEST_SIZE = REQUEST.size  # 8
RECORD_SIZE = RECORD.size  # 36
SEQ_MOD = 1 << 32
INT32_MAX = (1 << 31) - 1


class Command(enum.IntEnum):
    STOP = 0x0000
    START = 0x0002  # real-time streaming
    BIAS = 0x0042  # software bias


# Incident kinds counted by FTSensor.
K_BAD_LENGTH = "bad_length"  # datagram is not 36 bytes
K_FOREIGN = "foreign_source"  # datagram from anyone but the sensor's address and port
K_OUT_OF_RANGE = "out_of_range"  # a component beyond force_range_n / torque_range_nm
K_IMPLAUSIBLE = "implausible_sequence"  # sequence jumps further than the sensor could have streamed
K_GAP = "gap"  # lost packets (one incident per gap; `stats.lost` sums the gap sizes)
K_REORDERED = "reordered"  # older than the last published sample: dropped
K_DUPLICATE = "duplicate"  # same sequence as the last published sample: dropped
K_STATUS = "status"  # non-zero status word (sample is still published, with `status` set)
K_STALE = "stale"  # no valid sample for stale_after_s
K_RESTART_REQUEST = "restart_request"  # start request re-sent while stale
K_STREAM_RESTART = "stream_restart"  # sequence restarted after our start request
K_SEND_ERROR = "send_error"
K_SOCKET_ERROR = "socket_error"
REJECT_KINDS = (K_BAD_LENGTH, K_FOREIGN, K_OUT_OF_RANGE, K_IMPLAUSIBLE)


def encode_request(command: int, sample_count: int = 0) -> bytes:
    return REQUEST.pack(HEADER, command, sample_count)


def decode_request(data: bytes) -> tuple[int, int]:
    """(command, sample_count); ValueError for a wrong length, header or command."""
    if len(data) != REQUEST_SIZE:
        raise ValueError(f"request is {len(data)} bytes, expected {REQUEST_SIZE}")
    header, command, count = REQUEST.unpack(data)
    if header != HEADER:
        raise ValueError(f"request header 0x{header:04x}, expected 0x{HEADER:04x}")
    if command not in Command._value2member_map_:
        raise ValueError(f"unknown command 0x{command:04x}")
    return command, count


def encode_record(rdt_sequence: int, ft_sequence: int, status: int, counts: Sequence[int]) -> bytes:
    """One 36-byte record; counts = (Fx, Fy, Fz, Tx, Ty, Tz) as int32."""
    return RECORD.pack(rdt_sequence, ft_sequence, status, *counts)


def decode_record(data: bytes) -> tuple[int, ...]:
    """(rdt_sequence, ft_sequence, status, Fx, Fy, Fz, Tx, Ty, Tz) in counts; ValueError for a wrong length."""
    if len(data) != RECORD_SIZE:
        raise ValueError(f"record is {len(data)} bytes, expected {RECORD_SIZE}")
    return RECORD.unpack(data)


@dataclass(frozen=True, slots=True)
class Wrench:
    """One sample in N and Nm; t_recv is time.perf_counter() when the datagram was read."""

    rdt_sequence: int
    ft_sequence: int
    status: int
    fx: float
    fy: float
    fz: float
    tx: float
    ty: float
    tz: float
    t_recv: float

    @property
    def force_magnitude(self) -> float:
        return math.sqrt(self.fx * self.fx + self.fy * self.fy + self.fz * self.fz)

    @property
    def torque_magnitude(self) -> float:
        return math.sqrt(self.tx * self.tx + self.ty * self.ty + self.tz * self.tz)

    @property
    def ok(self) -> bool:
        """The sensor reported no error for this sample."""
        return self.status == 0


class StreamState(enum.Enum):
    WAITING = "waiting"  # started, no sample yet
    LIVE = "live"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class StreamStatus:
    state: StreamState
    t: float  # perf_counter of the change
    last_sample_t: float | None  # perf_counter of the last valid sample, None if none yet

    @property
    def stale(self) -> bool:
        return self.state is StreamState.STALE

    @property
    def live(self) -> bool:
        return self.state is StreamState.LIVE


@dataclass(slots=True)
class FTStats:
    received: int = 0  # datagrams read
    published: int = 0  # samples published
    lost: int = 0  # sum of sequence gaps
    rejected: int = 0  # not a valid record (REJECT_KINDS)
    late: int = 0  # valid records dropped as reordered or duplicate
    status_errors: int = 0  # published samples with a non-zero status word


class FTConfig(BaseModel):
    # allow_inf_nan=False: an inf or NaN limit is a guard that never fires (stale_after_s = inf switched the
    # staleness watchdog off). Upper bounds are the driver's absolute limits; a cell run tightens stale_after_s
    # further (cellctl.config).
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    host: str = Field("127.0.0.1", min_length=1)  # a real sensor (ATI factory default 192.168.1.1): cell config
    port: int = Field(default=RDT_PORT, ge=1, le=65535)
    bind_host: str = Field("127.0.0.1", min_length=1)  # "" would mean every interface: say 0.0.0.0 if meant
    bind_port: int = Field(default=0, ge=0, le=65535)
    counts_per_force: float = Field(default=1_000_000, gt=0, le=1e9)
    counts_per_torque: float = Field(default=1_000_000, gt=0, le=1e9)
    # 10 s: beyond that no sample arriving is not noticed at all; unit tests use it for a quiet stream.
    stale_after_s: float = Field(default=0.05, gt=0, le=10.0)
    restart_interval_s: float = Field(default=0.25, gt=0, le=60.0)  # re-send start this often while stale
    restart_grace_s: float = Field(default=0.5, gt=0, le=60.0)  # after a start request, accept a restarted sequence
    force_range_n: float = Field(default=1000.0, gt=0)  # product with counts_per_force checked below
    torque_range_nm: float = Field(default=100.0, gt=0)
    max_rate_hz: float = Field(default=8000.0, gt=0, le=100_000)  # fastest the sensor can stream (Net F/T: 7 kHz)
    seq_slack: int = Field(default=8192, ge=1, le=1 << 20)  # extra forward jump tolerated (receive batching)
    reorder_window: int = Field(default=1024, ge=1, le=1 << 20)  # how far back a late record counts as reordered
    rcvbuf_bytes: int = Field(default=4 * 1024 * 1024, ge=65536, le=1 << 30)  # SO_RCVBUF takes a C int
    batch: int = Field(default=256, ge=1, le=65536)  # datagrams per wake before yielding to other tasks

    @field_validator("host", "bind_host")
    @classmethod
    def _host_text(cls, value: str) -> str:
        # A NUL made socket.bind raise TypeError from inside the run; no host name holds a control or a space.
        if any(not c.isprintable() or c.isspace() for c in value):
            raise ValueError(f"not a host name or address: {value!r}")
        return value

    @model_validator(mode="after")
    def _ranges_fit_the_record(self) -> FTConfig:
        # A range of 2**31 counts or more can never be exceeded by an int32 component: the range check would be
        # blind. One under a count rejects every non-zero record. Messages start with the field (cellctl.config).
        for field, value, per in (("force_range_n", self.force_range_n, self.counts_per_force),
                                  ("torque_range_nm", self.torque_range_nm, self.counts_per_torque)):
            counts = value * per
            if not 1 <= counts <= INT32_MAX:
                unit = "counts_per_force" if field == "force_range_n" else "counts_per_torque"
                raise ValueError(f"{field}: {field} * {unit} = {counts:g} counts, must be within 1 .. 2**31-1 "
                                 "(an int32 record component)")
        return self


class FTSensor:
    """Driver: run() streams until cancelled, then sends stop."""

    def __init__(self, config: FTConfig | None = None, name: str = "ft") -> None:
        self.config = config or FTConfig()
        self.name = name
        self.samples: Topic[Wrench] = Topic(f"{name}.samples")
        self.status: Topic[StreamStatus] = Topic(f"{name}.status")
        self.incidents = Incidents(name)
        self.stats = FTStats()
        self.state = StreamState.WAITING
        self.rcvbuf_effective = 0
        self.local_port = 0
        self.last_sample: Wrench | None = None
        self._sock: socket.socket | None = None
        self._sensor: tuple[str, int] = ("", 0)
        self._last_seq: int | None = None
        self._last_t = 0.0  # perf_counter of the last valid sample (or of the start request)
        self._restart_until = 0.0  # accept a restarted sequence until then
        self._restarts_pending = 0  # start requests sent whose restarted stream has not been seen yet
        c = self.config
        self._fmax = int(c.force_range_n * c.counts_per_force)
        self._tmax = int(c.torque_range_nm * c.counts_per_torque)

    @property
    def last_sequence(self) -> int | None:
        return self._last_seq

    async def run(self, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        c = self.config
        infos = await anyio.getaddrinfo(c.host, c.port, type=socket.SOCK_DGRAM)
        family, _, _, _, sockaddr = infos[0]
        self._sensor = (str(sockaddr[0]), int(sockaddr[1]))
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, c.rcvbuf_bytes)
            # Linux reports double the usable size and caps the request at net.core.rmem_max.
            self.rcvbuf_effective = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            if self.rcvbuf_effective < c.rcvbuf_bytes:
                self.incidents.info("receive buffer capped (raise net.core.rmem_max)",
                                    asked=c.rcvbuf_bytes, got=self.rcvbuf_effective)
            sock.bind((c.bind_host, c.bind_port))
            self.local_port = sock.getsockname()[1]
            self._sock = sock
            self._last_seq = None
            self._last_t = perf_counter()
            self._set_state(StreamState.WAITING, perf_counter())
            self._request(Command.START)
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watchdog)
                task_status.started(self.local_port)
                await self._receive_loop(sock)
        finally:
            if self._sock is not None:
                self._request(Command.STOP)  # plain non-blocking sendto: works while cancelled
            self._sock = None
            anyio.notify_closing(sock)
            sock.close()

    async def bias(self) -> None:
        """Software bias: later readings are relative to the wrench now."""
        self._require_running()
        self._request(Command.BIAS)
        await anyio.lowlevel.checkpoint()

    async def restart(self) -> None:
        """Re-send the start request (the sensor restarts its sequence at 1)."""
        self._require_running()
        self._request(Command.START)
        await anyio.lowlevel.checkpoint()

    def _require_running(self) -> None:
        if self._sock is None:
            raise RuntimeError(f"{self.name}: driver is not running")

    def _request(self, command: Command) -> None:
        if self._sock is None:
            return
        if command is Command.START:  # the sensor will number a new stream from 1
            self._restart_until = perf_counter() + self.config.restart_grace_s
            self._restarts_pending += 1
        try:
            self._sock.sendto(encode_request(command, 0), self._sensor)
        except OSError as exc:  # includes BlockingIOError: the request is lost, the watchdog retries
            self.incidents.count(K_SEND_ERROR, "could not send request", command=command.name, error=repr(exc))

    def _set_state(self, state: StreamState, now: float) -> None:
        self.state = state
        last = self.last_sample.t_recv if self.last_sample is not None else None
        self.status.publish(StreamStatus(state, now, last))

    async def _watchdog(self) -> None:
        """Marks the stream stale after stale_after_s without a valid sample and re-requests it."""
        c = self.config
        next_request = 0.0
        while True:
            now = perf_counter()
            if self.state is not StreamState.STALE:
                deadline = self._last_t + c.stale_after_s
                if now < deadline:
                    await anyio.sleep(deadline - now)
                    continue
                self.incidents.count(K_STALE, "no valid sample: stream stale",
                                     silent_s=round(now - self._last_t, 4), last_sequence=self._last_seq)
                self._set_state(StreamState.STALE, now)
                next_request = now  # the sensor may have rebooted: ask again at once
            if now >= next_request:
                self.incidents.count(K_RESTART_REQUEST, "stream stale: re-sending start request")
                self._request(Command.START)
                next_request = now + c.restart_interval_s
            await anyio.sleep(max(next_request - perf_counter(), 0.0))

    async def _receive_loop(self, sock: socket.socket) -> None:
        recvfrom = sock.recvfrom
        handle = self._handle
        batch = self.config.batch
        while True:
            await anyio.wait_readable(sock)
            n = 0
            while n < batch:
                try:
                    data, addr = recvfrom(64)  # 64 > 36: a longer datagram still reads as too long
                except BlockingIOError:
                    break
                except OSError as exc:  # e.g. ICMP errors surfaced on some platforms
                    self.incidents.count(K_SOCKET_ERROR, "receive failed", error=repr(exc))
                    break
                n += 1
                handle(data, addr, perf_counter())
            if n == batch:
                await anyio.lowlevel.checkpoint()  # more waiting: let the consumers run first

    def _reject(self, kind: str, message: str, **fields: object) -> None:
        self.stats.rejected += 1
        self.incidents.count(kind, message, **fields)

    def _handle(self, data: bytes, addr: tuple[str, int], t: float) -> None:
        """Validate one datagram and publish it if it is the next valid record. Hot path."""
        stats = self.stats
        stats.received += 1
        sensor = self._sensor
        if addr[1] != sensor[1] or addr[0] != sensor[0]:
            self._reject(K_FOREIGN, "datagram from someone other than the sensor",
                         source=f"{addr[0]}:{addr[1]}", size=len(data))
            return
        if len(data) != RECORD_SIZE:
            self._reject(K_BAD_LENGTH, "datagram of wrong length", size=len(data), expected=RECORD_SIZE)
            return
        seq, ft_seq, status, fx, fy, fz, tx, ty, tz = RECORD.unpack(data)
        fmax = self._fmax
        tmax = self._tmax
        if (
            fx > fmax or fx < -fmax or fy > fmax or fy < -fmax or fz > fmax or fz < -fmax
            or tx > tmax or tx < -tmax or ty > tmax or ty < -tmax or tz > tmax or tz < -tmax
        ):
            # Checked before the sequence, so a bad record never advances it.
            self._reject(K_OUT_OF_RANGE, "record beyond the plausible force/torque range",
                         rdt_sequence=seq, counts=(fx, fy, fz, tx, ty, tz))
            return
        last = self._last_seq
        if last is None:
            self._new_stream(seq)
        else:
            d = (seq - last) % SEQ_MOD
            if d == 1:
                pass  # the common case, the uint32 wrap 2**32-1 -> 0 included
            elif t < self._restart_until and seq <= self.config.seq_slack and seq <= last:
                # The sensor numbers the stream we just re-requested from 1 again. Compared as plain integers,
                # not by the sign of d: from above 2**31 the restart looks like a forward jump (implausible),
                # from just below 2**32 like a small gap. Before the jump checks, so it is never rejected.
                self._new_stream(seq)
            elif d == 0:
                stats.late += 1
                self.incidents.count(K_DUPLICATE, "duplicate record dropped", rdt_sequence=seq)
                return
            elif d < SEQ_MOD // 2:
                limit = (t - self._last_t) * self.config.max_rate_hz + self.config.seq_slack
                if d - 1 > limit:
                    self._reject(K_IMPLAUSIBLE, "sequence jumps further than the sensor can stream",
                                 rdt_sequence=seq, last_sequence=last, jump=d)
                    return
                else:
                    stats.lost += d - 1
                    self.incidents.count(K_GAP, "lost packets", gap=d - 1, after=last, rdt_sequence=seq)
            else:
                if SEQ_MOD - d <= self.config.reorder_window:
                    stats.late += 1
                    self.incidents.count(K_REORDERED, "late record dropped", rdt_sequence=seq, last_sequence=last)
                    return
                else:
                    self._reject(K_IMPLAUSIBLE, "sequence jumps back further than any reordering",
                                 rdt_sequence=seq, last_sequence=last)
                    return
        self._last_seq = seq
        self._last_t = t
        cf = self.config.counts_per_force
        ct = self.config.counts_per_torque
        w = Wrench(seq, ft_seq, status, fx / cf, fy / cf, fz / cf, tx / ct, ty / ct, tz / ct, t)
        self.last_sample = w
        if status:
            stats.status_errors += 1
            self.incidents.count(K_STATUS, "sensor reports non-zero status", status=f"0x{status:08x}",
                                 rdt_sequence=seq)
        if self.state is not StreamState.LIVE:
            self._set_state(StreamState.LIVE, t)
            self.incidents.info("stream live", rdt_sequence=seq)
        stats.published += 1
        self.samples.publish(w)

    def _new_stream(self, seq: int) -> None:
        """First record after a start request: the sensor numbers a new stream from 1."""
        if self._last_seq is not None:
            self.incidents.count(K_STREAM_RESTART, "sensor restarted its sequence",
                                 rdt_sequence=seq, last_sequence=self._last_seq)
        # Each start request restarts the numbering once; several may be in flight after a stall.
        self._restarts_pending = max(0, self._restarts_pending - 1)
        if not self._restarts_pending:
            self._restart_until = 0.0
        if 1 < seq <= self.config.seq_slack:
            self.stats.lost += seq - 1
            self.incidents.count(K_GAP, "lost packets at stream start", gap=seq - 1, rdt_sequence=seq)
