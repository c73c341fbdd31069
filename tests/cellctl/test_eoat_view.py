"""Issue 13, point 7: a real camera's frame of a bin is taken from the bin's view pose, and only a fresh one.

`ViewingCamera` against a stand-in live source (a Topic the test publishes on, stamped frames) and a stand-in
mover, on virtual time (`VirtualClock`): the frame handed out arrived `settle_s` after the view move ended; a
failed move, a stale camera, an ended stream or no fresh frame is a CameraError naming why.
"""

from __future__ import annotations

import anyio
import numpy as np
import pytest

from cellctl.workcells.eoat_view import LiveFrames, ViewingCamera, view_motion
from cellctl.workcells.pod_layout import BinFace, CurrentPod, PlcPod, PodLayoutError, bin_name
from drivers.camera import CameraError, DepthFrame, Intrinsics
from drivers.plc_nodes import BinLayout, BinSpec, PodState
from drivers.streams import Topic
from statecharts.engine.clock import VirtualClock
from statecharts.workcell import Motion, MotionOutcome, MotionResult, Primitive

K = Intrinsics.from_fov(32, 24)
POD = PodState(seq=1, pod_id="P7", face="A", layout=BinLayout(rows=1, columns=2, bins=(
    BinSpec(row=0, column=0, width_mm=230, height_mm=200, depth_mm=300),
    BinSpec(row=0, column=1, width_mm=330, height_mm=280, depth_mm=350))))


class Source:
    def __init__(self) -> None:
        self.frames: Topic[DepthFrame] = Topic("camera")
        self.stale = False
        self.seq = 0

    def publish(self, value: float) -> None:
        self.seq += 1
        self.frames.publish(DepthFrame(self.seq, anyio.current_time(), K, np.full((24, 32), value, np.float32)))


def _camera(source: Source, moves: list[Motion], *, outcome: MotionOutcome = MotionOutcome.DONE,
            move_s: float = 1.0) -> ViewingCamera:
    cam = ViewingCamera(source, PlcPod(POD), standoff_mm=400.0, settle_s=0.1, frame_timeout_s=0.5)

    async def move(m: Motion) -> MotionResult:
        moves.append(m)
        await anyio.sleep(move_s)
        return MotionResult(outcome=outcome, elapsed_s=move_s, detail="" if outcome is MotionOutcome.DONE else "x")

    cam.bind(move)
    return cam


async def _stream(source: Source, period: float = 1 / 30) -> None:
    while True:
        source.publish(1.0)
        await anyio.sleep(period)


def test_a_view_is_the_first_frame_that_arrived_settle_s_after_the_move() -> None:
    source, moves = Source(), []

    async def main() -> DepthFrame:
        cam = _camera(source, moves)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_stream, source)
            frame = await cam.capture_async(cam.layout.bin("P7-0B"))
            tg.cancel_scope.cancel()
        return frame

    frame = VirtualClock().run(main)
    assert frame.timestamp >= 1.1 - 1e-9  # the move took 1 s, then 0.1 s to settle: none taken while moving
    assert frame.timestamp < 1.1 + 1 / 30 + 1e-6  # and the first after that
    (m,) = moves
    assert m.primitive is Primitive.APPROACH and m.force_limit_n is not None
    assert m.params == {"bin": 1.0, "x": 165.0, "y": 140.0, "z": -400.0}


@pytest.mark.parametrize("case", ["move_fails", "stale", "silent", "ended"])
def test_no_current_frame_is_a_camera_error_saying_why(case: str) -> None:
    source, moves = Source(), []

    async def main() -> str:
        cam = _camera(source, moves, outcome=MotionOutcome.FORCE_LIMIT if case == "move_fails" else
                      MotionOutcome.DONE)
        source.stale = case == "stale"
        async with anyio.create_task_group() as tg:
            if case == "move_fails":
                tg.start_soon(_stream, source)
            if case == "ended":
                tg.start_soon(_close_after, source, 1.05)
            with pytest.raises(CameraError) as err:
                await cam.capture_async(cam.layout.bin("P7-0A"))
            tg.cancel_scope.cancel()
        assert cam.refused == 1 and cam.views == 0
        return str(err.value)

    text = VirtualClock().run(main)
    expected = {"move_fails": "the view move to P7-0A ended force_limit", "stale": "the EOAT camera is stale",
                "silent": "no frame of P7-0A within 0.5 s of the view move",
                "ended": "the EOAT camera's stream ended"}[case]
    assert expected in text
    assert len(moves) == (0 if case == "stale" else 1)  # a stale camera is not worth a move


async def _close_after(source: Source, t: float) -> None:
    await anyio.sleep(t)
    source.frames.close()


def test_capture_without_a_mover_is_refused() -> None:
    cam = ViewingCamera(Source(), PlcPod(POD))
    with pytest.raises(CameraError, match="no robot to move it"):
        cam.capture(BinFace("P7-0A", 230, 200, 300))


def test_live_frames_give_the_newest_depth_and_refuse_a_stale_camera() -> None:
    source = Source()
    frames = LiveFrames(source)

    async def main() -> None:
        with pytest.raises(CameraError, match="no current EOAT camera frame"):
            frames.frame(0)
        source.publish(1.0)
        source.publish(2.0)
        assert float(frames.frame(0)[0, 0]) == 2.0
        source.stale = True
        with pytest.raises(CameraError, match="stale"):
            frames.frame(0)

    VirtualClock().run(main)


def test_the_plc_pod_names_bins_as_the_fc_does_in_layout_order() -> None:
    pod = PlcPod(POD)
    assert [b.bin_id for b in pod.bins] == ["P7-0A", "P7-0B"]
    assert pod.bin_index("P7-0B") == 1 and pod.bin_at(1).width_mm == 330 and pod.bin_at(0.0).bin_id == "P7-0A"
    with pytest.raises(PodLayoutError, match="no bin 'P7-3C' in pod P7"):
        pod.bin("P7-3C")
    with pytest.raises(PodLayoutError, match=r"no bin with index 1\.5"):
        pod.bin_at(1.5)
    assert bin_name("P", 2, 0) == "P-2A" and bin_name("P", 0, 25) == "P-0Z" and bin_name("P", 1, 26) == "P-1AA"


def test_the_current_pod_follows_the_plc_and_refuses_while_none_is_presented() -> None:
    state: list[PodState | None] = [None]
    pod = CurrentPod(lambda: state[0])
    with pytest.raises(PodLayoutError, match="no pod presented"):
        _ = pod.bins
    state[0] = POD
    assert pod.pod_id == "P7" and len(pod.bins) == 2
    state[0] = POD.model_copy(update={"seq": 2, "pod_id": "P8"})
    assert pod.bin("P8-0B").depth_mm == 350  # the next pod at the station


def test_view_motion_centres_the_camera_on_the_opening() -> None:
    m = view_motion(BinFace("X", 450, 350, 400), 3, 350.0, (10.0, -5.0))
    assert m.params == {"bin": 3.0, "x": 235.0, "y": 170.0, "z": -350.0}


def test_a_view_is_kept_until_the_cell_moves_in_that_bin_the_pod_changes_the_guards_open_or_it_ages() -> None:
    source, moves = Source(), []
    state: list[PodState] = [POD]

    async def main() -> list[int]:
        cam = ViewingCamera(source, CurrentPod(lambda: state[0]), settle_s=0.1, frame_timeout_s=0.5,
                            max_view_age_s=30.0)

        async def move(m: Motion) -> MotionResult:
            moves.append(m)
            await anyio.sleep(1.0)
            return MotionResult(outcome=MotionOutcome.DONE, elapsed_s=1.0)

        cam.bind(move)
        seqs = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_stream, source)
            a, b = cam.layout.bin("P7-0A"), cam.layout.bin("P7-0B")

            async def view(x: BinFace) -> None:
                seqs.append((await cam.capture_async(x)).seq)

            await view(a)
            await view(b)
            await view(a)  # kept: no move
            cam.moved(view_motion(a, 0, 350.0))  # a view move touches nothing
            await view(a)
            cam.moved(Motion(primitive=Primitive.EJECT_ITEM, params={"bin": 0.0, "x": 10.0, "y": 0.0},
                             timeout_s=6.0))
            await view(a)  # the cell worked in P7-0A: viewed again
            await view(b)  # P7-0B still kept
            cam.moved(Motion(primitive=Primitive.PLACE, params={}, timeout_s=6.0))  # at the tote: no bin
            cam.forget()  # the guards opened
            await view(b)
            await anyio.sleep(31.0)
            await view(b)  # too old
            state[0] = POD.model_copy(update={"seq": 2, "pod_id": "P8"})
            await view(cam.layout.bin("P8-0B"))
            tg.cancel_scope.cancel()
        return seqs

    seqs = VirtualClock().run(main)
    assert len(moves) == 6  # A, B, A after the eject, B after the guards, B aged, P8's B
    assert seqs[2] == seqs[0] and seqs[3] == seqs[0] and seqs[5] == seqs[1]
    assert len(set(seqs)) == 6 and seqs[4] > seqs[1]
