"""ShapesBench long video: object persistence across segment boundaries and prompt-switch accuracy.

A long case is one object over several segments, each with its own prompt; from one segment to
the next the prompt switches the motion, the colour or the background (a few switch two at once).
The ground truth chains the shapes world: every segment continues the object from where the
previous one left it, at the world's clip speed, with the new segment's attributes.

    from arvideo.eval.long import load_long_suite, render_long, score_long_suite
    report = score_long_suite(lambda case: pipe(list(case.prompts), segments=len(case.prompts)).frames)

Geometry (that of the ARLON pipeline with one reference latent frame): the first segment is a
17-frame clip, every later one adds NEW_FRAMES = 16 frames (a 17-frame clip whose first frame is
the previous segment's last). 4 segments = 65 frames.

Metrics per case:

- **persistence**: the fraction of segment boundaries where the object stays itself. At a
  boundary (the last frame of segment k-1 and the first new frame of segment k), the object is
  the detection that `metrics.match` assigns to the prompt's object in each frame; it passes when
  it is found in both frames, keeps its shape and size, keeps its colour unless the prompts switch
  the colour there, and its centroid moves by at most JUMP_FRACTION of the frame side (6.4 px at
  64x64, over four frames of the world's motion).
- **switch accuracy**: the fraction of switches (a segment whose prompt changes an attribute of
  the one before) after which that attribute reads as the new prompt says, over the new segment.
- **segment accuracy**: the fraction of segments whose colour, shape, size, background and motion
  all read as their own prompt says (each segment scored by `metrics.score_case` as a t2v case).

The suite (`suites/long-v1.json`, written by `build_long_suite`, a test checks it) holds 8 cases
of 4 segments. `validate_long` scores ground truth (everything near 100%) and the same videos with
their segments shuffled (persistence and switch accuracy must fall).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from arvideo.data import shapes
from arvideo.errors import ArvideoError
from arvideo.eval import metrics
from arvideo.eval.detector import detect
from arvideo.eval.suite import SUITES_DIR, Case
from arvideo.files import atomic_write
from arvideo.progress import progress

VERSION = "v1"
FIRST_FRAMES = shapes.DEFAULT_FRAMES  # frames of the first segment
NEW_FRAMES = shapes.DEFAULT_FRAMES - 1  # frames every later segment adds
SPEED = (
    shapes.TRAVEL_FRACTION * shapes.DEFAULT_SIZE / (shapes.DEFAULT_FRAMES - 1)
)  # px per frame, as in clips
JUMP_FRACTION = 0.10  # a boundary jump above this fraction of the side breaks persistence
ATTRIBUTES = ("colour", "shape", "size", "background", "motion")  # what a segment's prompt fixes
SEED = 20250802  # of the caption templates drawn for the prompts
CHOICES = {"colour": shapes.COLOURS, "shape": shapes.SHAPES, "size": shapes.SIZES,
           "background": shapes.BACKGROUNDS, "motion": shapes.MOTIONS}  # fmt: skip

# The cases: one object (shape, size, start) and, per segment, (colour, background, motion). Paths
# are open (no place is visited twice), so segments in another order jump at their boundaries.
DESIGNS: tuple[dict[str, Any], ...] = (
    # motion switches
    dict(shape="circle", size="large", start=(14.0, 14.0),
         segments=[("red", "black", m) for m in ("right", "down", "left", "still")]),
    dict(shape="star", size="small", start=(10.0, 50.0),
         segments=[("blue", "gray", m) for m in ("up-right", "up", "right", "down-left")]),
    dict(shape="triangle", size="small", start=(12.0, 45.0),
         segments=[("green", "white", m) for m in ("still", "right", "still", "up")]),
    # colour switches (alone for a still object, with the motion for a moving one)
    dict(shape="square", size="large", start=(32.0, 32.0),
         segments=[(c, "black", "still") for c in ("yellow", "cyan", "magenta", "red")]),
    dict(shape="circle", size="small", start=(12.0, 12.0),
         segments=[("magenta", "white", "down"), ("green", "white", "right"), ("blue", "white", "up"),
                   ("yellow", "white", "still")]),
    # background switches (alone for a still object, with the motion for a moving one)
    dict(shape="star", size="large", start=(32.0, 32.0),
         segments=[("cyan", b, "still") for b in ("black", "white", "gray", "black")]),
    dict(shape="square", size="small", start=(10.0, 10.0),
         segments=[("red", "gray", "down-right"), ("red", "black", "right"), ("red", "white", "down"),
                   ("red", "gray", "left")]),
    # one switch of each kind in turn
    dict(shape="triangle", size="large", start=(38.0, 14.0),
         segments=[("blue", "white", "left"), ("green", "white", "still"), ("green", "black", "still"),
                   ("green", "black", "down")]),
)  # fmt: skip


@dataclass(frozen=True)
class LongCase:
    """One long video: a prompt and a ground-truth spec per segment (its new frames only)."""

    id: str
    prompts: tuple[str, ...]
    specs: tuple[shapes.ClipSpec, ...]

    @property
    def frames(self) -> int:
        return sum(s.n_frames for s in self.specs)

    def bounds(self) -> list[tuple[int, int]]:
        """(first, end) frame of every segment's new frames."""
        ends = np.cumsum([s.n_frames for s in self.specs]).tolist()
        return list(zip([0, *ends[:-1]], ends, strict=True))

    def segment_case(self, k: int) -> Case:
        """Segment k as a text-to-video case of its own prompt."""
        return Case(f"{self.id}-s{k}", "t2v", self.prompts[k], self.specs[k])

    def expected(self, k: int) -> dict[str, str]:
        obj = self.specs[k].objects[0]
        return {"colour": obj.colour, "shape": obj.shape, "size": obj.size,
                "background": self.specs[k].background, "motion": obj.motion}  # fmt: skip

    def switches(self) -> list[tuple[int, str]]:
        """(segment, attribute) for every attribute a segment's prompt changes from the previous one."""
        return [(k, a) for k in range(1, len(self.specs)) for a in ATTRIBUTES
                if self.expected(k)[a] != self.expected(k - 1)[a]]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "prompts": list(self.prompts), "specs": [s.to_dict() for s in self.specs]}


# ---------------------------------------------------------------------------------------------
# the suite


def _segment_specs(design: dict[str, Any]) -> list[shapes.ClipSpec]:
    """Chain the segments: each starts one step (of its own motion) after the previous one ends."""
    specs, position = [], np.asarray(design["start"], dtype=np.float64)
    for k, (colour, background, motion) in enumerate(design["segments"]):
        step = SPEED * np.asarray(shapes.MOTION_VECTORS[motion])
        n = FIRST_FRAMES if k == 0 else NEW_FRAMES
        start = position if k == 0 else position + step
        obj = shapes.ObjectSpec(design["shape"], colour, design["size"],
                                (round(float(start[0]), 4), round(float(start[1]), 4)), motion)  # fmt: skip
        spec = shapes.ClipSpec((obj,), background, n, shapes.DEFAULT_SIZE, SPEED)
        shapes.check_spec(spec)  # stays inside the frame
        specs.append(spec)
        position = start + (n - 1) * step
    return specs


def build_long_suite() -> tuple[LongCase, ...]:
    """The cases of DESIGNS with prompts from the world's caption templates (seeded)."""
    cases = []
    for i, design in enumerate(DESIGNS):
        specs = _segment_specs(design)
        prompts = tuple(
            shapes.caption(spec, np.random.default_rng([SEED, i, k])) for k, spec in enumerate(specs)
        )
        case = LongCase(f"long-{i:03d}", prompts, tuple(specs))
        for k in range(len(specs)):  # every prompt reads back as exactly its segment's attributes
            parsed = shapes.parse_prompt(case.prompts[k])
            obj = parsed.objects[0]
            got = {a: getattr(obj, a) for a in ("colour", "shape", "size", "motion")}
            got["background"] = parsed.background
            assert len(parsed.objects) == 1 and got == case.expected(k), (case.prompts[k], case.expected(k))
        cases.append(case)
    return tuple(cases)


def suite_path() -> Path:
    return SUITES_DIR / f"long-{VERSION}.json"  # not shapesbench-*.json: those are the short suites


def save_long_suite(cases: tuple[LongCase, ...], path: Path | None = None) -> Path:
    path = path or suite_path()
    data = {
        "benchmark": "shapesbench-long", "version": VERSION,
        "built_by": "arvideo.eval.long.build_long_suite()",
        "first_frames": FIRST_FRAMES, "new_frames": NEW_FRAMES,
    }  # fmt: skip
    body = ",\n".join("  " + json.dumps(c.to_dict()) for c in cases)
    with atomic_write(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(data, indent=1)[:-2] + ',\n "cases": [\n' + body + "\n ]\n}\n")
    return path


@cache
def load_long_suite() -> tuple[LongCase, ...]:
    """The checked-in long-video cases."""
    data = json.loads(suite_path().read_text())
    return tuple(
        LongCase(d["id"], tuple(d["prompts"]), tuple(shapes.ClipSpec.from_dict(s) for s in d["specs"]))
        for d in data["cases"]
    )


def render_long(case: LongCase) -> torch.Tensor:
    """The ground truth: uint8 [T, H, W, 3], the segments' renders back to back."""
    return torch.cat([shapes.render(spec)[0] for spec in case.specs])


# ---------------------------------------------------------------------------------------------
# scoring


def _object_at(case: LongCase, k: int, frame: np.ndarray):
    """The detection `metrics.match` assigns to segment k's object in one frame [H, W, 3], or None."""
    return metrics.match(case.segment_case(k), detect(frame[None]))[0][0]


def boundary(case: LongCase, k: int, frames: np.ndarray) -> dict[str, Any]:
    """Persistence at the boundary into segment k (k >= 1): last frame before it, first frame of it."""
    first = case.bounds()[k][0]
    before, after = _object_at(case, k - 1, frames[first - 1]), _object_at(case, k, frames[first])
    entry: dict[str, Any] = {"segment": k, "frame": first, "jump": None}
    if before is None or after is None:
        return {
            **entry,
            "pass": False,
            "reason": "object not found" + (" before" if before is None else " after"),
        }
    entry["jump"] = round(float(np.hypot(*np.subtract(after.centroid, before.centroid))), 3)
    colour_switch = case.expected(k)["colour"] != case.expected(k - 1)["colour"]
    changed = [a for a in ("shape", "size", "colour") if getattr(after, a) != getattr(before, a)
               and not (a == "colour" and colour_switch)]  # fmt: skip
    if changed:
        return {**entry, "pass": False, "reason": f"{', '.join(changed)} changed"}
    if entry["jump"] > JUMP_FRACTION * case.specs[0].size:
        return {**entry, "pass": False, "reason": "position jumped"}
    return {**entry, "pass": True, "reason": ""}


def score_long_case(case: LongCase, video: torch.Tensor | np.ndarray) -> dict[str, Any]:
    """Score a long video uint8 [T, H, W, 3] for `case` (T must be `case.frames`)."""
    frames = video.detach().cpu().numpy() if isinstance(video, torch.Tensor) else np.asarray(video)
    if frames.ndim != 4 or frames.dtype != np.uint8 or len(frames) != case.frames:
        raise ArvideoError(
            f"case {case.id} needs a uint8 [{case.frames}, H, W, 3] video (segments of "
            f"{[s.n_frames for s in case.specs]} frames), got {frames.dtype} {list(frames.shape)}"
        )
    segments = []
    for k, (a, b) in enumerate(case.bounds()):
        entry = metrics.score_case(case.segment_case(k), frames[a:b])
        read = {**entry["objects"][0]["read"], "background": entry["background"]}
        segments.append({"prompt": case.prompts[k], "expected": case.expected(k),
                         "read": {a: read[a] for a in ATTRIBUTES}, "metrics": entry["metrics"]})  # fmt: skip
    boundaries = [boundary(case, k, frames) for k in range(1, len(case.specs))]
    switches = [{"segment": k, "attribute": a, "expected": case.expected(k)[a],
                 "read": segments[k]["read"][a], "pass": segments[k]["read"][a] == case.expected(k)[a]}
                for k, a in case.switches()]  # fmt: skip
    correct = [all(s["read"][a] == s["expected"][a] for a in ATTRIBUTES) for s in segments]
    return {
        "id": case.id,
        "persistence": float(np.mean([b["pass"] for b in boundaries])),
        "switch_accuracy": float(np.mean([s["pass"] for s in switches])),
        "segment_accuracy": float(np.mean(correct)),
        "attributes": {
            a: float(np.mean([s["read"][a] == s["expected"][a] for s in segments])) for a in ATTRIBUTES
        },
        "boundaries": boundaries,
        "switches": switches,
        "segments": segments,
    }


def chance_levels(cases: tuple[LongCase, ...]) -> dict[str, float]:
    """A uniform guess per attribute: 1 / choices; switch accuracy over the suite's switches."""
    per = {a: 1.0 / len(CHOICES[a]) for a in ATTRIBUTES}
    switched = [a for c in cases for _, a in c.switches()]
    segment = float(np.prod(list(per.values())))
    return {"switch_accuracy": float(np.mean([per[a] for a in switched])), "segment_accuracy": segment, **per}


def score_long_suite(
    video_for: Callable[[LongCase], torch.Tensor | np.ndarray], cases: tuple[LongCase, ...] | None = None
) -> dict[str, Any]:
    """Score videos made on the fly: `video_for(case)` -> uint8 [case.frames, H, W, 3]."""
    cases = load_long_suite() if cases is None else cases
    entries = [score_long_case(case, video_for(case)) for case in progress(cases, desc="long videos")]
    summary = {m: float(np.mean([e[m] for e in entries])) for m in ("persistence", "switch_accuracy",
                                                                      "segment_accuracy")}  # fmt: skip
    summary["attributes"] = {a: float(np.mean([e["attributes"][a] for e in entries])) for a in ATTRIBUTES}
    return {"benchmark": "shapesbench-long", "version": VERSION, "cases": len(entries),
            "jump_threshold_px": JUMP_FRACTION * shapes.DEFAULT_SIZE, "chance": chance_levels(cases),
            **summary, "entries": entries}  # fmt: skip


def shuffle_segments(case: LongCase, video: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """The video with its segments in a random order that moves every one (a derangement).

    Segments keep the case's boundaries: a segment moved into a slot of another length loses its
    first frame, or repeats it.
    """
    n = len(case.specs)
    while True:
        order = rng.permutation(n)
        if (order != np.arange(n)).all():
            break
    bounds = case.bounds()
    slots = []
    for (a, b), i in zip(bounds, order, strict=True):
        block = video[bounds[i][0] : bounds[i][1]]
        length = b - a
        slots.append(block[-length:] if len(block) >= length else torch.cat([block[:1], block]))
    return torch.cat(slots)


def validate_long(seed: int = 0, cases: tuple[LongCase, ...] | None = None) -> dict[str, dict[str, Any]]:
    """Reports for the ground truth and for the ground truth with its segments shuffled."""
    cases = load_long_suite() if cases is None else cases
    rng = np.random.default_rng(seed)
    return {
        "truth": score_long_suite(render_long, cases),
        "shuffled": score_long_suite(lambda c: shuffle_segments(c, render_long(c), rng), cases),
    }


def format_long(reports: dict[str, dict[str, Any]]) -> str:
    """Rows: sources (or models); columns: the long-video metrics, in percent."""
    columns = ["persistence", "switch_accuracy", "segment_accuracy", *ATTRIBUTES]
    header = ["source", *[c.replace("_accuracy", " acc") for c in columns]]
    rows = [header]
    for name, r in reports.items():
        values = [r[c] for c in columns[:3]] + [r["attributes"][a] for a in ATTRIBUTES]
        rows.append([name, *[f"{100 * v:.1f}" for v in values]])
    chance = next(iter(reports.values()))["chance"]
    rows.append(["chance", "-", *[f"{100 * chance[c]:.1f}" for c in columns[1:]]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for r in rows:
        lines.append(
            "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        )
    return "\n".join(lines)
