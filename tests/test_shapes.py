"""The shapes world: seeded sampling, rendering invariants, ground truth, captions and their parser."""

import colorsys
import math
from collections import Counter

import numpy as np
import pytest
import torch

from arvideo.data import shapes
from arvideo.data.shapes import (
    BACKGROUNDS,
    COLOURS,
    MOTION_VECTORS,
    MOTIONS,
    POSITIONS,
    SHAPES,
    SIZES,
    ClipSpec,
    ObjectSpec,
    make_clip,
    make_clips,
    parse_prompt,
    position_of,
    render,
)
from arvideo.errors import ArvideoError


@pytest.fixture(scope="module")
def videos():
    return list(make_clips(300, seed=0))


@pytest.fixture(scope="module")
def images():
    return list(make_clips(300, seed=0, kind="image"))


def _mask(clip, colour: str) -> torch.Tensor:
    """Pixels painted in `colour`, [T, H, W] bool."""
    return (clip.video == torch.tensor(COLOURS[colour], dtype=torch.uint8)).all(-1)


def _extent(mask: torch.Tensor) -> torch.Tensor:
    """(x0, y0, x1, y1) of the painted pixels in every frame, ends exclusive: [T, 4]."""
    rows, cols = mask.any(2).int(), mask.any(1).int()  # [T, H], [T, W]
    x0, y0 = cols.argmax(1), rows.argmax(1)
    x1, y1 = cols.shape[1] - cols.flip(1).argmax(1), rows.shape[1] - rows.flip(1).argmax(1)
    return torch.stack([x0, y0, x1, y1], 1)


def test_same_seed_same_clips_and_clip_i_does_not_depend_on_n():
    a, b = list(make_clips(5, seed=7)), list(make_clips(8, seed=7))[:5]
    for x, y in zip(a, b, strict=True):
        assert x.spec == y.spec and x.caption == y.caption and torch.equal(x.video, y.video)
    c = list(make_clips(5, seed=8))
    assert [x.spec for x in a] != [x.spec for x in c]


def test_make_clip_draws_only_from_the_given_generator():
    x = make_clip(np.random.default_rng(3))
    np.random.seed(123)  # the global generator must not matter
    y = make_clip(np.random.default_rng(3))
    assert x.spec == y.spec and x.caption == y.caption


def test_every_attribute_value_appears(videos, images):
    seen = Counter()
    for clip in videos + images:
        seen["bg", clip.spec.background] += 1
        seen["n", len(clip.spec.objects)] += 1
        for o in clip.spec.objects:
            seen["shape", o.shape] += 1
            seen["colour", o.colour] += 1
            seen["size", o.size] += 1
    for clip in videos:
        for o in clip.spec.objects:
            seen["motion", o.motion] += 1
    for clip in images:
        for o in clip.spec.objects:
            seen["position", position_of(o.start, clip.spec.size)] += 1
    for key, values in [
        ("bg", BACKGROUNDS), ("n", (1, 2)), ("shape", SHAPES), ("colour", COLOURS), ("size", SIZES),
        ("motion", MOTIONS), ("position", POSITIONS),
    ]:  # fmt: skip
        missing = [v for v in values if seen[key, v] == 0]
        assert not missing, f"{key} values never drawn: {missing}"


def test_colours_are_separable_from_each_other_and_from_every_background():
    hues = sorted(colorsys.rgb_to_hsv(*(c / 255 for c in rgb))[0] * 360 for rgb in COLOURS.values())
    gaps = np.diff(hues + [hues[0] + 360])
    assert gaps.min() >= 45, f"hues too close: {hues}"
    for rgb in COLOURS.values():
        assert colorsys.rgb_to_hsv(*(c / 255 for c in rgb))[1] > 0.75  # saturated; backgrounds are grey
        for bg in BACKGROUNDS.values():
            assert math.dist(rgb, bg) >= 120  # RGB distance; the closest pair, green on gray, is 145


def test_clip_shapes_and_defaults(videos, images):
    assert all(c.video.shape == (17, 64, 64, 3) and c.video.dtype == torch.uint8 for c in videos)
    assert all(c.video.shape == (1, 64, 64, 3) for c in images)
    assert all(len(c.truth) == c.spec.n_frames and len(c.truth[0]) == len(c.spec.objects) for c in videos)


def test_objects_stay_inside_the_frame_and_visible(videos, images):
    for clip in videos + images:
        v = clip.video
        bg = torch.tensor(BACKGROUNDS[clip.spec.background], dtype=torch.uint8)
        border = torch.cat([v[:, 0], v[:, -1], v[:, :, 0], v[:, :, -1]], 1)
        assert (border == bg).all(), clip.caption  # nothing touches the frame's edge
        for i, obj in enumerate(clip.spec.objects):
            boxes = torch.tensor([frame[i].box for frame in clip.truth])  # [T, 4]
            assert (boxes[:, :2] > 0).all() and (boxes[:, 2:] < clip.spec.size).all()
            assert torch.equal(_extent(_mask(clip, obj.colour)), boxes)  # the box is the painted extent


def test_two_objects_never_overlap_and_differ_in_colour(videos, images):
    pairs = [c for c in videos + images if len(c.spec.objects) == 2]
    assert len(pairs) > 100
    for clip in pairs:
        a, b = clip.spec.objects
        assert a.colour != b.colour
        for frame in clip.truth:
            (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = frame[0].box, frame[1].box
            assert ax1 <= bx0 or bx1 <= ax0 or ay1 <= by0 or by1 <= ay0, clip.caption


def test_motion_of_truth_and_pixels_matches_the_spec(videos):
    for clip in videos:
        for i, obj in enumerate(clip.spec.objects):
            centres = np.array([frame[i].centre for frame in clip.truth])  # [T, 2]
            shift = centres[-1] - centres[0]
            vx, vy = MOTION_VECTORS[obj.motion]
            if obj.motion == "still":
                assert np.abs(shift).max() == 0
                continue
            assert np.hypot(*shift) >= 16  # clearly visible over the clip
            assert np.allclose(shift / np.hypot(*shift), (vx, vy), atol=1e-6)
            # The painted pixels move the same way (centroid of the object's colour, first vs last frame).
            mask = _mask(clip, obj.colour)[[0, -1]].float()  # [2, H, W]: first and last frame
            area, grid = mask.sum((1, 2)), torch.arange(64.0)
            cx, cy = (mask.sum(1) * grid).sum(1) / area, (mask.sum(2) * grid).sum(1) / area  # [2]
            moved = np.array([cx[1] - cx[0], cy[1] - cy[0]])
            assert np.allclose(moved, shift, atol=1.5), (clip.caption, moved, shift)


def test_image_objects_sit_in_the_cell_their_caption_names(images):
    third = 64 / 3
    for clip in images:
        parsed = parse_prompt(clip.caption)
        for obj, said in zip(clip.truth[0], parsed.objects, strict=True):
            col, row = divmod(POSITIONS.index(said.position), 3)[::-1]
            x0, y0, x1, y1 = obj.box
            # The centre is in the named cell, well away from its edges.
            assert col * third + 2 < (x0 + x1) / 2 < (col + 1) * third - 2, clip.caption
            assert row * third + 2 < (y0 + y1) / 2 < (row + 1) * third - 2, clip.caption


@pytest.mark.parametrize("size", SIZES)
def test_shape_areas_match_their_geometry(size):
    r = shapes.half_extent(size)
    star = 5 * shapes.STAR_INNER * math.sin(math.pi / 5)  # five kites of the star, over r^2
    expected = {"circle": math.pi, "square": 4.0, "triangle": 2.0, "star": star}
    for shape, area in expected.items():
        video, _ = render(ClipSpec((ObjectSpec(shape, "red", size, (32.3, 31.8)),), "black", n_frames=1))
        painted = (video[0, :, :, 0] > 0).sum().item()
        assert painted == pytest.approx(area * r * r, rel=0.12), shape


def test_render_refuses_objects_leaving_the_frame_and_unknown_words():
    with pytest.raises(ArvideoError, match="leaves"):
        render(ClipSpec((ObjectSpec("circle", "red", "large", (60.0, 32.0)),), "black"))
    with pytest.raises(ArvideoError, match="leaves"):
        render(ClipSpec((ObjectSpec("circle", "red", "small", (40.0, 32.0), "right"),), "black"))
    with pytest.raises(ArvideoError, match="hexagon"):
        render(ClipSpec((ObjectSpec("hexagon", "red", "small", (32.0, 32.0)),), "black"))
    with pytest.raises(ArvideoError, match="purple"):
        render(ClipSpec((), "purple"))


def test_settings_are_checked():
    rng = np.random.default_rng(0)
    for kwargs, match in [
        (dict(kind="image", n_frames=5), "1 frame"),
        (dict(kind="video", n_frames=1), "at least 2"),
        (dict(size=16), ">= 32"),
        (dict(max_objects=3), "max_objects"),
        (dict(max_objects=1, min_objects=2), "min_objects"),
        (dict(min_objects=0), "min_objects"),
        (dict(kind="audio"), "kind"),
    ]:
        with pytest.raises(ArvideoError, match=match):
            make_clip(rng, **kwargs)


def test_object_count_range():
    """min_objects=2 gives every clip two objects (training data aimed at two-object binding)."""
    assert {len(c.spec.objects) for c in make_clips(40, seed=5, min_objects=2)} == {2}
    assert {len(c.spec.objects) for c in make_clips(40, seed=5)} == {1, 2}
    assert {len(c.spec.objects) for c in make_clips(40, seed=5, max_objects=1)} == {1}


def test_other_sizes_and_lengths_keep_the_invariants():
    for clip in make_clips(30, seed=1, size=32, n_frames=9):
        assert clip.video.shape == (9, 32, 32, 3)
        moving = [i for i, o in enumerate(clip.spec.objects) if o.motion != "still"]
        for i in moving:
            shift = np.subtract(clip.truth[-1][i].centre, clip.truth[0][i].centre)
            assert np.hypot(*shift) == pytest.approx(shapes.TRAVEL_FRACTION * 32)


def test_spec_survives_a_json_round_trip(videos):
    import json

    for clip in videos[:20]:
        assert ClipSpec.from_dict(json.loads(json.dumps(clip.spec.to_dict()))) == clip.spec


def test_parse_prompt_recovers_every_caption(videos, images):
    for clip in videos + images:
        parsed = parse_prompt(clip.caption)
        assert parsed.background == clip.spec.background, clip.caption
        got = [(o.shape, o.colour, o.size, o.motion, o.position) for o in parsed.objects]
        want = [
            (o.shape, o.colour, o.size, o.motion if clip.spec.kind == "video" else None,
             position_of(o.start) if clip.spec.kind == "image" else None)
            for o in clip.spec.objects
        ]  # fmt: skip
        assert got == want, clip.caption


def test_captions_are_varied_but_use_a_small_vocabulary(videos, images):
    captions = [c.caption for c in videos + images]
    assert len(set(captions)) > 0.9 * len(captions)
    words = {w.strip(",") for c in captions for w in c.split()}
    assert len(words) < 70, sorted(words)


def test_parse_prompt_reads_hand_written_prompts():
    p = parse_prompt(
        "A big Green star moves up-left, and a small blue circle in the middle; grey background."
    )
    assert p.background == "gray"
    assert p.objects[0] == shapes.ParsedObject("star", "green", "large", "up-left")
    assert p.objects[1] == shapes.ParsedObject("circle", "blue", "small", position="center")
    assert parse_prompt("a red circle moves left").objects[0].motion == "left"
    assert parse_prompt("a red circle on the left").objects[0].position == "left"


@pytest.mark.parametrize(
    "prompt, match",
    [
        ("a purple hexagon moves left", "'hexagon'"),
        ("a red circle on a black background with a dragon", "'dragon'"),
        ("a black circle", "background colour"),
        ("a red circle on a red background", "object colour"),
        ("a small red", "without a shape"),
        ("a red circle moves up and down", "two motions"),
        ("a small large circle", "two sizes"),
        ("on a white background", "names no shape"),
    ],
)
def test_parse_prompt_errors_name_the_problem(prompt, match):
    with pytest.raises(ArvideoError, match=match):
        parse_prompt(prompt)


def test_parse_prompt_can_skip_unknown_words():
    p = parse_prompt("a purple hexagon and a shiny red circle", strict=False)
    assert [(o.shape, o.colour) for o in p.objects] == [("circle", "red")]
