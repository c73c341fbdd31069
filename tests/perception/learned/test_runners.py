"""The runners on tiny ONNX models: preprocessing, postprocessing into the pipeline's types, batching, threads."""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import anyio.from_thread
import anyio.lowlevel
import numpy as np
import pytest

from perception.cloud import segments_from_labels
from perception.common import PerceptionError
from perception.eligibility import Eligibility
from perception.learned.contracts import CROP, EMBED_DIM, INPUT_H, INPUT_W, MASK_H, MASK_W, QUERIES, ModelError
from perception.learned.embedding import Embedder, l2_normalise, match
from perception.learned.instances import decode_instances
from perception.learned.pick_model import PickModel
from perception.learned.preprocess import (
    DEPTH_MAX_M,
    RGB_MEAN,
    RGB_STD,
    crop_box,
    crop_tensor,
    frame_tensor,
    resize_bilinear,
    resize_nearest,
)
from perception.learned.segmenter import BACKGROUND, BAND, ITEM, StowSegmenter
from perception.learned.session import SessionSettings, check_provider, open_model
from tests.perception.learned import models as m

H, W = 240, 320  # the simulated EOAT camera's frame
K = (W, H, 228.5, 228.5, W / 2, H / 2)


def _frame(depth_m: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    return np.full((H, W, 3), 128, np.uint8), np.full((H, W), depth_m, np.float32)


def _masks(*boxes: tuple[int, int, int, int]) -> np.ndarray:
    """Mask logits (Q, 72, 96): query i is +5 inside boxes[i] (r0, c0, r1, c1 on the mask grid), -5 elsewhere."""
    out = np.full((QUERIES, MASK_H, MASK_W), -5.0, np.float32)
    for q, (r0, c0, r1, c1) in enumerate(boxes):
        out[q, r0:r1, c0:c1] = 5.0
    return out


def _logits(*scores: float) -> np.ndarray:
    """pred_logits (Q, 2) giving query i the object probability scores[i]; the rest are no-object (p 0.0003)."""
    out = np.tile(np.array([[-4.0, 4.0]], np.float32), (QUERIES, 1))
    for q, p in enumerate(scores):
        out[q] = (np.log(p / (1 - p)), 0.0)
    return out


# -- preprocessing ----------------------------------------------------------------------------------------


def test_frame_tensor_normalises_rgb_and_keeps_depth_in_metres() -> None:
    rgb, depth = _frame()
    rgb[:, :, 0] = 255
    depth[:10] = np.nan
    depth[-10:] = 7.0
    x = frame_tensor(rgb, depth)
    assert x.shape == (1, 4, INPUT_H, INPUT_W) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0], (1.0 - RGB_MEAN[0]) / RGB_STD[0], rtol=1e-5)
    np.testing.assert_allclose(x[0, 1], (128 / 255 - RGB_MEAN[1]) / RGB_STD[1], rtol=1e-5)
    assert (x[0, 3, :5] == 0).all() and (x[0, 3, -5:] == DEPTH_MAX_M).all()  # no return -> 0; far -> clipped
    np.testing.assert_allclose(x[0, 3, 20:-20], 0.6)
    with pytest.raises(PerceptionError, match="does not match the depth image"):
        frame_tensor(rgb[:-1], depth)
    with pytest.raises(PerceptionError, match="uint8"):
        frame_tensor(rgb.astype(np.float32), depth)


def test_resizing_keeps_pixel_centres() -> None:
    img = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    np.testing.assert_allclose(resize_bilinear(img, 3, 4), img)  # same size: the identity
    ramp = resize_bilinear(np.arange(4, dtype=np.float32)[None, :].repeat(2, 0), 2, 8)
    np.testing.assert_allclose(ramp[0, 1:-1], (np.arange(1, 7) + 0.5) / 2 - 0.5)  # half-pixel centres
    assert ramp[0, 0] == 0 and ramp[0, -1] == 3  # clamped at the edges
    assert resize_nearest(np.arange(4).reshape(2, 2), 4, 4).tolist() == [[0, 0, 1, 1]] * 2 + [[2, 2, 3, 3]] * 2


def test_crops_are_square_around_the_mask_and_blank_off_it() -> None:
    rgb = np.zeros((H, W, 3), np.uint8)
    mask = np.zeros((H, W), bool)
    mask[100:140, 50:130] = True  # 40 x 80
    rgb[mask] = 255
    y0, x0, y1, x1 = crop_box(mask)
    assert (y1 - y0, x1 - x0) == pytest.approx((96.0, 96.0)) and ((y0 + y1) / 2, (x0 + x1) / 2) == (120, 90)
    crop = crop_tensor(rgb, mask)
    assert crop.shape == (3, CROP, CROP)
    white = (1 - RGB_MEAN[0]) / RGB_STD[0]
    assert crop[0, 32, 32] == pytest.approx(white) and crop[0, 2, 32] == 0.0  # item; off the mask: 0


# -- instance decoding ------------------------------------------------------------------------------------


def test_decode_drops_no_object_queries_orders_by_score_and_upsamples() -> None:
    masks = _masks((0, 0, 36, 48), (36, 48, 72, 96), (10, 10, 20, 20))
    dec = decode_instances(_logits(0.8, 0.95, 0.3), masks, (H, W), score_threshold=0.5)
    assert dec.queries == (1, 0) and dec.scores == pytest.approx((0.95, 0.8))
    assert dec.instance.shape == (H, W) and dec.instance.dtype == np.int32
    # Mask cells of 10/3 frame pixels; bilinear logits round the boxes' corners by a pixel.
    assert (dec.instance[121:, 161:] == 1).all() and (dec.instance[:119, :159] == 2).all()
    assert (dec.instance[:120, 160:] == 0).all() and (dec.instance[120:, :160] == 0).all()
    assert all(abs(n - 120 * 160) <= 4 for n in dec.pixels)


def test_overlapping_masks_go_to_the_higher_score_and_small_ones_are_dropped() -> None:
    masks = _masks((0, 0, 72, 60), (0, 40, 72, 96), (70, 94, 72, 96))
    masks[2, 71, 95] = 5.0
    dec = decode_instances(_logits(0.7, 0.9, 0.99), masks, (H, W), min_pixels=200)
    assert dec.queries == (1, 0)  # query 2 won its 2 x 2 mask cells (under 200 frame pixels): dropped, left 0
    assert (dec.instance[-5:, -5:] == 0).all()
    overlap = dec.instance[:, int(45 * W / MASK_W):int(58 * W / MASK_W)]
    assert (overlap == 1).all()
    assert (dec.instance[:, :int(38 * W / MASK_W)] == 2).all()
    with pytest.raises(PerceptionError, match="score_threshold"):
        decode_instances(_logits(0.7), masks, (H, W), score_threshold=1.0)


def _full_frame_reference(logits: np.ndarray, masks: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """The documented rule on the whole frame: the kept query (by rank) maximising score * sigmoid, or -1."""
    score = np.exp(logits[:, 0]) / np.exp(logits).sum(axis=1)
    keep = np.flatnonzero(score >= 0.5)
    keep = keep[np.argsort(-score[keep], kind="stable")]
    up = resize_bilinear(masks[keep], *hw)
    weight = np.where(up > 0, score[keep].astype(np.float32)[:, None, None] / (1 + np.exp(-up)), -1)
    return np.where(weight.max(axis=0) > 0, weight.argmax(axis=0), -1)


@pytest.mark.parametrize("hw", [(240, 320), (480, 640), (37, 50)])
def test_decoding_window_by_window_equals_the_rule_on_the_whole_frame(hw: tuple[int, int]) -> None:
    rng = np.random.default_rng(hw[0])
    masks = np.full((QUERIES, MASK_H, MASK_W), -3.0, np.float32)
    for q in range(QUERIES):
        r, c = rng.integers(0, MASK_H - 2), rng.integers(0, MASK_W - 2)
        masks[q, r : r + rng.integers(1, 30), c : c + rng.integers(1, 40)] = rng.uniform(0.1, 5)
    logits = np.zeros((QUERIES, 2), np.float32)
    logits[:, 0] = rng.uniform(-1, 4, QUERIES)
    dec = decode_instances(logits, masks, hw, min_pixels=1)
    owner = _full_frame_reference(logits, masks, hw)
    score = np.exp(logits[:, 0]) / np.exp(logits).sum(axis=1)
    ranked = [int(q) for q in np.argsort(-score, kind="stable") if score[q] >= 0.5]
    label_of_rank = np.zeros(len(ranked) + 1, np.int32)
    for label, q in enumerate(dec.queries, start=1):
        label_of_rank[ranked.index(q) + 1] = label
    np.testing.assert_array_equal(dec.instance, label_of_rank[owner + 1])
    assert len(dec.queries) >= 5


# -- segmenter and pick model -----------------------------------------------------------------------------


def test_stow_segmenter_classes_follow_the_input_channels_at_frame_size(tmp_path: Path) -> None:
    # sem_logits = the input pooled by 2: the argmax channel is R (background), G (bin), B (band) or depth (item).
    seg = StowSegmenter(open_model(m.write(tmp_path, "s.onnx", m.segmenter(
        logits=_logits(0.9), masks=_masks((18, 24, 54, 72)))), "segmenter"))
    rgb, depth = _frame(1.5)
    rgb[:] = 0
    rgb[:, : W // 4, 0] = 255  # left quarter red: background
    rgb[:, W // 4 : W // 2, 2] = 255  # second quarter blue: band (the depth 1.5 m still loses to 2.25)
    out = seg.segment(rgb, depth)
    assert out.classes.shape == (H, W) and out.classes.dtype == np.uint8
    assert (out.classes[:, 2 : W // 4 - 2] == BACKGROUND).all()
    assert (out.classes[:, W // 4 + 2 : W // 2 - 2] == BAND).all()
    assert (out.classes[:, W // 2 + 2 :] == ITEM).all()
    assert out.band_mask.sum() == (out.classes == BAND).sum()
    assert out.scores == {1: pytest.approx(0.9)}
    assert (out.instance[61:179, 81:239] == 1).all() and abs(out.instance.sum() - 120 * 160) <= 4
    segs = out.segments(depth, K)
    assert list(segs) == [1] and segs[1].size == out.instance.sum()  # the pipeline's Segment, from the learned mask


def test_pick_model_gives_a_status_per_instance_as_eligibility(tmp_path: Path) -> None:
    status = np.zeros((QUERIES, 4), np.float32)
    status[0] = (0, 3, 0, 0)  # free
    status[1] = (0, 0, 0, 2)  # blocked
    status[2] = (5, 0, 0, 0)  # not an item, but a no-object query: dropped
    model = PickModel(open_model(m.write(tmp_path, "p.onnx", m.pick(
        logits=_logits(0.9, 0.8, 0.1), masks=_masks((0, 0, 36, 48), (36, 48, 72, 96), (0, 48, 36, 96)),
        status=status)), "pick"))
    rgb, depth = _frame()
    depth[150:, 200:] = np.nan  # part of the blocked one has no depth
    out = model.segment(rgb, depth)
    assert [(i.label, i.status) for i in out.instances.values()] == [(1, "free"), (2, "blocked")]
    assert out.instances[1].status_probs[1] == pytest.approx(np.exp(3) / (np.exp(3) + 3))
    elig = out.eligibility(depth, K)
    assert set(elig) == {1, 2} and all(isinstance(e, Eligibility) for e in elig.values())
    assert elig[1].kind == "free" and elig[2].kind == "blocked" and elig[1].reason.startswith("status head: free")
    assert elig[1].pixels == np.count_nonzero(out.instance == 1) == out.instances[1].pixels
    assert elig[2].pixels == np.count_nonzero((out.instance == 2) & ~np.isnan(depth)) < out.instances[2].pixels
    segs = segments_from_labels(depth, out.instance, K)
    assert elig[2].bounds == (tuple(segs[2].lower.tolist()), tuple(segs[2].upper.tolist()))


def test_thresholds_come_from_the_argument_then_the_metadata(tmp_path: Path) -> None:
    meta = m.meta("pick", score_threshold="0.85")
    session = open_model(m.write(tmp_path, "p.onnx", m.pick(
        logits=_logits(0.9, 0.8), masks=_masks((0, 0, 36, 48), (36, 48, 72, 96)), metadata=meta)), "pick")
    rgb, depth = _frame()
    assert list(PickModel(session).segment(rgb, depth).instances) == [1]
    assert list(PickModel(session, score_threshold=0.5).segment(rgb, depth).instances) == [1, 2]


# -- embedding --------------------------------------------------------------------------------------------


@pytest.fixture
def embedder(tmp_path: Path) -> Embedder:
    return Embedder(open_model(m.write(tmp_path, "e.onnx", m.embedding()), "embedding"), max_batch=3)


def _scene() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    instance = np.zeros((H, W), np.int32)
    for label in range(1, 8):
        r, c = rng.integers(0, H - 40), rng.integers(0, W - 40)
        instance[r : r + rng.integers(10, 40), c : c + rng.integers(10, 40)] = label
    return rgb, instance


def test_embeddings_are_unit_vectors_and_batches_equal_single_runs(embedder: Embedder) -> None:
    rgb, instance = _scene()
    batched = embedder.embed_segments(rgb, instance)  # 7 crops in batches of 3, 3, 1
    assert sorted(batched) == list(range(1, 8))
    vectors = np.stack(list(batched.values()))
    assert vectors.shape == (7, EMBED_DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    single = Embedder(embedder.session, max_batch=1)
    for label, v in batched.items():
        np.testing.assert_allclose(single.embed(crop_tensor(rgb, instance == label)[None])[0], v, atol=1e-6)
    assert embedder.embed_segments(rgb, np.zeros_like(instance)) == {}
    with pytest.raises(PerceptionError, match="integer"):
        embedder.embed_segments(rgb, instance.astype(np.float32))


def test_identify_uses_the_models_threshold(embedder: Embedder) -> None:
    rgb, instance = _scene()
    segments = embedder.embed_segments(rgb, instance)
    refs = embedder.embed_images([rgb], [instance == 5])
    assert embedder.match_threshold == 0.8  # the test model's metadata
    got = embedder.identify(segments, refs)
    assert got.label == 5 and got.score == pytest.approx(1.0, abs=1e-5) and got.threshold == 0.8
    assert embedder.identify(segments, refs, threshold=0.99).threshold == 0.99


def test_reference_images_embed_whole_or_masked(embedder: Embedder) -> None:
    rgb, instance = _scene()
    refs = embedder.embed_images([rgb, rgb[:100]], [instance == 2, None])
    assert refs.shape == (2, EMBED_DIM)
    np.testing.assert_allclose(refs[0], embedder.embed_segments(rgb, instance)[2], atol=1e-6)
    assert embedder.embed_images([]).shape == (0, EMBED_DIM)


def test_match_takes_the_most_similar_segment_above_the_threshold() -> None:
    rng = np.random.default_rng(0)
    refs = l2_normalise(rng.standard_normal((3, 8)))
    near = l2_normalise(refs[1:2] + 0.05 * rng.standard_normal((1, 8)))[0]
    segments = {4: l2_normalise(rng.standard_normal((1, 8)))[0], 9: near}
    got = match(segments, refs, threshold=0.9)
    assert got.label == 9 and got.score == pytest.approx(float(near @ refs[1]))
    assert set(got.scores) == {4, 9} and got.scores[4] < got.score
    refused = match(segments, refs, threshold=0.9999)
    assert refused.label is None and refused.score == got.score
    assert match({}, refs, 0.5).label is None
    with pytest.raises(PerceptionError, match="dims"):
        match(segments, refs[:, :4], 0.5)


# -- sessions ---------------------------------------------------------------------------------------------


def test_settings_bound_threads_and_refuse_an_unavailable_provider(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"intra_op_threads must be an integer in \[1, 64\], got 0"):
        SessionSettings(intra_op_threads=0)
    with pytest.raises(ModelError, match=r"'NoSuch' is not available here \(available: .*CPUExecutionProvider"):
        check_provider("NoSuch")
    path = m.write(tmp_path, "e.onnx", m.embedding())
    with pytest.raises(ModelError, match="not available here"):
        open_model(path, "embedding", SessionSettings(provider="NoSuchExecutionProvider"))
    model = open_model(path, "embedding", SessionSettings(intra_op_threads=2))
    assert model.session.get_providers() == ["CPUExecutionProvider"]


@pytest.mark.anyio
async def test_the_event_loop_keeps_running_while_a_model_runs(tmp_path: Path) -> None:
    session = open_model(m.write(tmp_path, "p.onnx", m.pick(logits=_logits(0.9), masks=_masks((0, 0, 36, 48)))),
                         "pick")
    running, release = anyio.Event(), threading.Event()
    ort_run = session.session.run

    class Held:  # the onnxruntime session, held inside its run until the loop has ticked
        def run(self, *args: object) -> object:
            anyio.from_thread.run_sync(running.set)  # from the worker thread: the loop must be free to take it
            assert release.wait(10), "the event loop never ticked while the model ran"
            return ort_run(*args)

    session.session = Held()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        await running.wait()
        for _ in range(50):
            ticks += 1
            await anyio.lowlevel.checkpoint()
        release.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            out = await PickModel(session).segment_async(*_frame())
    assert ticks == 50 and list(out.instances) == [1]
