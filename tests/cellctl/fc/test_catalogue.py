"""Issue 13, point 5 on a real cell: the FC's product catalogue as a directory (docs/catalogue.md).

Written and read back losslessly (PNG); a broken manifest or a missing file refuses the catalogue at open, naming
the file and the key; an image that does not decode refuses only that product's identification (not_recognised,
naming the file) and perception goes on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cellctl.fc.catalogue import MANIFEST, CatalogueDirectory, CatalogueFileError, write_catalogue
from cellctl.workcells.learned_models import load_models
from cellctl.workcells.sim_frames import sim_learned_perception
from drivers.sim.catalogue import Catalogue
from drivers.sim.cell import SimCell
from drivers.sim.faults import profile
from statecharts.workcell import EligibilityClass, PickOrder


def _products(n: int = 2) -> dict[str, tuple[tuple[float, float, float], list[tuple[np.ndarray, np.ndarray | None]]]]:
    booth = Catalogue(3, views=2)
    sizes = [(120.0, 80.0, 50.0), (90.0, 140.0, 60.0), (60.0, 60.0, 60.0)]
    out: dict[str, tuple[tuple[float, float, float], list[tuple[np.ndarray, np.ndarray | None]]]] = {}
    for i in range(n):
        refs = booth.references(f"SKU{i:04d}", sizes[i])
        out[f"SKU{i:04d}"] = (sizes[i], [(r.color, r.mask) for r in refs])
    return out


def test_a_written_catalogue_reads_back_every_pixel_and_mask(tmp_path: Path) -> None:
    products = _products()
    manifest = write_catalogue(tmp_path / "cat", products)
    assert manifest.name == MANIFEST and not list((tmp_path / "cat").glob("*.tmp"))
    cat = CatalogueDirectory(tmp_path / "cat")
    assert set(cat.products) == set(products)
    for pid, (size, views) in products.items():
        assert cat.size_mm(pid) == size
        got = cat.references(pid)
        assert len(got) == len(views)
        for (rgb, mask), (rgb0, mask0) in zip(got, views, strict=True):
            assert rgb.dtype == np.uint8 and np.array_equal(rgb, rgb0)
            assert mask is not None and mask0 is not None and np.array_equal(mask, mask0)
    assert cat.references("SKU9999") == [] and cat.size_mm("SKU9999") is None


def _edit(root: Path, change: dict[str, object] | None = None, text: str | None = None) -> None:
    m = root / MANIFEST
    if text is not None:
        m.write_text(text)
        return
    doc = json.loads(m.read_text())
    assert change is not None
    doc["products"]["SKU0000"].update(change)
    m.write_text(json.dumps(doc))


@pytest.mark.parametrize(("edit", "expected"), [
    ({"size_mm": [120.0, -1.0, 50.0]}, "products.SKU0000.size_mm.1: Input should be greater than 0"),
    ({"views": []}, "products.SKU0000.views: "),
    ({"views": [{"image": "../elsewhere.png"}]}, "a path inside the catalogue directory"),
    ({"views": [{"image": "SKU0000/0.bmp"}]}, "not a PNG or JPEG file name"),
    ({"views": [{"image": "SKU0000/gone.png"}]}, "1 image file(s) missing, e.g. SKU0000: SKU0000/gone.png"),
    ({"colour": "red"}, "products.SKU0000.colour: Extra inputs are not permitted"),
])
def test_a_broken_manifest_is_refused_at_open_naming_the_file_and_key(tmp_path: Path, edit: dict[str, object],
                                                                       expected: str) -> None:
    root = tmp_path / "cat"
    write_catalogue(root, _products(1))
    _edit(root, edit)
    with pytest.raises(CatalogueFileError) as err:
        CatalogueDirectory(root)
    assert str(err.value).startswith(str(root / MANIFEST)) and expected in str(err.value), str(err.value)


@pytest.mark.parametrize(("text", "expected"), [
    ("{not json", "Invalid JSON"),
    ('{"format": "other", "version": 1, "products": {}}', "format must be 'cellctl-catalogue'"),
    ('{"format": "cellctl-catalogue", "version": 2, "products": {}}', "version 2 is not one this cellctl reads"),
])
def test_a_manifest_of_another_kind_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    root = tmp_path / "cat"
    write_catalogue(root, _products(1))
    _edit(root, text=text)
    with pytest.raises(CatalogueFileError, match=expected):
        CatalogueDirectory(root)


def test_a_missing_directory_or_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogueFileError, match="not a catalogue directory"):
        CatalogueDirectory(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CatalogueFileError, match="cannot read the catalogue manifest"):
        CatalogueDirectory(tmp_path / "empty")


def test_a_bad_image_refuses_that_products_identification_and_perception_goes_on(tmp_path: Path) -> None:
    cell = SimCell(2, profile("none"))
    b = next(b for b in cell.pod.bins if b.items)
    p = b.items[0]
    pid = p.item.product_id
    booth = Catalogue(cell.seed)
    root = tmp_path / "cat"
    write_catalogue(root, {pid: (p.item.size_mm, [(r.color, r.mask) for r in booth.references(pid, p.item.size_mm)]),
                           **_products(1)})
    (root / pid / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    cat = CatalogueDirectory(root)  # the manifest is fine: the image is only read when the product is ordered
    with pytest.raises(CatalogueFileError, match=r"0\.png: not a readable PNG or JPEG image"):
        cat.references(pid)
    perception = sim_learned_perception(cell, load_models())
    perception.refs = cat
    order = PickOrder(order_id="O1", item_id=str(p.item_id), bin_id=b.bin_id, product_id=pid)
    e = perception.eligibility(order)
    assert not e.eligible and e.cls is EligibilityClass.NOT_RECOGNISED
    assert "reference images of product" in e.detail and "0.png" in e.detail
    other = perception.eligibility(order.model_copy(update={"product_id": "SKU0000"}))  # another product still runs
    assert other.cls is not EligibilityClass.NOT_RECOGNISED or "similarity" in other.detail
