"""Depth frames: validation, the box renderer, 10 Hz conflation, record and replay."""

from __future__ import annotations

from pathlib import Path

import anyio
import numpy as np
import pytest

from drivers.camera import DepthFrame, FrameError, Intrinsics
from drivers.camera_replay import ReplayDepthSource, load_frame, save_frame
from drivers.sim.camera import Box, SimDepthCamera, render
from statecharts.engine import VirtualClock

K = Intrinsics(width=64, height=48, fx=50.0, fy=50.0, cx=32.0, cy=24.0)


def test_box_in_front_of_the_camera_renders_its_front_face_depth() -> None:
    depth, labels = render([Box((0.0, 0.0, 1.0), (0.2, 0.2, 0.1), label=7)], K)
    assert depth[24, 32] == pytest.approx(0.95)  # centre ray hits the front face z = 1 - 0.05
    # The face spans x in [-0.1, 0.1] at z = 0.95: |u - cx| <= 0.1 / 0.95 * fx = 5.26 px.
    row = ~np.isnan(depth[24])
    assert np.flatnonzero(row).tolist() == list(range(27, 38))
    assert set(np.unique(labels[~np.isnan(depth)])) == {7}
    assert np.isnan(depth[0, 0]) and labels[0, 0] == 0


def test_nearer_box_occludes_farther_one_and_side_faces_are_seen() -> None:
    far = Box((0.0, 0.0, 2.0), (2.0, 2.0, 0.2), label=1)
    near = Box((0.0, 0.0, 0.8), (0.1, 0.1, 0.1), label=2)
    depth, labels = render([far, near], K)
    assert labels[24, 32] == 2 and depth[24, 32] == pytest.approx(0.75)
    assert labels[10, 10] == 1 and depth[10, 10] == pytest.approx(1.9)
    off_axis = Box((0.3, 0.0, 1.0), (0.1, 0.1, 0.4), label=3)  # its left side is visible
    d2, l2 = render([off_axis], K)
    side = (l2 == 3) & (d2 > 0.81)
    assert side.any()


def test_intrinsics_and_frames_are_validated() -> None:
    with pytest.raises(FrameError, match="focal lengths"):
        Intrinsics(64, 48, 0.0, 50.0, 32.0, 24.0)
    with pytest.raises(FrameError, match="principal point"):
        Intrinsics(64, 48, 50.0, 50.0, 100.0, 24.0)
    with pytest.raises(FrameError, match="float32"):
        DepthFrame(0, 0.0, K, np.zeros((48, 64)))
    with pytest.raises(FrameError, match="shape"):
        DepthFrame(0, 0.0, K, np.zeros((10, 10), np.float32))
    with pytest.raises(FrameError, match="depth values"):
        DepthFrame(0, 0.0, K, np.full((48, 64), -1.0, np.float32))
    with pytest.raises(FrameError, match="non-positive size"):
        render([Box((0, 0, 1), (0.1, 0.0, 0.1))], K)


def test_sim_camera_publishes_at_10_hz_and_a_slow_consumer_gets_the_newest_frame() -> None:
    cam = SimDepthCamera([Box((0, 0, 1), (0.2, 0.2, 0.2))], K, threaded=False)

    async def main() -> tuple[list[float], list[int], int]:
        sub = cam.subscribe()
        async with anyio.create_task_group() as tg:
            await tg.start(cam.run)
            times: list[float] = []
            for _ in range(5):
                times.append((await sub.receive()).timestamp)
            await anyio.sleep(0.95)  # busy elsewhere while frames 5..13 arrive
            newest = [(await sub.receive()).seq]
            tg.cancel_scope.cancel()
        return times, newest, sub.dropped

    times, newest, dropped = VirtualClock().run(main)
    assert np.allclose(np.diff(times), 0.1)
    assert newest == [13] and dropped == 8


def test_stalled_camera_publishes_nothing_then_resumes() -> None:
    cam = SimDepthCamera([], K, threaded=False)

    async def main() -> list[float]:
        sub = cam.subscribe()
        async with anyio.create_task_group() as tg:
            await tg.start(cam.run)
            await sub.receive()
            cam.stall(0.55)
            t0 = anyio.current_time()
            await sub.receive()
            tg.cancel_scope.cancel()
        return [anyio.current_time() - t0]

    assert VirtualClock().run(main)[0] == pytest.approx(0.6)


def test_noise_is_seeded_and_dropout_makes_nan() -> None:
    scene = [Box((0, 0, 1), (2, 2, 0.2))]
    a = SimDepthCamera(scene, K, noise_m=0.002, dropout=0.1, seed=3).render_now()[0]
    b = SimDepthCamera(scene, K, noise_m=0.002, dropout=0.1, seed=3).render_now()[0]
    assert np.array_equal(a, b, equal_nan=True)
    assert 0.05 < np.isnan(a).mean() < 0.15


def test_record_and_replay_round_trip_and_bad_files_are_skipped(tmp_path: Path) -> None:
    cam = SimDepthCamera([Box((0, 0, 1), (0.2, 0.2, 0.2))], K, noise_m=0.001)
    for seq in range(4):
        depth, _ = cam.render_now()
        save_frame(tmp_path, DepthFrame(seq, 100.0 + 0.1 * seq, K, depth))
    (tmp_path / "frame_00000002.npz").write_bytes(b"not a zip")  # corrupt one recording
    np.savez(tmp_path / "frame_00000009.npz", depth=np.zeros((2, 2), np.float32))  # missing arrays
    assert load_frame(tmp_path / "frame_00000000.npz").timestamp == 100.0
    with pytest.raises(FrameError, match="not a readable"):
        load_frame(tmp_path / "frame_00000002.npz")
    source = ReplayDepthSource(tmp_path)

    async def main() -> list[tuple[int, float]]:
        sub = source.frames.subscribe(maxlen=100)
        async with anyio.create_task_group() as tg:
            await tg.start(source.run)
            t0 = anyio.current_time()
            got = [(f.seq, round(anyio.current_time() - t0, 6)) async for f in sub]
            tg.cancel_scope.cancel()
        return got

    got = VirtualClock().run(main)
    assert [s for s, _ in got] == [0, 1, 3]
    assert source.incidents["bad_frame"] == 2
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ReplayDepthSource(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no frame_"):
        ReplayDepthSource(_empty(tmp_path))


def _empty(tmp_path: Path) -> Path:
    empty = tmp_path / "empty"
    empty.mkdir()
    return empty
