"""Frame-causal attention: the §11 mask oracle, and chunked SDPA / flex attention against a dense mask."""

import pytest
import torch
import torch.nn.functional as F

from arvideo.lumos.masks import FrameMask, attend, frame_mask
from lumos_util import COMPACT, batch, random_sequence


def test_reference_mask_oracle():
    """§11: [1,2,3,S,x,x,E,1,2,3,S,x,x,E,1,2] with frames at 3-6 and 10-13."""
    v = COMPACT
    raw = [1, 2, 3, 100, 101, 102, 200, 1, 2, 3, 100, 101, 102, 200, 1, 2]
    ids = torch.tensor([v.image_start if t == 100 else v.image_end if t == 200 else t for t in raw])[None]
    allowed = frame_mask(ids, v).dense()[0, 0]
    expected = torch.ones(16, 16).tril().bool()
    expected[3:7, :7] = True
    expected[10:14, :14] = True
    assert torch.equal(allowed, expected)


def _qkv(g, length, heads=4, kv=2, dim=16):
    return (
        torch.randn(2, heads, length, dim, generator=g),
        torch.randn(2, kv, length, dim, generator=g),
        torch.randn(2, kv, length, dim, generator=g),
    )


def test_chunked_attention_equals_dense_mask():
    g = torch.Generator().manual_seed(0)
    ids = batch(COMPACT, random_sequence(COMPACT, g, 3, 3, 4), random_sequence(COMPACT, g, 3, 3, 4, text=2))
    mask = frame_mask(ids, COMPACT)
    q, k, v = _qkv(g, ids.shape[1])
    dense = F.scaled_dot_product_attention(
        q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), attn_mask=mask.dense()
    )
    for chunk in (5, 16, 1000):
        torch.testing.assert_close(attend(q, k, v, mask, chunk), dense, atol=1e-6, rtol=1e-5)


def test_sliced_mask_rows_see_the_cached_prefix():
    g = torch.Generator().manual_seed(1)
    ids = random_sequence(COMPACT, g, 2, 2, 2)
    full = frame_mask(ids, COMPACT)
    start = ids.shape[1] - 10
    assert torch.equal(full.slice(start).dense(ids.shape[1]), full.dense()[:, :, start:])


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
def test_flex_block_mask_matches_sdpa_path():
    """Forward only: flex attention has no CPU backward in torch 2.13."""
    g = torch.Generator().manual_seed(2)
    ids = batch(COMPACT, random_sequence(COMPACT, g, 3, 2, 3), random_sequence(COMPACT, g, 3, 2, 3, text=9))
    mask = frame_mask(ids, COMPACT)
    q, k, v = _qkv(g, ids.shape[1])
    from torch.nn.attention.flex_attention import flex_attention

    out = flex_attention(q, k, v, block_mask=mask.block_mask(), enable_gqa=True)
    torch.testing.assert_close(out, attend(q, k, v, mask), atol=1e-5, rtol=1e-5)


def _frame_rows(seed: int):
    """The mask rows of a sequence's last frame, as a decoding step runs them against the cache."""
    ids = random_sequence(COMPACT, torch.Generator().manual_seed(seed), 2, 2, 3)
    start = int((ids[0] == COMPACT.image_start).nonzero()[-1])
    end = int((ids[0] == COMPACT.image_end).nonzero()[-1]) + 1
    return frame_mask(ids, COMPACT).slice(start, end), end


def test_decoding_rows_need_no_mask_unless_a_row_is_padded():
    frame, n_keys = _frame_rows(3)
    rows = frame.limit.shape[1]
    assert frame.bias(0, rows, n_keys, torch.float32) == (n_keys, None)  # a frame sees all its history
    first = torch.tensor([[0], [4]]).expand(2, rows)  # row 1 left-padded by 4 tokens (guidance)
    padded = FrameMask(frame.limit.expand(2, -1), first)
    seen, bias = padded.bias(0, rows, n_keys, torch.float32)
    allowed = padded.dense(n_keys)
    assert seen == n_keys and torch.equal(bias == 0, allowed) and (bias[~allowed] == float("-inf")).all()
    assert padded.bias(0, rows, n_keys, torch.float32)[1] is bias  # built once for every layer and step


def test_rows_that_stop_inside_a_frame_see_only_the_keys_there_are():
    """Next-token decoding runs a frame's first rows alone: their limit lies past the last key."""
    frame, n_keys = _frame_rows(4)
    seen, bias = frame.slice(0, 5).bias(0, 5, n_keys - frame.limit.shape[1] + 5, torch.float32)
    assert seen == n_keys - frame.limit.shape[1] + 5 and bias is None


def test_a_mask_made_in_inference_mode_still_serves_autograd():
    g = torch.Generator().manual_seed(5)
    ids = random_sequence(COMPACT, g, 2, 2, 3)
    mask = frame_mask(ids, COMPACT)
    q, k, v = _qkv(g, ids.shape[1])
    with torch.inference_mode():
        attend(q, k, v, mask)
    q.requires_grad_()
    attend(q, k, v, mask).sum().backward()  # an inference-mode mask cannot be saved for backward
    assert q.grad is not None
