"""The steps of the ARLON recipe that are not training runs, for `scripts/build_builtin_arlon.sh`.

    python -m arvideo.arlon.build frames  SRC_DIR OUT_DIR                  # shards for arlon_vae
    python -m arvideo.arlon.build latents SRC_DIR OUT_DIR --vae VAE        # shards for arlon_vq / arlon_dit
    python -m arvideo.arlon.build codes   SRC_DIR OUT_DIR --vae VAE --fine-vq VQ   # shards for arlon_ar
    python -m arvideo.arlon.build publish RUN_DIR MODEL_DIR [--vae-stats FRAME_SHARDS]
    python -m arvideo.arlon.build config  CONFIG OUT --run RUN [--models MODELS] [--smoke]
    python -m arvideo.arlon.build export  OUT --vae VAE --fine-vq VQ --ar AR --dit DIT

`publish` copies a finished run's newest checkpoint into a plain model folder (for the VAE it
first measures the per-channel latent statistics that scale the latent for the later stages);
`config` writes a run config with its `runs/arlon` paths moved under RUN and its stage-model
paths (`stages/arlon-shapes`) moved to MODELS (and, with --smoke, tiny models and a few steps);
`export` assembles the pipeline folder in fp16 and writes its quality floors (a 16-case ShapesBench
subset run, ~12 s for the built-in).
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from arvideo.arlon.dit import ArlonDiT
from arvideo.arlon.flow import FlowMatchEulerScheduler
from arvideo.arlon.latent_vq import LatentVQ
from arvideo.arlon.shards import CodeSource, FrameSource, LatentSource, item_frames
from arvideo.arlon.tokenizer import ArlonTokenizer
from arvideo.arlon.vae import VideoVAE
from arvideo.errors import ArvideoError
from arvideo.eval.floors import floors_from_report, write_floors
from arvideo.eval.run import select_cases
from arvideo.eval.shapesbench import score_suite
from arvideo.eval.suite import Suite, load_suite
from arvideo.files import atomic_write
from arvideo.lumos.checkpoint import load_lumos
from arvideo.pipelines.arlon import ArlonConfig, ArlonPipeline
from arvideo.tokenizers import load_text_tokenizer
from arvideo.train.checkpoint import MODEL_FILES, latest_checkpoint
from arvideo.train.data import ShardDataset
from arvideo.train.tokenize_data import tokenize_folder

log = logging.getLogger(__name__)

RECIPE_RUN = "runs/arlon"  # the run folder the checked-in configs name
RECIPE_MODELS = "stages/arlon-shapes"  # the published stage models they name (committed, see its README)
TEXT_TOKENIZER = "builtin:shapes"
FLOOR_METRICS = {"t2v": ("colour", "shape", "size", "motion", "persistence")}  # ARLON makes videos from text
# --smoke: every stage with the tiny twin of its model preset, 2 steps and batches of 2
SMOKE_RUN: dict[str, Any] = {
    "steps": 2, "checkpoint": {"every": 2}, "eval": {"every": 0}, "optim": {"warmup_steps": 1},
    "data": {"batch_size": 2, "micro_batch_size": 2}, "log": {"peak_flops": 1.0e10},
}  # fmt: skip
SMOKE_PRESETS = {"small": "tiny", "fine": "tiny-fine", "coarse": "tiny-coarse"}
SIZE_KEYS = {
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "depth", "num_heads", "channels", "codebook_size", "code_dim",
}  # fmt: skip


def write_shards(
    kind: str, src: str, out: str, vae: str | None, fine_vq: str | None, frames: int, workers: int
) -> None:
    """Frame, latent or code shards of the captioned folder `src` (see `arlon.shards`)."""
    if kind == "frames":
        source: Any = FrameSource()
    elif kind == "latents":
        source = LatentSource(_need(vae, "--vae"))
    else:
        source = CodeSource(_need(vae, "--vae"), _need(fine_vq, "--fine-vq"))
    tokenize_folder(src, out, source, TEXT_TOKENIZER, frames=frames, workers=workers)


def _need(value: str | None, flag: str) -> str:
    if value is None:
        raise ArvideoError(f"this step needs {flag}")
    return value


@torch.no_grad()
def latent_stats(vae: VideoVAE, frame_shards: str, items: int) -> None:
    """Measure the per-channel mean/std of the VAE's latents on `items` clips; stored in its config."""
    data = ShardDataset(frame_shards)
    means = []
    for i in range(min(items, len(data))):
        video = item_frames(data[i]).permute(3, 0, 1, 2)[None]  # [1, 3, T, H, W]
        means.append(vae.encode(video).mode())
    vae.set_latent_stats(torch.cat(means))  # [N, C, T', h, w]


def publish(run_dir: str, model_dir: str, vae_stats: str | None, items: int) -> None:
    """Copy the newest checkpoint of `run_dir` to the model folder `model_dir` (replacing it)."""
    ckpt = latest_checkpoint(Path(run_dir) / "checkpoints")
    if ckpt is None:
        raise ArvideoError(f"{run_dir} holds no checkpoint; train it first")
    if vae_stats is not None:
        vae = VideoVAE.from_pretrained(ckpt)
        latent_stats(vae, vae_stats, items)
        vae.save_pretrained(model_dir, overwrite=True)
        return
    with atomic_write(model_dir, overwrite=True, is_dir=True) as tmp:
        for name in MODEL_FILES:
            shutil.copy2(ckpt / name, tmp / name)
    log.info("published %s as %s", ckpt, model_dir)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if both else value
    return out


def _moved(value: Any, run: str, models: str) -> Any:
    if isinstance(value, str):  # one pass: a new path may itself contain a recipe path
        moved = {RECIPE_MODELS: models, RECIPE_RUN: run}
        return re.sub(f"{RECIPE_MODELS}|{RECIPE_RUN}", lambda m: moved[m[0]], value)
    if isinstance(value, dict):
        return {k: _moved(v, run, models) for k, v in value.items()}
    if isinstance(value, list):
        return [_moved(v, run, models) for v in value]
    return value


def smoke_model(model: str | dict[str, Any]) -> str | dict[str, Any]:
    """The tiny twin of a `model:` entry: preset swapped, size fields dropped, switches kept."""
    if isinstance(model, str):
        return SMOKE_PRESETS.get(model, model)
    spec = {k: v for k, v in model.items() if k not in SIZE_KEYS}
    if "preset" in spec:
        spec["preset"] = SMOKE_PRESETS.get(spec["preset"], spec["preset"])
    return spec


def write_config(config: str, out: str, run: str, smoke: bool, models: str = RECIPE_MODELS) -> None:
    """The run config `config` with its paths under `run` and `models`; --smoke makes it tiny and short."""
    data = _moved(yaml.safe_load(Path(config).read_text()), run, models)
    if smoke:
        data = _merge(data, SMOKE_RUN)
        data["model"] = smoke_model(data.get("model", "tiny"))
    with atomic_write(out, overwrite=True) as tmp:
        tmp.write_text(yaml.safe_dump(data, sort_keys=False))


def subset_report(pipe: ArlonPipeline) -> dict[str, Any]:
    """ShapesBench's CI-subset text-to-video cases, one segment each, the pipeline's defaults, seed 0."""
    suite = Suite("v1", tuple(select_cases(load_suite("v1"), subset=True, tasks="t2v")), ())
    return score_suite(lambda case: pipe(case.prompt, segments=1, seed=0).frames, suite)


def export(out: str, vae: str, fine_vq: str, ar: str, dit: str, overwrite: bool) -> None:
    """The pipeline folder (arvideo.json + vae/ fine_vq/ ar/ dit/ scheduler/) with fp16 weights, and
    the quality floors CI checks, from the exported pipeline's own subset run (arvideo/eval/floors.py)."""
    tokenizer = ArlonTokenizer(VideoVAE.from_pretrained(vae), LatentVQ.from_pretrained(fine_vq))
    pipe = ArlonPipeline(tokenizer, ArlonDiT.from_pretrained(dit), FlowMatchEulerScheduler(),
                         load_text_tokenizer(TEXT_TOKENIZER), load_lumos(ar), ArlonConfig())  # fmt: skip
    with atomic_write(out, overwrite=overwrite, is_dir=True) as tmp:
        pipe.save_pretrained(tmp, overwrite=True)
        why = (
            f"Regression floors of this ARLON (exported by python -m arvideo.arlon.build export from {ar}, "
            f"{dit}): its ShapesBench CI-subset t2v scores (one segment, its defaults, seed 0), each "
            "rounded down to 0.1 and at most 0.9."
        )
        write_floors(
            tmp, floors_from_report(subset_report(ArlonPipeline.from_folder(tmp)), why, FLOOR_METRICS)
        )
    size = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())
    log.info("exported %s (%.1f MB)", out, size / 1e6)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m arvideo.arlon.build", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    for kind in ("frames", "latents", "codes"):
        p = sub.add_parser(kind, help=f"write ARLON {kind} shards of a captioned folder")
        p.add_argument("src", help="folder with captions.csv and the clips")
        p.add_argument("out", help="shard folder to write (a rerun continues it)")
        p.add_argument("--vae", help="VAE model folder (latents, codes)")
        p.add_argument("--fine-vq", help="fine latent VQ-VAE model folder (codes)")
        p.add_argument("--frames", type=int, default=17, help="frames kept per clip (1 + 4k)")
        p.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    p = sub.add_parser("publish", help="copy a run's newest checkpoint to a model folder")
    p.add_argument("run_dir", help="the run's out_dir")
    p.add_argument("model_dir", help="model folder to write (replaced)")
    p.add_argument("--vae-stats", help="frame shards: measure and store the VAE's latent statistics first")
    p.add_argument("--items", type=int, default=256, help="clips used for the latent statistics")
    p = sub.add_parser("config", help="a run config with its paths under RUN (and tiny with --smoke)")
    p.add_argument("config", help="checked-in config (configs/arlon-*.yaml)")
    p.add_argument("out", help="config file to write")
    p.add_argument("--run", default=RECIPE_RUN, help="run folder replacing runs/arlon in every path")
    p.add_argument("--models", default=RECIPE_MODELS, help=f"stage-model folder replacing {RECIPE_MODELS}")
    p.add_argument("--smoke", action="store_true", help="tiny models, 2 steps: a quick end-to-end check")
    p = sub.add_parser("export", help="assemble the ARLON pipeline folder (fp16)")
    p.add_argument("out", help="pipeline folder, e.g. src/arvideo/builtin/arlon-shapes")
    for flag in ("--vae", "--fine-vq", "--ar", "--dit"):
        p.add_argument(flag, required=True, help=f"{flag[2:]} model folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        if args.step in ("frames", "latents", "codes"):
            write_shards(args.step, args.src, args.out, args.vae, args.fine_vq, args.frames, args.workers)
        elif args.step == "publish":
            publish(args.run_dir, args.model_dir, args.vae_stats, args.items)
        elif args.step == "config":
            write_config(args.config, args.out, args.run, args.smoke, args.models)
        else:
            export(args.out, args.vae, args.fine_vq, args.ar, args.dit, args.overwrite)
    except ArvideoError as err:
        print(f"arvideo: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
