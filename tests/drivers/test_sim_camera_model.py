"""The simulated EOAT camera as a camera gives it (issue 13.1): structured-light depth, procedural appearance,
per-frame lighting, and ground truth kept apart from what the controller receives."""

from __future__ import annotations

import dataclasses
import re
import struct
import typing
from pathlib import Path

import anyio
import numpy as np
import pytest

from drivers.camera import DepthFrame, Intrinsics
from drivers.sim.appearance import PATTERN_NAMES, Look, product_look, stable_seed
from drivers.sim.camera import Box
from drivers.sim.camera_view import FrameTruth, SimEoatCamera, capture, render_training_view
from drivers.sim.lighting import Lighting
from drivers.sim.raycast import cast
from drivers.sim.sample_dump import dump_sample
from drivers.sim.sensor_model import StructuredLight
from drivers.sim.world import Bin, Item, PlacedItem, generate_bin
from drivers.sim.world_render import BAND, ITEM, WALL, CameraPose, render_bin
from statecharts.engine import VirtualClock

K = Intrinsics.from_fov(320, 240)
SENSOR = StructuredLight()
WARM = Lighting(0.7, 3000.0, (0.4, -0.3, 0.87), 0.25)
COLD = Lighting(1.2, 6800.0, (-0.3, 0.2, 0.93), 0.4)


def _bin(*items: tuple[int, str, tuple[float, float, float], tuple[float, float, float]],
         band_height_mm: float | None = None) -> Bin:
    placed = [PlacedItem(Item(i, pid, size, 0.5), pos) for i, pid, size, pos in items]
    return Bin("b", 450.0, 300.0, 350.0, band_height_mm, items=placed)


def _plane(z: float, k: Intrinsics = K) -> tuple[np.ndarray, np.ndarray]:
    s = cast([Box((0.0, 0.0, z + 0.005), (10.0, 10.0, 0.01))], k)
    return s.depth, s.cos_incidence


def _eroded(mask: np.ndarray, n: int = 3) -> np.ndarray:
    out = mask.copy()
    for _ in range(n):
        out[1:-1, 1:-1] &= out[:-2, 1:-1] & out[2:, 1:-1] & out[1:-1, :-2] & out[1:-1, 2:]
        out[[0, -1], :] = False
        out[:, [0, -1]] = False
    return out


# ------------------------------------------------------------------------------------------ depth model


def test_noise_sigma_grows_with_the_square_of_range() -> None:
    rng = np.random.default_rng(1)
    stds = []
    for z in (0.3, 0.8):
        depth, cos = _plane(z)
        measured = SENSOR.apply(depth, cos, np.full(depth.shape, 0.5), K, rng)
        centre = measured[90:150, 120:200]  # near the axis: cos ~ 1, z ~ constant
        assert np.isnan(centre).mean() < 0.01
        stds.append(float(np.nanstd(centre - depth[90:150, 120:200])))
        assert stds[-1] == pytest.approx(float(SENSOR.sigma_m(z, K.fx)), rel=0.1)
    assert stds[1] > 4 * stds[0]


def test_quantised_to_the_depth_unit() -> None:
    for unit in (0.001, 0.0001):
        depth, cos = _plane(0.42)
        d = StructuredLight(depth_unit_m=unit).apply(depth, cos, np.full(depth.shape, 0.5), K,
                                                    np.random.default_rng(2))
        counts = d[np.isfinite(d)].astype(np.float64) / unit
        assert np.abs(counts - np.rint(counts)).max() < 1e-2
        assert len(np.unique(np.rint(counts))) > 3  # noise spreads over several units


def test_steep_surfaces_lose_returns() -> None:
    # A long slab beside the optical axis: its -x face is seen at a grazing angle, its front face head on.
    s = cast([Box((0.08, 0.0, 0.65), (0.04, 0.4, 0.7))], K)
    d = SENSOR.apply(s.depth, s.cos_incidence, np.full(s.depth.shape, 0.5), K, np.random.default_rng(3))
    theta = np.degrees(np.arccos(np.clip(s.cos_incidence, 0, 1)))
    inner = _eroded(s.hit)
    grazing = inner & (theta > SENSOR.steep_end_deg)
    head_on = inner & (theta < SENSOR.steep_start_deg)
    assert grazing.sum() > 200 and head_on.sum() > 200
    assert np.isnan(d[grazing]).all()
    assert np.isnan(d[head_on]).mean() < 0.02


def test_dark_surfaces_lose_returns() -> None:
    depth, cos = _plane(0.35)
    rng = np.random.default_rng(4)
    dark = SENSOR.apply(depth, cos, np.full(depth.shape, 0.01), K, rng)
    bright = SENSOR.apply(depth, cos, np.full(depth.shape, 0.5), K, rng)
    assert np.isnan(dark).mean() > 0.95
    assert np.isnan(bright).mean() < 0.02


def test_a_dark_product_loses_returns_in_the_camera_view() -> None:
    dark = _find("P", lambda lk: lk.ir_albedo < 0.012)
    bright = _find("P", lambda lk: lk.ir_albedo > 0.5)
    b = _bin((1, dark, (120.0, 100.0, 80.0), (40.0, 0.0, 10.0)), (2, bright, (120.0, 100.0, 80.0), (250.0, 0.0, 10.0)))
    frame, truth = render_training_view(b, K, rng=5)
    for item_id, lo, hi in ((1, 0.9, 1.0), (2, 0.0, 0.1)):
        on = _eroded(truth.instance == item_id)
        assert on.sum() > 300
        assert lo <= np.isnan(frame.depth[on]).mean() <= hi


def test_depth_edges_and_projector_shadows_lose_returns() -> None:
    near, far = 0.35, 0.7
    scene = [Box((0.0, 0.0, near + 0.04), (0.1, 0.1, 0.08)), Box((0.0, 0.0, far + 0.005), (10.0, 10.0, 0.01))]
    s = cast(scene, K)
    ir = np.full(s.depth.shape, 0.5)
    row = 120
    fg = np.flatnonzero(s.box[row] == 0)
    left, right = int(fg[0]), int(fg[-1])
    no_shadow = StructuredLight(shadows=False, dropout=0.0).apply(s.depth, s.cos_incidence, ir, K,
                                                                   np.random.default_rng(6))
    # The pixels on either side of the jump are removed, the surfaces a few pixels away are kept.
    for col in (left - 1, left, right, right + 1):
        assert np.isnan(no_shadow[row - 20:row + 20, col]).all()
    for col in (left - 4, left + 3, right - 3, right + 4):
        assert not np.isnan(no_shadow[row - 20:row + 20, col]).any()
    shadowed = StructuredLight(dropout=0.0).apply(s.depth, s.cos_incidence, ir, K, np.random.default_rng(6))
    width = K.fx * SENSOR.baseline_m * (1 / near - 1 / far)  # the projector is to the right: shadow on the left
    assert np.isnan(shadowed[row, int(left - width + 2):left]).all()
    assert not np.isnan(shadowed[row, int(left - width - 4):int(left - width - 1)]).any()
    assert not np.isnan(shadowed[row, right + 3:right + 8]).any()


# ------------------------------------------------------------------------------------------- the view


def test_the_same_seed_gives_the_same_frame() -> None:
    b = generate_bin(7, density=0.8)
    a1, a2, c = (capture(b, K, rng=seed) for seed in (11, 11, 12))
    assert a1.color is not None and a2.color is not None and c.color is not None
    assert np.array_equal(a1.depth, a2.depth, equal_nan=True) and np.array_equal(a1.color, a2.color)
    assert not np.array_equal(a1.depth, c.depth, equal_nan=True) and not np.array_equal(a1.color, c.color)


def test_lighting_changes_the_image_not_the_depth() -> None:
    b = generate_bin(8, density=0.8)
    f1, t1 = render_training_view(b, K, rng=3, lighting=WARM)
    f2, t2 = render_training_view(b, K, rng=3, lighting=COLD)
    assert f1.color is not None and f2.color is not None
    assert np.abs(f1.color.astype(int) - f2.color.astype(int)).mean() > 10
    assert np.array_equal(f1.depth, f2.depth, equal_nan=True)
    assert np.array_equal(t1.depth_m, t2.depth_m, equal_nan=True) and np.array_equal(t1.cls, t2.cls)
    # Unless given, every frame draws its own light.
    assert render_training_view(b, K, rng=3)[1].lighting != render_training_view(b, K, rng=4)[1].lighting


def _crop(frame: DepthFrame, truth: FrameTruth, item_id: int, rows: slice, cols: slice) -> np.ndarray:
    assert frame.color is not None
    assert (truth.instance[rows, cols] == item_id).all()
    x = frame.color[rows, cols].astype(np.float64)
    return (x - x.mean(axis=(0, 1))) / (x.std(axis=(0, 1)) + 1e-9)


def _front_window(truth: FrameTruth, item_id: int) -> tuple[slice, slice]:
    rr, cc = np.nonzero(_eroded(truth.instance == item_id, 4))
    return slice(int(rr.min()), int(rr.max()) + 1), slice(int(cc.min()), int(cc.max()) + 1)


def _find(prefix: str, want: typing.Callable[[Look], bool]) -> str:
    """The first product id prefix000, prefix001, ... whose look `want`s (ids are fixed: not flaky)."""
    return next(pid for pid in (f"{prefix}{i:03d}" for i in range(500)) if want(product_look(pid)))


PATTERNED = _find("P", lambda lk: PATTERN_NAMES[lk.pattern] == "checks" and lk.ir_albedo > 0.2)


def test_a_product_looks_the_same_in_every_frame_and_bin() -> None:
    size, pos = (140.0, 110.0, 80.0), (150.0, 160.0, 10.0)  # above the band
    alone = _bin((1, PATTERNED, size, pos))
    crowded = _bin((7, PATTERNED, size, pos), (8, "OTHER-1", (100.0, 140.0, 90.0), (20.0, 0.0, 0.0)),
                   (9, "OTHER-2", (120.0, 90.0, 60.0), (300.0, 0.0, 50.0)))
    f1, t1 = render_training_view(alone, K, rng=1, lighting=WARM)
    f2, t2 = render_training_view(crowded, K, rng=2, lighting=COLD)
    rows, cols = _front_window(t1, 1)
    a, b = _crop(f1, t1, 1, rows, cols), _crop(f2, t2, 7, rows, cols)
    assert (a * b).mean() > 0.9  # per-channel normalised correlation: same pattern and mark
    assert t1.product_ids == {1: PATTERNED} and t2.product_ids[7] == PATTERNED


def test_different_products_look_different() -> None:
    size, pos = (140.0, 110.0, 80.0), (150.0, 160.0, 10.0)
    other = _find("Q", lambda lk: lk.pattern != product_look(PATTERNED).pattern)
    f1, t1 = render_training_view(_bin((1, PATTERNED, size, pos)), K, rng=1, lighting=WARM)
    f2, t2 = render_training_view(_bin((1, other, size, pos)), K, rng=1, lighting=WARM)
    rows, cols = _front_window(t1, 1)
    assert (_crop(f1, t1, 1, rows, cols) * _crop(f2, t2, 1, rows, cols)).mean() < 0.5
    looks = [product_look(f"B0{i:08d}") for i in range(60)]
    assert len({tuple(np.round(lk.base, 6)) for lk in looks}) == 60
    assert len({lk.pattern for lk in looks}) == 5  # every pattern occurs
    assert product_look("B012345678").glyphs is not None
    assert np.array_equal(product_look("B012345678").base, product_look("B012345678").base)
    assert stable_seed("B012345678") == 15320453631268828357  # not Python's per-process hash


def test_the_band_is_drawn_over_the_items() -> None:
    pid = _find("W", lambda lk: PATTERN_NAMES[lk.pattern] == "plain" and lk.base.min() > 0.5)
    b = _bin((1, pid, (250.0, 250.0, 100.0), (100.0, 0.0, 20.0)))
    frame, truth = render_training_view(b, K, rng=9, lighting=Lighting())
    assert frame.color is not None
    on_band = (truth.cls == BAND) & (truth.instance_through_band == 1)
    off_band = _eroded(truth.instance == 1)
    lum = frame.color.astype(np.float64).mean(axis=2)
    assert on_band.sum() > 200
    assert truth.band_alpha[on_band].min() >= 0.2 and truth.band_alpha[on_band].max() <= 0.8
    assert lum[on_band].mean() < lum[off_band].mean() - 40  # darker where the dark band lies over it
    assert lum[on_band].mean() > 25  # but the item shows through
    assert lum[on_band].std() > 5  # the knit's density varies
    # Depth: the band's dense middle returns the band, its open edges the item behind it.
    d, ideal = frame.depth[on_band], truth.depth_m[on_band]
    band_z, item_z = float(ideal.max()), float(render_bin(b, K).depth_m[truth.instance == 1].min())
    assert item_z > band_z + 0.02
    assert np.count_nonzero(np.abs(d - band_z) < 0.003) > 50
    assert np.count_nonzero(np.abs(d - item_z) < 0.003) > 50


def test_truth_is_the_renderers_labels() -> None:
    for seed in (1, 2):
        b = generate_bin(seed, density=0.9)
        frame, truth = render_training_view(b, K, rng=seed)
        view = render_bin(b, K)
        assert np.array_equal(truth.cls, view.cls) and np.array_equal(truth.instance, view.instance)
        assert np.array_equal(truth.depth_m, view.depth_m, equal_nan=True)
        assert truth.item_ids == tuple(view.visible_item_ids())
        assert truth.product_ids == {p.item_id: p.item.product_id for p in b.items}
        assert set(truth.visible_fraction) == set(truth.product_ids)
        assert all(0.0 <= f <= 1.0 for f in truth.visible_fraction.values())
        assert all(truth.visible_fraction[i] > 0 for i in truth.item_ids)
        assert {int(c) for c in np.unique(truth.cls)} <= {0, WALL, BAND, ITEM}
        assert np.array_equal(frame.depth, capture(b, K, rng=seed).depth, equal_nan=True)


def test_the_controller_side_frame_has_no_labels() -> None:
    names = {f.name for f in dataclasses.fields(DepthFrame)}
    assert names == {"seq", "timestamp", "intrinsics", "depth", "color"}
    assert not [n for n in names if re.search(r"label|instance|cls|class|truth|mask|item|product|segment", n)]
    assert typing.get_type_hints(capture)["return"] is DepthFrame
    frame = capture(generate_bin(3, density=0.7), K, rng=1, seq=4, timestamp=2.5)
    assert type(frame) is DepthFrame and frame.seq == 4 and frame.timestamp == 2.5
    assert frame.color is not None and frame.color.shape == (K.height, K.width, 3)
    assert not hasattr(frame, "__dict__")  # slots: nothing can ride along on a frame
    with pytest.raises((AttributeError, TypeError)):
        frame.labels = np.zeros(1)  # type: ignore[attr-defined]


def test_the_sim_eoat_camera_publishes_frames_with_colour() -> None:
    b = generate_bin(4, density=0.6)
    facing: list[tuple[Bin, CameraPose] | None] = [None, (b, CameraPose())]
    cam = SimEoatCamera(lambda: facing[-1], K, rate_hz=10.0, seed=5, threaded=False)

    async def main() -> list[DepthFrame]:
        sub = cam.subscribe()
        async with anyio.create_task_group() as tg:
            await tg.start(cam.run)
            frames = [await sub.receive() for _ in range(2)]
            facing.append(None)  # the arm moves away: no frames
            await anyio.sleep(0.5)
            tg.cancel_scope.cancel()
        return frames

    frames = VirtualClock().run(main)
    assert [f.seq for f in frames] == [0, 1] and np.allclose(np.diff([f.timestamp for f in frames]), 0.1)
    colours = [f.color for f in frames if type(f) is DepthFrame and f.color is not None]
    assert len(colours) == 2 and not np.array_equal(colours[0], colours[1])  # each frame its own light and noise
    assert cam.next_seq() == 2


def test_sample_dump_writes_pngs(tmp_path: Path) -> None:
    out = dump_sample(tmp_path / "s", generate_bin(2, density=0.5), K, rng=1)
    for name in ("color.png", "depth.png", "classes.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", data[16:24]) == (K.width, K.height)
    with np.load(out / "sample.npz") as z:
        assert z["color"].shape == (K.height, K.width, 3) and z["cls"].dtype == np.uint8
