"""FSQ: mixed-radix ids as in reference lumos1.md §7/§11, round trips, straight-through, usage stats."""

import math

import pytest
import torch

from arvideo.tokenizers.fsq import FSQ, codebook_usage

COSMOS = (8, 8, 8, 5, 5, 5)


def test_cosmos_basis_and_codebook_size():
    fsq = FSQ(COSMOS)
    assert fsq.basis.tolist() == [1, 8, 64, 512, 2560, 12800]  # reference §11
    assert fsq.codebook_size == 64_000
    # index = sum q_i * basis_i, e.g. levels (1, 2, 3, 4, 1, 2) -> 1 + 16 + 192 + 2048 + 2560 + 25600
    assert fsq.levels_to_ids(torch.tensor([1, 2, 3, 4, 1, 2])).item() == 30_417


@pytest.mark.parametrize("levels", [COSMOS, (8, 8, 8, 5), (7, 5, 5, 5, 5), (2, 3)])
def test_every_id_round_trips(levels):
    fsq = FSQ(levels)
    ids = torch.arange(fsq.codebook_size)
    q = fsq.ids_to_levels(ids)
    assert (q >= 0).all() and (q < fsq.levels).all()
    assert torch.equal(fsq.levels_to_ids(q), ids)
    codes = fsq.ids_to_codes(ids)
    assert codes.min() >= -1 and codes.max() <= 1
    assert torch.equal(fsq.codes_to_ids(codes), ids)
    assert len(torch.unique(codes, dim=0)) == fsq.codebook_size  # distinct ids are distinct codes


def test_forward_quantizes_onto_the_grid_with_straight_through_gradient():
    fsq = FSQ(COSMOS)
    g = torch.Generator().manual_seed(0)
    z = (3 * torch.randn(4096, 6, generator=g)).requires_grad_()
    codes, ids = fsq(z)
    assert torch.equal(fsq.codes_to_ids(codes.detach()), ids)
    assert torch.equal(fsq.ids_to_codes(ids), codes.detach())
    # wide inputs reach every level of every channel, and no more
    q = fsq.ids_to_levels(ids)
    for i, level in enumerate(COSMOS):
        assert sorted(q[:, i].unique().tolist()) == list(range(level))
    codes.sum().backward()
    # rounding passes the gradient of the bounded (unrounded) latent straight through
    z2 = z.detach().clone().requires_grad_()
    (fsq.bound(z2) / (fsq.levels // 2)).sum().backward()
    assert torch.allclose(z.grad, z2.grad) and (z.grad[z.abs() < 2] > 0).all()


def test_zero_latent_is_the_centre_code():
    fsq = FSQ((8, 5))
    codes, ids = fsq(torch.zeros(1, 2))
    assert codes.tolist() == [[0.0, 0.0]]
    assert fsq.ids_to_levels(ids).tolist() == [[4, 2]]


def test_codebook_usage_statistics():
    uniform = codebook_usage(torch.arange(1000).repeat(3), 1000)
    assert uniform["fraction_used"] == 1.0 and math.isclose(uniform["perplexity"], 1000, rel_tol=1e-9)
    single = codebook_usage(torch.full((50,), 7), 1000)
    assert single["codes_used"] == 1 and math.isclose(single["perplexity"], 1.0)
    half = codebook_usage(torch.tensor([0, 1]), 4)
    assert half["fraction_used"] == 0.5 and math.isclose(half["perplexity"], 2.0)


def test_bad_levels_and_ids_are_refused():
    with pytest.raises(ValueError):
        FSQ((8, 1))
    with pytest.raises(ValueError, match="64000"):
        FSQ(COSMOS).ids_to_codes(torch.tensor([64_000]))


def test_saturation_penalty_only_acts_where_tanh_is_flat():
    fsq = FSQ((8, 5))
    inside = torch.tensor([[1.5, -1.9], [-1.5, 1.9]])  # every level is reachable in here
    assert fsq.saturation(inside) == 0
    far = torch.tensor([[4.0, -4.0]], requires_grad=True)
    penalty = fsq.saturation(far)
    penalty.backward()
    assert penalty > 0 and far.grad[0, 0] > 0 and far.grad[0, 1] < 0  # descent pulls both back inwards
    # the extreme levels are reached well inside the limit
    q = fsq.ids_to_levels(fsq(torch.tensor([[1.5, 1.0], [-1.5, -1.0]]))[1])
    assert q.tolist() == [[7, 4], [0, 0]]
