"""Decoder invariants: frame causality, in-frame bidirectionality, KV-cache and attention-path equality."""

import warnings

import pytest
import torch
import torch.nn.functional as F

from arvideo.errors import ArvideoError
from lumos_util import COMPACT, batch, random_sequence, tiny_config, tiny_decoder

VARIANTS = [
    dict(),
    dict(swin_norm=True),
    dict(num_attention_heads=2, num_key_value_heads=2),
    dict(rope_kind="3d", hidden_size=32, num_attention_heads=2),
    dict(rope_kind="1d"),
]


def _frame_starts(ids):
    return (ids[0] == COMPACT.image_start).nonzero().flatten().tolist()


@torch.no_grad()
@pytest.mark.parametrize(
    "overrides", VARIANTS, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()) or "base"
)
def test_later_frames_never_change_earlier_outputs(overrides):
    model = tiny_decoder(**overrides)
    g = torch.Generator().manual_seed(0)
    ids = random_sequence(COMPACT, g, frames=3, height=3, width=4)
    starts = _frame_starts(ids)
    ref = model.logits(model(ids))
    for f in (1, 2):
        # image_start, first code, first new-line, last code, image_end of frame f
        for index in (starts[f], starts[f] + 3, starts[f] + 3 + 4, starts[f] + 3 + 13, starts[f] + 3 + 15):
            changed = ids.clone()
            changed[0, index] = COMPACT.mask if changed[0, index] != COMPACT.mask else COMPACT.visual_offset
            out = model.logits(model(changed))
            torch.testing.assert_close(out[:, : starts[f]], ref[:, : starts[f]], atol=0, rtol=0)
            assert (out[:, index] - ref[:, index]).abs().max() > 1e-3


@torch.no_grad()
def test_tokens_see_later_tokens_of_their_own_frame():
    model = tiny_decoder()
    g = torch.Generator().manual_seed(1)
    ids = random_sequence(COMPACT, g, frames=2, height=3, width=4)
    start = _frame_starts(ids)[1]
    first_code, last_code = start + 3, start + 3 + 2 * 5 + 3
    ref = model(ids)
    changed = ids.clone()
    changed[0, last_code] = COMPACT.mask
    out = model(changed)
    assert (out[0, first_code] - ref[0, first_code]).abs().max() > 1e-3  # the earlier slot sees the later one
    assert (out[0, start] - ref[0, start]).abs().max() > 1e-3  # so does the frame's image_start
    torch.testing.assert_close(out[0, :start], ref[0, :start], atol=0, rtol=0)


@torch.no_grad()
@pytest.mark.parametrize("overrides", VARIANTS[:3], ids=["base", "swin", "mha"])
def test_kv_cached_chunks_equal_full_forward(overrides):
    """Prefill, re-run a frame without writing (as each decoding step does), commit it, go on."""
    model = tiny_decoder(**overrides)
    g = torch.Generator().manual_seed(2)
    ids = batch(COMPACT, random_sequence(COMPACT, g, 3, 3, 4), random_sequence(COMPACT, g, 3, 3, 4))
    pos, mask = model.positions(ids), model.mask(ids)
    full = model(ids)
    starts = _frame_starts(ids[:1]) + [ids.shape[1]]
    cache = model.new_cache(batch=2, capacity=16)  # small on purpose: it must grow
    model(ids[:, : starts[0]], cache=cache)
    for f in range(3):
        a, b = starts[f], starts[f + 1]
        for _ in range(2):  # two "steps" on the current frame leave the cache untouched
            out = model(ids[:, a:b], pos.slice(a, b), mask.slice(a, b), cache=cache, write_cache=False)
            assert cache.length == a
            torch.testing.assert_close(out, full[:, a:b], atol=1e-5, rtol=1e-5)
        model(ids[:, a:b], pos.slice(a, b), mask.slice(a, b), cache=cache)
        assert cache.length == b
    cache.crop(starts[1])  # drop frames 1.. and redo frame 1
    out = model(
        ids[:, starts[1] : starts[2]],
        pos.slice(starts[1], starts[2]),
        mask.slice(starts[1], starts[2]),
        cache=cache,
        write_cache=False,
    )
    torch.testing.assert_close(out, full[:, starts[1] : starts[2]], atol=1e-5, rtol=1e-5)
    cache.reset()
    assert cache.length == 0


@torch.no_grad()
@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
def test_attention_paths_agree():
    """Small SDPA chunks, one big chunk, and flex attention with a block mask give the same model."""
    g = torch.Generator().manual_seed(3)
    ids = batch(
        COMPACT, random_sequence(COMPACT, g, 2, 4, 3), random_sequence(COMPACT, g, 3, 4, 3, text=None)
    )
    outs = [
        tiny_decoder(seed=5, **o)(ids)
        for o in (dict(attn_chunk=7), dict(attn_chunk=4096), dict(attn_impl="flex"))
    ]
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0], atol=1e-5, rtol=1e-5)


def test_head_views_and_visual_logits():
    model = tiny_decoder()
    hidden = torch.randn(3, 64)
    full = model.logits(hidden)
    assert full.dtype == torch.float32 and full.shape == (3, COMPACT.size)
    off = COMPACT.visual_offset
    torch.testing.assert_close(model.visual_logits(hidden), full[:, off : off + COMPACT.codebook_size])
    assert model.visual_head_weight is model.head_visual.weight
    assert torch.equal(model.head_weight[:off], model.head_text.weight)


def test_init_scheme():
    model = tiny_decoder(
        initializer_range=0.02, hidden_size=256, num_attention_heads=8, num_key_value_heads=8
    )
    assert abs(model.head_weight.std().item() - 0.02) < 1e-3
    assert (model.layers[0].attn.q_norm.weight == 1).all() and (model.layers[0].attn.q_norm.bias == 0).all()


def test_config_errors_say_what_is_wrong():
    with pytest.raises(ArvideoError, match="rope_kind must be one of"):
        tiny_config(rope_kind="2d")
    with pytest.raises(ArvideoError, match="needs head_dim % 32 == 0"):
        tiny_config(hidden_size=48, num_attention_heads=2)
    with pytest.raises(ArvideoError, match="not divisible by num_key_value_heads"):
        tiny_config(num_attention_heads=4, num_key_value_heads=3, hidden_size=128)


def test_norms_follow_the_official_formulas_and_autocast_gives_no_warning():
    """RMSNorm: weight * (x / rms(x)) with fp32 statistics cast back to x's dtype first; qk-norm:
    LayerNorm, then the shared affine. Fused in fp32; under bf16 autocast without dtype warnings."""
    model = tiny_decoder()
    attn = model.layers[0].attn
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():  # away from the identity, so that a dropped weight or bias shows
        model.layers[0].attn_norm.weight.uniform_(0.5, 1.5, generator=g)
        attn.q_norm.weight.uniform_(0.5, 1.5, generator=g)
        attn.q_norm.bias.normal_(generator=g)
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(3, 5, 64, generator=g).to(dtype)
        norm = model.layers[0].attn_norm
        h = x.float()
        expected = norm.weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + norm.eps)).to(dtype)
        torch.testing.assert_close(norm(x), expected, atol=1e-6, rtol=1e-6)
        heads = x.view(3, 5, 2, 32)
        expected = F.layer_norm(heads, (32,), eps=1e-5) * attn.q_norm.weight + attn.q_norm.bias
        torch.testing.assert_close(attn.q_norm(heads), expected, atol=1e-5, rtol=1e-5)
    ids = random_sequence(COMPACT, g, frames=2, height=3, width=4)
    for net in (model, tiny_decoder(swin_norm=True)):  # swin-norm: the norms see bf16 branch outputs
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with torch.autocast("cpu", dtype=torch.bfloat16):
                net(ids).sum().backward()
