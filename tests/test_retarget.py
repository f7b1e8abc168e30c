"""`arvideo retarget`: a trained model moved onto a new video tokenizer by pairing codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from arvideo.cli import main
from arvideo.data.folder import FolderItem, write_folder
from arvideo.errors import ArvideoError
from arvideo.lumos.checkpoint import load_lumos, save_lumos
from arvideo.lumos.sequence import serialize
from arvideo.lumos.vocab import Vocab
from arvideo.pipelines import load
from arvideo.pipelines.lumos import PipelineConfig
from arvideo.tokenizers import CausalTokenizerConfig, CausalVideoTokenizer
from arvideo.tokenizers.text import train_bpe
from arvideo.train.retarget import cooccurrence, retarget
from lumos_util import tiny_decoder

VOCAB = Vocab.compact(text_vocab_size=50, codebook_size=16)


def tiny_tokenizer(seed: int) -> CausalVideoTokenizer:
    torch.manual_seed(seed)  # test-only: module init draws from the global generator (PyTorch's init)
    config = CausalTokenizerConfig(patch_size=4, channels=(8, 8), decoder_blocks=1, levels=(4, 4))
    return CausalVideoTokenizer(config).eval()


class BlockMean:
    """A stand-in tokenizer whose codes every test can predict: the mean grey level of each 8x8
    block of the last frame of each causal frame group, in 16 bins, renamed by `perm`."""

    temporal_compression, spatial_compression = 4, 8

    def __init__(self, perm: torch.Tensor | None = None, codebook_size: int = 16):
        self.perm = torch.arange(16) if perm is None else perm
        self.codebook_size = codebook_size

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        last = video[:, :, ::4].float().mean(1, keepdim=True)  # [B, 1, T', H, W]: frames 0, 4, 8, ...
        return self.perm[(torch.nn.functional.avg_pool3d(last, (1, 8, 8))[:, 0] // 16).long()]


def clips(n: int, seed: int = 0) -> list[torch.Tensor]:
    """uint8 [9, 32, 32, 3] clips of random 8x8 blocks (each block one grey level: all codes occur)."""
    rng = np.random.default_rng(seed)
    grey = [rng.integers(0, 256, (9, 4, 4, 1), dtype=np.uint8) for _ in range(n)]
    return [torch.from_numpy(g.repeat(8, 1).repeat(8, 2).repeat(3, 3)) for g in grey]


def test_a_renumbering_gives_the_same_model_under_the_new_names():
    old, perm = BlockMean(), torch.randperm(16, generator=torch.Generator().manual_seed(1))
    videos = clips(6)
    counts = cooccurrence(old, BlockMean(perm), videos)
    seen = counts.sum(1) > 0
    assert int(seen.sum()) >= 12, "the test clips should use most codes"
    assert torch.equal(counts.argmax(1)[seen], torch.argsort(perm)[seen])  # each new code has one partner

    model = tiny_decoder(vocab=VOCAB)
    moved = retarget(model, counts).eval()
    codes = old.encode(videos[0].permute(3, 0, 1, 2)[None])[0]  # [3, 4, 4], all seen codes
    before = serialize(VOCAB, [3, 4, 5], codes, 1, 8)[None]
    after = serialize(VOCAB, [3, 4, 5], perm[codes], 1, 8)[None]
    with torch.no_grad():
        h_old, h_new = model(before), moved(after)
        torch.testing.assert_close(h_new, h_old)
        logits_old, logits_new = model.visual_logits(h_old), moved.visual_logits(h_new)
    new_codes = seen.nonzero()[:, 0]
    torch.testing.assert_close(logits_new[..., new_codes], logits_old[..., torch.argsort(perm)[new_codes]])
    for name, value in model.state_dict().items():  # everything but the visual rows is kept
        if name not in ("embed.weight", "head_visual.weight"):
            assert torch.equal(moved.state_dict()[name], value), name


def test_unseen_codes_start_at_the_mean_code_and_the_vocabulary_grows_for_a_larger_codebook():
    counts = cooccurrence(BlockMean(), BlockMean(codebook_size=20), clips(4))  # 16..19 never come out
    model = tiny_decoder(vocab=VOCAB)
    moved = retarget(model, counts)
    assert moved.vocab == Vocab.compact(50, 20) and moved.embed.weight.shape[0] == VOCAB.size + 4
    start = VOCAB.visual_offset
    assert torch.equal(moved.embed.weight[:start], model.embed.weight[:start])  # text rows as they were
    frequency = counts.sum(0) / counts.sum()
    for rows, old_rows in ((moved.embed.weight[start:], model.embed.weight[start:]),
                           (moved.head_visual.weight, model.head_visual.weight)):  # fmt: skip
        for code in range(16, 20):
            torch.testing.assert_close(rows[code], frequency.float() @ old_rows)


def test_tokenizers_of_different_grids_or_sizes_are_refused():
    coarse = BlockMean()
    coarse.spatial_compression = 16
    with pytest.raises(ArvideoError, match="share the latent grid"):
        cooccurrence(BlockMean(), coarse, clips(1))
    with pytest.raises(ArvideoError, match="16 codes but the model's vocabulary 12"):
        retarget(tiny_decoder(vocab=Vocab.compact(50, 12)), torch.ones(16, 16))
    with pytest.raises(ArvideoError, match="compact-layout"):
        retarget(tiny_decoder(vocab=Vocab.official()), torch.ones(10, 64_000))


@pytest.fixture
def folders(tmp_path):
    """A model folder trained 'on' tokenizer `old`, a second tokenizer `new`, and a folder of clips."""
    tiny_tokenizer(0).save(tmp_path / "old")
    tiny_tokenizer(1).save(tmp_path / "new")
    text = train_bpe(["a red circle moves right", "a blue square moves up"] * 4, vocab_size=280)
    (tmp_path / "text").mkdir()
    text.save(tmp_path / "text" / "tokenizer.json")
    save_lumos(
        tiny_decoder(vocab=Vocab.compact(text.vocab_size, 16), initializer_range=0.05), tmp_path / "model"
    )
    config = PipelineConfig(tokenizer="../old", text_tokenizer="../text/tokenizer.json", prompt="caption",
                            width=32, height=32, frames=9, fps=8, steps=2)  # fmt: skip
    (tmp_path / "model" / "arvideo.json").write_text(json.dumps(config.to_dict()))
    write_folder(tmp_path / "data", [FolderItem(clip, f"clip {i}") for i, clip in enumerate(clips(3))])
    return tmp_path


def test_cli_writes_a_model_folder_that_loads_with_the_new_tokenizer(folders, capsys):
    out = folders / "moved"
    args = ["retarget", str(folders / "model"), str(out), "--tokenizer", str(folders / "new"),
            "--videos", str(folders / "data"), "--items", "3", "--frames", "9"]  # fmt: skip
    assert main(args) == 0
    config = json.loads((out / "arvideo.json").read_text())
    assert config["tokenizer"] == "../new" and config["text_tokenizer"] == "../text/tokenizer.json"
    pipe = load(out)
    assert pipe.model.vocab == load_lumos(folders / "model").vocab
    assert pipe(prompt="a red circle moves right", steps=1, seed=0).frames.shape == (9, 32, 32, 3)

    before = (out / "model.safetensors").read_bytes()
    assert main(args) == 2 and "already exists" in capsys.readouterr().err  # never overwritten unasked
    assert main([*args, "--overwrite", "--items", "4"]) == 2
    assert "holds 3 videos" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == before


def test_cli_needs_the_old_tokenizer_when_the_model_folder_names_none(folders, capsys):
    (folders / "model" / "arvideo.json").unlink()
    args = ["retarget", str(folders / "model"), str(folders / "moved"), "--tokenizer", str(folders / "new"),
            "--videos", str(folders / "data"), "--items", "2", "--frames", "9"]  # fmt: skip
    assert main(args) == 2 and "names no video tokenizer" in capsys.readouterr().err
    assert not (folders / "moved").exists()
    missing = [args[0], str(folders / "nope"), *args[2:]]
    assert main(missing) == 2 and "nope' does not exist" in capsys.readouterr().err
    assert main([*args, "--old-tokenizer", str(folders / "old")]) == 0
    assert not (folders / "moved" / "arvideo.json").exists()
