"""The whole path through the CLI with real components: shapes folder -> tokenize-data -> train lumos."""

import json

import pytest
import torch
import yaml

from arvideo.cli import main
from arvideo.data.folder import read_captions
from arvideo.lumos.checkpoint import load_lumos
from arvideo.tokenizers.text import train_bpe
from arvideo.tokenizers.video import CausalTokenizerConfig, CausalVideoTokenizer
from arvideo.train.checkpoint import latest_checkpoint
from arvideo.train.data import ShardDataset


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_shapes_to_tokens_to_a_trained_lumos_folder(tmp_path):
    src, tok_dir, bpe, shards = (tmp_path / n for n in ("shapes", "tok", "bpe.json", "shards"))
    assert main(["-q", "data", "shapes", "--out", str(src), "-n", "6", "--size", "32", "--frames", "9"]) == 0
    tokenizer = CausalVideoTokenizer(CausalTokenizerConfig(channels=(8, 8), levels=(4, 4)))  # untrained, tiny
    tokenizer.init_weights(torch.Generator().manual_seed(0))
    tokenizer.save(tok_dir)
    train_bpe([caption for _, caption in read_captions(src)], vocab_size=300).save(bpe)

    args = ["-q", "tokenize-data", str(src), str(shards), "--tokenizer", str(tok_dir),
            "--text-tokenizer", str(bpe), "--frames", "9", "--shard-size", "4"]  # fmt: skip
    assert main(args) == 0
    ds = ShardDataset(shards)
    assert len(ds) == 6 and ds[0].visual.shape == (3, 4, 4) and ds.meta["text_vocab_size"] == 300

    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "out_dir": str(tmp_path / "run"), "steps": 2, "model": "tiny",
        "data": {"shards": str(shards), "batch_size": 2, "micro_batch_size": 1},
        "checkpoint": {"every": 2}, "eval": {"every": 2, "shards": str(shards), "items": 2},
        "log": {"peak_flops": 1e10},
    }))  # fmt: skip
    assert main(["-q", "train", "lumos", str(config)]) == 0
    assert main(["-q", "train", "lumos", str(config)]) == 2  # refuses to clobber the finished run
    model = load_lumos(latest_checkpoint(tmp_path / "run" / "checkpoints"))
    assert model.config.vocab.codebook_size == 16 and model.config.vocab.text_size == 300
    saved = json.loads((tmp_path / "run" / "checkpoints" / "step-00000002" / "config.json").read_text())
    assert saved["num_hidden_layers"] == 2
    assert (tmp_path / "run" / "eval.csv").read_text().startswith("step,val_loss,val_loss_frame0")
