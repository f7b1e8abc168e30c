"""AR-DF masking (§4.3), CFG text dropout and the chunked visual-only loss (§4.4)."""

import math

import pytest
import torch
import torch.nn.functional as F

from arvideo.errors import ArvideoError
from arvideo.lumos.ardf import ardf_mask, changed_tokens, drop_text, mask_ratio, visual_loss
from arvideo.lumos.sequence import IGNORE, serialize, structure, training_labels
from lumos_util import COMPACT, batch, random_sequence, tiny_decoder


def test_mask_ratio_statistics_match_reference():
    """P(p = 0.7) ~ 0.494 and E[p] ~ 0.800 (reference §4.3 / §11)."""
    p = mask_ratio((400_000,), torch.Generator().manual_seed(0))
    floor = 1 - 2 / math.pi * math.acos(0.7)  # P(cos(pi u / 2) <= 0.7)
    mean = 0.7 * floor + 2 / math.pi * math.sqrt(1 - 0.7**2)
    assert abs(floor - 0.494) < 1e-3 and abs(mean - 0.800) < 1e-3
    assert abs((p == 0.7).float().mean().item() - floor) < 0.003
    assert abs(p.mean().item() - mean) < 0.002
    assert p.min() == 0.7 and p.max() <= 1.0


def _sample(g):
    """Two samples of different prompt lengths and frame sizes, right-padded."""
    ids = batch(COMPACT, random_sequence(COMPACT, g, 3, 3, 4), random_sequence(COMPACT, g, 4, 2, 2, text=2))
    labels = training_labels(COMPACT, ids)
    labels[ids == COMPACT.pad] = IGNORE
    return ids, labels


def _frames(masked_ids, ids):
    """Per sample: masked-slot pattern [F, slots] over the frame bodies, and which slots are new-lines."""
    s = structure(ids, COMPACT)
    out = []
    for b in range(ids.shape[0]):
        body = s.body[b]
        n_frames = int(s.frame[b, body].max()) + 1
        pattern = (masked_ids[b] == COMPACT.mask)[body].view(n_frames, -1)
        new_line = (s.col[b] == s.width[b])[body].view(n_frames, -1)[0]
        out.append((pattern, new_line))
    return out


def _count(slots, ratio):
    """round(ratio * slots), at least 1, computed in float32 as the official code does."""
    return (slots * ratio).round().clamp(min=1).long()


def _check_labels(ids, labels, m):
    body = structure(ids, COMPACT).body
    masked = m.input_ids == COMPACT.mask
    assert not (masked & ~body).any()  # nothing outside frame bodies is masked
    assert torch.equal(m.input_ids[~masked], ids[~masked])
    assert torch.equal(m.labels[masked], labels[masked])  # masked slots keep their clean label
    assert (m.labels[body & ~masked] == IGNORE).all()
    assert torch.equal(m.labels[~body], labels[~body])


def test_tube_masks_the_same_slots_in_every_frame():
    g = torch.Generator().manual_seed(0)
    newline_masked = False
    for _ in range(20):
        ids, labels = _sample(g)
        m = ardf_mask(ids, labels, COMPACT, g, kind="tube")
        _check_labels(ids, labels, m)
        for b, (pattern, new_line) in enumerate(_frames(m.input_ids, ids)):
            assert (pattern == pattern[0]).all()  # a tube: one spatial pattern for all frames
            assert pattern[0].sum() == _count(pattern.shape[1], m.ratio[b])
            newline_masked |= bool(pattern[0][new_line].any())
    assert newline_masked  # new-line slots belong to the tube too


def _is_decay(pattern: torch.Tensor, ratio: torch.Tensor) -> bool:
    """Nested masks, from round(p * slots) in frame 0 to every slot in the last frame."""
    n_frames, slots = pattern.shape
    first = _count(slots, ratio)
    rising = first + (slots - first) * torch.arange(n_frames) / max(n_frames - 1, 1)
    return (
        torch.equal(pattern.sum(1), rising.round().long())  # linear in the frame index
        and bool(pattern[-1].all())
        and bool((pattern[:-1] <= pattern[1:]).all())
    )


def _is_tube(pattern: torch.Tensor, ratio: torch.Tensor) -> bool:
    return bool((pattern == pattern[0]).all() and pattern[0].sum() == _count(pattern.shape[1], ratio))


def test_random_frame_and_decay_variants():
    g = torch.Generator().manual_seed(1)
    differs, mixed = False, set()
    for _ in range(10):
        ids, labels = _sample(g)
        for kind in ("random", "frame", "tube_decay", "tube_mix"):
            m = ardf_mask(ids, labels, COMPACT, g, kind=kind)
            _check_labels(ids, labels, m)
            for b, (pattern, _) in enumerate(_frames(m.input_ids, ids)):
                n_frames, slots = pattern.shape
                if kind == "random":
                    assert pattern.sum() == _count(pattern.numel(), m.ratio[b])
                    differs |= not (pattern == pattern[0]).all()
                elif kind == "frame":
                    assert torch.equal(pattern.sum(1), _count(slots, m.ratio[b, :n_frames]))
                elif kind == "tube_decay":
                    assert _is_decay(pattern, m.ratio[b])
                else:  # each sample one or the other (a tube of 100% masks is both)
                    tube, decay = _is_tube(pattern, m.ratio[b]), _is_decay(pattern, m.ratio[b])
                    assert tube or decay
                    mixed.add((tube, decay))
    assert differs
    assert {(True, False), (False, True)} <= mixed  # both kinds occur
    with pytest.raises(ArvideoError, match="mask kind"):
        ardf_mask(ids, labels, COMPACT, g, kind="spiral")


def test_masking_is_reproducible_from_the_generator():
    ids, labels = _sample(torch.Generator().manual_seed(2))
    a = ardf_mask(ids, labels, COMPACT, torch.Generator().manual_seed(7))
    b = ardf_mask(ids, labels, COMPACT, torch.Generator().manual_seed(7))
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.labels, b.labels)


def test_cfg_text_dropout():
    g = torch.Generator().manual_seed(3)
    ids = random_sequence(COMPACT, g, 2, 2, 2)[0]
    labels = training_labels(COMPACT, ids)
    vs = int((ids == COMPACT.video_start).nonzero()[0])
    dropped, dropped_labels = drop_text(ids, labels, COMPACT, g, p=1.0)
    assert dropped[0] == COMPACT.video_start and torch.equal(dropped, ids[vs:])
    assert torch.equal(dropped_labels, labels[vs:])
    assert drop_text(ids, labels, COMPACT, g, p=0.0)[0] is ids
    assert drop_text(ids[:-1], labels[:-1], COMPACT, g, p=1.0)[0].shape == ids[:-1].shape  # not eligible
    rate = sum(len(drop_text(ids, labels, COMPACT, g)[0]) < len(ids) for _ in range(3000)) / 3000
    assert abs(rate - 0.1) < 0.02


def test_changed_tokens_are_the_codes_that_differ_from_the_frame_before():
    g = torch.Generator().manual_seed(5)
    codes = torch.randint(0, COMPACT.codebook_size, (1, 2, 3), generator=g).repeat(3, 1, 1)  # [F, H', W']
    codes[1, 1, 2] = (codes[0, 1, 2] + 1) % COMPACT.codebook_size  # a code changes in frame 1 and back
    codes[2, 0, 0] = codes[1, 0, 0] = (codes[0, 0, 0] + 7) % COMPACT.codebook_size  # one changes and stays
    image = torch.randint(0, COMPACT.codebook_size, (1, 2, 2), generator=g)
    image_ids, video_ids = serialize(COMPACT, [3, 4], image, 1, 1), serialize(COMPACT, [5], codes, 1, 12)
    ids = batch(COMPACT, image_ids[None], video_ids[None])
    labels = training_labels(COMPACT, ids)
    labels[ids == COMPACT.pad] = IGNORE

    changed = changed_tokens(ids, labels, COMPACT)
    s = structure(ids, COMPACT)
    assert not changed[0].any()  # an image has no frame before
    # video frames are counted from the sample's first frame (0 here); slot = row * (W' + 1) + col
    where = sorted(zip(s.frame[1, changed[1]].tolist(), s.slot[1, changed[1]].tolist(), strict=True))
    assert where == [(1, 0), (1, 6), (2, 6)]
    labels[1, s.body[1] & (s.frame[1] == 0)] = IGNORE  # a frame outside the loss compares with nothing
    changed = changed_tokens(ids, labels, COMPACT)[1]
    assert list(zip(s.frame[1, changed].tolist(), s.slot[1, changed].tolist(), strict=True)) == [(2, 6)]


def test_chunked_visual_loss_equals_full_logits_loss():
    model = tiny_decoder(initializer_range=0.05)
    g = torch.Generator().manual_seed(4)
    ids, labels = _sample(g)
    m = ardf_mask(ids, labels, COMPACT, g)

    hidden = model(m.input_ids)
    out = visual_loss(model, hidden, m.input_ids, m.labels, chunk=7)
    out.loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}  # zero_grad() drops, not zeroes
    assert [name for name, grad in grads.items() if grad is None] == ["head_text.weight"]
    model.zero_grad()

    hidden = model(m.input_ids)
    off, k = COMPACT.visual_offset, COMPACT.codebook_size
    rows = m.labels >= off
    ref = F.cross_entropy(
        model.logits(hidden)[rows][:, off : off + k], m.labels[rows] - off, reduction="none"
    )
    ref.mean().backward()
    torch.testing.assert_close(out.token_loss, ref.detach(), atol=1e-5, rtol=1e-5)
    for name, p in model.named_parameters():  # the text rows' reference gradient is exactly zero
        grad = torch.zeros_like(p) if grads[name] is None else grads[name]
        torch.testing.assert_close(grad, p.grad, atol=1e-6, rtol=1e-4)

    sums, counts = out.per_frame(4)
    frame = structure(m.input_ids, COMPACT).frame[rows]
    for f in range(4):
        assert counts[f] == (frame == f).sum()
        torch.testing.assert_close(sums[f], ref.detach()[frame == f].sum())


def test_loss_with_bf16_hidden_and_fp32_head():
    """Mixed precision (autocast): products in bf16, softmax in fp32, gradients in each input's dtype."""
    model = tiny_decoder()
    g = torch.Generator().manual_seed(5)
    ids, labels = _sample(g)
    m = ardf_mask(ids, labels, COMPACT, g)
    hidden = torch.randn(*ids.shape, 64, generator=g).bfloat16().requires_grad_()
    out = visual_loss(model, hidden, m.input_ids, m.labels, chunk=5)
    out.loss.backward()
    assert hidden.grad.dtype == torch.bfloat16 and model.head_visual.weight.grad.dtype == torch.float32
    assert model.head_text.weight.grad is None  # no dense gradient for rows the loss never reads
    rows = m.labels >= COMPACT.visual_offset
    logits = (hidden[rows] @ model.visual_head_weight.bfloat16().T).float()
    ref = F.cross_entropy(logits, m.labels[rows] - COMPACT.visual_offset)
    torch.testing.assert_close(out.loss, ref, atol=1e-5, rtol=1e-5)
    model.zero_grad()
    model.bfloat16()  # a bf16 head takes the fp32-accumulate-then-cast path
    visual_loss(model, hidden.detach().requires_grad_(), m.input_ids, m.labels, chunk=5).loss.backward()
    grad = model.head_visual.weight.grad
    assert grad.dtype == torch.bfloat16 and grad.abs().sum() > 0 and model.head_text.weight.grad is None
