"""ShapesBench long video: the suite, and its metrics validated both ways (truth high, shuffled low)."""

import numpy as np
import pytest
import torch

from arvideo.data import shapes
from arvideo.errors import ArvideoError
from arvideo.eval.long import (
    JUMP_FRACTION,
    build_long_suite,
    load_long_suite,
    render_long,
    score_long_case,
    shuffle_segments,
    validate_long,
)


def test_checked_in_suite_is_what_the_builder_makes():
    cases = load_long_suite()
    assert cases == build_long_suite()
    assert len(cases) == 8 and all(len(c.specs) == 4 and c.frames == 65 for c in cases)
    switched = {a for c in cases for _, a in c.switches()}
    assert switched == {"motion", "colour", "background"}
    assert all(c.switches() for c in cases) and all(len({k for k, _ in c.switches()}) == 3 for c in cases)


def test_ground_truth_chains_the_segments_without_jumps():
    for case in load_long_suite():
        video = render_long(case)
        assert video.shape == (65, 64, 64, 3)
        centres = np.array([s.objects[0].start for s in case.specs])  # first new frame of each segment
        ends = [np.asarray(s.objects[0].start) + (s.n_frames - 1) * s.speed *
                np.asarray(shapes.MOTION_VECTORS[s.objects[0].motion]) for s in case.specs]  # fmt: skip
        steps = np.linalg.norm(centres[1:] - np.array(ends[:-1]), axis=1)
        assert (steps <= case.specs[0].speed + 1e-3).all()  # one frame of motion across each boundary


def test_metrics_validated_both_ways():
    reports = validate_long(seed=0)
    truth, shuffled = reports["truth"], reports["shuffled"]
    for metric in ("persistence", "switch_accuracy", "segment_accuracy"):
        assert truth[metric] == 1.0, metric
    assert all(v == 1.0 for v in truth["attributes"].values())
    # shuffling the segments breaks the boundaries and the prompt switches; the objects themselves stay
    assert shuffled["persistence"] <= 0.7 and shuffled["switch_accuracy"] <= 0.3
    assert shuffled["switch_accuracy"] <= shuffled["chance"]["switch_accuracy"] + 0.15
    assert shuffled["attributes"]["shape"] == 1.0 and shuffled["attributes"]["size"] == 1.0


def test_a_jump_or_an_identity_change_at_a_boundary_fails_persistence():
    case = load_long_suite()[3]  # a still large square that switches colour at every boundary
    video = render_long(case)
    assert score_long_case(case, video)["persistence"] == 1.0
    jumped = video.clone()
    a, b = case.bounds()[2]
    shift = int(JUMP_FRACTION * 64) + 2
    jumped[a:b] = torch.roll(video[a:b], shifts=shift, dims=2)  # segment 2 moved right by 8 px
    entry = score_long_case(case, jumped)
    assert [x["pass"] for x in entry["boundaries"]] == [True, False, False]
    assert entry["boundaries"][1]["reason"] == "position jumped" and entry["switch_accuracy"] == 1.0

    circle = render_long(load_long_suite()[0])  # no colour switch there: a new colour is a new object
    recoloured = circle.clone()
    a, b = load_long_suite()[0].bounds()[1]
    red = torch.tensor(shapes.COLOURS["red"], dtype=torch.uint8)
    mask = (circle[a:b] == red).all(-1)  # [T, H, W]
    recoloured[a:b][mask] = torch.tensor(shapes.COLOURS["blue"], dtype=torch.uint8)
    entry = score_long_case(load_long_suite()[0], recoloured)
    assert entry["boundaries"][0]["reason"] == "colour changed" and not entry["boundaries"][1]["pass"]


def test_shuffle_keeps_the_case_geometry_and_wrong_lengths_are_refused():
    case = load_long_suite()[0]
    video = render_long(case)
    shuffled = shuffle_segments(case, video, np.random.default_rng(0))
    assert shuffled.shape == video.shape and not torch.equal(shuffled, video)
    with pytest.raises(ArvideoError, match=r"needs a uint8 \[65, H, W, 3\] video"):
        score_long_case(case, video[:49])
