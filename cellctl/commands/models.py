"""`cellctl models`: the learned models' files (docs/models.md)."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Annotated

import typer

models_app = typer.Typer(help="Learned perception models (ONNX): check a file against its contract.",
                         no_args_is_help=True)


class ModelKind(enum.StrEnum):
    segmenter = "segmenter"
    pick = "pick"
    embedding = "embedding"


@models_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="The .onnx file.", show_default=False)],
    kind: Annotated[ModelKind, typer.Option(help="The contract to check it against.", show_default=False)],
    run: Annotated[bool, typer.Option(help="Also run it once on a fixed input and check the outputs.")] = True,
) -> None:
    """Check FILE against the KIND contract (tensors, types, shapes, metadata; docs/models.md).

    Exits 0 when it fits; 1 with one line naming each mismatch (tensor or metadata key, expected and found)
    when it does not, or when the file is missing, empty, truncated or not ONNX.
    """
    from perception.learned.contracts import ModelError
    from perception.learned.session import open_model

    try:
        model = open_model(file, kind.value, run_probe=run)
    except ModelError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    c, m = model.contract, model.metadata
    tensors = ", ".join(f"{t.name} {t.text()}" for t in (*c.inputs, *c.outputs))
    typer.echo(f"{file}: fits the {c.kind} contract v{c.version} ({tensors}); training seed {m.training_seed}, "
               f"data size {m.data_size}, metrics {json.dumps(m.metrics, sort_keys=True)}")
