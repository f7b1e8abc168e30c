"""The Cosmos DV adapter, tested with tiny TorchScript modules saved in the official folder layout.

The tiny encoder follows the real one's contract (reference lumos1.md §7): [-1, 1] video in,
tuple (indices [B, T', H/8, W/8], codes [B, 6, T', H/8, W/8], dummy loss) out, causal frame rule;
the tiny decoder maps indices to [B, 3, 1 + 4(T'-1), 8h, 8w].
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from arvideo.errors import ArvideoError
from arvideo.tokenizers import COSMOS_CODEBOOK_SIZE, LUMOS_VISUAL_ID_OFFSET, CosmosTokenizer, load_tokenizer
from arvideo.tokenizers.cosmos import bucket_sizes, cosmos_preprocess, pick_bucket

LEVELS = [8, 8, 8, 5, 5, 5]
BASIS = [1, 8, 64, 512, 2560, 12800]
# The official files are TorchScript; building them needs the (deprecated) jit API.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")


class TinyEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Conv3d(3, 6, 1)
        self.register_buffer("levels", torch.tensor(LEVELS).view(1, 6, 1, 1, 1))
        self.register_buffer("basis", torch.tensor(BASIS).view(1, 6, 1, 1, 1))

    def quantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, 3, T, H, W] -> (indices [B, T', h, w] int32, codes [B, 6, T', h, w] in [-1, 1])."""
        t = x.shape[2]
        n_lat = 1 + (t - 1 + 3) // 4
        pad = 1 + 4 * (n_lat - 1) - t
        x = torch.cat([x[:, :, :1].repeat(1, 1, 3, 1, 1), x, x[:, :, -1:].repeat(1, 1, pad, 1, 1)], 2)
        z = torch.tanh(3 * self.proj(F.avg_pool3d(x, (4, 8, 8))))  # [B, 6, T', h, w]
        q = torch.round((z + 1) / 2 * (self.levels - 1)).long()  # levels 0..L-1
        codes = (q - self.levels // 2).float() / (self.levels // 2).float()
        return (q * self.basis).sum(1).to(torch.int32), codes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids, codes = self.quantize(x)
        return ids, codes, torch.zeros(())


class CodesEncoder(TinyEncoder):
    """A variant that returns only the 6-channel codes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quantize(x)[1]


class TinyDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Conv3d(6, 3, 1)
        self.register_buffer("levels", torch.tensor(LEVELS).view(1, 6, 1, 1, 1))
        self.register_buffer("basis", torch.tensor(BASIS).view(1, 6, 1, 1, 1))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        q = (ids.long().unsqueeze(1) // self.basis) % self.levels  # [B, 6, T', h, w]
        x = torch.tanh(self.proj(q.float()))
        x = x.repeat_interleave(4, 2).repeat_interleave(8, 3).repeat_interleave(8, 4)
        return x[:, :, 3:]


def write_folder(path, codes_only: bool = False):
    path.mkdir()
    torch.manual_seed(0)
    encoder = CodesEncoder() if codes_only else TinyEncoder()
    torch.jit.save(torch.jit.script(encoder), str(path / "encoder.jit"))
    torch.jit.save(torch.jit.script(TinyDecoder()), str(path / "decoder.jit"))
    (path / "config.json").write_text("{}")  # the real folder has one too; it must not confuse the loader
    return path


@pytest.fixture(scope="module")
def cosmos_dir(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("cosmos") / "Cosmos-Tokenizer-DV4x8x8")


def test_constants():
    assert COSMOS_CODEBOOK_SIZE == 64_000 and LUMOS_VISUAL_ID_OFFSET == 65_536
    assert LUMOS_VISUAL_ID_OFFSET + COSMOS_CODEBOOK_SIZE == 129_536  # Lumos-1 vocab_size (reference §2.1)


@pytest.mark.parametrize("t", [1, 5, 17])
def test_adapter_matches_the_jit_modules(cosmos_dir, t):
    tok = load_tokenizer(cosmos_dir)
    assert isinstance(tok, CosmosTokenizer)
    assert (tok.temporal_compression, tok.spatial_compression, tok.codebook_size) == (4, 8, 64_000)
    g = torch.Generator().manual_seed(t)
    video = torch.randint(0, 256, (2, 3, t, 32, 48), dtype=torch.uint8, generator=g)
    ids = tok.encode(video)
    encoder = torch.jit.load(str(cosmos_dir / "encoder.jit"))
    assert ids.dtype == torch.int64 and ids.shape == (2, tok.latent_frames(t), 4, 6)
    assert torch.equal(ids, encoder(video.float() / 127.5 - 1)[0].long())
    out = tok.decode(ids)
    assert out.shape == (2, 3, tok.pixel_frames(ids.shape[1]), 32, 48)
    assert torch.equal(out, torch.jit.load(str(cosmos_dir / "decoder.jit"))(ids).clamp(-1, 1))


def test_encoder_returning_codes_is_indexed_like_cosmos(tmp_path, cosmos_dir):
    video = torch.randint(
        0, 256, (1, 3, 9, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    from_codes = CosmosTokenizer(write_folder(tmp_path / "codes", codes_only=True)).encode(video)
    assert torch.equal(from_codes, CosmosTokenizer(cosmos_dir).encode(video))


def test_adapter_errors(cosmos_dir, tmp_path):
    tok = CosmosTokenizer(cosmos_dir)
    with pytest.raises(ArvideoError, match="multiple of 8"):
        tok.encode(torch.zeros(1, 3, 1, 30, 32, dtype=torch.uint8))
    with pytest.raises(ArvideoError, match=r"\[0, 64000\)"):
        tok.decode(torch.full((1, 1, 2, 2), 64_000))
    with pytest.raises(ArvideoError, match="encoder.jit"):
        CosmosTokenizer(tmp_path)


@pytest.mark.parametrize(
    "target, frame, bucket",
    [
        (352, (1280, 720), (448, 256)),
        (352, (500, 500), (352, 352)),
        (352, (640, 480), (384, 288)),
        (528, (1280, 720), (672, 384)),
        (528, (720, 1280), (384, 672)),
        (528, (500, 500), (512, 512)),
        (528, (640, 480), (576, 448)),
        (656, (1280, 720), (832, 480)),
        (656, (500, 500), (640, 640)),
    ],
)
def test_buckets_match_the_reference(target, frame, bucket):
    assert pick_bucket(*frame, target) == bucket  # reference lumos1.md §7 "Buckets"


def test_bucket_list_invariants():
    buckets = bucket_sizes(352)
    assert all(w % 32 == 0 and h % 32 == 0 for w, h in buckets)
    assert all(w * h <= 352**2 and max(w, h) / min(w, h) <= 4 for w, h in buckets)
    assert (352, 352) in buckets and (448, 256) in buckets and (256, 448) in buckets


def test_preprocess_crops_the_centre_in_the_bucket():
    # 1280x720 frame: left third red, middle third green, right third blue -> the centre crop is
    # green in the middle with thinner red and blue bands, at 448x256 in [-1, 1]
    frame = torch.zeros(2, 720, 1280, 3, dtype=torch.uint8)
    frame[:, :, :427, 0], frame[:, :, 427:853, 1], frame[:, :, 853:, 2] = 255, 255, 255
    x = cosmos_preprocess(frame, 352)
    assert x.shape == (1, 3, 2, 256, 448) and x.min() >= -1 and x.max() <= 1
    centre = x[0, :, 0, 128, 224]
    assert centre.tolist() == [-1.0, 1.0, -1.0]
    assert x[0, 0, 0, 128, 2] > 0.9 and x[0, 2, 0, 128, -3] > 0.9  # red left edge, blue right edge
