"""Procedural appearance of what the EOAT camera sees: products, bin walls and the elastic band.

Every product looks the same wherever it is: `product_look(product_id)` is seeded by a hash of the id (blake2b,
not Python's salted `hash`), so the same product has the same colours, pattern and printed mark in every frame,
bin and run, and two products almost surely differ. A look is evaluated in the coordinates of the face hit
(metres from the face's corner, see `raycast`), so the pattern sticks to the item as it moves.

A product has a base and an accent colour (HSV drawn; one product in seven is dark, value 0.04-0.12), a
pattern (plain, stripes at an angle (twice as likely as the others), checks, dots, a gradient across the front
face) with a period of 8-40 mm, and on its front face a printed mark: a label-paper block 25-70 % of the face
wide and 20-50 % tall, placed by the seed (as fractions of the face, from its top-left corner as the camera
sees it), with three lines of text-like glyph cells in an ink colour. Side and top faces carry the pattern
only. `ir_albedo` is the surface's reflectance for the depth sensor's IR projector: 0.1 plus about the
visible luminance, and 0.005-0.06 for dark products (black plastics absorb the IR too), which return little
depth (`sensor_model`).

Bin walls are a grey-blue woven fabric (a 6 mm weave and a slow mottle); the band is a dark knitted elastic,
dense in the middle of its width and open towards its edges (`band_density`: 0.35-0.8); its opacity
(`band_alpha`: the density with ribs across it and knit loops along it, 0.2-0.8) blends it over what lies
behind it in the colour image, and `camera_view` lets depth see it where its density is high.

Colours here are linear reflectances in [0, 1]; `lighting` shades them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

PLAIN, STRIPES, CHECKS, DOTS, GRADIENT, WEAVE = range(6)
PATTERN_NAMES = ("plain", "stripes", "checks", "dots", "gradient", "weave")
GLYPH_ROWS, GLYPH_COLS = 3, 12  # the mark's text-like cell grid
LABEL_PAPER = (0.85, 0.84, 0.80)


@dataclass(frozen=True, slots=True, eq=False)
class Look:
    """How a surface looks; `mark_*` are fractions of the front face (u, v: the mark's top-left corner)."""

    base: np.ndarray  # (3,) linear RGB reflectance
    accent: np.ndarray  # (3,)
    pattern: int
    period_m: float
    angle_rad: float
    ir_albedo: float
    mark: bool = False
    mark_box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # u, v, width, height (face fractions)
    ink: np.ndarray | None = None  # (3,)
    glyphs: np.ndarray | None = None  # (GLYPH_ROWS, GLYPH_COLS) bool


def stable_seed(key: str) -> int:
    """A 64-bit seed from a string, the same in every process (unlike `hash`)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def product_look(product_id: str) -> Look:
    """The product's appearance, a function of its id alone."""
    rng = np.random.default_rng(stable_seed("product:" + product_id))
    dark = rng.random() < 1 / 7
    hue = rng.random()
    value = rng.uniform(0.04, 0.12) if dark else rng.uniform(0.35, 0.95)
    base = _hsv(hue, rng.uniform(0.15, 0.9), value)
    accent = _hsv((hue + rng.uniform(0.15, 0.85)) % 1.0, rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.95))
    pattern = int(rng.choice([PLAIN, STRIPES, STRIPES, CHECKS, DOTS, GRADIENT]))
    mw, mh = rng.uniform(0.25, 0.7), rng.uniform(0.2, 0.5)
    mark_box = (rng.uniform(0.05, 0.95 - mw), rng.uniform(0.05, 0.95 - mh), mw, mh)
    ink = _hsv(rng.random(), rng.uniform(0.0, 1.0), rng.uniform(0.0, 0.35))
    glyphs = rng.random((GLYPH_ROWS, GLYPH_COLS)) < 0.55
    lum = float(base @ np.array([0.2126, 0.7152, 0.0722]))
    ir = float(np.clip(lum * rng.uniform(0.2, 0.5) if dark else lum * rng.uniform(0.8, 1.3) + 0.1, 0.005, 0.95))
    return Look(base, accent, pattern, float(rng.uniform(0.008, 0.04)), float(rng.uniform(0, np.pi)), ir,
                True, mark_box, ink, glyphs)


WALL_LOOK = Look(np.array([0.30, 0.33, 0.40]), np.array([0.24, 0.26, 0.32]), WEAVE, 0.006, 0.0, 0.35)
BACKGROUND_RGB = np.array([0.03, 0.03, 0.03])
BAND_RGB = np.array([0.10, 0.10, 0.11])
BAND_IR_ALBEDO = 0.3


def band_density(t: np.ndarray, width_m: np.ndarray) -> np.ndarray:
    """The band's knit density at `t` across it (m from its lower edge): 0.35 at the edges, 0.8 in the middle."""
    return (0.35 + 0.45 * np.square(np.sin(np.pi * t / np.maximum(width_m, 1e-6)))).astype(np.float32)


def band_alpha(s: np.ndarray, t: np.ndarray, width_m: np.ndarray) -> np.ndarray:
    """The band's opacity at (s along it, t across it), metres: its density, with three ribs across it and knit
    loops every 4 mm along it (0.2-0.8)."""
    rib = 0.9 + 0.1 * np.cos(6 * np.pi * t / np.maximum(width_m, 1e-6))
    knit = 0.85 + 0.15 * np.cos(2 * np.pi * s / 0.004)
    return (band_density(t, width_m) * rib * knit).astype(np.float32)


Window = tuple[slice, slice]


def paint(looks: list[Look], which: np.ndarray, windows: list[Window | None], s: np.ndarray, t: np.ndarray,
          face_w: np.ndarray, face_h: np.ndarray, front: np.ndarray,
          background: np.ndarray = BACKGROUND_RGB) -> tuple[np.ndarray, np.ndarray]:
    """Linear RGB reflectance, planar (3, H, W), and IR albedo (H, W) of an image of surfaces.

    Pixel (v, u) shows looks[which[v, u]] (which < 0: `background`, IR 0) at face coordinates (s, t) (m) on a
    face of extent (face_w, face_h); `windows[i]`, the rows and columns where look i can appear, bounds the
    work. `front` marks front faces: the printed mark is drawn there only. Looks shared by several indices
    (the same object) are painted in one pass."""
    h, w = which.shape
    groups: dict[int, tuple[Look, list[int], list[Window]]] = {}
    for i, (look, win) in enumerate(zip(looks, windows, strict=True)):
        if win is not None:
            group = groups.setdefault(id(look), (look, [], []))
            group[1].append(i)
            group[2].append(win)
    # Per-look tables; index -1 (background) reads the last row.
    base = np.zeros((len(looks) + 1, 3), dtype=np.float32)
    accent = np.zeros((len(looks) + 1, 3), dtype=np.float32)
    base[-1] = accent[-1] = background
    gid_of = np.full(len(looks) + 1, -1, dtype=np.int32)
    ir_of = np.zeros(len(looks) + 1, dtype=np.float32)
    for g, (look, indices, _) in enumerate(groups.values()):
        gid_of[indices], ir_of[indices] = g, look.ir_albedo
        base[indices], accent[indices] = look.base, look.accent
    gid = np.take(gid_of, which)
    mix = np.zeros(h * w, dtype=np.float32)  # the pattern's share of the accent colour
    marks: list[tuple[np.ndarray, np.ndarray]] = []
    flat_s, flat_t, flat_w, flat_h, flat_front = (a.reshape(-1) for a in (s, t, face_w, face_h, front))
    for g, (look, _, wins) in enumerate(groups.values()):
        r0, c0 = min(r.start for r, _ in wins), min(c.start for _, c in wins)
        rows, cols = slice(r0, max(r.stop for r, _ in wins)), slice(c0, max(c.stop for _, c in wins))
        rr, cc = np.nonzero(gid[rows, cols] == g)
        if rr.size == 0:
            continue
        flat = (rr + r0) * w + (cc + c0)
        ss, tt, fw = flat_s[flat], flat_t[flat], flat_w[flat]
        mix[flat] = _pattern(look, ss, tt, fw)
        if look.mark:
            marks.append(_mark(look, ss, tt, fw, flat_h[flat], flat_front[flat], flat))
    which = which.astype(np.intp)
    rgb = np.empty((3, h, w), dtype=np.float32)  # planar: channel first
    for c in range(3):
        b = np.take(base[:, c], which)
        rgb[c] = b + (np.take(accent[:, c], which) - b) * mix.reshape(h, w)
    flat_rgb = rgb.reshape(3, -1)
    for at, colour in marks:
        flat_rgb[:, at] = colour.T
    return rgb, np.take(ir_of, which)


def _tri(x: np.ndarray) -> np.ndarray:
    """A triangle wave of period 1 in [-1, 1] (cheaper than a sine, as smooth as a texture needs)."""
    return np.abs(2 * (x - np.floor(x)) - 1) * 2 - 1


def _pattern(look: Look, s: np.ndarray, t: np.ndarray, face_w: np.ndarray) -> np.ndarray:
    """(n,) share of the accent colour in `look`'s pattern at (s, t)."""
    a, b = s * np.float32(1 / look.period_m), t * np.float32(1 / look.period_m)
    kind = look.pattern
    if kind == STRIPES:
        r = a * np.float32(np.cos(look.angle_rad) / 2) + b * np.float32(np.sin(look.angle_rad) / 2)
        return (r - np.floor(r) < 0.5).astype(np.float32)
    if kind == CHECKS:
        c = (a + np.floor(b)) * np.float32(0.5)
        return (c - np.floor(c) < 0.5).astype(np.float32)
    if kind == DOTS:
        return (np.square(a - np.floor(a) - 0.5) + np.square(b - np.floor(b) - 0.5) < 0.09).astype(np.float32)
    if kind == GRADIENT:
        return np.clip(s / np.maximum(face_w, np.float32(1e-6)), 0.0, 1.0)
    if kind == WEAVE:
        mottle = _tri(s * np.float32(1 / 0.13) + np.float32(0.2)) * _tri(t * np.float32(1 / 0.17))
        return 0.5 + 0.3 * _tri(a) * _tri(b) + 0.2 * mottle
    return np.zeros(s.shape, dtype=np.float32)


def _mark(look: Look, s: np.ndarray, t: np.ndarray, face_w: np.ndarray, face_h: np.ndarray, front: np.ndarray,
          at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The printed mark (label paper with three lines of glyph cells), front faces only: (where in `at`,
    colours (n, 3))."""
    mu, mv, mw, mh = look.mark_box
    fu = (s / np.maximum(face_w, np.float32(1e-6)) - np.float32(mu)) * np.float32(1 / mw)
    fv = (t / np.maximum(face_h, np.float32(1e-6)) - np.float32(mv)) * np.float32(1 / mh)
    inside = front & (fu >= 0) & (fu < 1) & (fv >= 0) & (fv < 1)
    if not inside.any() or look.glyphs is None or look.ink is None:
        return at[:0], np.zeros((0, 3), dtype=np.float32)
    fu, fv = fu[inside], fv[inside]
    row = np.floor(fv * (2 * GLYPH_ROWS + 1)).astype(np.intp)  # text lines at odd rows, gaps between them
    on_line = (row % 2 == 1) & (row < 2 * GLYPH_ROWS)
    cell = fu * GLYPH_COLS
    col = np.minimum(cell.astype(np.intp), GLYPH_COLS - 1)
    inked = on_line & look.glyphs[np.clip(row // 2, 0, GLYPH_ROWS - 1), col] & (cell - np.floor(cell) < 0.8)
    colour = np.where(inked[:, None], look.ink.astype(np.float32), np.asarray(LABEL_PAPER, np.float32))
    return at[inside], colour
