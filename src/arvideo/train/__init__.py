"""Training: a model-agnostic trainer driven by a `Task`, and the pre-tokenized data it reads.

- `kinds`: what `arvideo train CONFIG` runs for each config `kind:` (one table);
- `config`: the run config (dataclasses from one YAML file); `task`: the Task contract;
  `lumos_task`: the Lumos-1 AR-DF task and its in-training ShapesBench;
- `trainer`: the loop (`Trainer.train_step`, `Trainer.train`, `run`); `optim`: AdamW, LR schedule,
  clipping; `parallelize`: activation checkpointing, compile, DDP / FSDP2; `distributed`:
  the torchrun process group; `checkpoint`: atomic, resumable checkpoints; `metrics`: logs, MFU;
- `data`: token shards, the length-bucketed sampler, per-rank step streams;
  `tokenize_data`: the pre-tokenizer behind `arvideo tokenize-data`;
- `builtin`: the resumable build of the built-in model (`python -m arvideo.train.builtin`).

docs/training.md describes the commands, every config field and the checkpoint layout.
"""
