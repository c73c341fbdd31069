"""The simulated cell's camera and pick orders: what `cellctl run` takes from the world itself.

The PLC, robot and F/T sensor of the simulated cell have protocols (`drivers.sim.cell_devices`); its EOAT camera
(with the perception on its frames) and the FC's pick orders do not yet. These two read the world directly: in the
controller's process for devices = "sim", or in `cellctl devices --sim` behind the sim-service (`sim_service`).
"""

from __future__ import annotations

import anyio
import numpy as np

from cellctl.workcells.sim_perception import SimScene
from drivers.sim.cell import SimCell
from drivers.sim.cell_devices import SimCellDevices
from statecharts.workcell import PickOrder

__all__ = ["SimOrders", "WorldCamera"]


class WorldCamera:
    """The EOAT camera of the simulated cell: noisy depth frames rendered from its world (a `FrameSource`)."""

    def __init__(self, scene: SimScene) -> None:
        self.scene = scene
        self.noise_k = scene.camera.noise_k

    def frame(self, bin_index: int) -> np.ndarray:
        s = self.scene
        return s.noisy(s.render(s.cell.bin(bin_index), band=False)[0])


class SimOrders:
    """The FC's pick orders in the simulated cell (an `OrderSource`; the FC order interface is not on OPC UA yet)."""

    def __init__(self, devices: SimCellDevices) -> None:
        self.devices = devices

    async def next_order(self, timeout_s: float) -> PickOrder | None:
        cell: SimCell = self.devices.cell
        order, down_s = cell.next_order()
        await self.devices.present_pod()  # the order may have rotated the pod
        if order is None or down_s > timeout_s:
            await anyio.sleep(timeout_s)
            return None
        await anyio.sleep(0.5 + down_s)
        return PickOrder(order_id=order.order_id, item_id=str(order.item_id), bin_id=order.bin_id,
                        product_id=order.product_id)
