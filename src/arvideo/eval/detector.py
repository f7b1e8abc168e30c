"""A weight-free detector for the shapes world: what objects a frame shows, and where.

Everything is measured, nothing is learned:

1. **Background.** The per-channel median of the frame's border pixels (objects never cover most
   of the border).
2. **Colour matting.** A blurred or compressed edge pixel is a mix of an object colour c and the
   background b, so it lies near the segment b -> c. Each pixel is explained by the palette
   colour whose segment passes closest to it, with `alpha` its position along that segment; it
   is object when alpha > 0.5 (more object than background) and it lies within MAX_RESIDUAL of
   the segment. Blurred objects keep their true area, and the dark rim of a red disc on black is
   never read as another palette colour, as plain nearest-colour labelling would. Distances are
   taken in BT.601 luma/chroma with chroma at half weight, because H.264's yuv420p (like most
   tokenizers) keeps luma sharp and smears chroma.
3. **Pinholes** (a pixel whose four neighbours share another label) take that label: the world's
   shapes have no holes, and noise would otherwise lower their fill ratio and solidity.
4. **Connected components** (8-neighbour) of equal labels, for all frames at once; specks (below
   MIN_AREA of the frame, or without one interior pixel) are dropped.
5. **Moments of the soft object.** Around each component (FRINGE pixels out), every pixel
   counts with its alpha for the component's colour (fringe pixels if above MIN_ALPHA and three
   sigmas of the background's noise, near the colour's segment, and not part of another
   object; alphas within three sigmas of 1 count as 1). Blur moves
   mass but neither creates nor destroys it, so the mass, the centroid and the complex moments
   c_n = sum alpha (z - centroid)^n are unchanged by any rotationally symmetric blur.
   Normalised, |c_n| / mass^(n/2 + 1) measures n-fold symmetry: a triangle has c_3, a square
   c_4, a five-pointed star c_5, a circle none of them.
6. **Shape**: the nearest reference over those three symmetry signatures plus three descriptors
   of the hard mask (fill ratio of its box, solidity = area / convex-hull area, centroid height
   in the box), each in units of how far it drifts under blur, noise and H.264 (SHAPE_SCALE).
   The signatures survive blur (a small star whose points a codec smeared keeps its c_5); the
   mask descriptors survive noise, which the signatures' fringe pixels pick up.
7. **Size** from the hard mask's area (alpha > 0.5 keeps a blurred object's true area) through
   the shape's area per half-extent squared (SHAPE_AREA), split at the geometric mean of the
   world's half-extents (64 px: 6.4 and 11.5 px, split at 8.6 px).

Coordinates follow `arvideo.data.shapes`: pixels, x right, y down, pixel i covers [i, i + 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from arvideo.data import shapes

CHROMA_WEIGHT = 0.5
_YCBCR = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=np.float32
)  # BT.601 RGB -> (Y, Cb, Cr)
MATTE_SPACE = _YCBCR * np.array([[1.0], [CHROMA_WEIGHT], [CHROMA_WEIGHT]], dtype=np.float32)
MAX_RESIDUAL = 0.5  # distance off the background->colour segment, in units of its length
# Palette colours closer than this to the background (matting units; the world's weakest pair,
# green on gray, is 42) cannot be told from it and are not searched.
MIN_CONTRAST = 25.0
BORDER = 2  # pixels of each edge used to estimate the background
MIN_AREA = 0.004  # smallest object, as a fraction of the frame (64x64: 16 px; a small star is ~50)

FRINGE = 2  # pixels around a component whose partial alpha belongs to it (blur spreads mass)
MIN_ALPHA = 0.2  # fringe pixels below this are background noise, not spread mass ...
NOISE_SIGMAS = 3.0  # ... and so are those within this many background noise sigmas of it

# Reference features per shape: symmetry signatures |c_3|, |c_4|, |c_5| (see above), then fill,
# solidity and centroid height; means over the world's renders at both sizes, on every background,
# sharp and blurred (Gaussian sigma <= 1 px at 64x64), with and without noise (sigma 10).
SHAPE_FEATURES: dict[str, tuple[float, ...]] = {
    "circle": (0.0, 0.0, 0.0, 0.79, 0.94, 0.50),
    "square": (0.0, 0.016, 0.0, 1.00, 1.00, 0.50),
    "triangle": (0.066, 0.002, 0.010, 0.56, 0.91, 0.65),
    "star": (0.010, 0.004, 0.033, 0.48, 0.63, 0.54),
}
# One unit of mismatch per feature: about twice its spread within a shape under blur (up to
# 1.2 px), noise (up to 20 grey levels) and H.264. The mask descriptors drift most under blur.
SHAPE_SCALE = np.array([0.012, 0.004, 0.008, 0.13, 0.11, 0.05])
SYMMETRY_ORDERS = (3, 4, 5)
# Area over half-extent squared, measured on renders (circle pi, square 4, triangle 2, star 1.24).
SHAPE_AREA: dict[str, float] = {"circle": 3.14, "square": 4.0, "triangle": 2.0, "star": 1.24}
assert set(SHAPE_FEATURES) == set(SHAPE_AREA) == set(shapes.SHAPES), "every shape needs reference values"


def _size_splits() -> np.ndarray:
    """Half-extent boundaries (fraction of the frame side) between consecutive sizes: geometric means."""
    r = np.array([shapes.SIZE_FRACTION[s] for s in shapes.SIZES])
    return np.sqrt(r[:-1] * r[1:])


SIZE_SPLITS = _size_splits()


@dataclass(frozen=True)
class Detection:
    """One object found in one frame."""

    colour: str
    shape: str
    size: str
    centre: tuple[float, float]  # centre of the box (x, y): where the world puts the object
    centroid: tuple[float, float]  # centre of the soft mass: sub-pixel and blur-proof, for trajectories
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) of the hard mask, ends exclusive
    area: int  # pixels of the hard mask (alpha > 0.5: the true area, also under blur)
    features: tuple[float, ...]  # as in SHAPE_FEATURES


def _as_numpy(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    frames = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    assert frames.ndim == 4 and frames.shape[-1] == 3, f"expected frames [T, H, W, 3], got {frames.shape}"
    return frames


def _border(frames: np.ndarray) -> np.ndarray:
    """The pixels within BORDER of the frame's edge: [T, N, C]."""
    T, C = len(frames), frames.shape[-1]
    edges = (frames[:, :BORDER], frames[:, -BORDER:], frames[:, :, :BORDER], frames[:, :, -BORDER:])
    return np.concatenate([e.reshape(T, -1, C) for e in edges], axis=1)


def estimate_background(frames: np.ndarray) -> np.ndarray:
    """Per-frame background colour: median of the border pixels, float [T, 3]."""
    return np.median(_border(frames), axis=1).astype(np.float64)  # [T, 3]


def background_noise(v: np.ndarray) -> np.ndarray:
    """Per-frame noise level of the background in matting units (robust, from the border): [T]."""
    border = _border(v)  # [T, N, 3]
    mad = np.median(np.abs(border - np.median(border, axis=1, keepdims=True)), axis=1)  # [T, 3]
    return 1.4826 * np.sqrt((mad**2).sum(-1))  # Gaussian sigma from the median absolute deviation


def palette() -> tuple[list[str], np.ndarray]:
    """The world's object colours: names and RGB [K, 3]."""
    names = list(shapes.COLOURS)
    return names, np.array([shapes.COLOURS[n] for n in names], dtype=np.float64)


def to_matte_space(
    frames: np.ndarray, background: np.ndarray, colours: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels and palette colours as offsets from the background, in matting space.

    frames [T, H, W, 3], background [T, 3], colours [K, 3] -> v [T, H, W, 3], d [T, K, 3].
    """
    v = (frames.astype(np.float32) - background[:, None, None, :].astype(np.float32)) @ MATTE_SPACE.T
    d = (colours[None, :, :] - background[:, None, :]).astype(np.float32) @ MATTE_SPACE.T
    return v, d


def _alpha_residual(v: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position along bg -> colour (alpha) and squared distance off that segment, in units of its length.

    v [..., 3], d [..., 3] (broadcast) -> alpha [...], residual [...].
    """
    dd = np.maximum((d * d).sum(-1), 1.0)
    alpha = (v * d).sum(-1) / dd
    a = np.clip(alpha, 0.0, 1.0)
    residual = ((v - a[..., None] * d) ** 2).sum(-1) / dd
    return alpha, residual


def matte(v: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Label every pixel with the palette index explaining it (-1: background): labels int [T, H, W].

    Only pixels at least half the smallest usable contrast away from the background can reach
    alpha > 0.5, so only those are matted.
    """
    usable = (d * d).sum(-1) >= MIN_CONTRAST**2  # [T, K]
    t, y, x = np.nonzero((v * v).sum(-1) >= (MIN_CONTRAST / 2) ** 2)  # candidate pixels [N] each
    alpha, residual = _alpha_residual(v[t, y, x][:, None, :], d[t])  # [N, K] each
    residual = np.where(usable[t] & (alpha > 0.5), residual, np.inf)
    best = residual.argmin(-1)  # [N]
    hit = residual[np.arange(len(best)), best] <= MAX_RESIDUAL**2  # [N]
    labels = np.full(v.shape[:3], -1, dtype=np.int64)
    labels[t[hit], y[hit], x[hit]] = best[hit]
    return labels


def fill_pinholes(labels: np.ndarray) -> np.ndarray:
    """Give a pixel whose four direct neighbours share one label that label.

    The world's shapes have no holes; single-pixel ones are noise and would lower fill ratio
    and solidity.
    """
    p = np.pad(labels, ((0, 0), (1, 1), (1, 1)), constant_values=-1)
    up, down, left, right = p[:, :-2, 1:-1], p[:, 2:, 1:-1], p[:, 1:-1, :-2], p[:, 1:-1, 2:]
    hole = (up >= 0) & (up == down) & (up == left) & (up == right)  # [T, H, W]
    return np.where(hole, up, labels)


_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def components(labels: np.ndarray) -> np.ndarray:
    """8-neighbour connected components of equal labels >= 0, every frame at once.

    Returns ids [T, H, W]: the flat index of one pixel of the component (-1 off components).
    Works on the labelled pixels only: each takes the largest id among itself and its
    same-label neighbours, then jumps to the id its id's pixel holds (ids only grow, so the
    pointed pixel is in the same component), until nothing changes: about log(diameter) to
    diameter rounds of [8, N] gathers.
    """
    T, H, W = labels.shape
    t, y, x = np.nonzero(labels >= 0)  # [N] each, raster order
    flat = (t * H + y) * W + x  # [N]
    where = np.full(T * H * W, -1)
    where[flat] = np.arange(len(flat))
    neighbours = [np.arange(len(flat))]
    for dy, dx in _NEIGHBOURS:
        ny, nx = y + dy, x + dx
        inside = (ny >= 0) & (ny < H) & (nx >= 0) & (nx < W)
        n = np.where(inside, where[(t * H + ny.clip(0, H - 1)) * W + nx.clip(0, W - 1)], -1)  # [N]
        same = (n >= 0) & (labels.reshape(-1)[flat[n]] == labels.reshape(-1)[flat])
        neighbours.append(np.where(same, n, neighbours[0]))
    neighbours = np.stack(neighbours)  # [9, N]: positions in the labelled list
    ids = np.arange(len(flat))
    while True:
        new = ids[neighbours].max(0)  # [N]
        new = new[new]  # pointer jump
        if np.array_equal(new, ids):
            break
        ids = new
    out = np.full(T * H * W, -1)
    out[flat] = flat[ids]
    return out.reshape(T, H, W)


def _hull_area(ys: np.ndarray, xs: np.ndarray) -> float:
    """Area of the convex hull of a set of pixels (as unit squares), by Andrew's monotone chain.

    Pixels come in raster order (y, then x). Only the outer corners of each row's first and
    last pixel can be hull vertices.
    """
    first = np.r_[True, ys[1:] != ys[:-1]]  # [N]
    last = np.r_[ys[1:] != ys[:-1], True]  # [N]
    lo, hi, rows = xs[first], xs[last] + 1, ys[first]  # [R] each
    px = np.concatenate([lo, lo, hi, hi])  # [4R]
    py = np.concatenate([rows, rows + 1, rows, rows + 1])  # [4R]
    order = np.lexsort((py, px))
    points = list(zip(px[order].tolist(), py[order].tolist(), strict=True))  # sorted by x, then y

    def half(pts: list) -> list:
        chain: list = []
        for p in pts:
            while (
                len(chain) >= 2
                and (
                    (chain[-1][0] - chain[-2][0]) * (p[1] - chain[-2][1])
                    - (chain[-1][1] - chain[-2][1]) * (p[0] - chain[-2][0])
                )
                <= 0
            ):
                chain.pop()
            chain.append(p)
        return chain

    hull = np.array(half(points)[:-1] + half(points[::-1])[:-1], dtype=np.float64)  # [V, 2]
    x, y = hull[:, 0], hull[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def soft_moments(alpha: np.ndarray, x0: int, y0: int) -> tuple[float, tuple[float, float], tuple[float, ...]]:
    """Mass, centroid (x, y) and symmetry signatures |c_n| / mass^(n/2 + 1) of a soft mask.

    alpha [h, w] covers pixels from (x0, y0); see the module docstring.
    """
    h, w = alpha.shape
    gy, gx = np.mgrid[y0 : y0 + h, x0 : x0 + w] + 0.5  # pixel centres [h, w] each
    mass = float(alpha.sum())
    cx, cy = float((alpha * gx).sum() / mass), float((alpha * gy).sum() / mass)
    z = (gx - cx) + 1j * (gy - cy)  # [h, w]
    signature = tuple(float(abs((alpha * z**n).sum())) / mass ** (n / 2 + 1) for n in SYMMETRY_ORDERS)
    return mass, (cx, cy), signature


def classify_shape(features: tuple[float, ...]) -> str:
    """The shape whose reference features are nearest, in SHAPE_SCALE units."""
    names = list(SHAPE_FEATURES)
    refs = np.array([SHAPE_FEATURES[n] for n in names])  # [S, F]
    dist = (((refs - np.array(features)) / SHAPE_SCALE) ** 2).sum(1)  # [S]
    return names[int(dist.argmin())]


def classify_size(shape: str, area_fraction: float) -> str:
    """Size word for a shape covering `area_fraction` of the frame."""
    half_extent = np.sqrt(area_fraction / SHAPE_AREA[shape])
    return shapes.SIZES[int(np.searchsorted(SIZE_SPLITS, half_extent))]


def detect(frames: torch.Tensor | np.ndarray) -> list[list[Detection]]:
    """Every object in every frame of uint8 [T, H, W, 3] media -> [frame][detection], largest first."""
    frames = _as_numpy(frames)
    T, H, W, _ = frames.shape
    names, colours = palette()
    v, d = to_matte_space(frames, estimate_background(frames), colours)  # [T, H, W, 3], [T, K, 3]
    labels = fill_pinholes(matte(v, d))
    noise = background_noise(v)  # [T]
    ids = components(labels)
    # an interior pixel has all four direct neighbours in its own component
    padded = np.pad(ids, ((0, 0), (1, 1), (1, 1)), constant_values=-1)
    interior = (ids >= 0) & (padded[:, :-2, 1:-1] == ids) & (padded[:, 2:, 1:-1] == ids)
    interior &= (padded[:, 1:-1, :-2] == ids) & (padded[:, 1:-1, 2:] == ids)

    flat = ids.reshape(-1)
    order = np.argsort(flat, kind="stable")  # pixels grouped by component, raster order within
    keys, starts, counts = np.unique(flat[order], return_index=True, return_counts=True)
    keep = (keys >= 0) & (counts >= MIN_AREA * H * W) & np.isin(keys, ids[interior])
    out: list[list[Detection]] = [[] for _ in range(T)]
    for key, start, count in zip(keys[keep], starts[keep], counts[keep], strict=True):
        t, ys, xs = np.unravel_index(order[start : start + count], (T, H, W))
        t, k = int(t[0]), int(labels[t[0], ys[0], xs[0]])
        x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
        # the soft object: this component plus its fringe, each pixel weighted by its alpha
        wy0, wy1, wx0, wx1 = (
            max(0, y0 - FRINGE),
            min(H, y1 + FRINGE),
            max(0, x0 - FRINGE),
            min(W, x1 + FRINGE),
        )
        alpha, residual = _alpha_residual(v[t, wy0:wy1, wx0:wx1], d[t, k])  # [h, w] each
        owner = ids[t, wy0:wy1, wx0:wx1]
        # alpha within the background's noise of 0 or 1 is 0 or 1: only real partial cover stays soft
        margin = NOISE_SIGMAS * noise[t] / float(np.linalg.norm(d[t, k]))
        fringe = (owner < 0) & (residual <= MAX_RESIDUAL**2) & (alpha >= max(MIN_ALPHA, margin))
        soft = np.where(alpha >= 1 - margin, 1.0, np.clip(alpha, 0.0, 1.0))
        _, centroid, signature = soft_moments(np.where(fringe | (owner == key), soft, 0.0), wx0, wy0)
        box_area = (x1 - x0) * (y1 - y0)
        features = signature + (count / box_area, count / _hull_area(ys, xs), (centroid[1] - y0) / (y1 - y0))
        shape = classify_shape(features)
        out[t].append(
            Detection(
                colour=names[k],
                shape=shape,
                size=classify_size(shape, count / (H * W)),
                centre=((x0 + x1) / 2, (y0 + y1) / 2),
                centroid=centroid,
                box=(x0, y0, x1, y1),
                area=int(count),
                features=tuple(round(f, 4) for f in features),
            )
        )
    for dets in out:
        dets.sort(key=lambda det: -det.area)
    return out
