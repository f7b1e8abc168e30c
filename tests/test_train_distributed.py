"""2-process torchrun runs on CPU (gloo): DDP and FSDP2 match one process with the same global batch.

Tolerance: relative 1e-5 on every per-step loss (measured: 1.4e-7). Reduction order differs
(gradients are averaged over ranks, then rescaled), so the runs agree to float32 rounding that
AdamW carries over a few steps, not bit for bit.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from arvideo.train.checkpoint import latest_checkpoint
from arvideo.train.config import load_config
from arvideo.train.metrics import read_log
from arvideo.train.trainer import Trainer
from train_toy import ToyTask, make_shards

TESTS = Path(__file__).resolve().parent
TORCHRUN = Path(sys.executable).with_name("torchrun")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed next to this Python"),
]


def write_config(path: Path, out_dir: Path, shards: Path, mode: str, **parallel) -> Path:
    config = {
        "kind": "train_toy:ToyTask",
        "out_dir": str(out_dir),
        "steps": 6,
        "seed": 1,
        "data": {
            "shards": str(shards),
            "batch_size": 4,
            "micro_batch_size": 2,
            "image_batch_size": 4,
            "image_micro_batch_size": 2,
            "bucket_window": 2,
        },
        "optim": {"lr": 1e-2, "min_lr": 1e-3, "warmup_steps": 1},
        "parallel": {"mode": mode, **parallel},
        "checkpoint": {"every": 2, "keep": 3},
        "eval": {"every": 3, "shards": str(shards), "items": 8},
        "log": {"peak_flops": 1e10, "tensorboard": False},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def torchrun(config: Path, *flags: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    cmd = [
        str(TORCHRUN),
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "arvideo",
        "train",
        str(config),
        *flags,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_ddp_and_fsdp_match_one_process(tmp_path):
    shards = make_shards(tmp_path / "shards", n_videos=16, n_images=8)
    single_cfg = load_config(write_config(tmp_path / "single.yaml", tmp_path / "single", shards, "single"))
    trainer = Trainer(single_cfg, ToyTask(single_cfg))  # micro-batches of 2, accumulation 2
    single = [s.loss for s in trainer.train()]
    single_eval = read_log(tmp_path / "single" / "eval.csv")
    single_weights = load_file(latest_checkpoint(tmp_path / "single" / "checkpoints") / "model.safetensors")

    for mode, parallel in (("ddp", {}), ("fsdp", {"activation_checkpointing": True})):
        out = tmp_path / mode
        torchrun(write_config(tmp_path / f"{mode}.yaml", out, shards, mode, **parallel))  # 2 ranks x micro 2
        losses = [row["loss"] for row in read_log(out / "log.csv")]
        assert losses == pytest.approx(single, rel=1e-5), mode
        evals = read_log(out / "eval.csv")
        assert [r["val_loss"] for r in evals] == pytest.approx([r["val_loss"] for r in single_eval], rel=1e-5)
        weights = load_file(
            latest_checkpoint(out / "checkpoints") / "model.safetensors"
        )  # gathered on rank 0
        assert weights.keys() == single_weights.keys()  # no wrapper prefixes in the saved names
        for name, value in weights.items():
            torch.testing.assert_close(value, single_weights[name], rtol=1e-4, atol=1e-5)

    # The checkpoint does not depend on the mode that wrote it: resume the FSDP run at step 4 on one process.
    shutil.rmtree(tmp_path / "fsdp" / "checkpoints" / "step-00000006")
    resume_cfg = load_config(write_config(tmp_path / "resume.yaml", tmp_path / "fsdp", shards, "single"))
    resumed = Trainer(resume_cfg, ToyTask(resume_cfg), resume=True)
    assert resumed.step == 4
    assert [s.loss for s in resumed.train()] == pytest.approx(single[4:], rel=1e-5)
