"""The command-line options both training scripts take (`train_seg`, `train_embedding`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def training_parser(doc: str, *, views: int, views_help: str, heldout: int, heldout_help: str, iterations: int,
                    batch_size: int) -> argparse.ArgumentParser:
    """Seed, data sizes, optimiser and output options, with each script's own defaults."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--views", type=int, default=views, help=views_help)
    ap.add_argument("--heldout", type=int, default=heldout, help=heldout_help)
    ap.add_argument("--iterations", type=int, default=iterations)
    ap.add_argument("--width", type=int, default=16, help="channels of the first block")
    ap.add_argument("--batch-size", type=int, default=batch_size)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", type=Path, default=Path("build/train-data"))
    ap.add_argument("--out", type=Path, required=True)
    return ap
