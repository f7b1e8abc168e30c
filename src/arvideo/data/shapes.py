"""The shapes world: seeded, captioned clips of flat coloured shapes with per-frame ground truth.

Real video cannot be downloaded here, so arvideo trains and evaluates on a world it can render
exactly. A clip is one or two objects (shape, colour, size) on a plain background, each moving
in one of nine directions (or standing still); an image is one frame whose caption names the
3x3 grid cell of each object. Everything is chosen so a weight-free detector can read a frame
back: saturated colours 60 degrees apart in hue on unsaturated backgrounds, sharp edges, shapes
that fill different fractions of their box (square 1.0, circle about 0.78, triangle about 0.53,
star about 0.42; the star is also the only non-convex one), objects that never overlap and never
leave the frame, and two objects always differ in colour.

Coordinates are pixels with x to the right and y down; pixel i covers [i, i + 1), so a centre
of (32.0, 32.0) sits in the middle of a 64x64 frame. Every shape fits inside the square of
half-side `half_extent(size, frame_size)` around its centre.

    rng = numpy.random.default_rng(0)
    clip = make_clip(rng, "video")      # clip.video: uint8 [17, 64, 64, 3], clip.caption, clip.truth
    parse_prompt(clip.caption)          # back to shapes, colours, sizes, motions, positions
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch

from arvideo.errors import ArvideoError

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
# Saturated, 60 degrees apart in hue: a colour segmenter tells them apart, and none is close to
# an unsaturated background.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "yellow": (235, 215, 25),
    "green": (30, 190, 40),
    "cyan": (25, 205, 215),
    "blue": (40, 70, 235),
    "magenta": (215, 40, 215),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "white": (255, 255, 255),
}
SIZES: tuple[str, ...] = ("small", "large")
# Unit direction per motion; y grows downwards, so "up" is negative y.
_D = 1 / math.sqrt(2)
MOTION_VECTORS: dict[str, tuple[float, float]] = {
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
    "still": (0.0, 0.0),
    "up-left": (-_D, -_D),
    "up-right": (_D, -_D),
    "down-left": (-_D, _D),
    "down-right": (_D, _D),
}
MOTIONS: tuple[str, ...] = tuple(MOTION_VECTORS)
# The 3x3 grid, row by row; an image caption names the cell holding each object's centre.
POSITIONS: tuple[str, ...] = (
    "top left", "top", "top right",
    "left", "center", "right",
    "bottom left", "bottom", "bottom right",
)  # fmt: skip

DEFAULT_SIZE = 64
DEFAULT_FRAMES = 17
MIN_SIZE = 32
# Half-side of the square that holds a shape, as a fraction of the frame side (64 px: 6.4 and 11.5).
SIZE_FRACTION = {"small": 0.10, "large": 0.18}
# A moving object travels this fraction of the frame side over the clip (64 px: 22.4 px).
TRAVEL_FRACTION = 0.35
EDGE_MARGIN = 1.0  # pixels kept free between any object and the frame border
OBJECT_GAP = 2.0  # pixels kept free between the squares of two objects, at every frame
CELL_MARGIN = 0.05  # image objects sit this fraction of the side away from their cell's edges
STAR_INNER = 0.42  # inner radius of the five-pointed star over its outer radius (chunky, easy to see)
_MAX_TRIES = 200


@dataclass(frozen=True)
class ObjectSpec:
    """One object: what it is, where its centre starts (pixels) and where it goes."""

    shape: str
    colour: str
    size: str
    start: tuple[float, float]
    motion: str = "still"


@dataclass(frozen=True)
class ClipSpec:
    """Everything needed to render a clip; `speed` is pixels per frame along the motion."""

    objects: tuple[ObjectSpec, ...]
    background: str
    n_frames: int = DEFAULT_FRAMES
    size: int = DEFAULT_SIZE
    speed: float = TRAVEL_FRACTION * DEFAULT_SIZE / (DEFAULT_FRAMES - 1)

    @property
    def kind(self) -> Literal["video", "image"]:
        return "image" if self.n_frames == 1 else "video"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClipSpec:
        objects = tuple(ObjectSpec(**{**o, "start": tuple(o["start"])}) for o in d["objects"])
        return cls(**{**d, "objects": objects})


@dataclass
class ObjectState:
    """Ground truth of one object in one frame; `box` is (x0, y0, x1, y1), ends exclusive."""

    shape: str
    colour: str
    size: str
    centre: tuple[float, float]
    box: tuple[int, int, int, int]


@dataclass
class Clip:
    """A drawn sample: its spec, its caption, its frames and the truth of every object in every frame."""

    spec: ClipSpec
    caption: str
    video: torch.Tensor  # uint8 [T, H, W, 3]
    truth: list[list[ObjectState]] = field(default_factory=list)  # [frame][object]

    def meta(self) -> dict[str, Any]:
        """JSON-ready spec and per-frame truth (what meta.jsonl stores next to each clip)."""
        return {"spec": self.spec.to_dict(), "truth": [[asdict(s) for s in frame] for frame in self.truth]}


def half_extent(size: str, frame_size: int = DEFAULT_SIZE) -> float:
    """Half-side in pixels of the square holding an object of this size."""
    return SIZE_FRACTION[size] * frame_size


def position_of(centre: tuple[float, float], frame_size: int = DEFAULT_SIZE) -> str:
    """The 3x3 grid cell (a POSITIONS word) holding a centre."""
    col, row = (min(int(3 * c / frame_size), 2) for c in centre)
    return POSITIONS[3 * row + col]


def trajectory(obj: ObjectSpec, spec: ClipSpec) -> np.ndarray:
    """Centre of `obj` at every frame of `spec`, shape [T, 2] (x, y)."""
    t = np.arange(spec.n_frames, dtype=np.float64)[:, None]  # [T, 1]
    step = spec.speed * np.asarray(MOTION_VECTORS[obj.motion])  # [2]
    return np.asarray(obj.start) + t * step  # [T, 2]


# ---------------------------------------------------------------------------------------------
# sampling


def _pick(rng: np.random.Generator, options) -> str:
    return options[int(rng.integers(len(options)))]


def _start_range(r: float, shift: float, frame_size: int) -> tuple[float, float]:
    """Start coordinates keeping a square of half-side r inside the frame after moving by `shift`."""
    lo = r + EDGE_MARGIN - min(0.0, shift)
    hi = frame_size - r - EDGE_MARGIN - max(0.0, shift)
    return lo, hi


def _apart(a: np.ndarray, ra: float, b: np.ndarray, rb: float) -> bool:
    """True when two squares (centres [T, 2]) keep OBJECT_GAP between them at every frame."""
    sep = np.abs(a - b) >= ra + rb + OBJECT_GAP  # [T, 2]
    return bool(sep.any(axis=1).all())


def _sample_start(
    rng: np.random.Generator,
    shape: str,
    colour: str,
    size: str,
    motion: str,
    spec: ClipSpec,
    cell: str | None,
) -> ObjectSpec:
    r = half_extent(size, spec.size)
    shift = spec.speed * (spec.n_frames - 1) * np.asarray(MOTION_VECTORS[motion])
    start = []
    for axis in range(2):
        lo, hi = _start_range(r, float(shift[axis]), spec.size)
        if cell is not None:  # images: stay inside the named grid cell, away from its edges
            index = POSITIONS.index(cell) % 3 if axis == 0 else POSITIONS.index(cell) // 3
            third = spec.size / 3
            lo = max(lo, index * third + CELL_MARGIN * spec.size)
            hi = min(hi, (index + 1) * third - CELL_MARGIN * spec.size)
        if hi < lo:
            raise ArvideoError(
                f"a {size} object moving {motion} does not fit in a {spec.size}px frame over {spec.n_frames} "
                f"frames; use a larger --size or fewer --frames"
            )
        start.append(round(float(rng.uniform(lo, hi)), 2))
    return ObjectSpec(shape, colour, size, (start[0], start[1]), motion)


def check_settings(
    kind: Literal["video", "image"],
    size: int,
    n_frames: int | None = None,
    max_objects: int = 2,
    min_objects: int = 1,
) -> int:
    """Refuse settings the world cannot draw; return the frame count (default 17 for videos, 1 for images)."""
    if kind not in ("video", "image"):
        raise ArvideoError(f"kind must be 'video' or 'image', got {kind!r}")
    if n_frames is None:
        n_frames = 1 if kind == "image" else DEFAULT_FRAMES
    if kind == "image" and n_frames != 1:
        raise ArvideoError(f"images have exactly 1 frame, got {n_frames} frames")
    if kind == "video" and n_frames < 2:
        raise ArvideoError(f"videos need at least 2 frames to show motion, got {n_frames}")
    if size < MIN_SIZE:
        raise ArvideoError(f"frame size must be >= {MIN_SIZE} pixels, got {size}")
    if max_objects not in (1, 2):
        raise ArvideoError(f"max_objects must be 1 or 2, got {max_objects}")
    if not 1 <= min_objects <= max_objects:
        raise ArvideoError(
            f"min_objects must be between 1 and max_objects ({max_objects}), got {min_objects}"
        )
    return n_frames


def random_spec(
    rng: np.random.Generator,
    kind: Literal["video", "image"] = "video",
    size: int = DEFAULT_SIZE,
    n_frames: int | None = None,
    max_objects: int = 2,
    min_objects: int = 1,
) -> ClipSpec:
    """Draw a random clip (or image) spec; every draw goes through `rng`, so a seed fixes it.

    `n_frames` defaults to 17 for videos and must be 1 (the default) for images.
    """
    n_frames = check_settings(kind, size, n_frames, max_objects, min_objects)
    speed = TRAVEL_FRACTION * size / (n_frames - 1) if n_frames > 1 else 0.0
    spec = ClipSpec((), _pick(rng, tuple(BACKGROUNDS)), n_frames, size, speed)
    n_objects = int(rng.integers(min_objects, max_objects + 1))
    return _place(rng, spec, [ParsedObject() for _ in range(n_objects)])


def spec_from_prompt(
    prompt: str,
    rng: np.random.Generator,
    kind: Literal["video", "image"] = "video",
    size: int = DEFAULT_SIZE,
    n_frames: int | None = None,
) -> ClipSpec:
    """A clip spec that shows what `prompt` asks for; what it leaves open is drawn from `rng`.

    Unknown words, two objects of one colour, a motion in an image or a grid position in a video
    raise ArvideoError, so a prompt file cannot quietly render something else.
    """
    parsed = parse_prompt(prompt)
    n_frames = check_settings(kind, size, n_frames, max_objects=min(len(parsed.objects), 2))
    if len(parsed.objects) > 2:
        raise ArvideoError(f"prompt {prompt!r} names {len(parsed.objects)} objects; the world draws 1 or 2")
    colours = [o.colour for o in parsed.objects if o.colour]
    if len(set(colours)) < len(colours):
        raise ArvideoError(f"prompt {prompt!r} gives two objects the same colour; they must differ")
    for o in parsed.objects:
        if kind == "image" and o.motion not in (None, "still"):
            raise ArvideoError(f"prompt {prompt!r} asks for motion in an image; drop it or make a video")
        if kind == "video" and o.position is not None:
            raise ArvideoError(f"prompt {prompt!r} names a grid position, which only images have (--images)")
    speed = TRAVEL_FRACTION * size / (n_frames - 1) if n_frames > 1 else 0.0
    background = parsed.background or _pick(rng, tuple(BACKGROUNDS))
    return _place(rng, ClipSpec((), background, n_frames, size, speed), list(parsed.objects))


def _place(rng: np.random.Generator, spec: ClipSpec, wanted: list[ParsedObject]) -> ClipSpec:
    """Fill in the attributes `wanted` leaves open and give every object a start point.

    Rejection sampling: place objects one by one; when a later one finds no free path (a large
    diagonal mover can sweep the middle of the frame), start the whole layout again.
    """
    taken_cells = {w.position for w in wanted if w.position}
    for _ in range(_MAX_TRIES):
        objects: list[ObjectSpec] = []
        free_cells = []  # distinct grid cells for the image objects whose prompt names none
        if spec.kind == "image":
            free_cells = [
                POSITIONS[c] for c in rng.permutation(len(POSITIONS)) if POSITIONS[c] not in taken_cells
            ]
        for w in wanted:
            colours = tuple(
                c for c in COLOURS if c not in {o.colour for o in objects} | {v.colour for v in wanted}
            )
            motion = "still" if spec.kind == "image" else (w.motion or _pick(rng, MOTIONS))
            obj = _sample_start(
                rng,
                w.shape or _pick(rng, SHAPES),
                w.colour or _pick(rng, colours),
                w.size or _pick(rng, SIZES),
                motion,
                spec,
                None if spec.kind == "video" else (w.position or free_cells.pop(0)),
            )
            path, r = trajectory(obj, spec), half_extent(obj.size, spec.size)
            if not all(_apart(path, r, trajectory(o, spec), half_extent(o.size, spec.size)) for o in objects):
                break
            objects.append(obj)
        if len(objects) == len(wanted):
            return replace(spec, objects=tuple(objects))
    raise ArvideoError(
        f"could not place {len(wanted)} objects in a {spec.size}px frame in {_MAX_TRIES} tries"
    )


# ---------------------------------------------------------------------------------------------
# rendering


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Inside-test of a shape of half-extent r, on offsets from its centre (any broadcast shape)."""
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= r
    if shape == "triangle":  # apex up at (0, -r), base from (-r, r) to (r, r)
        return (dy <= r) & (np.abs(dx) <= (dy + r) / 2)
    if shape == "star":  # five points, one straight up
        # Fold the angle into the half-sector between an outer point (angle 0, radius r) and the
        # next inner corner (36 degrees, radius STAR_INNER * r); inside = origin's side of that edge.
        rho = np.hypot(dx, dy)
        phi = np.mod(np.arctan2(dy, dx) + np.pi / 2, 2 * np.pi / 5)
        phi = np.minimum(phi, 2 * np.pi / 5 - phi)
        px, py = rho * np.cos(phi), rho * np.sin(phi)
        ix, iy = STAR_INNER * r * math.cos(np.pi / 5), STAR_INNER * r * math.sin(np.pi / 5)
        return (ix - r) * py - iy * (px - r) >= 0
    raise ArvideoError(f"unknown shape {shape!r}; shapes are {', '.join(SHAPES)}")


def check_spec(spec: ClipSpec) -> None:
    """Refuse specs the world never produces: unknown words, objects leaving the frame."""
    if spec.n_frames < 1 or spec.size < MIN_SIZE:
        raise ArvideoError(f"need n_frames >= 1 and size >= {MIN_SIZE}, got {spec.n_frames} and {spec.size}")
    words = [(spec.background, BACKGROUNDS)]
    for o in spec.objects:
        words += [(o.shape, SHAPES), (o.colour, COLOURS), (o.size, SIZES), (o.motion, MOTIONS)]
    for word, known in words:
        if word not in known:
            raise ArvideoError(f"unknown word {word!r} in clip spec; expected one of {', '.join(known)}")
    for obj in spec.objects:
        r = half_extent(obj.size, spec.size)
        path = trajectory(obj, spec)
        if (path - r < 0).any() or (path + r > spec.size).any():
            raise ArvideoError(f"the {obj.colour} {obj.shape} leaves the {spec.size}px frame; move its start")


def render(spec: ClipSpec) -> tuple[torch.Tensor, list[list[ObjectState]]]:
    """Draw a spec: uint8 video [T, H, W, 3] and the ground truth of every object in every frame."""
    check_spec(spec)
    T, S = spec.n_frames, spec.size
    grid = np.arange(S, dtype=np.float64) + 0.5  # pixel centres
    video = np.empty((T, S, S, 3), dtype=np.uint8)
    video[:] = BACKGROUNDS[spec.background]
    truth: list[list[ObjectState]] = [[] for _ in range(T)]
    for obj in spec.objects:
        path = trajectory(obj, spec)  # [T, 2]
        dx = grid[None, None, :] - path[:, 0, None, None]  # [T, 1, W]
        dy = grid[None, :, None] - path[:, 1, None, None]  # [T, H, 1]
        mask = _shape_mask(obj.shape, dx, dy, half_extent(obj.size, S))  # [T, H, W]
        video[mask] = COLOURS[obj.colour]
        rows, cols = mask.any(axis=2), mask.any(axis=1)  # [T, H], [T, W]
        y0, y1 = rows.argmax(1), S - rows[:, ::-1].argmax(1)  # [T]
        x0, x1 = cols.argmax(1), S - cols[:, ::-1].argmax(1)  # [T]
        for t in range(T):
            truth[t].append(
                ObjectState(
                    obj.shape,
                    obj.colour,
                    obj.size,
                    (float(path[t, 0]), float(path[t, 1])),
                    (int(x0[t]), int(y0[t]), int(x1[t]), int(y1[t])),
                )
            )
    return torch.from_numpy(video), truth


# ---------------------------------------------------------------------------------------------
# captions

MOTION_PHRASES: dict[str, str] = {
    "left": "to the left",
    "right": "to the right",
    "up": "up",
    "down": "down",
    "still": "still",
    "up-left": "up and to the left",
    "up-right": "up and to the right",
    "down-left": "down and to the left",
    "down-right": "down and to the right",
}
POSITION_PHRASES: dict[str, str] = {
    "top left": "in the top left",
    "top": "at the top",
    "top right": "in the top right",
    "left": "on the left",
    "center": "in the center",
    "right": "on the right",
    "bottom left": "in the bottom left",
    "bottom": "at the bottom",
    "bottom right": "in the bottom right",
}
_MOVE_VERBS = ("moves", "slides", "travels", "glides")
_STILL_VERBS = ("stays", "sits", "remains")
_IMAGE_VERBS = ("", "sits ", "is ")
_BACKGROUND_PREPOSITIONS = ("on", "against", "over")


def _noun_phrase(obj: ObjectSpec) -> str:
    return f"a {obj.size} {obj.colour} {obj.shape}"


def caption(spec: ClipSpec, rng: np.random.Generator) -> str:
    """A caption for `spec`, drawn from a few regular templates (videos: motion; images: position).

    The vocabulary stays small and every caption parses back with `parse_prompt`.
    """
    clauses = []
    for obj in spec.objects:
        if spec.kind == "image":
            verb = _pick(rng, _IMAGE_VERBS)
            clauses.append(f"{_noun_phrase(obj)} {verb}{POSITION_PHRASES[position_of(obj.start, spec.size)]}")
        else:
            verb = _pick(rng, _STILL_VERBS if obj.motion == "still" else _MOVE_VERBS)
            clauses.append(f"{_noun_phrase(obj)} {verb} {MOTION_PHRASES[obj.motion]}")
    objects = " and ".join(clauses)
    moving = spec.kind == "video" and all(o.motion != "still" for o in spec.objects)
    preposition = _pick(rng, _BACKGROUND_PREPOSITIONS + (("across",) if moving else ()))
    if rng.random() < 0.25:
        return f"on a {spec.background} background, {objects}"
    return f"{objects} {preposition} a {spec.background} background"


def make_clip(
    rng: np.random.Generator,
    kind: Literal["video", "image"] = "video",
    size: int = DEFAULT_SIZE,
    n_frames: int | None = None,
    max_objects: int = 2,
    min_objects: int = 1,
) -> Clip:
    """Draw, render and caption one random clip (or image) of min_objects to max_objects objects."""
    spec = random_spec(
        rng, kind, size=size, n_frames=n_frames, max_objects=max_objects, min_objects=min_objects
    )
    video, truth = render(spec)
    return Clip(spec, caption(spec, rng), video, truth)


def make_clips(
    n: int,
    seed: int = 0,
    kind: Literal["video", "image"] = "video",
    size: int = DEFAULT_SIZE,
    n_frames: int | None = None,
    max_objects: int = 2,
    min_objects: int = 1,
) -> Iterator[Clip]:
    """Clips 0..n-1 of the set named by `seed`; clip i draws from its own generator seeded (seed, i),
    so the first k clips are the same whatever n is."""
    check_settings(kind, size, n_frames, max_objects, min_objects)
    if seed < 0:
        raise ArvideoError(f"seed must be >= 0, got {seed}")
    for i in range(n):
        yield make_clip(np.random.default_rng([seed, i]), kind, size, n_frames, max_objects, min_objects)


# ---------------------------------------------------------------------------------------------
# parsing prompts back into attributes


@dataclass(frozen=True)
class ParsedObject:
    """What a prompt says about one object; None where it says nothing."""

    shape: str | None = None
    colour: str | None = None
    size: str | None = None
    motion: str | None = None
    position: str | None = None


@dataclass(frozen=True)
class ParsedPrompt:
    objects: tuple[ParsedObject, ...]
    background: str | None = None


def _phrase_table() -> dict[tuple[str, ...], tuple[str, str]]:
    """Every word or phrase the parser knows, as word tuples -> (attribute, value)."""
    table: dict[str, tuple[str, str]] = {}
    table.update({s: ("shape", s) for s in SHAPES})
    table.update({c: ("colour", c) for c in COLOURS})
    table.update({s: ("size", s) for s in SIZES} | {"big": ("size", "large")})
    table.update({b: ("background", b) for b in BACKGROUNDS} | {"grey": ("background", "gray")})
    for motion, phrase in MOTION_PHRASES.items():
        table[phrase] = ("motion", motion)
        table[motion.replace("-", " ")] = ("motion", motion)  # "left", "up left" (hyphens become spaces)
    for pos in POSITIONS + ("middle",):
        value = "center" if pos == "middle" else pos
        for prefix in ("in the ", "at the ", "on the "):
            table[prefix + pos] = ("position", value)
            table[prefix + pos + " corner"] = ("position", value)
        if pos not in ("left", "right"):  # bare "left"/"right" mean motion
            table[pos] = ("position", value)
    filler = (
        "a an the and on in at of over across against front with background is there "
        "move moving slide sliding travel traveling glide gliding stay staying sit sitting remain remaining "
        + " ".join(_MOVE_VERBS + _STILL_VERBS)
    )
    table.update({w: ("filler", w) for w in filler.split()})
    return {tuple(k.split()): v for k, v in table.items()}


_PHRASES = _phrase_table()
_LONGEST = max(len(k) for k in _PHRASES)


def parse_prompt(text: str, strict: bool = True) -> ParsedPrompt:
    """Read shapes, colours, sizes, motions, positions and the background back from a prompt.

    Size and colour words attach to the next shape word; motion and position phrases to the last
    shape before them (or the next one, if none came yet). With `strict`, any word outside the
    world's vocabulary raises ArvideoError naming it, so a prompt file cannot silently ask for a
    "purple hexagon".
    """
    words = re.sub(r"[^a-z ]", " ", text.lower().replace("-", " ")).split()
    pending: dict[str, str] = {}
    objects: list[dict[str, str]] = []
    background: str | None = None

    def put(target: dict[str, str], key: str, value: str) -> None:
        if key in target and target[key] != value:
            raise ArvideoError(f"prompt {text!r} gives one object two {key}s: {target[key]} and {value}")
        target[key] = value

    unknown: list[str] = []
    i = 0
    while i < len(words):
        for n in range(min(_LONGEST, len(words) - i), 0, -1):
            hit = _PHRASES.get(tuple(words[i : i + n]))
            if hit is not None:
                break
        else:
            unknown.append(words[i])
            i += 1
            continue
        key, value = hit
        i += n
        following = _PHRASES.get((words[i],), ("", ""))[0] if i < len(words) else ""
        if key == "colour" and following == "filler" and words[i] == "background":
            raise ArvideoError(f"{value!r} is an object colour; backgrounds are {', '.join(BACKGROUNDS)}")
        if key == "background" and following in ("shape", "size", "colour"):
            raise ArvideoError(f"{value!r} is a background colour; object colours are {', '.join(COLOURS)}")
        if key == "background":
            if background not in (None, value):
                raise ArvideoError(f"prompt {text!r} names two backgrounds: {background} and {value}")
            background = value
        elif key == "shape":
            objects.append({**pending, "shape": value})
            pending = {}
        elif key in ("colour", "size"):
            put(pending, key, value)
        elif key in ("motion", "position"):
            put(objects[-1] if objects and not pending else pending, key, value)
    if unknown and strict:
        raise ArvideoError(
            f"unknown word(s) {', '.join(map(repr, unknown))} in prompt {text!r}; shapes are "
            f"{', '.join(SHAPES)}, colours {', '.join(COLOURS)}, backgrounds {', '.join(BACKGROUNDS)}"
        )
    if pending:
        raise ArvideoError(f"prompt {text!r} has {' '.join(pending.values())!r} without a shape after it")
    if not objects:
        raise ArvideoError(f"prompt {text!r} names no shape; shapes are {', '.join(SHAPES)}")
    return ParsedPrompt(tuple(ParsedObject(**o) for o in objects), background)
