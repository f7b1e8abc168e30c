"""The causal FSQ video tokenizer: shapes, frame rule, causality, size errors, save/load, loading by name."""

import pytest
import torch

from arvideo.errors import ArvideoError
from arvideo.tokenizers import CausalTokenizerConfig, CausalVideoTokenizer, VideoTokenizer, load_tokenizer
from arvideo.tokenizers.base import CompressionMixin, latent_frames, pixel_frames
from arvideo.tokenizers.ids import decode_video, encode_video, load_ids, save_ids

# Small widths keep every test fast; compression settings are the ones the issue names.
CONFIGS = {
    "4x8x8": dict(temporal_compression=4, spatial_compression=8, patch_size=4, channels=(16, 24)),
    "1x8x8": dict(temporal_compression=1, spatial_compression=8, patch_size=4, channels=(16, 24)),
    "4x16x16": dict(temporal_compression=4, spatial_compression=16, patch_size=4, channels=(16, 24, 24)),
}


def random_model(seed: int = 0, **overrides) -> CausalVideoTokenizer:
    """A randomly initialised model whose residual branches are NOT zero (so every path is live)."""
    model = CausalVideoTokenizer(CausalTokenizerConfig(**{**CONFIGS["4x8x8"], **overrides}))
    g = torch.Generator().manual_seed(seed)
    model.init_weights(g)
    for p in model.parameters():
        p.data.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


def random_video(b: int, t: int, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(
        0, 256, (b, 3, t, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed)
    )


def test_frame_rule_matches_cosmos():
    # reference lumos1.md §11: 1 -> 1, 24 -> 7, 25 -> 7, 84 -> 22; decoding 7 -> 25
    assert [latent_frames(t, 4) for t in (1, 2, 5, 6, 17, 24, 25, 84)] == [1, 2, 2, 3, 5, 7, 7, 22]
    assert pixel_frames(7, 4) == 25 and pixel_frames(1, 4) == 1
    with pytest.raises(ArvideoError):
        latent_frames(0, 4)


def test_compression_factors_alone_give_the_frame_rule_and_size_check():
    class EightBySixteen(CompressionMixin):
        temporal_compression, spatial_compression = 8, 16

    tok = EightBySixteen()
    assert [tok.latent_frames(t) for t in (1, 2, 9, 10, 17)] == [1, 2, 2, 3, 3] and tok.pixel_frames(3) == 17
    tok.check_size(32, 48)
    with pytest.raises(ArvideoError, match="width 40 .* 32 or 48"):
        tok.check_size(32, 40)
    with pytest.raises(ArvideoError, match="at least 1 latent frame"):
        tok.pixel_frames(0)
    images_only = random_model(**CONFIGS["1x8x8"])
    assert [images_only.latent_frames(t) for t in (1, 5)] == [1, 5] and images_only.pixel_frames(5) == 5


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("t", [1, 5, 17])
def test_encode_decode_shapes(name, t):
    model = random_model(**CONFIGS[name])
    tc, sc = model.temporal_compression, model.spatial_compression
    ids = model.encode(random_video(2, t))
    assert ids.shape == (2, 1 + -(-(t - 1) // tc), 32 // sc, 32 // sc) and ids.dtype == torch.int64
    assert 0 <= ids.min() and ids.max() < model.codebook_size
    video = model.decode(ids)
    assert video.shape == (2, 3, 1 + tc * (ids.shape[1] - 1), 32, 32)
    assert video.min() >= -1 and video.max() <= 1
    assert isinstance(model, VideoTokenizer)


def test_uint8_and_float_inputs_agree():
    model = random_model()
    video = random_video(1, 5)
    assert torch.equal(model.encode(video), model.encode(video.float() / 127.5 - 1))


@pytest.mark.parametrize("k", [1, 4, 5, 9, 16])
def test_encoder_and_decoder_are_causal(k):
    """Changing pixel frame k leaves the codes of every latent frame before k's group unchanged;
    changing latent frame j leaves every decoded frame before j's group unchanged."""
    model = random_model(seed=k)
    video = random_video(1, 17, seed=1)
    changed = video.clone()
    changed[:, :, k] = 255 - changed[:, :, k]
    group = 1 + (k - 1) // 4
    before, after = model.encode(video), model.encode(changed)
    assert torch.equal(before[:, :group], after[:, :group])
    assert not torch.equal(before[:, group:], after[:, group:])  # the change is seen, from its group on

    ids = before.clone()
    ids[:, group] = (ids[:, group] + 17) % model.codebook_size
    first = 1 + 4 * (group - 1)  # first pixel frame of latent frame `group`
    a, b = model.decode(before), model.decode(ids)
    assert torch.equal(a[:, :, :first], b[:, :, :first])
    assert not torch.equal(a[:, :, first:], b[:, :, first:])


def test_encoder_kernel_1_keeps_a_change_to_the_codes_around_it():
    """With 1x1 residual blocks a code sees its own 8x8 cell and 6 pixels around it (this config),
    so changing the top-left cell leaves every code two cells away as it was; the default 3x3
    blocks carry it across the frame."""
    video = random_video(1, 9, seed=2)
    changed = video.clone()
    changed[..., :8, :8] = 255 - changed[..., :8, :8]
    far = torch.ones(4, 4, dtype=torch.bool)
    far[:2, :2] = False  # latent cells within one cell of the change
    local, wide = random_model(encoder_kernel=1), random_model()
    assert torch.equal(local.encode(video)[..., far], local.encode(changed)[..., far])
    assert not torch.equal(local.encode(video)[..., 0, 0], local.encode(changed)[..., 0, 0])
    assert not torch.equal(wide.encode(video)[..., far], wide.encode(changed)[..., far])


def test_last_group_padding_does_not_change_earlier_codes():
    model = random_model()
    video = random_video(1, 17)
    assert torch.equal(model.encode(video[:, :, :15])[:, :4], model.encode(video)[:, :4])


def test_size_errors_name_the_nearest_valid_sizes():
    model = random_model()
    with pytest.raises(ArvideoError, match="height 60 .* 56 or 64"):
        model.encode(random_video(1, 1, h=60, w=64))
    with pytest.raises(ArvideoError, match="width 4 .* 8"):
        model.encode(random_video(1, 1, h=64, w=4))
    with pytest.raises(ArvideoError, match=r"\[B, 3, T, H, W\]"):
        model.encode(torch.zeros(3, 5, 32, 32))
    with pytest.raises(ArvideoError, match="ids must lie in"):
        model.decode(torch.full((1, 1, 4, 4), model.codebook_size))
    with pytest.raises(ArvideoError, match="integer"):
        model.decode(torch.zeros(1, 1, 4, 4))


def test_config_errors():
    with pytest.raises(ArvideoError, match="patch_size"):
        CausalTokenizerConfig(spatial_compression=16, patch_size=4, channels=(8, 8))
    with pytest.raises(ArvideoError, match="unknown tokenizer config fields"):
        CausalTokenizerConfig.from_dict({"chanels": [8]})


def test_save_load_round_trip(tmp_path):
    model = random_model()
    video = random_video(2, 9)
    model.save(tmp_path / "fp32", dtype=torch.float32)
    loaded = load_tokenizer(tmp_path / "fp32")
    assert isinstance(loaded, CausalVideoTokenizer) and loaded.config == model.config
    ids = model.encode(video)
    assert torch.equal(loaded.encode(video), ids)
    assert torch.equal(loaded.decode(ids), model.decode(ids))

    model.save(tmp_path / "fp16")  # default storage: fp16, upcast on load
    half = load_tokenizer(tmp_path / "fp16")
    assert all(p.dtype == torch.float32 for p in half.parameters())
    assert (half.decode(ids) - model.decode(ids)).abs().max() < 0.02
    with pytest.raises(ArvideoError, match="already exists"):
        model.save(tmp_path / "fp16")


def test_load_tokenizer_errors(tmp_path):
    with pytest.raises(ArvideoError, match="builtin:shapes"):
        load_tokenizer("builtin:nope")
    with pytest.raises(ArvideoError, match="neither"):
        load_tokenizer(tmp_path / "missing")
    with pytest.raises(ArvideoError, match="not a tokenizer folder"):
        load_tokenizer(tmp_path)


def test_ids_file_and_cli_round_trip(tmp_path):
    from arvideo.cli import main
    from arvideo.io import Video, read_video

    model = random_model()
    model.save(tmp_path / "tok")
    tok = load_tokenizer(tmp_path / "tok")
    frames = random_video(1, 6)[0].permute(1, 2, 3, 0)  # [T, H, W, 3]
    ids = encode_video(tok, Video(frames, fps=8.0))
    save_ids(tmp_path / "a.ids.safetensors", ids, str(tmp_path / "tok"), fps=8.0, n_frames=6)
    loaded, meta = load_ids(tmp_path / "a.ids.safetensors")
    assert torch.equal(loaded, ids) and meta == {"tokenizer": str(tmp_path / "tok"), "fps": 8.0, "frames": 6}
    video = decode_video(tok, loaded, fps=meta["fps"], n_frames=meta["frames"])
    assert video.frames.shape == (6, 32, 32, 3) and video.frames.dtype == torch.uint8

    # the CLI: resize a 48x40 gif to 32x32, tokenize, detokenize with the tokenizer recorded in the file
    Video(torch.randint(0, 256, (5, 40, 48, 3), dtype=torch.uint8), fps=8.0).save(tmp_path / "in.gif")
    ids_path = tmp_path / "in.ids.safetensors"
    assert (
        main(
            [
                "-q",
                "tokenize",
                str(tmp_path / "in.gif"),
                "--tokenizer",
                str(tmp_path / "tok"),
                "--size",
                "32x32",
            ]
        )
        == 0
    )
    assert load_ids(ids_path)[0].shape == (2, 4, 4)
    assert main(["-q", "detokenize", str(ids_path), "--out", str(tmp_path / "out.gif")]) == 0
    assert read_video(tmp_path / "out.gif").frames.shape == (5, 32, 32, 3)
    # user errors are one line and exit code 2
    assert main(["-q", "tokenize", str(tmp_path / "in.gif"), "--tokenizer", str(tmp_path / "tok")]) == 2
    assert main(["-q", "detokenize", str(ids_path), "--out", str(tmp_path / "out.gif")]) == 2  # exists
