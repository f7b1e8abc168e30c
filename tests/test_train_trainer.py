import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from arvideo.errors import ArvideoError
from arvideo.train import checkpoint as checkpoint_module
from arvideo.train import metrics
from arvideo.train.checkpoint import checkpoint_dirs, latest_checkpoint
from arvideo.train.config import RunConfig, from_dict, to_dict
from arvideo.train.metrics import read_log
from arvideo.train.trainer import Trainer
from train_toy import ToyTask, make_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("shards"), n_videos=24, n_images=12)


def make_config(out_dir, shards, **overrides) -> RunConfig:
    data = {
        "kind": "train_toy:ToyTask",
        "out_dir": str(out_dir),
        "steps": 8,
        "seed": 5,
        "task": {"mask_ratio": 0.3},
        "data": {
            "shards": str(shards),
            "batch_size": 4,
            "micro_batch_size": 2,
            "image_batch_size": 6,
            "image_micro_batch_size": 3,
            "video_steps_per_image_step": 2,
            "bucket_window": 2,
        },
        "optim": {"lr": 1e-2, "min_lr": 1e-3, "warmup_steps": 2},
        "checkpoint": {"every": 4, "keep": 3},
        "eval": {"every": 0},
        "log": {"peak_flops": 1e10, "tensorboard": False},
    }
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        if name:
            data[section] = {**data[section], name: value}
        else:
            data[section] = value
    return from_dict(RunConfig, data)


def losses(history):
    return [s.loss for s in history]


def test_resume_gives_the_same_losses_as_an_uninterrupted_run(tmp_path, shards):
    cfg = make_config(tmp_path / "full", shards)
    full = losses(Trainer(cfg, ToyTask(cfg)).train())
    assert full[-1] < full[0]  # it learns

    cfg = make_config(tmp_path / "split", shards)
    first = Trainer(cfg, ToyTask(cfg))
    head = losses(first.train(until=4))  # "killed" right after the step-4 checkpoint
    resumed = Trainer(cfg, ToyTask(cfg), resume=True)
    assert resumed.step == 4
    tail = losses(resumed.train())
    assert head + tail == full  # exact: same data position, generators, optimizer moments, LR
    assert [row["step"] for row in read_log(tmp_path / "split" / "log.csv")] == list(range(1, 9))


def test_existing_run_is_not_clobbered(tmp_path, shards):
    cfg = make_config(tmp_path, shards, steps=2, checkpoint__every=2)
    Trainer(cfg, ToyTask(cfg)).train()
    with pytest.raises(ArvideoError, match="already holds a run; pass --resume"):
        Trainer(cfg, ToyTask(cfg))
    Trainer(cfg, ToyTask(cfg), overwrite=True)  # explicit consent starts over
    assert checkpoint_dirs(tmp_path / "checkpoints") == []


def test_resume_into_another_model_layout_is_a_clear_error(tmp_path, shards):
    cfg = make_config(tmp_path, shards, steps=2, checkpoint__every=2)
    Trainer(cfg, ToyTask(cfg)).train()
    changed = make_config(tmp_path, shards, steps=4, checkpoint__every=2, task__n_blocks=3)
    with pytest.raises(ArvideoError, match="does not fit this run's model and optimizer.*--overwrite"):
        Trainer(changed, ToyTask(changed), resume=True)
    assert [step for step, _ in checkpoint_dirs(tmp_path / "checkpoints")] == [2]  # nothing lost


def test_interrupted_checkpoint_write_leaves_the_previous_one_intact(tmp_path, shards, monkeypatch):
    cfg = make_config(tmp_path, shards)
    trainer = Trainer(cfg, ToyTask(cfg))
    expected = losses(trainer.train(until=4))
    real_save = torch.save

    def dying_save(obj, path):  # the process dies halfway through writing trainer_state.pt
        real_save({"half": torch.zeros(3)}, path)
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    monkeypatch.undo()
    root = tmp_path / "checkpoints"
    assert latest_checkpoint(root).name == "step-00000004"
    assert sorted(p.name for p in root.iterdir()) == ["step-00000004"]  # no half-written step-8

    # A SIGKILL leaves the temporary folder behind: it is never picked, and the next start removes it.
    leftover = root / ".step-00000008.x1y2.tmp"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"partial")
    resumed = Trainer(cfg, ToyTask(cfg), resume=True)
    assert resumed.step == 4 and not leftover.exists()
    fresh = make_config(tmp_path / "fresh", shards)
    full = losses(Trainer(fresh, ToyTask(fresh)).train())
    assert expected + losses(resumed.train()) == full


def test_keeps_the_last_k_checkpoints(tmp_path, shards):
    cfg = make_config(tmp_path, shards, steps=10, checkpoint__every=2, checkpoint__keep=2)
    Trainer(cfg, ToyTask(cfg)).train()
    assert [step for step, _ in checkpoint_dirs(tmp_path / "checkpoints")] == [8, 10]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")] == []


class PoisonedTask(ToyTask):
    """Returns a NaN loss on the second optimizer step."""

    def __init__(self, config):
        super().__init__(config)
        self.calls = 0

    def loss(self, model, batch):
        out = super().loss(model, batch)
        self.calls += 1
        if self.calls in (3, 4):  # both micro-batches of step 2
            out.loss_sum = out.loss_sum * math.nan
        return out


def test_non_finite_loss_refuses_the_update(tmp_path, shards):
    cfg = make_config(tmp_path, shards, steps=4, checkpoint__every=100)
    trainer = Trainer(cfg, PoisonedTask(cfg))
    trainer.train_step()
    params = [p.detach().clone() for p in trainer.model.parameters()]
    moments = [s["exp_avg"].clone() for s in trainer.optimizer.state.values()]
    stats = trainer.train_step()
    assert stats.skipped and math.isnan(stats.loss) and trainer.skipped_steps == 1
    assert all(torch.equal(a, b) for a, b in zip(params, trainer.model.parameters(), strict=True))
    assert all(
        torch.equal(a, s["exp_avg"]) for a, s in zip(moments, trainer.optimizer.state.values(), strict=True)
    )
    assert all(p.grad is None for p in trainer.model.parameters())  # the poisoned grads are gone
    stats = trainer.train_step()
    assert not stats.skipped and math.isfinite(stats.loss)
    assert not all(torch.equal(a, b) for a, b in zip(params, trainer.model.parameters(), strict=True))


def test_accumulation_and_activation_checkpointing_keep_the_loss(tmp_path, shards):
    def run(name, **overrides):
        cfg = make_config(tmp_path / name, shards, steps=4, task={"mask_ratio": 0.0}, **overrides)
        return losses(Trainer(cfg, ToyTask(cfg)).train())

    base = run("base")  # micro-batches of 2, accumulation 2
    whole = run("whole", data__micro_batch_size=4, data__image_micro_batch_size=6)  # no accumulation
    ac = run("ac", parallel={"activation_checkpointing": True})
    assert whole == pytest.approx(base, rel=1e-5)  # the loss is normalised by the global target count
    assert ac == base  # recomputation replays the same ops


def test_bf16_autocast_tracks_fp32(tmp_path, shards):
    def run(name, precision):
        cfg = make_config(tmp_path / name, shards, steps=4, precision=precision, task={"mask_ratio": 0.0})
        trainer = Trainer(cfg, ToyTask(cfg))
        return losses(trainer.train()), trainer

    fp32, _ = run("fp32", "fp32")
    bf16, trainer = run("bf16", "bf16")
    assert bf16 != fp32 and bf16 == pytest.approx(fp32, rel=2e-2)  # autocast was on, and harmless
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # master weights stay fp32


# AVX2-only CPU (emulated bf16), a gain too small to pay, exactly the 1.2x threshold, AMX or GPU
@pytest.mark.parametrize(
    ("bf16_speed", "uses_bf16"), [(3.0, False), (110.0, False), (120.0, True), (200.0, True)]
)
def test_auto_precision_follows_the_measured_bf16_speed(tmp_path, shards, monkeypatch, bf16_speed, uses_bf16):
    speeds = {torch.float32: 100.0, torch.bfloat16: bf16_speed}
    calls = []

    def measure(device, dtype, seconds=0.5):
        calls.append(dtype)
        return speeds[dtype]

    monkeypatch.setattr("arvideo.train.trainer.measure_peak_flops", measure)
    cfg = make_config(tmp_path / "run", shards, steps=1, precision="auto", log__peak_flops=None)
    trainer = Trainer(cfg, ToyTask(cfg))
    assert trainer.bf16 is uses_bf16
    in_use = torch.bfloat16 if uses_bf16 else torch.float32
    assert trainer.peak_flops == speeds[in_use]  # MFU against the dtype in use
    assert sorted(calls, key=str) == sorted(speeds, key=str)  # each dtype measured once


def test_peak_flops_keeps_the_best_window(monkeypatch):
    """A window slowed by contention does not lower the MFU denominator (which would inflate MFU)."""
    ticks = iter([0.1] * 4 + [0.01] * 1000)  # clock advance per call: each call's first window is slow

    class Clock:
        now = 0.0

        @classmethod
        def perf_counter(cls):
            cls.now += next(ticks)
            return cls.now

    monkeypatch.setattr(metrics, "time", Clock)
    cpu, flops_per_matmul = torch.device("cpu"), 2 * 1024**3
    slow_alone = metrics.measure_peak_flops(cpu, torch.float32, seconds=0.1, windows=1)
    best_of_five = metrics.measure_peak_flops(cpu, torch.float32, seconds=0.5, windows=5)
    assert slow_alone == pytest.approx(flops_per_matmul / 0.1)  # one matmul in 0.1 s
    assert best_of_five == pytest.approx(flops_per_matmul * 10 / 0.1)  # a later window: ten in 0.1 s


@pytest.mark.slow
def test_sigkill_at_any_moment_then_resume(tmp_path, shards):
    """A real `arvideo train` process, checkpointing every step, is SIGKILLed mid-run."""
    cfg = make_config(tmp_path / "run", shards, steps=60, checkpoint__every=1, checkpoint__keep=2)
    config_path = tmp_path / "run.yaml"
    config_path.write_text(yaml.safe_dump(to_dict(cfg)))
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",  # the same kernels as this process (one thread), so losses match exactly
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "arvideo", "-q", "train", str(config_path)]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
    root = tmp_path / "run" / "checkpoints"
    deadline = time.monotonic() + 120
    while latest_checkpoint(root) is None or latest_checkpoint(root).name < "step-00000005":
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.005)
    time.sleep(0.02)  # somewhere in the next steps: inside a step, a checkpoint write or a prune
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = latest_checkpoint(root).name
    proc = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_log(tmp_path / "run" / "log.csv")
    assert [r["step"] for r in rows] == list(range(1, 61)), f"killed after {killed_at}"
    reference = make_config(tmp_path / "reference", shards, steps=60, checkpoint__every=100)
    assert [r["loss"] for r in rows] == losses(Trainer(reference, ToyTask(reference)).train())
