"""The Lumos-1 sampler (lumos/sampler.py): schedules against reference §5.3/§5.4/§11, the cached
frame loop against a full recomputation, CFG, seeds, tasks, both vocabulary layouts."""

from __future__ import annotations

import math

import pytest
import torch

from arvideo.errors import ArvideoError
from arvideo.lumos.sampler import (
    SamplerConfig,
    Step,
    draw,
    generate,
    history_pattern,
    keep_masked,
    remask_temperatures,
    stream,
)
from arvideo.lumos.sequence import code_slots, frame_ids, frame_length, unconditional
from arvideo.lumos.vocab import Vocab
from lumos_util import COMPACT, tiny_decoder

OFFICIAL = Vocab.official()
TEXT = [3, 1, 4, 1, 5]


def run(model, size=(3, 4, 4), seed=0, given=None, **config) -> tuple[torch.Tensor, list[Step]]:
    steps: list[Step] = []
    codes = generate(
        model, TEXT, size, 2, 8, config=SamplerConfig(**{"steps": 4, "cfg": 3.0, **config}),
        generator=torch.Generator().manual_seed(seed), given=given, callback=steps.append,
    )  # fmt: skip
    return codes, steps


# ---- schedules ---------------------------------------------------------------------------------


def test_schedule_matches_reference_oracle():
    """§11: S = 50, N = 4032 leaves 4030 masked after step 0 and 0 after the last step."""
    n, still, counts = 4032, 4032, []
    for s in range(50):
        still = keep_masked(n, still, s, 50)
        counts.append(still)
    assert counts[0] == 4030
    assert counts[-1] == 0
    assert all(a > b for a, b in zip(counts, counts[1:], strict=False))  # every step reveals at least one
    s = 10
    assert counts[s] == max(1, min(counts[s - 1] - 1, math.floor(n * math.cos(math.pi * (s + 1) / 100))))
    # more steps than slots: one slot stays masked until the last step reveals it
    assert [keep_masked(3, m, s, 6) for s, m in enumerate([3, 2, 1, 1, 1, 1])] == [2, 1, 1, 1, 1, 0]


def test_history_pattern_matches_reference_oracle():
    """§11: ratio 0.7 of N_f = 48*85 = 4080 masks 2,856 evenly spaced slots from 0."""
    idx = history_pattern(4080, 0.7)
    assert len(idx) == 2856 and len(idx.unique()) == 2856
    assert idx[:16].tolist() == [0, 1, 3, 4, 6, 7, 9, 10, 11, 13, 14, 16, 17, 19, 20, 21]
    assert torch.equal(idx, torch.round(torch.arange(2856) * (4080 / 2856)).long())
    assert torch.equal(history_pattern(4080, 0.7), idx)  # fixed, not random
    assert history_pattern(72, 0.0).numel() == 0
    assert history_pattern(72, 1.0).tolist() == list(range(72))


def test_official_quirk_temperature_compounds_then_stays_zero():
    """§5.3/§9.1: T_s = T0 * prod_{k<=s}(1 - (k+1)/S) in the first generated frame, 0 after it."""
    S, T0 = 8, 1.5
    quirk = remask_temperatures(SamplerConfig(steps=S, remask_temperature=T0, official_quirks=True), 3)
    expected = [T0 * math.prod(1 - (k + 1) / S for k in range(s + 1)) for s in range(S)]
    assert quirk[0].tolist() == pytest.approx(expected)
    assert quirk[0, -1] == 0 and (quirk[1:] == 0).all()
    sane = remask_temperatures(SamplerConfig(steps=S, remask_temperature=T0), 3)
    for f in range(3):  # every frame anneals again from T0
        assert sane[f].tolist() == pytest.approx([T0 * (1 - (s + 1) / S) for s in range(S)])


def test_config_rejects_bad_values():
    for bad in (dict(steps=0), dict(cfg=-1), dict(history_ratio=1.5), dict(top_k=0), dict(temperature=-1)):
        with pytest.raises(ArvideoError):
            SamplerConfig(**bad)


# ---- the draw ----------------------------------------------------------------------------------


def test_draw_respects_top_k_and_temperature():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 50, generator=g)
    codes, logp = draw(logits, 1.0, 5, g)
    top5 = logits.topk(5).indices
    assert (top5 == codes[:, None]).any(1).all()
    assert torch.isfinite(logp).all() and (logp <= 0).all()
    greedy, _ = draw(logits, 0.0, None, g)
    assert torch.equal(greedy, logits.argmax(-1))


# ---- the frame loop ----------------------------------------------------------------------------


def reference_logits(model, step: Step, cfg: float, size) -> torch.Tensor:
    """Guided logits of the still-masked slots of the step's current frame, recomputed from scratch
    on the whole conditional sequence and its text-dropped version (no cache)."""
    vocab = model.vocab
    ids = step.ids
    _, height, width = size
    slots = len(ids) - frame_length(height, width) + code_slots(height, width)
    masked = slots[ids[slots] == vocab.mask]
    cond = model.visual_logits(model(ids[None])[0, masked])
    if cfg == 1:
        return cond
    uncond_ids = unconditional(vocab, ids)
    shift = len(ids) - len(uncond_ids)
    uncond = model.visual_logits(model(uncond_ids[None])[0, masked - shift])
    return cfg * (cond - uncond) + uncond


def expected_history(vocab, codes: torch.Tensor, ratio: float) -> torch.Tensor:
    """Frame tokens of finished frames as the cache must hold them: the §5.4 pattern masked."""
    _, height, width = codes.shape
    pattern = history_pattern(height * (width + 1), ratio)
    frames = []
    for frame in codes:
        tokens = frame_ids(vocab, frame)
        tokens[3 + pattern] = vocab.mask
        frames.append(tokens)
    return torch.cat(frames) if frames else torch.zeros(0, dtype=torch.long)


@pytest.mark.parametrize("layout", ["compact", "official"])
def test_cached_generation_equals_full_recomputation(layout):
    vocab = COMPACT if layout == "compact" else OFFICIAL
    model = tiny_decoder(vocab=vocab, initializer_range=0.05)
    size = (3, 4, 4)
    codes, steps = run(model, size)
    assert codes.shape == size
    assert len(steps) == 3 * 4
    for step in steps:
        ref = reference_logits(model, step, 3.0, size)
        assert step.logits.shape == ref.shape
        torch.testing.assert_close(step.logits, ref, rtol=1e-4, atol=1e-4)
        # the history the model saw: every finished frame with the fixed pattern masked
        history = step.ids[len(step.ids) - frame_length(4, 4) * (step.frame + 1) : -frame_length(4, 4)]
        assert torch.equal(history, expected_history(vocab, codes[: step.frame], 0.7))
    # the recomputing path (no KV cache) draws the same video
    uncached, _ = run(model, size, kv_cache=False)
    assert torch.equal(codes, uncached)


def test_cfg_scale_one_runs_only_the_conditional_branch():
    model = tiny_decoder(initializer_range=0.05)
    batches = []
    hook = model.register_forward_pre_hook(lambda _m, args: batches.append(args[0].shape[0]))
    codes, steps = run(model, cfg=1.0)
    hook.remove()
    assert set(batches) == {1}
    for step in steps:
        torch.testing.assert_close(
            step.logits, reference_logits(model, step, 1.0, (3, 4, 4)), rtol=1e-4, atol=1e-4
        )
    guided_batches = []
    hook = model.register_forward_pre_hook(lambda _m, args: guided_batches.append(args[0].shape[0]))
    run(model, cfg=3.0)
    hook.remove()
    assert set(guided_batches) == {2}  # cond and uncond share one forward


def test_same_seed_same_ids_other_seed_other_ids():
    model = tiny_decoder(initializer_range=0.02)  # flat distributions: draws depend on the seed
    a, _ = run(model, seed=7)
    b, _ = run(model, seed=7)
    c, _ = run(model, seed=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_decoded_tokens_are_visual_and_never_remasked():
    model = tiny_decoder(initializer_range=0.05)
    codes, steps = run(model, steps=3)
    assert codes.min() >= 0 and codes.max() < COMPACT.codebook_size
    slots = code_slots(4, 4)
    for prev, step in zip(steps, steps[1:], strict=False):
        if step.frame != prev.frame:
            continue
        before = prev.ids[-frame_length(4, 4) :][slots]
        after = step.ids[-frame_length(4, 4) :][slots]
        decided = before != COMPACT.mask
        assert torch.equal(before[decided], after[decided])  # decoded slots keep their token
        assert COMPACT.is_visual(after[after != COMPACT.mask]).all()  # only visual ids are drawn
        assert step.logits.shape == (int((after == COMPACT.mask).sum()), COMPACT.codebook_size)


@pytest.mark.parametrize("layout", ["compact", "official"])
def test_image_to_video_keeps_the_given_frame(layout):
    vocab = COMPACT if layout == "compact" else OFFICIAL
    model = tiny_decoder(vocab=vocab, initializer_range=0.05)
    given = torch.randint(0, vocab.codebook_size, (1, 4, 4), generator=torch.Generator().manual_seed(1))
    codes, steps = run(model, given=given)
    assert torch.equal(codes[0], given[0])
    assert {s.frame for s in steps} == {1, 2}  # the given frame is not decoded
    first = steps[0]  # frame 1, step 0: the given frame is history, masked like a generated one
    history = first.ids[-2 * frame_length(4, 4) : -frame_length(4, 4)]
    assert torch.equal(history, expected_history(vocab, given, 0.7))


def test_video_continuation_keeps_all_given_frames():
    model = tiny_decoder(initializer_range=0.05)
    given = torch.randint(0, COMPACT.codebook_size, (2, 4, 4), generator=torch.Generator().manual_seed(2))
    codes, steps = run(model, size=(4, 4, 4), given=given)
    assert torch.equal(codes[:2], given)
    assert {s.frame for s in steps} == {2, 3}


def test_text_to_image_is_one_frame_and_never_writes_history():
    model = tiny_decoder(initializer_range=0.05)
    calls = []
    hook = model.register_forward_pre_hook(lambda _m, args: calls.append(args[0].shape[1]))
    codes, steps = run(model, size=(1, 4, 4))
    hook.remove()
    assert codes.shape == (1, 4, 4)
    assert len(calls) == 1 + 4  # prompt prefill, then the 4 steps; no history write after the last frame


def test_stream_yields_each_frame_as_soon_as_it_is_done():
    model = tiny_decoder(initializer_range=0.05)
    steps: list[Step] = []
    frames = stream(
        model, TEXT, (3, 4, 4), 2, 8, config=SamplerConfig(steps=4, cfg=3.0),
        generator=torch.Generator().manual_seed(0), callback=steps.append,
    )  # fmt: skip
    first = next(frames)
    assert first.shape == (4, 4) and {s.frame for s in steps} == {0}  # frame 1 not started yet
    rest = list(frames)
    assert len(rest) == 2
    assert torch.equal(torch.stack([first, *rest]), run(model)[0])


@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_next_token_baseline_decodes_raster_order_with_the_same_history(cfg):
    model = tiny_decoder(initializer_range=0.05)
    calls = []
    hook = model.register_forward_pre_hook(lambda _m, args: calls.append(args[0].shape))
    codes, steps = run(model, decoding="next_token", cfg=cfg)
    hook.remove()
    assert codes.shape == (3, 4, 4)
    assert len(steps) == 3 * 16  # one forward per code
    # prefill, 16 one-slot forwards per frame, and the history writes of frames 0 and 1
    assert len(calls) == 1 + 3 * 16 + 2
    assert max(shape[1] for shape in calls[1:17]) <= 4  # a few columns per forward, not the frame
    for step in steps:  # the slot fed last is a MASK, everything before it is decided
        assert step.ids[-1] == COMPACT.mask
        assert step.logits.shape == (1, COMPACT.codebook_size)
    frame1 = next(s for s in steps if s.frame == 1)
    history = frame1.ids[-(frame_length(4, 4) + 4) : -4]
    assert torch.equal(history, expected_history(COMPACT, codes[:1], 0.7))
    again, _ = run(model, decoding="next_token", cfg=cfg)
    assert torch.equal(codes, again)


def test_frames_are_ordinary_tensors_though_the_forwards_run_in_inference_mode():
    model = tiny_decoder(initializer_range=0.05)
    frames = list(stream(model, TEXT, (2, 4, 4), 2, 8, config=SamplerConfig(steps=2, cfg=3.0),
                         generator=torch.Generator().manual_seed(0)))  # fmt: skip
    assert not any(frame.is_inference() for frame in frames)
    frames[0] += 1  # a caller may edit them in place
