"""Training: a model-agnostic trainer driven by a `Task`, and the pre-tokenized data it reads.

- `config`: the run config (dataclasses from one YAML file); `task`: the Task contract;
  `lumos_task`: the Lumos-1 AR-DF task;
- `trainer`: the loop (`Trainer.train_step`, `Trainer.train`, `run`); `optim`: AdamW, LR schedule,
  clipping; `parallelize`: activation checkpointing, compile, DDP / FSDP2; `distributed`:
  the torchrun process group; `checkpoint`: atomic, resumable checkpoints; `metrics`: logs, MFU;
- `data`: token shards, the length-bucketed sampler, per-rank step streams;
  `tokenize_data`: the pre-tokenizer behind `arvideo tokenize-data`.

docs/training.md describes the commands, every config field and the checkpoint layout.
"""
