"""drivers.sim.catalogue (issue 13, point 5): the simulated FC's reference images per product, and pick orders
that name the product."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.sim.catalogue import Catalogue, CatalogueError
from drivers.sim.cell import SimCell
from drivers.sim.faults import profile


def _chroma(color: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mean colour of the product's pixels with brightness divided out (lighting scales it)."""
    mean = color[mask].astype(np.float64).mean(axis=0)
    return mean / mean.sum()


def test_references_are_reproducible_and_each_view_differs() -> None:
    a = Catalogue(7).references("SKU0042", (120.0, 90.0, 150.0))
    b = Catalogue(7).references("SKU0042", (120.0, 90.0, 150.0))
    assert len(a) == 3 and all(np.array_equal(x.color, y.color) and np.array_equal(x.mask, y.mask)
                               for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0].color, a[1].color)  # another viewpoint, other lights
    for ref in a:
        assert ref.color.dtype == np.uint8 and ref.color.shape == (240, 320, 3) and ref.mask.shape == (240, 320)
        assert 0.1 < ref.mask.mean() < 0.6  # framed on the product: it fills a good part of the picture


def test_a_product_looks_like_itself_under_other_lights_more_than_like_another() -> None:
    cat = Catalogue(0)
    products = [f"SKU{n:04d}" for n in range(1, 21)]
    chroma = {p: [_chroma(r.color, r.mask) for r in cat.references(p, (110.0, 80.0, 140.0))] for p in products}
    within = np.mean([np.linalg.norm(v[0] - v[i]) for v in chroma.values() for i in (1, 2)])
    between = np.mean([np.linalg.norm(chroma[p][0] - chroma[q][0]) for p in products for q in products if p < q])
    assert within < 0.5 * between, (within, between)


def test_a_product_too_large_for_the_booth_and_bad_view_counts_are_refused() -> None:
    with pytest.raises(CatalogueError, match="does not fit the booth"):
        Catalogue(0).references("SKU0001", (600.0, 90.0, 150.0))
    with pytest.raises(CatalogueError, match="views must be an integer"):
        Catalogue(0, views=0)


def test_a_simulated_pick_order_names_the_ordered_items_product() -> None:
    cell = SimCell(5, profile("none"))
    order, _ = cell.next_order()
    assert order is not None
    assert order.product_id == cell.pod.bin(order.bin_id).get(order.item_id).item.product_id != ""
