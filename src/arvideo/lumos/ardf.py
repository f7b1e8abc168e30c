"""AR-DF training: masked-frame inputs, CFG text dropout and the masked visual-token loss (§4).

Masking (reference §4.3). Content = the body slots of every frame (codes and new-lines) whose label
is not IGNORE. Each sample draws a ratio p = max(cos(pi/2 * u), min_ratio), u ~ U(0, 1), and masks
round(p * n) of n slots (at least 1); masked inputs become MASK, labels of unmasked content become
IGNORE. The variants differ in what the slots are:

- "tube" (official): one random set of body slots, repeated in every frame, so the co-located
  token of a masked slot is masked in every earlier frame too and cannot be copied.
- "random": i.i.d. over all content tokens of the video.
- "frame" (diffusion forcing): an independent ratio and an independent pattern per frame.
- "tube_decay": one slot ranking shared by all frames; the masked count rises linearly from
  round(p * n) in the first frame to all n slots in the last, so the frame masks are nested.
- "tube_mix": each sample is a "tube" or a "tube_decay" sample with equal chance (a coin drawn
  after its slot ranking), so training sees both a partly visible and an empty last frame.

All of them pick a uniform random subset with one trick: draw uniforms (unused slots padded with +inf),
`argsort`, and keep the entries whose value is below the count; the tube draws are made in the
order of the official code, so a generator seeded like the official run reproduces its masks.

Loss (§4.4): cross-entropy over the visual logits only, on masked visual tokens only, no label
shift. `visual_loss` gathers those rows first and projects them on the visual rows of the head in
chunks inside one autograd function that keeps only the gathered rows and their log-sum-exp, so
neither [B, L, V] logits nor [N, codebook] logits are ever stored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch

from arvideo.errors import ArvideoError
from arvideo.lumos.decoder import LumosDecoder
from arvideo.lumos.sequence import IGNORE, structure
from arvideo.lumos.vocab import Vocab

MaskKind = Literal["tube", "random", "frame", "tube_decay", "tube_mix"]


def mask_ratio(shape: tuple[int, ...], generator: torch.Generator, min_ratio: float = 0.7) -> torch.Tensor:
    """Cosine schedule with a floor: max(cos(pi/2 * u), min_ratio), u ~ U(0, 1)."""
    u = torch.rand(shape, generator=generator, device=generator.device)
    return torch.cos(u * math.pi / 2).clamp(min=min_ratio)


def _permutation(
    size: torch.Tensor, width: int, generator: torch.Generator, shape: tuple[int, ...]
) -> torch.Tensor:
    """perm [*shape, width] (shape[0] = B): `perm < n` marks a uniform n-subset of the first size[b]."""
    r = torch.rand(*shape, width, generator=generator, device=generator.device)
    too_far = torch.arange(width, device=r.device) >= size.to(r.device).view(-1, *[1] * len(shape))
    r = r.masked_fill(too_far, math.inf)
    return r.argsort(dim=-1)


@dataclass
class MaskedSample:
    input_ids: torch.Tensor  # [B, L]: content slots chosen for prediction replaced by MASK
    labels: torch.Tensor  # [B, L]: IGNORE on unmasked content, unchanged elsewhere
    ratio: torch.Tensor  # [B] (or [B, F] for "frame") sampled mask ratio


def ardf_mask(
    ids: torch.Tensor,
    labels: torch.Tensor,
    vocab: Vocab,
    generator: torch.Generator,
    kind: MaskKind = "tube",
    min_ratio: float = 0.7,
) -> MaskedSample:
    """Mask clean training ids [B, L] with their labels [B, L] (reference §4.3)."""
    if kind not in get_args(MaskKind):
        raise ArvideoError(f"mask kind must be one of {get_args(MaskKind)}, got {kind!r}")
    batch = ids.shape[0]
    s = structure(ids, vocab)
    content = s.body & (labels != IGNORE)  # [B, L]
    if not content.any():
        return MaskedSample(ids, labels, torch.zeros(batch))
    # frames are counted from the first content frame of each sample
    first = torch.where(content, s.frame, ids.shape[1]).min(dim=1, keepdim=True).values  # [B, 1]
    frame = torch.where(content, s.frame - first, 0)  # [B, L]
    per_frame = (content & (frame == 0)).sum(1)  # [B] body slots of one frame (official `il`)
    frames_of = torch.where(content, frame + 1, 0).max(dim=1).values  # [B] frames of each sample
    n_frames = int(frames_of.max())

    # Each kind fills: perm [B, U, n] (random ranking per unit), the unit of every token for the
    # ranking (perm_unit) and for the count (count_unit), count [B, U'] and the token's slot.
    zero = torch.zeros_like(frame)
    if kind == "random":  # one unit: all content tokens of the video
        size = content.sum(1)
        ratio = mask_ratio((batch,), generator, min_ratio)
        count = (size.to(ratio.device) * ratio).round().clamp(min=1)[:, None]  # [B, 1]
        perm = _permutation(size, int(size.max()), generator, (batch, 1))
        perm_unit, count_unit, slot = zero, zero, (torch.cumsum(content, dim=1) - 1).clamp(min=0)
    elif kind == "frame":  # one unit per frame, each with its own ratio and pattern
        ratio = mask_ratio((batch, n_frames), generator, min_ratio)
        count = (per_frame.to(ratio.device)[:, None] * ratio).round().clamp(min=1)  # [B, F]
        perm = _permutation(per_frame, int(per_frame.max()), generator, (batch, n_frames))
        perm_unit, count_unit, slot = frame, frame, s.slot
    else:  # one slot ranking shared by every frame (drawn after the ratio, as the official code does)
        ratio = mask_ratio((batch,), generator, min_ratio)
        count = (per_frame.to(ratio.device) * ratio).round().clamp(min=1)[:, None]  # [B, 1]
        perm = _permutation(per_frame, int(per_frame.max()), generator, (batch, 1))
        perm_unit, count_unit, slot = zero, zero, s.slot
        if kind in ("tube_decay", "tube_mix"):  # count rises linearly to every slot in the last frame
            count, step = count.to(ids.device), torch.arange(n_frames, device=ids.device)
            step = step / (frames_of[:, None] - 1).clamp(min=1)  # [B, F]: 0 -> 1 over the frames
            rising = (count + (per_frame[:, None] - count) * step).round()  # [B, F]
            if kind == "tube_mix":  # a coin per sample keeps the tube's constant count in half of them
                decays = torch.rand(batch, generator=generator, device=generator.device) < 0.5
                rising = torch.where(decays.to(ids.device)[:, None], rising, count)
            count, count_unit = rising, frame
    perm, count = perm.to(ids.device), count.to(ids.device)  # drawn on the generator's device
    rank = perm[torch.arange(batch)[:, None], perm_unit, slot.clamp(max=perm.shape[-1] - 1)]  # [B, L]
    masked = content & (rank < count.gather(1, count_unit))
    return MaskedSample(
        input_ids=torch.where(masked, vocab.mask, ids),
        labels=torch.where(content & ~masked, IGNORE, labels),
        ratio=ratio,
    )


def drop_text(
    ids: torch.Tensor, labels: torch.Tensor, vocab: Vocab, generator: torch.Generator, p: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """CFG text dropout of one sample [L]: with probability p keep only the part from video_start.

    As in the official training, only a sample holding one video_start and one video_end and
    ending with [video_end, sep] is eligible; one uniform is drawn per sample regardless.
    """
    drop = torch.rand((), generator=generator) < p
    eligible = (
        len(ids) >= 2
        and ids[-2:].tolist() == [vocab.video_end, vocab.sep]
        and int((ids == vocab.video_start).sum()) == 1
        and int((ids == vocab.video_end).sum()) == 1
    )
    if not (drop and eligible):
        return ids, labels
    start = int((ids == vocab.video_start).nonzero()[0])
    return ids[start:], labels[start:]


def changed_tokens(ids: torch.Tensor, labels: torch.Tensor, vocab: Vocab) -> torch.Tensor:
    """[B, L] bool: content tokens whose code differs from the co-located one a latent frame earlier.

    What `task.changed_weight` weighs up. With local codes they are the few codes around moving
    objects, which the plain mean weighs like the many background codes that repeat the frame
    before; with non-local codes most codes change (docs/tokenizers.md, "Code locality"). A frame
    with no earlier frame of the same size changes nothing.
    """
    s = structure(ids, vocab)
    content = s.body & (labels != IGNORE)  # [B, L]
    slots = int(s.slot.max()) + 1
    key = torch.where(content, s.frame * slots + s.slot, -1)  # [B, L]: (frame, slot) of each content token
    width = int(key.max()) + 1  # grid width; column `width` collects the other tokens
    grid = torch.full((ids.shape[0], width + 1), -1, dtype=ids.dtype, device=ids.device)
    grid.scatter_(1, torch.where(content, key, width), ids)
    grid[:, width] = -1
    earlier = grid.gather(1, (key - slots).clamp(min=0, max=width))  # [B, L] co-located id, or -1
    return content & (key >= slots) & (earlier >= 0) & (earlier != ids)


# ---- loss ----------------------------------------------------------------------------------------


class _ChunkedCE(torch.autograd.Function):
    """Per-row CE over the classes of `weight` (the visual head rows), `chunk` rows at a time.

    Saves hidden rows and their log-sum-exp only; backward recomputes each chunk of logits and
    accumulates the head gradient in place (fp32 heads: no second copy).
    Products run in the dtype of `hidden` (bf16 under autocast), softmax statistics in fp32, as
    the official head output followed by `.float()`.
    """

    @staticmethod
    def forward(ctx, hidden, weight, target, chunk):  # hidden [N, d], weight [K, d], target [N]
        w = weight.to(hidden.dtype)  # [K, d]
        losses, lses = [], []
        for start in range(0, hidden.shape[0], chunk):
            logits = (hidden[start : start + chunk] @ w.T).float()  # [c, K]
            lse = logits.logsumexp(dim=-1)
            losses.append(lse - logits.gather(1, target[start : start + chunk, None])[:, 0])
            lses.append(lse)
        ctx.save_for_backward(hidden, weight, target, torch.cat(lses) if lses else hidden.new_zeros(0))
        ctx.chunk = chunk
        return torch.cat(losses) if losses else hidden.new_zeros(0, dtype=torch.float32)

    @staticmethod
    def backward(ctx, grad):  # grad [N]
        hidden, weight, target, lse = ctx.saved_tensors
        w = weight.to(hidden.dtype)  # [K, d]
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        # accumulated in fp32 (for an fp32 head this is the returned gradient itself)
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if ctx.needs_input_grad[1] else None
        for start in range(0, hidden.shape[0], ctx.chunk):
            part = slice(start, start + ctx.chunk)
            probs = ((hidden[part] @ w.T).float() - lse[part, None]).exp()  # [c, K] softmax
            probs[torch.arange(probs.shape[0]), target[part]] -= 1.0
            dlogits = probs * grad[part, None]  # d loss / d logits
            if grad_hidden is not None:
                grad_hidden[part] = dlogits.to(hidden.dtype) @ w
            if grad_weight is not None:
                grad_weight += dlogits.T @ hidden[part].float()  # [K, d], fp32
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        return grad_hidden, grad_weight, None, None


@dataclass
class VisualLoss:
    loss: torch.Tensor  # [] mean over the masked visual tokens of the batch
    token_loss: torch.Tensor  # [N] fp32, differentiable: normalise it yourself for a global mean
    frame: torch.Tensor  # [N] latent frame index of each token

    def per_frame(self, n_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Detached (loss sum, token count) [n_frames] per latent frame index, for logging."""
        losses = self.token_loss.detach()
        sums = torch.zeros(n_frames, device=losses.device).index_add_(0, self.frame, losses)
        counts = torch.bincount(self.frame, minlength=n_frames)[:n_frames]
        return sums, counts


def visual_loss(
    model: LumosDecoder, hidden: torch.Tensor, ids: torch.Tensor, labels: torch.Tensor, chunk: int = 256
) -> VisualLoss:
    """CE over visual logits at tokens whose label is a visual code (masked visual slots).

    hidden [B, L, d] is the decoder output for ids [B, L]; labels [B, L] come from `ardf_mask`.
    """
    vocab = model.vocab
    rows = vocab.is_visual(labels)  # [B, L]
    target = vocab.code(labels[rows])  # [N]
    frame = structure(ids, vocab).frame[rows]  # [N]
    token_loss = _ChunkedCE.apply(hidden[rows], model.visual_head_weight, target, chunk)  # [N]
    loss = token_loss.sum() / max(len(token_loss), 1)
    return VisualLoss(loss, token_loss, frame)
