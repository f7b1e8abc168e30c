"""Atomic, resumable training checkpoints.

    OUT_DIR/checkpoints/step-00001000/
        config.json, model.safetensors   the standard model folder (loadable for inference)
        trainer_state.pt                 optimizer, step, data position, every rank's RNG states

A checkpoint is written into a hidden temporary folder next to its final name and renamed
onto it when complete, so a `step-*` folder is always whole: killing the process at any moment
loses at most the steps since the last checkpoint. Deleting old checkpoints renames them away
first for the same reason. Under FSDP the full model and optimizer states are gathered to
rank 0 with the torch.distributed.checkpoint.state_dict APIs, which also drop wrapper prefixes,
so a checkpoint does not depend on the parallel mode that wrote it. trainer_state.pt holds
only tensors and plain Python values, and loads with `weights_only=True`.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from arvideo.errors import ArvideoError
from arvideo.files import atomic_write
from arvideo.train.distributed import Dist, all_gather_object, barrier
from arvideo.train.task import Task

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.pt"
MODEL_FILES = ("config.json", "model.safetensors")
_NAME = re.compile(r"^step-(\d{8})$")


def step_dir(root: Path, step: int) -> Path:
    """Where the checkpoint of `step` lives under `root` (OUT_DIR/checkpoints)."""
    return root / f"step-{step:08d}"


def checkpoint_dirs(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under `root` as (step, folder), oldest first."""
    found = []
    for path in root.glob("step-*") if root.is_dir() else []:
        match = _NAME.match(path.name)
        if match and all((path / f).is_file() for f in (STATE_FILE, *MODEL_FILES)):
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    found = checkpoint_dirs(root)
    return found[-1][1] if found else None


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """This process's random states: the trainer's generator and the global torch/numpy/Python ones."""
    np_state = np.random.get_state()
    state = {
        "generator": generator.get_state(),
        "torch": torch.get_rng_state(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    name, key, *rest = state["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), *rest))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


class Checkpointer:
    """Saves and loads (model, optimizer, trainer state) under `root`; rank 0 writes."""

    def __init__(self, root: Path, keep: int, dist: Dist) -> None:
        self.root, self.keep, self.dist = root, keep, dist
        if dist.is_main:
            root.mkdir(parents=True, exist_ok=True)
            for leftover in root.glob(".step-*"):  # temporaries of a killed write or delete
                shutil.rmtree(leftover, ignore_errors=True)
        barrier()

    def save(
        self,
        step: int,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        task: Task,
        state: dict[str, Any],
        generator: torch.Generator,
    ) -> Path:
        """Write checkpoint `step` (a collective: every rank must call it)."""
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        model_state = get_model_state_dict(model, options=options)
        optim_state = get_optimizer_state_dict(model, optimizer, options=options)
        rng_states = all_gather_object(rng_state(generator))
        path = step_dir(self.root, step)
        if self.dist.is_main:
            with atomic_write(path, overwrite=True, is_dir=True) as tmp:
                task.save_model(model_state, tmp)
                payload = {
                    **state,
                    "optimizer": optim_state,
                    "rng": rng_states,
                    "world_size": self.dist.world_size,
                }
                torch.save(payload, tmp / STATE_FILE)
            self._prune()
            logger.info("saved checkpoint %s", path)
        barrier()
        return path

    def _prune(self) -> None:
        for _, old in checkpoint_dirs(self.root)[: -self.keep]:
            doomed = old.with_name(f".{old.name}.deleting")
            os.replace(old, doomed)  # out of sight at once; a kill mid-delete leaves only a hidden folder
            shutil.rmtree(doomed)

    def load(
        self,
        path: Path,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        task: Task,
        generator: torch.Generator,
    ) -> dict[str, Any]:
        """Restore model, optimizer and this rank's RNG states; return the rest of the trainer state."""
        try:
            state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
        except Exception as err:  # a foreign or damaged file: say which one
            raise ArvideoError(f"cannot read {path / STATE_FILE}: {err}") from err
        options = StateDictOptions(full_state_dict=True)
        try:
            set_model_state_dict(model, task.load_model(path), options=options)
            set_optimizer_state_dict(model, optimizer, state.pop("optimizer"), options=options)
        except (RuntimeError, KeyError, ValueError) as err:  # another layout: older arvideo, edited config
            message = " ".join(str(err).split())[:300]
            raise ArvideoError(
                f"checkpoint {path} does not fit this run's model and optimizer ({message}); "
                "start over with --overwrite"
            ) from err
        rng_states = state.pop("rng")
        if state["world_size"] == self.dist.world_size:
            set_rng_state(rng_states[self.dist.rank], generator)
        else:
            logger.warning(
                "checkpoint was written by %d ranks, now %d: random streams restart from the seed",
                state["world_size"],
                self.dist.world_size,
            )
        return state
