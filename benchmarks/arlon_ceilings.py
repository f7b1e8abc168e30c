"""What each ARLON stage can represent: ShapesBench text-to-video on ground truth sent through it.

No stage downstream can draw more than its input carries, so each trained model caps the ones after it:
the VAE caps the DiT (it generates VAE latents), the VAE + fine VQ-VAE cap the AR stage (it generates fine
codes), the VAE + coarse VQ-VAE show what the DiT's training condition F keeps. Every case's ground
truth is rendered, encoded and decoded by the stage(s), and scored like a generated video; the rows
come from one run on the same cases. Check the VAE's row before training anything after it.

    .venv/bin/python benchmarks/arlon_ceilings.py --vae stages/arlon-shapes/vae
    .venv/bin/python benchmarks/arlon_ceilings.py --cases 16 \
        --vae runs/arlon/train/vae/checkpoints/step-00001000
    .venv/bin/python benchmarks/arlon_ceilings.py --vae V --fine-vq F --coarse-vq C --report ceilings.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from arvideo.arlon.latent_vq import LatentVQ
from arvideo.arlon.vae import VideoVAE
from arvideo.eval.shapesbench import format_comparison, score_suite
from arvideo.eval.suite import Case, Suite, load_suite
from arvideo.eval.validation import render
from arvideo.io import from_model, to_model

METRICS = ("colour", "shape", "size", "background", "motion", "persistence")


def through(
    vae: VideoVAE, latent_round_trip: Callable[[torch.Tensor], torch.Tensor]
) -> Callable[[Case], torch.Tensor]:
    """`video_for(case)`: the case's ground truth through the VAE (posterior mean), with
    `latent_round_trip` applied to the scaled latent, as the VQ-VAEs see it."""

    @torch.no_grad()
    def video_for(case: Case) -> torch.Tensor:
        video = to_model(render(case))[None]  # [1, 3, T, H, W] in [-1, 1]
        latent = latent_round_trip(vae.scale_latent(vae.encode(video).mode()))
        return from_model(vae.decode(vae.unscale_latent(latent)).clamp(-1, 1)[0])

    return video_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vae", required=True, help="VAE model folder (a stage model or a checkpoint)")
    parser.add_argument("--fine-vq", default=None, help="fine latent VQ-VAE folder (adds a row)")
    parser.add_argument("--coarse-vq", default=None, help="coarse latent VQ-VAE folder (adds a row)")
    parser.add_argument("--cases", type=int, default=None, help="first N t2v cases (default: all 64)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--report", default=None, help="also write every report as JSON to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    vae = VideoVAE.from_pretrained(args.vae).eval()
    sources: dict[str, Callable[[Case], torch.Tensor]] = {
        "ground truth": render,
        "VAE": through(vae, lambda z: z),
    }
    for name, folder in (("VAE + fine VQ-VAE", args.fine_vq), ("VAE + coarse VQ-VAE", args.coarse_vq)):
        if folder:
            vq = LatentVQ.from_pretrained(folder).eval()
            sources[name] = through(vae, lambda z, vq=vq: vq.decode(vq.encode(z)))
    t2v = [case for case in load_suite("v1").cases if case.task == "t2v"][: args.cases]
    suite = Suite("v1-t2v", tuple(t2v), ())
    reports: dict[str, dict[str, Any]] = {
        name: score_suite(video_for, suite) for name, video_for in sources.items()
    }

    print(f"ShapesBench t2v on ground truth through each stage, {len(t2v)} cases (percent); VAE {args.vae}")
    print(format_comparison(reports, "t2v", METRICS))
    if args.report:
        Path(args.report).write_text(json.dumps(reports, indent=1) + "\n")


if __name__ == "__main__":
    main()
