"""benchmarks/model_probe.py: its captions differ in one attribute only, and it scores what training
optimises (the AR-DF visual loss of a wholly masked frame)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from arvideo.data.shapes import caption, parse_prompt, position_of, random_spec
from arvideo.lumos.ardf import ardf_mask, visual_loss
from arvideo.lumos.sequence import serialize, training_labels
from benchmark_scripts import load_benchmark
from test_eval_run import bench_dir, pipe  # noqa: F401 (fixtures: the tiny pipeline, long prompts allowed)
from test_pipeline import model_dir  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def probe():
    return load_benchmark("model_probe")


def true_value(spec, attribute: str) -> str:
    obj = spec.objects[0]
    if attribute == "background":
        return spec.background
    return position_of(obj.start, spec.size) if attribute == "position" else getattr(obj, attribute)


def split(parsed, attribute: str) -> tuple[str, tuple]:
    """(what a parsed caption says about `attribute`, what it says about everything else)."""
    obj = parsed.objects[0]
    if attribute == "background":
        return parsed.background, (obj,)
    return getattr(obj, attribute), (parsed.background, dataclasses.replace(obj, **{attribute: None}))


@pytest.mark.parametrize("kind", ["image", "video"])
def test_variant_captions_change_one_attribute_and_keep_the_template(probe, kind):
    for i in range(6):
        rng = np.random.default_rng([5, i])
        spec = random_spec(rng, kind, max_objects=1)
        item = probe.Item(spec, int(rng.integers(2**31)), codes=torch.zeros(0), box=(0, 0, 0, 0))
        for attribute in probe.ATTRIBUTES[kind]:
            captions, truth = probe.variant_captions(item, attribute)
            drawn = caption(spec, np.random.default_rng(item.caption_seed))
            assert captions[truth] == item.caption() == drawn
            assert probe.VALUES[attribute][truth] == true_value(spec, attribute)
            said, rest = zip(*(split(parse_prompt(c), attribute) for c in captions), strict=True)
            assert list(said) == list(probe.VALUES[attribute])  # each caption says its own value ...
            assert len(set(rest)) == 1  # ... and the same as the others about everything else


def test_frame_score_is_the_training_loss_of_the_wholly_masked_frame(probe, pipe):  # noqa: F811
    item = probe.held_out(pipe, "video", 0, seed=100)
    text = pipe.check_inputs(caption(item.spec, np.random.default_rng(0)), frames=item.spec.n_frames)
    vocab, header = pipe.model.vocab, (text.duration, text.header_fps)
    image = item.codes[:1]  # [1, H', W']: a one-frame sequence, every body slot masked at ratio 1
    ids = serialize(vocab, text.text_ids, image, *header)[None]
    generator = torch.Generator().manual_seed(0)
    masked = ardf_mask(ids, training_labels(vocab, ids), vocab, generator, min_ratio=1.0)
    with torch.no_grad():
        loss = visual_loss(pipe.model, pipe.model(masked.input_ids), masked.input_ids, masked.labels)
    nll = probe.frame_nll(pipe.model, [text.text_ids] * 2, item.codes, 0, header)
    assert torch.allclose(nll, loss.token_loss.sum().expand(2), rtol=1e-5)
    # a later frame is scored after the clean frames before it: they change its score
    later = probe.frame_nll(pipe.model, [text.text_ids], item.codes, 1, header)
    changed = item.codes.clone()
    changed[0] = (changed[0] + 1) % vocab.codebook_size
    assert not torch.allclose(later, probe.frame_nll(pipe.model, [text.text_ids], changed, 1, header))


def test_two_object_clips_move_differently_and_their_captions_change_only_the_motions(probe, pipe):  # noqa: F811
    strip = lambda parsed: [dataclasses.replace(o, motion=None) for o in parsed.objects]  # noqa: E731
    for i in range(6):
        item = probe.held_out(pipe, "video", i, seed=100, objects=2)
        first, second = item.spec.objects
        assert first.motion != second.motion
        true = parse_prompt(item.caption())
        for k in (0, 1):
            for motion in ("still", "up"):
                changed = parse_prompt(item.caption(probe.with_motion(item.spec, k, motion)))
                assert changed.objects[k].motion == motion and changed.objects[1 - k] == true.objects[1 - k]
                assert strip(changed) == strip(true) and changed.background == true.background
    result = probe.two_objects(pipe, [item])  # runs on the real model; the accounting is checked below
    assert 0 <= result["motion"]["accuracy"] <= 1 and result["swapped"]["chance"] == 0.5


def test_two_object_scores_count_the_objects_and_clips_whose_true_caption_wins(probe, pipe, monkeypatch):  # noqa: F811
    items = [probe.held_out(pipe, "video", i, seed=100, objects=2) for i in range(2)]
    for sign, expected in ((1.0, 1.0), (-1.0, 0.0)):  # the true caption scored best, then worst

        def fake(_pipe, item, captions, sign=sign):
            return torch.tensor([0.0 if c == item.caption() else sign for c in captions])

        monkeypatch.setattr(probe, "motion_nll", fake)
        result = probe.two_objects(pipe, items)
        assert result["motion"]["accuracy"] == expected and result["swapped"]["accuracy"] == expected
        assert result["swapped"]["margin"] == sign
