import numpy as np
import pytest

from perception.common import PerceptionError
from perception.contacts import Contact, ContactMemory
from perception.occupancy import BinGeometry, FrontFaceMap


def _open_bin() -> FrontFaceMap:
    g = BinGeometry((0.0, 0.0, 0.3), 0.2, 0.1, 0.3)
    free = np.full((5, 10), 0.3, dtype=np.float32)  # 20 mm cells, nothing in the bin
    return FrontFaceMap(g, 0.02, free, np.ones(free.shape, bool), np.ones(free.shape, np.int32))


def test_a_contact_caps_the_free_depth_of_every_cell_its_footprint_touches() -> None:
    memory = ContactMemory()
    memory.record("P1/A", Contact(30.0, 0.0, 50.0, 30.0, free_mm=95.0))
    capped = memory.cap("P1/A", _open_bin())
    touched = np.zeros((5, 10), bool)
    touched[0:2, 1:4] = True  # x 30..80 mm -> columns 1..3, y 0..30 mm -> rows 0..1
    assert np.allclose(capped.free_depth[touched], 0.095)
    assert np.allclose(capped.free_depth[~touched], 0.3)
    assert capped.occupied(0.1)[touched].all() and not capped.occupied(0.09).any()


def test_contacts_are_per_bin_and_forgotten_when_the_bin_changes() -> None:
    memory = ContactMemory()
    memory.record("P1/A", Contact(0.0, 0.0, 200.0, 100.0, free_mm=0.0))
    fmap = _open_bin()
    assert memory.cap("P1/B", fmap) is fmap
    assert memory.cap("P1/A", fmap).free_depth.max() == 0.0
    memory.forget("P1/A")
    assert memory.contacts("P1/A") == () and memory.cap("P1/A", fmap) is fmap


@pytest.mark.parametrize("bad", [(0.0, 0.0, 0.0, 10.0, 5.0), (0.0, 0.0, 10.0, 10.0, float("nan"))])
def test_a_contact_without_a_footprint_or_a_depth_is_refused(bad: tuple[float, ...]) -> None:
    with pytest.raises(PerceptionError, match="contact"):
        Contact(*bad)
