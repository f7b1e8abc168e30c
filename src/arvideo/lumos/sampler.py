"""Lumos-1 generation: frame by frame, each frame decoded in parallel (reference §5).

    codes = generate(model, text_ids, (frames, height, width), duration, fps,
                     config=SamplerConfig(steps=16, cfg=4.0), generator=torch.Generator().manual_seed(0))

How a video is made (one function, `stream`, reads top to bottom):
- The whole sequence is laid out up front: prompt, video header, then every frame with its header
  and new-line tokens in place and all code slots MASK. Positions and the attention pattern depend
  only on that layout, so they are computed once per video, not once per step (and a frame's RoPE
  tables and attention mask once per frame).
- Classifier-free guidance runs the text-dropped sequence (from video_start on) as a second batch
  row, left-padded to the conditional row's length so both rows share one KV cache and one forward
  per step; a per-query first visible key hides the padding. `cfg == 1` runs the conditional row
  alone. Logits mix as `g * (cond - uncond) + uncond`.
- Each frame is decoded in S steps (MaskGIT): draw a token for every still-masked slot (visual ids
  only, optional temperature / top-k), then keep the least confident ones masked by the cosine
  schedule; confidence is the drawn token's log-probability plus annealed Gumbel noise. Decoded
  tokens are never re-masked. Every step re-runs the frame against the cache without writing it.
- A finished frame (and every given context frame) enters the cache with a fixed, evenly spaced
  pattern of its body masked (the history masking policy, §5.4): training never shows clean
  history, so clean history would be out of distribution.
- `official_quirks=True` reproduces the released code's Gumbel temperature, which compounds across
  steps and stays 0 after the first generated frame (§9.1). The default restarts the annealing
  `T0 * (1 - (s + 1) / S)` in every frame.

`decoding="next_token"` is the baseline for speed comparisons on the same model: each code slot
in raster order is predicted from a MASK at that slot, one forward per token, the frame's decoded
tokens committed to the cache as they come (causal inside the frame); frames enter the history
exactly as in parallel decoding. `kv_cache=False` recomputes the whole sequence at every step (the
reference the cached path is tested against).

Randomness comes only from the `torch.Generator` passed in: the same seed gives the same ids.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch

from arvideo.errors import ArvideoError
from arvideo.lumos.cache import KVCache
from arvideo.lumos.decoder import LumosDecoder
from arvideo.lumos.masks import FrameMask
from arvideo.lumos.rope import Positions
from arvideo.lumos.sequence import code_slots, frame_ids, frame_length, prompt_ids, video_header
from arvideo.lumos.vocab import Vocab


@dataclass(kw_only=True)
class SamplerConfig:
    """How frames are decoded; defaults are the released Lumos-1 T2V settings (§5.6)."""

    steps: int = 50  # parallel decoding steps per frame
    cfg: float = 15.0  # guidance scale g; 1 runs the conditional branch only
    history_ratio: float = 0.7  # fraction of every history frame's body masked in the cache
    remask_temperature: float = 1.0  # T0 of the Gumbel noise on the confidences
    temperature: float = 1.0  # of the token draw; 0 takes the most likely token
    top_k: int | None = None  # draw only among the k most likely visual tokens
    official_quirks: bool = False  # compounding remask temperature, as the released code (§9.1)
    decoding: Literal["parallel", "next_token"] = "parallel"
    kv_cache: bool = True  # False: recompute the whole sequence at every step

    def __post_init__(self) -> None:
        checks = [
            (self.steps >= 1, f"steps must be >= 1, got {self.steps}"),
            (self.cfg >= 0, f"cfg must be >= 0, got {self.cfg}"),
            (0 <= self.history_ratio <= 1, f"history ratio must be in [0, 1], got {self.history_ratio}"),
            (self.remask_temperature >= 0, f"remask temperature must be >= 0, got {self.remask_temperature}"),
            (self.temperature >= 0, f"temperature must be >= 0, got {self.temperature}"),
            (self.top_k is None or self.top_k >= 1, f"top-k must be >= 1, got {self.top_k}"),
            (self.decoding in ("parallel", "next_token"), f"unknown decoding {self.decoding!r}"),
            (self.kv_cache or self.decoding == "parallel", "next-token decoding needs the KV cache"),
        ]
        for ok, message in checks:
            if not ok:
                raise ArvideoError(message)


@dataclass
class Step:
    """What a callback sees after each decoding step (next-token decoding: after each token)."""

    frame: int  # index of the frame being decoded (given frames count)
    step: int
    n_frames: int
    n_steps: int
    ids: torch.Tensor  # [L] long: the conditional sequence as the model saw it, up to this frame
    logits: torch.Tensor  # [M, codebook] fp32: guided logits of the slots that were still masked


Callback = Callable[[Step], None]


# ---- schedules (reference §5.3, §5.4, §11) ---------------------------------------------------------


def keep_masked(n_slots: int, still_masked: int, step: int, steps: int) -> int:
    """How many of a frame's `n_slots` code slots stay masked after `step` (cosine schedule).

    At least one slot is revealed per step while more than one is masked, and the last step
    reveals everything.
    """
    if step == steps - 1:
        return 0
    target = math.floor(n_slots * math.cos(math.pi / 2 * (step + 1) / steps))
    return max(1, min(still_masked - 1, target))


def remask_temperatures(config: SamplerConfig, n_frames: int) -> torch.Tensor:
    """Gumbel temperature of every step of every generated frame, [n_frames, steps] float64."""
    ratio = torch.arange(1, config.steps + 1, dtype=torch.float64) / config.steps  # [S]
    if not config.official_quirks:
        return (config.remask_temperature * (1 - ratio)).expand(n_frames, -1)
    # the released loop overwrites its temperature with T * (1 - ratio) at every step, so it decays
    # multiplicatively, reaches 0 at the last step of the first frame and stays there
    table = torch.zeros(n_frames, config.steps, dtype=torch.float64)
    table[:1] = config.remask_temperature * torch.cumprod(1 - ratio, dim=0)
    return table


def history_pattern(n_body: int, ratio: float) -> torch.Tensor:
    """Body slots (new-lines included) masked in every history frame: round(ratio * n_body)
    evenly spaced indices from 0 (round half to even, as torch.round), the same for every frame.

    Ratio 0 masks nothing (the released code masks at least one slot; it never uses ratio 0).
    """
    if ratio == 0:
        return torch.zeros(0, dtype=torch.long)
    n = max(1, round(ratio * n_body))
    spots = torch.arange(n) * (n_body / n)  # float32, as in the released code
    idx = torch.round(spots).long().clamp(0, n_body - 1).unique()
    if len(idx) < n:  # rounding merged neighbours: take the last free slots instead
        free = torch.ones(n_body, dtype=torch.bool)
        free[idx] = False
        idx = torch.cat([idx, free.nonzero().flatten()[len(idx) - n :]]).sort().values
    return idx


# ---- the token draw -------------------------------------------------------------------------------


def draw(
    logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One code per row of logits [M, C]: (codes [M], their log-probability [M])."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]  # [M, 1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if temperature == 0:
        logp = logits.log_softmax(-1)
        codes = logits.argmax(-1)
    else:
        # inverse-CDF sampling: one uniform per row (torch.multinomial is ~20x slower on CPU);
        # `right=True` never lands on a zero-probability code (top-k cut)
        logp = (logits / temperature).log_softmax(-1)  # [M, C]
        cdf = logp.exp().cumsum(-1)  # [M, C]
        u = torch.rand(len(cdf), 1, generator=generator, device=cdf.device) * cdf[:, -1:]
        codes = torch.searchsorted(cdf, u, right=True)[:, 0].clamp(max=cdf.shape[1] - 1)
    return codes, logp.gather(-1, codes[:, None])[:, 0]


def gumbel(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    u = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
    return -torch.log(-torch.log(u.clamp(1e-20, 1 - 1e-16))).float()


# ---- the sequence being generated -----------------------------------------------------------------


@dataclass
class Canvas:
    """The [B, L] token rows of one video and where its frames sit.

    Row 0 is the conditional sequence; with guidance, row 1 is the text-dropped sequence (from
    video_start on) left-padded by `pad` tokens to the same length, so frame f spans the same
    columns [start[f], start[f] + frame_len) in both rows and one cache serves both.
    """

    ids: torch.Tensor  # [B, L] long
    pad: int  # leading pad tokens of row 1 (= prompt length)
    start: list[int]  # column of each frame's image_start
    frame_len: int
    slots: torch.Tensor  # [H'*W'] long: code slots inside a frame, raster order

    @classmethod
    def build(
        cls,
        vocab: Vocab,
        text_ids: list[int],
        n_frames: int,
        height: int,
        width: int,
        duration: int,
        fps: int,
        guided: bool,
        device: torch.device,
    ) -> Canvas:
        blank = frame_ids(
            vocab, torch.zeros(height, width, dtype=torch.long), torch.ones(height, width, dtype=torch.bool)
        )  # [N_f + 4]: header, new-lines and image_end in place, every code slot MASK
        video = torch.cat([video_header(vocab, duration, fps), blank.repeat(n_frames)])
        prompt = prompt_ids(vocab, text_ids)
        rows = [torch.cat([prompt, video])]
        if guided:
            rows.append(torch.cat([torch.full_like(prompt, vocab.pad), video]))
        first = len(prompt) + 3
        length = frame_length(height, width)
        return cls(
            torch.stack(rows).to(device),
            len(prompt),
            [first + f * length for f in range(n_frames)],
            length,
            code_slots(height, width).to(device),
        )

    def mask(self, model: LumosDecoder) -> FrameMask:
        """Frame-causal pattern of every row; row 1's queries never see its padding."""
        limit = model.mask(self.ids).limit  # [B, L]
        if len(limit) == 1:
            return FrameMask(limit)
        first = torch.zeros_like(limit)
        first[1:, self.pad :] = self.pad
        return FrameMask(limit, first)

    def span(self, f: int) -> tuple[int, int]:
        return self.start[f], self.start[f] + self.frame_len

    def write(self, f: int, codes: torch.Tensor, vocab: Vocab) -> None:
        """Fill every code slot of frame f (all rows) from codes [H', W']."""
        self.ids[:, self.start[f] + self.slots] = vocab.visual(codes.flatten())

    def put(self, f: int, slots: torch.Tensor, codes: torch.Tensor, vocab: Vocab) -> None:
        """codes [n] into the given code-slot numbers [n] of frame f (all rows)."""
        self.ids[:, self.start[f] + self.slots[slots]] = vocab.visual(codes)


class Runner:
    """Forwards over the canvas columns [start, end), with a KV cache or by full recomputation."""

    def __init__(self, model: LumosDecoder, canvas: Canvas, kv_cache: bool):
        self.model, self.canvas = model, canvas
        ids = canvas.ids
        self.positions = model.positions(ids)  # global, computed once: structure ignores code values
        self.mask = canvas.mask(model)
        self.cache: KVCache | None = model.new_cache(ids.shape[0], ids.shape[1]) if kv_cache else None
        self.span: tuple[int, int, Positions, FrameMask] | None = None  # the columns last run

    def __call__(self, start: int, end: int, write: bool = False) -> torch.Tensor:
        """Final hidden states [B, end - start, d] of columns [start, end), given all columns before.

        With the cache, columns before `start` must be committed; `write` commits [start, end).
        Without it, everything up to `end` is recomputed and nothing is kept.
        The forward runs in inference mode (no autograd bookkeeping per operator): its result is
        only read, and the yielded codes are made outside it.
        """
        ids = self.canvas.ids
        first = start if self.cache is not None else 0  # first column of the forward
        pos, mask = self.inputs(first, end)
        with torch.inference_mode():
            if self.cache is None:
                return self.model(ids[:, :end], pos, mask)[:, start:]  # [B, end - start, d]
            assert self.cache.length == start, (
                f"cache holds {self.cache.length} columns, chunk starts at {start}"
            )
            return self.model(ids[:, start:end], pos, mask, self.cache, write)  # [B, end - start, d]

    def inputs(self, start: int, end: int) -> tuple[Positions, FrameMask]:
        """Global positions and mask of columns [start, end): the same objects while the columns
        repeat (every step of a frame), so the model builds its RoPE tables and attention mask
        from them once per frame instead of once per step."""
        if self.span is None or self.span[:2] != (start, end):
            self.span = start, end, self.positions.slice(start, end), self.mask.slice(start, end)
        return self.span[2:]

    def commit(self, f: int, pattern: torch.Tensor) -> None:
        """Frame f enters the history: its body masked by `pattern` in the canvas and the cache."""
        start, end = self.canvas.span(f)
        self.canvas.ids[:, start + 3 + pattern] = self.model.vocab.mask
        if self.cache is not None:
            self(start, end, write=True)


def guide(logits: torch.Tensor, cfg: float) -> torch.Tensor:
    """[B, M, C] -> [M, C]: row 0 alone, or g * (cond - uncond) + uncond with the text-dropped row 1."""
    if logits.shape[0] == 1:
        return logits[0]
    cond, uncond = logits[0], logits[1]
    return cfg * (cond - uncond) + uncond


# ---- generation -----------------------------------------------------------------------------------


@torch.no_grad()
def stream(
    model: LumosDecoder,
    text_ids: list[int],
    size: tuple[int, int, int],
    duration: int,
    fps: int,
    *,
    config: SamplerConfig,
    generator: torch.Generator,
    given: torch.Tensor | None = None,
    callback: Callback | None = None,
) -> Iterator[torch.Tensor]:
    """Yield the codes [H', W'] of every frame of a video of `size` = (T', H', W') latents, in order.

    `given` [T0, H', W'] are context frames (image-to-video, continuation), yielded first as they
    are; the remaining T' - T0 frames are generated, each yielded as soon as it is finished.
    `duration` and `fps` are the two numbers of the video header.
    """
    vocab = model.vocab
    n_frames, height, width = size
    n_given = 0 if given is None else len(given)
    assert given is None or tuple(given.shape[1:]) == (height, width), (
        f"given frames {tuple(given.shape)} do not match the frame size {(height, width)}"
    )
    assert 0 <= n_given < n_frames, f"{n_given} given frames leave nothing to generate of {n_frames}"
    device = model.embed.weight.device

    # 1. lay the whole video out: prompt, header, every frame fully masked (row 1: text dropped)
    canvas = Canvas.build(
        vocab, list(text_ids), n_frames, height, width, duration, fps, guided(config), device
    )
    run = Runner(model, canvas, config.kv_cache)
    pattern = history_pattern(height * (width + 1), config.history_ratio).to(device)
    temperatures = remask_temperatures(config, n_frames - n_given).tolist()

    # 2. the prompt (and header) goes into the cache
    if run.cache is not None:
        run(0, canvas.start[0], write=True)

    for f in range(n_frames):
        # 3. a given frame is taken as is; a new one is decoded against the history
        if f < n_given:
            codes = given[f].to(device)
            canvas.write(f, codes, vocab)
        elif config.decoding == "parallel":
            codes = decode_parallel(run, f, config, temperatures[f - n_given], generator, callback)
        else:
            codes = decode_next_token(run, f, config, generator, callback)
        yield codes.view(height, width)
        # 4. the frame joins the history, partly masked (not needed after the last frame)
        if f < n_frames - 1:
            run.commit(f, pattern)


def guided(config: SamplerConfig) -> bool:
    """Whether the text-dropped branch runs: guidance with scale 1 is the conditional branch."""
    return config.cfg != 1


def decode_parallel(
    run: Runner,
    f: int,
    config: SamplerConfig,
    temperatures: list[float],
    generator: torch.Generator,
    callback: Callback | None,
) -> torch.Tensor:
    """MaskGIT decoding of frame f in `config.steps` forwards; returns codes [H'*W']."""
    model, canvas = run.model, run.canvas
    start, end = canvas.span(f)
    n = len(canvas.slots)
    codes = torch.zeros(n, dtype=torch.long, device=canvas.ids.device)
    masked = torch.ones(n, dtype=torch.bool, device=canvas.ids.device)
    for s in range(config.steps):
        # forward the frame against the history, without writing it to the cache
        hidden = run(start, end)  # [B, N_f + 4, d]
        todo = masked.nonzero().flatten()  # [M] slot numbers still masked
        logits = guide(model.visual_logits(hidden[:, canvas.slots[todo]]), config.cfg)  # [M, C]
        # draw a code for every still-masked slot
        drawn, logp = draw(logits, config.temperature, config.top_k, generator)  # [M], [M]
        # keep the least confident masked (cosine schedule), reveal the rest
        n_keep = keep_masked(n, len(todo), s, config.steps)
        confidence = logp + temperatures[s] * gumbel(len(todo), generator, logp.device)
        reveal = torch.ones(len(todo), dtype=torch.bool, device=logp.device)
        reveal[confidence.topk(n_keep, largest=False).indices] = False
        codes[todo[reveal]] = drawn[reveal]
        masked[todo[reveal]] = False
        if callback is not None:
            callback(Step(f, s, len(canvas.start), config.steps, canvas.ids[0, :end].clone(), logits))
        canvas.put(f, todo[reveal], drawn[reveal], model.vocab)
    return codes


def decode_next_token(
    run: Runner, f: int, config: SamplerConfig, generator: torch.Generator, callback: Callback | None
) -> torch.Tensor:
    """Raster-order decoding of frame f, one forward per code: the slot is fed as MASK and the
    columns before it (already decoded) are committed to the cache on the way; returns [H'*W']."""
    model, canvas, cache = run.model, run.canvas, run.cache
    start, _ = canvas.span(f)
    n = len(canvas.slots)
    codes = torch.zeros(n, dtype=torch.long, device=canvas.ids.device)
    frontier = start  # first column not yet in the cache
    for j, slot in enumerate((start + canvas.slots).tolist()):
        hidden = run(frontier, slot + 1, write=True)  # [B, slot + 1 - frontier, d]
        cache.crop(slot)  # the MASK at `slot` is not history: only the columns before it stay
        logits = guide(model.visual_logits(hidden[:, -1:]), config.cfg)  # [1, C]
        drawn, _ = draw(logits, config.temperature, config.top_k, generator)
        codes[j] = drawn[0]
        if callback is not None:
            callback(Step(f, j, len(canvas.start), n, canvas.ids[0, : slot + 1].clone(), logits))
        canvas.put(f, torch.tensor([j], device=codes.device), drawn, model.vocab)
        frontier = slot
    cache.crop(start)  # the frame re-enters the cache history-masked, like a parallel-decoded one
    return codes


def generate(
    model: LumosDecoder,
    text_ids: list[int],
    size: tuple[int, int, int],
    duration: int,
    fps: int,
    *,
    config: SamplerConfig,
    generator: torch.Generator,
    given: torch.Tensor | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """All frames' codes [T', H', W'] (given frames included); see `stream`."""
    frames = stream(model, text_ids, size, duration, fps, config=config, generator=generator, given=given,
                    callback=callback)  # fmt: skip
    return torch.stack(list(frames))
