"""ARLON training: shards, the arlon_vae / arlon_vq / arlon_dit tasks under the trainer, the build steps."""

from pathlib import Path

import pytest
import torch
import yaml

from arlon_tiny import jitter
from arvideo.arlon.build import latent_stats, publish, write_config
from arvideo.arlon.dit import ArlonDiT, DiTConfig
from arvideo.arlon.latent_vq import LatentVQ, LatentVQConfig
from arvideo.arlon.shards import FrameSource, LatentSource
from arvideo.arlon.tasks import DIT_PRESETS, VAE_PRESETS, VQ_PRESETS, DiTTask, VAETask, VQTask
from arvideo.arlon.vae import VAEConfig, VideoVAE
from arvideo.cli import main as cli
from arvideo.errors import ArvideoError
from arvideo.train.checkpoint import latest_checkpoint
from arvideo.train.config import RunConfig, from_dict
from arvideo.train.data import ShardDataset
from arvideo.train.kinds import resolve
from arvideo.train.tokenize_data import tokenize_folder
from arvideo.train.trainer import Trainer


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """6 shapes clips as frame shards and (through a tiny random VAE) latent shards, plus a coarse VQ."""
    root = tmp_path_factory.mktemp("arlon-data")
    assert cli(["-q", "data", "shapes", "--out", str(root / "clips"), "-n", "6"]) == 0
    tokenize_folder(root / "clips", root / "frames", FrameSource(), "builtin:shapes", frames=17)
    torch.manual_seed(0)
    VideoVAE(VAEConfig(**VAE_PRESETS["tiny"])).save_pretrained(root / "vae")
    tokenize_folder(
        root / "clips", root / "latents", LatentSource(str(root / "vae")), "builtin:shapes", frames=17
    )
    LatentVQ(LatentVQConfig(**VQ_PRESETS["tiny-coarse"])).save_pretrained(root / "coarse_vq")
    return root


def run_config(out_dir, shards, kind, model, task=None, steps=2, **extra) -> RunConfig:
    return from_dict(RunConfig, {
        "kind": kind, "out_dir": str(out_dir), "steps": steps, "seed": 3, "model": model, "task": task or {},
        "data": {"shards": str(shards), "batch_size": 2, "micro_batch_size": 2},
        "optim": {"lr": 1e-3, "warmup_steps": 1, "weight_decay": 0.0}, "checkpoint": {"every": 2},
        "eval": {"every": 0}, "log": {"peak_flops": 1e10, "tensorboard": False}, **extra,
    })  # fmt: skip


def test_kinds_are_registered():
    assert (
        resolve("arlon_vae") is VAETask and resolve("arlon_vq") is VQTask and resolve("arlon_dit") is DiTTask
    )
    assert resolve("arlon_ar").__name__ == "LumosTask"  # the AR stage is the Lumos task on code shards


def test_vae_and_vq_tasks_train_and_checkpoint_loadable_models(tmp_path, data):
    for kind, task_cls, shards, model, model_cls in (
        ("arlon_vae", VAETask, data / "frames", "tiny", VideoVAE),
        ("arlon_vq", VQTask, data / "latents", "tiny-fine", LatentVQ),
    ):
        cfg = run_config(tmp_path / kind, shards, kind, model)
        trainer = Trainer(cfg, task_cls(cfg))
        stats = trainer.train()
        assert all(torch.isfinite(torch.tensor(s.loss)) and not s.skipped for s in stats)
        assert stats[0].mfu > 0 and set(stats[0].metrics) >= {"recon"}
        saved = model_cls.from_pretrained(latest_checkpoint(tmp_path / kind / "checkpoints"))
        for name, value in trainer.model.state_dict().items():
            assert torch.equal(saved.state_dict()[name], value), name


def test_dit_task_resumes_exactly(tmp_path, data):
    """Noise, timesteps, text dropout and reference masks all come from the rank's generator."""

    def losses(out, until=None, resume=False):
        cfg = run_config(out, data / "latents", "arlon_dit", {"preset": "tiny", "injection": False}, steps=4)
        return [s.loss for s in Trainer(cfg, DiTTask(cfg), resume=resume).train(until)]

    full = losses(tmp_path / "full")
    split = losses(tmp_path / "split", until=2) + losses(tmp_path / "split", resume=True)
    assert split == full and len(set(full)) == 4


def test_injection_stage_trains_only_the_branch_on_the_frozen_base(tmp_path, data):
    torch.manual_seed(0)
    base = jitter(ArlonDiT(DiTConfig(**DIT_PRESETS["tiny"], injection=False)), seed=1)
    base.save_pretrained(tmp_path / "base")
    task_options = {
        "base": str(tmp_path / "base"),
        "coarse_vq": str(data / "coarse_vq"),
        "reference_prob": 1.0,
    }
    cfg = run_config(tmp_path / "inject", data / "latents", "arlon_dit", {"injection": True}, task_options)
    task = DiTTask(cfg)
    assert task.model_cfg.injection and task.model_cfg.hidden_size == DIT_PRESETS["tiny"]["hidden_size"]
    Trainer(cfg, task).train()
    trained = ArlonDiT.from_pretrained(latest_checkpoint(tmp_path / "inject" / "checkpoints"))
    branch = {n for n, p in trained.named_parameters() if any(p is q for q in trained.injection_parameters())}
    base_state = base.state_dict()
    for name, value in trained.state_dict().items():
        if name in branch:
            continue
        assert torch.equal(value, base_state[name]), name  # the backbone is frozen
    gates = [trained.blocks[i].inject.ada.weight for i in trained.config.injected]
    assert all(g.abs().sum() > 0 for g in gates)  # the zero-initialised branch has learned something

    batch = task.collate(
        [ShardDataset(data / "latents")[i] for i in range(2)], torch.Generator().manual_seed(0)
    )
    assert batch["reference_mask"][:, 0].all() and not batch["reference_mask"][:, 1:].any()  # max_reference 1
    assert batch["coarse"].shape == batch["latent"].shape


def test_dit_collate_draws_reference_frames_and_text_dropout(data):
    options = {"text_drop": 1.0, "reference_prob": 1.0, "max_reference": 3}
    task = DiTTask(run_config("unused", data / "latents", "arlon_dit", {"preset": "tiny", "injection": False},
                              options))  # fmt: skip
    items = [ShardDataset(data / "latents")[i] for i in range(6)]
    batch = task.collate(items, torch.Generator().manual_seed(0))
    n_ref = batch["reference_mask"].sum(1)
    assert batch["drop_text"].all() and ((n_ref >= 1) & (n_ref <= 3)).all() and len(set(n_ref.tolist())) > 1
    assert (batch["reference_mask"] == (torch.arange(5)[None] < n_ref[:, None])).all()  # leading frames
    assert batch["text_ids"].shape[0] == 6 and batch["text_mask"].sum(1).tolist() == [
        len(i.text) for i in items
    ]


def test_task_errors(tmp_path, data):
    with pytest.raises(ArvideoError, match="frames shards"):
        VAETask(run_config(tmp_path, data / "latents", "arlon_vae", "tiny"))
    with pytest.raises(ArvideoError, match="latents shards"):
        VQTask(run_config(tmp_path, data / "frames", "arlon_vq", "tiny-fine"))
    with pytest.raises(ArvideoError, match="`task.window` must be 0"):
        VAETask(run_config(tmp_path, data / "frames", "arlon_vae", "tiny", {"window": 8}))
    with pytest.raises(ArvideoError, match="unknown config key `model.width`"):
        VQTask(run_config(tmp_path, data / "latents", "arlon_vq", {"preset": "tiny-fine", "width": 3}))
    with pytest.raises(ArvideoError, match="unknown model preset 'huge'"):
        DiTTask(run_config(tmp_path, data / "latents", "arlon_dit", "huge"))
    with pytest.raises(ArvideoError, match="`task.coarse_vq` is needed exactly when"):
        DiTTask(run_config(tmp_path, data / "latents", "arlon_dit", "tiny"))  # injection on, no F


def test_build_steps_publish_with_latent_stats_and_smoke_configs(tmp_path, data):
    cfg = run_config(tmp_path / "vae", data / "frames", "arlon_vae", "tiny")
    Trainer(cfg, VAETask(cfg)).train()
    publish(str(tmp_path / "vae"), str(tmp_path / "model"), str(data / "frames"), items=4)
    vae = VideoVAE.from_pretrained(tmp_path / "model")
    assert vae.config.latent_shift is not None and len(vae.config.latent_scale) == 4
    reference = VideoVAE.from_pretrained(latest_checkpoint(tmp_path / "vae" / "checkpoints"))
    latent_stats(reference, str(data / "frames"), 4)
    assert vae.config.latent_scale == reference.config.latent_scale

    write_config("configs/arlon-dit-base.yaml", str(tmp_path / "dit.yaml"), "runs/x", smoke=True)
    smoke = yaml.safe_load((tmp_path / "dit.yaml").read_text())
    assert smoke["model"] == {"preset": "tiny", "injection": False} and smoke["steps"] == 2
    assert smoke["data"]["shards"] == "runs/x/shards/latents" and smoke["data"]["batch_size"] == 2
    write_config("configs/arlon-ar.yaml", str(tmp_path / "ar.yaml"), "runs/x", smoke=True)
    assert yaml.safe_load((tmp_path / "ar.yaml").read_text())["model"] == {
        "preset": "tiny",
        "rope_kind": "mm",
    }
    inject_cfg = str(tmp_path / "inject.yaml")
    write_config("configs/arlon-dit-inject.yaml", inject_cfg, "runs/arlon-x", False, "runs/arlon-x/m")
    inject = yaml.safe_load(Path(inject_cfg).read_text())  # each path moved once
    assert inject["task"]["base"] == "runs/arlon-x/m/dit_base"
    assert inject["out_dir"] == "runs/arlon-x/train/dit"
