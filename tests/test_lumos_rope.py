"""MM-RoPE: channel sets, position values (reference §1.3, §1.5, §11) and the 1-D / 3-D switches."""

import torch

from arvideo.lumos.rope import Positions, RoPE, apply_rope, channel_axes, positions
from arvideo.lumos.sequence import serialize, unconditional
from arvideo.lumos.vocab import Vocab

OFFICIAL = Vocab.official()


def _sets(axes: torch.Tensor) -> list[list[int]]:
    return [(axes == a).nonzero().flatten().tolist() for a in range(3)]


def test_mm_channel_sets_match_reference():
    t, h, w = _sets(channel_axes(64, "mm"))
    assert t == [0, 1, 2, 3, 16, 17, 18, 19]
    assert h == [4, 5, 8, 9, 12, 13, 20, 21, 24, 25, 28, 29]
    assert w == [6, 7, 10, 11, 14, 15, 22, 23, 26, 27, 30, 31]
    t, h, w = _sets(channel_axes(128, "mm"))
    assert t == [c + 16 * k for k in range(4) for c in (0, 1, 2, 3)]
    assert h == [c + 16 * k for k in range(4) for c in (4, 5, 8, 9, 12, 13)]
    assert w == [c + 16 * k for k in range(4) for c in (6, 7, 10, 11, 14, 15)]


def test_naive_3d_split_is_contiguous_2_3_3():
    t, h, w = _sets(channel_axes(64, "3d"))
    assert (t, h, w) == (list(range(8)), list(range(8, 20)), list(range(20, 32)))


def test_mm_rope_equals_1d_when_all_axes_equal_the_position():
    g = torch.Generator().manual_seed(0)
    text = torch.randint(0, 5000, (2, 50), generator=g)
    flag = torch.rand(2, 50, generator=g) < 0.5
    same = Positions(text, text, text, text, flag)
    one_d = RoPE(64, kind="1d")(same)
    for kind in ("mm", "3d"):
        cos, sin = RoPE(64, kind=kind)(same)
        assert torch.equal(cos, one_d[0]) and torch.equal(sin, one_d[1])


def test_worked_position_example():
    """§1.5: BOS, 2 text, sep, header, two 4x4-latent frames; p0 = 10, frame 1 at t = 14."""
    codes = torch.zeros(2, 4, 4, dtype=torch.long)
    ids = serialize(OFFICIAL, [20000, 20001], codes, duration=2, fps=12)[None]
    assert ids.shape[1] == 57 and ids[0, 7] == 8197 and ids[0, 31] == 8197 and ids[0, 56] == 8710
    p = positions(ids, OFFICIAL)
    idx = torch.arange(57)
    assert torch.equal(p.text[0], idx)
    body = torch.zeros(57, dtype=torch.bool)
    body[10:30] = body[34:54] = True
    assert torch.equal(p.flag[0], body)
    r, c = torch.arange(4).repeat_interleave(5), torch.arange(5).repeat(4)  # (row, col) of the 20 slots
    for start, t in ((10, 10), (34, 14)):
        assert (p.t[0, start : start + 20] == t).all()
        assert torch.equal(p.h[0, start : start + 20], 10 + 8 * r)
        assert torch.equal(p.w[0, start : start + 20], 10 + 8 * c)
    for axis in (p.t, p.h, p.w):
        assert torch.equal(axis[0, ~body], idx[~body])  # structural and text tokens: 1-D index
    uncond = positions(unconditional(OFFICIAL, ids[0])[None], OFFICIAL)
    assert uncond.t[0, 6] == 6 and uncond.t[0, 6 + 24] == 10  # p0 = 6 without BOS, text and sep


def test_positions_slice_are_global():
    ids = serialize(OFFICIAL, [20000], torch.zeros(2, 4, 4, dtype=torch.long), 2, 12)[None]
    p = positions(ids, OFFICIAL)
    chunk = p.slice(30)
    assert torch.equal(chunk.t, p.t[:, 30:]) and chunk.text[0, 0] == 30


def test_rotation_depends_only_on_position_differences():
    """Shifting every position by the same amount keeps all q.k scores (pairing i <-> i + D/2)."""
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(1, 1, 30, 64, generator=g), torch.randn(1, 1, 30, 64, generator=g)
    pos = [torch.randint(0, 300, (1, 30), generator=g) for _ in range(4)]
    flag = torch.rand(1, 30, generator=g) < 0.5
    rope = RoPE(64, kind="mm")
    scores = []
    for shift in (0, 77):
        cos, sin = rope(Positions(*(x + shift for x in pos), flag))
        scores.append(apply_rope(q, cos, sin) @ apply_rope(k, cos, sin).transpose(-1, -2))
    torch.testing.assert_close(scores[0], scores[1], atol=1e-3, rtol=1e-4)


def test_apply_rope_is_rotate_half_by_the_position_angles():
    """x * cos(a) + [-x2, x1] * sin(a), a = position * inverse frequency (1-D: every channel)."""
    g = torch.Generator().manual_seed(2)
    text = torch.randint(0, 500, (2, 9), generator=g)
    pos = Positions(text, text, text, text, torch.zeros(2, 9, dtype=torch.bool))
    x = torch.randn(2, 3, 9, 64, generator=g)
    inv_freq = 1.0 / 10000.0 ** (torch.arange(0, 64, 2).float() / 64)
    angles = (text[..., None].float() * torch.cat([inv_freq, inv_freq]))[:, None]  # [B, 1, L, D]
    x1, x2 = x.chunk(2, dim=-1)
    expected = x * angles.cos() + torch.cat([-x2, x1], dim=-1) * angles.sin()
    torch.testing.assert_close(apply_rope(x, *RoPE(64, kind="1d")(pos)), expected, atol=1e-6, rtol=1e-6)


def test_tables_are_built_once_per_positions_and_mode():
    ids = serialize(OFFICIAL, [20000], torch.zeros(2, 4, 4, dtype=torch.long), 2, 12)[None]
    pos, rope = positions(ids, OFFICIAL), RoPE(64)
    cos, _ = rope(pos)
    assert rope(pos)[0] is cos  # the next decoding step reuses them
    with torch.inference_mode():
        inference_cos, _ = rope(pos)
    assert inference_cos is not cos and torch.equal(inference_cos, cos) and not rope(pos)[0].is_inference()
