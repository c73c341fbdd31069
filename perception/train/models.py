"""Small CPU-friendly networks for the three model contracts (docs/models.md), and their ONNX export.

Needs the `train` extra (PyTorch); nothing at run time imports this module.

- `CenterSegNet` (shipped; `wide`: wider coarse stages): the same encoder-decoder with coordinate channels and
  per-cell heads (centre heat map, offset to the instance centre, foreground, status or class), grouped into the
  contract's queries inside the graph.
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

import numpy as np
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
    MASK_H,
    MASK_W,
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


CENTER_THRESHOLDS = (0.1, 0.15, 0.2, 0.3)  # train_seg picks the exported one on validation views
ASSIGN_THRESHOLD = 0.1  # pixels are grouped among the peaks at or above this
PEAK_WINDOW = 5  # a peak is the maximum of its PEAK_WINDOW x PEAK_WINDOW cells


def _head(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cin, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(cin, cout, 1))


class CenterSegNet(nn.Module):
    """The stow segmenter or the pick model as centre points and offsets (Panoptic-DeepLab's grouping), exported
    in the contract's query form; input [B, 4, 144, 192].

    Per mask-grid cell: a centre heat map, an offset to the cell's instance centre (in cells), a foreground logit
    (an instance's pixel: items, and for the pick model the band too), and per-cell status logits (pick) or class
    logits (segmenter). `heads` gives them for training; `forward` turns them into queries: the QUERIES highest
    heat-map peaks, each cell grouped with the peak nearest its voted centre, a query's mask logit the cell's
    foreground logit where it owns the cell (else -20), its object logit logit(peak) - logit(CENTER_THRESHOLD),
    its status the mean status logits over its cells.

    `wide` (`--arch center-wide`): the coarse stages 1.5-2x wider and one shared 3x3 conv under 1x1 heads, for
    about 1.15x the training time and 3.5x the weights.
    """

    grid_y: Tensor  # buffers: each mask-grid cell's row and column
    grid_x: Tensor

    def __init__(self, kind: Kind, width: int = 16, pixel_dim: int = 32, center_threshold: float = 0.2,
                 wide: bool = False) -> None:
        super().__init__()
        self.center_threshold = center_threshold
        if kind not in ("segmenter", "pick"):
            raise ValueError(f"CenterSegNet is a segmenter or a pick model, not {kind!r}")
        self.kind = kind
        w = width
        # Channels of enc1..enc4 (enc5 as enc4), dec3, dec2. `wide` widens the coarse stages, which cost little
        # (the full-grid layers and heads hold most of the compute): the context that separates neighbours.
        scale = (1, 3, 6, 8, 6, 3) if wide else (1, 2, 3, 4, 2, 2)
        c1, c2, c3, c4, d3, d2 = (k * w for k in scale)
        self.enc1, self.enc2 = _block(6, c1, 2), _block(c1, c2, 2)  # input + x, y: 72x96, 36x48
        self.enc3, self.enc4 = _block(c2, c3, 2), _block(c3, c4, 2)  # 18x24, 9x12
        self.enc5 = _block(c4, c4, 1)  # more reach at the bottleneck: offsets span whole items
        self.dec3 = _block(c4 + c3, d3, 1)
        self.dec2 = _block(d3 + c2, d2, 1)
        self.dec1 = _block(d2 + c1 + 2, pixel_dim, 1)
        classes = len(STOW_CLASSES) if kind == "segmenter" else len(STATUS_CLASSES)
        # The heads: one 3x3 conv each, or (`wide`) one shared 3x3 conv, then a 1x1 each.
        self.shared: nn.Module = (nn.Sequential(nn.Conv2d(pixel_dim, pixel_dim, 3, 1, 1), nn.ReLU(inplace=True))
                                  if wide else nn.Identity())
        head = (lambda cout: nn.Conv2d(pixel_dim, cout, 1)) if wide else (lambda cout: _head(pixel_dim, cout))
        self.heat, self.offset, self.fg, self.cls = head(1), head(2), head(1), head(classes)
        heat_out = self.heat if wide else self.heat[-1]  # type: ignore[index]
        nn.init.constant_(heat_out.bias, -2.19)  # type: ignore[arg-type]  # CenterNet's prior: p = 0.1 at the start
        ys, xs = torch.meshgrid(torch.arange(MASK_H, dtype=torch.float32), torch.arange(MASK_W, dtype=torch.float32),
                                indexing="ij")
        self.register_buffer("grid_y", ys, persistent=False)
        self.register_buffer("grid_x", xs, persistent=False)

    @staticmethod
    def _coords(x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        ys = torch.linspace(-1.0, 1.0, h).view(1, 1, h, 1).expand(b, 1, h, w)
        xs = torch.linspace(-1.0, 1.0, w).view(1, 1, 1, w).expand(b, 1, h, w)
        return torch.cat([x, ys, xs], 1)

    def heads(self, image: Tensor) -> dict[str, Tensor]:
        e1 = self.enc1(self._coords(image))
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc5(self.enc4(e3))
        d3 = self.dec3(torch.cat([F.interpolate(e4, size=e3.shape[-2:], mode="bilinear"), e3], 1))
        d2 = self.dec2(torch.cat([F.interpolate(d3, size=e2.shape[-2:], mode="bilinear"), e2], 1))
        pixels = self.shared(self.dec1(self._coords(torch.cat([F.interpolate(d2, size=e1.shape[-2:], mode="bilinear"),
                                                               e1], 1))))
        return {"heat": self.heat(pixels)[:, 0], "offset": self.offset(pixels), "fg": self.fg(pixels)[:, 0],
                "cls": self.cls(pixels)}

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = self.heads(image)
        heat = torch.sigmoid(h["heat"])[:, None]
        peaks = torch.where(heat == F.max_pool2d(heat, PEAK_WINDOW, 1, PEAK_WINDOW // 2), heat, torch.zeros_like(heat))
        score, idx = peaks.flatten(1).topk(QUERIES, dim=1)  # [B, Q]
        cy = torch.div(idx, MASK_W, rounding_mode="floor").to(torch.float32)
        cx = (idx - torch.div(idx, MASK_W, rounding_mode="floor") * MASK_W).to(torch.float32)
        vy = self.grid_y + h["offset"][:, 0]  # [B, H, W]: each cell's voted centre
        vx = self.grid_x + h["offset"][:, 1]
        dist = (vy[:, None] - cy[:, :, None, None]) ** 2 + (vx[:, None] - cx[:, :, None, None]) ** 2
        dist = dist + (score < ASSIGN_THRESHOLD).to(torch.float32)[:, :, None, None] * 1e6
        owner = dist.argmin(dim=1, keepdim=True)  # [B, 1, H, W]
        own = owner == torch.arange(QUERIES).view(1, QUERIES, 1, 1)
        fg = h["fg"][:, None]
        masks = torch.where(own, fg.expand_as(dist), torch.full_like(dist, -20.0))
        s = score.clamp(1e-6, 1 - 1e-6)
        obj = torch.log(s / (1 - s)) - float(np.log(self.center_threshold / (1 - self.center_threshold)))
        logits = torch.stack([obj, torch.zeros_like(obj)], -1)
        if self.kind == "segmenter":
            return h["cls"], logits, masks
        cells = (own & (fg > 0)).to(torch.float32)
        status = torch.einsum("bqhw,bchw->bqc", cells, h["cls"]) / (cells.sum((2, 3))[..., None] + 1e-6)
        return logits, masks, status


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


__all__ = ["CENTER_THRESHOLDS", "CROP", "OPSET", "CenterSegNet", "EmbedNet", "SegNet", "export", "metadata"]
