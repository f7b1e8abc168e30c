"""`ArlonPipeline`: prompts in, a long `Video` out, made segment by segment (ARLON, reference §1, §6).

    pipe = arvideo.load("builtin:arlon-shapes")                  # or ArlonPipeline.from_folder(path)
    video = pipe(["a small red circle moves to the right", "a small red circle moves to the left"],
                 segments=4, steps=5, seed=0)                    # 65 frames: 17 + 3 x 16
    for part in pipe.stream("a large blue star stays still", segments=3): ...   # one Video per segment
    baseline = pipe("...", segments=4, use_ar=False)             # the DiT alone, same segment loop

How a long video is made (`_segments` reads top to bottom):
1. The AR model (the Lumos-1 decoder over fine latent-VQ codes, `ArlonTokenizer`) writes the codes
   of the WHOLE video first: the first window of `ar_window` code frames with segment 1's
   prompt, then a window sliding by one code frame (keeping `ar_context` frames of context) until
   the video's length; each new code frame is written with the prompt of the segment it opens.
   Lumos-1's per-frame parallel decoding or ARLON's next-token decoding (`decoding`).
2. The DiT makes the segments in order. Segment k covers the latent frames
   [k (S - r), k (S - r) + S) of the video (S = latent frames per segment, r = reference frames);
   its condition F is the fine VQ-VAE's decoding of those codes (skipped with `use_ar=False`,
   which leaves the DiT alone), its text is its own prompt, and from the second segment on its
   first r latent frames are clean reference frames: the VAE encoding of the last 1 + 4(r - 1)
   frames of the video so far, exactly as they appear in the output. Encoding them afresh (rather
   than copying the latent of the previous segment) keeps each segment's latent a clip start,
   as in training: the VAE is causal over the whole video, so a latent copied from the middle of
   one segment is not what the DiT saw at the start of a clip (OpenSora, ARLON's DiT, gets the
   same effect from a VAE that encodes every 17 frames on their own).
3. Euler steps of the rectified flow (`flow.euler_sample`) with CFG on the text; the reference
   frames are put back after the last step; the VAE decodes the segment and the frames after
   the reference ones join the video.

A model folder holds `arvideo.json` (`ArlonConfig`: the text tokenizer and the generation
defaults) and one sub-folder per model: `vae/`, `fine_vq/`, `ar/` (a Lumos model folder),
`dit/`, `scheduler/`. The coarse VQ-VAE only serves training and is not needed here.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from arvideo.arlon.dit import ArlonDiT
from arvideo.arlon.flow import FlowMatchEulerScheduler, euler_sample
from arvideo.arlon.tokenizer import FINE_VQ_DIR, VAE_DIR, ArlonTokenizer
from arvideo.errors import ArvideoError
from arvideo.files import atomic_write
from arvideo.io import Video, from_model
from arvideo.lumos import sampler
from arvideo.lumos.checkpoint import load_lumos, save_lumos
from arvideo.lumos.decoder import LumosDecoder
from arvideo.lumos.sequence import header_timing
from arvideo.tokenizers import TextTokenizer, load_text_tokenizer

CONFIG_NAME = "arvideo.json"
FORMAT = "arvideo-arlon-pipeline-v1"
AR_DIR, DIT_DIR, SCHEDULER_DIR = "ar", "dit", "scheduler"


@dataclass(kw_only=True)
class ArlonConfig:
    """The `arvideo.json` of an ARLON folder: text tokenizer, video geometry, generation defaults."""

    text_tokenizer: str = "builtin:shapes"  # builtin:NAME or a tokenizer.json (relative: from the folder)
    width: int = 64
    height: int = 64
    fps: int = 8
    segment_frames: int = 17  # pixel frames the DiT makes per segment (its training clips)
    reference_frames: int = 1  # latent frames each later segment takes from the video so far
    ar_window: int = 5  # code frames the AR model was trained on; longer videos slide a window
    ar_context: int = 4  # code frames kept as context when the window slides (< ar_window)
    steps: int = 5  # Euler steps per segment
    cfg: float = 3.0  # DiT guidance on the text (1: conditional branch only)
    ar_steps: int = 8  # parallel decoding steps per code frame
    ar_cfg: float = 3.0  # AR guidance on the text
    history_ratio: float = 0.7  # AR history masking (Lumos-1 §5.4)

    @classmethod
    def read(cls, folder: Path) -> ArlonConfig:
        path = folder / CONFIG_NAME
        try:
            d = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ArvideoError(f"{path} is not a readable ARLON pipeline file ({e})") from None
        if not isinstance(d, dict) or d.pop("format", None) != FORMAT:
            raise ArvideoError(f'{path} is not an ARLON pipeline file (expected "format": "{FORMAT}")')
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields)
        if unknown:
            raise ArvideoError(
                f"{path}: unknown key {unknown[0]!r}; valid keys: format, {', '.join(sorted(fields))}"
            )
        return cls(**d)

    def to_dict(self) -> dict:
        return {"format": FORMAT, **dataclasses.asdict(self)}


def is_arlon_folder(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds an ARLON pipeline (its arvideo.json says so)."""
    path = Path(folder) / CONFIG_NAME
    try:
        return json.loads(path.read_text()).get("format") == FORMAT
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


@dataclass(frozen=True)
class Layout:
    """Where the segments of a long video sit, in latent and pixel frames."""

    segments: int
    segment_latents: int  # S
    reference: int  # r
    temporal_compression: int

    @property
    def stride(self) -> int:
        """New latent frames per segment after the first."""
        return self.segment_latents - self.reference

    @property
    def latents(self) -> int:
        return self.segment_latents + (self.segments - 1) * self.stride

    @property
    def frames(self) -> int:
        return 1 + self.temporal_compression * (self.latents - 1)

    @property
    def reference_pixels(self) -> int:
        """Pixel frames the reference latents encode (a clip start: frame 0 alone, then groups)."""
        return 1 + self.temporal_compression * (self.reference - 1)

    def window(self, k: int) -> slice:
        """Latent (and code) frames of segment k in the whole video."""
        return slice(k * self.stride, k * self.stride + self.segment_latents)

    def opened_by(self, frame: int) -> int:
        """The segment whose prompt a code frame is written with: the first one to contain it."""
        return 0 if frame < self.segment_latents else 1 + (frame - self.segment_latents) // self.stride

    def first_frame_of(self, k: int) -> int:
        """Latent frame where segment k's new frames start."""
        return 0 if k == 0 else self.segment_latents + (k - 1) * self.stride


@dataclass
class Request:
    """Validated inputs of one long video (`ArlonPipeline.check_inputs`)."""

    prompts: list[str]  # one per segment
    text_ids: list[list[int]]  # one per segment
    layout: Layout
    steps: int
    cfg: float
    use_ar: bool
    ar_config: sampler.SamplerConfig
    seed: int


@dataclass
class Progress:
    """What a callback sees: a finished AR code frame, or a finished segment."""

    stage: Literal["ar", "dit"]
    done: int  # code frames (ar) or segments (dit) finished so far
    total: int


@dataclass
class Segment:
    """One generated segment: its new frames and the latents it was made from."""

    index: int
    prompt: str
    frames: torch.Tensor  # uint8 [T_new, H, W, 3]: the frames this segment adds to the video
    latent: torch.Tensor  # [1, C, S, h, w] the DiT's output (reference frames included)
    reference: torch.Tensor | None  # [1, C, r, h, w] clean reference latents (None for the first)
    coarse: torch.Tensor | None  # [1, C, S, h, w] the AR condition F (None without the AR stage)


Callback = Callable[[Progress], None]


class ArlonPipeline:
    """ARLON generation: AR codes for the whole video, then a DiT segment by segment."""

    def __init__(
        self,
        tokenizer: ArlonTokenizer,
        dit: ArlonDiT,
        scheduler: FlowMatchEulerScheduler,
        text_tokenizer: TextTokenizer,
        ar: LumosDecoder | None = None,
        config: ArlonConfig | None = None,
    ):
        self.tokenizer, self.dit, self.scheduler = tokenizer, dit.eval(), scheduler
        self.text_tokenizer, self.ar = text_tokenizer, None if ar is None else ar.eval()
        self.config = config or ArlonConfig()
        self._check_components()

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, device: str | torch.device = "cpu") -> ArlonPipeline:
        folder = Path(folder)
        if not folder.is_dir():
            raise ArvideoError(f"model {str(folder)!r} is neither builtin:NAME nor an existing folder")
        config = ArlonConfig.read(folder)
        text = config.text_tokenizer
        text_tok = load_text_tokenizer(text if text.startswith("builtin:") else folder / text)
        ar = load_lumos(folder / AR_DIR, device=device) if (folder / AR_DIR).is_dir() else None
        return cls(
            ArlonTokenizer.from_folder(folder, device), ArlonDiT.from_pretrained(folder / DIT_DIR, device),
            FlowMatchEulerScheduler.from_pretrained(folder / SCHEDULER_DIR), text_tok, ar, config,
        )  # fmt: skip

    def save_pretrained(
        self, folder: str | os.PathLike, overwrite: bool = False, dtype: torch.dtype = torch.float16
    ) -> Path:
        """Write the whole pipeline folder; weights in `dtype` (fp16 keeps the built-in small).

        The text tokenizer is not copied: `config.text_tokenizer` names it (builtin:NAME).
        """
        models = ((VAE_DIR, self.tokenizer.vae), (FINE_VQ_DIR, self.tokenizer.fine_vq), (DIT_DIR, self.dit))
        with atomic_write(folder, overwrite=overwrite, is_dir=True) as tmp:
            (tmp / CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
            for name, model in models:
                copy.deepcopy(model).to(dtype).save_pretrained(tmp / name)
            if self.ar is not None:
                save_lumos(self.ar, tmp / AR_DIR, dtype=dtype)
            self.scheduler.save_pretrained(tmp / SCHEDULER_DIR)
        return Path(folder)

    def _check_components(self) -> None:
        vae, dit, c = self.tokenizer.vae, self.dit, self.config
        if dit.config.latent_channels != vae.config.latent_channels:
            raise ArvideoError(
                f"the DiT works on {dit.config.latent_channels} latent channels, the VAE makes "
                f"{vae.config.latent_channels}; use the models that were trained together"
            )
        if self.text_tokenizer.vocab_size > dit.config.text_vocab_size:
            raise ArvideoError(
                f"the text tokenizer has {self.text_tokenizer.vocab_size} ids, the DiT embeds only "
                f"{dit.config.text_vocab_size}; use the text tokenizer the model was trained with"
            )
        if self.ar is not None:
            vocab = self.ar.vocab
            strides = (self.tokenizer.temporal_compression, *(2 * [self.tokenizer.spatial_compression]))
            ar_strides = tuple(self.ar.config.rope_strides)
            if vocab.codebook_size != self.tokenizer.codebook_size or ar_strides != strides:
                raise ArvideoError(
                    f"the AR model expects {vocab.codebook_size} codes at compression "
                    f"{ar_strides}, the fine VQ-VAE gives "
                    f"{self.tokenizer.codebook_size} at {strides}; use the models trained together"
                )
            if self.text_tokenizer.vocab_size > vocab.text_size:
                raise ArvideoError(
                    f"the text tokenizer has {self.text_tokenizer.vocab_size} ids, the AR model's "
                    f"vocabulary {vocab.text_size}; use the text tokenizer the model was trained with"
                )
        tok = self.tokenizer
        segment_latents = tok.vae.latent_frames(c.segment_frames)
        checks = [
            (tok.vae.pixel_frames(segment_latents) == c.segment_frames,
             f"segment_frames must be 1 + {tok.vae.temporal_compression}k, got {c.segment_frames}"),
            (1 <= c.reference_frames < segment_latents,
             f"reference_frames must be in [1, {segment_latents - 1}], got {c.reference_frames}"),
            (0 <= c.ar_context < c.ar_window, f"ar_context must be in [0, ar_window), got {c.ar_context}"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise ArvideoError(f"{CONFIG_NAME}: {message}")
        tok.check_size(c.height, c.width)

    # ---- 1. inputs ---------------------------------------------------------------------------------

    def check_inputs(
        self,
        prompts: str | Sequence[str],
        *,
        segments: int | None = None,
        steps: int | None = None,
        cfg: float | None = None,
        seed: int = 0,
        use_ar: bool = True,
        decoding: Literal["parallel", "next_token"] = "parallel",
        ar_steps: int | None = None,
        ar_cfg: float | None = None,
    ) -> Request:
        """Validate every argument up front; each failure is one ArvideoError saying how to fix it.

        `prompts` switch progressively: with P prompts and N segments, segment k uses prompt
        floor(k * P / N) (N = P by default: one prompt per segment).
        """
        c = self.config
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts or any(not isinstance(p, str) or not p.strip() for p in prompts):
            raise ArvideoError("every prompt must be a non-empty text; describe what each segment shows")
        n = len(prompts) if segments is None else segments
        if isinstance(n, bool) or not isinstance(n, int) or n < len(prompts):
            raise ArvideoError(
                f"segments must be a whole number >= the number of prompts ({len(prompts)}), got {n!r}"
            )
        steps = c.steps if steps is None else steps
        ar_steps = c.ar_steps if ar_steps is None else ar_steps
        for name, value in (("steps", steps), ("ar_steps", ar_steps)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ArvideoError(f"{name} must be a whole number >= 1, got {value!r}")
        cfg = c.cfg if cfg is None else cfg
        ar_cfg = c.ar_cfg if ar_cfg is None else ar_cfg
        for name, value in (("cfg", cfg), ("ar_cfg", ar_cfg)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ArvideoError(f"{name} must be a number >= 0, got {value!r}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ArvideoError(f"seed must be an integer, got {seed!r}")
        if decoding not in ("parallel", "next_token"):
            raise ArvideoError(f"decoding must be 'parallel' or 'next_token', got {decoding!r}")
        if use_ar and self.ar is None:
            raise ArvideoError("this ARLON model has no AR stage (ar/); generate with use_ar=False (--no-ar)")

        per_segment = [prompts[k * len(prompts) // n].strip() for k in range(n)]
        text_ids = [self.text_tokenizer.encode(p) for p in per_segment]
        limit = self.dit.config.max_text_len
        for p, ids in zip(per_segment, text_ids, strict=True):
            if len(ids) > limit:
                raise ArvideoError(
                    f"the prompt {p!r} is {len(ids)} tokens long, the model takes at most {limit}; shorten it"
                )
        tok = self.tokenizer
        segment_latents = tok.vae.latent_frames(c.segment_frames)
        layout = Layout(n, segment_latents, c.reference_frames, tok.temporal_compression)
        ar_config = sampler.SamplerConfig(steps=ar_steps, cfg=float(ar_cfg), history_ratio=c.history_ratio,
                                          decoding=decoding)  # fmt: skip
        return Request(per_segment, text_ids, layout, steps, float(cfg), use_ar, ar_config, seed)

    # ---- 2.-4. generation --------------------------------------------------------------------------

    def __call__(
        self,
        prompts: str | Sequence[str],
        *,
        callback: Callback | None = None,
        generator: torch.Generator | None = None,
        **options,
    ) -> Video:
        """Generate a long video; `options` are those of `check_inputs`; `generator` overrides `seed`."""
        # 1. Check inputs
        request = self.check_inputs(prompts, **options)
        # 2.-4. AR codes, then the segments one by one
        frames = torch.cat([s.frames for s in self._segments(request, generator, callback)])  # [T, H, W, 3]
        return Video(frames, fps=self.config.fps)

    def stream(
        self,
        prompts: str | Sequence[str],
        *,
        callback: Callback | None = None,
        generator: torch.Generator | None = None,
        **options,
    ) -> Iterator[Video]:
        """Like `__call__`, but yield each segment's new frames as soon as it is decoded."""
        for segment in self.segments(prompts, callback=callback, generator=generator, **options):
            yield Video(segment.frames, fps=self.config.fps)

    def segments(
        self,
        prompts: str | Sequence[str],
        *,
        callback: Callback | None = None,
        generator: torch.Generator | None = None,
        **options,
    ) -> Iterator[Segment]:
        """The segments with their latents (for inspection and tests); `stream` yields their frames."""
        yield from self._segments(self.check_inputs(prompts, **options), generator, callback)

    @torch.no_grad()
    def _segments(
        self, request: Request, generator: torch.Generator | None, callback: Callback | None
    ) -> Iterator[Segment]:
        layout, tok = request.layout, self.tokenizer
        device = next(self.dit.parameters()).device
        # 2. Prepare the generator: the same seed gives the same video
        if generator is None:
            generator = torch.Generator(device).manual_seed(request.seed)
        # 3. AR codes of the whole video (the DiT alone skips this)
        codes = self._ar_codes(request, generator, callback) if request.use_ar else None  # [L, h, w]
        c = self.config
        h, w = c.height // tok.vae.spatial_compression, c.width // tok.vae.spatial_compression
        shape = (1, self.dit.config.latent_channels, layout.segment_latents, h, w)
        ref_mask = torch.arange(layout.segment_latents, device=device)[None] < layout.reference  # [1, S]
        video: torch.Tensor | None = None  # uint8 [T, H, W, 3]: the output so far
        for k in range(layout.segments):
            # 4a. the condition F of this segment, and its reference frames from the video so far
            coarse = None if codes is None else tok.fine_vq.decode(codes[layout.window(k)][None])
            reference = None
            if video is not None:
                last = video[-layout.reference_pixels :].permute(3, 0, 1, 2)[None]  # uint8 [1, 3, t, H, W]
                reference = tok.encode_latent(last)  # [1, C, r, h, w]
            # 4b. Euler steps from noise, guided on the text
            x = self._denoise(request, k, shape, coarse, reference, ref_mask, generator)
            # 4c. decode; the frames after the reference ones are this segment's
            pixels = from_model(tok.decode_latent(x)[0].cpu())  # [T_seg, H, W, 3]
            new = pixels if reference is None else pixels[layout.reference_pixels :]
            video = new if video is None else torch.cat([video, new])
            if callback is not None:
                callback(Progress("dit", k + 1, layout.segments))
            yield Segment(k, request.prompts[k], new, x, reference, coarse)

    def _denoise(
        self,
        request: Request,
        k: int,
        shape: tuple[int, ...],
        coarse: torch.Tensor | None,
        reference: torch.Tensor | None,
        ref_mask: torch.Tensor,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """One segment's latent [1, C, S, h, w]; the reference frames (if any) are kept exactly."""
        device = ref_mask.device
        text = torch.tensor([request.text_ids[k]], device=device)  # [1, L]
        full_ref = None
        if reference is not None:
            full_ref = torch.zeros(shape, device=device)
            full_ref[:, :, : reference.shape[2]] = reference  # [1, C, S, h, w]
        mask = None if reference is None else ref_mask

        def velocity(x: torch.Tensor, t: torch.Tensor, drop_text: bool) -> torch.Tensor:
            drop = torch.full((x.shape[0],), drop_text, device=device)
            return self.dit(x, t, text, coarse=coarse, reference=full_ref, reference_mask=mask,
                            drop_text=drop)  # fmt: skip

        noise = torch.randn(shape, generator=generator, device=device)
        x = euler_sample(velocity, noise, self.scheduler, request.steps, request.cfg, generator)
        return x if full_ref is None else torch.where(mask[:, None, :, None, None], full_ref, x)

    def _ar_codes(
        self, request: Request, generator: torch.Generator, callback: Callback | None
    ) -> torch.Tensor:
        """Fine codes [L, h, w] of the whole video, window by window (see the module docstring)."""
        layout, c, ar = request.layout, self.config, self.ar
        assert ar is not None
        h = c.height // self.tokenizer.spatial_compression
        w = c.width // self.tokenizer.spatial_compression
        codes: list[torch.Tensor] = []
        while len(codes) < layout.latents:
            n = len(codes)
            start = 0 if n == 0 else max(0, n - c.ar_context)
            owner = layout.opened_by(n)
            end = min(start + c.ar_window, layout.latents, layout.first_frame_of(owner + 1))
            given = torch.stack(codes[start:n]) if n > start else None  # [n - start, h, w]
            duration, fps = header_timing(end - start, c.fps, self.tokenizer.temporal_compression)
            frames = sampler.stream(
                ar, request.text_ids[owner], (end - start, h, w), duration, fps,
                config=request.ar_config, generator=generator, given=given,
            )  # fmt: skip
            for i, frame in enumerate(frames):
                if start + i >= n:  # given frames come back first
                    codes.append(frame)
                    if callback is not None:
                        callback(Progress("ar", len(codes), layout.latents))
        return torch.stack(codes)
