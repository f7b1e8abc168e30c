import math
from pathlib import Path

import pytest

from arvideo.errors import ArvideoError
from arvideo.train.config import OptimConfig, RunConfig, config_reference, from_dict, load_config
from arvideo.train.optim import lr_at

DOCS = Path(__file__).resolve().parents[1] / "docs" / "training.md"


def minimal(**extra):
    return {"out_dir": "runs/x", "steps": 10, "data": {"shards": "data/tok"}, **extra}


def test_yaml_round_trip_coerces_yaml_spellings(tmp_path):
    # PyYAML reads `3e-4` as a string and lists for tuples; the loader turns them into the declared types.
    path = tmp_path / "run.yaml"
    path.write_text(
        "out_dir: runs/x\nsteps: 10\ndata: {shards: [a, b], batch_size: 4}\n"
        "optim: {lr: 3e-4, betas: [0.9, 0.99]}\nparallel: {mode: fsdp}\nlog: {peak_flops: 1e12}\n"
    )
    cfg = load_config(path)
    assert cfg.optim.lr == 3e-4 and cfg.optim.betas == (0.9, 0.99)
    assert cfg.data.shards == ["a", "b"] and cfg.data.batch_size == 4 and cfg.data.micro_batch_size == 8
    assert cfg.parallel.mode == "fsdp" and cfg.log.peak_flops == 1e12
    assert cfg.optim.eps == 1e-8 and cfg.optim.weight_decay == 0.1 and cfg.optim.grad_clip == 4.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (minimal(stepz=3), "unknown config key `stepz`; valid keys: out_dir, steps, kind"),
        (
            minimal(optim={"betas1": 0.9}),
            "unknown config key `optim.betas1`; valid keys in optim: lr, min_lr",
        ),
        (
            minimal(parallel={"mode": "zero3"}),
            "`parallel.mode` must be one of single, ddp, fsdp; got 'zero3'",
        ),
        (minimal(optim={"lr": "fast"}), "`optim.lr` must be float, got 'fast'"),
        (minimal(steps=True), "`steps` must be int, got True"),
        ({"out_dir": "x", "data": {"shards": "d"}}, "config key `steps` is required"),
        (
            minimal(optim={"lr": 1e-4, "min_lr": 1e-3}),
            "`optim.min_lr` (0.001) must be <= `optim.lr` (0.0001)",
        ),
        (minimal(data={"shards": "d", "batch_size": 0}), "`data.batch_size` must be >= 1, got 0"),
    ],
)
def test_bad_configs_name_the_key(data, message):
    with pytest.raises(ArvideoError) as err:
        from_dict(RunConfig, data)
    assert message in str(err.value)


def test_every_field_is_documented_in_docs():
    table = config_reference()
    assert "| `optim.betas` | tuple[float, float] | `[0.9, 0.95]` |" in table
    assert table in DOCS.read_text(), "docs/training.md is stale: paste config_reference() into it"


def test_lr_schedule_values():
    cfg = OptimConfig(lr=1.0, min_lr=0.1, warmup_steps=4)
    lrs = [lr_at(s, cfg, total_steps=14) for s in range(14)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]  # no step at LR 0; full LR on the last warmup step
    assert lrs[4] == 1.0  # cosine starts at the peak
    assert lrs[9] == pytest.approx(
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5))
    )  # halfway: (lr + min_lr) / 2
    assert all(a > b for a, b in zip(lrs[4:], lrs[5:], strict=False))  # strictly decreasing after warmup
    assert lr_at(14, cfg, 14) == pytest.approx(0.1) and lr_at(100, cfg, 14) == pytest.approx(0.1)
    constant = OptimConfig(lr=2.0, min_lr=2.0, warmup_steps=0)  # the reference's min_lr == lr
    assert {lr_at(s, constant, 50) for s in range(50)} == {2.0}
