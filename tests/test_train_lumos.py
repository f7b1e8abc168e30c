import json

import pytest
import torch

from arvideo.errors import ArvideoError
from arvideo.lumos.checkpoint import load_lumos
from arvideo.lumos.sequence import IGNORE, header_timing
from arvideo.train.checkpoint import latest_checkpoint
from arvideo.train.config import RunConfig, from_dict
from arvideo.train.data import META_FILE, ShardDataset
from arvideo.train.lumos_task import LumosTask, decoder_config
from arvideo.train.trainer import Trainer
from train_toy import CODEBOOK, TEXT_VOCAB, make_shards

META = {"tokenizer": "toy", "text_tokenizer": "toy", "codebook_size": CODEBOOK, "text_vocab_size": TEXT_VOCAB,
        "temporal_compression": 4, "spatial_compression": 8, "frames": 9}  # fmt: skip


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = make_shards(tmp_path_factory.mktemp("shards"), n_videos=16, n_images=8)
    (folder / META_FILE).write_text(json.dumps(META))
    return folder


def config(out_dir, shards, **extra) -> RunConfig:
    return from_dict(RunConfig, {
        "kind": "lumos", "out_dir": str(out_dir), "steps": 6, "seed": 2, "model": "tiny",
        "data": {"shards": str(shards), "batch_size": 4, "micro_batch_size": 2, "image_batch_size": 4,
                 "image_micro_batch_size": 4, "bucket_window": 2},
        "optim": {"lr": 3e-3, "warmup_steps": 1}, "checkpoint": {"every": 3}, "eval": {"every": 0},
        "log": {"peak_flops": 1e10, "tensorboard": False}, **extra,
    })  # fmt: skip


def test_collate_masks_visual_codes_and_drops_captions(shards):
    task = LumosTask(config("unused", shards))
    vocab, ds = task.vocab, ShardDataset(shards)
    items = [ds[0], ds[1], ds[20]]  # two videos and an image
    task.options.text_drop = 0.0
    batch = task.collate(items, torch.Generator().manual_seed(0))
    ids, labels = batch["input_ids"], batch["labels"]
    targets = vocab.is_visual(labels)  # the loss rows: visual codes whose label survived masking
    assert (ids[targets] == vocab.mask).all()  # each of them is masked in the input ...
    assert (labels[vocab.is_visual(ids)] == IGNORE).all()  # ... and every visible code is no target
    per_item = targets.sum(1)
    grids = [it.visual.size for it in items]
    assert all(0.6 * g <= n <= g for n, g in zip(per_item.tolist(), grids, strict=True))  # ratio >= 0.7
    assert ids[0, 0] == vocab.bos and ids[0, 1 : 1 + len(items[0].text)].tolist() == items[0].text.tolist()

    task.options.text_drop = 1.0  # CFG: every sample trains unconditionally
    dropped = task.collate(items, torch.Generator().manual_seed(0))["input_ids"]
    assert (dropped[:, 0] == vocab.video_start).all()
    assert batch["lengths"].tolist() == [len(it.text) + 2 + n for it, n in zip(
        items, (dropped != vocab.pad).sum(1).tolist(), strict=True)]  # fmt: skip


def test_changed_weight_weighs_the_training_loss_and_not_the_validation_loss(shards):
    task = LumosTask(config("unused", shards, task={"changed_weight": 3.0}))
    ds = ShardDataset(shards)
    batch = task.collate([ds[0], ds[1]], torch.Generator().manual_seed(0))
    model = task.build_model()
    rows = task.vocab.is_visual(batch["labels"])
    changed = batch["changed"][rows]  # [N] targets that differ from the frame before
    assert 0 < changed.sum() < len(changed)
    with torch.no_grad():
        plain = model(batch["input_ids"], batch["labels"]).token_loss
        trained = task.loss(model.train(), batch)
        validated = task.loss(model.eval(), batch)
    torch.testing.assert_close(trained.n_targets, len(changed) + 2.0 * changed.sum())
    torch.testing.assert_close(trained.loss_sum, plain.sum() + 2 * plain[changed].sum())
    torch.testing.assert_close(validated.loss_sum, plain.sum())
    assert validated.n_targets == len(changed)
    assert "changed" not in LumosTask(config("unused", shards)).collate([ds[0]], torch.Generator())
    with pytest.raises(ArvideoError, match="changed_weight"):
        LumosTask(config("unused", shards, task={"changed_weight": 0}))


def test_lumos_training_resumes_exactly_and_saves_a_loadable_model(tmp_path, shards):
    cfg = config(tmp_path / "full", shards)
    trainer = Trainer(cfg, LumosTask(cfg))
    full = trainer.train()
    assert full[-1].loss < full[0].loss
    assert {f"loss_frame{f}" for f in range(3)} <= full[0].metrics.keys() and full[0].mfu > 0

    cfg = config(tmp_path / "split", shards)
    head = Trainer(cfg, LumosTask(cfg)).train(until=3)
    tail = Trainer(cfg, LumosTask(cfg), resume=True).train()
    assert [s.loss for s in head + tail] == [s.loss for s in full]  # masks replay from the generator

    # The checkpoint's model folder is the standard Lumos folder, and holds the trained weights.
    folder = latest_checkpoint(tmp_path / "full" / "checkpoints")
    model = load_lumos(folder)
    ids = trainer.task.collate([trainer.dataset[0]], torch.Generator())["input_ids"]
    torch.testing.assert_close(model(ids), trainer.model.decoder.eval()(ids))

    # Fine-tuning from it: the architecture and the weights come from the folder, not `model:`.
    cfg = config(tmp_path / "tune", shards, model="small", checkpoint={"init_from": str(folder)})
    tuned = Trainer(cfg, LumosTask(cfg)).model.decoder
    assert tuned.config.hidden_size == 64
    torch.testing.assert_close(tuned.eval()(ids), model(ids))

    # Growing it: two blocks stacked on top start as the identity (same logits), then learn.
    grow = {"checkpoint": {"every": 3, "init_from": str(folder)}, "task": {"add_layers": 2}}
    cfg = config(tmp_path / "grow", shards, **grow)
    grower = Trainer(cfg, LumosTask(cfg))
    grown = grower.model.decoder
    assert len(grown.layers) == len(model.layers) + 2
    torch.testing.assert_close(grown.eval()(ids), model(ids))
    grower.train(until=3)
    new_block = grown.layers[-1]
    assert new_block.attn.o.weight.abs().sum() > 0 and new_block.mlp.down.weight.abs().sum() > 0
    saved = load_lumos(latest_checkpoint(tmp_path / "grow" / "checkpoints"))
    assert saved.config.num_hidden_layers == len(model.layers) + 2
    with pytest.raises(ArvideoError, match="grows the model of `checkpoint.init_from`, which is unset"):
        LumosTask(config(tmp_path / "nothing", shards, task={"add_layers": 2}))
    with pytest.raises(ArvideoError, match="`task.add_layers` must be >= 0, got -1"):
        LumosTask(config(tmp_path / "shrink", shards, **{**grow, "task": {"add_layers": -1}}))


def test_model_config_errors_and_timing():
    with pytest.raises(ArvideoError, match="unknown config key `model.hidden`; valid keys: preset, vocab"):
        decoder_config({"preset": "tiny", "hidden": 3}, META)
    with pytest.raises(ArvideoError, match="official vocabulary holds 64000 visual codes"):
        decoder_config({"vocab": "official"}, META)
    cfg = decoder_config({"preset": "tiny", "rope_kind": "1d"}, META)
    assert cfg.rope_kind == "1d" and cfg.vocab.codebook_size == CODEBOOK and cfg.rope_strides == (4, 8, 8)
    assert header_timing(5, 8.0, 4) == (2, 8)  # 17 frames at 8 fps
    assert header_timing(7, 12.0, 4) == (2, 12)  # the reference's 2 s at 12 fps
    assert header_timing(1, 30.0, 4) == (1, 1)  # images


def test_eval_decoder_is_the_model_in_training_or_a_gathered_copy_under_fsdp(tmp_path, shards):
    """ShapesBench generates with the weights being trained: the decoder itself (single, DDP), or
    under FSDP2 (sharded weights, activation checkpointing) a plain copy gathered on rank 0."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from arvideo.train.parallelize import apply_activation_checkpointing

    task = LumosTask(config(tmp_path, shards))
    model = task.build_model()
    assert task.eval_decoder(model) is model.decoder
    ids = task.collate([ShardDataset(shards)[0]], torch.Generator().manual_seed(0))["input_ids"]
    expected = model.decoder.eval()(ids)

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,))
        for block in apply_activation_checkpointing(model, task.blocks(model)):
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
        decoder = task.eval_decoder(model)
    finally:
        dist.destroy_process_group()
    assert type(decoder) is type(model.decoder) and decoder is not model.decoder
    torch.testing.assert_close(decoder.eval()(ids), expected)
