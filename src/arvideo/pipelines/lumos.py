"""`LumosPipeline`: prompt (and optional first frames) in, `Video` out, with a Lumos-1 model.

    pipe = LumosPipeline.from_folder("path/to/model")        # or arvideo.load("builtin:shapes")
    video = pipe("a small red circle moves to the right", seed=0)                  # text-to-video
    image = pipe("a large blue star in the top left", frames=1)                    # text-to-image
    video = pipe("the circle moves up", image="first.png")                         # image-to-video
    for chunk in pipe.stream("a green square moves left"): ...                     # frames as decoded

A model folder is the official Lumos-1 layout (config.json + safetensors, see lumos/checkpoint.py)
plus, for arvideo's own models, `arvideo.json` (`PipelineConfig`): which video and text tokenizers
the model was trained with, how prompts are written, and the generation defaults. A released
Lumos-1 folder has no arvideo.json: pass the Cosmos tokenizer folder and the Chameleon
text_tokenizer.json, and the defaults are those of the released T2V driver (reference §5.6).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from arvideo.errors import ArvideoError
from arvideo.io import Video, read_video
from arvideo.lumos import sampler
from arvideo.lumos.checkpoint import load_lumos
from arvideo.lumos.decoder import LumosDecoder
from arvideo.lumos.sequence import header_timing, prompt_text
from arvideo.tokenizers import TextTokenizer, VideoTokenizer, load_text_tokenizer, load_tokenizer
from arvideo.tokenizers.cosmos import fit_frames
from arvideo.tokenizers.ids import decode_video

log = logging.getLogger(__name__)

CONFIG_NAME = "arvideo.json"
FORMAT = "arvideo-lumos-pipeline-v1"

ImageInput = str | os.PathLike | Video | torch.Tensor


@dataclass(kw_only=True)
class PipelineConfig:
    """The `arvideo.json` of a model folder; without one, the released Lumos-1 T2V settings."""

    tokenizer: str | None = None  # builtin:NAME or a folder (relative paths: from the model folder)
    text_tokenizer: str | None = None  # builtin:NAME or a tokenizer.json (relative paths likewise)
    prompt: Literal["caption", "lumos"] = "lumos"  # caption: its ids alone; lumos: §2.2's instruction
    max_prompt_tokens: int = 1024  # longer prompts are refused
    width: int = 448
    height: int = 256
    frames: int = 25  # default output length in pixel frames (1 + 4k for a 4x temporal tokenizer)
    fps: int = 12
    steps: int = 50
    cfg: float = 15.0
    image_cfg: float = 16.0  # guidance for one-frame outputs (the released text-to-image driver)
    history_ratio: float = 0.7
    temperature: float = 1.0  # of the token draw; 0 takes the most likely token
    top_k: int = 0  # draw among the k most likely visual codes only; 0: all of them (the released code)

    @classmethod
    def read(cls, folder: Path) -> PipelineConfig:
        """The folder's arvideo.json, or the defaults if it has none."""
        path = folder / CONFIG_NAME
        if not path.is_file():
            return cls()
        try:
            d = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ArvideoError(f"{path} is not valid JSON ({e})") from None
        if not isinstance(d, dict) or d.pop("format", None) != FORMAT:
            raise ArvideoError(f'{path} is not an arvideo pipeline file (expected "format": "{FORMAT}")')
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields)
        if unknown:
            raise ArvideoError(
                f"{path}: unknown key {unknown[0]!r}; valid keys: format, {', '.join(sorted(fields))}"
            )
        config = cls(**d)
        if config.prompt not in ("caption", "lumos"):
            raise ArvideoError(f'{path}: prompt must be "caption" or "lumos", got {config.prompt!r}')
        return config

    def to_dict(self) -> dict:
        return {"format": FORMAT, **dataclasses.asdict(self)}


@dataclass
class Request:
    """Validated inputs of one generation (`LumosPipeline.check_inputs`)."""

    text_ids: list[int]
    width: int
    height: int
    frames: int  # pixel frames of the output
    latent: tuple[int, int, int]  # (T', H', W')
    fps: int
    duration: int  # header numbers: (1, 1) for an image
    header_fps: int
    context: torch.Tensor | None  # uint8 [T0, H, W, 3]: given first frames, fitted to the size
    config: sampler.SamplerConfig
    seed: int


class LumosPipeline:
    """Lumos-1 generation: text-to-image, text-to-video, image-to-video, video continuation."""

    def __init__(
        self,
        model: LumosDecoder,
        tokenizer: VideoTokenizer,
        text_tokenizer: TextTokenizer,
        config: PipelineConfig | None = None,
    ):
        self.model, self.tokenizer, self.text_tokenizer = model.eval(), tokenizer, text_tokenizer
        self.config = config or PipelineConfig()
        self.vocab = model.vocab
        _check_components(model, tokenizer, text_tokenizer)

    @classmethod
    def from_folder(
        cls,
        folder: str | os.PathLike,
        tokenizer: str | os.PathLike | VideoTokenizer | None = None,
        text_tokenizer: str | os.PathLike | TextTokenizer | None = None,
        device: str | torch.device = "cpu",
    ) -> LumosPipeline:
        """A model folder plus its tokenizers (from arvideo.json unless given here)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise ArvideoError(f"model {str(folder)!r} is neither builtin:NAME nor an existing folder")
        config = PipelineConfig.read(folder)
        video_tok = component_path(
            tokenizer, config.tokenizer, folder, "tokenizer", "a Cosmos DV4x8x8 folder"
        )
        text_tok = component_path(
            text_tokenizer, config.text_tokenizer, folder, "text_tokenizer", "text_tokenizer.json"
        )
        if not isinstance(video_tok, VideoTokenizer):
            video_tok = load_tokenizer(video_tok, device=device)
        if not isinstance(text_tok, TextTokenizer):
            text_tok = load_text_tokenizer(text_tok)
        return cls(load_lumos(folder, device=device), video_tok, text_tok, config)

    # ---- 1. inputs ---------------------------------------------------------------------------------

    def check_inputs(
        self,
        prompt: str,
        image: ImageInput | None = None,
        *,
        frames: int | None = None,
        seconds: float | None = None,
        size: tuple[int, int] | None = None,
        fps: int | None = None,
        steps: int | None = None,
        cfg: float | None = None,
        seed: int = 0,
        temperature: float | None = None,
        top_k: int | None = None,
        history_ratio: float | None = None,
        official_quirks: bool = False,
        decoding: Literal["parallel", "next_token"] = "parallel",
    ) -> Request:
        """Validate every argument up front; each failure is one ArvideoError saying how to fix it."""
        c, tok = self.config, self.tokenizer
        if not isinstance(prompt, str) or not prompt.strip():
            raise ArvideoError("the prompt is empty; describe the video to generate")
        fps = c.fps if fps is None else fps
        if isinstance(fps, bool) or not isinstance(fps, int) or not 1 <= fps < self.vocab.n_numbers:
            raise ArvideoError(f"fps must be a whole number in [1, {self.vocab.n_numbers - 1}], got {fps!r}")
        width, height = (c.width, c.height) if size is None else size
        self._check_size(width, height)

        context = None if image is None else self._read_context(image, width, height)
        n_frames = self._frame_count(frames, seconds, fps)
        if context is not None and len(context) >= n_frames:
            raise ArvideoError(
                f"the given video has {len(context)} frames and the output {n_frames}: nothing to generate; "
                f"ask for more frames (e.g. {tok.pixel_frames(tok.latent_frames(len(context)) + 1)})"
            )
        n_latent = tok.latent_frames(n_frames)
        duration, header_fps = header_timing(n_latent, fps, tok.temporal_compression)
        if duration >= self.vocab.n_numbers:
            raise ArvideoError(
                f"a {duration}-second video is longer than the model's video header can state "
                f"({self.vocab.n_numbers - 1} s); ask for fewer frames"
            )

        text = prompt.strip()
        if c.prompt == "lumos":
            text = prompt_text(text, width, height, duration, header_fps)
        text_ids = self.text_tokenizer.encode(text)
        if len(text_ids) > c.max_prompt_tokens:
            raise ArvideoError(
                f"the prompt is {len(text_ids)} tokens long, the model takes at most {c.max_prompt_tokens}; "
                f"shorten it"
            )
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ArvideoError(f"seed must be an integer, got {seed!r}")

        top_k = c.top_k if top_k is None else top_k
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
            raise ArvideoError(f"top-k must be a whole number >= 0 (0: draw among all codes), got {top_k!r}")
        one_frame = n_frames == 1
        config = sampler.SamplerConfig(
            steps=c.steps if steps is None else steps,
            cfg=(c.image_cfg if one_frame else c.cfg) if cfg is None else cfg,
            history_ratio=c.history_ratio if history_ratio is None else history_ratio,
            temperature=c.temperature if temperature is None else temperature,
            top_k=top_k or None,
            official_quirks=official_quirks,
            decoding=decoding,
        )
        sc = tok.spatial_compression
        return Request(
            text_ids, width, height, n_frames, (n_latent, height // sc, width // sc), fps, duration,
            header_fps, context, config, seed,
        )  # fmt: skip

    def _check_size(self, width: int, height: int) -> None:
        """Sizes the tokenizer tiles and the vocabulary's grid tokens can state."""
        unit = self.tokenizer.spatial_compression * self.vocab.grid_unit  # pixels per grid token unit
        largest = unit * (self.vocab.n_numbers - 1)
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ArvideoError(f"frame {name} must be a positive whole number of pixels, got {value!r}")
            if value % unit:
                low = value // unit * unit
                options = f"{unit}" if low == 0 else f"{low} or {low + unit}"
                why = f"the tokenizer's {self.tokenizer.spatial_compression}x compression"
                if self.vocab.grid_unit > 1:
                    why += (
                        f" times the {self.vocab.layout} vocabulary's {self.vocab.grid_unit}-latent grid unit"
                    )
                raise ArvideoError(
                    f"frame {name} {value} is not a multiple of {unit} pixels ({why}); use {options}"
                )
            if value > largest:
                raise ArvideoError(
                    f"frame {name} {value} is larger than the model can state ({largest} pixels)"
                )

    def _frame_count(self, frames: int | None, seconds: float | None, fps: int) -> int:
        tok = self.tokenizer
        if frames is not None and seconds is not None:
            raise ArvideoError("give either frames or seconds, not both")
        if seconds is not None:
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
                raise ArvideoError(f"seconds must be a positive number, got {seconds!r}")
            # whole latent frames: round the length up to the next count the tokenizer makes
            return tok.pixel_frames(tok.latent_frames(max(1, round(seconds * fps))))
        if frames is None:
            return self.config.frames
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
            raise ArvideoError(f"frames must be a whole number >= 1, got {frames!r}")
        _check_frame_count(tok, frames, "frames")
        return frames

    def _read_context(self, image: ImageInput, width: int, height: int) -> torch.Tensor:
        """The given first frame(s) as uint8 [T0, height, width, 3], resized and centre-cropped."""
        if isinstance(image, str | os.PathLike):
            frames = read_video(image).frames
        elif isinstance(image, Video):
            frames = image.frames
        elif isinstance(image, torch.Tensor):
            frames = Video(image[None] if image.ndim == 3 else image).frames  # checks dtype and shape
        else:
            raise ArvideoError(
                f"image must be a file path, a Video or uint8 frames, got {type(image).__name__}"
            )
        _check_frame_count(self.tokenizer, len(frames), "given frames")
        if tuple(frames.shape[1:3]) != (height, width):
            log.info("given frames %dx%d resized and centre-cropped to %dx%d",
                     frames.shape[2], frames.shape[1], width, height)  # fmt: skip
        return fit_frames(frames, width, height)

    # ---- 2.-5. generation ---------------------------------------------------------------------------

    def __call__(
        self,
        prompt: str,
        image: ImageInput | None = None,
        *,
        callback: sampler.Callback | None = None,
        generator: torch.Generator | None = None,
        **options,
    ) -> Video:
        """Generate one video (or image: frames=1). `options` are those of `check_inputs`;
        `generator` overrides `seed`; `callback(step)` runs after every decoding step."""
        # 1. Check inputs
        request = self.check_inputs(prompt, image, **options)
        # 2.-4. Encode the given frames, then sample every new frame
        codes = torch.stack(list(self._latents(request, generator, callback)))  # [T', H', W']
        # 5. Decode to pixels
        return decode_video(self.tokenizer, codes, fps=request.fps, n_frames=request.frames)

    def stream(
        self,
        prompt: str,
        image: ImageInput | None = None,
        *,
        callback: sampler.Callback | None = None,
        generator: torch.Generator | None = None,
        **options,
    ) -> Iterator[Video]:
        """Like `__call__`, but yield pixel frames as soon as their latent frame is decoded: one frame,
        then `temporal_compression` frames per latent frame (given frames come first).

        The tokenizer is causal, so decoding the latent frames so far gives the final pixels of
        those frames; each chunk re-decodes the prefix (cheap next to the sampler).
        """
        request = self.check_inputs(prompt, image, **options)
        codes: list[torch.Tensor] = []
        done = 0
        for frame in self._latents(request, generator, callback):
            codes.append(frame)
            video = decode_video(self.tokenizer, torch.stack(codes), fps=request.fps)
            yield Video(video.frames[done:], video.fps)
            done = len(video.frames)

    def _latents(
        self, request: Request, generator: torch.Generator | None, callback: sampler.Callback | None
    ) -> Iterator[torch.Tensor]:
        device = self.model.embed.weight.device
        # 2. Encode the given frames (image-to-video, continuation): they become the context
        given = None
        if request.context is not None:
            given = self.tokenizer.encode(request.context.permute(3, 0, 1, 2)[None])[0]  # [T0, H', W']
        # 3. Prepare the generator: the same seed gives the same video
        if generator is None:
            generator = torch.Generator(device).manual_seed(request.seed)
        # 4. Sample frame by frame
        yield from sampler.stream(
            self.model, request.text_ids, request.latent, request.duration, request.header_fps,
            config=request.config, generator=generator, given=given, callback=callback,
        )  # fmt: skip


def _check_frame_count(tokenizer: VideoTokenizer, n: int, what: str) -> None:
    """Refuse frame counts that do not fill whole latent frames, naming the nearest that do."""
    n_latent = tokenizer.latent_frames(n)
    if tokenizer.pixel_frames(n_latent) == n:
        return
    tc = tokenizer.temporal_compression
    low, high = tokenizer.pixel_frames(n_latent - 1), tokenizer.pixel_frames(n_latent)
    raise ArvideoError(
        f"{what}: {n} frames cannot be made by the tokenizer (it takes 1 + {tc}k frames); use {low} or {high}"
    )


def component_path(given, named: str | None, folder: Path, key: str, example: str = ""):
    """A tokenizer passed by the caller, else the one arvideo.json names (relative to the folder)."""
    if given is not None:
        return given
    if named is None:
        raise ArvideoError(
            f"model folder {folder} has no {CONFIG_NAME} naming its {key}; pass {key}= ({example})"
        )
    return named if named.startswith("builtin:") else str(folder / named)


def component_reference(tokenizer: str, folder: Path) -> str:
    """A tokenizer as the arvideo.json of `folder` names it: builtin:NAME, or a path relative to it."""
    if tokenizer.startswith("builtin:"):
        return tokenizer
    return os.path.relpath(Path(tokenizer).resolve(), Path(folder).resolve())


def _check_components(model: LumosDecoder, tokenizer: VideoTokenizer, text: TextTokenizer) -> None:
    vocab, cfg = model.vocab, model.config
    if tokenizer.codebook_size != vocab.codebook_size:
        raise ArvideoError(
            f"the video tokenizer has {tokenizer.codebook_size} codes but the model's vocabulary "
            f"{vocab.codebook_size}; use the tokenizer the model was trained with"
        )
    strides = (tokenizer.temporal_compression, tokenizer.spatial_compression, tokenizer.spatial_compression)
    if tuple(cfg.rope_strides) != strides:
        raise ArvideoError(
            f"the model's positions assume a {cfg.rope_strides} compression, the tokenizer has {strides}; "
            f"use the tokenizer the model was trained with"
        )
    if text.vocab_size > vocab.text_size:
        raise ArvideoError(
            f"the text tokenizer has {text.vocab_size} ids but the model's vocabulary only "
            f"{vocab.text_size} text ids; use the text tokenizer the model was trained with"
        )
