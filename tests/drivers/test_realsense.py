"""The RealSense driver on the real SDK: pyrealsense2's software device fed the simulator's depth frames.

No mock: `SoftwareRealSense` is an `rs.software_device` whose sensors take injected z16 (and rgb8) frames; the
driver opens it like a camera and its syncer, filters and align are the SDK's. Every wait is bounded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pyrealsense2 as rs
import pytest

from drivers.camera import CameraError, DepthFrame, FrameError, Intrinsics
from drivers.camera_replay import load_frame, save_frame
from drivers.realsense import CameraStatus, RealSenseFrameSource
from drivers.realsense_config import RealSenseConfig
from drivers.sim.camera import Box, render
from drivers.sim.realsense_device import SoftwareRealSense, quantise
from drivers.streams import Subscription

K = Intrinsics(width=320, height=240, fx=300.0, fy=300.0, cx=160.0, cy=120.0)
WAIT_S = 5.0  # one frame through the SDK takes milliseconds; this only bounds a broken test


def _cfg(**kw: Any) -> RealSenseConfig:
    return RealSenseConfig(depth_width=K.width, depth_height=K.height, **kw)


@asynccontextmanager
async def streaming(cam: SoftwareRealSense, cfg: RealSenseConfig) -> AsyncIterator[
        tuple[RealSenseFrameSource, Subscription[DepthFrame]]]:
    src = RealSenseFrameSource(cfg, device=cam.device)
    async with anyio.create_task_group() as tg:
        with anyio.fail_after(WAIT_S):
            await tg.start(src.run)
        with src.frames.subscription(overflow="keep") as sub:
            yield src, sub
        tg.cancel_scope.cancel()


async def _next(sub: Subscription[DepthFrame]) -> DepthFrame:
    with anyio.fail_after(WAIT_S):
        return await sub.receive()


async def _coloured(cam: SoftwareRealSense, sub: Subscription[DepthFrame], depth: np.ndarray,
                    rgb: np.ndarray) -> DepthFrame:
    """The first frame with colour: the SDK's syncer pairs the two streams once it has seen both, so the first
    framesets may come apart (skipped as unpaired); feed again until a pair comes through."""
    with anyio.fail_after(WAIT_S):
        while True:
            cam.feed(depth, rgb)
            with anyio.move_on_after(0.25):
                return await sub.receive()  # with color on only pairs are published


async def _feed(cam: SoftwareRealSense, sub: Subscription[DepthFrame], depth: np.ndarray,
                color: np.ndarray | None = None, **kw: Any) -> DepthFrame:
    cam.feed(depth, color, **kw)
    return await _next(sub)


def _scene() -> np.ndarray:
    """What the simulator renders: a tilted back plane, a box in front of it, no return at the top rows."""
    v, u = np.mgrid[0:K.height, 0:K.width]
    plane = (1.2 + 0.001 * u + 0.0005 * v).astype(np.float32)
    box, _ = render([Box((0.0, 0.0, 0.8), (0.2, 0.15, 0.1), label=1)], K)
    depth = np.where(np.isnan(box), plane, box).astype(np.float32)
    depth[:12] = np.nan
    return depth


@pytest.mark.anyio
@pytest.mark.parametrize("units", [0.001, 0.0001, 0.00025])
async def test_depth_reads_back_in_metres_at_the_devices_depth_units(units: float) -> None:
    cam = SoftwareRealSense(K, depth_units_m=units)
    sent = _scene()
    async with streaming(cam, _cfg()) as (src, sub):
        frame = await _feed(cam, sub, sent)
        assert src.depth_units_m == pytest.approx(units, rel=1e-6)
    assert frame.intrinsics == K  # from the stream profile, as declared
    assert frame.depth.dtype == np.float32 and frame.color is None
    missing = np.isnan(sent)
    np.testing.assert_array_equal(np.isnan(frame.depth), missing)  # 0 counts -> NaN, nowhere else
    err = np.abs(frame.depth[~missing] - sent[~missing])
    assert err.max() <= units / 2 + 1e-6  # quantisation only
    assert frame.depth[120, 160] == pytest.approx(0.75, abs=units)  # the box's front face


@pytest.mark.anyio
async def test_colour_passes_through_registered_to_the_depth() -> None:
    cam = SoftwareRealSense(K, color=K)
    depth = np.full((K.height, K.width), 0.9, np.float32)
    depth[:, :40] = np.nan
    rgb = np.zeros((K.height, K.width, 3), np.uint8)
    rgb[..., 0] = (np.arange(K.width) // 40 * 30)[None, :]  # bands 40 px wide
    rgb[..., 1] = 200
    async with streaming(cam, _cfg(color=True, color_width=K.width, color_height=K.height)) as (src, sub):
        frame = await _coloured(cam, sub, depth, rgb)
    assert frame.color is not None and frame.intrinsics == K
    # Same camera: the colour as sent, up to the SDK's reprojection rounding (a pixel) at the band edges.
    inside = (np.arange(K.width) % 40 >= 2) & (np.arange(K.width) % 40 <= 37) & (np.arange(K.width) >= 40)
    np.testing.assert_array_equal(frame.color[:, inside], rgb[:, inside])
    assert not frame.color[:, :40].any()  # no depth there: nowhere to put colour, black
    assert src.incidents["unpaired"] >= 0  # the framesets the syncer gave apart are counted, not published


@pytest.mark.anyio
async def test_align_depth_to_colour_gives_the_colour_cameras_geometry() -> None:
    ck = Intrinsics(width=160, height=120, fx=150.0, fy=150.0, cx=80.0, cy=60.0)
    cam = SoftwareRealSense(K, color=ck)
    depth = np.full((K.height, K.width), 1.1, np.float32)
    rgb = np.full((ck.height, ck.width, 3), 77, np.uint8)
    cfg = _cfg(color=True, color_width=ck.width, color_height=ck.height, align=True)
    async with streaming(cam, cfg) as (_, sub):
        frame = await _coloured(cam, sub, depth, rgb)
    assert frame.color is not None and frame.intrinsics == ck and frame.depth.shape == (ck.height, ck.width)
    assert np.nanmedian(frame.depth) == pytest.approx(1.1, abs=0.002)
    assert (frame.color == 77).all()


@pytest.mark.anyio
async def test_threshold_filter_drops_far_points_and_decimation_halves_the_image() -> None:
    cam = SoftwareRealSense(K)
    depth = np.full((K.height, K.width), 0.6, np.float32)
    depth[:, K.width // 2:] = 2.5  # the far half: beyond the threshold
    cfg = _cfg(filters=("threshold", "decimation"), threshold_max_m=1.5)
    async with streaming(cam, cfg) as (_, sub):
        frame = await _feed(cam, sub, depth)
    k = frame.intrinsics
    assert (k.width, k.height) == (K.width // 2, K.height // 2)
    assert (k.fx, k.fy) == pytest.approx((K.fx / 2, K.fy / 2))
    near = frame.depth[:, : k.width // 2 - 2]
    far = frame.depth[:, k.width // 2 + 2:]
    assert np.allclose(near, 0.6, atol=0.001) and np.isnan(far).all()


@pytest.mark.anyio
async def test_spatial_and_temporal_run_in_the_disparity_domain_on_a_stereo_sensor() -> None:
    cam = SoftwareRealSense(K, stereo_baseline_mm=50.0)
    depth = np.full((K.height, K.width), 0.8, np.float32)
    depth[100:110, 100:110] = np.nan  # a small hole the spatial filter may fill
    async with streaming(cam, _cfg(filters=("temporal", "spatial", "hole_filling"))) as (src, sub):
        frames = [await _feed(cam, sub, depth) for _ in range(3)]
    assert src.filter_chain == ("depth_to_disparity", "spatial", "temporal", "disparity_to_depth", "hole_filling")
    last = frames[-1].depth
    assert not np.isnan(last).any()  # hole filling leaves no hole
    assert np.allclose(last, 0.8, atol=0.01)  # and the round trip through disparity keeps the depth


@pytest.mark.anyio
async def test_gaps_in_the_frame_numbers_are_counted_as_dropped_frames() -> None:
    cam = SoftwareRealSense(K)
    depth = np.full((K.height, K.width), 1.0, np.float32)
    async with streaming(cam, _cfg()) as (src, sub):
        seqs = [(await _feed(cam, sub, depth, frame_number=n)).seq for n in (10, 11, 14, 15, 20)]
    assert seqs == [0, 1, 2, 3, 4]  # the published sequence stays contiguous
    assert src.dropped_frames == 2 + 4 and src.incidents["dropped"] == 2
    assert src.last_frame_number == 20


@pytest.mark.anyio
async def test_no_frames_for_stale_after_s_marks_the_camera_stale_until_frames_come_again() -> None:
    cam = SoftwareRealSense(K)
    depth = np.full((K.height, K.width), 1.0, np.float32)
    async with streaming(cam, _cfg(stale_after_s=0.1)) as (src, sub):
        with src.status.subscription() as status:
            await _feed(cam, sub, depth)
            assert (await _state(status)).live and not src.stale
            went_stale = await _state(status)  # nothing fed: the watchdog's change
            assert went_stale.stale and src.stale and src.incidents["stale"] == 1
            assert went_stale.t - (went_stale.last_frame_t or 0.0) >= 0.1
            await _feed(cam, sub, depth)
            assert (await _state(status)).live and not src.stale
            assert src.incidents["stale"] == 1 and src.incidents["late"] == 0  # a stale gap is not also late


async def _state(status: Subscription[CameraStatus]) -> CameraStatus:
    with anyio.fail_after(WAIT_S):
        return await status.receive()


@pytest.mark.anyio
async def test_a_camera_that_never_sends_is_stale_too() -> None:
    async with streaming(SoftwareRealSense(K), _cfg(stale_after_s=0.05)) as (src, _):
        with src.status.subscription() as status, anyio.fail_after(WAIT_S):
            while not (await status.receive()).stale:
                pass
    assert src.last_frame_t is None and src.incidents["stale"] == 1


@pytest.mark.anyio
async def test_a_frame_more_than_two_periods_after_the_last_is_counted_late() -> None:
    cam = SoftwareRealSense(K, fps=30)
    depth = np.full((K.height, K.width), 1.0, np.float32)
    async with streaming(cam, _cfg(stale_after_s=10.0)) as (src, sub):
        first = await _feed(cam, sub, depth)
        await anyio.sleep(0.1)  # three frame periods at 30 fps with nothing sent: the next one is late
        second = await _feed(cam, sub, depth)
    assert second.timestamp - first.timestamp >= 0.1
    assert src.incidents["late"] == 1 and src.dropped_frames == 0


@pytest.mark.anyio
async def test_an_unknown_serial_is_a_camera_error_naming_it() -> None:
    src = RealSenseFrameSource(RealSenseConfig(serial="000000000000"), context=rs.context())
    with pytest.raises(CameraError, match=r"no camera with serial '000000000000' \(cameras: none connected\)"):
        await src.run()
    assert src.frames.closed


@pytest.mark.anyio
async def test_a_given_device_with_another_serial_or_without_the_mode_is_a_camera_error() -> None:
    cam = SoftwareRealSense(K, serial="SIM-7")
    with pytest.raises(CameraError, match=r"serial SIM-7\), not serial 'SIM-8'"):
        await RealSenseFrameSource(_cfg(serial="SIM-8"), device=cam.device).run()
    with pytest.raises(CameraError) as err:
        await RealSenseFrameSource(RealSenseConfig(fps=60), device=cam.device).run()
    assert "no depth stream 640x480 z16 @ 60 fps; it offers: 320x240 z16 @ 30 fps" in str(err.value)
    with pytest.raises(CameraError, match="no color stream 640x480 rgb8 @ 30 fps; it offers: no color stream"):
        await RealSenseFrameSource(_cfg(color=True), device=cam.device).run()


@pytest.mark.anyio
async def test_cancelling_the_source_stops_the_sensors_and_ends_the_stream() -> None:
    cam = SoftwareRealSense(K)
    async with streaming(cam, _cfg()) as (src, sub):
        pass
    assert src.frames.closed and src.status.closed
    with anyio.fail_after(WAIT_S):
        assert [f async for f in sub] == []
    # Closed: the same device opens again (an open sensor would refuse: "Software device is streaming!").
    async with streaming(cam, _cfg()) as (_, sub2):
        assert (await _feed(cam, sub2, np.ones((K.height, K.width), np.float32))).seq == 0


def test_quantise_maps_missing_and_out_of_range_depth_to_no_return() -> None:
    z = quantise(np.array([[np.nan, -1.0, 0.0, 0.0004, 0.75, 70.0]], np.float32), 0.001)
    assert z.tolist() == [[0, 0, 0, 0, 750, 0]]


def test_a_frame_carries_an_optional_colour_image_of_its_size(tmp_path: Path) -> None:
    depth = np.ones((K.height, K.width), np.float32)
    rgb = np.zeros((K.height, K.width, 3), np.uint8)
    rgb[5, 7] = (1, 2, 3)
    assert DepthFrame(0, 0.0, K, depth).color is None
    with pytest.raises(FrameError, match="uint8"):
        DepthFrame(0, 0.0, K, depth, rgb.astype(np.float32))
    with pytest.raises(FrameError, match=r"color shape \(240, 320\) does not match"):
        DepthFrame(0, 0.0, K, depth, rgb[..., 0])
    back = load_frame(save_frame(tmp_path, DepthFrame(3, 1.5, K, depth, rgb)))
    assert back.color is not None and back.color.tolist() == rgb.tolist()
    assert load_frame(save_frame(tmp_path / "plain", DepthFrame(4, 1.5, K, depth))).color is None


class CountedOpens:
    """`SdkStream` as the driver opens it, counted; opens listed in `fail` raise (the camera unplugged), and
    `opened` is set once `until` opens have been tried."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, until: int, fail: tuple[int, ...] = ()) -> None:
        import drivers.realsense as realsense

        self.real, self.until, self.fail = realsense.SdkStream, until, fail
        self.opens = 0
        self.opened = anyio.Event()
        monkeypatch.setattr(realsense, "SdkStream", self)

    def __call__(self, *args: Any) -> Any:  # in the driver's worker thread
        self.opens += 1
        try:
            if self.opens in self.fail:
                raise CameraError("RealSense: no camera with serial 'SIM-RS-0001' (cameras: none connected)")
            return self.real(*args)
        finally:
            if self.opens == self.until:
                anyio.from_thread.run_sync(self.opened.set)


@pytest.mark.anyio
async def test_a_camera_stale_for_reopen_after_s_is_closed_and_opened_again_and_streams(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cam = SoftwareRealSense(K)
    opens = CountedOpens(monkeypatch, until=2)
    depth = np.full((K.height, K.width), 1.0, np.float32)
    async with streaming(cam, _cfg(stale_after_s=0.05, reopen_after_s=0.1)) as (src, sub):
        await _feed(cam, sub, depth)
        with anyio.fail_after(WAIT_S):
            await opens.opened.wait()  # silent: stale, then closed and opened again
        assert src.stale and src.incidents["stale"] == 1 and src.incidents["reopen"] == 1
        again = await _feed_until_taken(cam, sub, depth)  # the reopened sensors take frames again
        assert not src.stale and again.seq == 1 and src.incidents["reopen_failed"] == 0
        assert src.dropped_frames == 0  # frame numbers start afresh after a reopen: no gap counted


@pytest.mark.anyio
async def test_a_camera_that_cannot_be_opened_again_is_tried_every_reopen_after_s(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cam = SoftwareRealSense(K)
    opens = CountedOpens(monkeypatch, until=4, fail=(2, 3))
    async with streaming(cam, _cfg(stale_after_s=0.05, reopen_after_s=0.05)) as (src, sub):
        with anyio.fail_after(WAIT_S):
            await opens.opened.wait()
        assert (await _feed_until_taken(cam, sub, np.ones((K.height, K.width), np.float32))).seq == 0  # plugged in
        assert src.incidents["reopen"] == 1 and src.incidents["reopen_failed"] == 2


async def _feed_until_taken(cam: SoftwareRealSense, sub: Subscription[DepthFrame], depth: np.ndarray) -> DepthFrame:
    """Feed until a frame comes through: a sensor being reopened drops what it is fed."""
    with anyio.fail_after(WAIT_S):
        while True:
            cam.feed(depth)
            with anyio.move_on_after(0.05):
                return await sub.receive()
