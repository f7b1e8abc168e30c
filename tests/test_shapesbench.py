"""ShapesBench: the detector reads the shapes world, the suite is fixed, and the benchmark is
validated both ways (ground truth near 100%, broken media near chance)."""

import itertools
import json
from collections import deque

import numpy as np
import pytest
import torch

from arvideo.cli import main
from arvideo.data import shapes
from arvideo.errors import ArvideoError
from arvideo.eval import (
    chance_levels,
    evaluate,
    first_frame,
    load_suite,
    render_ground_truth,
    score_case,
    score_suite,
)
from arvideo.eval.detector import _hull_area, components, detect
from arvideo.eval.metrics import METRICS, _metric_values, classify_motion, smoothness
from arvideo.eval.shapesbench import build_report, format_comparison, format_table
from arvideo.eval.suite import Suite, build_suite, suite_json, suite_path
from arvideo.eval.validation import degrade, media_source
from arvideo.io import write_video

ACCURACY = ("colour", "shape", "size", "position", "background", "motion", "persistence", "fidelity")
PROMPT_BOUND = ("colour", "shape", "size", "position", "background", "motion", "fidelity")
# Broken media must not beat a random guesser by more than this (pooled over the subset's
# 36 cases / ~45 objects; over seeds 0-4 the worst excess measured is 0.17, shuffled motion).
CHANCE_BAND = 0.2


@pytest.fixture(scope="module")
def suite():
    return load_suite("v1")


@pytest.fixture(scope="module")
def subset(suite):
    return suite.select(subset=True)


def _image(shape, colour, size, centre, background="black", frame=64):
    spec = shapes.ClipSpec((shapes.ObjectSpec(shape, colour, size, centre),), background, 1, frame)
    return shapes.render(spec)[0]


def _pooled(report, metric):
    return float(np.mean(_metric_values(report["cases"], metric)))


# ---------------------------------------------------------------------------------------------
# detector


def test_detector_reads_every_shape_colour_size_exactly():
    rng = np.random.default_rng(0)
    for (shape, size), background in itertools.product(
        itertools.product(shapes.SHAPES, shapes.SIZES), shapes.BACKGROUNDS
    ):
        for colour in shapes.COLOURS:
            centre = tuple(rng.uniform(14, 50, 2).round(2))
            (dets,) = detect(_image(shape, colour, size, centre, background))
            assert len(dets) == 1, (shape, size, colour, background)
            d = dets[0]
            assert (d.shape, d.colour, d.size) == (shape, colour, size), (shape, size, colour, background)
            assert np.hypot(*np.subtract(d.centre, centre)) < 1.5  # box centre = the world's centre


@pytest.mark.parametrize("condition", ["blur", "noise"])
def test_detector_survives_blur_and_noise(condition):
    """Blur 0.7 px + noise 8 (a tokenizer-like reconstruction), or heavy noise (sigma 20) alone."""
    generator = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(1)
    right, total = {"shape": 0, "colour": 0, "size": 0}, 0
    for shape, size, background in itertools.product(shapes.SHAPES, shapes.SIZES, shapes.BACKGROUNDS):
        for colour in list(shapes.COLOURS)[:: 2 if size == "large" else 1]:
            video = _image(shape, colour, size, tuple(rng.uniform(14, 50, 2)), background)
            if condition == "blur":
                video = degrade(video, generator)
            else:
                noisy = video.float() + 20 * torch.randn(video.shape, generator=generator)
                video = noisy.round().clamp(0, 255).to(torch.uint8)
            (dets,) = detect(video)
            assert len(dets) == 1, (shape, size, colour, background)
            total += 1
            for attr in right:
                right[attr] += (
                    getattr(dets[0], attr) == {"shape": shape, "colour": colour, "size": size}[attr]
                )
    assert right["colour"] == right["size"] == total
    assert right["shape"] >= 0.95 * total, right


def test_detector_finds_nothing_in_flat_frames_and_noise():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(4, 64, 64, 3), dtype=np.uint8)
    flat = np.full((2, 64, 64, 3), 128, dtype=np.uint8)
    assert sum(len(d) for d in detect(noise)) == 0
    assert sum(len(d) for d in detect(flat)) == 0


def test_components_match_flood_fill():
    rng = np.random.default_rng(0)
    labels = rng.integers(-1, 2, size=(3, 12, 12))
    ids = components(labels)
    seen = np.zeros(labels.shape, bool)
    for start in zip(*np.nonzero(labels >= 0), strict=True):
        if seen[start]:
            continue
        region, queue = [start], deque([start])
        seen[start] = True
        while queue:  # 8-neighbour flood fill within one frame
            t, y, x = queue.popleft()
            for dy, dx in itertools.product((-1, 0, 1), repeat=2):
                n = (t, y + dy, x + dx)
                if 0 <= n[1] < 12 and 0 <= n[2] < 12 and not seen[n] and labels[n] == labels[start]:
                    seen[n] = True
                    region.append(n)
                    queue.append(n)
        region_ids = {int(ids[p]) for p in region}
        assert len(region_ids) == 1 and (ids == region_ids.pop()).sum() == len(region)


def test_hull_area_of_pixel_sets():
    ys, xs = np.nonzero(np.ones((5, 7), bool))  # a rectangle of unit squares: hull = itself
    assert _hull_area(ys, xs) == pytest.approx(35.0)
    ys, xs = np.nonzero(np.tri(6, dtype=bool))  # a staircase: hull (0,0) (1,0) (6,5) (6,6) (0,6)
    assert _hull_area(ys, xs) == pytest.approx(23.5)


# ---------------------------------------------------------------------------------------------
# suite


def test_suite_file_is_what_the_builder_makes(suite):
    """The checked-in cases are the builder's (prompts aside: they come from the world's caption
    templates, which may evolve; a frozen suite keeps its prompts), and the file round-trips."""
    built = build_suite("v1")
    assert [(c.id, c.task, c.spec) for c in built.cases] == [(c.id, c.task, c.spec) for c in suite.cases]
    assert built.subset_ids == suite.subset_ids
    assert suite_json(suite) == suite_path("v1").read_text()


def test_suite_contents(suite, subset):
    by_task = {t: [c for c in suite.cases if c.task == t] for t in ("t2i", "t2v", "i2v")}
    assert {t: len(c) for t, c in by_task.items()} == {"t2i": 48, "t2v": 64, "i2v": 32}
    assert len(subset) == 36 and all(int(c.id[-3:]) % 4 == 0 for c in subset)
    combos = {
        (c.spec.objects[0].shape, c.spec.objects[0].colour, c.spec.objects[0].size) for c in by_task["t2i"]
    }
    assert len(combos) == 48  # every (shape, colour, size) once
    assert {c.expected()["objects"][0]["position"] for c in by_task["t2i"]} == set(shapes.POSITIONS)
    for task in ("t2v", "i2v"):
        assert {len(c.spec.objects) for c in by_task[task]} == {1, 2}
        assert {o.motion for c in by_task[task] for o in c.spec.objects} == set(shapes.MOTIONS)
    for case in suite.cases:
        shapes.check_spec(case.spec)
        parsed = shapes.parse_prompt(case.prompt)  # the prompt asks for exactly the expected attributes
        read = [{k: v for k, v in vars(o).items() if v is not None} for o in parsed.objects]
        assert (parsed.background, read) == tuple(case.expected().values()), case.prompt
    case = by_task["i2v"][0]
    assert torch.equal(first_frame(case), shapes.render(case.spec)[0][0])


def test_unknown_suite_is_a_clear_error():
    with pytest.raises(ArvideoError, match="unknown ShapesBench suite 'v0'; available: v1"):
        load_suite("v0")


def test_chance_levels(subset):
    chance = chance_levels(subset)
    assert chance["t2i"]["colour"] == pytest.approx(1 / 6)
    assert chance["t2i"]["shape"] == pytest.approx(1 / 4)
    assert chance["t2i"]["position"] == pytest.approx(1 / 9)
    assert chance["t2v"]["motion"] == pytest.approx(1 / 9)
    assert 0.1 < chance["t2v"]["persistence"] < 0.25  # a random identity per frame: the mode's share
    assert chance["t2v"]["smoothness"] < 0.01
    assert chance["i2v"]["fidelity"] < 0.05  # another case's first frame never passes
    assert set(chance) == set(METRICS) and all(set(chance[t]) == set(METRICS[t]) for t in METRICS)


# ---------------------------------------------------------------------------------------------
# validation both ways


def test_ground_truth_scores_near_perfect_after_mp4_round_trip(tmp_path, suite):
    """Rendered truth, written as mp4/png files and read back, through the file-based API."""
    truth = render_ground_truth(suite, tmp_path / "truth", subset=True)
    report = evaluate(truth, suite, subset=True)
    for task in report["tasks"].values():
        for metric, value in task["metrics"].items():
            floor = 0.9 if metric == "smoothness" else 0.95
            assert value["score"] >= floor, (metric, value)
    assert report["overall"]["score"] >= 0.95
    assert report["overall"]["chance"] < 0.3
    expected_overall = np.mean([t["score"] for t in report["tasks"].values()])
    assert report["overall"]["score"] == pytest.approx(expected_overall)


def test_ground_truth_in_memory_is_exact(suite, subset):
    report = score_suite(media_source("truth", subset), suite, subset=True)
    for metric in ACCURACY:
        values = _metric_values(report["cases"], metric)
        assert values and min(values) == 1.0, metric
    assert _pooled(report, "smoothness") >= 0.9


def test_persistence_failures_name_what_broke_each_frame(suite):
    """One object: frame 3 blanked (missing), frame 5 recoloured (colour), frame 7 holding a copy
    of the object beside it (duplicate); the other 14 frames are steady."""
    case = next(c for c in suite.cases if c.task == "t2v" and len(c.spec.objects) == 1)
    video = shapes.render(case.spec)[0].clone()  # [T, H, W, 3] uint8
    background = torch.tensor(shapes.BACKGROUNDS[case.spec.background], dtype=torch.uint8)
    obj = (video != background).any(-1)  # [T, H, W]: the object's pixels
    video[3] = background
    other = next(c for c in shapes.COLOURS if c != case.spec.objects[0].colour)
    video[5][obj[5]] = torch.tensor(shapes.COLOURS[other], dtype=torch.uint8)
    rows, cols = obj[7].nonzero().T
    shift = int(cols.max() - cols.min()) + 4  # right of the object, or left if it does not fit
    shift = shift if int(cols.max()) + shift < video.shape[2] else -shift
    video[7, rows, cols + shift] = video[7, rows, cols]
    entry = score_case(case, video)
    (scored,) = entry["objects"]
    assert scored["persistence_failures"] == {"missing": 1, "colour": 1, "duplicate": 1}
    assert entry["metrics"]["persistence"] == pytest.approx(14 / 17)
    report = build_report([entry, entry], [case, case], "v1", subset=False)
    assert report["tasks"]["t2v"]["persistence_failures"] == {"missing": 2, "colour": 2, "duplicate": 2}
    assert "t2v, object-frames failing persistence: missing 2, colour 2, duplicate 2" in format_table(report)
    steady = score_case(case, shapes.render(case.spec)[0])["objects"][0]
    assert steady["persistence_failures"] == {} and steady["scores"]["persistence"] == 1.0


def test_persistence_by_shape_keeps_each_shape_apart(suite):
    """Two one-object videos of different shapes, one steady and one with a frame blanked: the
    report's split by the asked shape gives each its own persistence."""
    one = [c for c in suite.cases if c.task == "t2v" and len(c.spec.objects) == 1]
    steady_case = one[0]
    broken_case = next(c for c in one if c.spec.objects[0].shape != steady_case.spec.objects[0].shape)
    broken = shapes.render(broken_case.spec)[0].clone()
    broken[3] = torch.tensor(shapes.BACKGROUNDS[broken_case.spec.background], dtype=torch.uint8)
    entries = [score_case(steady_case, shapes.render(steady_case.spec)[0]), score_case(broken_case, broken)]
    report = build_report(entries, [steady_case, broken_case], "v1", subset=False)
    by_shape = report["tasks"]["t2v"]["by_shape"]
    steady_shape, broken_shape = steady_case.spec.objects[0].shape, broken_case.spec.objects[0].shape
    assert set(by_shape) == {steady_shape, broken_shape}
    assert by_shape[steady_shape]["objects"] == by_shape[broken_shape]["objects"] == 1
    assert by_shape[steady_shape]["persistence"] == 1.0
    assert by_shape[broken_shape]["persistence"] == pytest.approx(16 / 17)
    assert by_shape[broken_shape]["colour"] == 1.0  # every per-object metric is split, not only persistence
    line = next(line for line in format_table(report).splitlines() if "persistence by shape" in line)
    assert f"{broken_shape} {16 / 17:.1%}" in line and f"{steady_shape} 100.0%" in line


def test_motion_by_direction_keeps_diagonals_apart(suite):
    """A diagonal mover rendered right and a straight mover frozen in its first frame: the report's
    split by object count and asked motion kind scores each kind on its own."""
    one = [c for c in suite.cases if c.task == "t2v" and len(c.spec.objects) == 1]
    diagonal = next(c for c in one if "-" in c.spec.objects[0].motion)
    straight = next(c for c in one if c.spec.objects[0].motion in ("left", "right", "up", "down"))
    frozen = shapes.render(straight.spec)[0][:1].expand(straight.spec.n_frames, -1, -1, -1)
    entries = [score_case(diagonal, shapes.render(diagonal.spec)[0]), score_case(straight, frozen)]
    report = build_report(entries, [diagonal, straight], "v1", subset=False)
    assert report["tasks"]["t2v"]["by_motion"] == {
        "1": {"diagonal": {"objects": 1, "motion": 1.0}, "straight": {"objects": 1, "motion": 0.0}}
    }
    assert (
        "t2v, 1 object, motion by direction (objects): diagonal 100.0% (1), straight 0.0% (1)"
        in format_table(report)
    )


def test_random_noise_scores_at_chance(suite, subset):
    report = score_suite(media_source("noise", subset, seed=0), suite, subset=True)
    chance = chance_levels(subset)["i2v"] | chance_levels(subset)["t2i"]
    for metric in PROMPT_BOUND + ("persistence", "smoothness"):
        assert _pooled(report, metric) <= chance[metric] + CHANCE_BAND, metric


def test_shuffled_frames_lose_motion_and_smoothness_only(suite, subset):
    report = score_suite(media_source("shuffled", subset, seed=0), suite, subset=True)
    assert _pooled(report, "motion") <= 1 / 9 + CHANCE_BAND
    assert _pooled(report, "smoothness") <= CHANCE_BAND
    for metric in ("colour", "shape", "size", "position", "persistence"):
        assert _pooled(report, metric) >= 0.95, metric


def test_wrong_prompt_media_scores_at_chance(suite, subset):
    """Another case's render under this case's id: every prompt-bound metric falls to chance."""
    report = score_suite(media_source("wrong-prompt", subset, seed=0), suite, subset=True)
    chance = chance_levels(subset)["i2v"] | chance_levels(subset)["t2i"]
    for metric in PROMPT_BOUND:
        assert _pooled(report, metric) <= chance[metric] + CHANCE_BAND, metric
    # persistence and smoothness ignore the prompt by design: a clean clip keeps them high
    assert _pooled(report, "persistence") >= 0.75


def test_comparison_table_lists_each_report_in_order_then_chance(subset):
    t2v = Suite("t2v", tuple(c for c in subset if c.task == "t2v"), ())
    reports = {name: score_suite(media_source(name, list(t2v.cases)), t2v) for name in ("truth", "noise")}
    table = format_comparison(reports, "t2v", ("colour", "motion"), {"s/video": ["1.50", "0.25"]})
    header, truth, noise, chance = (line.split() for line in table.splitlines())
    assert header == ["source", "t2v", "score", "colour", "motion", "s/video"]
    assert truth[0] == "truth" and float(truth[1]) > 99 and truth[2:] == ["100.0", "100.0", "1.50"]
    assert noise[0] == "noise" and float(noise[1]) < 50 and noise[-1] == "0.25"
    levels = reports["truth"]["tasks"]["t2v"]
    metric = levels["metrics"]
    expected = [levels["chance"], metric["colour"]["chance"], metric["motion"]["chance"]]
    assert chance == ["chance", *(f"{100 * v:.1f}" for v in expected)]


def test_motion_reads_every_direction_and_ignores_jitter():
    rng = np.random.default_rng(0)
    t = np.arange(17, dtype=np.float64)
    for motion, (dx, dy) in shapes.MOTION_VECTORS.items():
        path = 32 + np.outer(t - 8, [dx, dy]) * 1.4 + rng.normal(0, 0.5, (17, 2))  # [T, 2]
        assert classify_motion(path, t, 17, 64) == motion
        assert classify_motion(path[2:], t[2:], 17, 64) == motion  # frames missing at the start
    assert smoothness(32 + np.outer(t, [1.4, 0]), t, 64) == pytest.approx(1.0)  # uniform motion
    assert smoothness(rng.uniform(0, 64, (17, 2)), t, 64) == 0.0  # a jumping object


def test_fidelity_needs_the_given_first_frame(suite):
    case = next(c for c in suite.cases if c.task == "i2v" and c.spec.objects[0].motion != "still")
    video, _ = shapes.render(case.spec)
    assert score_case(case, video)["metrics"]["fidelity"] == 1.0
    assert score_case(case, video[8:])["metrics"]["fidelity"] == 0.0  # starts 8 frames late: moved away


# ---------------------------------------------------------------------------------------------
# errors and CLI


def test_score_case_rejects_bad_media(suite):
    case = suite.cases[0]
    with pytest.raises(ArvideoError, match="expects 64x64 media, got 32x32"):
        score_case(case, torch.zeros(1, 32, 32, 3, dtype=torch.uint8))
    with pytest.raises(ArvideoError, match="zero frames"):
        score_case(case, torch.zeros(0, 64, 64, 3, dtype=torch.uint8))
    with pytest.raises(ArvideoError, match="uint8"):
        score_case(case, torch.zeros(1, 64, 64, 3))


def test_evaluate_reports_missing_corrupt_and_ambiguous_media(tmp_path, suite, subset):
    with pytest.raises(ArvideoError, match="does not exist"):
        evaluate(tmp_path / "nowhere", suite, subset=True)
    media = tmp_path / "media"
    media.mkdir()
    for case in subset[:-3]:
        write_video(media / f"{case.id}.png", torch.zeros(1, 64, 64, 3, dtype=torch.uint8))
    with pytest.raises(ArvideoError, match=rf"3 of 36 cases have no media .*\(e\.g\. {subset[-3].id}, "):
        evaluate(media, suite, subset=True)
    for case in subset[-3:]:
        (media / f"{case.id}.mp4").write_bytes(b"not a video at all")
    with pytest.raises(ArvideoError, match="not a readable video"):
        evaluate(media, suite, subset=True)
    write_video(media / f"{subset[-1].id}.gif", torch.zeros(1, 64, 64, 3, dtype=torch.uint8))
    with pytest.raises(ArvideoError, match="1 cases have several media files"):
        evaluate(media, suite, subset=True)


def test_cli_render_truth_then_score(tmp_path, capsys):
    truth, report = tmp_path / "truth", tmp_path / "report.json"
    assert main(["-q", "eval", "render-truth", str(truth), "--subset", "--format", "gif"]) == 0
    assert (truth / "i2v-000.first.png").exists() and (truth / "t2v-000.gif").exists()
    args = ["-q", "eval", "shapesbench", str(truth), "--subset", "--report", str(report)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "overall" in out and "t2v, 2 objects (4 cases): colour 100.0%" in out
    data = json.loads(report.read_text())
    groups = data["tasks"]["t2v"]["by_objects"]  # the 16 t2v cases by how many objects they ask for
    assert {n: g["cases"] for n, g in groups.items()} == {"1": 12, "2": 4}
    assert groups["1"]["motion"] == groups["2"]["motion"] == 1.0
    assert data["suite"] == "v1" and data["subset"] and len(data["cases"]) == 36
    assert data["tasks"]["t2v"]["metrics"]["motion"] == {
        "score": 1.0,
        "chance": pytest.approx(1 / 9),
        "n": 20,
    }
    assert main(args) == 2  # the report exists: refused without --overwrite
    assert "already exists" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
    assert main(["-q", "eval", "shapesbench", str(truth), "--subset", "--suite", "v7"]) == 2
    assert "unknown ShapesBench suite" in capsys.readouterr().err
