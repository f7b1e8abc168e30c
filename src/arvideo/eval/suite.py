"""The ShapesBench prompt suites: fixed, versioned lists of text-to-image, text-to-video and
image-to-video cases drawn from the shapes world.

A suite is a checked-in JSON file (`suites/shapesbench-<version>.json`) so scores stay
comparable while the caption templates or the sampler of `arvideo.data.shapes` evolve. Every
case stores its prompt, its expected attributes and the `ClipSpec` that renders its ground
truth; an image-to-video case's given first frame is frame 0 of that render. `build_suite`
draws a suite from a recipe and a seed, and the file was written by it (a test checks that
it still makes the same cases):

    python -c "from arvideo.eval.suite import *; save_suite(build_suite('v1'))"

Design of v1 (numbers in RECIPES): text-to-image cases cover every (shape, colour, size)
combination once, each at a 3x3 grid position; video cases balance motions, shapes, colours
and sizes, a third or so with two objects. Objects sit in the middle of their grid cell (images)
or on a path centred somewhere in the frame (videos), never overlap and never leave the frame.
The subset (every 4th case of each task) is for quick checks in CI.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from arvideo.data import shapes
from arvideo.errors import ArvideoError
from arvideo.files import atomic_write
from arvideo.io import write_video
from arvideo.progress import progress

SUITES_DIR = Path(__file__).parent / "suites"
TASKS = ("t2i", "t2v", "i2v")
# Case counts per task (videos: with one object, with two), the CI subset stride, and the seed.
RECIPES: dict[str, dict[str, Any]] = {
    "v1": {"seed": 20250801, "t2i": 48, "t2v": (40, 24), "i2v": (24, 8), "subset_every": 4},
}
_MAX_TRIES = 100  # placements tried before a two-object clip's motions are redrawn
POSITION_JITTER = 0.04  # image objects sit within this fraction of the side of their cell's centre


@dataclass(frozen=True)
class Case:
    """One prompt of the suite and everything needed to score an answer to it."""

    id: str
    task: str  # "t2i", "t2v" or "i2v"
    prompt: str
    spec: shapes.ClipSpec  # renders the ground truth; for i2v, frame 0 is the given first frame

    @property
    def n_frames(self) -> int:
        return self.spec.n_frames

    @property
    def size(self) -> int:
        return self.spec.size

    def expected(self) -> dict[str, Any]:
        """The attributes the prompt asks for (images: position; videos: motion)."""
        objects = []
        for obj in self.spec.objects:
            where = {"position": shapes.position_of(obj.start, self.size)} if self.task == "t2i" else {}
            motion = {} if self.task == "t2i" else {"motion": obj.motion}
            objects.append({"shape": obj.shape, "colour": obj.colour, "size": obj.size, **where, **motion})
        return {"background": self.spec.background, "objects": objects}

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "task": self.task, "prompt": self.prompt, "n_frames": self.n_frames,
            "size": self.size, "expected": self.expected(), "spec": self.spec.to_dict(),
        }  # fmt: skip


@dataclass(frozen=True)
class Suite:
    name: str  # "v1"
    cases: tuple[Case, ...]
    subset_ids: tuple[str, ...]

    def select(self, subset: bool) -> list[Case]:
        """All cases, or only the CI subset."""
        return [c for c in self.cases if c.id in self.subset_ids] if subset else list(self.cases)

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": "shapesbench",
            "version": self.name,
            "built_by": f"arvideo.eval.suite.build_suite({self.name!r})",
            "recipe": RECIPES.get(self.name),
            "subset": list(self.subset_ids),
            "cases": [c.to_dict() for c in self.cases],
        }


# ---------------------------------------------------------------------------------------------
# loading


def suite_path(name: str) -> Path:
    return SUITES_DIR / f"shapesbench-{name}.json"


def available_suites() -> list[str]:
    return sorted(p.stem.removeprefix("shapesbench-") for p in SUITES_DIR.glob("shapesbench-*.json"))


@cache
def load_suite(name: str = "v1") -> Suite:
    """The checked-in suite `name` (e.g. "v1")."""
    path = suite_path(name)
    if not path.exists():
        raise ArvideoError(f"unknown ShapesBench suite {name!r}; available: {', '.join(available_suites())}")
    data = json.loads(path.read_text())
    cases = []
    for d in data["cases"]:
        case = Case(d["id"], d["task"], d["prompt"], shapes.ClipSpec.from_dict(d["spec"]))
        if case.expected() != d["expected"]:
            raise ArvideoError(
                f"suite file {path} is inconsistent at case {case.id}: expected attributes differ"
            )
        cases.append(case)
    return Suite(name, tuple(cases), tuple(data["subset"]))


def first_frame(case: Case) -> torch.Tensor:
    """The image an image-to-video case gives the model: uint8 [H, W, 3]."""
    video, _ = shapes.render(case.spec)
    return video[0]


def render_ground_truth(
    suite: Suite | str,
    out_dir: str | os.PathLike,
    subset: bool = False,
    video_format: str = "mp4",
    overwrite: bool = False,
) -> Path:
    """Write the ground truth of every case, named by case id, as the evaluator expects media.

    Images become `<id>.png`, videos `<id>.<video_format>` (mp4 or gif); image-to-video cases
    also get their given first frame as `<id>.first.png`. The folder appears only when complete.
    """
    suite = load_suite(suite) if isinstance(suite, str) else suite
    if video_format not in ("mp4", "gif"):
        raise ArvideoError(f"video format must be mp4 or gif, got {video_format!r}")
    with atomic_write(out_dir, overwrite=overwrite, is_dir=True) as tmp:
        for case in progress(suite.select(subset), desc="ground truth"):
            video, _ = shapes.render(case.spec)
            suffix = "png" if case.task == "t2i" else video_format
            write_video(tmp / f"{case.id}.{suffix}", video)
            if case.task == "i2v":
                write_video(tmp / f"{case.id}.first.png", video[:1])
    return Path(out_dir)


# ---------------------------------------------------------------------------------------------
# building (run once per version; the JSON is what everyone uses)


def _balanced(rng: np.random.Generator, values: tuple[str, ...], n: int) -> list[str]:
    """n values, each appearing n // len(values) or one more times, in random order."""
    blocks = [values[i] for _ in range(-(-n // len(values))) for i in rng.permutation(len(values))]
    return [blocks[i] for i in rng.permutation(n)]


def _fits(spec: shapes.ClipSpec) -> bool:
    """Objects keep OBJECT_GAP between their squares at every frame and never leave the frame."""
    paths = [(shapes.trajectory(o, spec), shapes.half_extent(o.size, spec.size)) for o in spec.objects]
    for (a, ra), (b, rb) in itertools.combinations(paths, 2):
        if not (np.abs(a - b) >= ra + rb + shapes.OBJECT_GAP).any(axis=1).all():
            return False
    margin = shapes.EDGE_MARGIN
    return all((p - r >= margin).all() and (p + r <= spec.size - margin).all() for p, r in paths)


def _image_start(rng: np.random.Generator, size: str, cell: int, frame: int) -> tuple[float, float]:
    """Near the centre of grid cell `cell`, clamped into the frame and the cell."""
    r = shapes.half_extent(size, frame)
    third, inset = frame / 3, shapes.CELL_MARGIN * frame
    start = []
    for index in (cell % 3, cell // 3):
        x = (index + 0.5) * third + rng.uniform(-POSITION_JITTER, POSITION_JITTER) * frame
        x = np.clip(x, r + shapes.EDGE_MARGIN, frame - r - shapes.EDGE_MARGIN)
        start.append(round(float(np.clip(x, index * third + inset, (index + 1) * third - inset)), 2))
    return start[0], start[1]


def _video_start(
    rng: np.random.Generator, size: str, motion: str, spec: shapes.ClipSpec
) -> tuple[float, float]:
    """A start whose whole path stays in the frame, its midpoint uniform over where that holds."""
    r = shapes.half_extent(size, spec.size)
    shift = spec.speed * (spec.n_frames - 1) * np.asarray(shapes.MOTION_VECTORS[motion])  # [2]
    lo = r + shapes.EDGE_MARGIN + np.abs(shift) / 2
    mid = rng.uniform(lo, spec.size - lo)  # [2]
    start = mid - shift / 2
    return round(float(start[0]), 2), round(float(start[1]), 2)


def _draw_objects(rng: np.random.Generator, n_objects: int, n_cases: int) -> list[list[dict]]:
    """Video objects for n_cases cases of n_objects each; every attribute is balanced over objects."""
    n = n_objects * n_cases
    shape, size, motion = (_balanced(rng, v, n) for v in (shapes.SHAPES, shapes.SIZES, shapes.MOTIONS))
    if n_objects == 1:
        colour = _balanced(rng, tuple(shapes.COLOURS), n)
    else:  # two objects always differ in colour
        names = list(shapes.COLOURS)
        colour = [c for _ in range(n_cases) for c in rng.permutation(names)[:n_objects].tolist()]
    objects = [
        dict(shape=s, colour=c, size=z, motion=m)
        for s, c, z, m in zip(shape, colour, size, motion, strict=True)
    ]
    return [objects[i * n_objects : (i + 1) * n_objects] for i in range(n_cases)]


def _check_prompt(case: Case) -> None:
    """The prompt must parse back to exactly the expected attributes."""
    parsed = shapes.parse_prompt(case.prompt)
    expected = case.expected()
    got = [{k: v for k, v in vars(o).items() if v is not None} for o in parsed.objects]
    assert parsed.background == expected["background"] and got == expected["objects"], (case.prompt, expected)


def _image_specs(rng: np.random.Generator, n_cases: int, size: int) -> list[shapes.ClipSpec]:
    """One object per image; every (shape, colour, size) combination once; cells and backgrounds balanced."""
    combos = list(itertools.product(shapes.SHAPES, shapes.COLOURS, shapes.SIZES))
    assert len(combos) == n_cases, f"t2i covers all {len(combos)} combinations, the recipe says {n_cases}"
    cells = _balanced(rng, tuple(range(len(shapes.POSITIONS))), n_cases)
    backgrounds = _balanced(rng, tuple(shapes.BACKGROUNDS), n_cases)
    specs = []
    for i in rng.permutation(n_cases):
        shape, colour, obj_size = combos[i]
        start = _image_start(rng, obj_size, cells[i], size)
        obj = shapes.ObjectSpec(shape, colour, obj_size, start)
        specs.append(shapes.ClipSpec((obj,), backgrounds[i], 1, size, 0.0))
    return specs


def _video_specs(
    rng: np.random.Generator, counts: tuple[int, ...], size: int, n_frames: int
) -> list[shapes.ClipSpec]:
    """counts[k] clips of k + 1 objects, in random order.

    Starts are redrawn until the objects keep apart; some motion pairs of two large objects
    cannot (their paths must cross), so after _MAX_TRIES the last object's motion is redrawn.
    """
    groups = [g for k, n in enumerate(counts) for g in _draw_objects(rng, k + 1, n)]
    backgrounds = _balanced(rng, tuple(shapes.BACKGROUNDS), len(groups))
    speed = shapes.TRAVEL_FRACTION * size / (n_frames - 1)
    specs = []
    for i in rng.permutation(len(groups)):
        group = [dict(o) for o in groups[i]]
        for attempt in itertools.count(1):
            spec = shapes.ClipSpec((), backgrounds[i], n_frames, size, speed)
            objects = []
            for o in group:
                start = _video_start(rng, o["size"], o["motion"], spec)
                objects.append(shapes.ObjectSpec(o["shape"], o["colour"], o["size"], start, o["motion"]))
            candidate = shapes.ClipSpec(tuple(objects), spec.background, n_frames, size, speed)
            if _fits(candidate):
                break
            if attempt % _MAX_TRIES == 0:
                group[-1]["motion"] = shapes.MOTIONS[int(rng.integers(len(shapes.MOTIONS)))]
        specs.append(candidate)
    return specs


def build_suite(name: str = "v1") -> Suite:
    """Draw suite `name` from its recipe; the same name always gives the same suite."""
    if name not in RECIPES:
        raise ArvideoError(f"no recipe for ShapesBench suite {name!r}; recipes: {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    rng = np.random.default_rng(recipe["seed"])
    size, n_frames = shapes.DEFAULT_SIZE, shapes.DEFAULT_FRAMES
    cases: list[Case] = []
    for task in TASKS:
        if task == "t2i":
            specs = _image_specs(rng, recipe[task], size)
        else:
            specs = _video_specs(rng, recipe[task], size, n_frames)
        for i, spec in enumerate(specs):
            case = Case(f"{task}-{i:03d}", task, shapes.caption(spec, rng), spec)
            _check_prompt(case)
            cases.append(case)
    every = recipe["subset_every"]
    subset = tuple(c.id for c in cases if int(c.id.split("-")[1]) % every == 0)
    return Suite(name, tuple(cases), subset)


def suite_json(suite: Suite) -> str:
    """The suite file's text: readable header, one case per line (diffs show changed cases)."""
    data = suite.to_dict()
    cases = ",\n".join("  " + json.dumps(c) for c in data.pop("cases"))
    return json.dumps(data, indent=1)[:-2] + ',\n "cases": [\n' + cases + "\n ]\n}\n"


def save_suite(suite: Suite, path: str | os.PathLike | None = None, overwrite: bool = True) -> Path:
    """Write `suite` as JSON (by default, to the package's suite file)."""
    path = Path(path) if path is not None else suite_path(suite.name)
    with atomic_write(path, overwrite=overwrite) as tmp:
        tmp.write_text(suite_json(suite))
    return path
