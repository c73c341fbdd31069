"""`cellctl catalogue`: the FC's product catalogue as a directory (docs/catalogue.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

catalogue_app = typer.Typer(help="The FC's product catalogue (reference images a cell identifies items by).",
                            no_args_is_help=True)


@catalogue_app.command("export")
def export(
    out: Annotated[Path, typer.Option(help="The directory to write (created; a catalogue there is replaced).",
                                      show_default=False)],
    seed: Annotated[int, typer.Option(min=0, max=(1 << 32) - 1, help="The simulated cell's seed ([sim] seed).")] = 0,
    views: Annotated[int, typer.Option(min=1, max=16, help="Reference images per product.")] = 3,
) -> None:
    """Write the simulated FC's catalogue: every product of the pod the simulated cell of SEED presents first,
    photographed in the FC's booth (other viewpoints, other light), with its dimensions.

    For a cell on external devices whose pod is the simulated one (`[perception] catalogue`); products of later
    pods and of the conveyor are not in it.
    """
    import numpy as np

    from cellctl.fc.catalogue import CatalogueFileError, write_catalogue
    from drivers.sim.catalogue import Catalogue, CatalogueError
    from drivers.sim.cell import SimCell
    from drivers.sim.cell_devices import SimCellConfig
    from drivers.sim.faults import profile

    cfg = SimCellConfig(seed=seed)
    cell = SimCell(seed, profile("none"), rows=cfg.rows, cols=cfg.cols)
    booth = Catalogue(seed, views=views)
    products: dict[str, tuple[tuple[float, float, float], list[tuple[np.ndarray, np.ndarray | None]]]] = {}
    skipped: list[str] = []
    for b in cell.pod.bins:
        for p in b.items:
            pid = p.item.product_id
            if pid in products or pid in skipped:
                continue
            try:
                refs = booth.references(pid, p.item.size_mm)
            except CatalogueError:
                skipped.append(pid)  # too large for the booth: a real FC has no photograph of it either
                continue
            products[pid] = (p.item.size_mm, [(r.color, r.mask) for r in refs])
    try:
        manifest = write_catalogue(out, products)
    except (CatalogueFileError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps({"catalogue": str(manifest), "pod": cell.pod.pod_id, "products": len(products),
                           "views": views, "not_photographed": skipped}))
