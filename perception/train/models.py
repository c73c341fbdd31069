"""Small CPU-friendly networks for the three model contracts (docs/models.md), and their ONNX export.

Needs the `train` extra (PyTorch); nothing at run time imports this module.

- `SegNet`: a conv encoder (to 1/16 of the input) and a decoder with skips to the mask grid (1/2: 72 x 96) giving
  per-pixel features; a semantic head (stow segmenter only); QUERIES learned queries that attend to the
  bottleneck (one cross-attention decoder layer) and give each an object/no-object logit pair, a mask embedding whose
  dot product with the pixel features is the mask logit, and (pick model only) four status logits.
- `EmbedNet`: a conv net on 64 x 64 crops, global average pooling, a linear map to EMBED_DIM, L2-normalised.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path

import onnx
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..learned.contracts import (
    CONTRACTS,
    CROP,
    EMBED_DIM,
    INPUT_H,
    INPUT_W,
    QUERIES,
    STATUS_CLASSES,
    STOW_CLASSES,
    Kind,
)

OPSET = 17  # onnxruntime >= 1.17 runs it


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class QueryDecoder(nn.Module):
    """Queries attend to memory (multi-head cross-attention, written out so that it exports as plain ops), then
    a feed-forward layer; each with a residual and layer norm."""

    def __init__(self, d: int, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(inplace=True), nn.Linear(2 * d, d))

    def forward(self, queries: Tensor, memory: Tensor) -> Tensor:
        b, nq, d = queries.shape
        h, dh = self.heads, d // self.heads
        q = self.q(queries).reshape(b, nq, h, dh).transpose(1, 2)
        k = self.k(memory).reshape(b, -1, h, dh).transpose(1, 2)
        v = self.v(memory).reshape(b, -1, h, dh).transpose(1, 2)
        att = torch.softmax(q @ k.transpose(2, 3) / dh ** 0.5, dim=-1)
        x = self.norm1(queries + self.o((att @ v).transpose(1, 2).reshape(b, nq, d)))
        return self.norm2(x + self.ff(x))


class SegNet(nn.Module):
    """The stow segmenter (`kind="segmenter"`) or the pick model (`kind="pick"`); input [B, 4, 144, 192]."""

    def __init__(self, kind: Kind, width: int = 32, pixel_dim: int = 32) -> None:
        super().__init__()
        if kind not in ("segmenter", "pick"):
            raise ValueError(f"SegNet is a segmenter or a pick model, not {kind!r}")
        self.kind = kind
        w = width
        self.enc1, self.enc2 = _block(4, w, 2), _block(w, 2 * w, 2)  # 72x96, 36x48
        self.enc3, self.enc4 = _block(2 * w, 3 * w, 2), _block(3 * w, 4 * w, 2)  # 18x24, 9x12
        self.dec3 = _block(4 * w + 3 * w, 2 * w, 1)
        self.dec2 = _block(2 * w + 2 * w, 2 * w, 1)
        self.dec1 = _block(2 * w + w, pixel_dim, 1)
        d = 4 * w
        self.pos = nn.Parameter(torch.zeros(1, (INPUT_H // 16) * (INPUT_W // 16), d))
        self.queries = nn.Parameter(torch.randn(1, QUERIES, d) * 0.1)
        self.decoder = QueryDecoder(d)
        self.class_head = nn.Linear(d, 2)
        self.mask_head = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, pixel_dim))
        self.sem_head = nn.Conv2d(pixel_dim, len(STOW_CLASSES), 1) if kind == "segmenter" else None
        self.status_head = nn.Linear(d, len(STATUS_CLASSES)) if kind == "pick" else None

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        e1 = self.enc1(image)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        d3 = self.dec3(torch.cat([F.interpolate(e4, size=e3.shape[-2:], mode="bilinear"), e3], 1))
        d2 = self.dec2(torch.cat([F.interpolate(d3, size=e2.shape[-2:], mode="bilinear"), e2], 1))
        pixels = self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[-2:], mode="bilinear"), e1], 1))
        memory = e4.flatten(2).transpose(1, 2) + self.pos
        q = self.decoder(self.queries.expand(image.shape[0], -1, -1), memory)
        logits = self.class_head(q)
        masks = torch.einsum("bqd,bdhw->bqhw", self.mask_head(q), pixels)
        if self.sem_head is not None:
            return self.sem_head(pixels), logits, masks
        assert self.status_head is not None
        return logits, masks, self.status_head(q)


class EmbedNet(nn.Module):
    """The product embedding: [N, 3, 64, 64] crops -> [N, EMBED_DIM] unit vectors."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(_block(3, w, 2), _block(w, 2 * w, 2), _block(2 * w, 4 * w, 2),
                                  _block(4 * w, 4 * w, 2))
        self.proj = nn.Linear(4 * w, EMBED_DIM)

    def forward(self, crop: Tensor) -> Tensor:
        v = self.proj(self.body(crop).mean(dim=(2, 3)))
        return v / torch.sqrt((v * v).sum(dim=1, keepdim=True) + 1e-12)


def export(net: nn.Module, kind: Kind, path: str | Path, metadata: Mapping[str, str]) -> Path:
    """Export `net` (eval mode) as the contract's ONNX graph, batch axis symbolic, with the contract's
    metadata_props (`metadata`: keys without the `cellctl.` prefix, e.g. training_seed, data_size, metrics)."""
    c = CONTRACTS[kind]
    spec = c.inputs[0]
    example = torch.zeros((2, *spec.dims[1:]), dtype=torch.float32)  # type: ignore[arg-type]
    names_in, names_out = [t.name for t in c.inputs], [t.name for t in c.outputs]
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    net.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter: no onnxscript needed
        torch.onnx.export(net, (example,), str(p), input_names=names_in, output_names=names_out,
                          dynamic_axes={n: {0: "batch"} for n in names_in + names_out}, opset_version=OPSET,
                          dynamo=False)
    model = onnx.load(str(p))
    props = {"cellctl.contract": kind, "cellctl.contract_version": str(c.version), "cellctl.framework":
             f"torch {torch.__version__}", **{f"cellctl.{k}": v for k, v in metadata.items()}}
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(p))
    return p


def metadata(seed: int, data_size: int, metrics: Mapping[str, float], **extra: str) -> dict[str, str]:
    """The contract's required metadata values (strings)."""
    return {"training_seed": str(seed), "data_size": str(data_size), "metrics": json.dumps(dict(metrics)), **extra}


__all__ = ["CROP", "OPSET", "EmbedNet", "SegNet", "export", "metadata"]
