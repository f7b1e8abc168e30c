"""ShapesBench metrics: score one piece of media against one case, and aggregate over a suite.

Per object of a case (matched to detections frame by frame):

- **colour, shape, size**: the object's majority reading over the frames equals the prompt's.
- **position** (text-to-image): the 3x3 grid cell of the box centre equals the prompt's.
- **motion** (videos): the least-squares velocity of the object's centroid, times the clip
  length, classified into the world's motions: "still" below STILL_FRACTION of the frame side,
  else the nearest of the eight directions. A least-squares fit, unlike first-to-last
  displacement, is not fooled by a clip whose frames are shuffled.
- **persistence** (videos): the fraction of frames showing the object as the same thing
  (its majority colour and shape), exactly once; a prompt-free measure of temporal consistency.
- **smoothness** (videos): 1 - mean |second difference| of the centroid / (SMOOTH_SCALE x side),
  clipped to [0, 1]; 1 for uniform motion, 0 for a jumping object.

Per case:

- **background**: the nearest world background to the media's border colour equals the prompt's.
- **fidelity** (image-to-video): frame 0 reproduces the given first frame: same background
  (within FIDELITY_BACKGROUND RGB units) and the same colour labels on the objects' pixels
  (label IoU >= FIDELITY_IOU). PSNR is reported beside it.

Matching: in each frame the expected objects take distinct detections minimising the number of
disagreeing attributes (colour, shape, size), ties broken by the distance from where the object
was last seen. Objects absent from a frame count as wrong there.

Aggregates are means over objects (object metrics) or cases (case metrics). A task's score is
the mean of its metrics, and the overall score the mean of the task scores (`METRICS` lists
which metric each task has). `chance_levels` gives what a random guesser scores on each.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
import torch

from arvideo.data import shapes
from arvideo.errors import ArvideoError
from arvideo.eval.detector import Detection, detect, estimate_background, matte, palette, to_matte_space
from arvideo.eval.suite import Case, first_frame

METRICS: dict[str, tuple[str, ...]] = {
    "t2i": ("colour", "shape", "size", "position", "background"),
    "t2v": ("colour", "shape", "size", "background", "motion", "persistence", "smoothness"),
    "i2v": ("colour", "shape", "size", "background", "motion", "persistence", "smoothness", "fidelity"),
}
CASE_METRICS = ("background", "fidelity")  # one value per case; the others are one per object
STILL_FRACTION = 0.10  # displacement over the clip below this fraction of the side counts as still
SMOOTH_SCALE = 0.10  # mean |second difference| (fraction of the side) at which smoothness reaches 0
FIDELITY_IOU = 0.5
FIDELITY_BACKGROUND = 50.0  # RGB distance
PSNR_CAP = 99.0  # dB reported for identical frames (JSON has no infinity)
DISTANCE_WEIGHT = 0.5  # matching cost of a jump across the whole frame, in disagreeing attributes
MISSING_COST = 4.0  # matching cost of leaving an object unmatched: worse than any detection


def _frames(video: torch.Tensor | np.ndarray) -> np.ndarray:
    frames = video.detach().cpu().numpy() if isinstance(video, torch.Tensor) else np.asarray(video)
    if frames.ndim == 3:
        frames = frames[None]  # an image: one frame
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ArvideoError(f"media must be uint8 [T, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    if frames.shape[0] == 0:
        raise ArvideoError("media has zero frames")
    return frames


def match(case: Case, detections: list[list[Detection]]) -> list[list[Detection | None]]:
    """Assign detections to the case's objects frame by frame -> [object][frame]."""
    expected = case.spec.objects
    side = case.size
    last: list[tuple[float, float] | None] = [None] * len(expected)
    tracks: list[list[Detection | None]] = [[] for _ in expected]
    for dets in detections:
        options = list(range(len(dets))) + [None] * len(expected)
        best, best_cost = None, np.inf
        for pick in itertools.permutations(options, len(expected)):
            cost = 0.0
            for k, j in enumerate(pick):
                if j is None:
                    cost += MISSING_COST
                    continue
                d, e = dets[j], expected[k]
                cost += (d.colour != e.colour) + (d.shape != e.shape) + (d.size != e.size)
                if last[k] is not None:
                    cost += DISTANCE_WEIGHT * float(np.hypot(*np.subtract(d.centroid, last[k]))) / side
            if cost < best_cost:
                best, best_cost = pick, cost
        for k, j in enumerate(best):
            tracks[k].append(None if j is None else dets[j])
            if j is not None:
                last[k] = dets[j].centroid
    return tracks


def _majority(values: list[str]) -> str | None:
    return Counter(values).most_common(1)[0][0] if values else None


def classify_motion(centroids: np.ndarray, times: np.ndarray, n_frames: int, side: float) -> str | None:
    """Motion word from centroids [N, 2] seen at frame indices [N]; None with fewer than 2 frames."""
    if len(times) < 2:
        return None
    t = times - times.mean()
    velocity = (t[:, None] * (centroids - centroids.mean(0))).sum(0) / (t * t).sum()  # [2] px/frame
    shift = velocity * (n_frames - 1) / side  # [2] over the clip, fraction of the side
    if np.hypot(*shift) < STILL_FRACTION:
        return "still"
    moving = [m for m in shapes.MOTIONS if m != "still"]
    directions = np.array([shapes.MOTION_VECTORS[m] for m in moving])  # [8, 2]
    return moving[int((directions @ shift).argmax())]


def smoothness(centroids: np.ndarray, times: np.ndarray, side: float) -> float:
    """1 - mean |second difference| / (SMOOTH_SCALE * side) over runs of 3 consecutive frames."""
    triple = (times[2:] - times[:-2]) == 2  # [N - 2]: three consecutive frames seen
    if not triple.any():
        return 0.0
    second = centroids[2:] - 2 * centroids[1:-1] + centroids[:-2]  # [N - 2, 2]
    mean = np.hypot(second[triple, 0], second[triple, 1]).mean()
    return float(np.clip(1.0 - mean / (SMOOTH_SCALE * side), 0.0, 1.0))


def _object_scores(
    case: Case, k: int, track: list[Detection | None], detections: list[list[Detection]]
) -> dict[str, Any]:
    """Read one expected object off its track and score it."""
    expected = case.expected()["objects"][k]
    seen = [(t, d) for t, d in enumerate(track) if d is not None]
    read = {a: _majority([getattr(d, a) for _, d in seen]) for a in ("colour", "shape", "size")}
    scores = {a: float(read[a] == expected[a]) for a in read}
    entry: dict[str, Any] = {"expected": expected, "read": read, "frames_seen": len(seen), "scores": scores}
    if case.task == "t2i":
        read["position"] = shapes.position_of(track[0].centre, case.size) if track[0] else None
        scores["position"] = float(read["position"] == expected["position"])
    else:
        times = np.array([t for t, _ in seen], dtype=np.float64)  # [N]
        centroids = np.array([d.centroid for _, d in seen], dtype=np.float64).reshape(-1, 2)  # [N, 2]
        read["motion"] = classify_motion(centroids, times, len(track), case.size)
        scores["motion"] = float(read["motion"] == expected["motion"])
        identity = (read["colour"], read["shape"])
        failures = [_unsteady(d, dets, identity) for d, dets in zip(track, detections, strict=True)]
        scores["persistence"] = float(np.mean([f is None for f in failures]))
        scores["smoothness"] = smoothness(centroids, times, case.size)
        # how many frames fail persistence for each reason
        entry["persistence_failures"] = dict(Counter(f for f in failures if f is not None))
    return entry


def _unsteady(detection: Detection | None, frame: list[Detection], identity: tuple[str, str]) -> str | None:
    """Why a frame fails persistence (None: it shows the object as itself, exactly once).

    The reasons, in the order checked: "missing", "colour" or "shape" (the object is read
    otherwise than its majority), "duplicate" (another detection has the object's identity).
    """
    if detection is None:
        return "missing"
    if detection.colour != identity[0]:
        return "colour"
    if detection.shape != identity[1]:
        return "shape"
    if sum((o.colour, o.shape) == identity for o in frame) != 1:
        return "duplicate"
    return None


def _nearest_background(colour: np.ndarray) -> str:
    names = list(shapes.BACKGROUNDS)
    refs = np.array([shapes.BACKGROUNDS[n] for n in names], dtype=np.float64)  # [B, 3]
    return names[int(np.linalg.norm(refs - colour, axis=1).argmin())]


def _frame_labels(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Palette labels [N, H, W] and background colours [N, 3] of frames [N, H, W, 3]."""
    background = estimate_background(frames)  # [N, 3]
    labels = matte(*to_matte_space(frames, background, palette()[1]))  # [N, H, W]
    return labels, background


def _agreement(frames: np.ndarray, labels: np.ndarray, background: np.ndarray) -> dict[str, float]:
    """PSNR, label IoU and background distance of frame 0 against frame 1 (the given one)."""
    union = (labels >= 0).any(0)
    agree = (labels[0] == labels[1]) & (labels[1] >= 0)
    iou = float(agree.sum() / union.sum()) if union.any() else 1.0
    mse = float(((frames[0].astype(np.float64) - frames[1]) ** 2).mean())
    psnr = min(float(10 * np.log10(255.0**2 / max(mse, 1e-12))), PSNR_CAP)
    return {
        "psnr": psnr,
        "iou": iou,
        "background_distance": float(np.linalg.norm(background[0] - background[1])),
    }


def first_frame_agreement(frame: np.ndarray, given: np.ndarray) -> dict[str, float]:
    """How well `frame` [H, W, 3] reproduces `given` [H, W, 3]: PSNR, label IoU, background distance."""
    pair = np.stack([frame, given])  # [2, H, W, 3]
    return _agreement(pair, *_frame_labels(pair))


def fidelity_pass(agreement: dict[str, float]) -> bool:
    return agreement["iou"] >= FIDELITY_IOU and agreement["background_distance"] <= FIDELITY_BACKGROUND


def score_case(case: Case, video: torch.Tensor | np.ndarray) -> dict[str, Any]:
    """Score media for one case: uint8 [T, H, W, 3] (or [H, W, 3]) -> the case's report entry.

    In-memory use (no files): `score_case(case, pipe(case.prompt).frames)`; an image-to-video case
    gives the model `first_frame(case)` and expects it back as frame 0. Text-to-image cases read
    frame 0 only. The entry's "metrics" are the case's values (means over its objects).
    """
    frames = _frames(video)
    T, H, W, _ = frames.shape
    if (H, W) != (case.size, case.size):
        raise ArvideoError(f"case {case.id} expects {case.size}x{case.size} media, got {W}x{H}")
    if case.task == "t2i":
        frames = frames[:1]
    detections = detect(frames)
    tracks = match(case, detections)
    objects = [_object_scores(case, k, track, detections) for k, track in enumerate(tracks)]
    background = _nearest_background(np.median(estimate_background(frames), axis=0))
    metrics = {m: float(np.mean([o["scores"][m] for o in objects])) for m in objects[0]["scores"]}
    metrics["background"] = float(background == case.spec.background)
    entry: dict[str, Any] = {"id": case.id, "task": case.task, "prompt": case.prompt, "frames": T}
    if case.task == "i2v":
        agreement = first_frame_agreement(frames[0], first_frame(case).numpy())
        metrics["fidelity"] = float(fidelity_pass(agreement))
        entry["first_frame"] = {k: round(v, 3) for k, v in agreement.items()}
    entry["metrics"] = {m: metrics[m] for m in METRICS[case.task]}
    entry["background"] = background
    entry["objects"] = objects
    entry["detections_per_frame"] = [len(d) for d in detections]
    return entry


# ---------------------------------------------------------------------------------------------
# aggregation and chance


def _metric_values(entries: Sequence[dict[str, Any]], metric: str) -> list[float]:
    if metric in CASE_METRICS:
        return [e["metrics"][metric] for e in entries if metric in e["metrics"]]
    return [o["scores"][metric] for e in entries for o in e["objects"] if metric in o["scores"]]


def _by_objects(entries: Sequence[dict[str, Any]], names: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Per-object metrics of the cases asking for 1 and for 2 objects apart: a model can move one
    object right and still not bind two motions to two objects, which the pooled mean hides."""
    groups = {}
    for n in sorted({len(e["objects"]) for e in entries}):
        mine = [e for e in entries if len(e["objects"]) == n]
        scores = {
            m: float(np.mean(v)) for m in names if m not in CASE_METRICS and (v := _metric_values(mine, m))
        }
        groups[str(n)] = {"cases": len(mine), **scores}
    return groups


def _by_shape(entries: Sequence[dict[str, Any]], names: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Per-object metrics by the shape the prompt asks for: a shape that is hard to draw in a few
    tokens (a small star is ~50 pixels) loses persistence the pooled mean spreads over all four."""
    objects = [o for e in entries for o in e["objects"]]
    groups = {}
    for shape in sorted({o["expected"]["shape"] for o in objects}):
        mine = [o for o in objects if o["expected"]["shape"] == shape]
        scores = {
            m: float(np.mean(v)) for m in names if (v := [o["scores"][m] for o in mine if m in o["scores"]])
        }
        groups[shape] = {"objects": len(mine), **scores}
    return groups


def _motion_kind(motion: str) -> str:
    """The kind of a motion word: still, straight (along an axis) or diagonal (both components)."""
    return ("still", "straight", "diagonal")[int(np.count_nonzero(shapes.MOTION_VECTORS[motion]))]


def _by_motion(entries: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Motion accuracy by the number of objects in the case and the kind of motion asked for: a
    diagonal drawn as one of its two components fails where a straight motion does not."""
    scores: dict[str, dict[str, list[float]]] = {}
    for e in entries:
        for o in e["objects"]:
            if "motion" in o["scores"]:
                kinds = scores.setdefault(str(len(e["objects"])), {})
                kinds.setdefault(_motion_kind(o["expected"]["motion"]), []).append(o["scores"]["motion"])
    return {
        n: {kind: {"objects": len(v), "motion": float(np.mean(v))} for kind, v in sorted(kinds.items())}
        for n, kinds in sorted(scores.items())
    }


def aggregate(entries: Sequence[dict[str, Any]], chance: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Per task and overall means of every metric, next to their chance levels."""
    tasks: dict[str, Any] = {}
    for task, names in METRICS.items():
        mine = [e for e in entries if e["task"] == task]
        if not mine:
            continue
        metrics = {}
        for m in names:
            values = _metric_values(mine, m)
            metrics[m] = {"score": float(np.mean(values)), "chance": chance[task][m], "n": len(values)}
        tasks[task] = {
            "cases": len(mine),
            "score": float(np.mean([v["score"] for v in metrics.values()])),
            "chance": float(np.mean([v["chance"] for v in metrics.values()])),
            "metrics": metrics,
            "by_objects": _by_objects(mine, names),
            "by_shape": _by_shape(mine, names),
        }
        if "motion" in names:
            tasks[task]["by_motion"] = _by_motion(mine)
        if "persistence" in names:  # object-frames failing it, by reason, most frequent first
            failures = sum(
                (Counter(o["persistence_failures"]) for e in mine for o in e["objects"]), Counter()
            )
            tasks[task]["persistence_failures"] = dict(failures.most_common())
    overall = {
        "score": float(np.mean([t["score"] for t in tasks.values()])),
        "chance": float(np.mean([t["chance"] for t in tasks.values()])),
    }
    return {"overall": overall, "tasks": tasks}


def _persistence_chance(n_frames: int, draws: int = 2000) -> float:
    """Persistence of an object redrawn as a random (colour, shape) in every frame."""
    rng = np.random.default_rng(0)
    kinds = len(shapes.COLOURS) * len(shapes.SHAPES)
    identity = rng.integers(kinds, size=(draws, n_frames))  # [D, T]
    counts = np.stack([(identity == k).sum(1) for k in range(kinds)], 1)  # [D, kinds]
    return float((counts.max(1) / n_frames).mean())


def _smoothness_chance(n_frames: int, draws: int = 2000) -> float:
    """Smoothness of an object found at a uniformly random place in every frame."""
    rng = np.random.default_rng(0)
    centroids = rng.uniform(0, 1, size=(draws, n_frames, 2))  # [D, T, 2], fraction of the side
    times = np.arange(n_frames, dtype=np.float64)
    return float(np.mean([smoothness(c, times, 1.0) for c in centroids]))


def chance_levels(cases: Sequence[Case]) -> dict[str, dict[str, float]]:
    """What a random guesser scores on every metric of every task, for these cases.

    Attributes: 1 / (number of choices) — a guess uniform over the world's words, whatever the
    suite's label balance. Persistence and smoothness: an object redrawn at random (identity or
    place) in every frame. Fidelity: the pass rate of one case's given first frame answered with
    another case's (all ordered pairs of the cases' image-to-video cases).
    """
    return _chance_levels(tuple(cases))


@cache
def _chance_levels(cases: tuple[Case, ...]) -> dict[str, dict[str, float]]:
    n_frames = max((c.n_frames for c in cases), default=shapes.DEFAULT_FRAMES)
    choices = {
        "colour": shapes.COLOURS, "shape": shapes.SHAPES, "size": shapes.SIZES,
        "background": shapes.BACKGROUNDS, "position": shapes.POSITIONS, "motion": shapes.MOTIONS,
    }  # fmt: skip
    chance = {m: 1.0 / len(words) for m, words in choices.items()}
    chance["persistence"] = _persistence_chance(n_frames)
    chance["smoothness"] = _smoothness_chance(n_frames)
    given = [first_frame(c).numpy() for c in cases if c.task == "i2v"]
    passes = []
    if given:
        frames = np.stack(given)  # [N, H, W, 3]
        labels, background = _frame_labels(frames)
        for a, b in itertools.permutations(range(len(given)), 2):
            pair = [a, b]
            passes.append(fidelity_pass(_agreement(frames[pair], labels[pair], background[pair])))
    chance["fidelity"] = float(np.mean(passes)) if passes else 0.0
    return {task: {m: chance[m] for m in names} for task, names in METRICS.items()}
