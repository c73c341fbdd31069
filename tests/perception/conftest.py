"""Rendered scenes with known geometry for the perception tests."""

import pytest

from drivers.camera import Intrinsics
from drivers.sim.camera import Box, render
from perception.common import CameraIntrinsics
from perception.occupancy import BinGeometry

# A bin whose opening is centred on the optical axis 0.5 m ahead: 0.4 wide, 0.3 high, 0.35 deep.
BIN_W, BIN_H, BIN_D, BIN_Z = 0.4, 0.3, 0.35, 0.5
BIN = BinGeometry((-BIN_W / 2, BIN_H / 2, BIN_Z), BIN_W, BIN_H, BIN_D)
BACK_WALL = Box((0.0, 0.0, BIN_Z + BIN_D + 0.01), (1.5, 1.5, 0.02), label=9)


@pytest.fixture(scope="session")
def k() -> Intrinsics:
    return Intrinsics.from_fov(640, 480, 70.0)


@pytest.fixture(scope="session")
def kp(k: Intrinsics) -> CameraIntrinsics:
    return CameraIntrinsics.from_any(k)


@pytest.fixture(scope="session")
def scene():
    """A function rendering boxes with the session intrinsics."""

    def _render(boxes: list[Box]):
        return render(boxes, Intrinsics.from_fov(640, 480, 70.0))

    return _render
