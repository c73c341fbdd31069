"""The learned perception models a run loads: the [perception] section's files, or the shipped ones in `models/`.

Each file is checked against its contract when it is opened (`perception.learned.session.open_model`); a missing,
truncated or mismatched file is a `ModelError` naming the file and what is wrong.
"""

from __future__ import annotations

from pathlib import Path

from cellctl.config import PerceptionSection
from perception.learned.embedding import Embedder
from perception.learned.pick_model import PickModel
from perception.learned.segmenter import StowSegmenter
from perception.learned.session import open_model
from planning.pick_decision import PickModels

from .learned_perception import LearnedModels

SHIPPED_MODELS = Path(__file__).resolve().parents[2] / "models"  # trained by `make models` (docs/models.md)
KINDS = ("segmenter", "pick", "embedding")


def model_files(section: PerceptionSection | None = None) -> dict[str, Path]:
    """kind -> the file a run loads: the section's, else the shipped model of that kind."""
    s = section or PerceptionSection()
    return {k: getattr(s, k) or SHIPPED_MODELS / f"{k}.onnx" for k in KINDS}


def load_models(section: PerceptionSection | None = None) -> LearnedModels:
    """Open and check the three models (raises ModelError)."""
    s = section or PerceptionSection()
    files, settings = model_files(s), s.session_settings()
    sessions = {k: open_model(p, k, settings) for k, p in files.items()}
    return LearnedModels(StowSegmenter(sessions["segmenter"]),
                         PickModels(PickModel(sessions["pick"]), Embedder(sessions["embedding"])))
