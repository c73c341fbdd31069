"""F/T sensor driver against the simulated Net F/T over real UDP on 127.0.0.1."""

from __future__ import annotations

import itertools
import math
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import anyio
import pytest
from pydantic import ValidationError

from drivers import ft
from drivers.ft import (
    RECORD_SIZE,
    REJECT_KINDS,
    Command,
    FTConfig,
    FTSensor,
    StreamState,
    StreamStatus,
    Wrench,
    decode_record,
    decode_request,
    encode_record,
    encode_request,
)
from drivers.sim.ft_sensor import SimFTConfig, SimFTSensor, Wrench6
from drivers.streams import Subscription

LOCAL = "127.0.0.1"


@dataclass
class Rig:
    sensor: SimFTSensor
    driver: FTSensor
    samples: Subscription[Wrench]
    status: Subscription[StreamStatus]


@asynccontextmanager
async def rig(sim: dict[str, Any] | None = None, *, stalled: bool = False, **driver: Any) -> AsyncIterator[Rig]:
    """A simulated sensor and a driver streaming from it; subscriptions made before the first sample.

    stalled: the sensor sends no record of its own until resume(), so a test can feed records with send_raw.
    """
    sensor = SimFTSensor(SimFTConfig(host=LOCAL, port=0, **(sim or {})))
    async with anyio.create_task_group() as tg:
        port = await tg.start(sensor.serve)
        if stalled:
            sensor.stall(3600)
        drv = FTSensor(FTConfig(host=LOCAL, port=port, bind_host=LOCAL, **driver))
        r = Rig(sensor, drv, drv.samples.subscribe(maxlen=100_000), drv.status.subscribe(maxlen=1000))
        await tg.start(drv.run)
        yield r
        tg.cancel_scope.cancel()


async def wait_until(cond: Callable[[], bool], limit_s: float = 5.0) -> None:
    """Poll a counter-based condition (the counters have no event), bounded by limit_s."""
    with anyio.fail_after(limit_s):
        while True:
            if cond():
                return
            await anyio.sleep(0.002)


async def take(sub: Subscription[Wrench], n: int, limit_s: float = 5.0) -> list[Wrench]:
    with anyio.fail_after(limit_s):
        return [await sub.receive() for _ in range(n)]


async def next_status(sub: Subscription[StreamStatus], state: StreamState, limit_s: float = 5.0) -> StreamStatus:
    with anyio.fail_after(limit_s):
        while True:
            s = await sub.receive()
            if s.state is state:
                return s


def record(seq: int, *, status: int = 0, counts: tuple[int, ...] = (1, 2, 3, 4, 5, 6)) -> bytes:
    return encode_record(seq, 0, status, counts)


# -- codec and config ----------------------------------------------------------------------


def test_codec_round_trip_and_sizes() -> None:
    assert encode_request(Command.START, 7) == b"\x12\x34\x00\x02\x00\x00\x00\x07"
    assert decode_request(encode_request(Command.BIAS)) == (0x42, 0)
    for bad in (b"\x12\x34", encode_request(2) + b"\x00", b"\xbe\xef\x00\x02\x00\x00\x00\x00", encode_request(0x77)):
        with pytest.raises(ValueError):
            decode_request(bad)
    data = encode_record(1, 2, 3, (-1, 2, -3, 4, -5, 2**31 - 1))
    assert len(data) == RECORD_SIZE == 36
    assert decode_record(data) == (1, 2, 3, -1, 2, -3, 4, -5, 2**31 - 1)
    with pytest.raises(ValueError):
        decode_record(data[:-1])
    w = Wrench(1, 1, 0, 3.0, 4.0, 12.0, 0.0, 0.0, 0.0, 0.0)
    assert w.force_magnitude == pytest.approx(13.0) and w.ok


def test_config_validation() -> None:
    assert FTConfig().port == 49152 and FTConfig().stale_after_s == 0.05
    for bad in ({"port": 70000}, {"port": 0}, {"counts_per_force": 0}, {"stale_after_s": -1}, {"bogus": 1}):
        with pytest.raises(ValidationError):
            FTConfig(**bad)
    with pytest.raises(ValidationError):
        SimFTConfig(rate_hz=0)
    with pytest.raises(ValidationError):
        FTConfig().port = 1  # type: ignore[misc]


# -- streaming -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_streams_contiguous_sequences_with_correct_scaling() -> None:
    scale = {"counts_per_force": 2500, "counts_per_torque": 40000}
    async with rig(sim={"rate_hz": 2000, **scale}, stale_after_s=10, **scale) as r:
        r.sensor.contact.set(fx=12.5, fy=-3.0, fz=40.0, tx=0.5, ty=-0.125, tz=-0.25)
        got = await take(r.samples, 300)
        assert r.driver.rcvbuf_effective >= 65536
    seqs = [w.rdt_sequence for w in got]
    assert seqs == list(range(seqs[0], seqs[0] + 300)) and seqs[0] == 1
    steady = got[-1]  # the first record may predate contact.set()
    assert (steady.fx, steady.fy, steady.fz, steady.tx, steady.ty, steady.tz) == (12.5, -3.0, 40.0, 0.5, -0.125, -0.25)
    assert steady.force_magnitude == pytest.approx(math.sqrt(12.5**2 + 3**2 + 40**2))
    assert all(a.t_recv <= b.t_recv for a, b in itertools.pairwise(got))
    assert all(a.ft_sequence <= b.ft_sequence for a, b in itertools.pairwise(got))
    assert r.driver.stats.lost == 0 and r.driver.stats.rejected == 0
    assert r.driver.stats.published >= 300 and r.driver.samples.published == r.driver.stats.published


@pytest.mark.anyio
async def test_bias_makes_readings_relative_to_the_wrench_at_bias_time() -> None:
    async with rig() as r:
        r.sensor.contact.set(fx=5.0, tz=0.5)
        first = (await take(r.samples, 1))[0]
        assert first.fx == pytest.approx(5.0) and first.tz == pytest.approx(0.5)
        await r.driver.bias()
        with anyio.fail_after(5):
            while abs((await r.samples.receive()).fx) > 1e-9:
                pass
        r.sensor.contact.set(fx=7.0)
        with anyio.fail_after(5):
            while (w := await r.samples.receive()).fx < 1.0:
                pass
        assert w.fx == pytest.approx(2.0) and w.tz == pytest.approx(0.0)
        assert r.sensor.requests["BIAS"] == 1


@pytest.mark.anyio
async def test_stall_reports_stale_then_live_and_the_restarted_stream_loses_nothing() -> None:
    async with rig(stale_after_s=0.05, restart_interval_s=0.05) as r:
        await next_status(r.status, StreamState.LIVE)
        r.sensor.stall(0.4)
        stale = await next_status(r.status, StreamState.STALE)
        assert stale.stale and stale.last_sample_t is not None and stale.t - stale.last_sample_t >= 0.05
        assert r.driver.state is StreamState.STALE
        live = await next_status(r.status, StreamState.LIVE)
        assert live.live and live.t > stale.t
        after = await take(r.samples, 50)
        d = r.driver
        assert d.incidents[ft.K_STALE] >= 1 and d.incidents[ft.K_RESTART_REQUEST] >= 1
        assert r.sensor.requests["START"] >= 2  # re-requested while stale
        # The sensor numbered the re-requested stream from 1: a restart, not a loss.
        assert d.incidents[ft.K_STREAM_RESTART] >= 1 and d.stats.lost == 0 and d.stats.late == 0
    # Consecutive, except where a (load-induced) stale re-request restarted the numbering.
    assert all(b.rdt_sequence == a.rdt_sequence + 1 or b.rdt_sequence <= a.rdt_sequence
               for a, b in itertools.pairwise(after))


@pytest.mark.anyio
async def test_dropped_packets_are_counted_as_lost() -> None:
    async with rig(stale_after_s=10) as r:
        r.sensor.faults.drop_seqs.update({1, 10, 11, 12, 50})
        await wait_until(lambda: (r.driver.last_sequence or 0) >= 60)
        assert r.driver.stats.lost == 5
        assert r.driver.incidents[ft.K_GAP] == 3  # 1 (at stream start), 10-12, 50
        # Random loss: every dropped record before the last one received is counted.
        r.sensor.faults.drop_fraction = 0.2
        await wait_until(lambda: (r.driver.last_sequence or 0) >= 400)
        r.sensor.stop_streaming()
        last_sent = max(set(range(1, r.sensor.last_sequence + 1)) - set(r.sensor.dropped))
        await wait_until(lambda: r.driver.last_sequence == last_sent)
        lost = sum(1 for s in r.sensor.dropped if s < last_sent)
        assert lost > 20 and r.driver.stats.lost == lost
        assert r.driver.stats.published == last_sent - lost


@pytest.mark.anyio
async def test_acceptance_1000_garbage_datagrams_lose_no_valid_sample_and_are_counted() -> None:
    sent: dict[int, Wrench6] = {}

    def wave(t: float) -> Wrench6:
        return (10 * math.sin(7 * t), -5 * math.cos(3 * t), 20 + t, 0.1 * math.sin(t), 0.0, -0.2)

    # stale_after is long so a hiccup on a loaded machine cannot trigger a (sequence-restarting) re-request.
    async with rig(sim={"rate_hz": 1000}, stale_after_s=10) as r:
        s = r.sensor
        s.contact.wrench_fn = wave
        s.on_send = lambda seq, _t, w: sent.__setitem__(seq, w)
        s.faults.garbage_every = 2  # one garbage datagram after every 2nd record ...
        s.faults.garbage_budget = 1000  # ... 1000 in all, over ~2000 records
        await wait_until(lambda: s.garbage_sent == 1000, limit_s=15)
        s.stop_streaming()
        await wait_until(lambda: r.driver.last_sequence == max(sent), limit_s=5)
        got = r.samples.drain()
        d = r.driver
        assert s.garbage_sent == 1000 and len(sent) >= 2000 and not s.dropped
        assert [w.rdt_sequence for w in got] == sorted(sent) == list(range(1, len(sent) + 1))  # each exactly once
        for w in got:
            ref = sent[w.rdt_sequence]
            assert (w.fx, w.fy, w.fz, w.tx, w.ty, w.tz) == pytest.approx(ref, abs=1e-6)
        assert d.stats.rejected == 1000 and sum(d.incidents[k] for k in REJECT_KINDS) == 1000
        assert d.incidents[ft.K_BAD_LENGTH] > 0 and d.incidents[ft.K_OUT_OF_RANGE] > 0
        assert d.stats.received == len(sent) + 1000
        assert d.stats.lost == 0 and d.stats.late == 0 and r.samples.dropped == 0


@pytest.mark.anyio
async def test_foreign_duplicate_reordered_implausible_and_status_records() -> None:
    async with rig(stale_after_s=10) as r, await anyio.create_udp_socket(local_host=LOCAL) as intruder:
        s, d = r.sensor, r.driver
        await wait_until(lambda: (d.last_sequence or 0) >= 10)
        s.stall(60)  # quiet stream: what follows is deterministic
        await wait_until(lambda: d.last_sequence == s.last_sequence)
        last, received = s.last_sequence, d.stats.received
        r.samples.drain()
        await intruder.sendto(record(last + 1), LOCAL, d.local_port)  # right format, wrong sender
        s.send_raw(record(last))  # duplicate
        s.send_raw(record(last - 3))  # late
        s.send_raw(record(last + 1_000_000))  # further ahead than 7 kHz could reach
        s.send_raw(record(last + 1, status=0x8000_0001))  # sensor error: published, flagged
        s.send_raw(record(last + 3))  # one lost in between
        await wait_until(lambda: d.stats.received == received + 6)
        got = r.samples.drain()
        assert [w.rdt_sequence for w in got] == [last + 1, last + 3]
        assert got[0].status == 0x8000_0001 and not got[0].ok and got[1].ok
        assert got[1].fx == pytest.approx(1e-6) and got[1].tz == pytest.approx(6e-6)
        assert d.incidents[ft.K_FOREIGN] == 1 and d.incidents[ft.K_DUPLICATE] == 1
        assert d.incidents[ft.K_REORDERED] == 1 and d.incidents[ft.K_IMPLAUSIBLE] == 1
        assert d.incidents[ft.K_STATUS] == 1 and d.stats.status_errors == 1
        assert d.stats.lost == 1 and d.stats.late == 2 and d.stats.rejected == 2


# -- rdt_sequence near and across the uint32 limits -------------------------------------------

WRAP = 1 << 32


async def feed(r: Rig, seqs: list[int]) -> None:
    """Send these records from the sensor's socket and wait until the driver has read them all."""
    received = r.driver.stats.received
    for seq in seqs:
        r.sensor.send_raw(record(seq))
    await wait_until(lambda: r.driver.stats.received == received + len(seqs))


@pytest.mark.anyio
async def test_stale_stream_recovers_when_the_restart_comes_after_the_sequence_passed_2_31() -> None:
    # 2**31 records take ~25 days at 1 kHz. restart_interval_s is long so exactly one start request is re-sent.
    async with rig(stalled=True, stale_after_s=0.05, restart_interval_s=60, restart_grace_s=5) as r:
        s, d = r.sensor, r.driver
        await wait_until(lambda: s.client is not None)
        top = 3_000_000_000
        await feed(r, list(range(top, top + 5)))
        await next_status(r.status, StreamState.LIVE)
        await next_status(r.status, StreamState.STALE)  # the watchdog re-sends start at once
        await wait_until(lambda: s.requests["START"] == 1 + d.incidents[ft.K_RESTART_REQUEST])
        r.samples.drain()
        s.resume()  # the sensor streams the re-requested stream from 1
        await next_status(r.status, StreamState.LIVE, limit_s=2)
        got = await take(r.samples, 20)
        assert [w.rdt_sequence for w in got] == list(range(1, 21))
        assert d.incidents[ft.K_STREAM_RESTART] == 1 and d.incidents[ft.K_IMPLAUSIBLE] == 0
        assert d.stats.rejected == 0 and d.stats.lost == 0 and d.stats.late == 0


@pytest.mark.anyio
async def test_restart_just_below_2_32_is_a_new_stream_not_a_gap() -> None:
    async with rig(stalled=True, stale_after_s=10, restart_grace_s=5) as r:
        s, d = r.sensor, r.driver
        await wait_until(lambda: s.client is not None)
        await feed(r, [WRAP - 100, WRAP - 99, WRAP - 98])
        await d.restart()
        await wait_until(lambda: s.requests["START"] == 2)
        await feed(r, [1, 2, 3])
        assert [w.rdt_sequence for w in r.samples.drain()] == [WRAP - 100, WRAP - 99, WRAP - 98, 1, 2, 3]
        assert d.incidents[ft.K_STREAM_RESTART] == 1 and d.incidents[ft.K_GAP] == 0
        assert d.stats.lost == 0 and d.stats.rejected == 0 and d.stats.late == 0


@pytest.mark.anyio
@pytest.mark.parametrize("restart_pending", [False, True])
async def test_sequence_wrap_at_2_32_is_contiguous_and_loses_nothing(restart_pending: bool) -> None:
    async with rig(stalled=True, stale_after_s=10, restart_grace_s=5) as r:
        s, d = r.sensor, r.driver
        await wait_until(lambda: s.client is not None)
        await feed(r, [WRAP - 3, WRAP - 2])
        if restart_pending:  # a start request the sensor has not acted on (yet): its stream carries on
            await d.restart()
        await feed(r, [WRAP - 1, 0, 1, 2])
        assert [w.rdt_sequence for w in r.samples.drain()] == [WRAP - 3, WRAP - 2, WRAP - 1, 0, 1, 2]
        assert d.incidents[ft.K_STREAM_RESTART] == 0 and d.incidents[ft.K_GAP] == 0
        assert d.stats.lost == 0 and d.stats.rejected == 0 and d.stats.late == 0


@pytest.mark.anyio
async def test_driver_sends_stop_on_shutdown() -> None:
    sensor = SimFTSensor(SimFTConfig(host=LOCAL, port=0))
    async with anyio.create_task_group() as tg:
        port = await tg.start(sensor.serve)
        drv = FTSensor(FTConfig(host=LOCAL, port=port, bind_host=LOCAL))
        sub = drv.samples.subscribe()
        async with anyio.create_task_group() as inner:
            inner.start_soon(drv.run)
            await take(sub, 5)
            assert sensor.streaming
            inner.cancel_scope.cancel()
        with pytest.raises(RuntimeError):
            await drv.bias()  # not running yet/any more
        await wait_until(lambda: sensor.requests["STOP"] == 1 and not sensor.streaming)
        tg.cancel_scope.cancel()


# -- the simulated sensor on its own ---------------------------------------------------------


@pytest.mark.anyio
async def test_sim_ignores_and_counts_malformed_requests_and_honours_sample_count() -> None:
    sensor = SimFTSensor(SimFTConfig(host=LOCAL, port=0, rate_hz=2000))
    async with anyio.create_task_group() as tg, await anyio.create_udp_socket(local_host=LOCAL) as client:
        port = await tg.start(sensor.serve)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:  # asyncio will not send an empty datagram
            for bad in (b"", b"\x12\x34", encode_request(Command.START) + b"\x00",
                        b"\xbe\xef\x00\x02\x00\x00\x00\x00", encode_request(0x0077)):
                raw.sendto(bad, (LOCAL, port))
        await client.sendto(encode_request(Command.START, 5), LOCAL, port)
        with anyio.fail_after(5):
            seqs = [decode_record((await client.receive())[0])[0] for _ in range(5)]
        assert seqs == [1, 2, 3, 4, 5]
        # Loopback delivers in order, so the bad ones were seen (and ignored) before the start.
        assert sensor.incidents["bad_request"] == 5 and sensor.requests["START"] == 1
        await wait_until(lambda: not sensor.streaming)
        # A new stream starts at 1: had the first one gone past its 5 records, 6 would come first.
        await client.sendto(encode_request(Command.START, 1), LOCAL, port)
        with anyio.fail_after(5):
            data, addr = await client.receive()
        assert decode_record(data)[0] == 1 and addr[1] == port and sensor.sent == 6
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_sim_keeps_an_absolute_schedule() -> None:
    rate = 2000.0
    sensor = SimFTSensor(SimFTConfig(host=LOCAL, port=0, rate_hz=rate))
    sends: list[float] = []
    sensor.on_send = lambda _seq, t, _w: sends.append(t)
    async with anyio.create_task_group() as tg, await anyio.create_udp_socket(local_host=LOCAL) as client:
        port = await tg.start(sensor.serve)
        await client.sendto(encode_request(Command.START), LOCAL, port)
        await wait_until(lambda: len(sends) >= 1)
        t0 = perf_counter()
        await wait_until(lambda: perf_counter() - t0 >= 0.5)
        n, elapsed = len(sends), perf_counter() - sends[0]
        tg.cancel_scope.cancel()
    assert n <= rate * elapsed + 2  # never faster than the rate
    assert n >= 0.5 * rate * elapsed  # late wakes catch up with a burst (loose: loaded CI machines)


def test_sim_garbage_kinds_are_what_they_claim() -> None:
    sensor = SimFTSensor()
    captured: list[bytes] = []

    class FakeSock:
        def sendto(self, data: bytes, _addr: tuple[str, int]) -> None:
            captured.append(data)

    sensor._sock = FakeSock()  # type: ignore[assignment]
    sensor.client = (LOCAL, 1)
    for kind in ("empty", "short", "long", "request"):
        sensor.inject_garbage(kind=kind)
    sensor.inject_garbage(kind="out_of_range")
    assert [len(b) != RECORD_SIZE for b in captured[:4]] == [True] * 4
    assert decode_record(captured[4])[3] == 2**31 - 1
    with pytest.raises(ValueError):
        sensor.inject_garbage(kind="nonsense")


@pytest.mark.anyio
async def test_two_start_requests_in_flight_restart_the_numbering_twice_without_loss() -> None:
    """Under load the driver may re-request a stalled stream twice; the sensor restarts numbering each time."""
    async with rig(stalled=True, stale_after_s=10, restart_grace_s=5) as r:
        s, d = r.sensor, r.driver
        await wait_until(lambda: s.client is not None)
        await feed(r, [1, 2, 3])
        await d.restart()
        await d.restart()
        await wait_until(lambda: s.requests["START"] == 3)
        await feed(r, [1, 1, 2, 3])  # first restart sent one record, then the second restart began
        assert [w.rdt_sequence for w in r.samples.drain()] == [1, 2, 3, 1, 1, 2, 3]
        assert d.incidents[ft.K_STREAM_RESTART] == 2
        assert d.stats.lost == 0 and d.stats.late == 0 and d.stats.rejected == 0
        await feed(r, [3])  # with no restart pending, a repeat is a duplicate again
        assert d.stats.late == 1
