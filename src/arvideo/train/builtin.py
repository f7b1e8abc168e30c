"""Build the built-in Lumos-1 model of the shapes world (`builtin:shapes`), end to end, resumable.

    python -m arvideo.train.builtin                 # the shipped model (configs/builtin-shapes-v3.yaml)
    python -m arvideo.train.builtin --recipe shapes-v2    # the model before, on the tokenizer before
    python -m arvideo.train.builtin --recipe shapes-v1    # the first chain, on the first tokenizer
    python -m arvideo.train.builtin --dry-run       # print the commands it runs
    python -m arvideo.train.builtin --stop-after tokens    # only the token shards (for ablations)

The chain runs the project's own commands, each of which resumes by itself, so rerunning the
build after a kill (or at the start of a new session) continues where it stopped:

1. data: `arvideo data shapes` folders of training videos (one or two objects), images and
   two folders of two-object videos, and of validation videos and images (a folder already holding
   its captions.csv is kept; the writer is atomic);
2. tokens: `arvideo tokenize-data` of each folder with the built-in tokenizers (finished shards
   are skipped);
3. train: with `start_from` (a model trained on another video tokenizer), first `arvideo retarget`
   moves it onto the plan's tokenizer, into the first config's `checkpoint.init_from`; then
   `arvideo train CONFIG --resume` (skipped once the last step's checkpoint exists), then
   the same for each continuation config in turn, each starting from the previous leg's last
   checkpoint (`checkpoint.init_from`) with a new warmup and cosine (in the first chain the third
   also grows the model by three blocks, `task.add_layers`; the fourth adds the two-object videos,
   the fifth a second folder of them, the sixth trains with tube_decay masks);
4. export: the last checkpoint's model in fp16 (upcast on load) plus `arvideo.json`, the
   generation defaults of docs/generation.md, and `quality_floors.json`, the regression floors
   CI checks, from the exported model's own ShapesBench subset run (~70 s on two threads), into
   `src/arvideo/builtin/lumos-shapes/`.

All run configs name the token folders this plan writes (`data.shards`: any of the training
folders; `eval.shards`: validation videos, validation images); a mismatch is an error, so
`arvideo train CONFIG` alone trains on exactly what the build made.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import torch

from arvideo.errors import ArvideoError
from arvideo.files import atomic_write
from arvideo.train.checkpoint import checkpoint_dirs, step_dir
from arvideo.train.config import RunConfig, _doc, load_config

if TYPE_CHECKING:
    from arvideo.pipelines.lumos import PipelineConfig

logger = logging.getLogger(__name__)

BUILTIN_OUT = Path(__file__).resolve().parent.parent / "builtin" / "lumos-shapes"


class DataPart(NamedTuple):
    """One `arvideo data shapes` folder of the build."""

    name: str
    items: int
    images: bool
    seed: int
    training: bool  # training data (a config's data.shards), else validation (eval.shards)
    min_objects: int = 1


@dataclass(kw_only=True)
class BuildPlan:
    """What the build makes besides the run config: the data, the tokenizers, the export."""

    config: str = _doc(
        "run config (kind: lumos) naming the plan's token folders", default="configs/builtin-shapes-v3.yaml"
    )
    continue_configs: str = _doc(
        "comma-separated run configs, each starting from the last checkpoint of the one before ('' = none)",
        default="configs/builtin-shapes-v3-more.yaml,configs/builtin-shapes-v3-more2.yaml,"
        "configs/builtin-shapes-v3-decay.yaml",
    )
    data_dir: str = _doc(
        "data folders go here, their token shards in DATA_DIR/tokens", default="runs/builtin-shapes-v3/data"
    )
    videos: int = _doc("training clips", default=8000)
    images: int = _doc("training images (one frame, captions with positions)", default=16000)
    two_object_videos: int = _doc("training clips that all show two objects (0: none)", default=8000)
    more_two_object_videos: int = _doc(
        "a second folder of two-object clips, first seen by the fifth leg (0: none)", default=16000
    )
    val_videos: int = _doc("held-out clips for the validation loss", default=48)
    val_images: int = _doc("held-out images", default=16)
    seed: int = _doc(
        "seed of the training clips; images, validation clips, validation images and the two folders of "
        "two-object clips use seed + 1, 2, 3, 4, 5",
        default=0,
    )
    size: int = _doc("frame side in pixels", default=64)
    frames: int = _doc("frames per clip", default=17)
    tokenizer: str = _doc("video tokenizer (builtin:NAME or a folder)", default="builtin:shapes")
    text_tokenizer: str = _doc("caption tokenizer (builtin:NAME or a file)", default="builtin:shapes")
    start_from: str = _doc(
        "a model folder trained on another video tokenizer (its arvideo.json names it), moved onto "
        "`tokenizer` by `arvideo retarget` into the first config's checkpoint.init_from ('' = none)",
        default="stages/lumos-shapes-v2",
    )
    retarget_items: int = _doc(
        "training clips `arvideo retarget` pairs the two tokenizers' codes on", default=512
    )
    workers: int = _doc("tokenize-data worker processes", default=1)
    out: str = _doc("the exported model folder", default=str(BUILTIN_OUT))
    sample_steps: int = _doc("arvideo.json: parallel decoding steps per frame", default=16)
    sample_cfg: float = _doc("arvideo.json: guidance scale for videos", default=3.0)
    sample_image_cfg: float = _doc("arvideo.json: guidance scale for images", default=3.0)
    sample_history_ratio: float = _doc("arvideo.json: history masking ratio", default=0.7)
    sample_temperature: float = _doc("arvideo.json: temperature of the token draw", default=0.7)
    sample_top_k: int = _doc("arvideo.json: draw among the k most likely codes only (0: all)", default=0)

    def parts(self) -> list[DataPart]:
        """Every data folder, training ones first."""
        parts = [
            DataPart("train-videos", self.videos, False, self.seed, training=True),
            DataPart("train-images", self.images, True, self.seed + 1, training=True),
            DataPart(
                "train-videos-two", self.two_object_videos, False, self.seed + 4, training=True, min_objects=2
            ),
            DataPart(
                "train-videos-two-b",
                self.more_two_object_videos,
                False,
                self.seed + 5,
                training=True,
                min_objects=2,
            ),
            DataPart("val-videos", self.val_videos, False, self.seed + 2, training=False),
            DataPart("val-images", self.val_images, True, self.seed + 3, training=False),
        ]
        return [part for part in parts if part.items > 0]

    def source(self, name: str) -> Path:
        return Path(self.data_dir) / name

    def tokens(self, name: str) -> Path:
        return Path(self.data_dir) / "tokens" / name


# Named builds: the fields each sets over the BuildPlan defaults (every flag still overrides them).
RECIPES: dict[str, dict[str, str | float]] = {
    # the shipped model: the model before (kept in stages/lumos-shapes-v2) retargeted onto the
    # local-code tokenizer, fine-tuned on its codes in three tube legs and a short tube_decay leg;
    # its sampler draws at temperature 0.7
    "shapes-v3": {},
    # the model before (shipped until 2026-12-06): the five-leg model of the first chain retargeted
    # onto the tokenizer before, fine-tuned on its codes in four tube legs and a tube_decay leg
    "shapes-v2": {
        "config": "configs/builtin-shapes-v2.yaml",
        "continue_configs": "configs/builtin-shapes-v2-more.yaml,configs/builtin-shapes-v2-more2.yaml,"
        "configs/builtin-shapes-v2-more3.yaml,configs/builtin-shapes-v2-decay.yaml",
        "data_dir": "runs/builtin-shapes-v2/data",
        "start_from": "stages/lumos-shapes-v1",
        "tokenizer": "stages/lumos-shapes-v2/tokenizer",
        "out": "runs/lumos-shapes-v2",
        "sample_temperature": 1.0,
    },
    # the first chain: six legs from nothing on the first tokenizer (shipped until 2026-12-06)
    "shapes-v1": {
        "config": "configs/builtin-shapes.yaml",
        "continue_configs": "configs/builtin-shapes-continue.yaml,configs/builtin-shapes-grow.yaml,"
        "configs/builtin-shapes-video.yaml,configs/builtin-shapes-two.yaml,configs/builtin-shapes-decay.yaml",
        "data_dir": "runs/builtin-shapes/data",
        "start_from": "",
        "tokenizer": "stages/lumos-shapes-v1/tokenizer",
        "out": "runs/lumos-shapes-v1",
        "sample_temperature": 1.0,
    },
}
SHIPPED_RECIPE = "shapes-v3"


def recipe_plan(name: str, **overrides) -> BuildPlan:
    """The plan of a named build, with `overrides` on top."""
    if name not in RECIPES:
        raise ArvideoError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    return BuildPlan(**{**RECIPES[name], **overrides})


def commands(plan: BuildPlan) -> dict[str, list[list[str]]]:
    """The `arvideo` commands of steps 1-3 (argument lists for `arvideo.cli.main`)."""
    data, tokens = [], []
    for part in plan.parts():
        objects = ["--min-objects", str(part.min_objects)] if part.min_objects > 1 else []
        data.append(
            ["data", "shapes", "--out", str(plan.source(part.name)), "-n", str(part.items), "--seed",
             str(part.seed), "--size", str(plan.size)]
            + (["--images"] if part.images else ["--frames", str(plan.frames)]) + objects
        )  # fmt: skip
        tokens.append(
            ["tokenize-data", str(plan.source(part.name)), str(plan.tokens(part.name)), "--tokenizer",
             plan.tokenizer, "--text-tokenizer", plan.text_tokenizer, "--frames", str(plan.frames),
             "--workers", str(plan.workers)]
        )  # fmt: skip
    train = [["train", c, "--resume"] for c in run_configs(plan)]
    if plan.start_from:
        start = load_config(plan.config).checkpoint.init_from
        if start is None:
            raise ArvideoError(
                f"{plan.config}: set `checkpoint.init_from` to the folder the build moves "
                f"{plan.start_from} into (start_from)"
            )
        items = min(plan.retarget_items, plan.videos)
        videos = str(plan.source("train-videos"))
        retarget = ["retarget", plan.start_from, start, "--tokenizer", plan.tokenizer, "--videos", videos]
        train.insert(0, retarget + ["--items", str(items), "--frames", str(plan.frames)])
    return {"data": data, "tokens": tokens, "train": train}


def run_configs(plan: BuildPlan) -> list[str]:
    """The run configs the train step runs, in order."""
    return [plan.config] + [path for path in plan.continue_configs.split(",") if path]


def check_config(plan: BuildPlan, config: RunConfig, path: str) -> None:
    """A run config must train on token folders the plan writes as training data (any of them) and
    validate on exactly its validation folders."""
    train = [plan.tokens(part.name).resolve() for part in plan.parts() if part.training]
    val = [plan.tokens(part.name).resolve() for part in plan.parts() if not part.training]
    have_train, have_val = _as_list(config.data.shards), _as_list(config.eval.shards)
    if not have_train or any(Path(p).resolve() not in train for p in have_train):
        raise ArvideoError(
            f"{path}: `data.shards` is {have_train}, but the build writes training data to "
            f"{[str(p) for p in train]}; make them agree (e.g. with --data-dir)"
        )
    if [Path(p).resolve() for p in have_val] != val:
        raise ArvideoError(
            f"{path}: `eval.shards` is {have_val}, but the build writes {[str(p) for p in val]}; "
            "make them agree (e.g. with --data-dir)"
        )


def _as_list(shards: str | list[str] | None) -> list[str]:
    return [shards] if isinstance(shards, str) else shards or []


def run(args: list[str], quiet: bool) -> None:
    """One `arvideo` command in this process; a failure stops the build."""
    from arvideo.cli import main

    logger.info("$ arvideo %s", shlex.join(args))
    if main(["-q", *args] if quiet else args) != 0:
        raise ArvideoError(f"`arvideo {shlex.join(args)}` failed (see above); fix it and rerun the build")


def final_checkpoint(config: RunConfig) -> Path | None:
    """The checkpoint of the run's last step, once training has finished."""
    return dict(checkpoint_dirs(Path(config.out_dir) / "checkpoints")).get(config.steps)


def pipeline_config(plan: BuildPlan, fps: int) -> PipelineConfig:
    """The exported model's arvideo.json: its components, clip shape and sampler defaults."""
    from arvideo.pipelines.lumos import PipelineConfig, component_reference

    out = Path(plan.out)
    return PipelineConfig(
        tokenizer=component_reference(plan.tokenizer, out),
        text_tokenizer=component_reference(plan.text_tokenizer, out),
        prompt="caption", max_prompt_tokens=64, width=plan.size, height=plan.size, frames=plan.frames,
        fps=fps, steps=plan.sample_steps, cfg=plan.sample_cfg, image_cfg=plan.sample_image_cfg,
        history_ratio=plan.sample_history_ratio, temperature=plan.sample_temperature, top_k=plan.sample_top_k,
    )  # fmt: skip


def export(checkpoint: Path, plan: BuildPlan, overwrite: bool = False) -> Path:
    """The model folder of `checkpoint` in fp16 plus arvideo.json and the quality floors of its own
    ShapesBench subset run (arvideo/eval/floors.py), written atomically to `plan.out`."""
    from arvideo.eval import evaluate_pipeline
    from arvideo.eval.floors import floors_from_report, write_floors
    from arvideo.lumos.checkpoint import load_lumos, save_lumos
    from arvideo.pipelines import load
    from arvideo.train.data import ShardDataset

    out = Path(plan.out)
    fps = round(float(ShardDataset(plan.tokens("train-videos")).fps[0]))  # the header numbers it learnt
    pipeline = pipeline_config(plan, fps)
    with atomic_write(out, overwrite=overwrite, is_dir=True) as tmp:
        save_lumos(load_lumos(checkpoint), tmp, overwrite=True, dtype=torch.float16)  # upcast on load
        (tmp / "arvideo.json").write_text(json.dumps(pipeline.to_dict(), indent=2) + "\n")
        report = evaluate_pipeline(load(tmp), "v1", subset=True)  # as tests/test_builtin_quality.py
        why = (
            f"Regression floors of this model ({checkpoint}, exported by python -m arvideo.train.builtin): "
            "its ShapesBench CI subset (seed 0, its arvideo.json defaults), each target metric rounded "
            "down to 0.1 and at most 0.9; the quality targets are measured on the full suite."
        )
        write_floors(tmp, floors_from_report(report, why))
    size = sum(f.stat().st_size for f in out.iterdir())
    logger.info("exported %s to %s (%.1f MB)", checkpoint, out, size / 2**20)
    return out


STAGES = ("data", "tokens", "train", "export")


def build(
    plan: BuildPlan, overwrite: bool = False, quiet: bool = False, stop_after: str = "export"
) -> Path | None:
    """Run (or continue) the chain up to `stop_after`; returns the exported folder, or None if
    there was none to write (kept, or not reached)."""
    from arvideo.data.folder import read_captions

    paths = run_configs(plan)
    configs = [load_config(path) for path in paths]
    for path, config in zip(paths, configs, strict=True):
        check_config(plan, config, path)
    for (first_path, first), (then_path, then) in itertools.pairwise(zip(paths, configs, strict=True)):
        start = step_dir(Path(first.out_dir) / "checkpoints", first.steps)
        if then.checkpoint.init_from is None or Path(then.checkpoint.init_from).resolve() != start.resolve():
            raise ArvideoError(
                f"{then_path}: `checkpoint.init_from` is {then.checkpoint.init_from}, but it "
                f"continues {first_path}, whose last checkpoint is {start}"
            )
    steps = commands(plan)
    Path(plan.data_dir).mkdir(parents=True, exist_ok=True)
    for part, args in zip(plan.parts(), steps["data"], strict=True):  # 1. data
        folder = plan.source(part.name)
        if not (folder / "captions.csv").is_file():
            run(args, quiet)
        elif len(read_captions(folder)) != part.items:
            raise ArvideoError(
                f"{folder} holds {len(read_captions(folder))} items, the plan {part.items}; "
                "delete the folder (and its tokens) to make it again"
            )
    last = STAGES.index(stop_after)
    for args in steps["tokens"] if last >= 1 else []:  # 2. tokens: finished shards are skipped
        run(args, quiet)
    if last >= 2 and plan.start_from and not Path(configs[0].checkpoint.init_from).exists():
        run(steps["train"][0], quiet)  # 3. train: the start moved onto the tokenizer,
    for config, args in zip(configs, steps["train"][-len(configs) :], strict=True):  # then each leg
        if last >= 2 and final_checkpoint(config) is None:
            run(args, quiet)
    if last < 3:
        return None
    if Path(plan.out).exists() and not overwrite:  # 4. export
        logger.info("%s exists: kept (pass --overwrite to export again)", plan.out)
        return None
    return export(final_checkpoint(configs[-1]), plan, overwrite=overwrite)


def main(argv: list[str] | None = None) -> int:
    recipe = argparse.ArgumentParser(add_help=False)
    recipe.add_argument(
        "--recipe", choices=RECIPES, default=SHIPPED_RECIPE,
        help=f"named build setting the defaults below (default: {SHIPPED_RECIPE}, the shipped model)",
    )  # fmt: skip
    name = recipe.parse_known_args(argv)[0].recipe
    defaults = recipe_plan(name)
    parser = argparse.ArgumentParser(
        prog="python -m arvideo.train.builtin", description=__doc__.split("\n\n")[0], parents=[recipe]
    )
    for f in dataclasses.fields(BuildPlan):
        default = getattr(defaults, f.name)
        parser.add_argument(
            f"--{f.name.replace('_', '-')}", type=type(default), default=default,
            help=f"{f.metadata['doc']} (default: {default})",
        )  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--overwrite", action="store_true", help="export again over an existing model folder")
    parser.add_argument("--dry-run", action="store_true", help="print the commands of steps 1-3 and exit")
    parser.add_argument(
        "--stop-after", choices=STAGES, default="export", help="last stage to run (default: export)"
    )
    args = vars(parser.parse_args(argv))
    threads, overwrite, dry_run = args.pop("threads"), args.pop("overwrite"), args.pop("dry_run")
    stop_after = args.pop("stop_after")
    args.pop("recipe")
    plan = BuildPlan(**args)
    if dry_run:
        print("\n".join("arvideo " + shlex.join(c) for step in commands(plan).values() for c in step))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    torch.set_num_threads(threads)
    try:
        build(plan, overwrite=overwrite, stop_after=stop_after)
    except ArvideoError as err:
        print(f"arvideo.train.builtin: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
