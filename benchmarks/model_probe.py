"""Model probe: what a Lumos model has learned, measured on likelihoods alone (no sampling).

Held-out shapes images and clips with one object each (a set of its own, seed 100) are tokenized
and scored by the model in two ways:

1. Caption reading. The true visual tokens are scored under the true caption and under every
   caption that differs in one attribute only (same template, another value); the attribute is
   read when the true caption gives the lowest negative log-likelihood (chance 1/k for k values).
   Images and a clip's first latent frame are scored with the whole frame masked (the first
   decoding step); motion on every later latent frame, masked, after the clean frames before it
   (teacher forcing, no history masking). This separates "the model does not know the shape"
   from "the sampler loses it".
2. Object codes in context (images). Mean NLL per code of the object's cells (those its box
   touches) with the frame masked, with the background given, and with a random half of the
   object given (the other half scored): how much the model has learned of the joint structure
   of an object's codes, which parallel decoding needs; log(codebook) is the uniform guess.

3. Two objects (clips whose two objects move differently). The later latent frames are scored,
   as for motion above, (a) under every caption that changes one object's motion, the other's
   kept (each object read as in 1., chance 1/9), and (b) under the true caption and the one
   with the two motions swapped (chance 1/2): does the model miss the motions, or only which
   object makes which?

Only code slots are scored (not new-lines); the inter-frame causal mask makes later frames
irrelevant, so they are left out.

    python benchmarks/model_probe.py                  # builtin:shapes, ~6 min on 1 core (+ ~9 for --pairs 32)
    python benchmarks/model_probe.py --weights RUN/checkpoints/step-00002000 \\
        --tokenizer runs/tokenizer-shapes-6000-model                    # a checkpoint in training
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import torch

from arvideo.data.shapes import (
    BACKGROUNDS,
    COLOURS,
    MOTIONS,
    POSITIONS,
    SHAPES,
    SIZES,
    ClipSpec,
    caption,
    random_spec,
    render,
)
from arvideo.lumos.checkpoint import load_lumos
from arvideo.lumos.sequence import pad_batch, serialize, structure
from arvideo.pipelines import load

VALUES = {"colour": tuple(COLOURS), "shape": SHAPES, "size": SIZES, "background": tuple(BACKGROUNDS),
          "position": POSITIONS, "motion": MOTIONS}  # fmt: skip
# attributes probed per task: images on their only frame, clips on the first latent frame, except
# motion, which is scored on the later frames
ATTRIBUTES = {"image": ("colour", "shape", "size", "position", "background"),
              "video": ("colour", "shape", "size", "background", "motion")}  # fmt: skip
CONTEXTS = ("frame masked", "background given", "half the object given")


@dataclasses.dataclass
class Item:
    """One held-out sample: its spec, a seed for its caption's template draws, its codes and box."""

    spec: ClipSpec
    caption_seed: int
    codes: torch.Tensor  # [T', H', W']
    box: tuple[int, int, int, int]  # the object's box in the first frame, pixels, ends exclusive

    def caption(self, spec: ClipSpec | None = None) -> str:
        """The caption of `spec` (default: the item's own) drawn with the item's template draws."""
        return caption(spec or self.spec, np.random.default_rng(self.caption_seed))


def held_out(pipe, kind: str, i: int, seed: int, objects: int = 1) -> Item:
    """Item i of the held-out set; with two objects, a clip whose objects move differently."""
    rng = np.random.default_rng([seed, i] if objects == 1 else [seed, i, objects])
    frames = 1 if kind == "image" else pipe.config.frames
    spec = random_spec(rng, kind, size=pipe.config.width, n_frames=frames, max_objects=objects,
                       min_objects=objects)  # fmt: skip
    while objects == 2 and spec.objects[0].motion == spec.objects[1].motion:
        spec = random_spec(rng, kind, size=pipe.config.width, n_frames=frames, max_objects=2, min_objects=2)
    video, truth = render(spec)  # uint8 [T, H, W, 3]
    codes = pipe.tokenizer.encode(video.permute(3, 0, 1, 2)[None])[0].cpu()
    return Item(spec, int(rng.integers(2**31)), codes, truth[0][0].box)


@torch.no_grad()
def masked_nll(decoder, ids: torch.Tensor, masked: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
    """NLL (nats) of the true ids at the `scored` slots [B, L], with the `masked` ones fed as MASK;
    returns [B, L], zero where not scored."""
    vocab = decoder.vocab
    hidden = decoder(torch.where(masked, vocab.mask, ids))  # [B, L, d]
    logp = decoder.visual_logits(hidden[scored]).log_softmax(dim=-1)  # [N, codebook]
    nll = torch.zeros(ids.shape)
    nll[scored] = -logp.gather(1, vocab.code(ids[scored])[:, None])[:, 0]
    return nll


# ---- 1. caption reading --------------------------------------------------------------------------


def with_value(spec: ClipSpec, attribute: str, value: str) -> ClipSpec:
    """The spec with one attribute of its (single) object or its background set to `value`.

    A position moves the object's centre to the middle of that grid cell: only captions are made
    from these specs, the scored frames stay the original's.
    """
    if attribute == "background":
        return dataclasses.replace(spec, background=value)
    (obj,) = spec.objects
    if attribute == "position":
        row, col = divmod(POSITIONS.index(value), 3)
        obj = dataclasses.replace(obj, start=((col + 0.5) * spec.size / 3, (row + 0.5) * spec.size / 3))
    else:
        obj = dataclasses.replace(obj, **{attribute: value})
    return dataclasses.replace(spec, objects=(obj,))


def variant_captions(item: Item, attribute: str) -> tuple[list[str], int]:
    """Captions for every value of `attribute` (the same template draws) and the true one's index."""
    captions = [item.caption(with_value(item.spec, attribute, v)) for v in VALUES[attribute]]
    return captions, captions.index(item.caption())


def frame_nll(decoder, text_ids: list[list[int]], codes: torch.Tensor, frame: int, header: tuple[int, int]):
    """NLL of the codes of latent frame `frame` under each caption [B], that frame wholly masked."""
    vocab = decoder.vocab
    seqs = [serialize(vocab, t, codes[: frame + 1], *header, close=False) for t in text_ids]
    ids, _ = pad_batch(vocab, seqs, seqs)  # right-padded after the last frame's image_end
    s = structure(ids, vocab)
    last = s.body & (s.frame == s.frame.max(dim=1, keepdim=True).values)
    return masked_nll(decoder, ids, last, last & (s.col < s.width)).sum(dim=1)


def motion_nll(pipe, item: Item, captions: list[str]) -> torch.Tensor:
    """NLL [len(captions)] of the item's later latent frames, each masked after the clean ones before."""
    requests = [pipe.check_inputs(c, frames=item.spec.n_frames) for c in captions]
    header = (requests[0].duration, requests[0].header_fps)
    text_ids = [r.text_ids for r in requests]
    return sum(frame_nll(pipe.model, text_ids, item.codes, f, header) for f in range(1, len(item.codes)))


def caption_reading(pipe, kind: str, items: list[Item]) -> dict[str, dict[str, float]]:
    """Accuracy and mean NLL margin (the wrong captions' mean minus the true one's) per attribute."""
    correct = dict.fromkeys(ATTRIBUTES[kind], 0)
    margin = dict.fromkeys(ATTRIBUTES[kind], 0.0)
    n = len(items)
    for item in items:
        for attribute in ATTRIBUTES[kind]:
            captions, truth = variant_captions(item, attribute)
            if attribute == "motion":
                nll = motion_nll(pipe, item, captions)
            else:
                requests = [pipe.check_inputs(c, frames=item.spec.n_frames) for c in captions]
                header = (requests[0].duration, requests[0].header_fps)
                nll = frame_nll(pipe.model, [r.text_ids for r in requests], item.codes, 0, header)
            correct[attribute] += int(nll.argmin()) == truth
            margin[attribute] += float(torch.cat([nll[:truth], nll[truth + 1 :]]).mean() - nll[truth])
    return {a: {"accuracy": correct[a] / n, "chance": 1 / len(VALUES[a]), "margin": margin[a] / n}
            for a in ATTRIBUTES[kind]}  # fmt: skip


def with_motion(spec: ClipSpec, k: int, motion: str) -> ClipSpec:
    """The spec with object k's motion set (the frames stay the original's)."""
    objects = list(spec.objects)
    objects[k] = dataclasses.replace(objects[k], motion=motion)
    return dataclasses.replace(spec, objects=tuple(objects))


def two_objects(pipe, pairs: list[Item]) -> dict[str, dict[str, float]]:
    """Each object's motion read among all motions, and the true caption against the swapped one."""
    read, swap_correct, swap_margin = 0, 0, 0.0
    for item in pairs:
        for k, obj in enumerate(item.spec.objects):
            nll = motion_nll(pipe, item, [item.caption(with_motion(item.spec, k, m)) for m in MOTIONS])
            read += int(nll.argmin()) == MOTIONS.index(obj.motion)
        first, second = item.spec.objects
        swapped = with_motion(with_motion(item.spec, 0, second.motion), 1, first.motion)
        nll = motion_nll(pipe, item, [item.caption(), item.caption(swapped)])
        swap_correct += int(nll[0] < nll[1])
        swap_margin += float(nll[1] - nll[0])
    n = len(pairs)
    return {"motion": {"accuracy": read / (2 * n), "chance": 1 / len(MOTIONS)},
            "swapped": {"accuracy": swap_correct / n, "chance": 0.5, "margin": swap_margin / n}}  # fmt: skip


# ---- 2. object codes in context ------------------------------------------------------------------


def object_codes(pipe, images: list[Item]) -> dict[str, float]:
    """Mean NLL per object code in each of CONTEXTS, over held-out images."""
    vocab, totals = pipe.model.vocab, dict.fromkeys(CONTEXTS, 0.0)
    sc = pipe.tokenizer.spatial_compression
    for i, item in enumerate(images):
        text_ids = pipe.check_inputs(item.caption(), frames=1).text_ids
        ids = serialize(vocab, text_ids, item.codes, 1, 1)[None]  # [1, L]
        s = structure(ids, vocab)
        x0, y0, x1, y1 = item.box
        in_box = torch.zeros(item.codes.shape[1:], dtype=torch.bool)
        in_box[y0 // sc : (y1 - 1) // sc + 1, x0 // sc : (x1 - 1) // sc + 1] = True
        obj = torch.zeros_like(s.body)
        obj[s.body & (s.col < s.width)] = in_box.flatten()
        cells = obj.nonzero()
        hidden_half = obj.clone()  # the object's cells still masked: a random half stays hidden
        given = cells[
            torch.randperm(len(cells), generator=torch.Generator().manual_seed(i))[: len(cells) // 2]
        ]
        hidden_half[given[:, 0], given[:, 1]] = False
        masked = torch.cat([s.body, obj, hidden_half])  # one row per context, in CONTEXTS order
        scored = torch.cat([obj, obj, hidden_half])
        nll = masked_nll(pipe.model, ids.expand(3, -1), masked, scored)
        for context, row, count in zip(CONTEXTS, nll, scored.sum(dim=1), strict=True):
            totals[context] += float(row.sum() / count)
    return {context: total / len(images) for context, total in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin:shapes", help="builtin:NAME or a Lumos pipeline folder")
    parser.add_argument(
        "--weights", help="a model or training checkpoint folder whose decoder replaces the model's"
    )
    parser.add_argument("--tokenizer", help="the video tokenizer the weights were trained with")
    parser.add_argument("--images", type=int, default=64, help="held-out images")
    parser.add_argument("--videos", type=int, default=32, help="held-out 17-frame clips")
    parser.add_argument("--pairs", type=int, default=32, help="held-out two-object clips")
    parser.add_argument("--seed", type=int, default=100, help="names the held-out set (training uses 0-3)")
    parser.add_argument("--report", type=Path, help="write the results as JSON here")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe = load(args.model, tokenizer=args.tokenizer)
    if args.weights:
        pipe.model = load_lumos(args.weights)
    items = {kind: [held_out(pipe, kind, i, args.seed) for i in range(n)]
             for kind, n in (("image", args.images), ("video", args.videos))}  # fmt: skip
    reading = {kind: caption_reading(pipe, kind, held) for kind, held in items.items() if held}
    objects = object_codes(pipe, items["image"]) if items["image"] else {}
    pairs = [held_out(pipe, "video", i, args.seed, objects=2) for i in range(args.pairs)]
    pair_reading = two_objects(pipe, pairs) if pairs else {}

    name = args.weights or args.model
    print(f"model probe of {name} ({args.images} images, {args.videos} clips, seed {args.seed})")
    print("\n1. caption reading")
    print(f"{'task':6} {'attribute':11} {'accuracy':>8} {'chance':>7} {'margin (nats)':>14}")
    for kind, rows in reading.items():
        for attribute, r in rows.items():
            print(f"{kind:6} {attribute:11} {r['accuracy']:8.1%} {r['chance']:7.1%} {r['margin']:14.2f}")
    uniform = math.log(pipe.model.vocab.codebook_size)
    print(f"\n2. object codes in context (images): mean NLL per code, nats (uniform guess {uniform:.2f})")
    for context, nll in objects.items():
        print(f"{context:22} {nll:6.3f}")
    if pair_reading:
        m, w = pair_reading["motion"], pair_reading["swapped"]
        print(f"\n3. two objects ({args.pairs} clips): motion of each object {m['accuracy']:.1%} (chance "
              f"{m['chance']:.1%}); true caption over the motions swapped {w['accuracy']:.1%} (chance "
              f"50%, margin {w['margin']:.2f} nats)")  # fmt: skip
    if args.report:
        report = {"model": args.model, "weights": args.weights, "seed": args.seed, "images": args.images,
                  "videos": args.videos, "pairs": args.pairs, "caption_reading": reading,
                  "object_codes": objects, "two_objects": pair_reading, "uniform": uniform}  # fmt: skip
        args.report.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
